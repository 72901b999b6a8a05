"""The Discord adapter: discord.py client, app commands, embeds."""
