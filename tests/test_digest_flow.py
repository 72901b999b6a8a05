"""The DM digest as its reader lives it, through commands and the scheduler on a real store:
what arrives, when, and what never does."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bot.delivery.runner import DeliveryPolicy
from bot.delivery.scheduler import DeliveryScheduler
from bot.events import MessageRef, UserRef
from bot.messages import Message
from bot.ports import DeliveryError
from storage.deliveries import DeliveryKey, Status
from storage.papers import PaperData
from tests.core_fixtures import NOW, SCOPE, Harness, RecordingPlatform

POLICY = DeliveryPolicy(lease=timedelta(minutes=5), max_attempts=3)
TODAY = DeliveryKey("digest", "test", "T1", "alice", "2026-05-05")
# On the 4 and 5 May lists, "diffusion" matches these three.
ON_DIFFUSION = {"2605.00003", "2605.00004", "2605.00103"}


def scheduler(harness: Harness) -> DeliveryScheduler:
    return harness.bot.scheduler(worker="w1", policy=POLICY, clock=lambda: harness.clock[0])


def digest_papers(platform: RecordingPlatform) -> list[list[str]]:
    """The papers of each digest DM sent so far."""
    return [[card.paper_id for card in message.cards] for _, message, _ in platform.dms]


async def save(harness: Harness, arxiv_id: str, at: datetime, user: str = "alice") -> None:
    async with harness.store.transaction() as repos:
        paper = await repos.papers.by_arxiv_id(arxiv_id)
        if paper is None:  # a paper of no recent list, saved by link
            await repos.papers.upsert([PaperData(arxiv_id, f"Unlisted paper {arxiv_id}")], at)
            paper = await repos.papers.by_arxiv_id(arxiv_id)
        assert paper is not None
        await repos.users.save(SCOPE.platform, SCOPE.workspace, user, paper.id, at)


class DMsFailOnce(RecordingPlatform):
    """Refuses the first DM with a transient error (a rate limit)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def send_dm(self, user: UserRef, message: Message) -> MessageRef:
        if self.failures:
            self.failures -= 1
            raise DeliveryError("rate_limited", permanent=False)
        return await super().send_dm(user, message)


class ClosedDMs(RecordingPlatform):
    """A member who closed their DMs to the bot (or opened them again: `closed`)."""

    closed = True

    async def send_dm(self, user: UserRef, message: Message) -> MessageRef:
        if self.closed:
            raise DeliveryError("cannot_dm_user", permanent=True)
        return await super().send_dm(user, message)


async def test_a_paper_saved_long_ago_is_never_offered_back(harness: Harness) -> None:
    """Only the latest saves say what a reader likes, but every save is theirs already."""
    await harness.say("follow diffusion")
    await save(harness, "2605.00003", NOW - timedelta(days=30))  # on diffusion, saved first
    for n in range(10):  # ten later saves of papers on no recent list
        await save(harness, f"2604.{n:05d}", NOW - timedelta(days=20 - n))
    answer = await harness.say("digest now")
    assert "Sent you a digest of 2" in answer.text
    assert set(digest_papers(harness.platform)[0]) == ON_DIFFUSION - {"2605.00003"}


async def test_a_digest_turned_off_is_not_sent_by_a_retry(harness: Harness) -> None:
    await harness.say("follow diffusion")
    await harness.say("digest daily 10:30 UTC")
    platform = harness.use(DMsFailOnce())
    worker = scheduler(harness)
    assert await worker.runner.run(TODAY) is Status.RETRY
    assert (await harness.say("digest off")).text == "Your digest is off."
    harness.clock[0] = NOW + POLICY.first_retry
    await worker.retry_due()
    assert platform.dms == []
    async with harness.store.reading() as repos:  # no retry left waiting
        assert await repos.deliveries.latest("digest", "test", "T1", "alice") is None


async def test_a_digest_turned_off_elsewhere_is_not_sent_at_its_old_time(
    harness: Harness,
) -> None:
    """Another process answered `digest off`: this worker's jobs learn of it within a
    minute, and a slot firing meanwhile sends nothing."""
    await harness.say("follow diffusion")
    harness.clock[0] = NOW - timedelta(hours=5)
    await harness.say("digest daily 12:00 UTC")
    worker = scheduler(harness)
    await worker.resync()
    assert "digest:test:T1:alice" in {slot.job_id for slot in worker.slots}
    await harness.say("digest off")  # not this worker's process: its jobs stay a while
    harness.clock[0] = NOW
    (slot,) = [slot for slot in worker.slots if slot.kind == "digest"]
    await worker.deliver(slot, slot.key(NOW))
    assert harness.platform.dms == []


async def test_digest_now_after_opening_dms_resumes_a_paused_digest(harness: Harness) -> None:
    """The pause tells the reader to allow DMs and run `digest now`: doing so turns the
    digest back on even when nothing is new to send."""
    await harness.say("follow diffusion")
    await harness.say("digest daily 10:30 UTC")
    platform = harness.use(ClosedDMs())
    assert "can't send you direct messages" in (await harness.say("digest now")).text
    assert "paused" in (await harness.say("digest")).text
    platform.closed = False
    assert "Sent you a digest of 3" in (await harness.say("digest now")).text
    assert "comes daily at 10:30 UTC" in (await harness.say("digest")).text
    # Closed again, and paused; opened, with nothing new by now.
    platform.closed = True
    harness.clock[0] += timedelta(days=1)
    async with harness.store.transaction() as repos:
        ids = await repos.papers.upsert([PaperData("2605.00201", "Diffusion", upvotes=1)], NOW)
        await repos.papers.record_listing(date(2026, 5, 6), [(ids["2605.00201"], 1)])
    assert "can't send you direct messages" in (await harness.say("digest now")).text
    platform.closed = False
    async with harness.store.transaction() as repos:  # the paper went out some other way
        await repos.users.record_sent("test", "T1", "alice", [ids["2605.00201"]], NOW)
    answer = await harness.say("digest now")
    assert answer.text.startswith("Nothing new")
    status = (await harness.say("digest")).text
    assert "paused" not in status and "comes daily at 10:30 UTC" in status


async def test_digest_now_then_the_scheduled_digest_sends_nothing_twice(
    harness: Harness,
) -> None:
    await harness.say("follow diffusion")
    harness.clock[0] = NOW - timedelta(hours=5)
    await harness.say("digest daily 12:00 UTC")
    assert "Sent you a digest of 3" in (await harness.say("digest now")).text
    harness.clock[0] = NOW
    worker = scheduler(harness)
    assert await worker.runner.run(TODAY) is Status.EMPTY  # nothing new: no DM
    assert len(harness.platform.dms) == 1
    # A new paper later that day: the next day's digest carries it alone.
    async with harness.store.transaction() as repos:
        ids = await repos.papers.upsert([PaperData("2605.00201", "Diffusion", upvotes=1)], NOW)
        await repos.papers.record_listing(date(2026, 5, 5), [(ids["2605.00201"], 1)])
    harness.clock[0] = NOW + timedelta(days=1)
    tomorrow = DeliveryKey("digest", "test", "T1", "alice", "2026-05-06")
    assert await worker.runner.run(tomorrow) is Status.SENT
    assert digest_papers(harness.platform)[1] == ["2605.00201"]


async def test_switching_from_daily_to_weekly_repeats_no_paper(harness: Harness) -> None:
    await harness.say("follow diffusion")
    await harness.say("digest daily 10:30 Asia/Tokyo")
    assert "Sent you a digest of 3" in (await harness.say("digest now")).text
    await harness.say("digest weekly wed 08:00")
    harness.clock[0] = datetime(2026, 5, 5, 23, 0, tzinfo=UTC)  # Wednesday 08:00 in Tokyo
    worker = scheduler(harness)
    await worker.resync()
    (slot,) = [slot for slot in worker.slots if slot.kind == "digest"]
    assert slot.key(harness.clock[0]).period == "2026-05-06"
    assert await worker.deliver(slot, slot.key(harness.clock[0])) is Status.EMPTY
    assert len(harness.platform.dms) == 1


async def test_no_topics_and_no_saves_means_no_dm(harness: Harness) -> None:
    await harness.say("follow diffusion")
    await harness.say("digest daily 10:30 UTC")
    await harness.say("unfollow diffusion")
    worker = scheduler(harness)
    assert await worker.runner.run(TODAY) is Status.EMPTY
    assert harness.platform.dms == []


async def test_a_paper_on_two_followed_topics_comes_once(harness: Harness) -> None:
    await harness.say("follow diffusion")
    await harness.say("follow memorization")  # 2605.00003 is on both
    assert "Sent you a digest of 3" in (await harness.say("digest now")).text
    (papers,) = digest_papers(harness.platform)
    assert sorted(papers) == sorted(ON_DIFFUSION)
    assert "on diffusion, memorization" in harness.platform.dms[0][1].text


async def test_forgetting_me_leaves_the_days_digest_nothing_to_send_nor_record(
    harness: Harness,
) -> None:
    await harness.say("follow diffusion")
    await save(harness, "2605.00001", NOW)
    harness.clock[0] = NOW - timedelta(hours=5)
    await harness.say("digest daily 12:00 UTC")
    worker = scheduler(harness)
    await worker.resync()
    await harness.say("forget me confirm")
    harness.clock[0] = NOW
    (slot,) = [slot for slot in worker.slots if slot.kind == "digest"]
    await worker.deliver(slot, slot.key(NOW))
    assert harness.platform.dms == []
    async with harness.store.reading() as repos:  # nothing about her came back
        assert await repos.deliveries.latest("digest", "test", "T1", "alice") is None
