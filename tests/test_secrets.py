"""Secrets never reach logs, error messages or `paperboy status`: the Slack bot token, signing
secret, client secret and app token, the Discord token and the database password. Every flow
runs with the root logger at DEBUG (slack_sdk, slack_bolt, discord, httpx, sqlalchemy and
aiohttp included), through error paths too, and every captured record (formatted message,
exception text, stack) and every output is searched for each secret.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import random
import re
import subprocess
import sys
import time
import traceback
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from adapters.cli import main as cli_main
from adapters.discord.client import create_discord_bot, log_in
from adapters.slack.app import ANSWER_IN_ACK_WITHIN, create_slack_bot
from adapters.slack.pacing import SlackPacer
from adapters.slack.server import SocketMode
from config import ConfigError, Settings, load_settings
from config.redact import install_redaction, settings_secrets
from storage.store import Store
from tests.core_fixtures import NOW, stocked
from tests.discord_fixtures import discord_settings, running
from tests.fakes.discord import (
    ADMIN_PERMISSIONS,
    FakeDiscord,
    slash_command,
    subcommand,
    subcommand_group,
)
from tests.fakes.http import free_port
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import (
    FakeSlack,
    FakeSocketMode,
    sign,
    slash_command_payload,
    socket_envelope,
)
from tests.postgres import PostgresServer
from tests.slack_fixtures import SlackHarness, all_text, answer_to, serve, slack_settings

SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-4242-SECRETbottoken-9f8e7d6c",
    "SLACK_SIGNING_SECRET": "SECRETsigning0a1b2c3d4e5f60718293",
    "SLACK_CLIENT_SECRET": "SECRETclient5e6f7a8b9c0d1e2f",
    "SLACK_APP_TOKEN": "xapp-1-A1-4242-SECRETapptoken3c4d",
    "DISCORD_TOKEN": "MTEwMDAwMDAwMDAwMDAwMDAwMQ.SECRETdiscord.tokenX9y8w7",
    "database password": "SECRETdbpassw0rd",
}
DB_PASSWORD = SECRETS["database password"]
FORM = "application/x-www-form-urlencoded"
LOGGERS = ("slack_sdk", "slack_bolt", "discord", "httpx", "httpcore", "sqlalchemy", "aiohttp",
           "asyncio", "aiosqlite", "asyncpg", "uvicorn", "adapters", "bot", "storage")  # fmt: skip


@pytest.fixture
def dialect() -> str:
    """SQLite only (overrides conftest's two backends): what is logged doesn't depend on it."""
    return "sqlite"


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterable[pytest.LogCaptureFixture]:
    """Everything at DEBUG, whatever a library sets its own logger to."""
    caplog.set_level(logging.DEBUG)
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield caplog
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def record_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Each record as a handler could write it: message, exception and stack."""
    texts = []
    for record in caplog.records:
        parts = [record.getMessage(), record.stack_info or ""]
        if record.exc_text:  # what logging.Formatter writes when it is set
            parts.append(record.exc_text)
        elif record.exc_info and record.exc_info[1] is not None:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
        texts.append("\n".join(parts))
    return texts


def leaks(texts: Iterable[str]) -> dict[str, list[str]]:
    """Secret name -> the texts that show it."""
    found: dict[str, list[str]] = {}
    for text in texts:
        for name, secret in SECRETS.items():
            if secret in text:
                found.setdefault(name, []).append(text[:300])
    return found


def assert_no_secrets(caplog: pytest.LogCaptureFixture, *outputs: str, at_least: int) -> None:
    texts = record_texts(caplog)
    assert len(texts) >= at_least, f"only {len(texts)} log records: is DEBUG logging on?"
    assert leaks([*texts, *outputs]) == {}


# --- Slack ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def slack_app(
    store: Store,
    fake_slack: FakeSlack,
    fake_hf: FakeHuggingFace,
    answer_in_ack_within: float = ANSWER_IN_ACK_WITHIN,
    **settings: Any,
) -> AsyncIterator[SlackHarness]:
    async with stocked(store, fake_hf) as source:
        slack = create_slack_bot(
            slack_settings(fake_slack, fake_hf, **settings), store, source=source,
            clock=lambda: NOW, answer_in_ack_within=answer_in_ack_within,
        )  # fmt: skip
        async for http in serve(slack):
            yield SlackHarness(slack, fake_slack, http, store)


async def run_command(
    slack: SlackHarness, text: str, *, user: str = "U1", name: str | None = None
) -> Any:
    """`/papers text`, signed with the secret signing secret; its answer."""
    name = name or f"cmd{len(slack.fake.responses)}"
    body = slash_command_payload(text, user_id=user, response_url=slack.fake.response_url(name))
    response = await slack.post(
        urlencode(body), content_type=FORM, secret=SECRETS["SLACK_SIGNING_SECRET"]
    )
    assert response.status_code == 200, response.text
    return await answer_to(response, slack.fake, name)


async def test_slack_commands_and_failing_deliveries_log_no_secret(
    store: Store,
    fake_slack: FakeSlack,
    fake_hf: FakeHuggingFace,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    fake_slack.tokens[SECRETS["SLACK_BOT_TOKEN"]] = "T1"
    fake_slack.retry_after = "0"
    fake_slack.admins.add("U1")
    settings = {name: SECRETS[name] for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")}
    # Answers that wait for anything (the database, Slack) go to the response_url, as slow ones
    # do, so that a failing response_url is logged.
    async with slack_app(store, fake_slack, fake_hf, 0.0, **settings) as slack:
        slack.slack.outbound.pacer = SlackPacer(channel_interval=0)  # no 1 s between posts
        answers = [await run_command(slack, "follow diffusion")]
        # The admin check fails (a revoked token), then posts fail: 429, 500, invalid_auth.
        fake_slack.faults["users.info"] = ["invalid_auth"]
        answers.append(await run_command(slack, "channel post-now", user="U9"))
        fake_slack.faults["chat.postMessage"] = ["429", "500"]
        answers.append(await run_command(slack, "channel post-now"))
        fake_slack.faults["chat.postMessage"] = ["invalid_auth"]
        answers.append(await run_command(slack, "channel post-now"))
        # The response_url answers 500.
        fake_slack.faults["response:failing"] = ["500"]
        await run_command(slack, "following", name="failing")
        # A request signed with another secret is refused (and logged by bolt).
        body = urlencode(slash_command_payload("help"))
        refused = await slack.post(body, content_type=FORM, secret="not-the-signing-secret")
        assert refused.status_code == 401
    logged = [record.getMessage() for record in debug_logs.records]
    assert any("users.info failed for an admin check: invalid_auth" in m for m in logged)
    assert any("rate limited" in m for m in logged) and any("http_500" in m for m in logged)
    assert any("response_url answered 500" in m for m in logged)
    assert "Only workspace admins" in json.dumps(answers[1])
    assert "http_500" in json.dumps(answers[2])
    assert "I can no longer post in this channel" in json.dumps(answers[3])
    assert fake_slack.calls("chat.postMessage")[0].token == SECRETS["SLACK_BOT_TOKEN"]
    outputs = json.dumps([answers, fake_slack.responses])
    assert_no_secrets(debug_logs, outputs, at_least=200)


async def install(slack: SlackHarness, code: str) -> int:
    """The OAuth install flow as a browser runs it; the redirect's status."""
    page = await slack.http.get("/slack/install")
    assert page.status_code == 200
    state = re.search(r"state=([\w-]+)", page.text)
    assert state, page.text
    cookie = page.headers["set-cookie"].split(";")[0]
    done = await slack.http.get(
        "/slack/oauth_redirect", params={"code": code, "state": state.group(1)},
        headers={"Cookie": cookie},
    )  # fmt: skip
    return done.status_code


async def test_slack_oauth_installs_log_no_client_secret_nor_installed_token(
    store: Store,
    fake_slack: FakeSlack,
    fake_hf: FakeHuggingFace,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    """The client secret never shows. The bot token an install brings is logged at DEBUG by
    slack_sdk (the oauth.v2.access answer), SQLAlchemy and aiosqlite (the saved installation):
    the redaction the CLI installs takes it out."""
    settings = {
        "SLACK_CLIENT_ID": "111.222",
        "SLACK_CLIENT_SECRET": SECRETS["SLACK_CLIENT_SECRET"],
        "SLACK_SIGNING_SECRET": SECRETS["SLACK_SIGNING_SECRET"],
    }
    fake_slack.oauth_grants["good-code"] = "T5"
    secrets = settings_secrets(Settings(_env_file=None, **settings))  # type: ignore[call-arg]
    uninstall = install_redaction(secrets)  # as the CLI does
    try:
        async with slack_app(store, fake_slack, fake_hf, **settings) as slack:
            assert await install(slack, "expired-code") >= 400  # invalid_code
            assert await install(slack, "good-code") == 200
            body = slash_command_payload(
                "following", team_id="T5", response_url=fake_slack.response_url("t5")
            )
            response = await slack.post(
                urlencode(body), content_type=FORM, secret=SECRETS["SLACK_SIGNING_SECRET"]
            )
            assert response.status_code == 200
            assert "follow no topics" in all_text(await answer_to(response, fake_slack, "t5"))
            body["text"] = "channel off"  # asks Slack whether the caller is an admin
            response = await slack.post(
                urlencode(body), content_type=FORM, secret=SECRETS["SLACK_SIGNING_SECRET"]
            )
            assert "Only workspace admins" in all_text(await answer_to(response, fake_slack, "t5"))
    finally:
        uninstall()
    exchanges = fake_slack.calls("oauth.v2.access")
    assert [c.args["client_secret"] for c in exchanges] == [SECRETS["SLACK_CLIENT_SECRET"]] * 2
    assert fake_slack.calls("users.info")[-1].token == "xoxb-T5"  # the installed token works
    assert_no_secrets(debug_logs, json.dumps(fake_slack.responses), at_least=100)
    assert [text for text in record_texts(debug_logs) if "xoxb-T5" in text] == []
    assert any("access_token': '[redacted]'" in text for text in record_texts(debug_logs))


async def test_slack_socket_mode_logs_no_app_token(
    store: Store,
    fake_slack: FakeSlack,
    fake_hf: FakeHuggingFace,
    fake_socket_mode: FakeSocketMode,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    fake_slack.socket_url = fake_socket_mode.url
    fake_slack.tokens[SECRETS["SLACK_BOT_TOKEN"]] = "T1"
    settings = slack_settings(fake_slack, fake_hf, SLACK_BOT_TOKEN=SECRETS["SLACK_BOT_TOKEN"],
                              SLACK_APP_TOKEN=SECRETS["SLACK_APP_TOKEN"])  # fmt: skip
    settings = settings.model_copy(update={"slack_signing_secret": None})
    slack = create_slack_bot(settings, store, source=None, socket_mode=True)
    socket = SocketMode(slack.app, SECRETS["SLACK_APP_TOKEN"])
    try:
        await socket.connect()
        await fake_socket_mode.wait_connected(timeout=10)
        payload = slash_command_payload("help", response_url=fake_slack.response_url("sm"))
        fake_socket_mode.send_envelope(socket_envelope("slash_commands", payload))
        ack = await fake_socket_mode.wait_for_ack("e1", timeout=10)
        assert "paperboy" in all_text(ack["payload"])
        fake_socket_mode.send_disconnect()  # Slack's periodic refresh: open a new connection
        await fake_socket_mode.wait_connected(2, timeout=10)
    finally:
        await socket.close()
    opened = fake_slack.calls("apps.connections.open")
    assert len(opened) >= 2 and opened[0].token == SECRETS["SLACK_APP_TOKEN"]
    assert_no_secrets(debug_logs, at_least=20)


# --- Discord ----------------------------------------------------------------------------------


async def test_discord_login_failure_names_the_variable_not_the_token(
    store: Store, fake_hf: FakeHuggingFace, debug_logs: pytest.LogCaptureFixture
) -> None:
    async with FakeDiscord(token="the-real-token") as fake:
        settings = discord_settings(fake, fake_hf, DISCORD_TOKEN=SECRETS["DISCORD_TOKEN"])
        discord_bot = create_discord_bot(settings, store, source=None)
        with pytest.raises(ConfigError) as caught:
            await log_in(discord_bot)
        await discord_bot.client.close()
    assert str(caught.value) == "DISCORD_TOKEN: Discord rejected this token"
    assert fake.calls and fake.calls[0].status == 401
    error_text = "".join(traceback.format_exception(caught.value))
    assert_no_secrets(debug_logs, error_text, repr(caught.value), at_least=1)


async def test_discord_commands_and_http_errors_log_no_token(
    store: Store, fake_hf: FakeHuggingFace, debug_logs: pytest.LogCaptureFixture
) -> None:
    token = SECRETS["DISCORD_TOKEN"]
    async with FakeDiscord(token=token) as fake, stocked(store, fake_hf) as source:
        settings = discord_settings(fake, fake_hf, DISCORD_TOKEN=token)
        discord_bot = create_discord_bot(
            settings, store, source=source, clock=lambda: NOW, guild_ready_timeout=0.05
        )
        answers, interaction_tokens = [], []
        uninstall = install_redaction(SECRETS.values())  # as the CLI does
        try:
            async with running(discord_bot, store):
                # Posting fails: a 401, a 403, then a 500 (retried: the post goes out).
                for status, body in [
                    (401, {"message": "401: Unauthorized", "code": 0}),
                    (403, {"message": "Missing Access", "code": 50001}),
                    (500, None),
                ]:
                    fake.fail_next("POST", r"/channels/\d+/messages", status, body)
                    payload = slash_command(
                        "papers",
                        [subcommand_group("channel", subcommand("post-now"))],
                        permissions=ADMIN_PERMISSIONS,
                    )
                    interaction_tokens.append(payload["token"])
                    await fake.interact(payload)
                    answers.append(await fake.wait_for_response(payload, timeout=10))
        finally:
            uninstall()
    texts = json.dumps([answer.json for answer in answers])
    assert "Posting failed for now (rejected" in texts, texts  # the 401
    assert "I was removed from this channel: its daily post is now off." in texts, texts  # 403
    assert "Posted 4 papers" in texts, texts  # the 500, retried
    assert fake.identifies[0]["token"] == token
    bot_calls = [c for c in fake.calls if not c.path.startswith(("/interactions/", "/webhooks/"))]
    assert {c.headers.get("authorization") for c in bot_calls} == {f"Bot {token}"}
    assert_no_secrets(debug_logs, texts, at_least=100)
    # discord.py logs the callback URLs, which hold the interactions' tokens.
    logged = record_texts(debug_logs)
    assert any("/interactions/" in text and "[redacted]" in text for text in logged)
    assert [t for t in logged if any(token in t for token in interaction_tokens)] == []


# --- the database -----------------------------------------------------------------------------


async def test_an_unreachable_database_fails_without_showing_its_password(
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    url = f"postgresql+asyncpg://paperboy:{DB_PASSWORD}@127.0.0.1:{free_port()}/paperboy"
    with pytest.raises(OSError) as caught:
        await Store.open(url)
    error_text = "".join(traceback.format_exception(caught.value))
    assert "Connect call failed" in error_text
    assert_no_secrets(debug_logs, error_text, repr(caught.value), str(caught.value), at_least=1)


# --- settings ---------------------------------------------------------------------------------


def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **values: str) -> None:
    """Every secret set, plus `values`; no stray .env."""
    monkeypatch.chdir(tmp_path)
    for name, secret in SECRETS.items():
        if name.isupper():
            monkeypatch.setenv(name, secret)
    monkeypatch.setenv("SLACK_CLIENT_ID", "111.222")
    monkeypatch.setenv("DATABASE_URL", f"postgres://paperboy:{DB_PASSWORD}@db.example/paperboy")
    for name, value in values.items():
        monkeypatch.setenv(name, value)


BAD_VALUES = [
    ("DATABASE_URL", f"mysql://paperboy:{DB_PASSWORD}@db.example/paperboy"),
    ("DATABASE_URL", f"postgres://paperboy:{DB_PASSWORD}@db.example:notaport/paperboy"),
    ("DATABASE_URL", f"postgres://paperboy:{DB_PASSWORD}@db.example:99999/paperboy"),
    ("DATABASE_URL", f"postgres://paperboy:{DB_PASSWORD}@[::1/paperboy"),
    ("PORT", SECRETS["SLACK_BOT_TOKEN"]),  # a secret pasted into the wrong variable
    ("PAPERBOY_LOG_LEVEL", SECRETS["DISCORD_TOKEN"]),
    ("PAPERBOY_DEFAULT_TZ", SECRETS["SLACK_SIGNING_SECRET"]),
    ("PAPERBOY_DISCORD_GUILD_IDS", SECRETS["SLACK_APP_TOKEN"]),
    ("PAPERBOY_SLACK_API_URL", SECRETS["SLACK_CLIENT_SECRET"]),
    ("PAPERBOY_SAVE_EMOJIS", ","),
]


@pytest.mark.parametrize(
    ("name", "value"), BAD_VALUES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD_VALUES)]
)
def test_a_bad_setting_stops_start_up_naming_it_but_showing_no_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str
) -> None:
    environment(monkeypatch, tmp_path, **{name: value})
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"{name}: ") and "\n" not in message
    assert leaks([message, repr(caught.value)]) == {}


def test_settings_secrets_lists_every_secret_for_redaction(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    environment(monkeypatch, tmp_path)
    settings = load_settings()
    assert sorted(settings_secrets(settings)) == sorted(SECRETS.values())
    assert leaks([repr(settings), str(settings)]) == {}


# --- the redaction the CLI installs -----------------------------------------------------------


def test_redaction_covers_messages_arguments_exceptions_and_stacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # a real handler and formatter, as in production
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("tests.secrets.library")
    log.addHandler(handler)
    uninstall = install_redaction(SECRETS.values())
    try:
        log.debug("token %s and %r", SECRETS["SLACK_BOT_TOKEN"], {"t": SECRETS["DISCORD_TOKEN"]})
        log.info(
            "installed xoxb-77-installed-token, xoxe.xoxp-1-refresh, %s", SECRETS["SLACK_APP_TOKEN"]
        )
        log.info("connecting to postgresql+asyncpg://paperboy:other-password@db/paperboy")
        try:
            raise RuntimeError(f"signature check with {SECRETS['SLACK_SIGNING_SECRET']} failed")
        except RuntimeError:
            log.exception("client secret %s", SECRETS["SLACK_CLIENT_SECRET"], stack_info=True)
        log.warning("password %s in plain sight", DB_PASSWORD)
        log.debug(
            "POST https://discord.com/api/v10/interactions/1/%s/callback has returned 204",
            "aW50ZXJhY3Rpb246MTIzOjk4NzY1:interaction-secret",
        )
        log.debug("Sending a request - url: https://hooks.slack.com/commands/T1/42/hook-secret")
        log.debug("POST /webhooks/1/%s/messages/@original has returned 200", REAL_SHAPED_TOKEN)
    finally:
        uninstall()
        log.removeHandler(handler)
    log.info("after uninstall: %s", SECRETS["SLACK_BOT_TOKEN"])
    written = stream.getvalue()
    assert leaks([written]) == {}
    assert leaks(record_texts(caplog)[:-1]) == {}
    for text in ("installed-token", "refresh", "other-password", "interaction-secret",
                 "hook-secret", REAL_SHAPED_TOKEN[16:]):  # fmt: skip
        assert text not in written
    assert written.count("[redacted]") >= 11, written
    assert "interactions/1/[redacted]/callback" in written
    assert "https://hooks.slack.com/commands/[redacted]" in written
    assert "RuntimeError: signature check with [redacted] failed" in written
    assert "postgresql+asyncpg://paperboy:[redacted]@db/paperboy" in written
    assert SECRETS["SLACK_BOT_TOKEN"] in caplog.records[-1].getMessage()  # uninstalled


# An interaction token as Discord issues them: "interaction:<snowflake>:<secret>", in base64
# (URL-safe: it travels in URL paths).
REAL_SHAPED_TOKEN = base64.urlsafe_b64encode(
    b"interaction:1313131313131313131:" + bytes(random.Random(7).choices(range(33, 127), k=96))
).decode()


# --- the CLI ----------------------------------------------------------------------------------


def test_paperboy_serve_at_debug_writes_no_secret_nor_installed_token(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """The real process: `paperboy serve` with every secret set, logging at DEBUG, installs
    into a workspace over OAuth, answers a command and refuses a badly signed one; its whole
    output holds no secret, not even the bot token the install brought."""
    fake_slack.oauth_grants["good-code"] = "T5"
    port = free_port()
    ours = ("SLACK_", "DISCORD_", "PAPERBOY_", "DATABASE_URL")
    env = {name: value for name, value in os.environ.items() if not name.startswith(ours)}
    env |= {name: value for name, value in SECRETS.items() if name.isupper()}
    env |= {
        "SLACK_CLIENT_ID": "111.222",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
        "PAPERBOY_LOG_LEVEL": "DEBUG",
        "PAPERBOY_HF_BASE_URL": "http://127.0.0.1:9",
        "PAPERBOY_SLACK_API_URL": fake_slack.api_url,
        "PAPERBOY_HOST": "127.0.0.1",
        "PORT": str(port),
    }
    output = tmp_path / "output.log"  # a file, not a pipe: DEBUG output would fill a pipe
    with output.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", "serve"], env=env, cwd=tmp_path,
            stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    http.get("/healthz")
                    break
                except httpx.TransportError:
                    assert process.poll() is None, output.read_text()
                    assert time.monotonic() < deadline, "server did not start"
                    time.sleep(0.05)
            page = http.get("/slack/install")
            state = re.search(r"state=([\w-]+)", page.text)
            assert state, page.text
            cookie = page.headers["set-cookie"].split(";")[0]
            done = http.get("/slack/oauth_redirect", headers={"Cookie": cookie},
                            params={"code": "good-code", "state": state.group(1)})  # fmt: skip
            assert done.status_code == 200, done.text
            body = urlencode(slash_command_payload(
                "help", team_id="T5", response_url=fake_slack.response_url("t5")))  # fmt: skip
            for secret, status in [(SECRETS["SLACK_SIGNING_SECRET"], 200), ("wrong", 401)]:
                headers = {"Content-Type": FORM, **sign(secret, body)}
                response = http.post("/slack/events", content=body, headers=headers)
                assert response.status_code == status
                assert ("paperboy" in response.text) == (status == 200)  # the answer
            # A channel change asks Slack whether the caller is an admin, with T5's token.
            body = urlencode(slash_command_payload("channel off", team_id="T5"))
            headers = {"Content-Type": FORM, **sign(SECRETS["SLACK_SIGNING_SECRET"], body)}
            response = http.post("/slack/events", content=body, headers=headers)
            assert "Only workspace admins" in response.text
    finally:
        process.terminate()
        process.wait(timeout=30)
    written = output.read_text()
    assert fake_slack.calls("users.info")[-1].token == "xoxb-T5"
    assert " DEBUG slack_sdk" in written and "oauth.v2.access" in written  # the libraries logged
    assert leaks([written]) == {}
    assert "xoxb-T5" not in written
    assert "webhook-secret" not in written  # the install's incoming webhook posts as the app
    assert "good-code" not in written  # the one-time OAuth code


@pytest.fixture
def cli_logging() -> Iterable[None]:
    """Undo what `main()` does to process-wide logging (the record factory, logger levels)."""
    factory = logging.getLogRecordFactory()
    levels = {name: logging.getLogger(name).level for name in ("alembic", "apscheduler")}
    yield
    logging.setLogRecordFactory(factory)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_cli_status_of_an_unreachable_database_shows_no_secret(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    debug_logs: pytest.LogCaptureFixture,
    cli_logging: None,
) -> None:
    """`paperboy status` (in-process: main() as the console script runs it) with every secret
    set and the database on a closed port: one line, no traceback, no secret."""
    unreachable = f"postgres://paperboy:{DB_PASSWORD}@127.0.0.1:{free_port()}/paperboy"
    environment(monkeypatch, tmp_path, DATABASE_URL=unreachable, PAPERBOY_LOG_LEVEL="DEBUG")
    assert cli_main(["status"]) == 1
    printed = capsys.readouterr()
    assert printed.err.startswith(
        "paperboy status: database unavailable or not migrated (ConnectionRefusedError)"
    ), printed.err
    assert_no_secrets(debug_logs, printed.out, printed.err, at_least=3)


def test_cli_configuration_error_names_the_variable_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `paperboy` prints and returns for a bad setting, with every secret set; it stops
    before logging is set up, so it runs in-process."""
    environment(monkeypatch, tmp_path, PORT=SECRETS["DISCORD_TOKEN"])
    assert cli_main(["status"]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err == "paperboy: configuration error: PORT: Input should be a valid integer, "\
        "unable to parse string as an integer\n"  # fmt: skip
    assert leaks([printed.err]) == {}


def test_cli_status_at_debug_masks_the_password_and_redacts_secrets(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    debug_logs: pytest.LogCaptureFixture,
    cli_logging: None,
    postgres_server: PostgresServer,
) -> None:
    """Beyond tests/test_status.py: at DEBUG, with every secret set; and what main() leaves
    behind redacts the configured secrets from any later log record."""
    with postgres_server.database() as url:
        url = url.replace("@", f":{DB_PASSWORD}@", 1)  # the test server trusts local users
        environment(monkeypatch, tmp_path, DATABASE_URL=url, PAPERBOY_LOG_LEVEL="DEBUG")
        assert cli_main(["db", "upgrade"]) == 0
        assert cli_main(["status"]) == 0
    printed = capsys.readouterr()
    assert ":***@" in printed.out and "Next slots (0 of 0)" in printed.out
    assert_no_secrets(debug_logs, printed.out, printed.err, at_least=20)
    logging.getLogger("some.library").debug("sent %s", SECRETS)
    assert leaks([debug_logs.records[-1].getMessage()]) == {}
    assert debug_logs.records[-1].getMessage().count("[redacted]") == len(SECRETS)
