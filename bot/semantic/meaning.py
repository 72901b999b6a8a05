"""The one service search by meaning offers the core: nearest papers to a question, papers
like the ones a user saved, and vectors for papers stored without one."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from bot.semantic.model import BATCH, MODEL_ID, SentenceModel
from bot.semantic.stored import as_bytes, as_vector
from storage.models import Paper
from storage.store import Repositories, Store

if TYPE_CHECKING:
    from bot.semantic.index import VectorIndex

log = logging.getLogger(__name__)

EMBED_PAGE = 256  # papers read, embedded and stored per transaction


def paper_text(paper: Paper) -> str:
    """What a paper's vector is made of: its title and its summary (the AI summary, short
    and plain, or else the abstract)."""
    return f"{paper.title}. {paper.ai_summary or paper.abstract}"


@dataclass
class Semantic:
    """Search by meaning over one store's papers."""

    store: Store
    model: SentenceModel
    # Seconds between catching up with vectors other processes stored (the worker embeds a
    # refresh's new papers; `paperboy serve` finds them within this time).
    refresh_every: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _index: VectorIndex | None = field(default=None, repr=False)
    _database_searches: bool | None = None  # pgvector answers `nearest` (see `_in_database`)
    _loaded_at: float | None = None
    _refreshing: asyncio.Task[None] | None = field(default=None, repr=False)
    _first_load: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def index(self) -> VectorIndex:
        """The stored vectors in memory, made at the first search (faiss is imported then:
        a process that answers no searches, like a worker serving digests, never holds it)."""
        if self._index is None:
            from bot.semantic.index import VectorIndex

            self._index = VectorIndex(MODEL_ID)
        return self._index

    async def embed_query(self, text: str) -> NDArray[np.float32]:
        """`text` as a unit vector. In a thread: the model does not hold the GIL, so a
        full-text search on the loop's side runs meanwhile."""
        (vector,) = await asyncio.to_thread(self.model.embed, [text])
        return np.asarray(vector, np.float32)

    async def nearest(self, query: NDArray[np.float32], k: int) -> list[tuple[int, float]]:
        """The `k` stored papers closest in meaning to `query` (from `embed_query`), with
        their cosine similarity: found by the database when it has pgvector's index, else in
        the index in memory (in a thread: faiss does not hold the GIL either)."""
        if await self._in_database():
            async with self.store.reading() as repos:
                return await repos.vectors.nearest(as_bytes(query), MODEL_ID, k)
        await self._keep_fresh()
        return await asyncio.to_thread(self.index.nearest, query, k)

    async def _in_database(self) -> bool:
        # Looked up once: a database is migrated before any use, and no migration drops
        # pgvector's column.
        if self._database_searches is None:
            async with self.store.reading() as repos:
                self._database_searches = await repos.vectors.in_database()
        return self._database_searches

    async def vectors_of(self, repos: Repositories, paper_ids: Iterable[int]) -> dict[int, bytes]:
        """The stored vectors of those of `paper_ids` that have one by this model."""
        return await repos.vectors.of(paper_ids, MODEL_ID)

    def like_saved(
        self, saved: Sequence[bytes], candidates: Mapping[int, bytes], threshold: float
    ) -> dict[int, float]:
        """Each candidate at least `threshold` alike (cosine) to one of the `saved` vectors,
        with its best similarity."""
        if not saved or not candidates:
            return {}
        ids = list(candidates)
        matrix = np.stack([as_vector(candidates[paper_id]) for paper_id in ids])
        best = (matrix @ np.stack([as_vector(vector) for vector in saved]).T).max(axis=1)
        return {
            pid: float(score) for pid, score in zip(ids, best, strict=True) if score >= threshold
        }

    async def embed_missing(self, *, most: int | None = None) -> int:
        """Embed and store papers that have no vector by this model, newest first, up to
        `most` (all when None); how many were embedded."""
        done = 0
        while most is None or done < most:
            page = EMBED_PAGE if most is None else min(EMBED_PAGE, most - done)
            async with self.store.reading() as repos:
                papers = await repos.vectors.missing(MODEL_ID, page)
            if not papers:
                break
            texts = [paper_text(paper) for paper in papers]
            # One thread call per batch of the model: a cancelled backfill (a console closing,
            # a worker stopping) then waits for one batch to finish in its thread, not a page.
            vectors = np.concatenate(
                [
                    await asyncio.to_thread(self.model.embed, texts[at : at + BATCH])
                    for at in range(0, len(texts), BATCH)
                ]
            )
            async with self.store.transaction() as repos:
                await repos.vectors.put(
                    {
                        paper.id: as_bytes(vector)
                        for paper, vector in zip(papers, vectors, strict=True)
                    },
                    MODEL_ID,
                )
            done += len(papers)
        return done

    async def prepare_search(self) -> str:
        """Read the model's files and the stored vectors now (at the start of a process that
        answers searches), so the first search need not; no vectors when the database searches
        them. Says where the vectors are searched."""
        await asyncio.to_thread(self.model.warm)
        if await self._in_database():
            return "the database searches the paper vectors (pgvector)"
        async with self._first_load:  # concurrent first searches read the vectors once
            if self._loaded_at is None:
                await self.index.refresh(self.store)
                self._loaded_at = self.clock()
        return f"{len(self.index):,} paper vectors in memory"

    async def _keep_fresh(self) -> None:
        if self._loaded_at is None:
            await self.prepare_search()
            return
        stale = self.clock() - self._loaded_at >= self.refresh_every
        if stale and (self._refreshing is None or self._refreshing.done()):
            self._loaded_at = self.clock()
            self._refreshing = asyncio.create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            await self.index.refresh(self.store)
        except Exception as exc:  # the database is away; the index answers as it was
            log.warning("Paper vectors not refreshed: %s", exc)
