"""`/papers topic`: local full-text search merged with Hugging Face search when it is quick.

Ranking (done by the store's search statement): full-text relevance first; papers within 10%
of each other's relevance count as equally relevant and are ordered by recency, then upvotes.
Papers holding every word of the topic come first; Hugging Face's and then papers holding
most of the words fill a page they leave short.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from bot.words import search_terms
from storage.models import Paper
from storage.papers import PaperData
from storage.store import Repositories, Store

log = logging.getLogger(__name__)


class SearchSource(Protocol):
    async def search(self, query: str, limit: int = 20) -> list[PaperData]: ...


async def _most_words(
    repos: Repositories, terms: Sequence[str], limit: int, found: Sequence[Paper]
) -> list[Paper]:
    """Up to `limit - len(found)` papers holding some of the words, not in `found`."""
    known = {paper.id for paper in found}
    some = await repos.papers.search(terms, limit=limit + len(found), match_all=False)
    return [paper for paper in some if paper.id not in known][: limit - len(found)]


async def find_papers(
    store: Store,
    topic: str,
    *,
    limit: int,
    source: SearchSource | None,
    budget: float,
) -> list[Paper]:
    """Best papers for `topic`: the store's papers holding all its words; when fewer than
    `limit` do, Hugging Face search's next, then the store's papers holding most of the
    words. Hugging Face's results count only if they arrive within `budget` seconds; they are
    stored, so they are found locally next time. A store that can answer in full is not held
    up by, and does not load, Hugging Face (the daily lists keep it current)."""
    terms = search_terms(topic)
    async with store.reading() as repos:
        papers = await repos.papers.search(terms, limit=limit)
    if len(papers) < limit and source is not None:
        papers = await _with_hugging_face(store, source, topic, terms, papers, limit, budget)
    if len(papers) < limit and len(terms) > 1:
        async with store.reading() as repos:
            papers += await _most_words(repos, terms, limit, papers)
    return papers


async def _with_hugging_face(
    store: Store,
    source: SearchSource,
    topic: str,
    terms: Sequence[str],
    local: list[Paper],
    limit: int,
    budget: float,
) -> list[Paper]:
    """`local` (the store's papers holding every word) topped up with what Hugging Face
    search finds for `topic` in time."""
    found = await _learn(store, source, topic, limit=limit * 2, budget=budget)
    if not found:
        return local
    known = {paper.arxiv_id for paper in local}
    if any(arxiv_id not in known for arxiv_id in found):
        # Newly learnt papers that hold the words compete on relevance with the rest.
        async with store.reading() as repos:
            local = await repos.papers.search(terms, limit=limit)
        known = {paper.arxiv_id for paper in local}
    async with store.reading() as repos:
        learnt = await repos.papers.by_ids(found.values())
    tail = [learnt[pid] for aid, pid in found.items() if aid not in known and pid in learnt]
    return (local + tail)[:limit]


async def _learn(
    store: Store, source: SearchSource, topic: str, *, limit: int, budget: float
) -> dict[str, int]:
    """What Hugging Face finds for `topic` (arXiv id -> stored paper id, in its order), stored;
    empty when it is slow, down or malformed."""
    try:
        found = await asyncio.wait_for(source.search(topic, limit=limit), timeout=budget)
    except Exception as exc:  # the store alone answers
        log.info("hugging face search skipped: %s", type(exc).__name__)
        return {}
    found = [paper for paper in found if not paper.is_demo]
    if not found:
        return {}
    async with store.transaction() as repos:
        ids = await repos.papers.upsert(found, datetime.now(UTC))
    return {paper.arxiv_id: ids[paper.arxiv_id] for paper in found}
