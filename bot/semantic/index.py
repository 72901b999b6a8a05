"""The stored vectors in memory, searched with faiss.

Why in memory: sqlite-vec is a loadable extension, and Python builds without
`enable_load_extension` cannot load it; pgvector answers inside PostgreSQL but Debian 12's
server has no package of it (where a server has it, the database answers and nothing is loaded
here: storage/vectors.py).

Why not one float32 matrix compared with every question: at 100k papers that is 147 MiB read
per question, 7 ms on an idle 2-core machine and 8-16 ms beside the full-text search, and it
pushes the sentence model out of the CPU's caches, so the question's vector took twice as long
as well. Up to EXACT_UP_TO vectors the index still compares every one (about 1 ms at 20k);
beyond, it is an inverted file: vectors grouped around sqrt(n) centroids (k-means on a sample),
held as 8-bit codes (384 bytes a paper, a quarter of float32), and a question compares only the
groups of its nearest eighth of the centroids: about 1.5 ms at 100k, finding 99.7% of the exact
best 50 on the benchmark's vectors (bench/RESULTS.md). Similarities from the codes are within
about 0.01 of the exact ones; exact ones come from the stored vectors (`Semantic.similarity`).

The index follows the database: new vectors (ids above the last one held) are added; when the
count says others changed (a backfill of older papers, papers deleted), or the index has
outgrown the kind it was built as, it is built afresh and swapped in.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from bot.semantic.model import DIMENSIONS
from storage.store import Store

log = logging.getLogger(__name__)

# One question at a time is searched: faiss's own threads would only contend with the sentence
# model and the full-text search for the two cores.
faiss.omp_set_num_threads(1)

EXACT_UP_TO = 20_000
PAGE = 5000  # vectors read per query while loading
TRAINING_PER_GROUP = 40  # faiss's k-means warns below 39 sample vectors per centroid
MIN_PROBES = 16


@dataclass(frozen=True)
class _Held:
    index: Any  # a faiss index taking ids (faiss has no type hints)
    size: int
    last_id: int
    rebuild_above: int  # past this many vectors the index is built afresh


_EMPTY = _Held(index=None, size=0, last_id=0, rebuild_above=-1)


class VectorIndex:
    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self._held = _EMPTY
        # faiss indexes may be searched by several threads at once but not while one adds.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._held.size

    async def refresh(self, store: Store) -> None:
        """Catch up with the stored vectors."""
        held = self._held
        async with store.reading() as repos:
            stored = await repos.vectors.count(self.model_id)
            newer = await repos.vectors.count(self.model_id, after=held.last_id)
        if held.index is None or stored > held.rebuild_above:
            self._held = await self._build(store, stored)
        elif stored != held.size + newer:
            log.info("Reloading %d paper vectors (older ones changed)", stored)
            self._held = await self._build(store, stored)
        elif newer:
            size, last_id = held.size, held.last_id
            async for ids, vectors in self._pages(store, after=held.last_id):
                with self._lock:
                    held.index.add_with_ids(vectors, ids)
                size, last_id = size + len(ids), int(ids[-1])
            self._held = _Held(held.index, size, last_id, held.rebuild_above)

    def nearest(self, query: NDArray[np.float32], k: int) -> list[tuple[int, float]]:
        """The `k` stored papers most like `query` (a unit vector), with their cosine
        similarity, most alike first."""
        held = self._held
        if held.index is None or not held.size or k <= 0:
            return []
        with self._lock:
            scores, ids = held.index.search(
                np.asarray(query, np.float32).reshape(1, -1), min(k, held.size)
            )
        return [
            (int(pid), float(score))
            for pid, score in zip(ids[0], scores[0], strict=True)
            if pid >= 0
        ]

    async def _build(self, store: Store, count: int) -> _Held:
        index, rebuild_above = _new_index(count)
        if not index.is_trained:
            sample = await self._sample(store, count, index.nlist * TRAINING_PER_GROUP)
            await asyncio.to_thread(index.train, sample)
        size, last_id = 0, 0
        async for ids, vectors in self._pages(store, after=0):
            # Not shared yet, so no lock; in a thread, as placing 5,000 vectors takes ~20 ms.
            await asyncio.to_thread(index.add_with_ids, vectors, ids)
            size, last_id = size + len(ids), int(ids[-1])
        return _Held(index, size, last_id, rebuild_above)

    async def _sample(self, store: Store, count: int, wanted: int) -> NDArray[np.float32]:
        """`wanted` of the `count` stored vectors, drawn evenly from old and new."""
        picked = np.zeros(count, bool)
        picked[np.random.default_rng(0).choice(count, min(wanted, count), replace=False)] = True
        drawn, start = [], 0
        async for _, vectors in self._pages(store, after=0):
            # More vectors than counted (stored meanwhile) are simply not drawn.
            drawn.append(vectors[: len(picked) - start][picked[start : start + len(vectors)]])
            start += len(vectors)
        return np.concatenate(drawn)

    async def _pages(
        self, store: Store, *, after: int
    ) -> AsyncIterator[tuple[NDArray[np.int64], NDArray[np.float32]]]:
        """The stored vectors with ids above `after`, PAGE at a time, as (ids, matrix)."""
        while True:
            async with store.reading() as repos:
                page = await repos.vectors.page(self.model_id, after, PAGE)
            if not page:
                return
            ids = np.array([paper_id for paper_id, _ in page], np.int64)
            vectors = np.frombuffer(b"".join(stored for _, stored in page), "<f4")
            yield ids, vectors.reshape(len(page), DIMENSIONS).astype(np.float32)
            if len(page) < PAGE:
                return
            after = int(ids[-1])


def _new_index(count: int) -> tuple[Any, int]:
    """An empty index for `count` vectors, and the count past which it is built afresh: an
    exact one grows slow past EXACT_UP_TO; an inverted file's groups grow uneven past twice
    the vectors its centroids were drawn from."""
    if count <= EXACT_UP_TO:
        return faiss.IndexIDMap(faiss.IndexFlatIP(DIMENSIONS)), EXACT_UP_TO
    groups = round(math.sqrt(count))
    index = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(DIMENSIONS),
        DIMENSIONS,
        groups,
        faiss.ScalarQuantizer.QT_8bit,
        faiss.METRIC_INNER_PRODUCT,
    )
    index.nprobe = max(MIN_PROBES, groups // 8)
    return index, 2 * count
