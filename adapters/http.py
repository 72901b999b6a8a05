"""Serving ASGI apps over HTTP with uvicorn: the Slack endpoint and the operations endpoints
(`adapters.ops`) of `paperboy serve`, and the worker's operations port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PLAIN = "text/plain; charset=utf-8"
log = logging.getLogger(__name__)


async def respond(send: Send, status: int, body: bytes, content_type: str = PLAIN) -> None:
    """A whole response: `status`, one content type, `body`."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode("latin-1"))],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the process: SIGTERM cancels the task serving
    (`adapters.cli`), which runs the clean-up. uvicorn's own handlers would replace that
    handler while serving and raise the signal again when done, cancelling twice."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


# Seconds a connection has to deliver each request whole, from its opening or from the answer
# to its previous request; then it is closed. uvicorn times nothing before a request's headers
# are in, and its keep-alive timeout stops at any byte arriving, so a client that sent part of
# a request and stalled would hold its connection, and a place under MAX_CONNECTIONS, for good.
# Longer than the Slack endpoint's own body timeout (adapters/slack/server.py), which answers
# 408 first.
REQUEST_SECONDS = 15.0
# A request answered before it arrived whole (refused unread: 401, 413, 408) has the rest of
# its body read and dropped for at most this long after the answer, which ends with the
# connection's write side shut, and then the connection is closed. uvicorn would go on
# dropping it for as long as the client sends; closed at once, with bytes unread, the
# connection would be reset, and the client, still sending, might lose the answer.
LINGER_SECONDS = 2.0


class _Protocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools, as it picks when installed) with
    REQUEST_SECONDS and LINGER_SECONDS."""

    _timer: asyncio.TimerHandle | None = None
    _arrived = True  # whether the latest request has arrived whole

    def _close_in(self, seconds: float, late: bool) -> None:
        self._stop()
        self._timer = self.loop.call_later(seconds, self._close, late)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _close(self, late: bool = False) -> None:
        self._timer = None
        if not self.transport.is_closing():
            if late:
                log.warning("closed a connection whose request took over %g s", REQUEST_SECONDS)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._close_in(REQUEST_SECONDS, late=True)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arrived = False

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._arrived = True
        if self.cycle.response_complete:  # answered before it arrived: lingering, now done
            self._close()
        else:  # the app has it
            self._stop()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # a request already in, now handed to the app
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if not self._arrived:
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self._close_in(LINGER_SECONDS, late=False)
        elif not pipelined:
            self._close_in(REQUEST_SECONDS, late=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        super().connection_lost(exc)


# Connections served at once; more get 503 at once (Slack retries). A team's bot sees a few
# requests a second; the room is for clients that connect and stall, which REQUEST_SECONDS
# ends, so that a few hundred of them do not turn Slack away. An idle connection costs a few
# KB; what a connection's body may hold is bounded by the Slack endpoint
# (adapters/slack/server.py).
MAX_CONNECTIONS = 1000


def http_server(app: ASGIApp, *, host: str, port: int) -> uvicorn.Server:
    # No ASGI lifespan: nothing runs at its start or end. No log configuration of uvicorn's
    # own: its records go to the process's handler, in the process's format (text or JSON).
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
        log_config=None, limit_concurrency=MAX_CONNECTIONS, http=_Protocol,
    )  # fmt: skip
    return _Server(config)
