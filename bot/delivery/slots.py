"""Slot planning: which deliveries recur, when, and which ledger period a firing belongs to.

A slot is one target's recurring delivery (a channel's daily or weekly post, a user's digest)
at a local time on some days of the week in an IANA timezone. Its trigger is APScheduler's
`CronTrigger`, which keeps local times right across daylight-saving changes; its period, the
local date it fires on, keys the deliveries ledger. The schedules live in the database (channel
subscriptions, weekly posts, digest settings); a new scheduled kind adds its query to
`load_slots`.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

from storage.deliveries import CHANNEL, DIGEST, WEEKLY, DeliveryKey
from storage.models import ChannelSubscription, DigestSetting, WeeklyPost
from storage.store import Store
from storage.workspaces import installed

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
CRON_DAYS = tuple(day[:3] for day in WEEKDAYS)


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

    def day_end(self, period: str) -> datetime:
        """When the local day `period` (YYYY-MM-DD) ends: a slot of that day is not sent
        later."""
        next_day = date.fromisoformat(period) + timedelta(days=1)
        return datetime.combine(next_day, time(0), tzinfo=ZoneInfo(self.timezone))

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


def next_fire(trigger: CronTrigger, after: datetime) -> datetime | None:
    """The trigger's first fire time after `after` (APScheduler is untyped)."""
    fire: datetime | None = trigger.get_next_fire_time(None, after)
    return fire


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
        fire = next_fire(trigger, now - window)
        while fire is not None and fire <= now:
            latest = fire
            fire = next_fire(trigger, fire + timedelta(seconds=1))
        if latest is not None:
            return latest
    return None


def next_fires(slots: Iterable[Slot], now: datetime, limit: int) -> list[tuple[Slot, datetime]]:
    """The `limit` soonest (slot, next fire time) after `now`."""
    upcoming = [(slot, fire) for slot in slots if (fire := next_fire(slot.trigger(), now))]
    return heapq.nsmallest(limit, upcoming, key=lambda item: item[1])


def describe_days(spec: str) -> str:
    """A cron day_of_week (`days_spec`, or `*`) in words: "on weekdays", "every day"."""
    if spec == "mon-fri":
        return "on weekdays"
    if spec in ("mon-sun", "*"):
        return "every day"
    return "on " + spec.replace(",", ", ").title().replace("-", " to ")


def days_spec(days: set[int]) -> str:
    """Weekday numbers (0 = Monday) as cron day_of_week, runs of three or more as ranges."""
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(
        f"{CRON_DAYS[run[0]]}-{CRON_DAYS[run[-1]]}"
        if len(run) >= 3
        else ",".join(CRON_DAYS[d] for d in run)
        for run in runs
    )


def _hour_minute(value: str) -> tuple[int, int]:
    hour, minute = value.split(":")
    return int(hour), int(minute)


async def load_slots(store: Store, platform: str | None = None) -> list[Slot]:
    """Every enabled daily and weekly channel post and every digest that is not paused (on
    `platform`), in workspaces that have not removed the app."""
    channels = select(ChannelSubscription).where(
        ChannelSubscription.enabled.is_(True),
        installed(ChannelSubscription.platform, ChannelSubscription.workspace),
    )
    digests_query = select(DigestSetting).where(
        DigestSetting.disabled_reason.is_(None),
        installed(DigestSetting.platform, DigestSetting.workspace),
    )
    weekly_query = select(WeeklyPost).where(
        WeeklyPost.enabled.is_(True), installed(WeeklyPost.platform, WeeklyPost.workspace)
    )
    if platform is not None:
        channels = channels.where(ChannelSubscription.platform == platform)
        digests_query = digests_query.where(DigestSetting.platform == platform)
        weekly_query = weekly_query.where(WeeklyPost.platform == platform)
    async with store.transaction() as repos:
        subscriptions = (await repos.session.scalars(channels)).all()
        digests = (await repos.session.scalars(digests_query)).all()
        weekly = (await repos.session.scalars(weekly_query)).all()
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
    slots.extend(
        Slot(WEEKLY, w.platform, w.workspace, w.channel, days_spec({w.weekday}),
             *_hour_minute(w.post_time), w.timezone, w.updated_at)
        for w in weekly
    )  # fmt: skip
    return slots
