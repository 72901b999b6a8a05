"""Workspaces that removed the app: marked when they leave, unmarked when they come back,
and their data deleted once they have been gone for the grace period."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, column, delete, exists, select, table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from storage.db import rowcount
from storage.models import (
    ChannelSubscription,
    ChannelTopic,
    Delivery,
    DigestItem,
    DigestSetting,
    Follow,
    LeftWorkspace,
    PendingReaction,
    PendingSave,
    Post,
    Save,
    SavedLater,
    WeeklyItem,
    WeeklyPost,
)

# Every table whose rows belong to one (platform, workspace); deleted with the workspace.
_WORKSPACE_TABLES: tuple[Any, ...] = (
    ChannelSubscription, WeeklyPost, WeeklyItem, Post, Save, SavedLater, PendingSave,
    PendingReaction, Follow, DigestSetting, DigestItem, Delivery,
)  # fmt: skip
# slack_sdk's installation store (migration 0002): a Slack workspace's tokens, by team id
# (the one place storage names a platform: those tables are Slack's own).
_SLACK_INSTALLS = [
    table("slack_installations", column("team_id")),
    table("slack_bots", column("team_id")),
]


def installed(
    platform: QueryableAttribute[str], workspace: QueryableAttribute[str]
) -> ColumnElement[bool]:
    """Rows of workspaces that have not removed the app: what every schedule and retry
    reads, so nothing is sent to a workspace that left."""
    return ~exists().where(LeftWorkspace.platform == platform, LeftWorkspace.workspace == workspace)


class WorkspaceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def mark_left(self, platform: str, workspace: str, now: datetime) -> bool:
        """Record that the workspace removed the app; False when it already had (the grace
        period runs from the first time)."""
        if await self.session.get(LeftWorkspace, (platform, workspace)) is not None:
            return False
        self.session.add(LeftWorkspace(platform=platform, workspace=workspace, left_at=now))
        await self.session.flush()
        return True

    async def mark_back(self, platform: str, workspace: str) -> bool:
        """The app was installed again: False when the workspace had not left."""
        result = await self.session.execute(
            delete(LeftWorkspace).where(
                LeftWorkspace.platform == platform, LeftWorkspace.workspace == workspace
            )
        )
        return bool(rowcount(result))

    async def scheduled(self, platform: str) -> set[str]:
        """The workspaces of `platform` with a send scheduled (a channel's daily or weekly
        post, a member's digest) that are not known to have removed the app."""
        found: set[str] = set()
        for model in (ChannelSubscription, WeeklyPost, DigestSetting):
            found.update(
                await self.session.scalars(
                    select(model.workspace)
                    .distinct()
                    .where(model.platform == platform, installed(model.platform, model.workspace))
                )
            )
        return found

    async def has_left(self, platform: str, workspace: str) -> bool:
        return await self.session.get(LeftWorkspace, (platform, workspace)) is not None

    async def left_before(self, before: datetime) -> list[tuple[str, str]]:
        """(platform, workspace) of every workspace gone since before `before`."""
        rows = await self.session.execute(
            select(LeftWorkspace.platform, LeftWorkspace.workspace).where(
                LeftWorkspace.left_at < before
            )
        )
        return [(platform, workspace) for platform, workspace in rows]

    async def delete_data(self, platform: str, workspace: str) -> int:
        """Delete everything stored for the workspace (its Slack tokens too) and its mark;
        how many rows went."""
        deleted = 0
        subscriptions = select(ChannelSubscription.id).where(
            ChannelSubscription.platform == platform, ChannelSubscription.workspace == workspace
        )
        result = await self.session.execute(
            delete(ChannelTopic).where(ChannelTopic.subscription_id.in_(subscriptions))
        )
        deleted += rowcount(result)
        for model in (*_WORKSPACE_TABLES, LeftWorkspace):
            result = await self.session.execute(
                delete(model).where(model.platform == platform, model.workspace == workspace)
            )
            deleted += rowcount(result)
        if platform == "slack":
            deleted += await self._delete_slack_installs(workspace)
        return deleted

    async def _delete_slack_installs(self, team: str) -> int:
        deleted = 0
        for installs in _SLACK_INSTALLS:
            result = await self.session.execute(delete(installs).where(installs.c.team_id == team))
            deleted += rowcount(result)
        return deleted
