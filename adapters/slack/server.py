"""HTTP and Socket Mode transports for the Slack app."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from slack_bolt.adapter.asgi.async_handler import AsyncSlackRequestHandler
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

EVENTS_PATH = "/slack/events"


def asgi_app(app: AsyncApp) -> ASGIApp:
    """`/slack/events` (commands, events, interactivity), the OAuth paths, and `/healthz`."""
    slack = AsyncSlackRequestHandler(app, path=EVENTS_PATH)

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/healthz":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                }
            )
            await send({"type": "http.response.body", "body": b"ok"})
            return
        await slack(scope, receive, send)

    return serve


def http_server(app: AsyncApp, *, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        asgi_app(app), host=host, port=port, log_level="warning", access_log=False, lifespan="on"
    )
    return uvicorn.Server(config)


async def run_socket_mode(app: AsyncApp, app_token: str) -> None:
    """Connect over Socket Mode (no public URL needed) and serve until cancelled."""
    handler = AsyncSocketModeHandler(app, app_token)
    try:
        await handler.start_async()
    finally:
        await handler.close_async()
