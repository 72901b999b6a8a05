"""Hugging Face papers API client: daily lists, search and single papers, with bounded retries.

Daily-list pages are fetched conditionally: when a response carried an `ETag` or
`Last-Modified`, the next request for the same page sends `If-None-Match` / `If-Modified-Since`
and a `304 Not Modified` is answered from a small in-memory cache.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlencode

import httpx

from bot.observe import observer
from bot.sources.hf_items import HFParseError, parse_item, parse_items, strip_version
from storage.papers import PaperData

__all__ = ["DEFAULT_BASE_URL", "HuggingFaceClient", "SourceUnavailable"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://huggingface.co"
SOURCE = "huggingface"  # as `Observer.source_failed` names it
USER_AGENT = "paperboy/0.1"
PAGE_SIZE = 100  # the largest page the daily endpoint serves
MAX_PAGES = 20
CACHE_SIZE = 64  # remembered daily pages: about 16 days of up to four pages each

T = TypeVar("T")


class SourceUnavailable(Exception):
    """Hugging Face could not be reached or kept answering with errors."""


class _Retryable(Exception):
    """A failed attempt worth another: `reason` for the log, `kind` for `Observer`."""

    def __init__(self, reason: str, kind: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.retry_after = retry_after


class _NotFound(Exception):
    pass


@dataclass(frozen=True)
class _Cached:
    """A response's validators and its parsed body, for answering a later 304."""

    etag: str | None
    last_modified: str | None
    value: object  # what the request's `parse` returned

    def conditional_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.etag is not None:
            headers["If-None-Match"] = self.etag
        if self.last_modified is not None:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class HuggingFaceClient:
    """Async client for the Hugging Face papers API.

    `max_retries` counts retries after the first attempt, so at most `max_retries + 1` requests
    are made per call (per page for `daily`). `cache_size` bounds how many daily pages keep
    their validators; `not_modified` counts the 304 answers served from that cache.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        max_retry_after: float = 30.0,
        cache_size: int = CACHE_SIZE,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.cache_size = max(0, cache_size)
        self.not_modified = 0
        self._cache: OrderedDict[str, _Cached] = OrderedDict()  # least recently used first
        self.max_retries = max(0, max_retries)
        self.backoff_base = max(0.0, backoff_base)
        self.max_retry_after = max(0.0, max_retry_after)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            transport=transport,
            follow_redirects=True,
        )

    async def __aenter__(self) -> HuggingFaceClient:
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

    async def daily(self, day: date) -> list[PaperData]:
        """`day`'s Daily Papers in API order, de-duplicated; empty on days without a list."""
        papers: dict[str, PaperData] = {}
        for page in range(MAX_PAGES):
            params = {"date": day.isoformat(), "limit": str(PAGE_SIZE), "p": str(page)}
            raw_count, parsed = await self._get(
                "/api/daily_papers", params, _count_and_parse, conditional=True
            )
            new = [p for p in parsed if p.arxiv_id not in papers]
            for paper in new:
                papers.setdefault(paper.arxiv_id, paper)
            if raw_count < PAGE_SIZE:
                break
            if not new:  # a server that ignores `p` serves page 0 again
                log.warning("Hugging Face daily %s: page %d repeats earlier ids", day, page)
                break
        else:
            log.warning("Hugging Face daily %s: stopped after %d pages", day, MAX_PAGES)
        return list(papers.values())

    async def search(self, query: str, limit: int = 20) -> list[PaperData]:
        """Papers matching `query` as Hugging Face ranks them, at most `limit`, de-duplicated."""
        query = query.strip()
        if not query or limit <= 0:
            return []
        params = {"q": query, "limit": str(limit)}
        parsed = await self._get("/api/papers/search", params, parse_items)
        papers: dict[str, PaperData] = {}
        for paper in parsed:
            papers.setdefault(paper.arxiv_id, paper)
        return list(papers.values())[:limit]

    async def paper(self, arxiv_id: str) -> PaperData | None:
        """One paper by arXiv id (any version suffix ignored); None if Hugging Face has none."""
        bare = strip_version(arxiv_id)
        if not bare:
            return None
        try:
            return await self._get(
                f"/api/papers/{quote(bare, safe='')}", {}, _parse_paper, not_found_ok=True
            )
        except _NotFound:
            return None

    async def _get(
        self,
        path: str,
        params: dict[str, str],
        parse: Callable[[Any], T],
        *,
        not_found_ok: bool = False,
        conditional: bool = False,
    ) -> T:
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return await self._attempt(path, params, parse, not_found_ok, conditional)
            except _Retryable as failure:
                observer().source_failed(SOURCE, failure.kind)
                if attempt == attempts:
                    raise SourceUnavailable(
                        f"Hugging Face {path} failed after {attempts} attempts: {failure.reason}"
                    ) from None
                delay = self._delay(attempt, failure.retry_after)
                log.warning(
                    "Hugging Face %s failed (%s); retry %d/%d in %.2fs",
                    path, failure.reason, attempt, self.max_retries, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        path: str,
        params: dict[str, str],
        parse: Callable[[Any], T],
        not_found_ok: bool,
        conditional: bool,
    ) -> T:
        key = f"{path}?{urlencode(params)}"
        # Taken now, so a 304 is answered from what was validated even if evicted meanwhile.
        cached = self._cache.get(key) if conditional else None
        headers = cached.conditional_headers() if cached is not None else None
        try:
            response = await self._http.get(path, params=params, headers=headers)
        except httpx.TimeoutException:
            raise _Retryable("timeout", "timeout") from None
        except httpx.RequestError as error:  # connection, protocol, decoding, redirect loops
            raise _Retryable(f"connection error ({type(error).__name__})", "connection") from None
        status = response.status_code
        if status == 304:
            if cached is None:  # nothing was asked conditionally: a confused server or proxy
                raise _Retryable("unexpected 304", "malformed")
            self.not_modified += 1
            self._remember(key, cached)
            # The key holds the path, and a path is always parsed by the same function.
            return cast(T, cached.value)
        if status == 404 and not_found_ok:
            raise _NotFound
        if status == 429:
            wait = _retry_after(response.headers.get("Retry-After"))
            raise _Retryable("429 rate limited", "rate_limited", wait)
        if status >= 500:
            raise _Retryable(f"HTTP {status}", "server_error")
        if status >= 400 or status < 200:
            observer().source_failed(SOURCE, "client_error")
            raise SourceUnavailable(f"Hugging Face {path} answered HTTP {status}")
        try:
            value = parse(response.json())
        except (ValueError, HFParseError):  # JSONDecodeError and UnicodeDecodeError too
            raise _Retryable("malformed JSON", "malformed") from None
        if conditional:
            etag = response.headers.get("ETag")
            last_modified = response.headers.get("Last-Modified")
            if etag or last_modified:
                self._remember(key, _Cached(etag or None, last_modified or None, value))
            else:  # today's list grows during the day: without validators, never reuse it
                self._cache.pop(key, None)
        return value

    def _remember(self, key: str, entry: _Cached) -> None:
        if self.cache_size == 0:
            return
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff: float = self.backoff_base * 2 ** (attempt - 1)
        backoff += random.uniform(0, backoff / 4)
        if retry_after is None:
            return backoff
        return max(min(retry_after, self.max_retry_after), backoff)


def _count_and_parse(payload: Any) -> tuple[int, list[PaperData]]:
    # The short-page check needs the raw length: unparseable items still occupy page slots.
    return len(payload) if isinstance(payload, list) else 0, parse_items(payload)


def _parse_paper(payload: Any) -> PaperData | None:
    if not isinstance(payload, dict):
        raise HFParseError(f"expected a JSON object, got {type(payload).__name__}")
    return parse_item(payload)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date); None if unusable."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
