"""The inbox of processed platform events: a redelivered event is recognised and skipped."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import rowcount
from storage.models import ProcessedEvent
from storage.papers import dialect_insert

KEEP = timedelta(days=1)  # platforms give up redelivering long before this


class InboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def first_delivery(self, platform: str, event_id: str, now: datetime) -> bool:
        """Record the event; True only for the first process to see it. Entries older than
        KEEP are dropped on the way, so the table stays small."""
        await self.session.execute(
            delete(ProcessedEvent).where(ProcessedEvent.received_at < now - KEEP)
        )
        insert = dialect_insert(self.session)
        result = await self.session.execute(
            insert(ProcessedEvent)
            .values(platform=platform, event_id=event_id, received_at=now)
            .on_conflict_do_nothing()
        )
        return bool(rowcount(result))
