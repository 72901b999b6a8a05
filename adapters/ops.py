"""The operations endpoints of a process, for orchestrators and monitoring:

- `/healthz`: 200 "ok" while the process serves at all (liveness);
- `/readyz`: 200 "ready" when the database answers `SELECT 1` within READY_TIMEOUT, else 503
  with one line saying why (readiness: load balancers, Docker's HEALTHCHECK);
- `/metrics`: the Prometheus metrics (`adapters.metrics`).

`paperboy serve` answers them beside Slack's paths; the worker on PAPERBOY_METRICS_PORT.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from adapters.http import PLAIN, ASGIApp, Receive, Scope, Send, respond
from adapters.metrics import exposition
from storage.db import DB_ERRORS
from storage.store import Store

READY_TIMEOUT = 2.0  # seconds: a database slower than this to say "1" is not ready to serve

Answer = tuple[int, bytes, str]  # status, body, content type


class Operations:
    def __init__(self, store: Store, *, ready_timeout: float = READY_TIMEOUT) -> None:
        self.store = store
        self.ready_timeout = ready_timeout
        self._routes: dict[str, Callable[[], Awaitable[Answer]]] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._metrics,
        }

    async def unready(self) -> str | None:
        """Why the process cannot serve now, in one line; None when it can."""
        try:
            async with asyncio.timeout(self.ready_timeout):
                await self.store.ping()
        except TimeoutError:
            return f"database did not answer within {self.ready_timeout:g} s"
        except DB_ERRORS as error:  # the type only: a driver's message may hold the URL
            return f"database unavailable ({type(error).__name__})"
        return None

    def asgi(self, then: ASGIApp | None = None) -> ASGIApp:
        """An ASGI app answering the operations paths, and passing every other request to
        `then` (404 without one)."""

        async def serve(scope: Scope, receive: Receive, send: Send) -> None:
            route = self._routes.get(scope["path"]) if scope["type"] == "http" else None
            if route is not None:
                await respond(send, *await route())
            elif then is not None:
                await then(scope, receive, send)
            elif scope["type"] == "http":
                await respond(send, 404, b"Not Found")

        return serve

    async def _healthz(self) -> Answer:
        return 200, b"ok", PLAIN

    async def _readyz(self) -> Answer:
        reason = await self.unready()
        return (200, b"ready", PLAIN) if reason is None else (503, reason.encode(), PLAIN)

    async def _metrics(self) -> Answer:
        body, content_type = exposition()
        return 200, body, content_type
