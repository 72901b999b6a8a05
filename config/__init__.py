"""Process configuration: one validated Settings object read from the environment and .env."""

from config.settings import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
