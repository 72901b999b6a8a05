"""`/papers topic`: local full-text search merged with Hugging Face search when it is quick.

Ranking: full-text relevance first; papers within 10% of each other's relevance count as
equally relevant and are ordered by recency, then upvotes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from storage.models import Paper
from storage.papers import PaperData, SearchHit
from storage.store import Store

log = logging.getLogger(__name__)

CANDIDATES = 50


class SearchSource(Protocol):
    async def search(self, query: str, limit: int = 20) -> list[PaperData]: ...


def search_terms(topic: str) -> list[str]:
    """Plain words of a topic; query syntax never reaches the full-text engine."""
    return re.findall(r"\w+", topic)


def rank(hits: Sequence[SearchHit]) -> list[Paper]:
    if not hits:
        return []
    best = max(hit.relevance for hit in hits)
    epoch = datetime.min.replace(tzinfo=UTC)

    def key(hit: SearchHit) -> tuple[int, datetime, int]:
        tier = int(10 * hit.relevance / best) if best > 0 else 0
        published = hit.paper.published_at or epoch
        return (tier, published, hit.paper.upvotes or 0)

    return [hit.paper for hit in sorted(hits, key=key, reverse=True)]


async def local_search(
    store: Store, terms: Sequence[str], *, limit: int, within: Sequence[int] | None = None
) -> list[Paper]:
    """All words must match; when nothing does, any word may."""
    async with store.transaction() as repos:
        hits = await repos.papers.search(terms, limit=CANDIDATES, within=within)
        if not hits and len(terms) > 1:
            hits = await repos.papers.search(
                terms, limit=CANDIDATES, match_all=False, within=within
            )
    return rank(hits)[:limit]


async def find_papers(
    store: Store,
    topic: str,
    *,
    limit: int,
    source: SearchSource | None,
    budget: float,
) -> list[Paper]:
    """Best papers for `topic`. Hugging Face results count only if they arrive within `budget`
    seconds; they are stored, so they are found locally next time."""
    terms = search_terms(topic)
    remote = asyncio.create_task(source.search(topic, limit=limit * 2)) if source else None
    local = await local_search(store, terms, limit=limit)
    if remote is None:
        return local
    try:
        found = await asyncio.wait_for(remote, timeout=budget)
    except Exception as exc:  # slow, down or malformed: the store alone answers
        # wait_for has cancelled the request if it was still running.
        log.info("hugging face search skipped: %s", type(exc).__name__)
        return local
    found = [paper for paper in found if not paper.is_demo]
    known = {paper.arxiv_id for paper in local}
    if not found:
        return local
    async with store.transaction() as repos:
        ids = await repos.papers.upsert(found, datetime.now(UTC))
        new_ids = [ids[p.arxiv_id] for p in found if p.arxiv_id not in known]
        extra = await repos.papers.by_ids(new_ids)
    if new_ids:
        # Newly learnt papers that match the words compete on relevance with the rest.
        local = await local_search(store, terms, limit=limit)
        known = {paper.arxiv_id for paper in local}
    tail = [extra[pid] for pid in new_ids if pid in extra and extra[pid].arxiv_id not in known]
    return (local + tail)[:limit]
