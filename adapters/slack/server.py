"""HTTP and Socket Mode transports for the Slack app."""

from __future__ import annotations

import asyncio
import logging
import re

from slack_bolt.adapter.asgi.async_handler import AsyncSlackRequestHandler
from slack_bolt.adapter.asgi.http_response import AsgiHttpResponse
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.connection import ConnectionChanges
from adapters.http import ASGIApp, Receive, Scope, Send, respond
from adapters.slack.startup import UNREACHABLE, start_failure
from config import Unavailable

log = logging.getLogger(__name__)
# slack_sdk's Socket Mode client logs here (`ConnectionChanges` reads it), bolt's app elsewhere.
SOCKET_MODE_LOG = logging.getLogger(f"{__name__}.socket_mode")
CONNECT_WITHIN = 30.0  # seconds for the first Socket Mode connection at start


EVENTS_PATH = "/slack/events"
# Slack's requests are a few KB (a slash command, an event); the largest carry a message and
# its blocks (a button click under one of ours, a message shortcut on a long message), tens of
# KB. Bolt would read any body whole into memory before checking its signature, so longer ones
# are refused unread, and so are slow ones.
MAX_BODY_BYTES = 512 * 1024
BODY_SECONDS = 10.0
# Bytes of long bodies being read at once, over every request (each counts what it
# declares, or MAX_BODY_BYTES): past it, 503 at once. Two hundred stalled uploads near the
# cap otherwise hold ~130 MB, which the allocator keeps after they end. A body of at most
# SHORT_BODY_BYTES (a command, an event: Slack's usual few KB) is always read, so that such
# uploads do not turn Slack's requests away; MAX_CONNECTIONS of them hold at most 16 MB.
BODIES_AT_ONCE = 8 * 1024 * 1024
SHORT_BODY_BYTES = 16 * 1024
# What Slack signs every request with: a Unix time in seconds and "v0=" and 64 hex digits. A
# request without them is refused before its body is read.
_TIMESTAMP = re.compile(rb"\d{1,12}")
_SIGNATURE = re.compile(rb"v0=[0-9a-f]{64}")
# Interactivity payloads name their user as an object (bolt reads user["id"] unchecked).
_INTERACTIVE = ("block_actions", "message_action", "shortcut", "view_submission")


def _declared_length(scope: Scope) -> int | None:
    """The body's length as its Content-Length says, MAX_BODY_BYTES when it says none, and
    None when it says more than that (or nonsense)."""
    for name, value in scope.get("headers") or []:
        if name.lower() == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return None
            return length if 0 <= length <= MAX_BODY_BYTES else None
    return MAX_BODY_BYTES


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or None when it is longer than MAX_BODY_BYTES."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return bytes(body)
        body.extend(message.get("body", b""))
        if len(body) > MAX_BODY_BYTES:
            return None
        if not message.get("more_body", False):
            return bytes(body)


def _unsigned(scope: Scope) -> bool:
    """Whether the request lacks Slack's signature headers of the right form."""
    headers = {name.lower(): value for name, value in scope.get("headers") or []}
    timestamp = headers.get(b"x-slack-request-timestamp", b"")
    signature = headers.get(b"x-slack-signature", b"")
    return not (_TIMESTAMP.fullmatch(timestamp) and _SIGNATURE.fullmatch(signature))


def _parse(scope: Scope, body: bytes) -> AsyncBoltRequest | str:
    """The request bolt dispatches, or why it could not handle `body`. Bolt parses a body
    before it checks the signature and indexes into it without checks, so a body it can't
    parse would be a 500."""
    try:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request = AsyncBoltRequest(
            body=body.decode("utf-8"),
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
        )
    except Exception as error:  # not UTF-8, not JSON, not a JSON object, ...
        return type(error).__name__
    payload = request.body
    if "event" in payload and not isinstance(payload["event"], dict):
        return "event is not an object"
    if payload.get("type") in _INTERACTIVE and not isinstance(payload.get("user"), dict):
        return "user is not an object"
    actions = payload.get("actions")
    if actions is not None and not (
        isinstance(actions, list) and all(isinstance(action, dict) for action in actions)
    ):
        return "actions is not a list of objects"
    return request


def asgi_app(app: AsyncApp) -> ASGIApp:
    """`/slack/events` (commands, events, interactivity) and the OAuth paths.

    A request without Slack's signature headers gets 401 unread; a body over MAX_BODY_BYTES
    413, one past BODIES_AT_ONCE 503, one slower than BODY_SECONDS 408, and one bolt can't
    parse 400: each with a log line, before bolt sees it. The first four leave the rest of a
    body unread, and the connection is closed soon after (adapters/http.py). A request that
    parses goes to bolt as parsed here."""
    slack = AsyncSlackRequestHandler(app, path=EVENTS_PATH)
    reading = 0  # bytes of bodies being read now (BODIES_AT_ONCE)

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal reading
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != EVENTS_PATH:
            await slack(scope, receive, send)
            return
        if _unsigned(scope):
            log.warning("refused a Slack request without well-formed signature headers")
            await respond(send, 401, b"Unauthorized")
            return
        length = _declared_length(scope)
        counted = length if length is not None and length > SHORT_BODY_BYTES else 0
        if counted and reading + counted > BODIES_AT_ONCE:
            log.warning("refused a Slack request: %d bytes of bodies already arriving", reading)
            await respond(send, 503, b"Service Unavailable")
            return
        reading += counted
        try:
            async with asyncio.timeout(BODY_SECONDS):
                body = None if length is None else await _read_body(receive)
        except TimeoutError:
            log.warning("refused a Slack request whose body took over %g s", BODY_SECONDS)
            await respond(send, 408, b"Request Timeout")
            return
        finally:
            reading -= counted
        if body is None:
            log.warning("refused a Slack request body over %d bytes", MAX_BODY_BYTES)
            await respond(send, 413, b"Payload Too Large")
            return
        request = _parse(scope, body)
        if isinstance(request, str):
            log.warning("refused a malformed Slack request: %s", request)
            await respond(send, 400, b"Bad Request")
            return
        answer = await app.async_dispatch(request)
        response = AsgiHttpResponse(answer.status, answer.headers, answer.body)
        await send(response.get_response_start())
        await send(response.get_response_body())

    return serve


def connection_changes() -> ConnectionChanges:
    """What slack_sdk's Socket Mode client (3.x) logs as a connection is made, lost, retried."""
    return ConnectionChanges(
        "Slack Socket Mode",
        connected=("A new session (",),
        lost={
            "Failed to connect": "could not connect",
            "Failed to retrieve WSS URL": "apps.connections.open failed",
            "seems to be stale": "no answer to pings",
            "seems to be already closed": "closed",
            "Received CLOSE event": "closed by Slack",
            "Failed to receive or enqueue a message": "could not reconnect",
            "Failed to check the current session": "could not reconnect",
        },
        churn=(
            "The old session (", "The current session (", "The aiohttp client session is",
            "A retry handler found",  # slack_sdk's Web API client, retrying a connection
        ),
    )  # fmt: skip


class SocketMode:
    """A Socket Mode connection (no public URL needed) for `app`, kept up by slack_sdk, which
    reconnects by itself. `connect` makes the first connection or says in one line why it
    can't; after that the log has one line per change (`ConnectionChanges`)."""

    def __init__(self, app: AsyncApp, app_token: str, *, ping_interval: float = 10.0) -> None:
        # Its own Web API client, for apps.connections.open, logs where `changes` reads too.
        api = AsyncWebClient(base_url=app.client.base_url, logger=SOCKET_MODE_LOG)
        self.handler = AsyncSocketModeHandler(
            app, app_token, logger=SOCKET_MODE_LOG, web_client=api, ping_interval=ping_interval
        )
        self.changes = connection_changes()
        SOCKET_MODE_LOG.addFilter(self.changes)

    async def connect(self, within: float = CONNECT_WITHIN) -> None:
        """Connect; ConfigError for a rejected SLACK_APP_TOKEN, Unavailable for a Slack that
        does not answer or a WebSocket not open after `within` seconds."""
        client = self.handler.client
        try:  # once here, where a refusal is final: slack_sdk would retry it forever
            client.wss_uri = await client.issue_new_wss_url()
        except (SlackApiError, *UNREACHABLE) as error:
            raise start_failure(error, "SLACK_APP_TOKEN") from error
        try:
            async with asyncio.timeout(within):
                await client.connect()  # type: ignore[no-untyped-call]
        except TimeoutError:
            why = self.changes.last_failure or f"no connection within {within:g} s"
            raise Unavailable(f"Slack Socket Mode unavailable ({why}); check the network") from None

    async def close(self) -> None:
        await self.handler.close_async()  # type: ignore[no-untyped-call]
        SOCKET_MODE_LOG.removeFilter(self.changes)
