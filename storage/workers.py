"""Worker heartbeats: which delivering workers of a platform are live.

A worker records itself live for a while (`beat`, one upsert) and reads who else is; a worker
that stops beating drops out when its heartbeat runs out, and one that stops cleanly leaves at
once. Rows of workers dead for a day are pruned by the beats of the others.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import WorkerBeat
from storage.papers import dialect_insert

PRUNE_AFTER = timedelta(days=1)  # long after any heartbeat's end: a stalled worker keeps its row


class WorkerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def beat(self, worker: str, platform: str, now: datetime, ttl: timedelta) -> list[str]:
        """Record `worker` live on `platform` until `now + ttl`: the live workers of `platform`
        (itself included), sorted."""
        await self.session.execute(
            delete(WorkerBeat).where(WorkerBeat.expires_at < now - PRUNE_AFTER)
        )
        insert = dialect_insert(self.session)
        upsert = insert(WorkerBeat).values(worker=worker, platform=platform, expires_at=now + ttl)
        await self.session.execute(
            upsert.on_conflict_do_update(
                index_elements=["worker"],
                set_={"platform": platform, "expires_at": now + ttl},
            )
        )
        return await self.live(platform, now)

    async def live(self, platform: str, now: datetime) -> list[str]:
        """The workers of `platform` whose heartbeat has not run out, sorted."""
        result = await self.session.scalars(
            select(WorkerBeat.worker)
            .where(WorkerBeat.platform == platform, WorkerBeat.expires_at >= now)
            .order_by(WorkerBeat.worker)
        )
        return list(result)

    async def live_by_platform(self, now: datetime) -> dict[str, list[str]]:
        """platform -> its live workers, sorted (for `paperboy status`)."""
        result = await self.session.execute(
            select(WorkerBeat.platform, WorkerBeat.worker)
            .where(WorkerBeat.expires_at >= now)
            .order_by(WorkerBeat.platform, WorkerBeat.worker)
        )
        live: dict[str, list[str]] = {}
        for platform, worker in result.all():
            live.setdefault(platform, []).append(worker)
        return live

    async def leave(self, worker: str) -> None:
        """`worker` stops: the others count it out at once, not when its heartbeat runs out."""
        await self.session.execute(delete(WorkerBeat).where(WorkerBeat.worker == worker))
