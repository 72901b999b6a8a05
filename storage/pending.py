"""Pending saves: papers users asked to save that could not be fetched yet, kept by arXiv id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import chunks, rowcount
from storage.inbox import take_due, try_again
from storage.models import PendingSave, SavedLater
from storage.papers import dialect_insert


class PendingSaveRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def keep(
        self,
        platform: str,
        workspace: str,
        user: str,
        arxiv_id: str,
        now: datetime,
        *,
        missing: bool,
    ) -> None:
        """Keep (or keep again) `arxiv_id` for the user. `missing`: the sources answered that
        they do not know it, which counts as an attempt. Asking again starts the count anew."""
        insert = dialect_insert(self.session)
        statement = insert(PendingSave).values(
            platform=platform, workspace=workspace, user=user, arxiv_id=arxiv_id,
            requested_at=now, attempts=1 if missing else 0, last_attempt_at=now,
            given_up_at=None,
        )  # fmt: skip
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["platform", "workspace", "user", "arxiv_id"],
                set_={
                    "requested_at": now,
                    "attempts": statement.excluded.attempts,
                    "last_attempt_at": now,
                    "given_up_at": None,
                },
            )
        )

    async def drop(self, platform: str, workspace: str, user: str, arxiv_ids: Sequence[str]) -> int:
        """Forget the user's pending saves of `arxiv_ids`; how many there were."""
        if not arxiv_ids:
            return 0
        result = await self.session.execute(
            delete(PendingSave).where(
                PendingSave.platform == platform,
                PendingSave.workspace == workspace,
                PendingSave.user == user,
                PendingSave.arxiv_id.in_(list(arxiv_ids)),
            )
        )
        return rowcount(result)

    async def of_user(self, platform: str, workspace: str, user: str) -> list[PendingSave]:
        """The user's pending saves, the latest asked for first."""
        result = await self.session.scalars(
            select(PendingSave)
            .where(
                PendingSave.platform == platform,
                PendingSave.workspace == workspace,
                PendingSave.user == user,
            )
            .order_by(PendingSave.requested_at.desc(), PendingSave.arxiv_id)
        )
        return list(result)

    async def due(self, now: datetime, *, retry_after: timedelta, most: int) -> list[str]:
        """Ids of pending saves not given up and not tried within `retry_after`, the longest
        untried first, at most `most`."""
        last = func.min(PendingSave.last_attempt_at)
        result = await self.session.scalars(
            select(PendingSave.arxiv_id)
            .where(
                PendingSave.given_up_at.is_(None),
                or_(
                    PendingSave.last_attempt_at.is_(None),
                    PendingSave.last_attempt_at <= now - retry_after,
                ),
            )
            .group_by(PendingSave.arxiv_id)
            .order_by(last, PendingSave.arxiv_id)
            .limit(most)
        )
        return list(result)

    async def take(self, arxiv_ids: Sequence[str]) -> list[PendingSave]:
        """Remove and return every pending save of `arxiv_ids` (given up or not): their papers
        are here, and the callers save them."""
        taken: list[PendingSave] = []
        for some in chunks(list(arxiv_ids)):
            rows = list(
                await self.session.scalars(
                    select(PendingSave).where(PendingSave.arxiv_id.in_(some))
                )
            )
            taken.extend(rows)
            await self.session.execute(delete(PendingSave).where(PendingSave.arxiv_id.in_(some)))
        return taken

    async def record_attempt(
        self,
        arxiv_ids: Sequence[str],
        now: datetime,
        *,
        missing: bool,
        max_attempts: int,
        max_age: timedelta,
    ) -> int:
        """A retry of `arxiv_ids` that found nothing: `missing` when the sources answered that
        they do not know them (an attempt), else they could not be asked. Saves that reached
        `max_attempts` or were asked for longer than `max_age` ago are given up; how many."""
        if not arxiv_ids:
            return 0
        waiting = PendingSave.given_up_at.is_(None)
        given_up = 0
        for some in chunks(list(arxiv_ids)):
            values: dict[str, Any] = {"last_attempt_at": now}
            if missing:
                values["attempts"] = PendingSave.attempts + 1
            await self.session.execute(
                update(PendingSave).where(waiting, PendingSave.arxiv_id.in_(some)).values(**values)
            )
            result = await self.session.execute(
                update(PendingSave)
                .where(
                    waiting,
                    PendingSave.arxiv_id.in_(some),
                    or_(
                        PendingSave.attempts >= max_attempts,
                        PendingSave.requested_at <= now - max_age,
                    ),
                )
                .values(given_up_at=now)
            )
            given_up += rowcount(result)
        return given_up

    async def saved_later(
        self, platform: str, workspace: str, user: str, paper_id: int, now: datetime
    ) -> None:
        """A pending save completed: its member is to be told (due at once)."""
        row = SavedLater(
            platform=platform, workspace=workspace, user=user, paper_id=paper_id,
            saved_at=now, attempts=0, due_at=now,
        )  # fmt: skip
        self.session.add(row)

    async def take_saved_later(
        self, platform: str, now: datetime, *, hold: timedelta, most: int
    ) -> list[SavedLater]:
        return await take_due(self.session, SavedLater, platform, now, hold=hold, most=most)

    async def tell_later(self, ids: Sequence[int], attempts: int, at: datetime) -> None:
        for row_id in ids:
            await try_again(self.session, SavedLater, row_id, attempts, at)

    async def told(self, ids: Sequence[int]) -> None:
        await self.session.execute(delete(SavedLater).where(SavedLater.id.in_(list(ids))))
