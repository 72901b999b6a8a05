"""The database goes away at the hour of a slot: the slot is tried again with backoff and sent
once when the database is back, by one of two workers, and the outage is logged once when it
starts and once when it ends. On a PostgreSQL server of the test's own, stopped and started."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.delivery.outage import Backoff, Outage
from bot.delivery.runner import DeliveryPolicy
from bot.delivery.scheduler import DeliveryScheduler
from bot.events import CommandInvoked, WorkspaceBack
from storage.store import Store
from tests.core_fixtures import CHANNEL, NOW, RecordingPlatform, bot_on, stocked
from tests.fakes.huggingface import FakeHuggingFace
from tests.postgres import (
    REQUIRE_ENV,
    PostgresServer,
    find_bindir,
    postgres_required,
    running_server,
)

SLOT = datetime(2026, 5, 5, 9, 0, tzinfo=UTC)
# Short waits through the outage: tried again every 50-200 ms.
POLICY = DeliveryPolicy(
    sender_poll=timedelta(seconds=0.02),
    outage_backoff=Backoff(first=timedelta(seconds=0.05), most=timedelta(seconds=0.2)),
)
WAIT = 60.0  # seconds: an upper bound for a stage, never an expected duration


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own: stopping it stops no other test's database."""
    bindir = find_bindir()
    if bindir is None:
        if postgres_required():
            pytest.fail(f"{REQUIRE_ENV}=1 but no PostgreSQL server binaries", pytrace=False)
        pytest.skip("no PostgreSQL server binaries")
    with running_server(bindir) as server:
        yield server


@pytest.fixture
async def store(own_server: PostgresServer) -> AsyncIterator[Store]:
    store = await Store.open(own_server.create_database())
    yield store
    await store.close()


async def until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(WAIT / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def lines(caplog: pytest.LogCaptureFixture, start: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(start)]


async def test_a_slot_due_while_the_database_is_down_is_sent_once_when_it_is_back(
    own_server: PostgresServer,
    store: Store,
    fake_hf: FakeHuggingFace,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with stocked(store, fake_hf) as client:
        clock = [NOW - timedelta(hours=5)]
        platforms = [RecordingPlatform(), RecordingPlatform()]
        bots = [bot_on(store, platform, client, clock) for platform in platforms]
        for words, admin in (
            ("channel on 09:00 UTC 3", True),
            ("follow retrieval", False),
            ("digest daily 09:00 UTC", False),
        ):
            answer = await bots[0].handle_command(CommandInvoked(CHANNEL, "alice", words, admin))
            assert not answer.is_usage_hint, answer.text
        clock[0] = SLOT
        outage = Outage()  # one process, two workers' schedulers: one outage
        workers: list[DeliveryScheduler] = [
            bot.scheduler(worker=f"w{n}", policy=POLICY, clock=lambda: clock[0], outage=outage)
            for n, bot in enumerate(bots)
        ]
        for worker in workers:
            await worker.resync()  # the jobs, as at the worker's start
        schedules = {slot.schedule_id for slot in workers[0].slots}  # the post's, the digest's

        await asyncio.to_thread(own_server.stop)
        firing = [asyncio.create_task(w.fire(schedule)) for w in workers for schedule in schedules]
        await until(lambda: lines(caplog, "database unreachable: "), "the outage to be noticed")
        await asyncio.sleep(0.5)  # a few attempts each, all failing
        assert not any(task.done() for task in firing)
        await asyncio.to_thread(own_server.start)
        await asyncio.wait_for(asyncio.gather(*firing), WAIT)

    headers = [m for p in platforms for _, m, _ in p.posts if m.text.startswith("Trending papers")]
    assert len(headers) == 1  # one post: one worker sent it, the other found it claimed
    assert [user.user for p in platforms for user, _, _ in p.dms] == ["alice"]
    async with store.transaction() as repos:
        rows = await repos.deliveries.recent()
    assert sorted((r.kind, r.status) for r in rows) == [("channel", "sent"), ("digest", "sent")]
    assert [r.attempts for r in rows] == [1, 1]  # an outage is no failed attempt
    assert len(lines(caplog, "database unreachable: ")) == 1
    assert "retrying slots until it is back" in lines(caplog, "database unreachable: ")[0]
    (back,) = lines(caplog, "database back after ")
    assert back.endswith("; 2 slots caught up")
    assert not [r for r in caplog.records if r.exc_info]  # no traceback per attempt


async def test_a_slot_still_unreachable_when_its_day_ends_is_given_up(
    own_server: PostgresServer,
    store: Store,
    fake_hf: FakeHuggingFace,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not sent late: the next day's slot is the next post."""
    async with stocked(store, fake_hf) as client:
        clock = [NOW - timedelta(hours=5)]
        platform = RecordingPlatform()
        bot = bot_on(store, platform, client, clock)
        await bot.handle_command(CommandInvoked(CHANNEL, "admin", "channel on 23:30 UTC 3", True))
        clock[0] = datetime(2026, 5, 5, 23, 30, tzinfo=UTC)
        worker = bot.scheduler(worker="w1", policy=POLICY, clock=lambda: clock[0])
        await worker.resync()
        (slot,) = worker.slots
        await asyncio.to_thread(own_server.stop)
        try:
            delivering = asyncio.create_task(worker.deliver(slot, slot.key(clock[0])))
            await until(lambda: lines(caplog, "database unreachable: "), "the outage to be noticed")
            clock[0] = datetime(2026, 5, 6, 0, 0, 1, tzinfo=UTC)  # the slot's day has ended
            outcome = await asyncio.wait_for(delivering, WAIT)
        finally:
            await asyncio.to_thread(own_server.start)
    assert outcome is None and platform.posts == []
    assert len([r for r in caplog.records if "given up: the database" in r.getMessage()]) == 1
    assert not lines(caplog, "database back after ")  # nothing has answered since
    async with store.transaction() as repos:
        assert await repos.deliveries.recent() == []


async def test_a_platform_event_the_database_cannot_take_is_one_line(
    own_server: PostgresServer,
    store: Store,
    fake_hf: FakeHuggingFace,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server coming back while the database is down: one line saying so, no traceback
    (the platform tells again at its next connect); the bot carries on."""
    async with stocked(store, fake_hf) as client:
        bot = bot_on(store, RecordingPlatform(), client, [NOW])
        await asyncio.to_thread(own_server.stop)
        try:
            await bot.workspace_back(WorkspaceBack(CHANNEL.scope))
        finally:
            await asyncio.to_thread(own_server.start)
    (line,) = lines(caplog, "handling a workspace that installed the app failed")
    assert "the database could not be reached" in line
    assert not [r for r in caplog.records if r.exc_info]
