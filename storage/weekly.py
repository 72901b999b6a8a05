"""Channels' weekly team posts: when each comes (day, local time, timezone) and whether it is
on; and the papers each carried."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.db import rowcount
from storage.deliveries import FINISHED, WEEKLY
from storage.models import Delivery, WeeklyItem, WeeklyPost
from storage.papers import dialect_insert


class WeeklyPostRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, platform: str, workspace: str, channel: str) -> WeeklyPost | None:
        return await self.session.get(WeeklyPost, (platform, workspace, channel))

    async def turn_on(
        self,
        platform: str,
        workspace: str,
        channel: str,
        *,
        weekday: int,
        post_time: str,
        timezone: str,
        by: str,
        now: datetime,
    ) -> WeeklyPost:
        """Turn the channel's weekly post on at this day and time (or move it there)."""
        post = await self.get(platform, workspace, channel)
        if post is None:
            post = WeeklyPost(platform=platform, workspace=workspace, channel=channel)
            self.session.add(post)
        post.enabled = True
        post.disabled_reason = None
        post.weekday = weekday
        post.post_time = post_time
        post.timezone = timezone
        post.created_by = by
        post.updated_at = now
        await self.session.flush()
        return post

    async def turn_off(
        self, platform: str, workspace: str, channel: str, now: datetime, reason: str | None = None
    ) -> WeeklyPost | None:
        """Turn it off (with the reason when the channel could not be reached); the post as it
        was, or None when it was not on."""
        post = await self.get(platform, workspace, channel)
        if post is None or not post.enabled:
            return None
        post.enabled = False
        post.disabled_reason = reason[:200] if reason else None
        post.updated_at = now
        return post

    async def listed(
        self, *, enabled_only: bool, platform: str | None = None, limit: int | None = None
    ) -> Sequence[WeeklyPost]:
        """Weekly posts (on `platform`; the `limit` latest changed), the latest changed first."""
        query = select(WeeklyPost).order_by(WeeklyPost.updated_at.desc()).limit(limit)
        if enabled_only:
            query = query.where(WeeklyPost.enabled.is_(True))
        if platform is not None:
            query = query.where(WeeklyPost.platform == platform)
        return (await self.session.scalars(query)).all()

    async def record_sent(
        self, platform: str, workspace: str, channel: str, paper_ids: Sequence[int], now: datetime
    ) -> None:
        """Remember that the channel's weekly post carried these papers `now`."""
        if not paper_ids:
            return
        rows = [
            {"platform": platform, "workspace": workspace, "channel": channel, "paper_id": pid,
             "sent_at": now}
            for pid in paper_ids
        ]  # fmt: skip
        insert = dialect_insert(self.session)(WeeklyItem).values(rows)
        await self.session.execute(
            insert.on_conflict_do_update(
                index_elements=["platform", "workspace", "channel", "paper_id"],
                set_={"sent_at": insert.excluded.sent_at},
            )
        )

    async def carried(
        self,
        platform: str,
        workspace: str,
        channel: str,
        candidates: Sequence[int],
        *,
        since: datetime | None = None,
        before: datetime | None = None,
    ) -> set[int]:
        """Which of `candidates` the channel's weekly posts carried at or after `since` and
        before `before` (each bound when given)."""
        if not candidates:
            return set()
        query = select(WeeklyItem.paper_id).where(
            WeeklyItem.platform == platform,
            WeeklyItem.workspace == workspace,
            WeeklyItem.channel == channel,
            WeeklyItem.paper_id.in_(list(candidates)),
        )
        if since is not None:
            query = query.where(WeeklyItem.sent_at >= since)
        if before is not None:
            query = query.where(WeeklyItem.sent_at < before)
        return set(await self.session.scalars(query))

    async def prune_sent(self, before: datetime, most: int) -> int:
        """Forget up to `most` papers weekly posts carried before `before`, the oldest first;
        how many went. A channel whose weekly post is still to be sent or retried (a ledger
        row not finished) keeps them all: its retry reads those sent since it first ran."""
        item = aliased(WeeklyItem)
        unfinished = exists().where(
            Delivery.kind == WEEKLY,
            Delivery.platform == item.platform,
            Delivery.workspace == item.workspace,
            Delivery.target == item.channel,
            Delivery.status.not_in(FINISHED),
        )
        oldest = (
            select(item.platform, item.workspace, item.channel, item.paper_id)
            .where(item.sent_at < before, ~unfinished)
            .order_by(item.sent_at)
            .limit(most)
        )
        key = tuple_(WeeklyItem.platform, WeeklyItem.workspace, WeeklyItem.channel,
                     WeeklyItem.paper_id)  # fmt: skip
        result = await self.session.execute(
            delete(WeeklyItem).where(key.in_(oldest)).execution_options(synchronize_session=False)
        )
        return rowcount(result)
