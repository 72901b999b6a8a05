"""Make sure the bot has papers to talk about: recent Daily Papers lists, or the demo sample."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta

from bot.demo import load_demo_corpus
from bot.ingest import DailySource, ingest_days
from storage.store import Store

log = logging.getLogger(__name__)

RECENT_DAYS = 3  # today and the two days before: covers the time zones where today's is not out


async def load_demo(store: Store, today: date, now: datetime) -> int:
    """Store the demo sample as one list dated `today`; returns how many papers it holds."""
    papers = load_demo_corpus()
    async with store.transaction() as repos:
        ids = await repos.papers.upsert(papers, now)
        await repos.papers.record_listing(today, [(ids[p.arxiv_id], None) for p in papers])
    return len(papers)


async def ensure_papers(
    store: Store, source: DailySource, now: datetime, *, deadline: float
) -> str:
    """Fetch the recent lists; when Hugging Face can't be reached in `deadline` seconds and the
    store holds no papers, fall back to the demo sample. Returns a one-line status."""
    today = now.date()
    try:
        async with asyncio.timeout(deadline):
            counts = await ingest_days(
                store, source, today - timedelta(days=RECENT_DAYS - 1), today, now
            )
        return f"Fetched {sum(counts.values())} papers from Hugging Face Daily Papers."
    except Exception as exc:  # unreachable, slow, or malformed: the store has to do
        log.warning("Hugging Face Daily Papers unavailable at start: %s", exc or type(exc).__name__)
    async with store.transaction() as repos:
        stored = await repos.papers.count()
    if stored:
        return f"Hugging Face unreachable; serving the {stored} papers already stored."
    loaded = await load_demo(store, today, now)
    return f"Hugging Face unreachable; loaded {loaded} demo papers (clearly marked as demo data)."


async def keep_papers_fresh(
    store: Store,
    source: DailySource,
    clock: Callable[[], datetime],
    *,
    interval: float,
    deadline: float = 120.0,
) -> None:
    """Refresh the recent lists every `interval` seconds until cancelled."""
    while True:
        log.info(await ensure_papers(store, source, clock(), deadline=deadline))
        await asyncio.sleep(interval)
