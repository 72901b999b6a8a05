"""Every command of the surface, through Paperboy.handle_command, on a real store."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from sqlalchemy import func, select, text

from adapters.discord.render import render as discord_render
from adapters.slack.render import blocks
from bot.app import Paperboy
from bot.bibtex import bibtex_entries
from bot.commands.channels import MAX_CHANNEL_TOPICS
from bot.commands.library import MAX_FOLLOWED, MAX_LISTED
from bot.config import BotConfig
from bot.events import ChannelRef, CommandInvoked, MessageRef
from bot.messages import Message, Visibility
from bot.words import search_terms
from storage.models import Base, Paper
from storage.papers import PaperData
from storage.store import Store
from tests.core_fixtures import CHANNEL, NOW, SCOPE, Harness, RecordingPlatform
from tests.fakes.huggingface import load_fixture
from tests.slack_fixtures import all_text


async def table_counts(harness: Harness) -> dict[str, int]:
    async with harness.store.transaction() as repos:
        return {
            name: int(await repos.session.scalar(select(func.count()).select_from(table)) or 0)
            for name, table in Base.metadata.tables.items()
        }


async def test_today_lists_the_latest_day_by_upvotes(harness: Harness) -> None:
    answer = await harness.say("today")
    assert "05 May 2026" in answer.text
    assert [card.paper_id for card in answer.cards][:3] == [
        "2605.00101",
        "2605.00102",
        "2605.00103",
    ]
    assert answer.visibility is Visibility.CALLER
    assert answer.shareable
    assert answer.note is None  # real data: no demo label
    first = answer.cards[0]
    assert first.url == "https://huggingface.co/papers/2605.00101"
    assert first.upvotes == 64
    assert first.authors[:2] == ("Anika Bose", "Tom Reyes")
    assert first.published == date(2026, 5, 4)
    labels = {link.label: link.url for link in first.links}
    assert labels["arXiv"] == "https://arxiv.org/abs/2605.00101"
    assert labels["PDF"] == "https://arxiv.org/pdf/2605.00101"
    assert labels["Code"] == "https://github.com/selfspec/selfspec"
    assert await harness.say("") == answer  # `/papers` alone is `today`


async def test_topic_ranks_local_matches_and_hints_follow(harness: Harness) -> None:
    answer = await harness.say("topic speculative decoding")
    ids = [card.paper_id for card in answer.cards]
    assert set(ids[:2]) == {"2605.00001", "2605.00101"}
    assert "2605.00004" not in ids  # video diffusion has nothing to do with it
    assert answer.shareable and answer.visibility is Visibility.CALLER
    assert any("/papers follow speculative decoding" in line for line in answer.lines)


async def test_topic_matches_ai_keywords_and_stems(harness: Harness) -> None:
    answer = await harness.say("topic latencies")
    assert "2605.00001" in [card.paper_id for card in answer.cards]


async def test_topic_merges_hugging_face_results_and_stores_them(harness: Harness) -> None:
    harness.hf.days["2024-05-27"] = load_fixture("legacy-2024-05-27.json")
    answer = await harness.say("topic robot manipulation")
    assert [card.paper_id for card in answer.cards] == ["2405.90002"]
    assert any(request.endpoint == "search" for request in harness.hf.requests)
    async with harness.store.transaction() as repos:
        assert await repos.papers.by_arxiv_id("2405.90002") is not None


async def test_a_store_that_answers_in_full_does_not_ask_hugging_face(
    harness: Harness,
) -> None:
    harness.hf.days["2024-05-27"] = load_fixture("legacy-2024-05-27.json")
    bot = Paperboy(
        harness.store,
        harness.platform,
        config=BotConfig(search_budget=1.0, topic_count=2),
        source=harness.bot.source,
        clock=lambda: NOW,
    )
    answer = await bot.handle_command(CommandInvoked(CHANNEL, "alice", "topic diffusion", False))
    assert len(answer.cards) == 2
    assert "2405.90002" not in [card.paper_id for card in answer.cards]  # only HF knows it
    assert harness.hf.requests_to("search") == []
    answer = await bot.handle_command(CommandInvoked(CHANNEL, "alice", "topic manipulation", False))
    assert [card.paper_id for card in answer.cards] == ["2405.90002"]  # too few: HF asked


async def test_topic_answers_from_the_store_when_hugging_face_is_slow(harness: Harness) -> None:
    harness.hf.timeout_delay = 3.0
    harness.hf.faults["search"] = ["timeout"]
    harness.hf.days["2024-05-27"] = load_fixture("legacy-2024-05-27.json")
    answer = await harness.say("topic diffusion")
    ids = [card.paper_id for card in answer.cards]
    assert "2605.00004" in ids
    assert "2405.90002" not in ids  # only Hugging Face knew it, and it did not answer in time


async def test_stopwords_do_not_decide_what_a_topic_matches(harness: Harness) -> None:
    assert search_terms("reasoning models that think too long") == [
        "reasoning", "models", "think", "long",
    ]  # fmt: skip
    assert search_terms("the who") == []  # nothing to search for
    refused = await harness.say("topic the of")  # the same answer on both engines
    assert refused.is_usage_hint and "a topic needs a word other than" in refused.text
    assert (await harness.say("follow the")).is_usage_hint
    assert not (await harness.say("unfollow the")).is_usage_hint  # one stored before: removable
    answer = await harness.say("topic what is speculative decoding")
    ids = [card.paper_id for card in answer.cards]
    assert set(ids[:2]) == {"2605.00001", "2605.00101"}  # the two holding both words


async def test_papers_holding_most_words_fill_a_short_page_after_those_holding_all(
    harness: Harness,
) -> None:
    answer = await harness.say("topic speculative decoding for video")  # no paper holds all
    ids = [card.paper_id for card in answer.cards]
    assert set(ids[:2]) == {"2605.00001", "2605.00101"}  # two of the three words
    assert "2605.00004" in ids[2:]  # video diffusion: one word, ranked after them
    answer = await harness.say("topic speculative latency")
    ids = [card.paper_id for card in answer.cards]
    assert set(ids[:2]) == {"2605.00001", "2605.00101"}  # both words
    assert "2605.00104" in ids[2:]  # tail latency only


async def test_topic_with_no_match_says_so(harness: Harness) -> None:
    answer = await harness.say("topic quantum gravity")
    assert answer.cards == ()
    assert "No papers found" in answer.text


async def test_followed_and_channel_topics_are_capped(harness: Harness) -> None:
    for n in range(MAX_FOLLOWED):
        assert "now follow" in (await harness.say(f"follow topic{n}")).text
    refused = await harness.say("follow one more")
    assert "the most there can be" in refused.text
    assert "already follow" in (await harness.say("follow topic0")).text  # not a new one
    assert len((await harness.say("following")).lines) == MAX_FOLLOWED
    await harness.say("unfollow topic0")
    assert "now follow" in (await harness.say("follow one more")).text

    await harness.say("channel on", admin=True)
    for n in range(MAX_CHANNEL_TOPICS):
        assert "Added" in (await harness.say(f"channel topics add t{n}", admin=True)).text
    refused = await harness.say("channel topics add one more", admin=True)
    assert "the most there can be" in refused.text
    status = await harness.say("channel status", admin=True)
    shown = " ".join((status.text, *status.lines))
    assert "t9" in shown and "one more" not in shown


async def test_follow_unfollow_following(harness: Harness) -> None:
    assert "now follow" in (await harness.say("follow Diffusion")).text
    assert "already follow" in (await harness.say("follow diffusion")).text
    await harness.say("follow latency")
    assert (await harness.say("following")).lines == ("diffusion", "latency")
    assert (await harness.say("following", user="bob")).lines == ()
    assert "no longer follow" in (await harness.say("unfollow diffusion")).text
    assert "don't follow" in (await harness.say("unfollow diffusion")).text
    assert (await harness.say("following")).lines == ("latency",)


async def test_saved_unsave_and_bibtex_export(harness: Harness) -> None:
    await harness.say("channel post-now", admin=True)
    posts = harness.paper_posts()
    for _, ref in posts[:2]:
        await harness.react(ref)
    saved = await harness.say("saved")
    assert len(saved.cards) == 2
    assert {card.paper_id for card in saved.cards} == {paper_id for paper_id, _ in posts[:2]}
    assert "no saved papers" in (await harness.say("saved", user="bob")).text

    export = await harness.say("export bibtex")
    assert export.attachment is not None
    bib = export.attachment.content
    assert bib.count("@misc{") == 2
    assert f"eprint = {{{posts[0][0]}}}" in bib
    assert "archivePrefix = {arXiv}" in bib

    removed = posts[0][0]
    assert "Removed" in (await harness.say(f"unsave https://arxiv.org/abs/{removed}v1")).text
    assert "not in your saved" in (await harness.say(f"unsave {removed}")).text
    assert [card.paper_id for card in (await harness.say("saved")).cards] == [posts[1][0]]


async def test_a_long_saved_list_says_once_how_many_more_on_every_platform(
    harness: Harness,
) -> None:
    papers = [PaperData(f"2612.{n:05d}", f"Saved paper {n}") for n in range(MAX_LISTED + 2)]
    async with harness.store.transaction() as repos:
        ids = await repos.papers.upsert(papers, NOW)
        for paper_id in ids.values():
            await repos.users.save(SCOPE.platform, SCOPE.workspace, "alice", paper_id, NOW)
    answer = await harness.say("saved", user="alice")
    assert len(answer.cards) == MAX_LISTED
    slack = all_text(blocks(answer))
    discord = discord_render(answer)
    discord_text = " ".join(
        [discord.content or "", *(str(embed.to_dict()) for embed in discord.embeds)]
    )
    for shown in (slack, discord_text):
        assert shown.count("more") == 1, shown
        assert "2 more: `/papers export bibtex` lists them all" in shown.replace("\\", "")
    assert len(discord.embeds) == MAX_LISTED


async def test_bibtex_escapes_latex_and_keeps_keys_unique(harness: Harness) -> None:
    await harness.say("channel on 09:00 UTC 10", admin=True)
    await harness.say("channel post-now", admin=True)
    for _, ref in harness.paper_posts():
        await harness.react(ref)
    bib = (await harness.say("export bibtex")).attachment.content  # type: ignore[union-attr]
    keys = [line.split("{", 1)[1].rstrip(",") for line in bib.splitlines() if line.startswith("@")]
    assert len(keys) == len(set(keys)) == 4


def test_bibtex_escapes_latex_specials() -> None:
    paper = Paper(arxiv_id="2605.00003", title="R&D at 100% {fast} $x_1$ #1", abstract="",
                  authors=["Zoë Müller", "Sam O'Neil"], is_demo=False)  # fmt: skip
    entry = "\n".join(bibtex_entries([paper, paper]))
    assert r"R\&D at 100\% \{fast\} \$x\_1\$ \#1" in entry
    assert "author = {Zoë Müller and Sam O'Neil}" in entry
    assert "@misc{muller2026100," in entry and "@misc{muller2026100_2," in entry


async def test_digest_settings(harness: Harness) -> None:
    assert "off" in (await harness.say("digest")).text
    answer = await harness.say("digest daily 08:00 Asia/Tokyo")
    assert "daily at 08:00 Asia/Tokyo" in answer.text
    assert (
        "weekly on Friday at 07:30 Asia/Tokyo"
        in (await harness.say("digest weekly fri 07:30")).text
    )  # keeps the timezone it had
    assert "weekly on Friday" in (await harness.say("digest status")).text
    assert "is off" in (await harness.say("digest off")).text
    assert "already off" in (await harness.say("digest off")).text
    assert "daily at 06:00 UTC" in (await harness.say("digest daily 06:00")).text  # default tz


async def test_digest_now_sends_new_papers_once(harness: Harness) -> None:
    assert "follow no topics" in (await harness.say("digest now")).text
    assert harness.platform.dms == []
    await harness.say("follow diffusion")
    answer = await harness.say("digest now")
    assert "Sent you a digest of 3" in answer.text
    user, message, _ = harness.platform.dms[0]
    assert user.user == "alice"
    assert {card.paper_id for card in message.cards} == {"2605.00003", "2605.00004", "2605.00103"}
    assert "Nothing new" in (await harness.say("digest now")).text
    assert len(harness.platform.dms) == 1


async def test_digest_carries_papers_like_saved_ones(harness: Harness) -> None:
    async with harness.store.transaction() as repos:
        saved = await repos.papers.by_arxiv_id("2605.00001")  # keywords: speculative decoding, ...
        assert saved is not None
        await repos.users.save(SCOPE.platform, SCOPE.workspace, "alice", saved.id, NOW)
    answer = await harness.say("digest now")  # no followed topic: the save is enough
    assert "Sent you a digest of 1" in answer.text
    _, message, _ = harness.platform.dms[-1]
    assert [card.paper_id for card in message.cards] == ["2605.00101"]  # Self-Speculative ...
    assert message.text.endswith("1 new paper like ones you saved")

    await harness.say("follow diffusion transformers")
    harness.clock[0] += timedelta(days=1)
    async with harness.store.transaction() as repos:  # a new paper like the saved one
        await repos.papers.upsert(
            [PaperData("2605.00201", "Speculative decoding for speech", upvotes=1)], NOW
        )
        listed = await repos.papers.by_arxiv_id("2605.00201")
        assert listed is not None
        await repos.papers.record_listing(date(2026, 5, 6), [(listed.id, 1)])
    answer = await harness.say("digest now")
    _, message, _ = harness.platform.dms[-1]
    assert [card.paper_id for card in message.cards] == ["2605.00103", "2605.00201"]
    assert message.text.endswith("on diffusion transformers and like ones you saved")


async def test_channel_commands_are_admin_only(harness: Harness) -> None:
    before = await table_counts(harness)
    for command in ("channel on", "channel off", "channel post-now", "channel topics add llm"):
        answer = await harness.say(command, admin=False)
        assert "Only workspace admins" in answer.text
    assert await table_counts(harness) == before
    assert harness.platform.posts == []
    assert "No daily post" in (await harness.say("channel status")).text  # reading is fine


async def test_channel_on_status_topics_off(harness: Harness) -> None:
    answer = await harness.say("channel on 09:30 Europe/Berlin 3", admin=True)
    assert "top 3 papers at 09:30 Europe/Berlin" in answer.text
    assert "top 3 papers at 09:30 Europe/Berlin" in (await harness.say("channel status")).text
    assert "Added" in (await harness.say("channel topics add diffusion", admin=True)).text
    assert "already" in (await harness.say("channel topics add diffusion", admin=True)).text
    status = await harness.say("channel status")
    assert "Topics: diffusion." in status.lines
    assert "top 3 papers at 10:00" in (await harness.say("channel on 10:00", admin=True)).text
    assert "Topics: diffusion." in (await harness.say("channel status")).lines  # kept
    assert "Removed" in (await harness.say("channel topics remove diffusion", admin=True)).text
    assert "was not" in (await harness.say("channel topics remove diffusion", admin=True)).text
    assert "off" in (await harness.say("channel off", admin=True)).text
    assert "No daily post" in (await harness.say("channel status")).text
    assert "already off" in (await harness.say("channel off", admin=True)).text


async def test_a_post_of_one_paper_is_described_in_the_singular(harness: Harness) -> None:
    answer = await harness.say("channel on 09:00 UTC 1", admin=True)
    assert answer.text == "Daily post on: the top paper at 09:00 UTC on weekdays."
    assert "the top paper at 09:00" in (await harness.say("channel status")).text


async def test_channel_post_now_posts_then_has_nothing_new(harness: Harness) -> None:
    answer = await harness.say("channel post-now", admin=True)
    assert "Posted 4 papers" in answer.text
    header = harness.platform.posts[0][1]
    assert header.visibility is Visibility.PUBLIC and "Tuesday 05 May 2026" in header.text
    assert [paper_id for paper_id, _ in harness.paper_posts()] == [
        "2605.00101", "2605.00102", "2605.00103", "2605.00104",
    ]  # fmt: skip
    again = await harness.say("channel post-now", admin=True)
    assert "Nothing new" in again.text
    assert len(harness.platform.posts) == 5


async def test_post_now_with_topics_nothing_matches_says_so(harness: Harness) -> None:
    """The list's papers are not all here: none of them is on the channel's topics."""
    await harness.say("channel on 09:00 UTC 3", admin=True)
    await harness.say("channel topics add quantum chemistry", admin=True)
    answer = await harness.say("channel post-now", admin=True)
    assert harness.platform.posts == []
    assert "already here" not in answer.text
    assert "quantum chemistry" in answer.text


class GatedPlatform(RecordingPlatform):
    """Holds every post until `gate` opens, as a slow platform does; `sending` is set once
    the first post is on its way."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.sending = asyncio.Event()

    async def post(self, channel: ChannelRef, message: Message) -> MessageRef:
        self.sending.set()
        await self.gate.wait()
        return await super().post(channel, message)


async def test_two_post_nows_at_once_post_each_paper_once(harness: Harness) -> None:
    """A second post-now (a double submit, another admin) while the first is being sent
    would compose the same papers, none recorded yet."""
    platform = harness.use(GatedPlatform())
    first = asyncio.create_task(harness.say("channel post-now", admin=True))
    await asyncio.wait_for(platform.sending.wait(), 5)
    try:  # the second must not wait for the first: it would hold the gate shut
        second = await asyncio.wait_for(harness.say("channel post-now", user="bob", admin=True), 5)
    finally:
        platform.gate.set()
    assert "Posted 4 papers" in (await first).text
    assert second.text.startswith("A post to this channel is being sent right now")
    assert sorted(m.cards[0].paper_id for _, m, _ in platform.posts if m.cards) == [
        "2605.00101", "2605.00102", "2605.00103", "2605.00104",
    ]  # fmt: skip
    assert "Nothing new" in (await harness.say("channel post-now", admin=True)).text  # let go


async def test_help_lists_every_command(harness: Harness) -> None:
    answer = await harness.say("help")
    body = "\n".join(answer.lines)
    for word in ("today", "topic", "follow", "unfollow", "following", "saved", "unsave",
                 "export bibtex", "digest", "channel on", "post-now", "topics add"):  # fmt: skip
        assert word in body


async def test_malformed_commands_change_nothing(harness: Harness) -> None:
    await harness.say("follow latency")
    before = await table_counts(harness)
    hostile = [
        "frobnicate", "topic", "follow <!channel>", "follow " + "x" * 10_000,
        "digest daily 25:00", "digest daily 08:00 Not/AZone", "channel on 9:00 UTC 99",
        "unsave 1 2", "follow latency'; DELETE FROM follows; --", "unfollow \x00latency",
        "channel topics add *bold*",
    ]  # fmt: skip
    for command in hostile:
        answer = await harness.say(command, admin=True)
        assert answer.is_usage_hint, command
        assert answer.cards == () and "\n" not in answer.text
    assert await table_counts(harness) == before
    assert harness.platform.posts == [] and harness.platform.dms == []


async def test_users_and_workspaces_are_isolated(harness: Harness) -> None:
    other_workspace = CHANNEL.__class__(CHANNEL.scope.__class__("test", "T2"), "C1")
    await harness.say("follow diffusion", user="alice")
    assert (await harness.say("following", user="alice", channel=other_workspace)).lines == ()
    await harness.say("channel on", admin=True)
    assert "No daily post" in (await harness.say("channel status", channel=other_workspace)).text
    await harness.say("channel post-now", admin=True)
    _, ref = harness.paper_posts()[0]
    await harness.react(ref, user="alice")
    assert (await harness.say("saved", user="bob")).cards == ()
    assert (await harness.say("saved", user="alice", channel=other_workspace)).cards == ()
    assert "not in your saved" in (await harness.say(f"unsave {harness.paper_posts()[0][0]}",
                                                     user="bob")).text  # fmt: skip
    assert len((await harness.say("saved", user="alice")).cards) == 1


async def test_a_failing_handler_answers_with_an_apology(harness: Harness, caplog) -> None:  # type: ignore[no-untyped-def]
    async with harness.store.transaction() as repos:
        await repos.session.execute(text("DROP TABLE follows"))
    answer = await harness.say("following")
    assert "something went wrong" in answer.text
    assert "Traceback" not in answer.text and "follows" not in answer.text
    assert "command Following failed" in caplog.text


async def test_empty_store_today_explains(store: Store) -> None:
    bot = Paperboy(store, RecordingPlatform(), config=BotConfig())
    answer = await bot.handle_command(CommandInvoked(CHANNEL, "alice", "today", False))
    assert "No Daily Papers list yet" in answer.text
    assert answer.cards == ()


async def test_a_typographic_apostrophe_is_the_apostrophe_a_topic_allows(
    harness: Harness,
) -> None:
    # Phones and macOS turn a typed ' into U+2019 ("smart punctuation"); the usage line says an
    # apostrophe is allowed, so the topic must be the one typed with a plain ' elsewhere.
    followed = await harness.say("follow Bayes\u2019 rule")
    assert not followed.is_usage_hint, followed.text
    assert (await harness.say("following")).lines == ("bayes' rule",)
    assert "already follow" in (await harness.say("follow bayes' rule")).text
    assert "“bayes' rule”" in (await harness.say("topic bayes\u2019 rule")).text
    assert "no longer follow" in (await harness.say("unfollow BAYES\u2019 RULE")).text
    assert (await harness.say("following")).lines == ()
