"""Process configuration: one validated Settings object read from the environment and .env."""

from config.settings import ConfigError, Settings, Unavailable, load_settings

__all__ = ["ConfigError", "Settings", "Unavailable", "load_settings"]
