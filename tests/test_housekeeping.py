"""Housekeeping: the papers sent in digests, the papers weekly posts carried and the finished
deliveries are deleted once no rule reads them, and only then: a digest after pruning still
never repeats a paper, a weekly post's late retry still sends only the rest, and a period
that can still be claimed keeps its ledger row, so nothing is sent twice. On a real store
(SQLite and PostgreSQL), through the bot's own sends."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.delivery.scheduler import LEDGER_KEPT
from bot.digest import SENT_KEPT, WINDOW, forgotten_before, window_days
from bot.events import ChannelRef, MessageRef, UserRef, WorkspaceBack, WorkspaceGone
from bot.housekeeping import Pruned, keep_pruning, prune_history
from bot.messages import Message
from bot.ports import DeliveryError
from bot.weekly import ITEMS_KEPT
from storage.deliveries import CHANNEL, DIGEST, WEEKLY, DeliveryKey, Status
from storage.models import Delivery, DigestItem, Paper, WeeklyItem
from storage.papers import PaperData
from storage.store import Store
from tests.core_fixtures import NOW, SCOPE, Harness, RecordingPlatform
from tests.test_scheduler import configure
from tests.test_scheduler import scheduler as daily_scheduler
from tests.test_weekly import KEY as WEEKLY_KEY
from tests.test_weekly import scheduler as weekly_scheduler
from tests.test_weekly import set_up_week


async def prune(store: Store, now: datetime, *, batch: int = 2) -> Pruned:
    """A prune in batches of `batch` rows, so that even these few rows take several."""
    return await prune_history(store, now, batch=batch, pause=0)


async def rows(store: Store, model: type) -> int:
    async with store.reading() as repos:
        return int(await repos.session.scalar(select(func.count()).select_from(model)) or 0)


async def sent_in_digests(store: Store) -> set[str]:
    """arXiv ids of the papers `digest_items` remembers as sent (here, to alice)."""
    async with store.reading() as repos:
        found = await repos.session.scalars(
            select(Paper.arxiv_id).join(DigestItem, DigestItem.paper_id == Paper.id)
        )
        return set(found)


def dm_papers(platform: RecordingPlatform) -> list[str]:
    return [card.paper_id for _, message, _ in platform.dms for card in message.cards]


# Papers sent in digests -----------------------------------------------------------------------


def test_what_a_digest_looks_at_is_remembered_with_weeks_to_spare() -> None:
    for cadence in WINDOW:
        first, _ = window_days(NOW, cadence)
        assert forgotten_before(NOW, NOW.date()) <= first - timedelta(days=14), cadence
    # A store with no list that recent: its digests fall back on the newest list, kept whole.
    stale = date(2025, 1, 6)
    assert forgotten_before(NOW, stale) == stale


async def test_a_digest_after_pruning_never_repeats_a_paper_it_sent(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.say("follow diffusion")
    await harness.say("digest now")  # 4 May's 2605.00003 and 00004, 5 May's 00103
    first = dm_papers(harness.platform)
    assert sorted(first) == ["2605.00003", "2605.00004", "2605.00103"]

    # Two months on, no list came in since 5 May (Hugging Face down, say): a digest falls back
    # on the 5 May list, so its papers stay remembered; 4 May's can never come back.
    later = NOW + timedelta(days=60)
    harness.clock[0] = later
    assert (await prune(harness.store, later)).digest_items == 2
    assert await sent_in_digests(harness.store) == {"2605.00103"}
    await harness.say("digest now")
    assert dm_papers(harness.platform) == first  # nothing new: no second DM

    # A list of that day comes in: the 5 May list is no candidate any more either.
    async with harness.store.transaction() as repos:
        ids = await repos.papers.upsert(
            [PaperData("2607.00001", "Diffusion Policies for Robot Arms", upvotes=5)], later
        )
        await repos.papers.record_listing(later.date(), [(ids["2607.00001"], 5)])
    caplog.set_level(logging.INFO, logger="bot.housekeeping")
    caplog.clear()
    assert await prune(harness.store, later) == Pruned(digest_items=1)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "bot.housekeeping"]
    assert line.startswith("pruned old history: 1 paper sent in digests (kept 30 days), 0 papers")
    await harness.say("digest now")
    assert dm_papers(harness.platform) == [*first, "2607.00001"]
    assert await sent_in_digests(harness.store) == {"2607.00001"}


async def test_papers_sent_lately_stay_though_their_list_is_old(harness: Harness) -> None:
    """A paper is remembered for SENT_KEPT after it was sent, whatever its list's age."""
    await harness.say("follow diffusion")
    late = NOW + timedelta(days=60)  # the stale store's digest sends the 5 May list's papers
    harness.clock[0] = late
    await harness.say("digest now")
    assert dm_papers(harness.platform) == ["2605.00103"]
    async with harness.store.transaction() as repos:  # then a newer list comes in
        ids = await repos.papers.upsert([PaperData("2607.00001", "Robot arms")], late)
        await repos.papers.record_listing(late.date(), [(ids["2607.00001"], None)])
    assert await prune(harness.store, late + SENT_KEPT - timedelta(minutes=1)) == Pruned()
    assert await sent_in_digests(harness.store) == {"2605.00103"}
    assert await prune(harness.store, late + SENT_KEPT + timedelta(minutes=1)) == Pruned(1)
    assert await sent_in_digests(harness.store) == set()


# Papers weekly posts carried ------------------------------------------------------------------


@dataclass
class CardByCard(RecordingPlatform):
    """Like Discord: a list goes out as a message per card, and nothing says what went out
    before (no message metadata to read back). Post number `fail_at` fails, once, for now."""

    fail_at: int = 0

    def spread(self, message: Message) -> list[Message]:
        first, *rest = message.cards
        tail = replace(message, text="", lines=(), note=None)
        return [replace(message, cards=(first,))] + [replace(tail, cards=(c,)) for c in rest]

    async def sent_keys(
        self, target: ChannelRef | UserRef, since: datetime
    ) -> dict[str, MessageRef]:
        return {}

    async def post(self, channel: ChannelRef, message: Message) -> MessageRef:
        if len(self.posts) + 1 == self.fail_at:
            self.fail_at = 0
            raise DeliveryError("rate_limited", permanent=False)
        return await super().post(channel, message)


async def test_a_weekly_posts_papers_are_kept_two_weeks(harness: Harness) -> None:
    await set_up_week(harness)
    worker = weekly_scheduler(harness)
    await worker.resync(catch_up=True)
    worker.shutdown()
    sent = await rows(harness.store, WeeklyItem)
    assert sent == 7
    assert await prune(harness.store, NOW + ITEMS_KEPT - timedelta(minutes=1)) == Pruned()
    assert await prune(harness.store, NOW + ITEMS_KEPT + timedelta(minutes=1)) == Pruned(
        weekly_items=sent
    )


async def test_a_weekly_posts_retry_months_late_is_skipped_then_its_papers_go(
    harness: Harness,
) -> None:
    await set_up_week(harness)
    platform = harness.use(CardByCard(fail_at=2))
    worker = weekly_scheduler(harness)
    await worker.resync(catch_up=True)  # the first message goes, the second fails
    worker.shutdown()
    assert len(platform.posts) == 1 and await rows(harness.store, WeeklyItem) == 1
    # The workspace removes the app before the retry, and comes back months later.
    await harness.bot.workspace_gone(WorkspaceGone(SCOPE))
    later = NOW + LEDGER_KEPT + timedelta(days=10)
    harness.clock[0] = later
    # Its papers and its ledger row stay while its retry is still to come; the daily post
    # asked for the day before goes.
    assert await prune(harness.store, later) == Pruned(deliveries=1)
    assert await rows(harness.store, WeeklyItem) == 1
    await harness.bot.workspace_back(WorkspaceBack(SCOPE))
    # A worker that has not read the schedules yet: the post's day ended long ago anyway.
    returning = weekly_scheduler(harness)
    await returning.retry_due()
    assert len(platform.posts) == 1  # not sent months late
    async with harness.store.reading() as repos:
        row = await repos.deliveries.latest(WEEKLY, "test", "T1", "C1")
    assert row is not None and (row.period, row.status) == (WEEKLY_KEY.period, "skipped")
    # Finished now: the papers its first attempt sent go.
    assert await prune(harness.store, later) == Pruned(weekly_items=1)
    assert await rows(harness.store, WeeklyItem) == 0


# The deliveries ledger ------------------------------------------------------------------------


async def ledger(store: Store) -> list[tuple[str, str, bool, str]]:
    async with store.reading() as repos:
        found = await repos.deliveries.recent(limit=100)
    return sorted((d.kind, d.period[:10], d.manual, d.status) for d in found)


async def test_finished_deliveries_go_after_their_retention_and_each_targets_latest_stays(
    harness: Harness,
) -> None:
    monday = NOW - timedelta(days=1)
    await configure(harness, monday - timedelta(hours=5))  # the daily post and alice's digest
    harness.clock[0] = monday
    first = daily_scheduler(harness)
    await first.resync(catch_up=True)  # Monday's post and digest
    first.shutdown()
    harness.clock[0] = NOW
    second = daily_scheduler(harness)
    await second.resync(catch_up=True)  # Tuesday's
    second.shutdown()
    await harness.say("channel post-now", user="admin", admin=True)  # and one asked for
    everything = [
        (CHANNEL, "2026-05-04", False, "sent"), (CHANNEL, "2026-05-05", False, "sent"),
        (CHANNEL, NOW.date().isoformat(), True, "sent"),
        (DIGEST, "2026-05-04", False, "sent"), (DIGEST, "2026-05-05", False, "sent"),
    ]  # fmt: skip
    assert await ledger(harness.store) == sorted(everything)

    assert (await prune(harness.store, monday + LEDGER_KEPT)).deliveries == 0  # not older yet
    assert await ledger(harness.store) == sorted(everything)
    # Monday's rows and the manual one go; Tuesday's, each target's latest, stay for good.
    assert (await prune(harness.store, NOW + LEDGER_KEPT + timedelta(seconds=1))).deliveries == 3
    latest = [(CHANNEL, "2026-05-05", False, "sent"), (DIGEST, "2026-05-05", False, "sent")]
    years = NOW + timedelta(days=3 * 365)
    assert await prune(harness.store, years) == Pruned()
    assert await ledger(harness.store) == latest
    harness.clock[0] = years
    status = await harness.say("channel status")
    assert "Last scheduled post (2026-05-05): sent, 3 papers." in status.lines
    # And the ledger still refuses Tuesday's slot to a worker that would claim it.
    async with harness.store.transaction() as repos:
        claimed = await repos.deliveries.claim_many(
            [DeliveryKey(CHANNEL, "test", "T1", "C1", "2026-05-05")], "w2", years,
            lease=timedelta(minutes=5), max_attempts=5,
        )  # fmt: skip
    assert claimed == {}


async def test_a_slot_still_claimable_keeps_its_row_so_a_restart_sends_nothing_twice(
    harness: Harness,
) -> None:
    await configure(harness, NOW - timedelta(hours=5))
    async with harness.store.transaction() as repos:  # an old slot, missed long ago
        old = DeliveryKey(CHANNEL, "test", "T1", "C1", "2026-01-05")
        assert await repos.deliveries.skip(old, NOW - LEDGER_KEPT - timedelta(days=30), "missed")
    first = daily_scheduler(harness)
    await first.resync(catch_up=True)  # today's post and digest, once
    first.shutdown()
    assert (len(harness.platform.posts), len(harness.platform.dms)) == (4, 1)
    evening = NOW + timedelta(hours=11)  # still 5 May where the slots are (UTC)
    assert await prune(harness.store, evening, batch=1) == Pruned(deliveries=1)
    harness.clock[0] = evening
    again = daily_scheduler(harness)  # a restart that evening: both slots are today's
    await again.resync(catch_up=True)
    await again.retry_due()
    again.shutdown()
    assert (len(harness.platform.posts), len(harness.platform.dms)) == (4, 1)
    async with harness.store.reading() as repos:
        kept = [(d.kind, d.period, d.status, d.attempts) for d in await repos.deliveries.recent()]
    assert sorted(kept) == [(CHANNEL, "2026-05-05", "sent", 1), (DIGEST, "2026-05-05", "sent", 1)]


async def test_rows_still_to_be_retried_are_never_pruned(harness: Harness) -> None:
    states = {"2026-01-05": Status.RETRY, "2026-01-06": Status.WAITING,
              "2026-01-07": Status.CLAIMED, "2026-01-08": Status.FAILED}  # fmt: skip
    async with harness.store.transaction() as repos:
        for period, status in states.items():
            repos.session.add(
                Delivery(kind=CHANNEL, platform="test", workspace="T1", target="C1",
                         period=period, status=status, attempts=1, retry_at=NOW,
                         lease_until=NOW, created_at=NOW, updated_at=NOW)
            )  # fmt: skip
    far = NOW + 10 * LEDGER_KEPT
    assert await prune(harness.store, far) == Pruned(deliveries=0)  # 8 Jan's is the latest
    async with harness.store.transaction() as repos:  # a later period finished
        assert await repos.deliveries.skip(
            DeliveryKey(CHANNEL, "test", "T1", "C1", "2026-01-09"), NOW, "missed"
        )
    assert await prune(harness.store, far) == Pruned(deliveries=1)
    assert [status for *_, status in await ledger(harness.store)] == [
        "retry", "waiting", "claimed", "skipped"
    ]  # fmt: skip


# The worker's job -----------------------------------------------------------------------------


async def test_the_worker_job_prunes_on_its_own_clock(harness: Harness) -> None:
    await harness.say("follow diffusion")
    await harness.say("digest now")
    clock = [NOW + timedelta(days=1)]
    job = asyncio.create_task(keep_pruning(harness.store, lambda: clock[0], every=0.01))
    try:
        await asyncio.sleep(0.1)
        assert await rows(harness.store, DigestItem) == 3  # a day after: kept
        clock[0] = NOW + SENT_KEPT + timedelta(days=1)
        for _ in range(200):
            if await rows(harness.store, DigestItem) == 1:
                break
            await asyncio.sleep(0.02)
        assert await sent_in_digests(harness.store) == {"2605.00103"}  # on the newest list
    finally:
        job.cancel()
