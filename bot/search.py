"""`/papers topic`: local full-text search merged with Hugging Face search when it is quick.

Ranking (done by the store's search statement): full-text relevance first; papers within 10%
of each other's relevance count as equally relevant and are ordered by recency, then upvotes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from bot.words import is_word_character
from storage.models import Paper
from storage.papers import PaperData
from storage.store import Store

log = logging.getLogger(__name__)


class SearchSource(Protocol):
    async def search(self, query: str, limit: int = 20) -> list[PaperData]: ...


def search_terms(topic: str) -> list[str]:
    """Plain words of a topic (runs of letters, digits and their combining marks, as the
    full-text tokenizers read words); query syntax never reaches the full-text engine."""
    runs = itertools.groupby(topic, key=is_word_character)
    return ["".join(run) for is_word, run in runs if is_word]


async def local_search(store: Store, terms: Sequence[str], *, limit: int) -> list[Paper]:
    """All words must match; when nothing does, any word may."""
    async with store.reading() as repos:
        papers = await repos.papers.search(terms, limit=limit)
        if not papers and len(terms) > 1:
            papers = await repos.papers.search(terms, limit=limit, match_all=False)
    return papers


async def find_papers(
    store: Store,
    topic: str,
    *,
    limit: int,
    source: SearchSource | None,
    budget: float,
) -> list[Paper]:
    """Best papers for `topic`: the store's, topped up from Hugging Face search when the store
    has fewer than `limit`. Its results count only if they arrive within `budget` seconds; they
    are stored, so they are found locally next time. A store that can answer in full is not
    held up by, and does not load, Hugging Face (the daily lists keep it current)."""
    terms = search_terms(topic)
    local = await local_search(store, terms, limit=limit)
    if source is None or len(local) >= limit:
        return local
    found = await _learn(store, source, topic, limit=limit * 2, budget=budget)
    if not found:
        return local
    known = {paper.arxiv_id for paper in local}
    if any(arxiv_id not in known for arxiv_id in found):
        # Newly learnt papers that match the words compete on relevance with the rest.
        local = await local_search(store, terms, limit=limit)
        known = {paper.arxiv_id for paper in local}
    async with store.transaction() as repos:
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
