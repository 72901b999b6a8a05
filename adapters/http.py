"""Serving ASGI apps over HTTP with uvicorn: the Slack endpoint and the operations endpoints
(`adapters.ops`) of `paperboy serve`, and the worker's operations port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PLAIN = "text/plain; charset=utf-8"


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


# Connections served at once; more get 503 at once rather than each holding memory (Slack
# retries). A team's bot sees a few requests a second.
MAX_CONNECTIONS = 200


def http_server(app: ASGIApp, *, host: str, port: int) -> uvicorn.Server:
    # No ASGI lifespan: nothing runs at its start or end. No log configuration of uvicorn's
    # own: its records go to the process's handler, in the process's format (text or JSON).
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
        log_config=None, limit_concurrency=MAX_CONNECTIONS,
    )  # fmt: skip
    return _Server(config)
