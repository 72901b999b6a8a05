"""Settings read from environment variables and `.env`, validated once at start-up."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# A time of day as people type it: 21:00, 9:30, 9am, 9:30pm, 12am (midnight).
_TIME = re.compile(r"^(\d{1,2})(?::([0-5]\d))?\s*([ap]\.?m\.?)?$", re.IGNORECASE)
# Papers in a channel's daily post: one range for the setting's default and the command.
MAX_POST_COUNT = 10


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable and never its value."""


class Unavailable(Exception):
    """A service the process needs at start (the database, Slack, Discord) cannot be reached
    or does not answer; the message names it, why, and the variable that points at it."""

    @classmethod
    def because(cls, service: str, error: BaseException, variable: str) -> Unavailable:
        """`<service> unavailable (<why>); check <variable>`."""
        return cls(f"{service} unavailable ({cls.why(error)}); check {variable}")

    @staticmethod
    def why(error: BaseException) -> str:
        """`<error type>: <its first line>`: drivers append statements, libraries details."""
        lines = str(error).strip().splitlines()
        return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


def normalise_database_url(url: str) -> str:
    """Accept Heroku-style and sync driver URLs and return the async-driver form."""
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep or not rest:
        raise ValueError(
            "expected a URL such as sqlite+aiosqlite:///paperboy.db or postgresql://..."
        )
    scheme = scheme.lower()
    if scheme in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+asyncpg"):
        normalised = f"postgresql+asyncpg://{rest}"
    elif scheme in ("sqlite", "sqlite+aiosqlite"):
        normalised = f"sqlite+aiosqlite://{rest}"
    else:
        raise ValueError("only sqlite and postgresql databases are supported")
    # A bad port would otherwise fail at the first connection, with a traceback. The messages
    # never repeat the URL: it may hold a password.
    try:
        port = make_url(normalised).port
    except ValueError:
        raise ValueError("the port must be a number, e.g. postgresql://host:5432/name") from None
    except ArgumentError:
        raise ValueError("expected a URL such as postgresql://user:password@host/name") from None
    if port is not None and not 0 < port < 65536:
        raise ValueError("the port must be a number from 1 to 65535")
    return _asyncpg_ssl(normalised)


SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _asyncpg_ssl(url: str) -> str:
    """libpq's `?sslmode=` (what hosted PostgreSQL URLs carry) as asyncpg's `?ssl=`: the
    driver would refuse the unknown keyword at the first connection."""
    parsed = make_url(url)
    mode = parsed.query.get("sslmode")
    if mode is None or parsed.get_backend_name() != "postgresql":
        return url
    if mode not in SSL_MODES:
        raise ValueError(f"sslmode must be one of {', '.join(SSL_MODES)}")
    parsed = parsed.difference_update_query(["sslmode"]).update_query_dict({"ssl": mode})
    return parsed.render_as_string(hide_password=False)


def parse_time_of_day(value: str) -> time:
    """A time of day from `21:00`, `9:30`, `9am` or `9:30pm` (a bare hour needs am or pm)."""
    match = _TIME.match(value.strip())
    if not match:
        raise ValueError("expected a time such as 09:00, 21:30 or 9am")
    hour, minute, half = int(match[1]), int(match[2] or 0), (match[3] or "").lower()
    if half:
        if not 1 <= hour <= 12:
            raise ValueError("expected a time such as 09:00, 21:30 or 9am")
        hour = hour % 12 + (12 if half.startswith("p") else 0)
    elif match[2] is None or hour > 23:
        raise ValueError("expected a time such as 09:00, 21:30 or 9am")
    return time(hour, minute)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # Out of repr: the URL may hold the database password.
    database_url: str = Field(
        "sqlite+aiosqlite:///paperboy.db", validation_alias="DATABASE_URL", repr=False
    )
    slack_bot_token: SecretStr | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_client_id: str | None = Field(None, validation_alias="SLACK_CLIENT_ID")
    slack_client_secret: SecretStr | None = Field(None, validation_alias="SLACK_CLIENT_SECRET")
    discord_token: SecretStr | None = Field(None, validation_alias="DISCORD_TOKEN")

    hf_base_url: str = Field("https://huggingface.co", validation_alias="PAPERBOY_HF_BASE_URL")
    arxiv_api_url: str = Field(
        "https://export.arxiv.org", validation_alias="PAPERBOY_ARXIV_API_URL"
    )
    slack_api_url: str = Field("https://slack.com/api/", validation_alias="PAPERBOY_SLACK_API_URL")
    discord_api_url: str = Field(
        "https://discord.com/api/v10", validation_alias="PAPERBOY_DISCORD_API_URL"
    )
    discord_gateway_url: str = Field(
        "wss://gateway.discord.gg/", validation_alias="PAPERBOY_DISCORD_GATEWAY_URL"
    )
    # Sync `/papers` to these servers only (instant, for development) instead of globally.
    discord_guild_ids: Annotated[tuple[int, ...], NoDecode] = Field(
        (), validation_alias="PAPERBOY_DISCORD_GUILD_IDS"
    )
    # Ask for the privileged message-content intent (switched on in the Developer Portal too),
    # so that a save reaction on a member's message can read its paper links.
    discord_message_content: bool = Field(
        False, validation_alias="PAPERBOY_DISCORD_MESSAGE_CONTENT"
    )

    save_emojis: Annotated[tuple[str, ...], NoDecode] = Field(
        ("bookmark",), validation_alias="PAPERBOY_SAVE_EMOJIS"
    )
    default_tz: str = Field("UTC", validation_alias="PAPERBOY_DEFAULT_TZ")
    default_post_time: str = Field("09:00", validation_alias="PAPERBOY_DEFAULT_POST_TIME")
    default_post_count: int = Field(
        5, ge=1, le=MAX_POST_COUNT, validation_alias="PAPERBOY_DEFAULT_POST_COUNT"
    )
    search_budget_seconds: float = Field(
        1.5, gt=0, le=10, validation_alias="PAPERBOY_SEARCH_BUDGET"
    )
    # How long a worker's claim on a scheduled send (and on the Discord gateway) lasts before
    # another worker may take it over: short enough to recover fast from a crash.
    delivery_lease_seconds: float = Field(
        300.0, gt=0, le=3600, validation_alias="PAPERBOY_DELIVERY_LEASE_SECONDS"
    )
    gateway_lease_seconds: float = Field(
        60.0, gt=0, le=3600, validation_alias="PAPERBOY_GATEWAY_LEASE_SECONDS"
    )
    # Posts per second per Slack workspace, from each process (Slack allows "several hundred
    # per minute" per workspace; the default leaves room for other posts and a second worker).
    slack_messages_per_second: float = Field(
        4.0, gt=0, le=100, validation_alias="PAPERBOY_SLACK_MESSAGES_PER_SECOND"
    )
    # How many of those posts may go out back to back after a quiet spell.
    slack_burst: int = Field(4, ge=1, le=100, validation_alias="PAPERBOY_SLACK_BURST")
    # Days a workspace's data is kept after it removed the app, in case it installs it again.
    data_grace_days: int = Field(30, ge=1, le=3650, validation_alias="PAPERBOY_DATA_GRACE_DAYS")
    # Search by meaning: "auto" uses it when the `semantic` extra is installed.
    semantic: Literal["auto", "on", "off"] = Field("auto", validation_alias="PAPERBOY_SEMANTIC")
    log_level: str = Field("INFO", validation_alias="PAPERBOY_LOG_LEVEL")
    # "json": one JSON object per log line, for log collectors.
    log_format: Literal["text", "json"] = Field("text", validation_alias="PAPERBOY_LOG_FORMAT")
    # The worker's /healthz, /readyz and /metrics port; off (None) by default, as a worker
    # dyno has no port to offer.
    metrics_port: int | None = Field(None, validation_alias="PAPERBOY_METRICS_PORT")
    host: str = Field("0.0.0.0", validation_alias="PAPERBOY_HOST")
    port: int = Field(3000, ge=0, le=65535, validation_alias="PORT")

    @property
    def slack_oauth(self) -> bool:
        """OAuth installs into many workspaces, each with its token (over SLACK_BOT_TOKEN)."""
        return bool(self.slack_client_id and self.slack_client_secret)

    @property
    def slack_configured(self) -> bool:
        return self.slack_bot_token is not None or self.slack_oauth

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator(
        "hf_base_url", "arxiv_api_url", "slack_api_url", "discord_api_url", "discord_gateway_url"
    )
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip()
        if not re.match(r"^(https?|wss?)://[^\s/]+", value):
            raise ValueError("expected an absolute http(s) or ws(s) URL")
        return value

    @field_validator("save_emojis", mode="before")
    @classmethod
    def _save_emojis(cls, value: str | Iterable[object]) -> tuple[str, ...]:
        # Before validation: the environment's text, or what a caller passed (a list, a tuple).
        if isinstance(value, str):
            value = value.split(",")
        names = tuple(str(v).strip().strip(":") for v in value if str(v).strip().strip(":"))
        if not names:
            raise ValueError("expected a comma-separated list of emoji names, e.g. bookmark")
        return names

    @field_validator("discord_guild_ids", mode="before")
    @classmethod
    def _guild_ids(cls, value: str | Iterable[object]) -> tuple[int, ...]:
        if isinstance(value, str):
            value = [part for part in value.replace(" ", ",").split(",") if part]
        ids = [str(v).strip() for v in value]
        if not all(v.isascii() and v.isdigit() and 0 < int(v) < 2**64 for v in ids):
            raise ValueError("expected comma-separated Discord server (guild) ids")
        return tuple(int(v) for v in ids)

    @field_validator("default_tz")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA timezone such as Europe/Berlin") from None
        return value.strip()

    @field_validator("default_post_time")
    @classmethod
    def _post_time(cls, value: str) -> str:
        return parse_time_of_day(value).strftime("%H:%M")

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: object) -> str:
        text = str(value).strip().lower()
        if text not in ("text", "json"):
            raise ValueError("expected text or json")
        return text

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _metrics_port(cls, value: object) -> int | None:
        text = "" if value is None else str(value).strip().lower()
        if text in ("", "off"):
            return None
        if not (text.isascii() and text.isdigit() and 0 < int(text) < 65536):
            raise ValueError("expected a port number from 1 to 65535, or off")
        return int(text)

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
        return level


def load_settings(**overrides: Any) -> Settings:
    """Build Settings, turning the first validation error into one line naming the variable.
    `overrides` may be of any type: pydantic validates them as it does the environment's."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "settings"
        info = Settings.model_fields.get(field)
        alias = info.validation_alias if info else None
        name = alias if isinstance(alias, str) else field.upper()
        reason = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{name}: {reason}") from None
