"""Scheduled delivery: channel daily posts and DM digests at their local times, exactly once.

Every worker runs an APScheduler `AsyncIOScheduler` with one job per schedule (days, local
time and IANA timezone, as a `CronTrigger`; DST is the trigger's business), which delivers
every subscription and digest on it: most channels post at the same few times, and a
thousand jobs firing at once cost more than the posts' claims. Jobs live in memory only:
they are rebuilt from the database at start and re-synced every minute (and at once after a
command changes a schedule in this process), so workers never share a job store. Several
workers fire the same slot; the deliveries ledger lets exactly one of them send it.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from bot.batching import Batcher
from bot.commands.parser import days_spec
from bot.core import DuePost, Paperboy
from bot.daily import ListMissing, due_list_day
from bot.events import ChannelRef, Scope, UserRef
from bot.ports import Delivered, DeliveryError, SendKey
from bot.sender_leases import SenderLeases
from storage.deliveries import CHANNEL, DIGEST, DeliveryKey, Status
from storage.models import ChannelSubscription, Delivery, DigestSetting
from storage.store import Repositories, Store

log = logging.getLogger(__name__)

SENDER_LEASE = timedelta(seconds=30)


@dataclass(frozen=True)
class DeliveryPolicy:
    lease: timedelta = timedelta(minutes=5)  # longer than any one delivery takes
    max_attempts: int = 5
    first_retry: timedelta = timedelta(minutes=1)  # doubled per attempt, up to max_retry
    max_retry: timedelta = timedelta(minutes=30)
    # Deliveries in flight per worker, and per workspace. Paced sends mostly wait, so many can
    # be in flight. A workspace's posts share its rate: when all of them are in flight they
    # progress together and end together; when only some are, the last ones to start are
    # left alone at the end, each at 1 message/s per channel, and the workspace's rate goes
    # unused (bench: 8 per workspace left the last 5 s of a morning at 80% of the rate).
    # per_workspace x messages per post / the rate must stay well under the lease:
    # 32 x 6 / 4 per second is 48 s against 300 s. The worker-wide cap bounds memory.
    concurrency: int = 1024
    per_workspace: int = 32
    resync_every: timedelta = timedelta(minutes=1)
    # A post whose list is not out yet waits, looking again every `list_poll`, for up to
    # `list_wait` after its slot; then it says the list is missing instead of posting.
    list_wait: timedelta = timedelta(hours=4)
    list_poll: timedelta = timedelta(minutes=10)
    # One worker at a time sends to a workspace (`bot.sender_leases`); the others look again
    # every `sender_poll` for its lease to be free.
    sender_poll: timedelta = timedelta(seconds=1)

    @property
    def sender_lease(self) -> timedelta:
        """How long a workspace's sender lease lasts unrenewed: what a dead worker holds its
        workspaces up by. Never longer than a claim's lease, which it would outlast."""
        return min(self.lease, SENDER_LEASE)

    def retry_delay(self, attempts: int) -> timedelta:
        return min(self.first_retry * 2 ** max(attempts - 1, 0), self.max_retry)


@dataclass(frozen=True)
class Slot:
    """A recurring delivery: which target, at what local time on which days."""

    kind: str
    platform: str
    workspace: str
    target: str
    day_of_week: str  # cron syntax: "mon-fri", "*", "mon"
    hour: int
    minute: int
    timezone: str
    since: datetime  # when it was last configured: earlier slots were never due

    @property
    def job_id(self) -> str:
        return f"{self.kind}:{self.platform}:{self.workspace}:{self.target}"

    @property
    def schedule_id(self) -> str:
        """The APScheduler job of every slot on this slot's schedule."""
        return f"schedule:{self.day_of_week}:{self.hour:02d}:{self.minute:02d}:{self.timezone}"

    def trigger(self) -> CronTrigger:
        return _cron(self.day_of_week, self.hour, self.minute, self.timezone)

    def key(self, fire_time: datetime) -> DeliveryKey:
        """The ledger key of the slot firing at `fire_time`: its local date is the period."""
        period = fire_time.astimezone(ZoneInfo(self.timezone)).date().isoformat()
        return DeliveryKey(self.kind, self.platform, self.workspace, self.target, period)


@functools.lru_cache(maxsize=4096)
def _cron(day_of_week: str, hour: int, minute: int, timezone: str) -> CronTrigger:
    """One trigger per schedule, shared by the slots on it (triggers hold no job state):
    most channels post at the same few times, and building one costs a tenth of a ms."""
    return CronTrigger(
        day_of_week=day_of_week, hour=hour, minute=minute, timezone=ZoneInfo(timezone)
    )


# Slots on one schedule share a trigger (`_cron`), and a resync looks them all up at one `now`:
# one search per schedule instead of one per slot (0.15 ms each, 0.15 s for a thousand
# channels before a morning's first claim).
@functools.lru_cache(maxsize=4096)
def last_fire(trigger: CronTrigger, now: datetime, *, lookback: timedelta) -> datetime | None:
    """The trigger's latest fire time at or before `now`, within `lookback`."""
    # Cron triggers only step forwards, a fire at a time. Most slots fire daily, so the last
    # day is searched first: at a worker's start every slot is looked up, and stepping
    # through a week of them would cost a millisecond each.
    for window in sorted({min(lookback, timedelta(days=1)), lookback}):
        latest = None
        fire = trigger.get_next_fire_time(None, now - window)
        while fire is not None and fire <= now:
            latest = fire
            fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if latest is not None:
            return latest
    return None


def _hour_minute(value: str) -> tuple[int, int]:
    hour, minute = value.split(":")
    return int(hour), int(minute)


async def load_slots(store: Store, platform: str | None = None) -> list[Slot]:
    """Every enabled channel post and every digest that is not paused (on `platform`)."""
    channels = select(ChannelSubscription).where(ChannelSubscription.enabled.is_(True))
    digests_query = select(DigestSetting).where(DigestSetting.disabled_reason.is_(None))
    if platform is not None:
        channels = channels.where(ChannelSubscription.platform == platform)
        digests_query = digests_query.where(DigestSetting.platform == platform)
    async with store.transaction() as repos:
        subscriptions = (await repos.session.scalars(channels)).all()
        digests = (await repos.session.scalars(digests_query)).all()
    slots = [
        Slot(CHANNEL, s.platform, s.workspace, s.channel, s.days,
             *_hour_minute(s.post_time), s.timezone, s.updated_at)
        for s in subscriptions
    ]  # fmt: skip
    for d in digests:
        days = days_spec({d.weekday or 0}) if d.cadence == "weekly" else "*"
        slots.append(
            Slot(DIGEST, d.platform, d.workspace, d.user, days, *_hour_minute(d.send_time),
                 d.timezone, d.updated_at)
        )  # fmt: skip
    return slots


def worker_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


Prepared = tuple[Delivery, Callable[[], Awaitable[Delivered]]]  # a claim, and its send step


@dataclass(frozen=True)
class Outcome:
    """What became of a claimed attempt, for the ledger."""

    delivery_id: int
    status: Status
    at: datetime
    message_ref: str | None
    detail: str | None
    retry_at: datetime | None


class DeliveryRunner:
    """Runs one ledger-keyed delivery: claim, send through the bot, record the outcome."""

    def __init__(
        self,
        bot: Paperboy,
        *,
        worker: str,
        policy: DeliveryPolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self.bot = bot
        self.worker = worker
        self.policy = policy
        self.clock = clock
        self._slots = asyncio.Semaphore(policy.concurrency)
        # Batches of 100: the first posts start sending while the next are composed, and
        # a thousand first messages do not leave at once (the event loop's lag would bunch
        # them past a workspace's burst).
        self._preparing = Batcher(self._prepare, max_batch=100)
        self._finishing = Batcher(self._finish)
        # (platform, workspace) -> its slots and how many runs hold or wait for them.
        self._workspaces: dict[tuple[str, str], tuple[asyncio.Semaphore, list[int]]] = {}
        self._senders = SenderLeases(
            bot.store, worker, ttl=policy.sender_lease, poll=policy.sender_poll, clock=clock
        )

    async def run(self, key: DeliveryKey) -> Status | None:
        """The outcome, or None when this worker did not get the claim (another worker has
        it, it is done, or its retry is not due)."""
        workspace = (key.platform, key.workspace)
        # The workspace's sender lease first, then its slot: a run waiting for either holds
        # no worker-wide slot.
        async with self._senders.sending(key.platform, key.workspace):
            slots, users = self._workspaces.setdefault(
                workspace, (asyncio.Semaphore(self.policy.per_workspace), [0])
            )
            users[0] += 1
            try:
                async with slots, self._slots:
                    return await self._run(key)
            finally:
                users[0] -= 1
                if not users[0]:
                    del self._workspaces[workspace]

    async def _run(self, key: DeliveryKey) -> Status | None:
        policy = self.policy
        prepared = await self._preparing.submit(key)
        if prepared is None:
            return None
        delivery, send = prepared
        started = time.monotonic()
        status, retry_at, ref, detail = Status.FAILED, None, None, None
        try:
            delivered = await send()
        except ListMissing as missing:
            status, detail = Status.WAITING, f"waiting for the {missing.day} list"
            give_up_at = delivery.created_at + policy.list_wait
            retry_at = min(self.clock() + policy.list_poll, give_up_at)
        except DeliveryError as error:
            detail = error.reason
            if not error.permanent and delivery.attempts < policy.max_attempts:
                status = Status.RETRY
                retry_at = self.clock() + policy.retry_delay(delivery.attempts)
        except Exception as error:  # a bug or an outage of ours: retry, never crash the worker
            log.exception("delivery %s crashed", key)
            detail = f"internal_error: {type(error).__name__}"
            if delivery.attempts < policy.max_attempts:
                status = Status.RETRY
                retry_at = self.clock() + policy.retry_delay(delivery.attempts)
        else:
            status = Status.SENT if delivered.ref else Status.EMPTY
            ref = delivered.ref.message_id if delivered.ref else None
            detail = delivered.note or f"{delivered.papers} papers"
        await self._finishing.submit(
            Outcome(delivery.id, status, self.clock(), ref, detail, retry_at)
        )
        log.info(
            "delivery kind=%s platform=%s workspace=%s target=%s period=%s outcome=%s "
            "attempt=%d latency_ms=%d detail=%s",
            key.kind, key.platform, key.workspace, key.target, key.period, status.value,
            delivery.attempts, (time.monotonic() - started) * 1000, detail,
        )  # fmt: skip
        return status

    async def _finish(self, outcomes: Sequence[Outcome]) -> list[None]:
        """Record outcomes in the ledger, those that arrive together in one transaction: a
        morning's runs end by the hundred, and SQLite lets one transaction write at a time.
        A transaction each kept the others waiting in SQLite's busy handler, which sleeps up
        to 100 ms between tries (a thousand channels: a median wait of 90-170 ms, the longest
        2-2.7 s, and the last outcome that much after the last post)."""
        async with self.bot.store.transaction() as repos:
            for outcome in outcomes:
                await repos.deliveries.finish(
                    outcome.delivery_id, outcome.status, outcome.at,
                    message_ref=outcome.message_ref, detail=outcome.detail,
                    retry_at=outcome.retry_at,
                )  # fmt: skip
        return [None] * len(outcomes)

    async def _prepare(self, keys: Sequence[DeliveryKey]) -> list[Prepared | None]:
        """Claim `keys` and compose what they send, in one transaction: deliveries that fire
        together share it (a morning's posts would otherwise queue for the database one by
        one, the last composed long after the first went out). For each key, None when this
        worker did not get the claim (or the key came twice), else the claim and the step
        that sends. Channel posts are composed here; a digest composes as it sends."""
        policy = self.policy
        async with self.bot.store.transaction() as repos:
            claimed = await repos.deliveries.claim_many(
                keys, self.worker, self.clock(),
                lease=policy.lease, max_attempts=policy.max_attempts,
            )  # fmt: skip
            posts = {key: row for key, row in claimed.items() if key.kind == CHANNEL}
            due = [
                DuePost(
                    ChannelRef(Scope(key.platform, key.workspace), key.target),
                    # The list due when the slot first ran, however late a retry runs.
                    day=due_list_day(row.created_at),
                    give_up=self.clock() >= row.created_at + policy.list_wait,
                    key=_send_key(key, row),
                )
                for key, row in posts.items()
            ]
            senders = dict(zip(posts, await self._compose(repos, due), strict=True))
        prepared: list[Prepared | None] = []
        for key in keys:
            row = claimed.pop(key, None)  # a key that came twice is claimed once
            if row is None:
                prepared.append(None)
            elif key in senders:
                prepared.append((row, senders[key]))
            else:
                user = UserRef(Scope(key.platform, key.workspace), key.target)
                digest = functools.partial(
                    self.bot.send_digest, user, scheduled=True, key=_send_key(key, row)
                )
                prepared.append((row, digest))
        return prepared

    async def _compose(
        self, repos: Repositories, due: list[DuePost]
    ) -> list[Callable[[], Awaitable[Delivered]]]:
        """The posts' send steps. A post whose composing fails (a bug, bad data) fails alone:
        its step raises the error, recorded as its outcome, and the claims still commit."""
        try:
            return await self.bot.prepare_daily(repos, due)
        except Exception:
            log.warning("composing %d posts together failed; composing them one by one", len(due))
        senders: list[Callable[[], Awaitable[Delivered]]] = []
        for post in due:
            try:
                (send,) = await self.bot.prepare_daily(repos, [post])
            except Exception as error:
                send = functools.partial(_raise, error)
            senders.append(send)
        return senders


async def _raise(error: Exception) -> Delivered:
    raise error


def _send_key(key: DeliveryKey, delivery: Delivery) -> SendKey:
    # After a first attempt, part of the delivery may be out (the worker died mid-way, a
    # send timed out after reaching the platform): the platform is asked first.
    retry_since = delivery.created_at if delivery.attempts > 1 else None
    return SendKey(f"{key.kind}:{key.period}", retry_since)


class DeliveryScheduler:
    """The worker's clock: fires slots, catches up today's missed ones, retries failures."""

    def __init__(
        self,
        bot: Paperboy,
        *,
        platform: str | None = None,
        worker: str | None = None,
        policy: DeliveryPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.bot = bot
        self.platform = platform  # the slots this bot's outbound can deliver; None: all
        self.policy = policy or DeliveryPolicy()
        self.clock = clock
        self.runner = DeliveryRunner(
            bot, worker=worker or worker_name(), policy=self.policy, clock=clock
        )
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._slots: dict[str, Slot] = {}  # job id -> slot
        self._schedules: dict[str, list[Slot]] = {}  # schedule id -> its slots
        self._resync_lock = asyncio.Lock()
        bot.schedule_listeners.append(self.schedule_changed)

    async def start(self) -> None:
        """Build the jobs from the database, deliver today's missed slots, then run."""
        self.scheduler.start()
        await self.resync(catch_up=True)
        every = self.policy.resync_every.total_seconds()
        self.scheduler.add_job(
            self.resync, IntervalTrigger(seconds=every), id="resync", coalesce=True
        )
        self.scheduler.add_job(
            self.retry_due, IntervalTrigger(seconds=every), id="retries", coalesce=True
        )

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def schedule_changed(self) -> None:
        """A command changed a schedule in this process: pick it up now, not in a minute."""
        if self.scheduler.running:
            self.scheduler.add_job(self.resync, id="resync-now", replace_existing=True)

    async def resync(self, *, catch_up: bool = False) -> None:
        catching_up: list[asyncio.Task[Status | None]] = []
        async with self._resync_lock:
            slots = await load_slots(self.bot.store, self.platform)
            wanted = {slot.job_id: slot for slot in slots}
            if catch_up:  # first, so that the missed posts' claims start at once
                # In random order: workers starting together then claim a random half each
                # (pacing is per worker), not whole batches in the same order.
                missed = random.sample(list(wanted.values()), len(wanted))
                now = self.clock()
                catching_up = [asyncio.create_task(self.catch_up(slot, now)) for slot in missed]
            schedules: dict[str, list[Slot]] = {}
            for slot in wanted.values():
                schedules.setdefault(slot.schedule_id, []).append(slot)
            for schedule_id in self._schedules.keys() - schedules.keys():
                self.scheduler.remove_job(schedule_id)
            for schedule_id, (slot, *_) in schedules.items():
                if schedule_id not in self._schedules:
                    self.scheduler.add_job(
                        self.fire, slot.trigger(), args=(schedule_id,), id=schedule_id,
                        replace_existing=True, coalesce=True, max_instances=1,
                        misfire_grace_time=int(self.policy.lease.total_seconds()),
                    )  # fmt: skip
            self._slots, self._schedules = wanted, schedules
        await asyncio.gather(*catching_up)

    async def fire(self, schedule_id: str) -> None:
        """Deliver every slot on the schedule that fired; one failing fails alone."""
        slots = self._schedules.get(schedule_id, [])
        now = self.clock()
        outcomes = await asyncio.gather(
            *(self.runner.run(slot.key(now)) for slot in slots), return_exceptions=True
        )
        for slot, outcome in zip(slots, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error("delivery %s failed to run", slot.job_id, exc_info=outcome)

    async def catch_up(self, slot: Slot, now: datetime) -> Status | None:
        """A slot missed while no worker ran (judged at `now`): delivered once if it was
        today (local), else recorded as skipped, so a worker back after a long outage never
        floods."""
        fired = last_fire(slot.trigger(), now, lookback=timedelta(days=8))
        if fired is None or fired < slot.since:
            return None
        key = slot.key(fired)
        today = now.astimezone(ZoneInfo(slot.timezone)).date().isoformat()
        if key.period == today:
            return await self.runner.run(key)
        async with self.bot.store.transaction() as repos:
            skipped = await repos.deliveries.skip(key, now, "missed while no worker ran")
        if skipped:
            log.warning("missed slot skipped: %s", key)
        return None

    async def retry_due(self) -> None:
        """Retries that are due, and deliveries whose worker died mid-way (lease expired)."""
        async with self.bot.store.transaction() as repos:
            rows = await repos.deliveries.due_retries(self.clock(), self.policy.max_attempts)
            keys = [DeliveryKey(r.kind, r.platform, r.workspace, r.target, r.period) for r in rows]
        await asyncio.gather(*(self.runner.run(key) for key in keys))

    @property
    def slot_count(self) -> int:
        return len(self._slots)

    def next_slots(self, limit: int = 10) -> list[tuple[str, datetime]]:
        """(job id, next fire time) of the soonest slots."""
        upcoming = next_fires(self._slots.values(), self.clock(), limit)
        return [(slot.job_id, fire) for slot, fire in upcoming]


def next_fires(slots: Iterable[Slot], now: datetime, limit: int) -> list[tuple[Slot, datetime]]:
    """The `limit` soonest (slot, next fire time) after `now`."""
    upcoming = [
        (slot, fire)
        for slot in slots
        if (fire := slot.trigger().get_next_fire_time(None, now)) is not None
    ]
    return heapq.nsmallest(limit, upcoming, key=lambda item: item[1])
