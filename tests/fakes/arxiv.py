"""A fake arXiv API on 127.0.0.1 (real sockets): `GET /api/query?id_list=a,b&max_results=N`
answered with an Atom feed in the real shape, with switchable faults.

`papers` holds what it knows, by id without version. An id it does not know is answered as
`unknown` says: "none" (no entry, as arXiv does for a well-formed id it has no paper for) or
"error" (an entry titled "Error" whose id is an error page, as arXiv does for ids it cannot
read). `faults` is a queue served before answering normally: "timeout", "badxml" (cut off),
"html" (an HTML page with status 200), "bomb" (a document declaring entities), or an HTTP
status as digits ("500", "503", "400"). `requests` records each request with the time it
arrived (`time.monotonic()`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import pytest

from tests.fakes.http import JsonHandler, QuietServer

ATOM_TYPE = "application/atom+xml; charset=UTF-8"


@dataclass(frozen=True)
class ArxivPaper:
    title: str
    summary: str
    authors: tuple[str, ...] = ()
    published: str = "2025-01-21T18:59:59Z"
    version: int = 1
    category: str = "cs.LG"


@dataclass(frozen=True)
class ArxivRequest:
    path: str
    query: dict[str, str]
    arrived: float  # time.monotonic()
    user_agent: str | None

    @property
    def ids(self) -> list[str]:
        return [part for part in self.query.get("id_list", "").split(",") if part]


@dataclass
class FakeArxiv:
    papers: dict[str, ArxivPaper] = field(default_factory=dict)
    unknown: str = "none"  # "none" or "error"
    faults: list[str] = field(default_factory=list)
    requests: list[ArxivRequest] = field(default_factory=list)
    timeout_delay: float = 2.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
            name="fake-arxiv", daemon=True,
        )  # fmt: skip

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeArxiv:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def add(self, arxiv_id: str, title: str, **fields: object) -> None:
        self.papers[arxiv_id] = ArxivPaper(title=title, **fields)  # type: ignore[arg-type]

    def asked(self) -> list[list[str]]:
        """The ids of each request, in order."""
        with self._lock:
            return [request.ids for request in self.requests]

    def _record(self, request: ArxivRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_fault(self) -> str | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def feed(self, ids: list[str], max_results: int) -> str:
        entries = []
        for arxiv_id in ids[:max_results]:
            paper = self.papers.get(arxiv_id)
            if paper is not None:
                entries.append(_entry(arxiv_id, paper))
            elif self.unknown == "error":
                entries.append(_error_entry(arxiv_id))
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<feed xmlns="http://www.w3.org/2005/Atom" '
            'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
            'xmlns:arxiv="http://arxiv.org/schemas/atom">\n'
            '  <link href="http://arxiv.org/api/query" rel="self" type="application/atom+xml"/>\n'
            f'  <title type="html">ArXiv Query: id_list={escape(",".join(ids))}</title>\n'
            "  <id>http://arxiv.org/api/fake</id>\n"
            "  <updated>2025-01-22T00:00:00-05:00</updated>\n"
            f"  <opensearch:totalResults>{len(entries)}</opensearch:totalResults>\n"
            "  <opensearch:startIndex>0</opensearch:startIndex>\n"
            f"  <opensearch:itemsPerPage>{max_results}</opensearch:itemsPerPage>\n"
            + "".join(entries)
            + "</feed>\n"
        )


def _entry(arxiv_id: str, paper: ArxivPaper) -> str:
    versioned = f"{arxiv_id}v{paper.version}"
    authors = "".join(
        f"    <author>\n      <name>{escape(name)}</name>\n    </author>\n"
        for name in paper.authors
    )
    return (
        "  <entry>\n"
        f"    <id>http://arxiv.org/abs/{versioned}</id>\n"
        f"    <updated>{paper.published}</updated>\n"
        f"    <published>{paper.published}</published>\n"
        f"    <title>{escape(paper.title)}</title>\n"
        f"    <summary>{escape(paper.summary)}</summary>\n"
        f"{authors}"
        f'    <link href="http://arxiv.org/abs/{versioned}" rel="alternate" type="text/html"/>\n'
        f'    <link title="pdf" href="http://arxiv.org/pdf/{versioned}" rel="related" '
        'type="application/pdf"/>\n'
        f'    <arxiv:primary_category term="{paper.category}" '
        'scheme="http://arxiv.org/schemas/atom"/>\n'
        f'    <category term="{paper.category}" scheme="http://arxiv.org/schemas/atom"/>\n'
        "  </entry>\n"
    )


def _error_entry(arxiv_id: str) -> str:
    anchor = f"http://arxiv.org/api/errors#incorrect_id_format_for_{escape(arxiv_id)}"
    return (
        "  <entry>\n"
        f"    <id>{anchor}</id>\n"
        "    <title>Error</title>\n"
        f"    <summary>incorrect id format for {escape(arxiv_id)}</summary>\n"
        "    <updated>2025-01-22T00:00:00-05:00</updated>\n"
        f'    <link href="{anchor}" rel="alternate" type="text/html"/>\n'
        "    <author>\n      <name>arXiv api core</name>\n    </author>\n"
        "  </entry>\n"
    )


BOMB = (
    '<?xml version="1.0"?>\n<!DOCTYPE feed [\n<!ENTITY a "aaaaaaaaaa">\n'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">\n'
    ']>\n<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/abs/2501.00001v1'
    "</id><title>&c;</title><summary>&c;</summary></entry></feed>\n"
)


class _Server(QuietServer):
    fake: FakeArxiv


class _Handler(JsonHandler):
    server: _Server

    def do_GET(self) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        fake._record(
            ArxivRequest(url.path, query, time.monotonic(), self.headers.get("User-Agent"))
        )
        fault = fake._next_fault()
        if fault == "timeout":
            fake._stopping.wait(fake.timeout_delay)
            return
        if fault == "badxml":
            self._send(200, b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><ent',
                       ATOM_TYPE)  # fmt: skip
            return
        if fault == "html":
            self._send(200, b"<!DOCTYPE html><html><body>Rate exceeded.</body></html>",
                       "text/html")  # fmt: skip
            return
        if fault == "bomb":
            self._send(200, BOMB.encode(), ATOM_TYPE)
            return
        if fault is not None and fault.isdigit():
            self._send(int(fault), f"fault {fault}".encode(), "text/plain")
            return
        if url.path != "/api/query":
            self._send(404, b"not found", "text/plain")
            return
        try:
            max_results = int(query.get("max_results", "10"))
        except ValueError:
            self._send(400, b"bad max_results", "text/plain")
            return
        ids = [part for part in query.get("id_list", "").split(",") if part]
        self._send(200, fake.feed(ids, max_results).encode(), ATOM_TYPE)


@pytest.fixture
def fake_arxiv() -> Iterator[FakeArxiv]:
    """A running fake arXiv API; stopped after the test."""
    server = FakeArxiv().start()
    try:
        yield server
    finally:
        server.stop()
