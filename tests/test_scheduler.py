"""Scheduled delivery: the ledger's claims, local-time slots, catch-up, retries, and exactly one
delivery per slot when several workers run against one database."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.app import Paperboy
from bot.config import BotConfig
from bot.daily import due_list_day
from bot.delivery.leases import SenderLeases, lease_name
from bot.delivery.outage import Outage
from bot.delivery.runner import Claim, DeliveryPolicy, Send
from bot.delivery.scheduler import DeliveryScheduler
from bot.delivery.slots import Slot, last_fire, next_fires
from bot.delivery.workers import LiveWorkers
from bot.events import ChannelRef, MessageRef, UserRef
from bot.messages import Message
from bot.ports import DeliveryError
from bot.sources.huggingface import HuggingFaceClient
from bot.sources.ingest import ingest_days
from storage.deliveries import DeliveryKey, Status
from storage.models import Delivery
from storage.store import Repositories, Store
from tests.core_fixtures import CHANNEL, NOW, SCOPE, Harness, RecordingPlatform

POLICY = DeliveryPolicy(lease=timedelta(minutes=5), max_attempts=3)
KEY = DeliveryKey("channel", "test", "T1", "C1", "2026-05-05")


async def claim(
    repos: Repositories, key: DeliveryKey, worker: str, now: datetime
) -> Delivery | None:
    """`key`'s ledger row if `worker` wins its claim at `now`."""
    claimed = await repos.deliveries.claim_many(
        [key], worker, now, lease=POLICY.lease, max_attempts=POLICY.max_attempts
    )
    return claimed.get(key)


async def ledger_row(repos: Repositories, key: DeliveryKey) -> Delivery | None:
    """The ledger's row of `key` (each target here has rows of one period)."""
    row = await repos.deliveries.latest(key.kind, key.platform, key.workspace, key.target)
    return row if row is not None and row.period == key.period else None


def next_slots(worker: DeliveryScheduler) -> dict[str, datetime]:
    """job id -> next fire time of the worker's slots."""
    upcoming = next_fires(worker.slots, worker.clock(), 10)
    return {slot.job_id: fire for slot, fire in upcoming}


# The ledger ------------------------------------------------------------------------------


async def test_a_slot_is_claimed_once_and_taken_over_only_after_its_lease(store: Store) -> None:
    async def claim_key(worker: str, now: datetime) -> Delivery | None:
        async with store.transaction() as repos:
            return await claim(repos, KEY, worker, now)

    first = await claim_key("a", NOW)
    assert first is not None and first.worker == "a" and first.attempts == 1
    assert await claim_key("b", NOW) is None  # a holds the lease
    assert await claim_key("b", NOW + timedelta(minutes=4)) is None
    taken = await claim_key("b", NOW + timedelta(minutes=6))  # a died: its lease ran out
    assert taken is not None and taken.worker == "b" and taken.attempts == 2
    async with store.transaction() as repos:
        await repos.deliveries.finish(taken.id, Status.SENT, NOW, message_ref="m1")
    assert await claim_key("c", NOW + timedelta(hours=1)) is None  # sent is final
    async with store.transaction() as repos:
        row = await ledger_row(repos, KEY)
    assert row is not None and row.status == "sent" and row.message_ref == "m1"


async def test_retries_wait_for_their_time_and_stop_after_the_last_attempt(store: Store) -> None:
    async def claim_at(now: datetime) -> Delivery | None:
        async with store.transaction() as repos:
            return await claim(repos, KEY, "w", now)

    now = NOW
    for attempt in (1, 2, 3):
        delivery = await claim_at(now)
        assert delivery is not None and delivery.attempts == attempt
        retry_at = now + timedelta(minutes=10)
        async with store.transaction() as repos:
            await repos.deliveries.finish(
                delivery.id, Status.RETRY, now, detail="rate_limited", retry_at=retry_at
            )
        assert await claim_at(retry_at - timedelta(seconds=1)) is None
        now = retry_at
    assert await claim_at(now + timedelta(days=1)) is None  # out of attempts
    async with store.transaction() as repos:
        assert await repos.deliveries.due_retries(now, POLICY.max_attempts) == []


async def test_claims_made_together_are_the_claims_made_one_at_a_time(store: Store) -> None:
    fresh = [DeliveryKey("channel", "test", "T1", f"C{n}", "2026-05-05") for n in (2, 3)]
    done, expired, held = (DeliveryKey("digest", "test", "T1", u, "2026-05-05") for u in "abc")
    elsewhere = DeliveryKey("digest", "test", "T2", "a", "2026-05-05")  # another workspace
    async with store.transaction() as repos:
        for key in (done, expired, elsewhere):
            await claim(repos, key, "old", NOW)
        row = await ledger_row(repos, done)
        assert row is not None
        await repos.deliveries.finish(row.id, Status.SENT, NOW)
    later = NOW + timedelta(minutes=3)
    async with store.transaction() as repos:  # claimed later: its lease outlasts the others'
        await claim(repos, held, "old", later)
    async with store.transaction() as repos:
        claimed = await repos.deliveries.claim_many(
            [*fresh, done, expired, held, fresh[0], elsewhere], "w",
            NOW + POLICY.lease + timedelta(seconds=1), lease=POLICY.lease, max_attempts=3,
        )  # fmt: skip
    assert set(claimed) == {*fresh, expired, elsewhere}  # new rows, and leases that ran out
    assert [claimed[key].attempts for key in (*fresh, expired, elsewhere)] == [1, 1, 2, 2]
    assert {row.worker for row in claimed.values()} == {"w"}


async def test_a_slot_fired_twice_at_once_is_sent_once(harness: Harness) -> None:
    await configure(harness, NOW - timedelta(hours=5))
    runner = scheduler(harness).runner
    outcomes = await asyncio.gather(runner.run(KEY), runner.run(KEY))  # one batch, twice
    assert sorted(outcomes, key=str) == [None, Status.SENT]
    assert delivered(harness.platform) == (1, 0)


async def test_a_post_that_fails_to_compose_fails_alone_and_is_retried(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await configure(harness, NOW - timedelta(hours=5))
    await harness.say("channel on 09:00 UTC 3", channel=ChannelRef(SCOPE, "C2"), admin=True)
    compose = harness.bot.daily.prepare

    async def broken_for_c1(repos: Repositories, claims: list[Claim]) -> list[Send]:
        if any(claim.key.target == "C1" for claim in claims):
            raise ValueError("bad data in C1's list")
        return await compose(repos, claims)

    monkeypatch.setattr(harness.bot.daily, "prepare", broken_for_c1)
    runner = scheduler(harness).runner
    other = DeliveryKey("channel", "test", "T1", "C2", "2026-05-05")
    outcomes = await asyncio.gather(runner.run(KEY), runner.run(other))  # one batch
    assert outcomes == [Status.RETRY, Status.SENT]
    async with harness.store.transaction() as repos:
        row = await ledger_row(repos, KEY)
    assert row is not None and row.detail == "internal_error: ValueError"
    assert row.retry_at is not None


# Slots -------------------------------------------------------------------------------------


def test_slots_follow_local_time_across_daylight_saving() -> None:
    slot = Slot("channel", "test", "T1", "C1", "mon-fri", 9, 0, "Europe/Berlin", NOW)
    trigger = slot.trigger()
    before = trigger.get_next_fire_time(None, datetime(2026, 3, 27, 0, 0, tzinfo=UTC))
    after = trigger.get_next_fire_time(None, datetime(2026, 3, 28, 0, 0, tzinfo=UTC))
    assert before is not None and before.astimezone(UTC).hour == 8  # 09:00 CET
    assert after is not None and after.date().isoformat() == "2026-03-30"  # skips the weekend
    assert after.astimezone(UTC).hour == 7  # 09:00 CEST
    assert slot.key(after).period == "2026-03-30"


def test_the_period_is_the_local_date_of_the_slot() -> None:
    slot = Slot("digest", "test", "T1", "alice", "*", 8, 0, "Asia/Tokyo", NOW)
    fired = last_fire(slot.trigger(), NOW, lookback=timedelta(days=2))  # Tue 12:00 UTC
    assert fired is not None and fired.astimezone(ZoneInfo("Asia/Tokyo")).hour == 8
    assert slot.key(fired).period == "2026-05-05"  # 08:00 in Tokyo is 23:00 UTC the day before
    assert fired.astimezone(UTC) == datetime(2026, 5, 4, 23, 0, tzinfo=UTC)


# The scheduler on one worker ------------------------------------------------------------


async def configure(harness: Harness, at: datetime) -> None:
    """An admin turns the daily post on and alice sets her digest, at `at`."""
    harness.clock[0] = at
    await harness.say("channel on 09:00 UTC 3", user="admin", admin=True)
    await harness.say("follow retrieval")
    await harness.say("digest daily 10:30 UTC")
    harness.clock[0] = NOW


def scheduler(harness: Harness) -> DeliveryScheduler:
    return harness.bot.scheduler(worker="w1", policy=POLICY, clock=lambda: harness.clock[0])


def delivered(platform: RecordingPlatform) -> tuple[int, int]:
    """(daily post headers, digests) sent so far."""
    headers = [m for _, m, _ in platform.posts if m.text.startswith("Trending papers")]
    return len(headers), len(platform.dms)


async def test_jobs_are_built_from_the_database_in_local_time(harness: Harness) -> None:
    await configure(harness, NOW)
    worker = scheduler(harness)
    await worker.start()
    try:
        slots = next_slots(worker)
        assert set(slots) == {"channel:test:T1:C1", "digest:test:T1:alice"}
        channel = slots["channel:test:T1:C1"].astimezone(UTC)
        assert (channel.hour, channel.minute, channel.weekday() < 5) == (9, 0, True)
        await harness.say("digest daily 07:45 Europe/Berlin")  # picked up at once, not in a minute
        for _ in range(50):
            digest = next_slots(worker)
            if digest["digest:test:T1:alice"].astimezone(ZoneInfo("Europe/Berlin")).hour == 7:
                break
            await asyncio.sleep(0.05)
        local = next_slots(worker)["digest:test:T1:alice"].astimezone(ZoneInfo("Europe/Berlin"))
        assert (local.hour, local.minute) == (7, 45)
        await harness.say("channel off", user="admin", admin=True)
        for _ in range(50):
            if "channel:test:T1:C1" not in next_slots(worker):
                break
            await asyncio.sleep(0.05)
        assert "channel:test:T1:C1" not in next_slots(worker)
    finally:
        worker.shutdown()


async def test_a_schedule_is_one_job_that_delivers_every_slot_on_it(harness: Harness) -> None:
    await configure(harness, NOW - timedelta(hours=5))  # C1 at 09:00, alice's digest at 10:30
    harness.clock[0] = NOW - timedelta(hours=5)
    c2 = ChannelRef(SCOPE, "C2")
    await harness.say("channel on 09:00 UTC 3", user="admin", admin=True, channel=c2)
    harness.clock[0] = datetime(2026, 5, 5, 8, 0, tzinfo=UTC)  # before today's slots
    worker = scheduler(harness)
    await worker.start()
    try:
        assert delivered(harness.platform) == (0, 0)  # nothing missed to catch up
        assert len(worker.slots) == 3
        schedules = [job for job in worker.scheduler.get_jobs() if job.id.startswith("schedule:")]
        assert len(schedules) == 2  # the two channels share 09:00 UTC
        (nine,) = [job for job in schedules if ":09:00:" in job.id]
        harness.clock[0] = datetime(2026, 5, 5, 9, 0, tzinfo=UTC)
        nine.modify(next_run_time=datetime.now(UTC))  # APScheduler runs it now
        for _ in range(100):
            if delivered(harness.platform)[0] == 2:
                break
            await asyncio.sleep(0.05)
        assert delivered(harness.platform) == (2, 0)  # both channels; the digest's job waits
        assert {channel for channel, m, _ in harness.platform.posts
                if m.text.startswith("Trending papers")} == {CHANNEL, c2}  # fmt: skip
    finally:
        worker.shutdown()


async def test_todays_missed_slots_are_delivered_once_at_start(harness: Harness) -> None:
    await configure(harness, NOW - timedelta(hours=5))  # 07:00, before both slots
    first = scheduler(harness)
    await first.resync(catch_up=True)
    assert delivered(harness.platform) == (1, 1)
    again = scheduler(harness)  # a restart later the same day
    await again.resync(catch_up=True)
    assert delivered(harness.platform) == (1, 1)
    async with harness.store.transaction() as repos:
        row = await ledger_row(repos, DeliveryKey("channel", "test", "T1", "C1", "2026-05-05"))
    assert row is not None and row.status == "sent" and row.detail == "3 papers"
    assert row.message_ref == harness.platform.posts[0][2].message_id
    first.shutdown()
    again.shutdown()


async def test_missed_slots_of_earlier_days_are_skipped_not_flooded(harness: Harness) -> None:
    await configure(harness, NOW - timedelta(days=3))
    harness.clock[0] = datetime(2026, 5, 5, 8, 0, tzinfo=UTC)  # today's slots are still ahead
    worker = scheduler(harness)
    await worker.resync(catch_up=True)
    assert delivered(harness.platform) == (0, 0)
    async with harness.store.transaction() as repos:
        skipped = {(r.kind, r.period, r.status) for r in await repos.deliveries.recent()}
    assert skipped == {("channel", "2026-05-04", "skipped"), ("digest", "2026-05-04", "skipped")}


class FlakyPlatform(RecordingPlatform):
    """Fails the first `failures` posts with a transient error."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def post(self, channel: ChannelRef, message: Message) -> MessageRef:
        if self.failures:
            self.failures -= 1
            raise DeliveryError("rate_limited", permanent=False)
        return await super().post(channel, message)


async def test_a_transient_failure_is_retried_with_backoff(harness: Harness) -> None:
    await configure(harness, NOW - timedelta(hours=5))
    platform = FlakyPlatform(failures=1)
    harness.use(platform)
    worker = scheduler(harness)
    await worker.runner.run(KEY)
    async with harness.store.transaction() as repos:
        row = await ledger_row(repos, KEY)
    assert row is not None and (row.status, row.detail) == ("retry", "rate_limited")
    await worker.retry_due()
    assert platform.posts == []  # not due yet
    harness.clock[0] = NOW + POLICY.first_retry
    await worker.retry_due()
    assert delivered(platform)[0] == 1
    async with harness.store.transaction() as repos:
        row = await ledger_row(repos, KEY)
    assert row is not None and (row.status, row.attempts) == ("sent", 2)


class UnreachablePlatform(RecordingPlatform):
    """Cannot be reached for its first `failures` posts (the network, a 5xx)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def post(self, channel: ChannelRef, message: Message) -> MessageRef:
        if self.failures:
            self.failures -= 1
            raise DeliveryError("network_error", permanent=False, unreachable=True)
        return await super().post(channel, message)


async def test_an_unreachable_platform_is_retried_through_the_day_using_no_attempt(
    harness: Harness,
) -> None:
    await configure(harness, NOW - timedelta(hours=5))
    platform = harness.use(UnreachablePlatform(failures=POLICY.max_attempts + 2))
    worker = scheduler(harness)
    await worker.resync()
    (slot,) = [s for s in worker.slots if s.kind == "channel"]
    assert await worker.deliver(slot, KEY) is Status.RETRY
    for _ in range(POLICY.max_attempts + 2):  # more failures than attempts
        harness.clock[0] += POLICY.outage_backoff.most  # the longest wait between them
        await worker.retry_due()
    assert delivered(platform)[0] == 1
    async with harness.store.transaction() as repos:
        row = await ledger_row(repos, KEY)
    assert row is not None and (row.status, row.attempts) == ("sent", 1)


async def test_a_platform_unreachable_until_the_day_ends_is_not_posted_late(
    harness: Harness,
) -> None:
    await configure(harness, NOW - timedelta(hours=5))
    platform = harness.use(UnreachablePlatform(failures=1000))
    worker = scheduler(harness)
    await worker.resync()
    (slot,) = [s for s in worker.slots if s.kind == "channel"]
    assert await worker.deliver(slot, KEY) is Status.RETRY
    # A minute before midnight: the next look (2.5-5 minutes on) would be the next day.
    harness.clock[0] = slot.day_end(KEY.period) - timedelta(minutes=1)
    await worker.retry_due()
    async with harness.store.transaction() as repos:
        row = await ledger_row(repos, KEY)
    assert row is not None and (row.status, row.detail) == ("failed", "network_error")
    assert delivered(platform)[0] == 0


async def test_a_retry_whose_day_ended_while_no_worker_ran_is_skipped_not_sent_late(
    harness: Harness,
) -> None:
    """A post that failed once, then no worker ran until the next day: yesterday's post is not
    sent today, and its row says why."""
    await configure(harness, NOW - timedelta(hours=5))
    platform = harness.use(FlakyPlatform(failures=1))
    worker = scheduler(harness)
    await worker.resync()
    await worker.runner.run(KEY)  # fails: retry due in a minute; then every worker stops
    (slot,) = [s for s in worker.slots if s.kind == "channel"]
    harness.clock[0] = slot.day_end(KEY.period) + timedelta(hours=9)
    restarted = scheduler(harness)
    await restarted.resync()
    await restarted.retry_due()
    assert delivered(platform)[0] == 0
    async with harness.store.transaction() as repos:
        row = await ledger_row(repos, KEY)
    assert row is not None
    assert (row.status, row.detail) == ("skipped", "its day ended before it could be sent")


async def test_a_dead_workers_claim_from_an_earlier_day_is_not_taken_over(
    harness: Harness,
) -> None:
    await configure(harness, NOW - timedelta(hours=5))
    async with harness.store.transaction() as repos:  # a worker claimed, then died
        await claim(repos, KEY, "dead", NOW)
    harness.clock[0] = NOW + timedelta(days=1)
    worker = scheduler(harness)
    await worker.resync()
    await worker.retry_due()
    assert delivered(harness.platform)[0] == 0
    async with harness.store.transaction() as repos:
        row = await ledger_row(repos, KEY)
    assert row is not None and row.status == "skipped"


async def test_a_slot_fired_late_past_midnight_is_its_own_days(harness: Harness) -> None:
    """A 23:59 post fired a few minutes late (APScheduler's misfire grace) is that day's:
    filed under the next day, it would have stood in for the next day's post."""
    harness.clock[0] = NOW - timedelta(hours=5)
    await harness.say("channel on 23:59 UTC 3", user="admin", admin=True)
    worker = scheduler(harness)
    await worker.resync()
    (slot,) = worker.slots
    harness.clock[0] = datetime(2026, 5, 6, 0, 2, tzinfo=UTC)  # due at 23:59 on the 5th
    await worker.fire(slot.schedule_id)
    harness.clock[0] = datetime(2026, 5, 6, 23, 59, tzinfo=UTC)
    await worker.fire(slot.schedule_id)
    worker.shutdown()
    async with harness.store.transaction() as repos:
        rows = await repos.deliveries.recent()
    # The 6th's post has a row of its own (waiting for the 6th's list, not stored here).
    assert sorted((row.period, row.status) for row in rows) == [
        ("2026-05-05", "sent"), ("2026-05-06", "waiting"),
    ]  # fmt: skip
    assert delivered(harness.platform)[0] == 1


async def test_a_permanent_failure_is_recorded_and_stops_the_channel(harness: Harness) -> None:
    await configure(harness, NOW - timedelta(hours=5))

    class GonePlatform(RecordingPlatform):
        async def post(self, channel: ChannelRef, message: Message) -> MessageRef:
            raise DeliveryError("channel_not_found", permanent=True)

    harness.use(GonePlatform())
    assert await scheduler(harness).runner.run(KEY) is Status.FAILED
    async with harness.store.transaction() as repos:
        row = await ledger_row(repos, KEY)
        slots_left = await repos.channels.subscription("test", "T1", "C1")
    assert row is not None and (row.status, row.detail) == ("failed", "channel_not_found")
    assert slots_left is not None and not slots_left.enabled


async def test_outcomes_recorded_together_each_land_on_their_own_row(harness: Harness) -> None:
    """Runs ending together share the transaction that records their outcomes."""
    await configure(harness, NOW - timedelta(hours=5))
    harness.clock[0] = NOW - timedelta(hours=5)
    for channel in ("C2", "C3"):
        where = ChannelRef(SCOPE, channel)
        await harness.say("channel on 09:00 UTC 3", user="admin", admin=True, channel=where)
    harness.clock[0] = NOW

    class C3Gone(RecordingPlatform):
        async def post(self, channel: ChannelRef, message: Message) -> MessageRef:
            if channel.channel == "C3":
                raise DeliveryError("channel_not_found", permanent=True)
            return await super().post(channel, message)

    platform = harness.use(C3Gone())
    keys = [replace(KEY, target=channel) for channel in ("C1", "C2", "C3")]
    worker = scheduler(harness).runner
    statuses = await asyncio.gather(*(worker.run(key) for key in keys))
    assert statuses == [Status.SENT, Status.SENT, Status.FAILED]
    async with harness.store.transaction() as repos:
        rows = [await ledger_row(repos, key) for key in keys]
    headers = {to.channel: ref.message_id for to, m, ref in platform.posts
               if m.text.startswith("Trending papers")}  # fmt: skip
    assert [(r.status, r.message_ref, r.detail) for r in rows if r is not None] == [
        ("sent", headers["C1"], "3 papers"),
        ("sent", headers["C2"], "3 papers"),
        ("failed", None, "channel_not_found"),
    ]


async def test_a_dead_workers_claim_is_taken_over_after_its_lease(harness: Harness) -> None:
    await configure(harness, NOW - timedelta(hours=5))
    async with harness.store.transaction() as repos:  # a worker claimed, then died
        await claim(repos, KEY, "dead", NOW)
    worker = scheduler(harness)
    await worker.retry_due()
    assert delivered(harness.platform)[0] == 0
    harness.clock[0] = NOW + POLICY.lease + timedelta(seconds=1)
    await worker.retry_due()
    assert delivered(harness.platform)[0] == 1


async def test_a_scheduler_retries_only_its_own_platforms_deliveries(harness: Harness) -> None:
    """A worker runs a scheduler per platform, each sending through its platform's outbound:
    another platform's retry is not its to send (a channel id of one platform would be
    unknown on the other, and its post turned off)."""
    await configure(harness, NOW - timedelta(hours=5))
    async with harness.store.transaction() as repos:  # a worker claimed, then died
        await claim(repos, KEY, "dead", NOW)
    harness.clock[0] = NOW + POLICY.lease + timedelta(seconds=1)
    for platform, sent in (("discord", 0), ("test", 1)):
        worker = harness.bot.scheduler(
            platform=platform, worker="w1", policy=POLICY, clock=lambda: harness.clock[0]
        )
        await worker.retry_due()
        assert delivered(harness.platform)[0] == sent, platform


# Several workers -------------------------------------------------------------------------

CHANNELS = 25
USERS = 25


async def test_two_workers_in_separate_event_loops_deliver_each_slot_once(
    harness: Harness,
) -> None:
    database_url = harness.store.engine.url.render_as_string(hide_password=False)
    harness.clock[0] = NOW - timedelta(hours=5)
    for index in range(CHANNELS):
        channel = ChannelRef(SCOPE, f"C{index}")
        await harness.say("channel on 09:00 UTC 2", user="admin", admin=True, channel=channel)
    for index in range(USERS):
        await harness.say("follow retrieval", user=f"u{index}")
        await harness.say("digest daily 10:00 UTC", user=f"u{index}")
    start = threading.Barrier(2)
    platforms = [RecordingPlatform(), RecordingPlatform()]
    errors: list[BaseException] = []

    async def work(platform: RecordingPlatform, name: str) -> None:
        store = await Store.open(database_url, migrate=False)
        bot = Paperboy(store, platform, config=BotConfig(), clock=lambda: NOW)
        worker = bot.scheduler(worker=name, policy=POLICY, clock=lambda: NOW)
        try:
            start.wait(timeout=30)
            await worker.resync(catch_up=True)
        finally:
            worker.shutdown()
            await store.close()

    def thread(platform: RecordingPlatform, name: str) -> None:
        try:
            asyncio.run(work(platform, name))
        except BaseException as error:  # reported to the test below
            errors.append(error)

    threads = [threading.Thread(target=thread, args=(p, f"w{i}")) for i, p in enumerate(platforms)]
    for t in threads:
        t.start()
    await asyncio.to_thread(lambda: [t.join(timeout=120) for t in threads])
    assert errors == []
    headers = [
        channel.channel
        for platform in platforms
        for channel, message, _ in platform.posts
        if message.text.startswith("Trending papers")
    ]
    digests = [user.user for platform in platforms for user, _, _ in platform.dms]
    assert sorted(headers) == sorted(f"C{i}" for i in range(CHANNELS))
    assert sorted(digests) == sorted(f"u{i}" for i in range(USERS))
    async with harness.store.transaction() as repos:
        rows = await repos.deliveries.recent(limit=1000)
    assert len(rows) == CHANNELS + USERS and {r.status for r in rows} == {"sent"}


# Workers look for a free sender lease every 20 ms.
SENDING = replace(POLICY, sender_poll=timedelta(seconds=0.02))


async def test_one_worker_at_a_time_sends_a_workspaces_posts(harness: Harness) -> None:
    """Pacing is per process: the worker holding the workspace's sender lease sends all of
    its posts; another worker's runs wait for the lease, then find every claim taken."""
    await configure(harness, NOW - timedelta(hours=5))
    keys = [KEY]
    for index in range(2, 6):
        channel = ChannelRef(SCOPE, f"C{index}")
        await harness.say("channel on 09:00 UTC 3", user="admin", admin=True, channel=channel)
        keys.append(DeliveryKey("channel", "test", "T1", f"C{index}", "2026-05-05"))
    holder_platform = RecordingPlatform()
    holder_bot = Paperboy(harness.store, holder_platform, config=BotConfig(), clock=lambda: NOW)
    waiter, holder = (
        bot.scheduler(worker=name, policy=SENDING, clock=lambda: NOW).runner
        for bot, name in ((harness.bot, "w1"), (holder_bot, "w2"))
    )
    async with harness.store.transaction() as repos:  # w2 is sending to T1 already
        await repos.leases.acquire(lease_name("test", "T1"), "w2", NOW, SENDING.sender_lease)
    waiting = [asyncio.create_task(waiter.run(key)) for key in keys]  # w1 fires first
    await asyncio.sleep(0.3)
    assert not any(run.done() for run in waiting) and delivered(harness.platform) == (0, 0)
    assert await asyncio.gather(*(holder.run(key) for key in keys)) == [Status.SENT] * 5
    assert await asyncio.wait_for(asyncio.gather(*waiting), 10) == [None] * 5
    assert delivered(holder_platform)[0] == 5 and delivered(harness.platform) == (0, 0)
    async with harness.store.transaction() as repos:
        assert await repos.leases.held(NOW) == []  # each let go when its last run ended


async def test_a_dead_workers_sender_lease_holds_its_workspace_up_until_it_runs_out(
    harness: Harness,
) -> None:
    await configure(harness, NOW - timedelta(hours=5))
    async with harness.store.transaction() as repos:
        await repos.leases.acquire(lease_name("test", "T1"), "dead", NOW, SENDING.sender_lease)
    runner = harness.bot.scheduler(
        worker="w1", policy=SENDING, clock=lambda: harness.clock[0]
    ).runner
    running = asyncio.create_task(runner.run(KEY))
    await asyncio.sleep(0.3)  # fifteen looks at the lease
    assert not running.done() and delivered(harness.platform) == (0, 0)
    harness.clock[0] = NOW + SENDING.sender_lease + timedelta(seconds=1)
    assert await asyncio.wait_for(running, 10) is Status.SENT
    assert delivered(harness.platform) == (1, 0)


async def test_a_workspace_id_as_long_as_its_column_still_names_a_lease(store: Store) -> None:
    workspaces = ["W" * 64, "W" * 63 + "X"]  # Ident's full length
    names = [lease_name("discord", workspace) for workspace in workspaces]
    assert names[0] != names[1] and lease_name("slack", "T1") == "send:slack:T1"
    async with store.transaction() as repos:  # PostgreSQL checks the column's length
        for name in names:
            assert await repos.leases.acquire(name, "w1", NOW, SENDING.sender_lease)
    async with store.transaction() as repos:
        assert {lease.name for lease in await repos.leases.held(NOW)} == set(names)


async def test_renewing_never_takes_back_a_released_or_taken_lease(store: Store) -> None:
    """A renewal racing the holder's own release must not bring the lease back: the other
    workers would wait for it to run out."""
    ttl, later = SENDING.sender_lease, NOW + timedelta(minutes=5)
    mine, released, theirs = (lease_name("slack", team) for team in ("T1", "T2", "T3"))
    async with store.transaction() as repos:
        assert await repos.leases.acquire_many([mine, released], "w1", NOW, ttl) == {
            mine,
            released,
        }
        assert await repos.leases.acquire(theirs, "w2", NOW, ttl)
        await repos.leases.release(released, "w1")
    async with store.transaction() as repos:
        assert await repos.leases.renew_many([mine, released, theirs], "w1", later, ttl) == {mine}
    async with store.transaction() as repos:
        held = {lease.name: lease for lease in await repos.leases.held(NOW)}
    assert set(held) == {mine, theirs} and held[mine].expires_at == later + ttl
    assert held[theirs].holder == "w2" and held[theirs].expires_at == NOW + ttl


async def test_a_sender_lease_is_renewed_while_held_and_passed_on_when_let_go(
    store: Store,
) -> None:
    clock = [NOW]
    ttl, poll = timedelta(seconds=0.3), timedelta(seconds=0.02)  # renewed every 0.1 s
    first, second = (
        SenderLeases(
            store,
            LiveWorkers(store, name, platform="slack", ttl=ttl, clock=lambda: clock[0]),
            ttl=ttl,
            poll=poll,
            grace=timedelta(0),
            clock=lambda: clock[0],
            outage=Outage(),
        )
        for name in ("w1", "w2")
    )
    name = lease_name("slack", "T1")

    async def lease() -> tuple[str, datetime]:
        async with store.transaction() as repos:
            held = await repos.leases.get(name)
        assert held is not None
        return held.holder, held.expires_at

    async with first.sending("slack", "T1"):
        assert await lease() == ("w1", NOW + ttl)
        clock[0] = NOW + timedelta(minutes=1)
        for _ in range(100):  # up to 5 s
            if await lease() == ("w1", clock[0] + ttl):
                break
            await asyncio.sleep(0.05)
        assert await lease() == ("w1", clock[0] + ttl)  # renewed at the new time

        async def holder_inside_second() -> str:
            async with second.sending("slack", "T1"):
                return (await lease())[0]

        waiting = asyncio.create_task(holder_inside_second())
        await asyncio.sleep(0.2)
        assert not waiting.done()
    assert await asyncio.wait_for(waiting, 5) == "w2"
    async with store.transaction() as repos:
        assert await repos.leases.get(name) is None  # the second let go too


async def test_a_paused_digest_is_not_scheduled(harness: Harness) -> None:
    await configure(harness, NOW - timedelta(hours=5))
    async with harness.store.transaction() as repos:
        setting = await repos.users.digest_setting("test", "T1", "alice")
        assert setting is not None
        setting.disabled_reason = "dms_closed"
    worker = scheduler(harness)
    await worker.resync(catch_up=True)
    assert delivered(harness.platform) == (1, 0)
    assert "digest:test:T1:alice" not in next_slots(worker)


# Publishing days and the day's list ------------------------------------------------------


async def test_a_channel_posts_on_its_own_days(harness: Harness) -> None:
    answer = await harness.say("channel on 09:00 UTC 3 mon,wed,sat", user="admin", admin=True)
    assert "on Mon, Wed, Sat" in answer.text
    worker = scheduler(harness)
    await worker.resync()
    fires = []
    (slot,) = worker.slots
    trigger = slot.trigger()
    fire = trigger.get_next_fire_time(None, NOW)
    for _ in range(4):
        assert fire is not None
        fires.append(fire.strftime("%a %d"))
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    assert fires == ["Wed 06", "Sat 09", "Mon 11", "Wed 13"]
    kept = await harness.say("channel on 10:00", user="admin", admin=True)  # days are kept
    assert "10:00 UTC on Mon, Wed, Sat" in kept.text
    everyday = await harness.say("channel on daily", user="admin", admin=True)
    assert "every day" in everyday.text
    refused = await harness.say("channel on 09:00 UTC 3 someday", user="admin", admin=True)
    assert refused.is_usage_hint and "mon,wed,fri" in refused.text
    assert "every day" in (await harness.say("channel status")).text


def test_the_due_list_is_todays_once_it_is_out_and_fridays_at_weekends() -> None:
    assert due_list_day(datetime(2026, 5, 5, 9, 0, tzinfo=UTC)) == date(2026, 5, 5)
    assert due_list_day(datetime(2026, 5, 5, 7, 59, tzinfo=UTC)) == date(2026, 5, 4)
    tokyo_monday_morning = datetime(2026, 5, 11, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert due_list_day(tokyo_monday_morning) == date(2026, 5, 8)  # Friday's
    assert due_list_day(datetime(2026, 5, 9, 12, 0, tzinfo=UTC)) == date(2026, 5, 8)


async def test_a_post_caught_up_late_carries_the_list_due_at_its_time(harness: Harness) -> None:
    """09:00 in Berlin is 07:00 UTC, before the day's list is out: the post carries the list
    before. Sent late because no worker ran at 09:00, it carries that same list, not the day's
    (which the next morning's post then carries, so no list is skipped or posted twice)."""
    harness.clock[0] = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    await harness.say("channel on 09:00 Europe/Berlin 2", user="admin", admin=True)
    harness.clock[0] = datetime(2026, 5, 5, 12, 0, tzinfo=UTC)  # no worker ran at 07:00 UTC
    await scheduler(harness).resync(catch_up=True)
    header = harness.platform.posts[0][1].text
    assert header.endswith("Monday 04 May 2026")
    assert [paper for paper, _ in harness.paper_posts()] == ["2605.00001", "2605.00002"]


WEDNESDAY = datetime(2026, 5, 6, 9, 0, tzinfo=UTC)
WEDNESDAY_KEY = DeliveryKey("channel", "test", "T1", "C1", "2026-05-06")


async def test_a_post_waits_for_the_days_list_then_posts_it(harness: Harness) -> None:
    await configure(harness, NOW)
    harness.clock[0] = WEDNESDAY  # Wednesday's list is not in: Tuesday's must not be reposted
    worker = scheduler(harness)
    assert await worker.runner.run(WEDNESDAY_KEY) is Status.WAITING
    assert delivered(harness.platform) == (0, 0)
    async with harness.store.transaction() as repos:
        row = await ledger_row(repos, WEDNESDAY_KEY)
    assert row is not None and (row.status, row.attempts) == ("waiting", 0)
    assert row.detail == "waiting for the 2026-05-06 list"
    for _ in range(POLICY.max_attempts + 2):  # waiting never uses up the attempts
        harness.clock[0] += POLICY.list_poll
        await worker.retry_due()
    assert delivered(harness.platform) == (0, 0)
    harness.hf.load_day("2026-05-06", "2026-05-05.json")  # the list comes out
    async with HuggingFaceClient(harness.hf.base_url, timeout=2.0, max_retries=0) as client:
        await ingest_days(harness.store, client, WEDNESDAY.date(), WEDNESDAY.date(), WEDNESDAY)
    harness.clock[0] += POLICY.list_poll
    await worker.retry_due()
    assert delivered(harness.platform) == (1, 0)
    header = harness.platform.posts[0][1].text
    assert header.endswith("Wednesday 06 May 2026")
    async with harness.store.transaction() as repos:
        row = await ledger_row(repos, WEDNESDAY_KEY)
    assert row is not None and (row.status, row.attempts, row.detail) == ("sent", 1, "3 papers")


async def test_a_list_that_never_comes_is_reported_once_not_replaced(harness: Harness) -> None:
    await configure(harness, NOW)
    harness.clock[0] = WEDNESDAY
    worker = scheduler(harness)
    await worker.runner.run(WEDNESDAY_KEY)
    polls = int(POLICY.list_wait / POLICY.list_poll)
    for _ in range(polls + 2):
        harness.clock[0] += POLICY.list_poll
        await worker.retry_due()
    posts = [message.text for _, message, _ in harness.platform.posts]
    assert len(posts) == 1 and posts[0].startswith("No trending papers today")
    assert "Wednesday 06 May" in posts[0]
    assert harness.paper_posts() == []  # Tuesday's papers were not posted again
    async with harness.store.transaction() as repos:
        row = await ledger_row(repos, WEDNESDAY_KEY)
    assert row is not None and (row.status, row.detail) == ("sent", "list missing")


async def test_a_late_evening_post_waits_for_its_list_past_midnight(harness: Harness) -> None:
    """A slot is sent on its local day or not at all, but waiting for the day's list keeps its
    own span: a 22:30 post still says the list is missing at 02:30, not nothing."""
    harness.clock[0] = NOW
    await harness.say("channel on 22:30 UTC 3", user="admin", admin=True)
    harness.clock[0] = WEDNESDAY.replace(hour=22, minute=30)
    worker = scheduler(harness)
    await worker.resync()
    assert await worker.runner.run(WEDNESDAY_KEY) is Status.WAITING
    polls = int(POLICY.list_wait / POLICY.list_poll)
    for _ in range(polls + 2):
        harness.clock[0] += POLICY.list_poll
        await worker.retry_due()
    posts = [message.text for _, message, _ in harness.platform.posts]
    assert len(posts) == 1 and posts[0].startswith("No trending papers today")
    async with harness.store.transaction() as repos:
        row = await ledger_row(repos, WEDNESDAY_KEY)
    assert row is not None and (row.status, row.detail) == ("sent", "list missing")


# A send whose answer was lost -------------------------------------------------------------


class LostAnswerPlatform(RecordingPlatform):
    """Delivers the `lose`-th message (post or DM), then fails as if the connection dropped
    before the answer came back: the sender cannot know the message went out."""

    def __init__(self, lose: int) -> None:
        super().__init__()
        self.lose = lose

    def _count(self) -> None:
        self.lose -= 1
        if self.lose == 0:
            raise DeliveryError("network_error", permanent=False)

    async def post(self, channel: ChannelRef, message: Message) -> MessageRef:
        ref = await super().post(channel, message)
        self._count()
        return ref

    async def send_dm(self, user: UserRef, message: Message) -> MessageRef:
        ref = await super().send_dm(user, message)
        self._count()
        return ref


async def test_a_retry_does_not_repeat_what_already_went_out(harness: Harness) -> None:
    await configure(harness, NOW - timedelta(hours=5))
    platform = LostAnswerPlatform(lose=3)  # the header and a paper are out, a second is lost
    harness.use(platform)
    worker = scheduler(harness)
    assert await worker.runner.run(KEY) is Status.RETRY
    harness.clock[0] = NOW + POLICY.first_retry
    await worker.retry_due()
    keys = [message.delivery_key for _, message, _ in platform.posts]
    assert len(keys) == 4 and len(set(keys)) == 4  # header + 3 papers, each once
    assert keys[0] == "channel:2026-05-05:header"
    await harness.say("channel post-now", user="admin", admin=True)
    posted = [message.cards[0].paper_id for _, message, _ in platform.posts if message.cards]
    assert len(posted) > 3 and len(set(posted)) == len(posted)  # the lost one was recorded
    async with harness.store.transaction() as repos:
        row = await ledger_row(repos, KEY)
    assert row is not None and (row.status, row.attempts) == ("sent", 2)


class BlindPlatform(LostAnswerPlatform):
    """Like Discord: cannot list what it already holds."""

    async def sent_keys(
        self, target: ChannelRef | UserRef, since: datetime
    ) -> dict[str, MessageRef]:
        return {}


async def test_a_retry_never_reposts_papers_recorded_by_the_first_attempt(
    harness: Harness,
) -> None:
    await configure(harness, NOW - timedelta(hours=5))
    platform = BlindPlatform(lose=3)  # the header and a paper are out and known, then a loss
    harness.use(platform)
    worker = scheduler(harness)
    assert await worker.runner.run(KEY) is Status.RETRY
    harness.clock[0] = NOW + POLICY.first_retry
    await worker.retry_due()
    papers = [message.delivery_key for _, message, _ in platform.posts if message.cards]
    assert papers.count(papers[0]) == 1  # recorded by the first attempt: not sent again
    assert len(set(papers)) == 3  # the post still holds its three papers


async def test_a_digest_retry_finds_the_dm_that_went_out(harness: Harness) -> None:
    await configure(harness, NOW - timedelta(hours=5))
    platform = LostAnswerPlatform(lose=1)
    harness.use(platform)
    worker = scheduler(harness)
    digest = DeliveryKey("digest", "test", "T1", "alice", "2026-05-05")
    assert await worker.runner.run(digest) is Status.RETRY
    harness.clock[0] = NOW + POLICY.first_retry
    await worker.retry_due()
    assert [message.delivery_key for _, message, _ in platform.dms] == ["digest:2026-05-05:dm"]
    assert (await harness.say("digest now")).text.startswith("Nothing new")  # recorded as sent


async def test_a_post_sent_by_a_worker_that_died_before_noting_it_is_not_sent_again(
    harness: Harness,
) -> None:
    await configure(harness, NOW - timedelta(hours=5))
    # A worker claimed and composed the post, sent and recorded all of it, then died before
    # the ledger heard.
    async with harness.store.transaction() as repos:
        row = await claim(repos, KEY, "dead", NOW)
        assert row is not None
        (send,) = await harness.bot.daily.prepare(
            repos, [Claim(KEY, row.created_at, row.attempts, give_up=False)]
        )
    await send()
    sent_before = len(harness.platform.posts)
    harness.clock[0] = NOW + POLICY.lease + timedelta(seconds=1)
    await scheduler(harness).retry_due()
    assert len(harness.platform.posts) == sent_before
    async with harness.store.transaction() as repos:
        row = await ledger_row(repos, KEY)
    assert row is not None and (row.status, row.detail) == ("sent", "3 papers")
    assert row.message_ref == harness.platform.posts[0][2].message_id  # the header it found
