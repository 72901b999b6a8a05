"""React to save, daily post composition and DM digest composition, on a real store."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot.app import Paperboy
from bot.config import BotConfig
from bot.daily import (
    ChannelPlan,
    DailyRequest,
    ListMissing,
    compose_daily_posts,
)
from bot.digest import compose_digest
from bot.events import ChannelRef, GoneWhy, MessageRef, ReactionChanged, Scope, UserRef
from bot.messages import DailyPost, Message
from bot.ports import DeliveryError
from bot.sources.huggingface import HuggingFaceClient
from bot.sources.ingest import ingest_day
from storage.channels import PostRecord
from storage.models import Post
from storage.store import Repositories
from tests.core_fixtures import CHANNEL, NOW, SCOPE, Harness, RecordingPlatform, react
from tests.fakes.huggingface import load_fixture

ALICE = UserRef(SCOPE, "alice")


async def compose_daily_post(
    repos: Repositories,
    channel: ChannelRef,
    plan: ChannelPlan,
    now: datetime,
    *,
    day: date | None = None,
    posted_before: datetime | None = None,
) -> DailyPost | None:
    """One channel's post, as `compose_daily_posts` composes it; raises its ListMissing."""
    request = DailyRequest(channel, plan, day, posted_before)
    (composed,) = await compose_daily_posts(repos, [request], "bookmark", now)
    if isinstance(composed, ListMissing):
        raise composed
    return composed


async def saved_ids(harness: Harness, user: str = "alice") -> list[str]:
    return [card.paper_id for card in (await harness.say("saved", user=user)).cards]


async def test_save_reaction_saves_and_removal_unsaves(harness: Harness) -> None:
    await harness.bot.daily.post(CHANNEL)
    paper_id, ref = harness.paper_posts()[1]
    confirmation = await harness.react(ref)
    assert confirmation is not None and confirmation.text.startswith("Saved:")
    assert await saved_ids(harness) == [paper_id]
    again = await harness.react(ref)  # a second delivery of the same reaction
    assert again is not None and again.text.startswith("Already saved")
    assert await saved_ids(harness) == [paper_id]
    removed = await harness.react(ref, added=False)
    assert removed is not None and removed.text.startswith("Removed")
    assert await saved_ids(harness) == []


async def test_a_title_in_a_confirmation_cannot_open_a_code_span(harness: Harness) -> None:
    await harness.bot.daily.post(CHANNEL)
    paper_id, ref = harness.paper_posts()[0]
    async with harness.store.transaction() as repos:
        paper = await repos.papers.by_arxiv_id(paper_id)
        assert paper is not None
        paper.title = "Use `rm -rf` and ``` fences"
    confirmation = await harness.react(ref)
    assert confirmation is not None
    assert "`" not in confirmation.text and "rm -rf" in confirmation.text


async def test_save_emoji_by_character_counts_too(harness: Harness) -> None:
    await harness.bot.daily.post(CHANNEL)
    paper_id, ref = harness.paper_posts()[0]
    assert await harness.react(ref, "🔖") is not None
    assert await saved_ids(harness) == [paper_id]


async def test_save_emojis_are_named_neutrally_and_match_by_name_or_character(
    harness: Harness,
) -> None:
    platform = RecordingPlatform()
    config = BotConfig(save_emojis=("partyparrot", "star"))  # a custom one, a known one
    bot = Paperboy(harness.store, platform, config=config, clock=lambda: NOW)
    await bot.daily.post(CHANNEL)
    header, *papers = [(message, ref) for _, message, ref in platform.posts]
    assert "React with the partyparrot emoji to save one" in header[0].lines[0]
    assert {message.reaction for message, _ in papers} == {"partyparrot"}  # by name
    saves = [("partyparrot", papers[0][1]), ("⭐", papers[1][1]), ("star", papers[2][1])]
    for emoji, ref in saves:
        assert await react(bot, platform, ReactionChanged(ref, "alice", emoji, True)) is not None
    assert await react(bot, platform, ReactionChanged(papers[3][1], "alice", "🔖", True)) is None
    assert len(await saved_ids(harness)) == 3


async def test_other_emojis_and_other_messages_are_ignored(harness: Harness) -> None:
    await harness.bot.daily.post(CHANNEL)
    _, ref = harness.paper_posts()[0]
    header_ref = harness.platform.posts[0][2]
    assert await harness.react(ref, "thumbsup") is None
    assert await harness.react(header_ref) is None  # the header names no paper
    assert await harness.react(MessageRef(CHANNEL, "not-ours")) is None
    elsewhere = MessageRef(ChannelRef(Scope("test", "T2"), CHANNEL.channel), ref.message_id)
    assert await harness.react(elsewhere) is None  # same id in another workspace
    assert await saved_ids(harness) == []


async def test_reactions_save_per_user(harness: Harness) -> None:
    await harness.bot.daily.post(CHANNEL)
    first, second = harness.paper_posts()[:2]
    await harness.react(first[1], user="alice")
    await harness.react(second[1], user="bob")
    assert await saved_ids(harness, "alice") == [first[0]]
    assert await saved_ids(harness, "bob") == [second[0]]


async def test_daily_post_is_header_then_one_message_per_paper(harness: Harness) -> None:
    async with harness.store.transaction() as repos:
        post = await compose_daily_post(repos, CHANNEL, ChannelPlan(count=2), NOW)
    assert post is not None
    assert "Tuesday 05 May 2026" in post.header.text
    assert post.header.cards == ()
    assert [len(message.cards) for _, message in post.papers] == [1, 1]
    assert [message.cards[0].paper_id for _, message in post.papers] == ["2605.00101", "2605.00102"]


async def test_daily_post_skips_papers_already_posted_and_ends_with_nothing(
    harness: Harness,
) -> None:
    assert (await harness.bot.daily.post(CHANNEL)).papers == 4
    assert (await harness.bot.daily.post(CHANNEL)).papers == 0
    other = ChannelRef(SCOPE, "C2")
    assert (await harness.bot.daily.post(other)).papers == 4  # another channel saw none
    async with harness.store.transaction() as repos:
        assert await compose_daily_post(repos, CHANNEL, ChannelPlan(count=5), NOW) is None


async def test_daily_post_filters_by_channel_topics(harness: Harness) -> None:
    async with harness.store.transaction() as repos:
        post = await compose_daily_post(
            repos, CHANNEL, ChannelPlan(count=5, topics=("diffusion", "agents")), NOW
        )
    assert post is not None
    assert [message.cards[0].paper_id for _, message in post.papers] == [
        "2605.00103", "2605.00104",
    ]  # fmt: skip
    assert "diffusion, agents" in post.header.text


async def test_daily_post_uses_the_newest_list(harness: Harness) -> None:
    client = HuggingFaceClient(harness.hf.base_url, max_retries=0)
    harness.hf.days["2026-05-06"] = load_fixture("2026-05-04.json")
    await ingest_day(harness.store, client, date(2026, 5, 6), NOW)
    await client.aclose()
    async with harness.store.transaction() as repos:
        post = await compose_daily_post(
            repos, CHANNEL, ChannelPlan(count=1), NOW + timedelta(days=1)
        )
        as_of_today = await compose_daily_post(repos, CHANNEL, ChannelPlan(count=1), NOW)
    assert post is not None and "06 May 2026" in post.header.text
    assert post.papers[0][1].cards[0].paper_id == "2605.00001"
    # Composed for a moment before the 6th, the post is built from the 5th's list.
    assert as_of_today is not None and "05 May 2026" in as_of_today.header.text


async def test_posts_composed_together_are_the_posts_composed_one_at_a_time(
    harness: Harness,
) -> None:
    """The scheduler composes a morning's posts in one go: for channels with and without
    topics, counts, papers already posted, a retry, another list and a missing one, each
    answer is what composing that channel alone gives."""
    await harness.bot.daily.post(CHANNEL)  # C1 has had the 5th's first four papers
    first_attempt = NOW + timedelta(minutes=1)
    await harness.bot.daily.post(ChannelRef(SCOPE, "C4"))  # posted before and after its retry
    requests = [
        DailyRequest(CHANNEL, ChannelPlan(count=5)),
        DailyRequest(ChannelRef(SCOPE, "C2"), ChannelPlan(count=2)),
        DailyRequest(ChannelRef(SCOPE, "C3"), ChannelPlan(5, ("diffusion", "agents"))),
        DailyRequest(ChannelRef(SCOPE, "C4"), ChannelPlan(count=3), posted_before=NOW),
        DailyRequest(ChannelRef(SCOPE, "C4"), ChannelPlan(3), posted_before=first_attempt),
        DailyRequest(ChannelRef(Scope("test", "T2"), "C1"), ChannelPlan(3), date(2026, 5, 4)),
        DailyRequest(ChannelRef(SCOPE, "C5"), ChannelPlan(count=3), date(2026, 5, 6)),
    ]
    async with harness.store.transaction() as repos:
        together = await compose_daily_posts(repos, requests, "bookmark", NOW)
        alone: list[object] = []
        for r in requests:
            try:
                post = await compose_daily_post(
                    repos, r.channel, r.plan, NOW, day=r.day, posted_before=r.posted_before
                )
            except ListMissing as missing:
                post = missing
            alone.append(post)
    assert [type(answer) for answer in together] == [
        type(None), DailyPost, DailyPost, DailyPost, type(None), DailyPost, ListMissing,
    ]  # fmt: skip
    assert together[:-1] == alone[:-1]
    assert isinstance(alone[-1], ListMissing) and together[-1].day == alone[-1].day  # type: ignore[union-attr]


async def test_digest_holds_new_matching_papers_only(harness: Harness) -> None:
    async with harness.store.transaction() as repos:
        assert await compose_digest(repos, ALICE, "daily", NOW) is None  # follows nothing
    await harness.say("follow speculative decoding")
    await harness.say("follow kv cache")
    async with harness.store.transaction() as repos:
        digest = await compose_digest(repos, ALICE, "daily", NOW)
    assert digest is not None
    ids = [card.paper_id for card in digest.message.cards]
    assert ids == ["2605.00001", "2605.00101", "2605.00005"]  # by upvotes
    assert "speculative decoding" in digest.message.text and "kv cache" in digest.message.text


async def test_digest_never_repeats_and_sends_nothing_when_nothing_is_new(
    harness: Harness,
) -> None:
    await harness.say("follow diffusion")
    assert (await harness.bot.digests.send(ALICE)).papers == 3
    assert (await harness.bot.digests.send(ALICE)).papers == 0
    assert len(harness.platform.dms) == 1
    # A new day lists one more diffusion paper (and repeats an old one): only it is new.
    client = HuggingFaceClient(harness.hf.base_url, max_retries=0)
    harness.hf.days["2026-05-06"] = load_fixture("legacy-2024-05-27.json") + load_fixture(
        "2026-05-05.json"
    )
    await ingest_day(harness.store, client, date(2026, 5, 6), NOW)
    await client.aclose()
    harness.clock[0] = NOW + timedelta(days=1)
    assert (await harness.bot.digests.send(ALICE)).papers == 1
    assert [card.paper_id for card in harness.platform.dms[-1][1].cards] == ["2405.90002"]


async def test_digest_window_depends_on_cadence(harness: Harness) -> None:
    await harness.say("follow diffusion")
    later = NOW + timedelta(days=6)
    async with harness.store.transaction() as repos:
        assert await compose_digest(repos, ALICE, "weekly", later) is not None
        daily = await compose_digest(repos, ALICE, "daily", later)
    # Nothing listed in the last three days: the daily digest falls back to the newest list.
    assert daily is not None
    assert {card.paper_id for card in daily.message.cards} == {"2605.00103"}


class LostChannelPlatform(RecordingPlatform):
    """A platform on which channel C1 no longer exists."""

    async def post(self, channel: ChannelRef, message: Message) -> MessageRef:
        if channel.channel == "C1":
            raise DeliveryError("channel_not_found", permanent=True, gone=GoneWhy.DELETED)
        return await super().post(channel, message)


async def test_a_permanent_delivery_error_stops_the_channel_and_tells_its_admin(
    harness: Harness,
) -> None:
    await harness.say("channel on 09:00 UTC 3", user="admin", admin=True)
    platform = LostChannelPlatform()
    harness.use(platform)
    answer = await harness.say("channel post-now", user="admin", admin=True)
    assert answer.text == "This channel was deleted: its daily post is now off."
    status = await harness.say("channel status")
    assert "No daily post" in status.text and "the channel was deleted" in status.text
    assert [user.user for user, _, _ in platform.dms] == ["admin"]
    notice = platform.dms[0][1]
    assert notice.text == "{channel} was deleted, so I stopped its daily post."
    assert notice.channel == "C1" and "channel_not_found" not in str(notice)
    with pytest.raises(DeliveryError):
        await harness.bot.daily.post(CHANNEL)  # the scheduler sees it too, and nothing loops
    assert len(platform.dms) == 1  # the admin was told once
    await harness.say("channel on", user="admin", admin=True)
    assert "stopped" not in (await harness.say("channel status")).text


class ClosedDmsPlatform(RecordingPlatform):
    """A platform on which bob does not accept direct messages."""

    async def send_dm(self, user: UserRef, message: Message) -> MessageRef:
        if user.user == "bob":
            raise DeliveryError("dms_closed", permanent=True)
        return await super().send_dm(user, message)


async def test_closed_dms_pause_the_digest_until_it_is_set_again(harness: Harness) -> None:
    await harness.say("follow agents", user="bob")
    await harness.say("digest daily 08:00 UTC", user="bob")
    harness.use(ClosedDmsPlatform())
    answer = await harness.say("digest now", user="bob")
    assert "can't send you direct messages (dms_closed)" in answer.text
    status = await harness.say("digest", user="bob")
    assert "paused" in status.text and "dms_closed" in status.text
    async with harness.store.transaction() as repos:
        setting = await repos.users.digest_setting("test", "T1", "bob")
        assert setting is not None and setting.disabled_reason == "dms_closed"
        assert not await repos.users.already_sent_many("test", "T1", ["bob"], [1, 2, 3, 4, 5])
    platform = RecordingPlatform()
    harness.use(platform)
    assert (await harness.bot.digests.send(UserRef(SCOPE, "bob"), scheduled=True)).papers == 0
    assert platform.dms == []  # a scheduled run skips the paused digest
    assert (await harness.bot.digests.send(UserRef(SCOPE, "bob"))).papers  # asking lifts it
    assert "comes daily at 08:00 UTC" in (await harness.say("digest", user="bob")).text
    harness.use(ClosedDmsPlatform())
    await harness.say("digest now", user="bob")
    await harness.say("digest daily 09:00 UTC", user="bob")  # setting it again lifts it too
    assert "comes daily at 09:00 UTC" in (await harness.say("digest", user="bob")).text


async def test_a_transient_dm_failure_does_not_pause_the_digest(harness: Harness) -> None:
    class FlakyPlatform(RecordingPlatform):
        async def send_dm(self, user: UserRef, message: Message) -> MessageRef:
            raise DeliveryError("rate_limited", permanent=False)

    await harness.say("follow agents", user="bob")
    await harness.say("digest daily 08:00 UTC", user="bob")
    harness.use(FlakyPlatform())
    assert "try again in a minute" in (await harness.say("digest now", user="bob")).text
    assert "comes daily at 08:00 UTC" in (await harness.say("digest", user="bob")).text


async def test_concurrent_posts_are_recorded_together_and_a_bad_row_fails_alone(
    harness: Harness,
) -> None:
    async with harness.store.transaction() as repos:
        paper = await repos.papers.by_arxiv_id("2605.00001")
    assert paper is not None
    recorder = harness.bot.daily
    rows = [PostRecord("test", "T1", "C9", f"m{n}", paper.id, NOW) for n in range(40)]
    await asyncio.gather(*(recorder.record_post(row) for row in rows))
    again = [PostRecord("test", "T1", "C9", f"new{n}", paper.id, NOW) for n in range(5)]
    outcomes = await asyncio.gather(
        *(recorder.record_post(row) for row in [*again, rows[0]]), return_exceptions=True
    )
    assert outcomes[:5] == [None] * 5
    assert isinstance(outcomes[5], IntegrityError)  # the same message recorded twice
    async with harness.store.transaction() as repos:
        recorded = await repos.channels.posted_papers("test", "T1", "C9", [paper.id])
        count = await repos.session.scalar(select(func.count()).select_from(Post))
    assert recorded == {paper.id} and count == 45
