"""The inbox: platform events already taken in (a redelivered one is recognised and skipped),
and the reactions taken in but not yet acted on (`bot.inbox` works them through). `take_due`
is how a process takes rows of such waiting work, the late saves' too (`storage.pending`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import ColumnElement, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.db import rowcount
from storage.models import PendingReaction, ProcessedEvent, SavedLater
from storage.papers import dialect_insert

KEEP = timedelta(days=1)  # platforms give up redelivering long before this
# Rows of work for people, tried until done: each held by one process at a time (`due_at`).
Due = TypeVar("Due", PendingReaction, SavedLater)


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

    async def keep_reaction(self, reaction: PendingReaction) -> int:
        """Keep `reaction` (due at once); its id."""
        self.session.add(reaction)
        await self.session.flush()
        return reaction.id

    async def take_due(
        self, platform: str, now: datetime, *, hold: timedelta, most: int
    ) -> list[PendingReaction]:
        """Due reactions, each only once its member's earlier reactions on the same message
        are done: adding and removing the save emoji act in the order they were made, so a
        retried or slow add never lands after its remove."""
        earlier = aliased(PendingReaction)
        waits = exists().where(
            earlier.platform == PendingReaction.platform,
            earlier.workspace == PendingReaction.workspace,
            earlier.channel == PendingReaction.channel,
            earlier.message_id == PendingReaction.message_id,
            earlier.user == PendingReaction.user,
            earlier.id < PendingReaction.id,
        )
        return await take_due(
            self.session, PendingReaction, platform, now, ~waits, hold=hold, most=most
        )

    async def try_reaction_again(self, reaction_id: int, attempts: int, at: datetime) -> None:
        await try_again(self.session, PendingReaction, reaction_id, attempts, at)

    async def drop_reaction(self, reaction_id: int) -> None:
        await self.session.execute(delete(PendingReaction).where(PendingReaction.id == reaction_id))

    async def waiting(self) -> tuple[int, datetime | None, int]:
        """Reactions waiting to be acted on: how many, when the oldest was taken in, and the
        most tries one has had."""
        statement = select(
            func.count(), func.min(PendingReaction.received_at), func.max(PendingReaction.attempts)
        )
        count, oldest, tries = (await self.session.execute(statement)).one()
        return int(count), oldest, int(tries or 0)


async def take_due(
    session: AsyncSession,
    model: type[Due],
    platform: str,
    now: datetime,
    *conditions: ColumnElement[bool],
    hold: timedelta,
    most: int,
) -> list[Due]:
    """Up to `most` of the platform's rows due by `now` (and meeting `conditions`), the
    oldest first, each moved out of others' reach for `hold` (`due_at` moved on): one
    process takes each, and one that stops holding them hands them back when `hold` ends."""
    due = await session.scalars(
        select(model)
        .where(model.platform == platform, model.due_at <= now, *conditions)
        .order_by(model.due_at, model.id)
        .limit(most)
    )
    taken = []
    for row in due:
        moved = await session.execute(
            update(model)
            .where(model.id == row.id, model.due_at == row.due_at)
            .values(due_at=now + hold)
        )
        if rowcount(moved):  # else another process took it first
            taken.append(row)
    return taken


async def try_again(
    session: AsyncSession, model: type[Due], row_id: int, attempts: int, at: datetime
) -> None:
    await session.execute(
        update(model).where(model.id == row_id).values(attempts=attempts, due_at=at)
    )
