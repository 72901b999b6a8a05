"""Paper vectors: stored as bytes on every engine, read back by paper or in pages of ids."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import chunks
from storage.models import Paper, PaperVector
from storage.papers import dialect_insert


class VectorRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def put(self, vectors: Mapping[int, bytes], model: str) -> None:
        """Store (or replace) each paper's vector by `model`."""
        if not vectors:
            return
        insert = dialect_insert(self.session)
        # Three values a row, within SQLite's oldest limit of 999 a statement.
        for batch in chunks(list(vectors.items()), 300):
            statement = insert(PaperVector).values(
                [{"paper_id": pid, "model": model, "vector": vector} for pid, vector in batch]
            )
            await self.session.execute(
                statement.on_conflict_do_update(
                    index_elements=[PaperVector.paper_id],
                    set_={"model": statement.excluded.model, "vector": statement.excluded.vector},
                )
            )

    async def missing(self, model: str, limit: int) -> list[Paper]:
        """Up to `limit` papers with no vector by `model`, newest first."""
        query = (
            select(Paper)
            .outerjoin(
                PaperVector, (PaperVector.paper_id == Paper.id) & (PaperVector.model == model)
            )
            .where(PaperVector.paper_id.is_(None))
            .order_by(Paper.id.desc())
            .limit(limit)
        )
        return list(await self.session.scalars(query))

    async def of(self, paper_ids: Iterable[int], model: str) -> dict[int, bytes]:
        """The vectors by `model` of those of `paper_ids` that have one."""
        found: dict[int, bytes] = {}
        for batch in chunks(sorted(set(paper_ids))):
            rows = await self.session.execute(
                select(PaperVector.paper_id, PaperVector.vector).where(
                    PaperVector.model == model, PaperVector.paper_id.in_(batch)
                )
            )
            found.update(rows.tuples().all())
        return found

    async def page(self, model: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` (paper id, vector) by `model` with ids above `after`, in id order."""
        rows = await self.session.execute(
            select(PaperVector.paper_id, PaperVector.vector)
            .where(PaperVector.model == model, PaperVector.paper_id > after)
            .order_by(PaperVector.paper_id)
            .limit(limit)
        )
        return list(rows.tuples())

    async def count(self, model: str) -> int:
        query = select(func.count()).select_from(PaperVector).where(PaperVector.model == model)
        return int(await self.session.scalar(query) or 0)
