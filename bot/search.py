"""`/papers topic`: the store's full-text search, read for phrases, fused with search by
meaning when it is on, and topped up by Hugging Face search when it is quick.

Lexical ranking: the store's search statement ranks the papers holding every word of the topic
(full-text relevance; papers within 10% of each other's count as equally relevant and go by
recency, then upvotes); of its best CANDIDATES, those where the topic's words stand together
come first (`bot.phrases`). When fewer than a page hold every word, Hugging Face's results and
then the papers holding most of the words (the most words first) fill it, ranked lower.

Fusion (search by meaning on): the lexical ranking and the CANDIDATES papers nearest the topic
in meaning (cosine similarity of the sentence model's vectors, at least VECTOR_FLOOR) are
fused by reciprocal rank fusion (Cormack et al., 2009): a paper scores 1 / (RRF_K + rank) in
each ranking it is in. The words keep their promise, though: papers holding the topic as
written (every word, neighbouring words together) come first, then papers holding every
word, then the rest, each group by its fused score. So meaning orders papers the words cannot
tell apart and fills the page where words fall short; it never puts a paper that merely
resembles the topic above one that holds it. Neither side alone is enough: vectors find
"overthinking" for "reasoning models that think too long" but blur a method's name of several
words; the words hold the name but miss synonyms. On the relevance benchmark, plain RRF
(without the groups) put 112 on-topic papers in 170, the groups 118.

When papers holding the topic as written fill the page (most keywords and phrases), they are
the answer, in the words' order, and meaning is not asked: ordered by meaning instead, such
pages held as many on-topic papers on the relevance benchmark, and the topic's vector is the
costliest part of a search (the full-text search and it took turns for the 2 cores rather
than running side by side). So meaning is asked after the words, only where they fall short.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from bot.phrases import Phrasing
from bot.words import search_terms
from storage.models import Paper
from storage.papers import PaperData
from storage.store import Repositories, Store

if TYPE_CHECKING:
    from bot.semantic.meaning import Semantic

log = logging.getLogger(__name__)

CANDIDATES = 50  # papers each ranking puts forward, re-ranked or fused into a page
RRF_K = 60  # Cormack et al.'s constant: a rank's weight fades slowly past the first few
# Cosine similarity below which a paper is not put forward by meaning: a query of no meaning
# finds nothing rather than the least unlike papers. On the real archive, the best paper for
# "asdfghjkl", "zzzz qqqq", "1234" or an emoji reaches 0.14-0.29; the 10th best for the
# relevance benchmark's phrases and questions 0.44-0.64 (a lone keyword such as "latency"
# reaches 0.28, and its words find it).
VECTOR_FLOOR = 0.3


class SearchSource(Protocol):
    async def search(self, query: str, limit: int = 20) -> list[PaperData]: ...


async def find_papers(
    store: Store,
    topic: str,
    *,
    limit: int,
    source: SearchSource | None,
    budget: float,
    semantic: Semantic | None = None,
) -> list[Paper]:
    """Best papers for `topic` (see the module's docstring). Hugging Face's results count only
    if they arrive within `budget` seconds; they are stored, so they are found locally next
    time. A store that can answer in full is not held up by, and does not load, Hugging Face
    (the daily lists keep it current)."""
    lexical = await _lexical(store, source, topic, limit=limit, budget=budget)
    if semantic is None or len(lexical.as_written) >= limit:
        return lexical.ranked[:limit]
    try:
        near = await semantic.nearest(await semantic.embed_query(topic), CANDIDATES)
    except Exception as exc:  # the words alone answer
        log.warning("search by meaning failed, answered by words: %s", exc)
        return lexical.ranked[:limit]
    return await _fused(store, lexical, near, limit)


@dataclass(frozen=True)
class Lexical:
    """What the words find, best first."""

    every_word: list[Paper]  # holding every word of the topic, those holding its phrases first
    more: list[Paper]  # when those are short of a page: Hugging Face's, then most of the words
    as_written: frozenset[int]  # of `every_word`: each neighbouring pair of words together

    @property
    def ranked(self) -> list[Paper]:
        return self.every_word + self.more


async def _lexical(
    store: Store, source: SearchSource | None, topic: str, *, limit: int, budget: float
) -> Lexical:
    """Up to CANDIDATES papers holding every word of `topic`, phrases first; when fewer than
    `limit`, Hugging Face's, then those holding most of the words."""
    terms = search_terms(topic)
    phrasing = Phrasing.of(terms)
    async with store.reading() as repos:
        every_word = await repos.papers.search(terms, limit=CANDIDATES)
    more: list[Paper] = []
    if len(every_word) < limit and source is not None:
        every_word, more = await _with_hugging_face(
            store, source, topic, terms, every_word, limit, budget
        )
    if len(every_word) + len(more) < limit and len(terms) > 1:
        async with store.reading() as repos:
            more += await _most_words(repos, terms, phrasing, every_word + more)
    phrases = {paper.id: phrasing.phrases_found(paper) for paper in every_word}
    return Lexical(
        # sorted() is stable: papers holding as many phrases keep the store's order.
        every_word=sorted(every_word, key=lambda paper: -sum(phrases[paper.id])),
        more=more,
        as_written=frozenset(pid for pid, found in phrases.items() if all(found)),
    )


async def _most_words(
    repos: Repositories, terms: Sequence[str], phrasing: Phrasing, found: Sequence[Paper]
) -> list[Paper]:
    """Up to CANDIDATES papers holding some of the words, not in `found`: those holding more
    of them first, then more of the phrases."""
    known = {paper.id for paper in found}
    some = await repos.papers.search(terms, limit=CANDIDATES + len(found), match_all=False)
    fresh = [paper for paper in some if paper.id not in known][:CANDIDATES]
    return sorted(
        fresh,
        key=lambda paper: (-phrasing.words_found(paper), -sum(phrasing.phrases_found(paper))),
    )


async def _fused(
    store: Store, lexical: Lexical, nearest: Sequence[tuple[int, float]], limit: int
) -> list[Paper]:
    """The best `limit` papers: as written, then every word, then the rest; each group by
    reciprocal rank fusion of the two rankings (ties: the lexical ranking's order)."""
    by_words = [paper.id for paper in lexical.ranked]
    by_meaning = [paper_id for paper_id, similarity in nearest if similarity >= VECTOR_FLOOR]
    scores: dict[int, float] = {}
    for ranking in (by_words, by_meaning):
        for rank, paper_id in enumerate(ranking, start=1):
            scores[paper_id] = scores.get(paper_id, 0.0) + 1.0 / (RRF_K + rank)
    every_word = {paper.id for paper in lexical.every_word}
    best = sorted(
        scores,
        key=lambda pid: (pid not in lexical.as_written, pid not in every_word, -scores[pid]),
    )[:limit]
    loaded = {paper.id: paper for paper in lexical.ranked}
    if unloaded := [paper_id for paper_id in best if paper_id not in loaded]:
        async with store.reading() as repos:
            loaded |= await repos.papers.by_ids(unloaded)
    return [loaded[paper_id] for paper_id in best if paper_id in loaded]


async def _with_hugging_face(
    store: Store,
    source: SearchSource,
    topic: str,
    terms: Sequence[str],
    local: list[Paper],
    limit: int,
    budget: float,
) -> tuple[list[Paper], list[Paper]]:
    """`local` (the store's papers holding every word), searched again when Hugging Face
    search taught the store new papers in time, and the papers it found that do not hold
    every word, up to `limit` in all."""
    found = await _learn(store, source, topic, limit=limit * 2, budget=budget)
    if not found:
        return local, []
    known = {paper.arxiv_id for paper in local}
    if any(arxiv_id not in known for arxiv_id in found):
        # Newly learnt papers that hold the words compete on relevance with the rest.
        async with store.reading() as repos:
            local = await repos.papers.search(terms, limit=CANDIDATES)
        known = {paper.arxiv_id for paper in local}
    async with store.reading() as repos:
        learnt = await repos.papers.by_ids(found.values())
    tail = [learnt[pid] for aid, pid in found.items() if aid not in known and pid in learnt]
    return local, tail[: max(0, limit - len(local))]


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
