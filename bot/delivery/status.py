"""What scheduled delivery did and will do, as people read it: `paperboy status` for an
operator (the next slots, the recent deliveries, how fresh the store is, the weekly posts and
how each last went), and one line on a channel's post or a user's digest for
`/papers channel status` and `/papers digest`.

Read from the database only, so it works beside running workers, and it shows no secret (the
database password is masked)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bot.delivery.slots import WEEKDAYS, Slot, describe_days, load_slots, next_fires
from bot.messages import counted
from storage.deliveries import WEEKLY
from storage.models import Delivery, Lease, WeeklyPost
from storage.store import Store

STATUS_ORDER = ("sent", "empty", "claimed", "waiting", "retry", "failed", "skipped")


@dataclass(frozen=True)
class Freshness:
    papers: int
    latest_day: date | None  # the newest real Daily Papers list stored
    latest_count: int
    last_fetched: datetime | None  # when Hugging Face was last read into the store


@dataclass(frozen=True)
class StatusReport:
    now: datetime
    database: str
    freshness: Freshness
    slot_count: int
    upcoming: list[tuple[Slot, datetime]]
    last_day: dict[str, int]  # deliveries of the last 24 hours by outcome
    recent: Sequence[Delivery]
    leases: Sequence[Lease]
    workers: dict[str, list[str]]  # platform -> its live delivering workers
    weekly: Sequence[tuple[WeeklyPost, Delivery | None]]  # with its latest delivery
    reactions: tuple[int, datetime | None, int]  # waiting: how many, the oldest, most tries


async def collect_status(
    store: Store, now: datetime, *, upcoming: int = 10, recent: int = 15
) -> StatusReport:
    slots = await load_slots(store)
    async with store.transaction() as repos:
        latest = await repos.papers.latest_listing_day(demo=False)
        freshness = Freshness(
            papers=await repos.papers.count(),
            latest_day=latest,
            latest_count=len(await repos.papers.listing(latest)) if latest else 0,
            last_fetched=await repos.papers.last_fetched(),
        )
        last_day = await repos.deliveries.counts(now - timedelta(days=1))
        deliveries = await repos.deliveries.recent(recent)
        leases = await repos.leases.held(now)
        workers = await repos.workers.live_by_platform(now)
        reactions = await repos.inbox.waiting()
        weekly = [
            (post, await repos.deliveries.latest(
                WEEKLY, post.platform, post.workspace, post.channel
            ))
            for post in await repos.weekly.listed(enabled_only=False, limit=recent)
        ]  # fmt: skip
    return StatusReport(
        now=now,
        database=store.engine.url.render_as_string(hide_password=True),
        freshness=freshness,
        slot_count=len(slots),
        upcoming=next_fires(slots, now, upcoming),
        last_day=last_day,
        recent=deliveries,
        leases=leases,
        workers=workers,
        weekly=weekly,
        reactions=reactions,
    )


def render_status(report: StatusReport) -> str:
    lines = [f"paperboy status at {_utc(report.now)}", f"Database: {report.database}"]
    lines.append(_freshness(report.freshness, report.now))
    lines.extend(
        f"Lease {lease.name}: held by {lease.holder} until {_utc(lease.expires_at, seconds=True)}"
        for lease in report.leases
    )
    lines.extend(
        f"Workers delivering to {platform}: {len(names)} live ({', '.join(names)})"
        for platform, names in report.workers.items()
    )
    lines.append(_reactions_line(*report.reactions))
    lines.append("")
    lines.append(f"Next slots ({len(report.upcoming)} of {report.slot_count}):")
    lines.extend(
        f"  {_utc(fire)}  {slot.kind:<7} {slot.platform:<7} {slot.workspace}/{slot.target}  "
        f"{slot.hour:02d}:{slot.minute:02d} {slot.timezone} {describe_days(slot.day_of_week)}"
        for slot, fire in report.upcoming
    )
    if not report.upcoming:
        lines.append("  none: no channel post or digest is set up")
    lines.append("")
    outcomes = ", ".join(
        f"{report.last_day[status]} {status}"
        for status in STATUS_ORDER
        if status in report.last_day
    )
    lines.append(f"Last 24 hours: {outcomes or 'no deliveries'}")
    lines.append(f"Recent deliveries ({len(report.recent)}):")
    lines.extend(_delivery_line(d) for d in report.recent)
    if not report.recent:
        lines.append("  none yet")
    lines.append("")
    lines.extend(_weekly_lines(report.weekly))
    return "\n".join(lines)


def _reactions_line(count: int, oldest: datetime | None, tries: int) -> str:
    """Save reactions taken in and not yet acted on (`bot.inbox`): a few for a moment is
    normal; many, or old ones, say the database or the platform keeps failing."""
    if not count or oldest is None:
        return "Reactions waiting: none"
    return (
        f"Reactions waiting: {count}, the oldest taken in at {_utc(oldest, seconds=True)}, "
        f"{counted(tries, 'failed attempt')} at most"
    )


def _delivery_line(d: Delivery) -> str:
    """A scheduled delivery shows its period and attempt; a manual one says it was manual
    (its period is the moment it was sent, as the time in front says)."""
    when = (
        f"{'manual':<10}  {d.status:<7}"
        if d.manual
        else f"{d.period}  {d.status:<7} attempt {d.attempts}"
    )
    return (
        f"  {_utc(d.updated_at)}  {d.kind:<7} {d.platform:<7} {d.workspace}/{d.target}  "
        f"{when}  {d.detail or ''}"
    ).rstrip()


def _weekly_lines(weekly: Sequence[tuple[WeeklyPost, Delivery | None]]) -> list[str]:
    lines = [f"Weekly posts ({len(weekly)}):"]
    for post, last in weekly:
        state = "on" if post.enabled else "off"
        if post.disabled_reason:
            state += f" (stopped: {post.disabled_reason})"
        outcome = last_delivery_line(last, "last") or "not run yet"
        lines.append(
            f"  {post.platform:<7} {post.workspace}/{post.channel}  {describe_weekly(post)}  "
            f"{state}  {outcome}"
        )
    if not weekly:
        lines.append("  none: no channel has a weekly post")
    return lines


def _freshness(fresh: Freshness, now: datetime) -> str:
    if fresh.latest_day is None:
        return f"Papers: {fresh.papers:,} stored; no Daily Papers list fetched yet (demo sample)"
    fetched = (
        f"last fetched {_utc(fresh.last_fetched)} ({_ago(now - fresh.last_fetched)} ago)"
        if fresh.last_fetched
        else "never fetched"
    )
    return (
        f"Papers: {fresh.papers:,} stored; latest Daily Papers list {fresh.latest_day} "
        f"({fresh.latest_count} papers); {fetched}"
    )


def _utc(moment: datetime, *, seconds: bool = False) -> str:
    return moment.astimezone(UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC"
    )


def _ago(elapsed: timedelta) -> str:
    minutes = max(int(elapsed.total_seconds() // 60), 0)
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} days"


def describe_weekly(post: WeeklyPost) -> str:
    """A weekly post's schedule in words, e.g. "Fridays at 16:00 Europe/Berlin"."""
    return f"{WEEKDAYS[post.weekday].capitalize()}s at {post.post_time} {post.timezone}"


def last_delivery_line(delivery: Delivery | None, what: str) -> str | None:
    """One line on `delivery` (the latest period's), e.g. "Last post (2026-11-23): sent, 3
    papers."; None when nothing was scheduled yet."""
    if delivery is None:
        return None
    detail = delivery.detail or ""
    outcome = {
        "sent": "a notice that the day's list was missing"
        if detail == "list missing"
        else f"sent, {detail}",
        "empty": "nothing new to send",
        "claimed": "being sent now",
        "waiting": "waiting for the day's Daily Papers list",
        "retry": f"failed for now ({detail}), will retry"
        + (f" at {delivery.retry_at:%H:%M} UTC" if delivery.retry_at else ""),
        "failed": f"failed ({detail})",
        "skipped": f"skipped ({detail})",
    }.get(delivery.status, delivery.status)
    return f"{what} ({delivery.period}): {outcome}."
