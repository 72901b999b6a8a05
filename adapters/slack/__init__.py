"""Slack adapter: slash commands, reactions, daily posts and DMs through slack-bolt."""
