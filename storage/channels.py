"""Channel subscriptions, their topic filters, and the paper messages posted in channels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import chunks, rowcount
from storage.models import ChannelSubscription, ChannelTopic, Post

_INSERT_POST = insert(Post.__table__)


@dataclass(frozen=True)
class PostRecord:
    """A paper message sent to a channel: a reaction on it names the paper."""

    platform: str
    workspace: str
    channel: str
    message_id: str
    paper_id: int
    posted_at: datetime


@dataclass(frozen=True)
class ChannelPlanRow:
    """What a channel's subscription asks of its daily post, as `plans` reads it."""

    count: int
    topics: tuple[str, ...]
    post_time: str  # HH:MM, local
    timezone: str  # IANA


class ChannelRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def subscription(
        self, platform: str, workspace: str, channel: str
    ) -> ChannelSubscription | None:
        return await self.session.scalar(
            select(ChannelSubscription).where(
                ChannelSubscription.platform == platform,
                ChannelSubscription.workspace == workspace,
                ChannelSubscription.channel == channel,
            )
        )

    async def subscribe(
        self,
        platform: str,
        workspace: str,
        channel: str,
        *,
        post_time: str,
        timezone: str,
        count: int,
        days: str,
        by: str,
        now: datetime,
    ) -> ChannelSubscription:
        """Turn the daily post on (or update its settings); topics are kept."""
        subscription = await self.subscription(platform, workspace, channel)
        if subscription is None:
            subscription = ChannelSubscription(
                platform=platform, workspace=workspace, channel=channel
            )
            self.session.add(subscription)
        subscription.enabled = True
        subscription.disabled_reason = None
        subscription.post_time = post_time
        subscription.timezone = timezone
        subscription.count = count
        subscription.days = days
        subscription.created_by = by
        subscription.updated_at = now
        await self.session.flush()
        return subscription

    async def plans(
        self, platform: str, channels: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], ChannelPlanRow]:
        """The subscriptions' plans (post count, topic filters, local time) of many (workspace,
        channel) pairs, one query per IN_CHUNK of them; pairs without a subscription are left
        out."""
        found: dict[tuple[str, str], tuple[ChannelPlanRow, list[str]]] = {}
        for some in chunks(list(dict.fromkeys(channels))):
            rows = await self.session.execute(
                select(
                    ChannelSubscription.workspace,
                    ChannelSubscription.channel,
                    ChannelSubscription.count,
                    ChannelSubscription.post_time,
                    ChannelSubscription.timezone,
                    ChannelTopic.topic,
                )
                .outerjoin(ChannelTopic, ChannelTopic.subscription_id == ChannelSubscription.id)
                .where(
                    ChannelSubscription.platform == platform,
                    tuple_(ChannelSubscription.workspace, ChannelSubscription.channel).in_(some),
                )
                .order_by(ChannelTopic.topic)
            )
            for workspace, channel, count, post_time, timezone, topic in rows:
                plan = ChannelPlanRow(count, (), post_time, timezone)
                _, topics = found.setdefault((workspace, channel), (plan, []))
                if topic is not None:
                    topics.append(topic)
        return {
            where: replace(plan, topics=tuple(topics)) for where, (plan, topics) in found.items()
        }

    async def topics(self, subscription_id: int) -> list[str]:
        result = await self.session.scalars(
            select(ChannelTopic.topic)
            .where(ChannelTopic.subscription_id == subscription_id)
            .order_by(ChannelTopic.topic)
        )
        return list(result)

    async def add_topic(self, subscription_id: int, topic: str) -> bool:
        """Add a topic filter; False when it was already there."""
        if topic in await self.topics(subscription_id):
            return False
        self.session.add(ChannelTopic(subscription_id=subscription_id, topic=topic))
        await self.session.flush()
        return True

    async def remove_topic(self, subscription_id: int, topic: str) -> bool:
        result = await self.session.execute(
            delete(ChannelTopic).where(
                ChannelTopic.subscription_id == subscription_id, ChannelTopic.topic == topic
            )
        )
        return bool(rowcount(result))

    async def record_posts(self, posts: Sequence[PostRecord]) -> None:
        """Record paper messages sent to channels (one statement for all of them)."""
        # Core on the table, not the ORM: this runs for every message sent, and the ORM's
        # insert path costs more than the insert itself.
        await self.session.execute(_INSERT_POST, [asdict(post) for post in posts])

    async def paper_for_message(
        self, platform: str, workspace: str, channel: str, message_id: str
    ) -> int | None:
        return await self.session.scalar(
            select(Post.paper_id).where(
                Post.platform == platform,
                Post.workspace == workspace,
                Post.channel == channel,
                Post.message_id == message_id,
            )
        )

    async def posted_papers(
        self,
        platform: str,
        workspace: str,
        channel: str,
        candidates: Sequence[int],
        *,
        before: datetime | None = None,
    ) -> set[int]:
        """Which of `candidates` were already posted in this channel (before `before`)."""
        posted = await self.posted_papers_many(
            platform, [(workspace, channel)], candidates, before=before
        )
        return posted.get((workspace, channel), set())

    async def posted_papers_many(
        self,
        platform: str,
        channels: Sequence[tuple[str, str]],
        candidates: Sequence[int],
        *,
        before: datetime | None = None,
    ) -> dict[tuple[str, str], set[int]]:
        """`posted_papers` of many (workspace, channel) pairs; pairs with none are left out.
        At most a day's list of candidates, so they share the IN list's budget."""
        found: dict[tuple[str, str], set[int]] = {}
        if not candidates:
            return found
        for some in chunks(list(dict.fromkeys(channels))):
            query = select(Post.workspace, Post.channel, Post.paper_id).where(
                Post.platform == platform,
                tuple_(Post.workspace, Post.channel).in_(some),
                Post.paper_id.in_(list(candidates)),
            )
            if before is not None:
                query = query.where(Post.posted_at < before)
            for workspace, channel, paper_id in await self.session.execute(query):
                found.setdefault((workspace, channel), set()).add(paper_id)
        return found
