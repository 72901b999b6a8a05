"""The worker's clock: APScheduler fires each schedule's slots at their local time, catches
up today's missed ones at start, and retries what is due.

Every worker runs an APScheduler `AsyncIOScheduler` with one job per schedule (days, local
time and IANA timezone, as a `CronTrigger`; DST is the trigger's business), which delivers
every slot on it: most channels post at the same few times, and a thousand jobs firing at
once cost more than the posts' claims. Jobs live in memory only: they are rebuilt from the
database at start and re-synced every minute (and at once after a command changes a schedule
in this process), so workers never share a job store. Several workers fire the same slot; the
deliveries ledger lets exactly one of them send it (`bot.delivery.runner`), and the live
workers share the workspaces between them (`bot.delivery.workers`, heartbeats every third of
the sender lease). A slot whose run finds the database unreachable is run again with backoff
until it runs or its local day ends (`bot.delivery.outage`); periodic jobs that find it so
wait for their next turn, and the outage is logged once, not per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.delivery.outage import Outage
from bot.delivery.runner import DeliveryKind, DeliveryPolicy, DeliveryRunner, worker_name
from bot.delivery.slots import Slot, last_fire, load_slots
from bot.delivery.workers import LiveWorkers
from storage.db import unreachable
from storage.deliveries import DeliveryKey, Status
from storage.store import Store

log = logging.getLogger(__name__)

# How long a finished delivery stays in the ledger (`bot.housekeeping` deletes it then). A
# period is claimed only on its local day (`fire`; `deliver` until that day ends; `catch_up`
# today's, and records a missed one of the 8 days before as skipped), and nothing claims a
# finished row again (`storage.deliveries.FINISHED`): past its day, a row guards no send.
# 90 days keep the history for `paperboy status` and whoever reads the ledger; each target's
# latest scheduled row stays whatever its age, for its "last post" line.
LEDGER_KEPT = timedelta(days=90)


class DeliveryScheduler:
    """The worker's clock: fires slots, catches up today's missed ones, retries failures."""

    def __init__(
        self,
        store: Store,
        kinds: Mapping[str, DeliveryKind],
        *,
        platform: str | None = None,
        worker: str | None = None,
        policy: DeliveryPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        outage: Outage | None = None,
    ) -> None:
        self.store = store
        self.platform = platform  # the slots the kinds' outbound can deliver; None: all
        self.policy = policy or DeliveryPolicy()
        self.clock = clock
        self.outage = outage or Outage()  # shared by the schedulers of one process
        self.workers = LiveWorkers(
            store, worker or worker_name(), platform=platform or "any",
            ttl=self.policy.sender_lease, clock=clock,
        )  # fmt: skip
        self.runner = DeliveryRunner(
            store, kinds, workers=self.workers, policy=self.policy, clock=clock,
            outage=self.outage,
        )  # fmt: skip
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._schedules: dict[str, list[Slot]] = {}  # schedule id -> its slots
        self._resync_lock = asyncio.Lock()

    async def start(self) -> None:
        """Join the live workers, build the jobs from the database, deliver today's missed
        slots, then run."""
        self.scheduler.start()
        await self.workers.beat()  # before the catch-up: the others see this worker's share
        every = self.policy.resync_every.total_seconds()
        jobs: dict[str, tuple[Callable[[], Awaitable[None]], float]] = {
            "resync": (self.resync, every),
            "retries": (self.retry_due, every),
            "heartbeat": (self.workers.beat, self.policy.sender_lease.total_seconds() / 3),
        }
        for job_id, (job, seconds) in jobs.items():  # beating on through a long catch-up
            self.scheduler.add_job(
                self._through_outage, IntervalTrigger(seconds=seconds), args=(job,),
                id=job_id, coalesce=True,
            )  # fmt: skip
        await self.resync(catch_up=True)

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def stop(self) -> None:
        """Stop firing, and leave the live workers at once: the others take this worker's
        workspaces now, not when its heartbeat runs out."""
        self.shutdown()
        try:
            await self.workers.leave()
        except Exception as error:  # its heartbeat runs out by itself
            if not unreachable(error):
                raise

    def schedule_changed(self) -> None:
        """A command changed a schedule in this process: pick it up now, not in a minute."""
        if self.scheduler.running:
            self.scheduler.add_job(self.resync, id="resync-now", replace_existing=True)

    async def resync(self, *, catch_up: bool = False) -> None:
        catching_up: list[asyncio.Task[Status | None]] = []
        async with self._resync_lock:
            # One slot per target and kind: the schedules' tables are unique on both.
            slots = await load_slots(self.store, self.platform)
            if catch_up:  # first, so that the missed posts' claims start at once
                # In random order: workers starting together then claim a random half each
                # (pacing is per worker), not whole batches in the same order.
                missed = random.sample(slots, len(slots))
                now = self.clock()
                catching_up = [asyncio.create_task(self.catch_up(slot, now)) for slot in missed]
            schedules: dict[str, list[Slot]] = {}
            for slot in slots:
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
            self._schedules = schedules
        await asyncio.gather(*catching_up)

    async def fire(self, schedule_id: str) -> None:
        """Deliver every slot on the schedule that fired; one failing fails alone. The
        period is the date of the time it was due, not of now: a 23:59 slot fired a few
        minutes late (APScheduler's misfire grace) is still that day's."""
        slots = self._schedules.get(schedule_id, [])
        if not slots:
            return
        now = self.clock()
        grace = self.policy.lease + timedelta(minutes=1)  # the jobs' misfire grace, and more
        due = last_fire(slots[0].trigger(), now, lookback=grace) or now
        await asyncio.gather(*(self.deliver(slot, slot.key(due)) for slot in slots))

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
            return await self.deliver(slot, key)
        async with self.store.transaction() as repos:
            skipped = await repos.deliveries.skip(key, now, "missed while no worker ran")
        if skipped:
            log.warning("missed slot skipped: %s", key)
        return None

    async def deliver(self, slot: Slot, key: DeliveryKey) -> Status | None:
        """Run the slot's delivery `key`. While the database cannot be reached, run it again
        with backoff (sooner when the database answers meanwhile) until it runs or the slot's
        local day ends; any other error fails this slot alone, logged."""
        until = slot.day_end(key.period)
        first_failure: datetime | None = None
        while True:
            try:
                status = await self.runner.run(key, until)
            except Exception as error:
                if not unreachable(error):
                    log.error("delivery %s failed to run", slot.job_id, exc_info=error)
                    return None
                self.outage.failed(error)
                self.outage.waiting(key)
                now = self.clock()
                first_failure = first_failure or now
                retry_at = self.policy.outage_backoff.next_try(first_failure, now, until)
                if retry_at is None:
                    self.outage.gave_up(key)
                    return None
                await self.outage.wait((retry_at - now).total_seconds())
            else:
                self.outage.answered()
                self.outage.ran(key)
                return status

    async def retry_due(self) -> None:
        """Retries that are due, and deliveries whose worker died mid-way (lease expired).
        One whose slot's local day has ended (no worker ran meanwhile, or its workspace had
        removed the app) is recorded as skipped instead: a slot is sent on its day or not at
        all; a post waiting for its day's list may end its wait (`list_wait`) past midnight."""
        slots = {(s.kind, s.platform, s.workspace, s.target): s for s in self.slots}
        now = self.clock()
        max_attempts = self.policy.max_attempts
        async with self.store.transaction() as repos:
            # Only this scheduler's platform: its kinds send through that platform's outbound.
            rows = await repos.deliveries.due_retries(now, max_attempts, platform=self.platform)
            keys: list[DeliveryKey] = []  # to run
            late: list[DeliveryKey] = []
            for row in rows:
                key = DeliveryKey(row.kind, row.platform, row.workspace, row.target, row.period)
                # A slot not known here yet (its workspace just came back) ends its day by
                # the latest any timezone's day ends.
                until = _day_end(slots, key) or _latest_day_end(key.period)
                if row.status == Status.WAITING:
                    # Its wait for the day's list ends with a last look, which says the list
                    # is missing: due when the wait ends, run within a poll of it.
                    waited = row.created_at + self.policy.list_wait + self.policy.list_poll
                    until = max(until, waited)
                (late if now >= until else keys).append(key)
            if late:
                reason = "its day ended before it could be sent"
                for key in await repos.deliveries.skip_due(late, now, max_attempts, reason):
                    log.warning("slot %s skipped: %s", key, reason)
        outcomes = await asyncio.gather(
            *(self.runner.run(key, _day_end(slots, key)) for key in keys), return_exceptions=True
        )
        for key, outcome in zip(keys, outcomes, strict=True):
            if not isinstance(outcome, Exception):
                continue
            if unreachable(outcome):  # its row stays: the next turn tries again
                self.outage.failed(outcome)
            else:
                log.error("retry of %s failed to run", key, exc_info=outcome)

    async def _through_outage(self, job: Callable[[], Awaitable[None]]) -> None:
        """A periodic job: the database being unreachable waits for its next turn, noted by
        the outage (one line when it starts), not a traceback per turn."""
        try:
            await job()
        except Exception as error:
            if not unreachable(error):
                raise
            self.outage.failed(error)
        else:
            self.outage.answered()

    @property
    def slots(self) -> list[Slot]:
        """The slots this worker's jobs deliver, as of the last resync."""
        return [slot for slots in self._schedules.values() for slot in slots]


def _day_end(slots: Mapping[tuple[str, str, str, str], Slot], key: DeliveryKey) -> datetime | None:
    """The end of `key`'s local day, when its slot is still scheduled."""
    slot = slots.get((key.kind, key.platform, key.workspace, key.target))
    return slot.day_end(key.period) if slot is not None else None


def _latest_day_end(period: str) -> datetime:
    """The latest moment any timezone's day `period` (YYYY-MM-DD) ends: at UTC-12."""
    return datetime.fromisoformat(period).replace(tzinfo=UTC) + timedelta(days=1, hours=12)
