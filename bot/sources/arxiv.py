"""arXiv API client: papers by id, from the Atom feed `GET /api/query?id_list=a,b,...`.

arXiv asks API users to make no more than one request every three seconds
(info.arxiv.org/help/api/tou.html): every request of a client goes through its
`RequestSpacing`, and a process keeps one client (the command line makes one), so the process
keeps to it. Ids are asked for together, up to MAX_IDS_PER_REQUEST in one request.

The feed is untrusted XML from the network: it is parsed by `defusedxml`, which refuses
entity expansion (the "billion laughs"), external entities and DTDs, over ElementTree.

arXiv answers an id it does not know with no entry, or with an entry titled "Error" (whose
`<id>` is an error page, not a paper): both mean "not known here".
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from xml.etree.ElementTree import Element, ParseError

import httpx
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from bot.links import reference_id
from bot.sources.huggingface import SourceUnavailable
from storage.papers import PaperData

__all__ = ["DEFAULT_BASE_URL", "ArxivClient", "ArxivUnavailable", "RequestSpacing", "parse_feed"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://export.arxiv.org"
USER_AGENT = "paperboy/0.1"
MIN_INTERVAL = 3.0  # seconds between requests, as arXiv asks
MAX_IDS_PER_REQUEST = 50
MAX_BODY = 5_000_000  # bytes; 50 entries with long abstracts take about 150 kB
ATOM = "{http://www.w3.org/2005/Atom}"
_WHITESPACE = re.compile(r"\s+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


class ArxivUnavailable(SourceUnavailable):
    """arXiv could not be reached or kept answering with errors."""


class ArxivParseError(ValueError):
    """The answer is not an Atom feed."""


class RequestSpacing:
    """At most one request every `interval` seconds: `wait()` before each one returns no
    sooner than `interval` after the previous `wait()` returned. Callers queue in order.
    `clock` (monotonic seconds) and `sleep` are injectable for tests."""

    def __init__(
        self,
        interval: float = MIN_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = max(0.0, interval)
        self.clock = clock
        self.sleep = sleep
        self._last: float | None = None
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            if self._last is not None:
                delay = self._last + self.interval - self.clock()
                if delay > 0:
                    await self.sleep(delay)
            self._last = self.clock()


class _Retryable(Exception):
    pass


class ArxivClient:
    """Async client for the arXiv API. `max_retries` counts retries after the first attempt of
    each request; every attempt waits its turn in `spacing`."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 15.0,
        max_retries: int = 2,
        spacing: RequestSpacing | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_retries = max(0, max_retries)
        self.spacing = spacing or RequestSpacing()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": USER_AGENT, "Accept": "application/atom+xml"},
            transport=transport,
            follow_redirects=True,
        )

    async def __aenter__(self) -> ArxivClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def papers(self, arxiv_ids: Sequence[str]) -> dict[str, PaperData]:
        """The papers arXiv knows among `arxiv_ids` (without versions), by id; those it does
        not know are absent. Raises ArxivUnavailable when arXiv can't answer."""
        wanted = list(dict.fromkeys(arxiv_ids))
        found: dict[str, PaperData] = {}
        for first in range(0, len(wanted), MAX_IDS_PER_REQUEST):
            batch = wanted[first : first + MAX_IDS_PER_REQUEST]
            params = {"id_list": ",".join(batch), "max_results": str(len(batch))}
            for paper in await self._query(params):
                if paper.arxiv_id in batch:
                    found.setdefault(paper.arxiv_id, paper)
        return found

    async def _query(self, params: dict[str, str]) -> list[PaperData]:
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            await self.spacing.wait()
            try:
                return await self._attempt(params)
            except _Retryable as failure:
                if attempt == attempts:
                    raise ArxivUnavailable(
                        f"arXiv /api/query failed after {attempts} attempts: {failure}"
                    ) from None
                log.warning(
                    "arXiv /api/query failed (%s); retry %d/%d", failure, attempt, self.max_retries
                )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, params: dict[str, str]) -> list[PaperData]:
        try:
            response = await self._http.get("/api/query", params=params)
        except httpx.TimeoutException:
            raise _Retryable("timeout") from None
        except httpx.RequestError as error:
            raise _Retryable(f"connection error ({type(error).__name__})") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}")
        if status != 200:
            raise ArxivUnavailable(f"arXiv /api/query answered HTTP {status}")
        if len(response.content) > MAX_BODY:
            raise _Retryable(f"an answer of {len(response.content)} bytes")
        try:
            return parse_feed(response.content)
        except ArxivParseError as error:
            raise _Retryable(f"malformed feed ({error})") from None


def parse_feed(body: bytes) -> list[PaperData]:
    """The papers of an Atom feed from `/api/query`; error entries and entries without an
    arXiv id or a title are left out. Raises ArxivParseError when `body` is no Atom feed."""
    try:
        root = fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError) as error:
        raise ArxivParseError(type(error).__name__) from None
    if root.tag != f"{ATOM}feed":
        raise ArxivParseError(f"root element {root.tag[:40]!r}")
    papers = []
    for entry in root.findall(f"{ATOM}entry"):
        paper = parse_entry(entry)
        if paper is not None:
            papers.append(paper)
    return papers


def parse_entry(entry: Element) -> PaperData | None:
    arxiv_id = reference_id(_text(entry, "id"))  # http://arxiv.org/abs/2501.12345v1
    title = _one_line(_text(entry, "title"))
    if not isinstance(arxiv_id, str) or not title or title == "Error":
        return None
    authors = tuple(
        name
        for author in entry.findall(f"{ATOM}author")
        if (name := _one_line(_text(author, "name")))
    )
    return PaperData(
        arxiv_id=arxiv_id,
        title=title,
        abstract=_paragraphs(_text(entry, "summary")),
        authors=authors,
        published_at=_datetime(_text(entry, "published")),
    )


def _text(element: Element, name: str) -> str:
    child = element.find(f"{ATOM}{name}")
    return "".join(child.itertext()) if child is not None else ""


def _one_line(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _paragraphs(text: str) -> str:
    """Hard-wrapped lines joined, blank-line paragraph breaks kept."""
    parts = (_one_line(part) for part in _PARAGRAPH_BREAK.split(text))
    return "\n\n".join(part for part in parts if part)


def _datetime(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
