"""Command parsing and one handler per command."""
