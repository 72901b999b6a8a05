"""A fake Hugging Face papers API on 127.0.0.1 (real sockets), with switchable faults.

Endpoints: `/api/daily_papers?date=&limit=&p=` (real paging, default limit 50, max 100),
`/api/papers/search?q=&limit=`, `/api/papers/{id}`. Each endpoint ("daily", "search", "paper")
has a queue of faults served before it answers normally: "timeout", "badjson", "429" (with
`Retry-After: <retry_after>`) or any HTTP status as digits ("500", "503", "400", ...).

HTTP caching on the daily endpoint is off by default (like an API that sends no validators):
`etags = True` adds a strong `ETag` (a hash of the body) and answers a matching
`If-None-Match` with 304; `last_modified = "<HTTP date>"` adds `Last-Modified` and answers an
`If-Modified-Since` that is not older with 304 (when no `If-None-Match` was sent, as RFC 9110
says). `not_modified_served` counts the 304s.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.fakes.http import JsonHandler, QuietServer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hf"
ENDPOINTS = ("daily", "search", "paper")
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
_VERSION = re.compile(r"v\d+$")


def load_fixture(name: str) -> list[dict[str, Any]]:
    """A hand-written fixture from tests/fixtures/hf/, e.g. `load_fixture("2026-05-04.json")`."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class RecordedRequest:
    endpoint: str  # "daily", "search", "paper" or "other"
    path: str
    query: dict[str, str]  # first value of each parameter
    user_agent: str | None
    target: str  # path and query as sent, e.g. "/api/daily_papers?date=2026-05-04&limit=100&p=0"
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class FakeHuggingFace:
    """The fake server. Mutate `days`, `faults`, `retry_after`, `ignore_paging`, `etags` and
    `last_modified` from tests."""

    def __init__(self) -> None:
        self.days: dict[str, list[dict[str, Any]]] = {}
        self.faults: dict[str, list[str]] = {endpoint: [] for endpoint in ENDPOINTS}
        self.requests: list[RecordedRequest] = []
        self.retry_after = "1"
        self.timeout_delay = 2.0  # how long a "timeout" fault stalls; beyond the client's timeout
        self.ignore_paging = False  # serve page 0 whatever `p` says
        self.etags = False  # daily answers carry an ETag and honour If-None-Match
        self.last_modified: str | None = None  # daily answers carry it; If-Modified-Since honoured
        self.not_modified_served = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # shutdown() waits up to one poll interval
            name="fake-hf",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHuggingFace:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers stalled by a "timeout" fault
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def load_day(self, day: str, fixture: str | None = None) -> list[dict[str, Any]]:
        """Serve a fixture file (default `<day>.json`) as `day`'s list; returns its items."""
        items = load_fixture(fixture or f"{day}.json")
        self.days[day] = items
        return items

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.endpoint == endpoint]

    # Called from handler threads.

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _count_not_modified(self) -> None:
        with self._lock:
            self.not_modified_served += 1

    def _next_fault(self, endpoint: str) -> str | None:
        with self._lock:
            queue = self.faults.get(endpoint)
            return queue.pop(0) if queue else None

    def _daily(self, query: dict[str, str]) -> tuple[int, object]:
        day = query.get("date") or max(self.days, default="")
        items = self.days.get(day, [])
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
            page = int(query.get("p", 0))
        except ValueError:
            return 400, {"error": "Invalid limit or p"}
        if limit < 1 or page < 0:
            return 400, {"error": "Invalid limit or p"}
        limit = min(limit, MAX_LIMIT)
        if self.ignore_paging:
            page = 0
        return 200, items[page * limit : (page + 1) * limit]

    def _search(self, query: dict[str, str]) -> tuple[int, object]:
        needle = query.get("q", "").strip().lower()
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
        except ValueError:
            return 400, {"error": "Invalid limit"}
        if not needle:
            return 400, {"error": "Missing q"}
        found: dict[str, dict[str, Any]] = {}
        for day in sorted(self.days):
            for item in self.days[day]:
                paper = item.get("paper", {})
                texts = (item.get("title"), item.get("summary"), paper.get("title"),
                         paper.get("summary"))  # fmt: skip
                if any(isinstance(t, str) and needle in t.lower() for t in texts):
                    found.setdefault(_bare_id(paper.get("id")), item)
        return 200, list(found.values())[: max(limit, 0)]

    def _paper(self, arxiv_id: str) -> tuple[int, object]:
        wanted = _bare_id(arxiv_id)
        for day in sorted(self.days, reverse=True):
            for item in self.days[day]:
                paper = item.get("paper", {})
                if _bare_id(paper.get("id")) == wanted:
                    return 200, paper
        return 404, {"error": "Paper not found"}


def _bare_id(value: object) -> str:
    return _VERSION.sub("", value) if isinstance(value, str) else ""


def _not_older(since: str | None, last_modified: str) -> bool:
    """Whether the `If-Modified-Since` date is at or after `last_modified`."""
    if not since:
        return False
    try:
        return parsedate_to_datetime(since) >= parsedate_to_datetime(last_modified)
    except (TypeError, ValueError):  # an unparseable date is ignored, as servers do
        return False


class _Server(QuietServer):
    fake: FakeHuggingFace


class _Handler(JsonHandler):
    server: _Server

    def do_GET(self) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        path = url.path
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if path == "/api/daily_papers":
            endpoint = "daily"
        elif path == "/api/papers/search":
            endpoint = "search"
        elif path.startswith("/api/papers/") and len(path) > len("/api/papers/"):
            endpoint = "paper"
        else:
            endpoint = "other"
        headers = {name.lower(): value for name, value in self.headers.items()}
        fake._record(
            RecordedRequest(
                endpoint, path, query, self.headers.get("User-Agent"), self.path, headers
            )
        )

        fault = fake._next_fault(endpoint)
        if fault == "timeout":
            fake._stopping.wait(fake.timeout_delay)
            return  # nothing sent; the connection closes
        if fault == "badjson":
            self._send(200, b'[{"paper": {"id": "2605.0', "application/json")
            return
        if fault == "429":
            self._json(429, {"error": "Too Many Requests"}, {"Retry-After": fake.retry_after})
            return
        if fault is not None and fault.isdigit():
            self._json(int(fault), {"error": f"fault {fault}"})
            return

        if endpoint == "daily":
            status, body = fake._daily(query)
            if status == 200:
                self._daily_answer(body, headers)
                return
        elif endpoint == "search":
            status, body = fake._search(query)
        elif endpoint == "paper":
            status, body = fake._paper(unquote(path[len("/api/papers/") :]))
        else:
            status, body = 404, {"error": "Not Found"}
        self._json(status, body)

    def _daily_answer(self, body: object, request_headers: dict[str, str]) -> None:
        fake = self.server.fake
        payload = json.dumps(body).encode()
        validators: dict[str, str] = {}
        if fake.etags:
            validators["ETag"] = f'"{hashlib.sha256(payload).hexdigest()[:16]}"'
        if fake.last_modified is not None:
            validators["Last-Modified"] = fake.last_modified
        if_none_match = request_headers.get("if-none-match")
        if if_none_match is not None:
            fresh = "ETag" in validators and validators["ETag"] in {
                tag.strip() for tag in if_none_match.split(",")
            }
        else:
            fresh = fake.last_modified is not None and _not_older(
                request_headers.get("if-modified-since"), fake.last_modified
            )
        if fresh:
            fake._count_not_modified()
            self.send_response(304)
            for name, value in validators.items():
                self.send_header(name, value)
            self.end_headers()
            return
        self._send(200, payload, "application/json; charset=utf-8", validators)


@pytest.fixture
def fake_hf() -> Iterator[FakeHuggingFace]:
    """A running fake Hugging Face API; stopped after the test."""
    server = FakeHuggingFace().start()
    try:
        yield server
    finally:
        server.stop()
