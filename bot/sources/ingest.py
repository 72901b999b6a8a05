"""Fetch Daily Papers lists and keep them in the store (papers upserted, listings ranked)."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Protocol

from storage.papers import PaperData
from storage.store import Store

__all__ = ["DailySource", "ingest_day", "ingest_days"]

log = logging.getLogger(__name__)


class DailySource(Protocol):
    """Anything that lists a day's papers, e.g. `HuggingFaceClient`."""

    async def daily(self, day: date) -> list[PaperData]: ...


async def ingest_day(store: Store, client: DailySource, day: date, now: datetime) -> int:
    """Fetch `day`'s list, upsert its papers and record the listing ranked by upvotes.

    Returns the number of papers. An empty answer (weekends, holidays) records nothing, so a
    listing stored earlier is kept. `SourceUnavailable` propagates.
    """
    unique: dict[str, PaperData] = {}
    for paper in await client.daily(day):
        unique.setdefault(paper.arxiv_id, paper)
    papers = list(unique.values())
    if not papers:
        log.info("No Daily Papers for %s; stored listing left as it is", day)
        return 0
    # sorted() is stable, so equal upvotes keep the API's order.
    ranked = sorted(papers, key=lambda paper: -(paper.upvotes or 0))
    async with store.transaction() as repos:
        ids = await repos.papers.upsert(papers, now)
        await repos.papers.record_listing(
            day, [(ids[paper.arxiv_id], paper.upvotes) for paper in ranked]
        )
    log.info("Ingested %d Daily Papers for %s", len(papers), day)
    return len(papers)


async def ingest_days(
    store: Store, client: DailySource, first: date, last: date, now: datetime
) -> dict[date, int]:
    """Ingest every day from `first` to `last` inclusive (either order), oldest first."""
    start, end = min(first, last), max(first, last)
    counts: dict[date, int] = {}
    day = start
    while day <= end:
        counts[day] = await ingest_day(store, client, day, now)
        day += timedelta(days=1)
    return counts
