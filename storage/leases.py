"""Named leases: a role (such as holding the Discord gateway) that one process at a time holds.

`acquire` is one INSERT … ON CONFLICT DO NOTHING or one UPDATE guarded by "mine or expired",
so of several processes racing for a lease exactly one sees its row changed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Lease
from storage.papers import dialect_insert


class LeaseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def acquire(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease `name` for `ttl`; False while another holder's is valid."""
        insert = dialect_insert(self.session)
        created = await self.session.execute(
            insert(Lease)
            .values(name=name, holder=holder, expires_at=now + ttl)
            .on_conflict_do_nothing()
        )
        if created.rowcount:
            return True
        taken = await self.session.execute(
            update(Lease)
            .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at < now))
            .values(holder=holder, expires_at=now + ttl)
            .execution_options(synchronize_session=False)
        )
        return bool(taken.rowcount)

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up at once (a clean shutdown) so another process need not wait."""
        await self.session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))

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
