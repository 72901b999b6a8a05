"""The stored vectors as one matrix in memory, searched exactly.

Why a matrix: sqlite-vec is a loadable extension, and Python builds without
`enable_load_extension` cannot load it; pgvector answers inside PostgreSQL but Debian 12's
server has no package of it (where a server has it, the database answers and no matrix is
loaded: storage/vectors.py). Every vector is a unit vector, so one matrix-vector product gives
every paper's cosine similarity: at 100k papers (384 float32 each, 147 MiB) that and picking
the best 50 take about 7 ms on 2 cores, without the GIL (numpy's BLAS), so the full-text
search runs beside it.

The matrix follows the database: new vectors (ids above the last one loaded) are appended;
when the count says others changed (a backfill of older papers, papers deleted), it is read
afresh.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from bot.semantic.model import DIMENSIONS
from storage.store import Store

log = logging.getLogger(__name__)

PAGE = 5000  # vectors read per query while loading


def as_vector(stored: bytes) -> NDArray[np.float32]:
    return np.frombuffer(stored, dtype="<f4")


def as_bytes(vector: NDArray[np.float32]) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


class VectorIndex:
    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self._ids = np.zeros(0, np.int64)
        self._matrix = np.zeros((0, DIMENSIONS), np.float32)  # rows beyond `_size` are spare
        self._size = 0
        # `nearest` runs in worker threads while `refresh` swaps arrays in on the loop.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._size

    async def refresh(self, store: Store) -> None:
        """Catch up with the stored vectors."""
        last = int(self._ids[self._size - 1]) if self._size else 0
        new = await self._read(store, after=last)
        async with store.reading() as repos:
            stored = await repos.vectors.count(self.model_id)
        if stored != self._size + len(new):
            log.info("Reloading %d paper vectors (older ones changed)", stored)
            self._replace(await self._read(store, after=0))
        elif new:
            self._append(new)

    def similarity(self, query: NDArray[np.float32], paper_ids: Iterable[int]) -> dict[int, float]:
        """The cosine similarity to `query` of those of `paper_ids` held here (ids are held in
        ascending order: they are read and appended so)."""
        with self._lock:
            ids, matrix = self._ids[: self._size], self._matrix[: self._size]
        wanted = np.array(sorted(set(paper_ids)), np.int64)
        rows = np.searchsorted(ids, wanted)
        held = rows < len(ids)
        held[held] = ids[rows[held]] == wanted[held]
        scores = matrix[rows[held]] @ query.astype(np.float32)
        return {int(pid): float(score) for pid, score in zip(wanted[held], scores, strict=True)}

    def nearest(self, query: NDArray[np.float32], k: int) -> list[tuple[int, float]]:
        """The `k` stored papers most like `query` (a unit vector), with their cosine
        similarity, most alike first."""
        with self._lock:
            ids, matrix = self._ids[: self._size], self._matrix[: self._size]
        if not len(ids) or k <= 0:
            return []
        scores = matrix @ query.astype(np.float32)
        k = min(k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(int(ids[i]), float(scores[i])) for i in best]

    async def _read(self, store: Store, *, after: int) -> list[tuple[int, bytes]]:
        rows: list[tuple[int, bytes]] = []
        while True:
            async with store.reading() as repos:
                page = await repos.vectors.page(self.model_id, after, PAGE)
            rows += page
            if len(page) < PAGE:
                return rows
            after = page[-1][0]

    def _replace(self, rows: list[tuple[int, bytes]]) -> None:
        ids = np.array([paper_id for paper_id, _ in rows], np.int64)
        matrix = np.zeros((len(rows), DIMENSIONS), np.float32)
        for row, (_, stored) in enumerate(rows):
            matrix[row] = as_vector(stored)
        with self._lock:
            self._ids, self._matrix, self._size = ids, matrix, len(rows)

    def _append(self, rows: list[tuple[int, bytes]]) -> None:
        size = self._size + len(rows)
        ids, matrix = self._ids, self._matrix
        if size > len(ids):
            # Room to grow by half again, so a day's papers do not copy the whole matrix.
            capacity = max(size, len(ids) * 3 // 2)
            ids = np.zeros(capacity, np.int64)
            matrix = np.zeros((capacity, DIMENSIONS), np.float32)
            ids[: self._size] = self._ids[: self._size]
            matrix[: self._size] = self._matrix[: self._size]
        for row, (paper_id, stored) in enumerate(rows, start=self._size):
            ids[row] = paper_id
            matrix[row] = as_vector(stored)
        with self._lock:
            self._ids, self._matrix, self._size = ids, matrix, size
