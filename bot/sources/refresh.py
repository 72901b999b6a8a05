"""Keeping the store fresh: the recent Daily Papers lists fetched at start and refreshed on a
schedule, or the demo sample when Hugging Face cannot be reached and nothing is stored; with
search by meaning on, the new papers' vectors after each; then the pending saves retried
(papers asked for by link that could not be fetched before)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta

from bot.daily import due_list_day
from bot.demo import load_demo_corpus
from bot.saving import complete_pending_saves
from bot.sources.ingest import DailySource, ingest_days
from bot.sources.lookup import PaperLookup
from storage import search_index
from storage.store import Store

log = logging.getLogger(__name__)

RECENT_DAYS = 3  # today and the two days before: covers the time zones where today's is not out
PUBLISHING_INTERVAL = 30 * 60.0  # seconds between refreshes Monday-Friday (UTC)
WEEKEND_INTERVAL = 3 * 60 * 60.0  # Hugging Face publishes no Daily Papers at weekends
RETRY_BASE = 60.0  # first retry after a failed refresh; doubles per failure up to the interval
# Papers embedded after a refresh at most (about 20 ms each): a day's lists are ~50; a store
# filled before search by meaning was on is caught up by `paperboy embed`, not by the worker.
EMBED_PER_REFRESH = 500

# Embeds up to that many stored papers that have no vector yet; returns how many it embedded.
EmbedNew = Callable[[int], Awaitable[int]]


def refresh_interval(
    now: datetime,
    failures: int = 0,
    *,
    weekday: float = PUBLISHING_INTERVAL,
    weekend: float = WEEKEND_INTERVAL,
    retry_base: float = RETRY_BASE,
) -> float:
    """Seconds until the next refresh: `weekday` on publishing days and `weekend` on Saturday
    and Sunday (judged in UTC; a naive `now` is read as UTC); after `failures` failed refreshes
    in a row, `retry_base * 2 ** (failures - 1)` capped at that interval."""
    if now.tzinfo is not None:
        now = now.astimezone(UTC)
    normal = weekday if now.weekday() < 5 else weekend
    if failures <= 0:
        return normal
    # The exponent is capped so that long outages cannot overflow the float.
    return min(retry_base * 2.0 ** min(failures - 1, 32), normal)


async def load_demo(store: Store, today: date, now: datetime) -> int:
    """Store the demo sample as one list dated `today`; returns how many papers it holds."""
    papers = load_demo_corpus()
    async with store.transaction() as repos:
        ids = await repos.papers.upsert(papers, now)
        await repos.papers.record_listing(today, [(ids[p.arxiv_id], None) for p in papers])
    return len(papers)


async def refresh_papers(
    store: Store, source: DailySource, now: datetime, *, deadline: float
) -> dict[date, int]:
    """Ingest the recent lists within `deadline` seconds, then compact the full-text index
    should the writes have left it in pieces; papers per day. Failures propagate."""
    today = now.date()
    async with asyncio.timeout(deadline):
        counts = await ingest_days(store, source, oldest_needed_list(now), today, now)
    await search_index.compact(store.engine)
    return counts


def oldest_needed_list(now: datetime) -> date:
    """The oldest list a refresh at `now` fetches: the recent days, and back to the list a
    post due in the last day carries (a post missed at Monday 00:00 UTC, caught up at noon,
    carries Friday's, which Monday's recent days do not reach)."""
    recent = now.date() - timedelta(days=RECENT_DAYS - 1)
    return min(recent, due_list_day(now - timedelta(days=1)))


async def ensure_papers(
    store: Store, source: DailySource, now: datetime, *, deadline: float
) -> str:
    """Fetch the recent lists; when Hugging Face can't be reached in `deadline` seconds and the
    store holds no papers, fall back to the demo sample. Returns a one-line status."""
    try:
        counts = await refresh_papers(store, source, now, deadline=deadline)
        return f"Fetched {sum(counts.values())} papers from Hugging Face Daily Papers."
    except Exception as exc:  # unreachable, slow, or malformed: the store has to do
        log.warning("Hugging Face Daily Papers unavailable at start: %s", _reason(exc))
    return await _fall_back(store, now)


async def embed_new_papers(embed: EmbedNew | None) -> None:
    """Store vectors for papers that have none (up to EMBED_PER_REFRESH); a failure is a
    warning, as search by meaning then answers from the vectors it has."""
    if embed is None:
        return
    try:
        embedded = await embed(EMBED_PER_REFRESH)
    except Exception as exc:
        log.warning("Papers not embedded for search by meaning: %s", _reason(exc))
        return
    if embedded == EMBED_PER_REFRESH:
        log.info("Embedded %d papers; more remain: `paperboy embed` catches up", embedded)
    elif embedded:
        log.info("Embedded %d new papers for search by meaning", embedded)


async def _fall_back(store: Store, now: datetime) -> str:
    """Serve what is stored, or the demo sample when nothing is."""
    async with store.transaction() as repos:
        stored = await repos.papers.count()
    if stored:
        return f"Hugging Face unreachable; serving the {stored} papers already stored."
    loaded = await load_demo(store, now.date(), now)
    return f"Hugging Face unreachable; loaded {loaded} demo papers (clearly marked as demo data)."


async def keep_papers_fresh(
    store: Store,
    source: DailySource,
    clock: Callable[[], datetime],
    *,
    interval: float = PUBLISHING_INTERVAL,
    weekend_interval: float = WEEKEND_INTERVAL,
    retry_base: float = RETRY_BASE,
    deadline: float = 120.0,
    embed_new: EmbedNew | None = None,
    lookup: PaperLookup | None = None,
) -> None:
    """Refresh the recent lists until cancelled: every `interval` seconds on publishing days,
    every `weekend_interval` at weekends, and sooner after a failure (see `refresh_interval`).
    After each successful refresh, the new papers are embedded with `embed_new` (when search
    by meaning is on).
    After each refresh, failed or not, the pending saves that are due are tried again
    (`bot.saving.complete_pending_saves`, with `lookup`).

    A failed refresh is one warning line; the store keeps serving (or, when empty, gets the demo
    sample). Each successful refresh is one info line, with how many pages were not modified.
    """
    failures = 0
    while True:
        before = _not_modified(source)
        try:
            counts = await refresh_papers(store, source, clock(), deadline=deadline)
        except Exception as exc:  # Hugging Face down, 429/5xx, malformed JSON, too slow
            failures += 1
            try:
                status = await _fall_back(store, clock())
            except Exception as store_exc:  # the store is down too; keep trying both
                status = f"The store failed as well ({_reason(store_exc)})."
            delay = _next(clock(), failures, interval, weekend_interval, retry_base)
            log.warning(
                "Daily Papers refresh failed (%s; %d in a row): %s Retrying in %gs.",
                _reason(exc), failures, status, delay,
            )  # fmt: skip
        else:
            failures = 0
            await embed_new_papers(embed_new)
            delay = _next(clock(), failures, interval, weekend_interval, retry_base)
            log.info(
                "Refreshed Daily Papers: %d papers over %d days, %d pages not modified (304); "
                "next in %gs.",
                sum(counts.values()), len(counts), _not_modified(source) - before, delay,
            )  # fmt: skip
        await retry_pending_saves(store, lookup, clock())
        await asyncio.sleep(delay)


async def retry_pending_saves(store: Store, lookup: PaperLookup | None, now: datetime) -> None:
    """Try the due pending saves once more; a failure is a warning (the next refresh retries)."""
    try:
        await complete_pending_saves(store, lookup, now)
    except Exception as exc:
        log.warning("Pending saves not retried: %s", _reason(exc))


def _next(
    now: datetime, failures: int, interval: float, weekend_interval: float, retry_base: float
) -> float:
    return refresh_interval(
        now, failures, weekday=interval, weekend=weekend_interval, retry_base=retry_base
    )


def _not_modified(source: DailySource) -> int:
    # Only HuggingFaceClient counts 304s; other sources (fakes, stubs) report none.
    count = getattr(source, "not_modified", 0)
    return count if isinstance(count, int) else 0


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__  # asyncio's TimeoutError has no message
