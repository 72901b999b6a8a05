"""Plumbing shared by the HTTP fakes: a quiet threaded server and JSON answers."""

from __future__ import annotations

import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5. A worker opening a hundred connections at
    # once on a loaded machine overflows it; the kernel drops the SYNs and the client's
    # retransmissions back off past its 30 s timeout. Real servers queue far more.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that gave up (timeouts) leave broken pipes behind; nothing to report


class JsonHandler(BaseHTTPRequestHandler):
    # Headers and body go out in separate writes; with Nagle's algorithm on, a kept-alive
    # connection's body would wait for the client's delayed ACK (40 ms) of the headers.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8", headers)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
