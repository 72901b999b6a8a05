"""Channels and workspaces the bot loses, in the core: what stops, who is told (once, in
words), a workspace's data kept through the grace period and deleted after it, and a
workspace that comes back resuming as it was. On a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.delivery.leases import lease_name
from bot.delivery.slots import load_slots
from bot.events import ChannelGone, ChannelRef, GoneWhy, Scope, WorkspaceBack, WorkspaceGone
from bot.lifecycle import delete_left_workspaces, keep_deleting_left_workspaces
from storage.deliveries import Status
from storage.models import (
    ChannelSubscription,
    ChannelTopic,
    Delivery,
    Follow,
    Save,
    WeeklyItem,
    WeeklyPost,
)
from storage.store import Store
from tests.core_fixtures import CHANNEL, NOW, SCOPE, Harness

GRACE = timedelta(days=30)
OTHER = ChannelRef(Scope("test", "T2"), "C9")  # another workspace, which stays


async def set_up(harness: Harness) -> None:
    """T1: a daily post with a topic, a weekly post, a member's digest, follow and save;
    T2: a daily post and a member's save of the same paper."""
    await harness.say("channel on 09:00 UTC 3", user="admin", admin=True)
    await harness.say("channel topics add diffusion", user="admin", admin=True)
    await harness.say("channel weekly on fri 16:00 UTC", user="admin", admin=True)
    await harness.say("digest daily 08:00 UTC", user="alice")
    await harness.say("follow diffusion", user="alice")
    await harness.say("save 2605.00101", user="alice")
    await harness.say("channel on 09:00 UTC", user="admin", admin=True, channel=OTHER)
    await harness.say("save 2605.00101", user="bob", channel=OTHER)


async def job_ids(store: Store) -> list[str]:
    return sorted(slot.job_id for slot in await load_slots(store))


async def count(store: Store, model: type, workspace: str) -> int:
    async with store.reading() as repos:
        query = select(func.count()).select_from(model).where(model.workspace == workspace)  # type: ignore[attr-defined]
        return int(await repos.session.scalar(query) or 0)


# A channel the bot lost -------------------------------------------------------------------


async def test_a_lost_channel_stops_both_posts_and_tells_the_admin_once(harness: Harness) -> None:
    await set_up(harness)
    await harness.bot.channel_gone(ChannelGone(CHANNEL, GoneWhy.ARCHIVED))
    # Slack follows an archive with the bot leaving: nothing more stops, nobody is told again.
    await harness.bot.channel_gone(ChannelGone(CHANNEL, GoneWhy.REMOVED))
    assert await job_ids(harness.store) == [
        "channel:test:T2:C9", "digest:test:T1:alice"
    ]  # fmt: skip
    ((admin, notice, _),) = harness.platform.dms
    assert admin.user == "admin" and notice.channel == "C1"
    assert notice.text == "{channel} was archived, so I stopped its daily post and its weekly post."
    (how,) = notice.lines
    assert "unarchive the channel" in how and "`/papers channel on`" in how
    assert "`/papers channel weekly on <day> HH:MM`" in how
    status = await harness.say("channel status")
    assert "It was stopped: the channel was archived." in status.text


async def test_each_admin_hears_only_of_the_post_they_turned_on(harness: Harness) -> None:
    await harness.say("channel on 09:00 UTC 3", user="admin", admin=True)
    await harness.say("channel weekly on fri 16:00 UTC", user="carol", admin=True)
    await harness.bot.channel_gone(ChannelGone(CHANNEL, GoneWhy.DELETED))
    told = {user.user: message.text for user, message, _ in harness.platform.dms}
    assert told == {
        "admin": "{channel} was deleted, so I stopped its daily post.",
        "carol": "{channel} was deleted, so I stopped its weekly post.",
    }


async def test_a_channel_with_nothing_on_tells_no_one(harness: Harness) -> None:
    await harness.say("channel on 09:00 UTC 3", user="admin", admin=True)
    await harness.say("channel off", user="admin", admin=True)
    await harness.bot.channel_gone(ChannelGone(CHANNEL, GoneWhy.REMOVED))
    assert harness.platform.dms == []


# A workspace that removed the app ----------------------------------------------------------


async def test_a_workspace_that_left_stops_everything_and_resumes_when_back(
    harness: Harness,
) -> None:
    await set_up(harness)
    before = await job_ids(harness.store)
    assert len(before) == 4
    async with harness.store.transaction() as repos:
        taken = await repos.leases.acquire(lease_name("test", "T1"), "w1", NOW, GRACE)
        assert taken
    await harness.bot.workspace_gone(WorkspaceGone(SCOPE))
    assert await job_ids(harness.store) == ["channel:test:T2:C9"]
    async with harness.store.reading() as repos:
        assert await repos.leases.get(lease_name("test", "T1")) is None
    # Within the grace period nothing is deleted.
    almost = NOW + GRACE - timedelta(minutes=1)
    assert await delete_left_workspaces(harness.store, almost, GRACE) == []
    assert (await harness.say("following", user="alice")).lines == ("diffusion",)
    await harness.bot.workspace_back(WorkspaceBack(SCOPE))
    assert await job_ids(harness.store) == before
    status = await harness.say("channel status")
    assert status.text.startswith("Daily post: the top 3 papers at 09:00 UTC")
    assert "Topics: diffusion." in status.lines


async def test_a_workspace_that_left_has_no_retries_due(harness: Harness) -> None:
    async with harness.store.transaction() as repos:
        for workspace in ("T1", "T2"):
            repos.session.add(
                Delivery(kind="channel", platform="test", workspace=workspace, target="C1",
                         period="2026-05-05", status=Status.RETRY, attempts=1,
                         retry_at=NOW, created_at=NOW, updated_at=NOW)
            )  # fmt: skip

    async def due() -> list[str]:
        async with harness.store.reading() as repos:
            rows = await repos.deliveries.due_retries(NOW, max_attempts=5)
            return sorted(row.workspace for row in rows)

    assert await due() == ["T1", "T2"]
    await harness.bot.workspace_gone(WorkspaceGone(SCOPE))
    assert await due() == ["T2"]
    await harness.bot.workspace_back(WorkspaceBack(SCOPE))
    assert await due() == ["T1", "T2"]


async def test_a_send_refused_after_the_workspace_left_keeps_its_posts_for_its_return(
    harness: Harness,
) -> None:
    await set_up(harness)
    before = await job_ids(harness.store)
    await harness.bot.workspace_gone(WorkspaceGone(SCOPE))
    await harness.bot.channel_gone(ChannelGone(CHANNEL, GoneWhy.REMOVED))
    assert harness.platform.dms == []
    await harness.bot.workspace_back(WorkspaceBack(SCOPE))
    assert await job_ids(harness.store) == before


async def test_after_the_grace_period_the_workspace_data_is_deleted(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await set_up(harness)
    await harness.bot.weekly.post(CHANNEL)  # the papers it carried are recorded
    assert await count(harness.store, WeeklyItem, "T1") > 0
    await harness.bot.workspace_gone(WorkspaceGone(SCOPE))
    await harness.bot.workspace_gone(WorkspaceGone(SCOPE))  # again: the grace counts from the first
    caplog.set_level(logging.INFO, logger="bot.lifecycle")
    after = NOW + GRACE + timedelta(seconds=1)
    assert await delete_left_workspaces(harness.store, after, GRACE) == [SCOPE]
    for model in (ChannelSubscription, WeeklyPost, WeeklyItem, Save, Follow):
        assert await count(harness.store, model, "T1") == 0, model
    assert await count(harness.store, ChannelSubscription, "T2") == 1
    assert await count(harness.store, Save, "T2") == 1  # another workspace's member's save
    async with harness.store.reading() as repos:
        assert await repos.session.scalar(select(func.count()).select_from(ChannelTopic)) == 0
        assert not await repos.workspaces.has_left("test", "T1")
    lines = [r.getMessage() for r in caplog.records if "deleted the data" in r.getMessage()]
    assert len(lines) == 1 and "workspace=T1" in lines[0]
    assert await delete_left_workspaces(harness.store, after, GRACE) == []  # nothing left to do


async def test_the_worker_job_deletes_on_its_own_clock(harness: Harness) -> None:
    await set_up(harness)
    await harness.bot.workspace_gone(WorkspaceGone(SCOPE))
    clock = [NOW + timedelta(days=1)]
    job = asyncio.create_task(
        keep_deleting_left_workspaces(harness.store, lambda: clock[0], GRACE, every=0.01)
    )
    try:
        await asyncio.sleep(0.1)
        assert await count(harness.store, Follow, "T1") == 1  # a day after: kept
        clock[0] = NOW + timedelta(days=31)
        for _ in range(200):
            if await count(harness.store, Follow, "T1") == 0:
                break
            await asyncio.sleep(0.02)
        assert await count(harness.store, Follow, "T1") == 0
    finally:
        job.cancel()
