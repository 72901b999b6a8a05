"""When the bot can no longer reach a channel or a workspace.

A channel it cannot post to (removed, archived, deleted, or a send refused for good) has its
daily and weekly posts turned off at once, and the admin who turned each on is told once, in
words, with how to turn it back on. A workspace that removed the app stops everything (its
schedules and retries are left out while it is marked as left, and its sender lease is
ended); installing the app again within the grace period brings it all back as it was, and
after that period its data is deleted (`delete_left_workspaces`, run by the worker).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.delivery.leases import lease_name
from bot.events import (
    ChannelGone,
    ChannelRef,
    GoneWhy,
    Scope,
    UserRef,
    WorkspaceBack,
    WorkspaceGone,
)
from bot.messages import CHANNEL_SLOT, Message, Visibility
from bot.ports import DeliveryError, Outbound
from storage.db import DB_ERRORS
from storage.store import Store

log = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(days=30)
DELETE_EVERY = 60 * 60.0  # seconds between looks for workspaces whose grace period is over

# What happened to a channel, in words; `{channel}` is where the channel is named.
_HAPPENED = {
    GoneWhy.REMOVED: "I was removed from {channel}",
    GoneWhy.ARCHIVED: "{channel} was archived",
    GoneWhy.DELETED: "{channel} was deleted",
    GoneWhy.UNREACHABLE: "I can no longer post in {channel}",
    GoneWhy.APP_REMOVED: "I was removed from this workspace, so I can no longer post in {channel}",
}
# How to have the post again; `{commands}` is where the commands go.
_BACK_ON = {
    GoneWhy.REMOVED: "To turn it back on, add me to the channel again, then run {commands} there.",
    GoneWhy.ARCHIVED: "To turn it back on, unarchive the channel and add me to it again, "
    "then run {commands} there.",
    GoneWhy.DELETED: "To have it in another channel, run {commands} there.",
    GoneWhy.UNREACHABLE: "To turn it back on, make sure I can post there (add me to the "
    "channel again), then run {commands} there.",
    GoneWhy.APP_REMOVED: "Installing me again brings it back as it was.",
}
_TURN_ON = {
    "daily post": "`/papers channel on`",
    "weekly post": "`/papers channel weekly on <day> HH:MM`",
}


def happened(why: GoneWhy, channel: str) -> str:
    """What happened to `channel` (its name, or words for it), in words."""
    return _HAPPENED[why].replace("{channel}", channel)


def back_on(why: GoneWhy, stopped: Sequence[str]) -> str:
    """How to have the `stopped` posts ("daily post", "weekly post") again."""
    commands = " and ".join(_TURN_ON[what] for what in stopped)
    return _BACK_ON[why].replace("{commands}", commands)


def lost_channel(channel: ChannelRef, error: DeliveryError) -> ChannelGone:
    """The channel a permanent send failure makes unreachable, and why, where told."""
    return ChannelGone(channel, error.gone or GoneWhy.UNREACHABLE)


def gone_notice(gone: ChannelGone, stopped: list[str]) -> Message:
    """The DM to an admin whose posts in a channel stopped: the channel by name (a mention),
    what happened and how to turn them back on; no id and no error code."""
    posts = " and ".join(f"its {what}" for what in stopped)
    return Message(
        text=f"{happened(gone.why, CHANNEL_SLOT)}, so I stopped {posts}.",
        lines=(back_on(gone.why, stopped),),
        visibility=Visibility.PUBLIC,
        channel=gone.channel.channel,
    )


async def tell_admin(outbound: Outbound, admin: UserRef, notice: Message) -> None:
    """DM an admin that something they set up stopped; their DMs being closed too is only
    logged."""
    try:
        await outbound.send_dm(admin, notice)
    except DeliveryError as error:
        log.warning("could not tell %s about it: %s", admin.user, error.reason)


@dataclass
class Lifecycle:
    store: Store
    outbound: Outbound
    clock: Callable[[], datetime]
    schedule_changed: Callable[[], None]  # something stopped or resumed

    async def channel_gone(self, gone: ChannelGone) -> None:
        """Turn the channel's daily and weekly posts off; each admin who turned one on gets
        one DM. A channel with nothing on (already stopped), or in a workspace that removed
        the app, changes nothing and tells no one. A send refused as the app was removed
        stops the whole workspace instead, so that installing again brings the posts back."""
        scope, channel = gone.channel.scope, gone.channel.channel
        if gone.why is GoneWhy.APP_REMOVED:
            await self.workspace_gone(WorkspaceGone(scope))
            return
        now, reason = self.clock(), happened(gone.why, "the channel")
        stopped: dict[str, list[str]] = {}  # admin -> what of theirs stopped
        async with self.store.transaction() as repos:
            if await repos.workspaces.has_left(scope.platform, scope.workspace):
                # A send refused as the app was removed: all there is stopped already, and
                # comes back as it was with the workspace.
                return
            daily = await repos.channels.subscription(scope.platform, scope.workspace, channel)
            if daily is not None and daily.enabled:
                daily.enabled, daily.disabled_reason, daily.updated_at = False, reason, now
                stopped.setdefault(daily.created_by, []).append("daily post")
            weekly = await repos.weekly.turn_off(
                scope.platform, scope.workspace, channel, now, reason
            )
            if weekly is not None:
                stopped.setdefault(weekly.created_by, []).append("weekly post")
        if not stopped:
            return
        self.schedule_changed()
        log.warning(
            "channel gone: platform=%s workspace=%s channel=%s why=%s stopped=%s",
            scope.platform, scope.workspace, channel, gone.why.value,
            ",".join(sorted({what for whats in stopped.values() for what in whats})),
        )  # fmt: skip
        for admin, whats in stopped.items():
            await tell_admin(self.outbound, UserRef(scope, admin), gone_notice(gone, whats))

    async def workspace_gone(self, event: WorkspaceGone) -> None:
        """Stop everything in the workspace until it comes back (or its data is deleted)."""
        scope = event.scope
        async with self.store.transaction() as repos:
            left = await repos.workspaces.mark_left(scope.platform, scope.workspace, self.clock())
            await repos.leases.drop(lease_name(scope.platform, scope.workspace))
        if left:
            self.schedule_changed()
            log.warning(
                "workspace removed the app: platform=%s workspace=%s; everything there is "
                "stopped, and its data is deleted after the grace period unless it comes back",
                scope.platform, scope.workspace,
            )  # fmt: skip

    async def workspace_back(self, event: WorkspaceBack) -> None:
        """The app is back: every schedule of the workspace resumes as it was."""
        scope = event.scope
        async with self.store.transaction() as repos:
            back = await repos.workspaces.mark_back(scope.platform, scope.workspace)
        if back:
            self.schedule_changed()
            log.info(
                "workspace installed the app again: platform=%s workspace=%s; everything resumes",
                scope.platform, scope.workspace,
            )  # fmt: skip


async def delete_left_workspaces(store: Store, now: datetime, grace: timedelta) -> list[Scope]:
    """Delete the data of every workspace gone for longer than `grace`; which they were.
    Each is one log line."""
    deleted = []
    async with store.transaction() as repos:
        for platform, workspace in await repos.workspaces.left_before(now - grace):
            rows = await repos.workspaces.delete_data(platform, workspace)
            await repos.leases.drop(lease_name(platform, workspace))
            deleted.append(Scope(platform, workspace))
            log.info(
                "deleted the data of a workspace that removed the app over %d days ago: "
                "platform=%s workspace=%s rows=%d",
                grace.days, platform, workspace, rows,
            )  # fmt: skip
    return deleted


async def keep_deleting_left_workspaces(
    store: Store,
    clock: Callable[[], datetime],
    grace: timedelta = DEFAULT_GRACE,
    *,
    every: float = DELETE_EVERY,
) -> None:
    """The worker's job: look every `every` seconds, until cancelled. A database error is a
    warning line; the next look tries again."""
    while True:
        try:
            await delete_left_workspaces(store, clock(), grace)
        except DB_ERRORS as error:
            log.warning("deleting left workspaces' data failed: %s", type(error).__name__)
        await asyncio.sleep(every)
