"""The weekly team post: `/papers channel weekly on <day> HH:MM [tz] | off`, what the post
holds (the team's most saved papers, then the week's trending papers the channel was not
posted), and its delivery through the same ledger as the daily post: one post however many
workers fire it, and one post after a worker dies mid-send. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.discord.render import render as discord_render
from adapters.slack.render import blocks as slack_blocks
from bot.app import Paperboy
from bot.commands.parser import ChannelWeeklyOff, ChannelWeeklyOn, UsageError, parse
from bot.config import BotConfig
from bot.delivery.runner import Claim, DeliveryPolicy
from bot.delivery.scheduler import DeliveryScheduler
from bot.delivery.status import collect_status, render_status
from bot.events import ChannelRef, MessageRef
from bot.messages import Message
from bot.ports import DeliveryError
from bot.sources.refresh import load_demo
from bot.weekly import compose_weekly_post
from storage.channels import PostRecord
from storage.deliveries import WEEKLY, DeliveryKey
from storage.models import Delivery
from storage.store import Store
from tests.core_fixtures import NOW, SCOPE, Harness, RecordingPlatform
from tests.test_console import numbered, run_console
from tests.test_lists import add_listing

POLICY = DeliveryPolicy(lease=timedelta(minutes=5), max_attempts=3)
KEY = DeliveryKey(WEEKLY, "test", "T1", "C1", "2026-05-05")  # NOW is Tuesday 5 May, 12:00 UTC
TITLE = "The week in papers"


# Parsing and the admin rule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("channel weekly on fri 16:00", ChannelWeeklyOn(4, "16:00", None)),
        ("channel weekly on Friday 16:00 europe/berlin",
         ChannelWeeklyOn(4, "16:00", "Europe/Berlin")),
        ("CHANNEL WEEKLY ON sunday 7:30 utc", ChannelWeeklyOn(6, "07:30", "UTC")),
        ("channel weekly on mon 09:05 asia/tokyo", ChannelWeeklyOn(0, "09:05", "Asia/Tokyo")),
        ("channel weekly off", ChannelWeeklyOff()),
    ],
)  # fmt: skip
def test_weekly_commands_parse_day_names_times_and_timezones(text: str, command: object) -> None:
    assert parse(text) == command


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("channel weekly", "Usage: `/papers channel weekly on <mon..sun> HH:MM"),
        ("channel weekly on 16:00", "Usage: `/papers channel weekly on"),
        ("channel weekly on fri", "Usage: `/papers channel weekly on"),
        ("channel weekly on someday 16:00", "Days are mon, tue, wed, thu, fri, sat or sun."),
        ("channel weekly on fr 16:00", "Days are mon"),
        ("channel weekly on fri 25:00", "Times are like 09:00, 21:30 or 9am"),
        ("channel weekly on fri 13pm", "Times are like 09:00, 21:30 or 9am"),
        ("channel weekly on fri 16:00 Mars/Base", "Unknown timezone"),
        ("channel weekly on fri 16:00 UTC extra", "Usage: `/papers channel weekly on"),
        ("channel weekly off now", "Usage: `/papers channel weekly on"),
    ],
)
def test_malformed_weekly_commands_say_the_right_form(text: str, says: str) -> None:
    with pytest.raises(UsageError) as error:
        parse(text)
    assert says in str(error.value)
    assert len(str(error.value).splitlines()) == 1


async def weekly_row(store: Store, channel: str = "C1") -> tuple[bool, int, str, str] | None:
    """(enabled, weekday, time, timezone) of the channel's weekly post, if it has one."""
    async with store.reading() as repos:
        post = await repos.weekly.get("test", "T1", channel)
        return (post.enabled, post.weekday, post.post_time, post.timezone) if post else None


async def test_only_admins_change_the_weekly_post_and_bad_input_changes_nothing(
    harness: Harness,
) -> None:
    daily_refusal = await harness.say("channel on 09:00 UTC", user="bob")
    for words in ("channel weekly on fri 16:00", "channel weekly off"):
        refused = await harness.say(words, user="bob")
        assert refused.text == daily_refusal.text  # the one admin rule, the one refusal
        assert refused.text.startswith("Only workspace admins can change")
    assert await weekly_row(harness.store) is None

    on = await harness.say("channel weekly on fri 16:00", user="admin", admin=True)
    assert on.text == "Weekly post on: Fridays at 16:00 UTC."  # the default timezone
    assert await weekly_row(harness.store) == (True, 4, "16:00", "UTC")
    for bad in ("channel weekly on fri 16:00 Mars/Base", "channel weekly on 16:00 UTC"):
        answer = await harness.say(bad, user="admin", admin=True)
        assert answer.is_usage_hint
    assert await weekly_row(harness.store) == (True, 4, "16:00", "UTC")
    assert (await harness.say("channel weekly off", user="bob")).text == daily_refusal.text
    assert await weekly_row(harness.store) == (True, 4, "16:00", "UTC")

    moved = await harness.say("channel weekly on Wednesday 08:15 Europe/Berlin", admin=True)
    assert moved.text == "Weekly post on: Wednesdays at 08:15 Europe/Berlin."
    kept = await harness.say("channel weekly on thu 09:00", admin=True)  # keeps its timezone
    assert kept.text == "Weekly post on: Thursdays at 09:00 Europe/Berlin."
    off = await harness.say("channel weekly off", admin=True)
    assert off.text.startswith("Weekly post off for this channel.")
    assert await weekly_row(harness.store) == (False, 3, "09:00", "Europe/Berlin")
    again = await harness.say("channel weekly off", admin=True)
    assert again.text == "The weekly post was already off in this channel."


async def test_help_and_channel_status_tell_of_the_weekly_post(harness: Harness) -> None:
    help_text = "\n".join((await harness.say("help")).lines)
    assert "`/papers channel weekly on <mon..sun> HH:MM [timezone] | off`" in help_text
    assert "weekly team post" in help_text
    before = await harness.say("channel status")
    assert any(line.startswith("No weekly post. An admin can start one") for line in before.lines)
    await harness.say("channel weekly on fri 16:00 Europe/Berlin", admin=True)
    after = await harness.say("channel")
    assert "Weekly post: Fridays at 16:00 Europe/Berlin." in after.lines


# What a due weekly slot delivers ---------------------------------------------------------


async def save(harness: Harness, user: str, arxiv_id: str, workspace: str = "T1") -> None:
    async with harness.store.transaction() as repos:
        paper = await repos.papers.by_arxiv_id(arxiv_id)
        assert paper is not None
        await repos.users.save("test", workspace, user, paper.id, harness.clock[0])


async def set_up_week(harness: Harness) -> None:
    """Yesterday: C1's daily post carried 2605.00001 and 2605.00002 (then was turned off), and
    its weekly post was set for Tuesdays 11:00 UTC. An hour ago: two members saved 2605.00003,
    one 2605.00101, and a member of another workspace 2605.00005."""
    harness.clock[0] = NOW - timedelta(days=1)
    for words in ("channel on 09:00 UTC 2", "channel post-now", "channel off",
                  "channel weekly on tue 11:00 UTC"):  # fmt: skip
        answer = await harness.say(words, user="admin", admin=True)
        assert not answer.is_usage_hint, answer.text
    harness.clock[0] = NOW - timedelta(hours=1)
    await save(harness, "alice", "2605.00003")
    await save(harness, "bob", "2605.00003")
    await save(harness, "carol", "2605.00101")
    await save(harness, "dave", "2605.00005", workspace="T2")
    harness.clock[0] = NOW


def scheduler(harness: Harness, worker: str = "w1") -> DeliveryScheduler:
    return harness.bot.scheduler(worker=worker, policy=POLICY, clock=lambda: harness.clock[0])


def weekly_posts(platform: RecordingPlatform) -> list[Message]:
    return [message for _, message, _ in platform.posts if message.text.startswith(TITLE)]


async def ledger_row(store: Store, key: DeliveryKey = KEY) -> Delivery | None:
    async with store.reading() as repos:
        row = await repos.deliveries.latest(key.kind, key.platform, key.workspace, key.target)
    return row if row is not None and row.period == key.period else None


async def test_a_due_weekly_slot_posts_the_teams_saves_then_unseen_trending_papers(
    harness: Harness,
) -> None:
    await set_up_week(harness)
    worker = scheduler(harness)
    await worker.resync(catch_up=True)  # Tuesday 11:00 UTC has passed today: due once
    worker.shutdown()
    (post,) = weekly_posts(harness.platform)
    saved = [(card.paper_id, card.saved_by) for card in post.cards if card.saved_by]
    trending = [card.paper_id for card in post.cards if card.saved_by is None]
    # Most members first; another workspace's save is not counted.
    assert saved == [("2605.00003", 2), ("2605.00101", 1)]
    # By upvotes (64, 12, 9, then unvoted, the latest listed first); the papers the daily post
    # carried (00001, 00002) and those in the saved part are left out; five at most.
    assert trending == ["2605.00102", "2605.00103", "2605.00005", "2605.00104", "2605.00004"]
    assert post.text == f"{TITLE}, 29 Apr to 05 May 2026"
    assert post.lines[:2] == (
        "First, what this team saved most in the last 7 days.",
        "Then the week's most upvoted Daily Papers not posted here yet.",
    )
    for name in ("alice", "bob", "carol"):  # counts only, never who
        assert name not in repr(post)
    row = await ledger_row(harness.store)
    assert row is not None and (row.status, row.detail, row.attempts) == ("sent", "7 papers", 1)
    assert row.message_ref == harness.platform.posts[-1][2].message_id

    worker = scheduler(harness)  # a restart the same day does not post it again
    harness.clock[0] = NOW + timedelta(hours=2)
    await worker.resync(catch_up=True)
    await worker.retry_due()
    worker.shutdown()
    assert len(weekly_posts(harness.platform)) == 1


async def test_the_weekly_post_renders_with_the_existing_card_renderers(harness: Harness) -> None:
    await set_up_week(harness)
    await harness.bot.weekly.post(ChannelRef(SCOPE, "C1"))
    (post,) = weekly_posts(harness.platform)
    slack = str(slack_blocks(post))
    assert "saved by 2" in slack and "saved by 1" in slack
    discord = discord_render(post).send_kwargs()
    footers = [embed.footer.text or "" for embed in discord["embeds"]]
    assert len(footers) == 7 and footers[0].startswith("saved by 2")


async def test_nothing_saved_and_nothing_trending_is_no_post_and_is_not_retried(
    harness: Harness,
) -> None:
    await set_up_week(harness)  # saves and lists from the week of 5 May
    later = NOW + timedelta(days=14)  # Tuesday 19 May: both are older than a week
    harness.clock[0] = later - timedelta(days=1)
    await harness.say("channel weekly on tue 11:00 UTC", admin=True)
    harness.clock[0] = later
    worker = scheduler(harness)
    await worker.resync(catch_up=True)
    harness.clock[0] = later + timedelta(hours=3)
    await worker.retry_due()
    worker.shutdown()
    assert weekly_posts(harness.platform) == []
    row = await ledger_row(harness.store, DeliveryKey(WEEKLY, "test", "T1", "C1", "2026-05-19"))
    assert row is not None and (row.status, row.attempts) == ("empty", 1)
    status = await harness.say("channel status")
    assert "Last weekly post (2026-05-19): nothing new to send." in status.lines


async def test_papers_the_daily_posts_carried_are_not_trending_again(harness: Harness) -> None:
    """All but one paper of the week went out in daily posts, nobody saved any: the weekly
    post holds that one."""
    await harness.say("channel on 09:00 UTC 10", admin=True)
    await harness.say("channel post-now", admin=True)  # the 5 May list: 4 papers
    async with harness.store.transaction() as repos:  # and 4 of 4 May's
        for arxiv_id in ("2605.00001", "2605.00002", "2605.00003", "2605.00004"):
            paper = await repos.papers.by_arxiv_id(arxiv_id)
            assert paper is not None
            sent_at = NOW - timedelta(days=2)
            await repos.channels.record_posts(
                [PostRecord("test", "T1", "C1", arxiv_id, paper.id, sent_at)]
            )
    assert (await harness.bot.weekly.post(ChannelRef(SCOPE, "C1"))).papers == 1
    (post,) = weekly_posts(harness.platform)
    assert [card.paper_id for card in post.cards] == ["2605.00005"]
    assert post.lines[0] == "The week's most upvoted Daily Papers not posted here yet."


class GonePlatform(RecordingPlatform):
    """A channel the bot was removed from: posting there fails for good."""

    async def post(self, channel: ChannelRef, message: Message) -> MessageRef:
        raise DeliveryError("channel_not_found", permanent=True)


async def test_a_channel_that_is_gone_stops_its_weekly_post_and_tells_the_admin(
    harness: Harness,
) -> None:
    await set_up_week(harness)
    platform = harness.use(GonePlatform())
    worker = scheduler(harness)
    await worker.resync(catch_up=True)
    await worker.resync()
    assert worker.slots == []  # turned off: no longer scheduled
    worker.shutdown()
    row = await ledger_row(harness.store)
    assert row is not None and (row.status, row.detail) == ("failed", "channel_not_found")
    assert await weekly_row(harness.store) == (False, 1, "11:00", "UTC")
    ((admin, notice, _),) = platform.dms
    assert admin.user == "admin" and notice.channel == "C1"
    assert notice.text == "I can no longer post in {channel}, so I stopped its weekly post."
    assert "channel_not_found" not in str(notice)
    status = await harness.say("channel status")
    assert any(
        "it was stopped: I can no longer post in the channel" in line for line in status.lines
    )


# Exactly once ------------------------------------------------------------------------------

CHANNELS = 12


async def test_two_workers_on_one_database_post_each_weekly_slot_once(harness: Harness) -> None:
    database_url = harness.store.engine.url.render_as_string(hide_password=False)
    harness.clock[0] = NOW - timedelta(days=1)
    for index in range(CHANNELS):
        channel = ChannelRef(SCOPE, f"C{index}")
        await harness.say("channel weekly on tue 11:00 UTC", admin=True, channel=channel)
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
            for schedule_id in {slot.schedule_id for slot in worker.slots}:
                await worker.fire(schedule_id)  # the job firing too, on both workers
            await worker.retry_due()
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
    posted = [channel.channel for p in platforms for channel, _, _ in p.posts]
    assert all(message.text.startswith(TITLE) for p in platforms for _, message, _ in p.posts)
    assert sorted(posted) == sorted(f"C{i}" for i in range(CHANNELS))  # each once
    async with harness.store.reading() as repos:
        rows = await repos.deliveries.recent(limit=1000)
    assert len(rows) == CHANNELS and {(r.kind, r.status) for r in rows} == {(WEEKLY, "sent")}


async def test_a_claim_whose_worker_died_before_sending_is_taken_over_after_its_lease(
    harness: Harness,
) -> None:
    await set_up_week(harness)
    async with harness.store.transaction() as repos:  # a worker claimed it, then died
        await repos.deliveries.claim_many([KEY], "dead", NOW, lease=POLICY.lease, max_attempts=3)
    worker = scheduler(harness)
    await worker.resync(catch_up=True)  # fired again while the lease holds: not this one's
    await worker.retry_due()
    assert weekly_posts(harness.platform) == []
    harness.clock[0] = NOW + POLICY.lease + timedelta(seconds=1)
    await worker.retry_due()
    await worker.retry_due()
    worker.shutdown()
    assert len(weekly_posts(harness.platform)) == 1
    row = await ledger_row(harness.store)
    assert row is not None and (row.status, row.attempts, row.worker) == ("sent", 2, "w1")


async def test_a_post_sent_by_a_worker_that_died_before_noting_it_is_not_sent_again(
    harness: Harness,
) -> None:
    await set_up_week(harness)
    # A worker claimed and composed the post and sent it, then died before the ledger heard.
    async with harness.store.transaction() as repos:
        claimed = await repos.deliveries.claim_many(
            [KEY], "dead", NOW, lease=POLICY.lease, max_attempts=3
        )
        row = claimed[KEY]
        (send,) = await harness.bot.weekly.prepare(
            repos, [Claim(KEY, row.created_at, row.attempts, give_up=False)]
        )
    await send()
    (first,) = weekly_posts(harness.platform)
    # Its saves change meanwhile; the retry still finds the post that went out.
    harness.clock[0] = NOW + timedelta(minutes=1)
    await save(harness, "erin", "2605.00001")
    harness.clock[0] = NOW + POLICY.lease + timedelta(seconds=1)
    await scheduler(harness).retry_due()
    assert weekly_posts(harness.platform) == [first]
    row = await ledger_row(harness.store)
    assert row is not None and (row.status, row.attempts) == ("sent", 2)
    assert row.message_ref == harness.platform.posts[-1][2].message_id


# Status ------------------------------------------------------------------------------------


async def test_paperboy_status_shows_weekly_posts_and_their_last_outcomes(
    harness: Harness,
) -> None:
    await set_up_week(harness)
    await harness.say("channel weekly on fri 16:00 Europe/Berlin", channel=ChannelRef(SCOPE, "C2"),
                      admin=True)  # fmt: skip
    worker = scheduler(harness)
    await worker.resync(catch_up=True)
    worker.shutdown()
    text = render_status(await collect_status(harness.store, NOW))
    lines = text.splitlines()
    weekly = lines[lines.index("Weekly posts (2):") + 1 :]
    assert weekly[:2] == [
        "  test    T1/C2  Fridays at 16:00 Europe/Berlin  on  not run yet",
        "  test    T1/C1  Tuesdays at 11:00 UTC  on  last (2026-05-05): sent, 7 papers.",
    ]
    assert any(" weekly  test    T1/C2  16:00 Europe/Berlin on Fri" in line for line in lines)
    assert any("weekly  test    T1/C1  2026-05-05  sent    attempt 1  7 papers" in line
               for line in lines)  # fmt: skip
    await harness.say("channel weekly off", channel=ChannelRef(SCOPE, "C2"), admin=True)
    text = render_status(await collect_status(harness.store, NOW))
    assert "  test    T1/C2  Fridays at 16:00 Europe/Berlin  off  not run yet" in text
    assert " weekly  test    T1/C2" not in text  # no next slot when off
    status = await harness.say("channel status")
    assert "Last weekly post (2026-05-05): sent, 7 papers." in status.lines


# The console -------------------------------------------------------------------------------


def test_the_console_takes_the_weekly_command_and_posts_it_on_the_demo_sample(
    tmp_path: Path,
) -> None:
    result = run_console(
        [
            "/papers channel weekly on fri 16:00",
            "/papers channel weekly on fri",
            "/papers channel on",
            "/post-daily",
            "/react 5 bookmark",
            "/post-weekly",
        ],
        database=tmp_path / "p.db",
        hf_url="http://127.0.0.1:9",  # nothing listens: the demo sample
        extra_env={"PAPERBOY_SEMANTIC": "off"},
    )
    assert result.returncode == 0, result.stderr
    messages = numbered(result.stdout)
    assert messages[1] == "(only you) Weekly post on: Fridays at 16:00 UTC."
    assert messages[2].startswith("(only you) Usage: `/papers channel weekly on")
    saved_title = messages[5].removeprefix("#general: ")
    posted_titles = [messages[n].removeprefix("#general: ") for n in range(6, 10)]
    weekly_number = max(messages)
    assert messages[weekly_number].startswith(f"#general: {TITLE}")
    weekly = result.stdout.split(f"[{weekly_number}] ")[1]
    assert f"1. {saved_title}" in weekly and "saved by 1 · demo" in weekly
    assert not any(title in weekly for title in posted_titles)  # the daily post had them
    assert result.stdout.count("Demo data:") == 1  # once a console run


# Which week a post covers ----------------------------------------------------------------


async def test_an_early_monday_post_covers_last_mondays_list_not_todays_unfinished_one(
    harness: Harness,
) -> None:
    """Monday 08:00 in Berlin is 06:00 UTC: Monday's list has only begun to fill (a day's list
    counts as out from 08:00 UTC), so the week is the 7 list days before it, last Monday's
    whole list included. Else last Monday's papers would only ever be seen with their first
    hours of upvotes, and the post would speak of a day not over yet."""
    harness.clock[0] = NOW - timedelta(days=1)  # Monday 4 May
    await harness.say("channel weekly on mon 08:00 Europe/Berlin", admin=True)
    monday = NOW + timedelta(days=6, hours=-6)  # Monday 11 May, 06:00 UTC
    await add_listing(harness.store, monday.date(), ("2605.01101", 2))  # filling up
    harness.clock[0] = monday
    worker = scheduler(harness)
    await worker.resync(catch_up=True)
    worker.shutdown()
    (post,) = weekly_posts(harness.platform)
    assert post.text == f"{TITLE}, 04 May to 10 May 2026"
    shown = [card.paper_id for card in post.cards]
    assert shown[0] == "2605.00001"  # 4 May's most upvoted (87)
    assert "2605.01101" not in shown


async def test_a_weekly_post_moved_to_a_later_day_repeats_nothing_the_last_one_carried(
    harness: Harness,
) -> None:
    """Tuesday's post went out; the admin then moves it to Wednesdays. Wednesday's post holds
    only what is new since: the saves made after Tuesday's post, and no paper twice."""
    await set_up_week(harness)
    worker = scheduler(harness)
    await worker.resync(catch_up=True)  # Tuesday 11:00 UTC
    worker.shutdown()
    (tuesday,) = weekly_posts(harness.platform)
    harness.clock[0] = NOW + timedelta(hours=1)
    await harness.say("channel weekly on wed 09:00 UTC", admin=True)
    await save(harness, "erin", "2605.00001")  # the daily post carried it; new since Tuesday
    harness.clock[0] = NOW + timedelta(hours=21, minutes=1)  # Wednesday 09:01 UTC
    worker = scheduler(harness)
    await worker.resync(catch_up=True)
    worker.shutdown()
    (_, wednesday) = weekly_posts(harness.platform)
    assert [(card.paper_id, card.saved_by) for card in wednesday.cards] == [("2605.00001", 1)]
    assert not {card.paper_id for card in tuesday.cards} & {
        card.paper_id for card in wednesday.cards
    }
    assert wednesday.lines[0] == "First, what this team saved most since the last weekly post."


async def test_the_next_weeks_post_counts_that_weeks_saves_as_the_last_7_days(
    harness: Harness,
) -> None:
    await set_up_week(harness)
    worker = scheduler(harness)
    await worker.resync(catch_up=True)  # Tuesday 5 May, 11:00 UTC
    worker.shutdown()
    harness.clock[0] = NOW + timedelta(days=6)
    await save(harness, "erin", "2605.00003")  # shown last week, saved again this week
    harness.clock[0] = NOW + timedelta(days=7)  # Tuesday 12 May, 12:00 UTC
    worker = scheduler(harness)
    await worker.resync(catch_up=True)
    worker.shutdown()
    (_, next_week) = weekly_posts(harness.platform)
    assert [(card.paper_id, card.saved_by) for card in next_week.cards] == [("2605.00003", 1)]
    assert next_week.lines[0] == "First, what this team saved most in the last 7 days."


async def test_offline_the_weekly_post_carries_the_demo_sample_at_any_hour(store: Store) -> None:
    """The demo sample is one list dated the day it was loaded: a weekly post before that
    day's real list would be out (08:00 UTC) still shows it, as the daily post does."""
    early = NOW.replace(hour=6)
    loaded = await load_demo(store, early.date(), early)
    async with store.reading() as repos:
        post = await compose_weekly_post(repos, ChannelRef(SCOPE, "C1"), early)
    assert post is not None
    assert len(post.paper_ids) == 5 and loaded >= 5
