"""Named leases: a role (such as holding the Discord gateway) that one process at a time holds.

`acquire` is one INSERT … ON CONFLICT DO NOTHING or one UPDATE guarded by "mine or expired",
so of several processes racing for a lease exactly one sees its row changed; `acquire_many`
does the same for many leases in two statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import chunks
from storage.models import Lease
from storage.papers import dialect_insert


class LeaseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def acquire(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease `name` for `ttl`; False while another holder's is valid."""
        return name in await self.acquire_many([name], holder, now, ttl)

    async def acquire_many(
        self, names: Sequence[str], holder: str, now: datetime, ttl: timedelta
    ) -> set[str]:
        """`acquire` of many leases at once: the names `holder` now holds. New ones are taken
        by one INSERT; the others by one UPDATE (in chunks of IN_CHUNK)."""
        # Sorted: rows are locked in one order by every process, so that two batches taking
        # the same leases wait for each other at worst, and never deadlock.
        wanted = sorted(set(names))
        if not wanted:
            return set()
        insert = dialect_insert(self.session)
        created = await self.session.scalars(
            insert(Lease).on_conflict_do_nothing().returning(Lease.name),
            [{"name": name, "holder": holder, "expires_at": now + ttl} for name in wanted],
        )
        held = set(created)
        others = [name for name in wanted if name not in held]
        guard = or_(Lease.holder == holder, Lease.expires_at < now)
        return held | await self._update(others, guard, holder=holder, expires_at=now + ttl)

    async def renew_many(
        self, names: Sequence[str], holder: str, now: datetime, ttl: timedelta
    ) -> set[str]:
        """Extend the leases `names` that `holder` still holds: the names renewed. Unlike
        `acquire`, never takes a lease back: one released meanwhile stays released."""
        return await self._update(sorted(set(names)), Lease.holder == holder, expires_at=now + ttl)

    async def _update(
        self, names: Sequence[str], guard: ColumnElement[bool], **values: object
    ) -> set[str]:
        """Set `values` on the leases `names` whose rows meet `guard` (in chunks of IN_CHUNK):
        the names updated."""
        updated: set[str] = set()
        for chunk in chunks(names):
            updated.update(
                await self.session.scalars(
                    update(Lease)
                    .where(Lease.name.in_(chunk), guard)
                    .values(**values)
                    .returning(Lease.name)
                    .execution_options(synchronize_session=False)
                )
            )
        return updated

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up at once (a clean shutdown) so another process need not wait."""
        await self.session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))

    async def drop(self, name: str) -> None:
        """End the lease whoever holds it (what it guarded is gone)."""
        await self.session.execute(delete(Lease).where(Lease.name == name))

    async def get(self, name: str) -> Lease | None:
        return await self.session.scalar(
            select(Lease).where(Lease.name == name).execution_options(populate_existing=True)
        )

    async def held(self, now: datetime) -> list[Lease]:
        """Leases currently held (not expired), by name."""
        result = await self.session.scalars(
            select(Lease).where(Lease.expires_at >= now).order_by(Lease.name)
        )
        return list(result)
