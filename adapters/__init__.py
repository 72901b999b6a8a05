"""Platform adapters: translate Slack, Discord and console events into core calls."""
