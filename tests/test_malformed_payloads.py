"""Malformed platform payloads: each gets a 4xx or is ignored with a log line, and the bot keeps
serving. Slack: correctly signed (so they reach parsing) slash commands, events and button
clicks with missing fields, wrong types and bodies that are not what their content type says,
plus oversized bodies, through the real bolt app over HTTP (and the real `paperboy serve`).
Discord: malformed INTERACTION_CREATE and reaction events from the fake gateway to the real
discord.py client. After every bad payload a good `/papers help` is still answered.

These tests don't depend on the database backend, so they run on SQLite only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

import adapters.http
import adapters.slack.server
from adapters.slack.server import MAX_BODY_BYTES
from tests.discord_fixtures import DiscordHarness
from tests.fakes.discord import (
    CHANNEL_ID,
    option,
    reaction_add,
    reaction_remove,
    slash_command,
    subcommand,
    subcommand_group,
)
from tests.fakes.discord import component as click
from tests.fakes.http import free_port
from tests.fakes.slack import (
    BOT_TOKEN,
    FakeSlack,
    block_action_payload,
    event_payload,
    reaction_event,
    sign,
    slash_command_payload,
)
from tests.slack_fixtures import SIGNING_SECRET, SlackHarness

FORM = "application/x-www-form-urlencoded"
EVENT_IDS = itertools.count(1)
JSON = "application/json"


@pytest.fixture
def dialect() -> str:
    """SQLite only (overrides the two-backend fixture of conftest.py)."""
    return "sqlite"


async def logged(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 5.0) -> str:
    """The first log message containing `text`, waiting for it (listeners run after the ack)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r.getMessage() for r in caplog.records if text in r.getMessage()]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no log line with {text!r}"
        await asyncio.sleep(0.01)


# --- Slack ------------------------------------------------------------------------------------

RESPONSE = "bad"  # the response_url name malformed commands carry: nothing may arrive there
Case = tuple[Callable[[FakeSlack], str], str]  # (the body for the fake Slack, content type)


def command_form(drop: str = "", **changes: str) -> Case:
    def build(fake: FakeSlack) -> str:
        url = fake.response_url(RESPONSE)
        payload = slash_command_payload("follow diffusion", response_url=url)
        payload.pop(drop, None)
        return urlencode(payload | changes)

    return build, FORM


def command_json(**changes: Any) -> Case:
    """A command whose fields have the wrong types (only JSON can carry those)."""

    def build(fake: FakeSlack) -> str:
        payload: dict[str, Any] = slash_command_payload(
            "follow diffusion", response_url=fake.response_url(RESPONSE)
        )
        return json.dumps(payload | changes)

    return build, JSON


def event_json(event: Any = None, *, drop: str = "", raw: str | None = None) -> Case:
    envelope = event_payload(event if event is not None else {}, event_id=f"Ev{next(EVENT_IDS)}")
    envelope.pop(drop, None)
    return (lambda fake: raw if raw is not None else json.dumps(envelope)), JSON


def reaction(**item_or_user: Any) -> Case:
    event = reaction_event("reaction_added", user="U1", reaction="bookmark", channel="C1",
                           ts="1700000000.000100")  # fmt: skip
    for key, value in item_or_user.items():
        if value is None:
            event.pop(key)
        else:
            event[key] = value
    return event_json(event)


def click_form(payload: str | None = None, **changes: Any) -> Case:
    action = block_action_payload("paperboy_share", "today") | changes
    for key in [key for key, value in changes.items() if value is None]:
        action.pop(key)
    return (lambda fake: urlencode({"payload": payload or json.dumps(action)})), FORM


IGNORED = "ignoring a Slack"
UNHANDLED = "Unhandled request"
REFUSED = "refused a malformed Slack request"
# Grouped so that each group shares one app (starting one per case would be slow).
SLACK_CASES: dict[str, dict[str, tuple[Case, int, str]]] = {}
SLACK_CASES["commands"] = {
    # A slash command that can't be answered is acknowledged and dropped.
    "command without team_id": (command_form("team_id"), 200, IGNORED),
    "command without user_id": (command_form("user_id"), 200, IGNORED),
    "command without channel_id": (command_form("channel_id"), 200, IGNORED),
    "command without response_url": (command_form("response_url"), 200, IGNORED),
    "command with empty user_id": (command_form(user_id=""), 200, IGNORED),
    "command with a numeric user_id": (command_json(user_id=42), 200, IGNORED),
    "command with a list channel_id": (command_json(channel_id=["C1"]), 200, IGNORED),
    "command with an object response_url": (command_json(response_url={"u": 1}), 200, IGNORED),
    "command without command": (command_form("command"), 404, UNHANDLED),
    "unknown command": (command_form(command="/frobnicate"), 404, UNHANDLED),
}
SLACK_CASES["events"] = {
    "event_callback without event": (event_json(drop="event"), 404, UNHANDLED),
    "unknown event type": (event_json({"type": "brand_new_event", "x": 1}), 404, UNHANDLED),
    "event that is a string": (event_json("reaction_added"), 400, REFUSED),
    "event that is a list": (event_json([{"type": "reaction_added"}]), 400, REFUSED),
    "reaction_added without item": (reaction(item=None), 200, IGNORED),
    "reaction_added without user": (reaction(user=None), 200, IGNORED),
    "reaction_added item is a list": (reaction(item=["message", "C1"]), 200, IGNORED),
    "reaction_added item is a string": (reaction(item="C1/1700000000.000100"), 200, IGNORED),
    "reaction_added item is a number": (reaction(item=17), 200, IGNORED),
    "not JSON with a JSON content type": (event_json(raw='{"type": "event'), 400, REFUSED),
    "a JSON array": (event_json(raw='[{"type": "event_callback"}]'), 400, REFUSED),
    "a JSON string": (event_json(raw='"event_callback"'), 400, REFUSED),
    "empty JSON body": (event_json(raw=""), 404, UNHANDLED),
}
SLACK_CASES["clicks and empty bodies"] = {
    # Button clicks: block_actions in `payload=`.
    "payload that is not JSON": (click_form("{'type': 'block_actions'"), 400, REFUSED),
    "payload that is a JSON array": (click_form('[{"type": "block_actions"}]'), 400, REFUSED),
    "block_actions without actions": (click_form(actions=None), 404, UNHANDLED),
    "actions that is a string": (click_form(actions="paperboy_share"), 400, REFUSED),
    "actions that hold strings": (click_form(actions=["paperboy_share"]), 400, REFUSED),
    "unknown action_id": (click_form(actions=[{"action_id": "x", "value": "y"}]), 404, UNHANDLED),
    # Empty form body.
    "empty form body": (((lambda fake: ""), FORM), 404, UNHANDLED),
}


async def assert_still_serving(slack: SlackHarness) -> None:
    """A good signed command is answered and the health check passes."""
    answer = await slack.command("help")
    assert "paperboy" in json.dumps(answer)
    health = await slack.http.get("/healthz")
    assert health.status_code == 200 and health.text == "ok"


@pytest.mark.parametrize("group", SLACK_CASES)
async def test_malformed_slack_requests_are_refused_or_ignored(
    slack_harness: SlackHarness, caplog: pytest.LogCaptureFixture, group: str
) -> None:
    caplog.set_level(logging.INFO)
    for name, ((build, content_type), status, log_text) in SLACK_CASES[group].items():
        caplog.clear()
        response = await slack_harness.post(build(slack_harness.fake), content_type=content_type)
        assert response.status_code == status, (name, response.text)
        await logged(caplog, log_text)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, (name, errors)
        await assert_still_serving(slack_harness)
        # Nothing was done for the bad request: no answer, no post, no follow stored.
        assert slack_harness.fake.responses_to(RESPONSE) == [], name
        assert slack_harness.posted() == [], name
        assert "follow no topics" in json.dumps(await slack_harness.command("following")), name


async def test_url_verification_is_answered_with_the_challenge(slack_harness: SlackHarness) -> None:
    body = json.dumps({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWM", "type":
                       "url_verification"})  # fmt: skip
    response = await slack_harness.post(body, content_type=JSON)
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWM"}
    await assert_still_serving(slack_harness)


def raw_signature(body: bytes, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """Slack's signature over raw bytes (`sign()` takes text, so can't sign invalid UTF-8)."""
    timestamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest.hexdigest()}"}


async def test_a_body_that_is_not_utf8_gets_400(
    slack_harness: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    body = b"command=/papers&text=\xff\xfe&user_id=U1"
    response = await slack_harness.http.post(
        "/slack/events", content=body, headers={"Content-Type": FORM, **raw_signature(body)}
    )
    assert response.status_code == 400
    assert "UnicodeDecodeError" in await logged(caplog, REFUSED)
    await assert_still_serving(slack_harness)


async def chunks(size: int, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    """`size` bytes of a form body, streamed (httpx sends them chunked, without a length)."""
    sent = 0
    while sent < size:
        piece = min(chunk, size - sent)
        sent += piece
        yield b"a" * piece


# Signature headers of the right form (not the right value): enough to have the body read.
WELL_FORMED = {"X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": "v0=" + "0" * 64}


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
async def test_an_oversized_body_gets_413_unread(
    slack_harness: SlackHarness, caplog: pytest.LogCaptureFixture, signed: bool
) -> None:
    body = "text=" + "a" * (8 * 1024 * 1024)  # 8 MiB: Slack's own requests are a few KB
    headers = {"Content-Type": FORM, **(sign(SIGNING_SECRET, body) if signed else WELL_FORMED)}
    response = await slack_harness.http.post("/slack/events", content=body, headers=headers)
    assert response.status_code == 413
    assert str(MAX_BODY_BYTES) in await logged(caplog, "refused a Slack request body over")
    await assert_still_serving(slack_harness)


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=" + "0" * 64},
     {"X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": "sha256=nope"},
     {"X-Slack-Request-Timestamp": "1700000000"}],
    ids=["none", "timestamp not a number", "signature of another form", "no signature"],
)  # fmt: skip
async def test_a_request_without_well_formed_signature_headers_gets_401_unread(
    slack_harness: SlackHarness, caplog: pytest.LogCaptureFixture, headers: dict[str, str]
) -> None:
    response = await slack_harness.http.post(
        "/slack/events",
        content=chunks(3 * MAX_BODY_BYTES),
        headers={"Content-Type": FORM, **headers},
    )
    assert response.status_code == 401
    await logged(caplog, "refused a Slack request without well-formed signature headers")
    await assert_still_serving(slack_harness)


async def test_a_signed_button_click_whose_user_is_not_an_object_gets_400(
    slack_harness: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    payload = {"type": "block_actions", "user": "U1", "team": {"id": "T1"},
               "actions": [{"action_id": "share", "value": "today"}]}  # fmt: skip
    body = urlencode({"payload": json.dumps(payload)})
    response = await slack_harness.post(body, content_type=FORM)
    assert response.status_code == 400
    assert "user is not an object" in await logged(caplog, "refused a malformed Slack request")
    await assert_still_serving(slack_harness)


async def test_a_streamed_body_without_length_is_cut_off_at_the_cap(
    slack_harness: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    response = await slack_harness.http.post(
        "/slack/events",
        content=chunks(3 * MAX_BODY_BYTES),
        headers={"Content-Type": FORM, **WELL_FORMED},
    )
    assert response.status_code == 413
    await logged(caplog, "refused a Slack request body over")
    await assert_still_serving(slack_harness)


async def test_a_body_just_under_the_cap_still_reaches_the_signature_check(
    slack_harness: SlackHarness,
) -> None:
    body = "text=" + "a" * (MAX_BODY_BYTES - 10)
    unsigned = await slack_harness.http.post(
        "/slack/events", content=body, headers={"Content-Type": FORM}
    )
    assert unsigned.status_code == 401
    signed = await slack_harness.post(body, content_type=FORM)
    assert signed.status_code == 404  # signed, read whole, but no command: unhandled
    await assert_still_serving(slack_harness)


async def stall(slack: SlackHarness, head: bytes, *, trickle: bool = False) -> bytes:
    """Open a connection to the server, send `head` (part of a request), then nothing (with
    `trickle`, a byte every 50 ms): all the server sent before it ended the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", slack.http.base_url.port)
    reading = asyncio.ensure_future(reader.read())  # to the end: the server's close
    try:
        writer.write(head)
        for _ in range(1200):  # a minute at most
            done, _ = await asyncio.wait([reading], timeout=0.05)
            if done:
                return reading.result()
            if trickle:
                writer.write(b"a")
        raise AssertionError("the server kept the connection open")
    finally:
        reading.cancel()
        writer.close()


def post_head(length: int, headers: dict[str, str]) -> bytes:
    lines = ["POST /slack/events HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}",
             f"Content-Type: {FORM}", *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("headers", "status"), [({}, 401), (WELL_FORMED, 413)], ids=["unsigned", "oversized"]
)
async def test_a_refused_request_whose_body_stalls_has_its_connection_closed(
    slack_harness: SlackHarness, headers: dict[str, str], status: int
) -> None:
    # 1 MiB declared, 100 KB sent, then a trickle: answered unread, and not kept open after.
    head = post_head(1 << 20, headers) + b"a" * 100_000
    answer = await stall(slack_harness, head, trickle=True)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:100]
    await assert_still_serving(slack_harness)


async def test_a_stalled_body_under_the_cap_gets_408_and_its_connection_closed(
    slack_harness: SlackHarness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adapters.slack.server, "BODY_SECONDS", 0.2)
    answer = await stall(slack_harness, post_head(100_000, WELL_FORMED) + b"a" * 50_000)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    await logged(caplog, "refused a Slack request whose body took over")
    await assert_still_serving(slack_harness)


async def test_bodies_past_what_may_arrive_at_once_get_503_unread(
    slack_harness: SlackHarness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adapters.slack.server, "BODIES_AT_ONCE", 150_000)
    monkeypatch.setattr(adapters.slack.server, "BODY_SECONDS", 2.0)
    # One stalled body holds 100 KB of the 150 KB; the next declares 100 KB more.
    holding = asyncio.ensure_future(stall(slack_harness, post_head(100_000, WELL_FORMED)))
    await asyncio.sleep(0.3)
    answer = await stall(slack_harness, post_head(100_000, WELL_FORMED) + b"a" * 1000)
    assert answer.startswith(b"HTTP/1.1 503 "), answer[:100]
    await logged(caplog, "bytes of bodies already arriving")
    assert (await holding).startswith(b"HTTP/1.1 408 ")  # and its share is free again
    await assert_still_serving(slack_harness)


async def test_a_connection_whose_request_headers_stall_is_closed(
    slack_harness: SlackHarness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adapters.http, "REQUEST_SECONDS", 0.2)
    assert await stall(slack_harness, b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n") == b""
    assert await stall(slack_harness, b"") == b""  # opened, and nothing sent
    await logged(caplog, "closed a connection whose request took over")
    await assert_still_serving(slack_harness)


# --- the real `paperboy serve` ----------------------------------------------------------------


@pytest.fixture
def serve_process(
    tmp_path: Path, fake_slack: FakeSlack
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """`paperboy serve` (single workspace, the fake Slack); its base URL, output file and
    process."""
    port = free_port()
    ours = ("SLACK_", "DISCORD_", "PAPERBOY_", "DATABASE_URL")
    env = {name: value for name, value in os.environ.items() if not name.startswith(ours)}
    env |= {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
        "PAPERBOY_HF_BASE_URL": "http://127.0.0.1:9",
        "PAPERBOY_SLACK_API_URL": fake_slack.api_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "PAPERBOY_HOST": "127.0.0.1",
        "PORT": str(port),
    }
    output = tmp_path / "output.log"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", "serve"], env=env, cwd=tmp_path,
            stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, output.read_text()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)
        yield base, output, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_paperboy_serve_survives_malformed_and_oversized_requests(
    serve_process: tuple[str, Path, subprocess.Popen[bytes]], fake_slack: FakeSlack
) -> None:
    base, output, process = serve_process

    def send(body: str | bytes, content_type: str, *, signed: bool = True) -> httpx.Response:
        raw = body.encode() if isinstance(body, str) else body
        headers = {"Content-Type": content_type, **(raw_signature(raw) if signed else {})}
        return httpx.post(f"{base}/slack/events", content=raw, headers=headers, timeout=30)

    def post(body: str | bytes, content_type: str, *, signed: bool = True) -> int:
        return send(body, content_type, signed=signed).status_code

    assert post('{"type": "event_callback",', JSON) == 400
    assert post(json.dumps(event_payload("reaction_added")), JSON) == 400  # type: ignore[arg-type]
    assert post(urlencode({"payload": "[1]"}), FORM) == 400
    assert post(b"text=\xff", FORM) == 400
    assert post("text=" + "a" * (5 * MAX_BODY_BYTES), FORM) == 413
    assert post("text=" + "a" * (5 * MAX_BODY_BYTES), FORM, signed=False) == 401
    assert post("", FORM) == 404
    command = slash_command_payload("help", response_url=fake_slack.response_url("ok"))
    answer = send(urlencode(command), FORM)
    assert answer.status_code == 200 and "paperboy" in answer.text
    assert httpx.get(f"{base}/healthz", timeout=5).text == "ok"
    written = output.read_text()
    assert written.count("refused a malformed Slack request") == 4, written
    assert "refused a Slack request body over" in written
    assert "Exception in ASGI application" not in written and "listener failed" not in written
    # Still up after every request; stopped as a process manager does, it exits quietly.
    assert process.poll() is None, written
    process.terminate()
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    written = output.read_text()
    assert "Traceback" not in written and "ERROR" not in written
    assert "will be unused" not in written  # bolt's warning about the same token, twice given


# --- Discord ----------------------------------------------------------------------------------


def without(payload: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if key not in keys}


def papers(*options: dict[str, Any]) -> dict[str, Any]:
    return slash_command("papers", list(options))


DROPPED = "dropped a malformed Discord"
SORRY = "something went wrong"


@dataclass(frozen=True)
class GatewayCase:
    event: str  # the dispatch event name
    build: Callable[[dict[str, Any]], dict[str, Any]]  # its data, given a stored bot message
    answer: str | None = None  # in the bot's answer to the interaction; None: no answer
    log: str | None = None  # in a log line the product writes about it


def channel_on(*options: dict[str, Any]) -> dict[str, Any]:
    return papers(subcommand_group("channel", subcommand("on", *options)))


def reaction_to(message: dict[str, Any], *drop: str, **changes: str) -> dict[str, Any]:
    return without(reaction_add(message_id=int(message["id"])), *drop) | changes


INTERACTION = "INTERACTION_CREATE"
REACTION = "MESSAGE_REACTION_ADD"
# Grouped so that each group shares one client (starting one per case would be slow).
DISCORD_CASES: dict[str, dict[str, GatewayCase]] = {}
DISCORD_CASES["interactions"] = {
    "unknown command name": GatewayCase(
        INTERACTION, lambda m: slash_command("frobnicate"), SORRY, "CommandNotFound"
    ),
    "unknown subcommand": GatewayCase(
        INTERACTION, lambda m: papers(subcommand("nope")), SORRY, "CommandNotFound"
    ),
    "missing subcommand": GatewayCase(
        INTERACTION, lambda m: papers(), SORRY, "CommandSignatureMismatch"
    ),
    "missing required option": GatewayCase(
        INTERACTION, lambda m: papers(subcommand("topic")), SORRY, "CommandSignatureMismatch"
    ),
    "string for an integer option": GatewayCase(
        INTERACTION, lambda m: channel_on(option("count", "five", type=4)), "Usage"
    ),
    "integer for a string option": GatewayCase(
        INTERACTION, lambda m: papers(subcommand("topic", option("words", 5))), "No papers"
    ),
    "interaction without type": GatewayCase(
        INTERACTION, lambda m: without(papers(subcommand("help")), "type"), log=DROPPED
    ),
    "interaction without data": GatewayCase(
        INTERACTION, lambda m: without(papers(subcommand("help")), "data")
    ),
    "unknown component custom_id": GatewayCase(
        INTERACTION, lambda m: click("x:1", message=m), "no longer works", "unknown Discord button"
    ),
}
DISCORD_CASES["other events"] = {
    "reaction without user_id": GatewayCase(
        REACTION, lambda m: reaction_to(m, "user_id"), log=DROPPED
    ),
    "reaction without emoji": GatewayCase(REACTION, lambda m: reaction_to(m, "emoji"), log=DROPPED),
    "reaction with a non-numeric channel_id": GatewayCase(
        REACTION, lambda m: reaction_to(m, channel_id="general"), log=DROPPED
    ),
    "reaction removal without message_id": GatewayCase(
        "MESSAGE_REACTION_REMOVE",
        lambda m: without(reaction_remove(message_id=int(m["id"])), "message_id"),
        log=DROPPED,
    ),
    "reaction on an unknown message": GatewayCase(
        REACTION, lambda m: reaction_add(message_id=424242)
    ),
    "unknown event type": GatewayCase("BRAND_NEW_EVENT", lambda m: {"anything": [1, 2]}),
}


@pytest.mark.parametrize("group", DISCORD_CASES)
async def test_malformed_discord_events_keep_the_client_connected(
    discord_harness: DiscordHarness, caplog: pytest.LogCaptureFixture, group: str
) -> None:
    caplog.set_level(logging.INFO)
    fake = discord_harness.fake
    message = fake.add_message(CHANNEL_ID, "an earlier post")
    for name, case in DISCORD_CASES[group].items():
        caplog.clear()
        payload = case.build(message)
        start = len(fake.calls)
        await fake.dispatch(case.event, payload)
        if case.answer is not None:
            reply = await fake.wait_for_response(payload)
            assert case.answer.lower() in json.dumps(reply.json).lower(), (name, reply.json)
        if case.log is not None:
            await logged(caplog, case.log)
        # A good command afterwards is answered on the same gateway session.
        help_answer = await discord_harness.command("help")
        assert "paperboy" in json.dumps(help_answer.json), name
        assert not discord_harness.discord.client.is_closed(), name
        assert len(fake.identifies) == 1 and len(fake.live_sessions()) == 1, name
        sent = [c for c in fake.calls[start:] if c.method in ("POST", "PATCH", "PUT")]
        expected = 2 if case.answer is not None else 1  # the answer (if any), then help's
        assert len(sent) == expected, (name, [(c.method, c.path) for c in sent])
