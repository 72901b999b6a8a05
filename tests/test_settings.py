"""Settings: environment names of DESIGN.md, URL normalisation, one-line errors."""

from __future__ import annotations

import pytest

from config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("DATABASE_URL", "PAPERBOY_DEFAULT_TZ", "PAPERBOY_SAVE_EMOJIS",
                 "PAPERBOY_DEFAULT_POST_TIME", "SLACK_BOT_TOKEN", "PAPERBOY_LOG_FORMAT",
                 "PAPERBOY_METRICS_PORT"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///paperboy.db"
    assert settings.hf_base_url == "https://huggingface.co"
    assert settings.arxiv_api_url == "https://export.arxiv.org"
    assert settings.save_emojis == ("bookmark",)
    assert settings.default_tz == "UTC"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db.example:5432/app", "postgresql+asyncpg://u:p@db.example:5432/app"),
        ("postgresql://u:p@localhost/app", "postgresql+asyncpg://u:p@localhost/app"),
        ("postgresql+asyncpg://u@h/app", "postgresql+asyncpg://u@h/app"),
        ("sqlite:///data/paperboy.db", "sqlite+aiosqlite:///data/paperboy.db"),
        # Hosted PostgreSQL URLs carry libpq's sslmode; asyncpg calls it ssl.
        ("postgres://u:p@h/app?sslmode=require", "postgresql+asyncpg://u:p@h/app?ssl=require"),
        (
            "postgresql://u:p%40ss@h/app?sslmode=verify-full&target_session_attrs=read-write",
            "postgresql+asyncpg://u:p%40ss@h/app?ssl=verify-full&target_session_attrs=read-write",
        ),
    ],
)
def test_database_urls_are_normalised_to_async_drivers(
    monkeypatch: pytest.MonkeyPatch, given: str, expected: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", given)
    assert load_settings().database_url == expected


def test_values_come_from_dotenv(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / ".env").write_text(
        "PAPERBOY_SAVE_EMOJIS=:bookmark:, star\nPAPERBOY_DEFAULT_TZ=Asia/Tokyo\n"
    )
    settings = load_settings()
    assert settings.save_emojis == ("bookmark", "star")
    assert settings.default_tz == "Asia/Tokyo"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "mysql://u:secret@h/db"),
        ("DATABASE_URL", "postgres://u:secret@h/db?sslmode=always"),
        ("PAPERBOY_DEFAULT_TZ", "Mars/Olympus"),
        ("PAPERBOY_DEFAULT_POST_TIME", "25:00"),
        ("PAPERBOY_SAVE_EMOJIS", " , "),
        ("PAPERBOY_HF_BASE_URL", "huggingface.co"),
        ("PAPERBOY_ARXIV_API_URL", "export.arxiv.org"),
        ("PAPERBOY_LOG_LEVEL", "LOUD"),
        ("PAPERBOY_DISCORD_GUILD_IDS", "123,my-server"),
        ("PAPERBOY_LOG_FORMAT", "xml"),
        ("PAPERBOY_METRICS_PORT", "70000"),
        ("PAPERBOY_METRICS_PORT", "nine"),
    ],
)
def test_malformed_values_name_the_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"{name}: ")
    assert "\n" not in message
    assert "secret" not in message


def test_operations_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert (settings.log_format, settings.metrics_port) == ("text", None)
    monkeypatch.setenv("PAPERBOY_LOG_FORMAT", " JSON ")
    monkeypatch.setenv("PAPERBOY_METRICS_PORT", "9100")
    settings = load_settings()
    assert (settings.log_format, settings.metrics_port) == ("json", 9100)
    monkeypatch.setenv("PAPERBOY_METRICS_PORT", "off")
    assert load_settings().metrics_port is None


def test_the_arxiv_api_url_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPERBOY_ARXIV_API_URL", " http://127.0.0.1:8080 ")
    assert load_settings().arxiv_api_url == "http://127.0.0.1:8080"


def test_secrets_are_not_shown_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    settings = load_settings()
    assert "xoxb-very-secret" not in repr(settings)
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-very-secret"


def test_discord_guild_ids_are_a_list_of_snowflakes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().discord_guild_ids == ()
    monkeypatch.setenv("PAPERBOY_DISCORD_GUILD_IDS", "111, 222,333")
    assert load_settings().discord_guild_ids == (111, 222, 333)
