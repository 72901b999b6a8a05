"""`/papers team [week|month|all]`, `/papers week` and `/papers month` through
Paperboy.handle_command and Paperboy.share, on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import inspect

from bot.app import Paperboy
from bot.cards import DEMO_NOTE
from bot.commands.lists import PERIOD_DAYS
from bot.config import BotConfig
from bot.events import ChannelRef, CommandInvoked, MessageRef, ReactionChanged, Scope
from bot.messages import Message, Visibility
from bot.sources.refresh import load_demo
from storage.papers import PaperData
from storage.store import Store
from storage.users import team_saves_statement
from tests.core_fixtures import CHANNEL, NOW, SCOPE, Harness, RecordingPlatform, react
from tests.test_commands import table_counts

# Member ids no paper text holds, so finding one in an answer can only mean it leaked.
ANN, BEN, CAL, DEE = "U0ANN7Q", "U0BEN7Q", "U0CAL7Q", "U0DEE7Q"
MEMBERS = (ANN, BEN, CAL, DEE)
OTHER_WORKSPACE = ChannelRef(Scope(SCOPE.platform, "T2"), "C9")
OTHER_PLATFORM = ChannelRef(Scope("elsewhere", SCOPE.workspace), "C1")


async def posted_papers(harness: Harness, channel: ChannelRef = CHANNEL) -> dict[str, MessageRef]:
    """Run `channel post-now` in `channel`: arXiv id -> the message of each paper posted."""
    await harness.say("channel post-now", admin=True, channel=channel)
    return {paper_id: ref for paper_id, ref in harness.paper_posts() if ref.channel == channel}


async def save_at(
    harness: Harness, moment: datetime, ref: MessageRef, *members: str, added: bool = True
) -> None:
    """Each of `members` reacts with the save emoji on `ref` at `moment`."""
    harness.clock[0] = moment
    for member in members:
        confirmation = await harness.react(ref, user=member, added=added)
        assert confirmation is not None
    harness.clock[0] = NOW


def ranked(answer: Message) -> list[tuple[str, int | None]]:
    return [(card.paper_id, card.saved_by) for card in answer.cards]


def assert_no_member_named(message: Message, *, but: str | None = None) -> None:
    """No member's id anywhere in the message (`but`: the sharer, named as such)."""
    shown = repr(message).replace(f"shared_by='{but}'", "") if but else repr(message)
    for member in (*MEMBERS, "alice"):
        assert member not in shown, member


# /papers team


async def test_team_ranks_by_distinct_members_then_latest_save(harness: Harness) -> None:
    papers = await posted_papers(harness)
    a, b, c, d = (papers[i] for i in ("2605.00101", "2605.00102", "2605.00103", "2605.00104"))
    await save_at(harness, NOW - timedelta(hours=5), a, ANN, BEN, CAL)
    await save_at(harness, NOW - timedelta(hours=4), a, ANN)  # saving again adds no member
    await save_at(harness, NOW - timedelta(hours=3), b, ANN, BEN)
    await save_at(harness, NOW - timedelta(hours=2), c, DEE)
    await save_at(harness, NOW - timedelta(hours=1), d, BEN)

    answer = await harness.say("team", user=DEE)
    assert ranked(answer) == [
        ("2605.00101", 3), ("2605.00102", 2), ("2605.00104", 1), ("2605.00103", 1),
    ]  # fmt: skip
    assert answer.text == "What the team saved in the last 7 days"
    assert answer.shareable and answer.visibility is Visibility.CALLER
    assert answer.note is None and not answer.is_usage_hint
    assert await harness.say("team week", user=ANN) == answer  # the default period
    assert_no_member_named(answer)

    # Unsaving takes a member off; equal counts then go by the latest save.
    await save_at(harness, NOW - timedelta(minutes=30), a, CAL, added=False)
    assert ranked(await harness.say("team")) == [
        ("2605.00102", 2), ("2605.00101", 2), ("2605.00104", 1), ("2605.00103", 1),
    ]  # fmt: skip
    await save_at(harness, NOW - timedelta(minutes=10), c, DEE, added=False)
    assert "2605.00103" not in [paper_id for paper_id, _ in ranked(await harness.say("team"))]


async def test_team_counts_only_saves_within_the_period(harness: Harness) -> None:
    papers = await posted_papers(harness)
    week, month = timedelta(days=PERIOD_DAYS["week"]), timedelta(days=PERIOD_DAYS["month"])
    second = timedelta(seconds=1)
    await save_at(harness, NOW - week, papers["2605.00101"], ANN)  # exactly on the edge: in
    await save_at(harness, NOW - week - second, papers["2605.00102"], ANN, BEN)
    await save_at(harness, NOW - month, papers["2605.00103"], ANN)
    await save_at(harness, NOW - month - second, papers["2605.00104"], ANN, BEN, CAL)

    assert ranked(await harness.say("team")) == [("2605.00101", 1)]
    month_answer = await harness.say("team month")
    assert month_answer.text == "What the team saved in the last 30 days"
    assert ranked(month_answer) == [("2605.00102", 2), ("2605.00101", 1), ("2605.00103", 1)]
    all_answer = await harness.say("team ALL")
    assert all_answer.text == "What the team saved so far"
    assert ranked(all_answer) == [
        ("2605.00104", 3), ("2605.00102", 2), ("2605.00101", 1), ("2605.00103", 1),
    ]  # fmt: skip


async def test_team_shows_at_most_a_page(store: Store, harness: Harness) -> None:
    papers = list((await posted_papers(harness)).values())
    assert len(papers) == 4
    for ref in papers:
        await save_at(harness, NOW - timedelta(hours=1), ref, ANN)
    small = Paperboy(store, harness.platform, config=BotConfig(today_count=3), clock=lambda: NOW)
    answer = await small.handle_command(CommandInvoked(CHANNEL, ANN, "team", False))
    assert len(answer.cards) == 3 and len(ranked(await harness.say("team"))) == 4


async def test_team_never_counts_other_workspaces_or_platforms(harness: Harness) -> None:
    here = await posted_papers(harness)
    there = await posted_papers(harness, OTHER_WORKSPACE)
    elsewhere = await posted_papers(harness, OTHER_PLATFORM)
    assert set(here) == set(there) == set(elsewhere)
    await save_at(harness, NOW - timedelta(hours=3), here["2605.00102"], ANN)
    await save_at(harness, NOW - timedelta(hours=2), there["2605.00101"], ANN, BEN, CAL)
    await save_at(harness, NOW - timedelta(hours=2), elsewhere["2605.00103"], ANN, BEN)
    await save_at(harness, NOW - timedelta(hours=1), there["2605.00102"], BEN, CAL)

    assert ranked(await harness.say("team all")) == [("2605.00102", 1)]
    assert ranked(await harness.say("team all", channel=OTHER_WORKSPACE)) == [
        ("2605.00101", 3), ("2605.00102", 2),
    ]  # fmt: skip
    assert ranked(await harness.say("team", channel=OTHER_PLATFORM)) == [("2605.00103", 2)]


async def test_team_names_nobody_to_admins_or_in_a_shared_copy(harness: Harness) -> None:
    papers = await posted_papers(harness)
    await save_at(harness, NOW - timedelta(hours=2), papers["2605.00101"], ANN, BEN)
    await save_at(harness, NOW - timedelta(hours=1), papers["2605.00103"], CAL)
    as_member = await harness.say("team", user=DEE)
    as_admin = await harness.say("team", user=DEE, admin=True)
    assert as_admin == as_member
    assert_no_member_named(as_admin)

    shared = await harness.bot.share(CommandInvoked(CHANNEL, DEE, "team", True))
    assert shared is not None
    assert shared.visibility is Visibility.PUBLIC and shared.shared_by == DEE
    assert ranked(shared) == [("2605.00101", 2), ("2605.00103", 1)]
    assert shared.cards == as_member.cards and not shared.shareable
    assert_no_member_named(shared, but=DEE)
    # A saver who shares it is named as the sharer only; the others stay unnamed.
    by_saver = await harness.bot.share(CommandInvoked(CHANNEL, ANN, "team", False))
    assert by_saver is not None and by_saver.cards == shared.cards
    assert_no_member_named(by_saver, but=ANN)


async def test_team_with_nothing_saved_says_how_to_save(harness: Harness) -> None:
    before = await table_counts(harness)
    answer = await harness.say("team")
    assert answer.text == "Nobody here has saved a paper in the last 7 days."
    assert answer.lines == ("React with 🔖 on a posted paper to save it.",)
    assert answer.cards == () and not answer.shareable and not answer.is_usage_hint
    assert (await harness.say("team all")).text == "Nobody here has saved a paper yet."
    assert (await harness.say("team month")).text.endswith("in the last 30 days.")
    assert await harness.bot.share(CommandInvoked(CHANNEL, ANN, "team", False)) is None
    assert await table_counts(harness) == before

    papers = await posted_papers(harness)
    await save_at(harness, NOW - timedelta(days=8), papers["2605.00101"], ANN)
    assert (await harness.say("team")).cards == ()  # saved, but not this week
    assert len((await harness.say("team month")).cards) == 1


async def test_team_of_demo_papers_carries_the_demo_note(store: Store) -> None:
    await load_demo(store, NOW.date(), NOW)
    platform = RecordingPlatform()
    bot = Paperboy(store, platform, config=BotConfig(), clock=lambda: NOW)
    await bot.handle_command(CommandInvoked(CHANNEL, ANN, "channel post-now", True))
    _, first, ref = platform.posts[1]  # the first paper, after the header
    assert await react(bot, platform, ReactionChanged(ref, ANN, "bookmark", True)) is not None
    answer = await bot.handle_command(CommandInvoked(CHANNEL, BEN, "team", False))
    assert [(card.paper_id, card.saved_by, card.is_demo) for card in answer.cards] == [
        (first.cards[0].paper_id, 1, True)
    ]
    assert answer.note == DEMO_NOTE


# /papers week and /papers month


async def add_listing(store: Store, day: date, *papers: tuple[str, int | None]) -> None:
    """Record `day`'s list: (arXiv id, upvotes), rank 1 first; unknown ids become papers."""
    async with store.transaction() as repos:
        ids = await repos.papers.upsert(
            [PaperData(arxiv_id, f"Paper {arxiv_id}") for arxiv_id, _ in papers
             if await repos.papers.by_arxiv_id(arxiv_id) is None],
            NOW,
        )  # fmt: skip
        for arxiv_id, _ in papers:
            if arxiv_id not in ids:
                known = await repos.papers.by_arxiv_id(arxiv_id)
                assert known is not None
                ids[arxiv_id] = known.id
        await repos.papers.record_listing(
            day, [(ids[arxiv_id], upvotes) for arxiv_id, upvotes in papers]
        )


def upvoted(answer: Message) -> list[tuple[str, int | None]]:
    return [(card.paper_id, card.upvotes) for card in answer.cards]


async def test_week_and_month_rank_each_paper_once_by_its_highest_upvotes(
    harness: Harness,
) -> None:
    # The harness holds 4 May (2605.00001 87, .00002 41, .00003 23, .00004 -, .00005 9) and
    # 5 May (2605.00101 64, .00102 64, .00103 12, .00104 -). NOW is 5 May.
    store = harness.store
    await add_listing(store, date(2026, 5, 1), ("2605.00005", 200), ("2605.00001", 80))
    await add_listing(store, date(2026, 4, 29), ("2604.00029", 64))  # the week's first day
    await add_listing(store, date(2026, 4, 28), ("2604.00028", 300))  # before the week
    await add_listing(store, date(2026, 4, 6), ("2604.00006", 250))  # the month's first day
    await add_listing(store, date(2026, 4, 5), ("2604.00005", 999))  # before the month
    await add_listing(store, date(2026, 5, 6), ("2605.00601", 900))  # after today

    week = await harness.say("week")
    assert upvoted(week) == [
        ("2605.00005", 200), ("2605.00001", 87),
        ("2605.00101", 64), ("2605.00102", 64),  # listed 5 May, ranked 1 and 2
        ("2604.00029", 64),  # as many, listed earlier
    ]  # fmt: skip
    assert week.text == (
        "Most upvoted papers of the last 7 days from Hugging Face Daily Papers, "
        "29 Apr to 05 May 2026"
    )
    assert week.shareable and week.note is None and week.visibility is Visibility.CALLER

    month = await harness.say("month")
    assert upvoted(month) == [
        ("2604.00028", 300), ("2604.00006", 250), ("2605.00005", 200), ("2605.00001", 87),
        ("2605.00101", 64),
    ]  # fmt: skip
    assert month.text.startswith("Most upvoted papers of the last 30 days")
    assert month.text.endswith("06 Apr to 05 May 2026")

    shared = await harness.bot.share(CommandInvoked(CHANNEL, ANN, "week", False))
    assert shared is not None and shared.cards == week.cards
    assert shared.visibility is Visibility.PUBLIC


async def test_week_lists_papers_without_upvotes_last(harness: Harness) -> None:
    big = Paperboy(
        harness.store, harness.platform, config=BotConfig(today_count=20), clock=lambda: NOW
    )
    answer = await big.handle_command(CommandInvoked(CHANNEL, ANN, "week", False))
    assert upvoted(answer)[-2:] == [("2605.00104", None), ("2605.00004", None)]
    assert len(answer.cards) == 9  # every paper of both days, once


async def test_week_prefers_real_lists_to_the_demo_sample(harness: Harness) -> None:
    await load_demo(harness.store, date(2026, 5, 3), NOW)  # offline once, then back online
    answer = await harness.say("week")
    assert answer.cards and not any(card.is_demo for card in answer.cards)
    assert answer.cards[0].paper_id == "2605.00001" and answer.note is None


async def test_week_and_month_on_the_demo_sample_keep_its_order(store: Store) -> None:
    await load_demo(store, NOW.date(), NOW)
    bot = Paperboy(store, RecordingPlatform(), config=BotConfig(), clock=lambda: NOW)
    for period, days in (("week", 7), ("month", 30)):
        answer = await bot.handle_command(CommandInvoked(CHANNEL, ANN, period, False))
        assert [card.paper_id for card in answer.cards] == [
            "demo-001", "demo-002", "demo-003", "demo-004", "demo-005",
        ]  # fmt: skip
        assert all(card.is_demo and card.upvotes is None for card in answer.cards)
        assert answer.text == f"Papers of the last {days} days from the offline demo sample"
        assert answer.note == DEMO_NOTE and answer.shareable


async def test_week_and_month_without_lists_in_the_window_say_so(store: Store) -> None:
    bot = Paperboy(store, RecordingPlatform(), config=BotConfig(), clock=lambda: NOW)

    async def ask(text: str) -> Message:
        return await bot.handle_command(CommandInvoked(CHANNEL, ANN, text, False))

    for period, days in (("week", 7), ("month", 30)):
        answer = await ask(period)
        assert answer.text == f"No Daily Papers lists from the last {days} days yet."
        assert answer.lines == ("`/papers today` shows the latest one there is.",)
        assert answer.cards == () and not answer.shareable
    await add_listing(store, date(2026, 4, 20), ("2604.00020", 5))
    assert (await ask("week")).cards == ()
    assert upvoted(await ask("month")) == [("2604.00020", 5)]


async def test_bad_arguments_get_a_usage_line_and_change_nothing(harness: Harness) -> None:
    before = await table_counts(harness)
    for text, form in (
        ("team year", "Usage: `/papers team [week|month|all]`"),
        ("team week month", "Usage: `/papers team [week|month|all]`"),
        ("team <!channel>", "Usage: `/papers team [week|month|all]`"),
        ("week 2", "Usage: `/papers week`"),
        ("month please", "Usage: `/papers month`"),
    ):
        answer = await harness.say(text, admin=True)
        assert answer.is_usage_hint and answer.text == form, text
        assert answer.cards == () and not answer.shareable
    assert await harness.bot.share(CommandInvoked(CHANNEL, ANN, "team year", False)) is None
    assert await table_counts(harness) == before


async def test_help_names_the_new_lists(harness: Harness) -> None:
    body = "\n".join((await harness.say("help")).lines)
    for form in ("/papers week", "/papers month", "/papers team [week|month|all]"):
        assert form in body


# Storage


async def test_saves_have_an_index_for_the_time_window(store: Store) -> None:
    async with store.engine.connect() as conn:
        indexes = await conn.run_sync(lambda sync: inspect(sync).get_indexes("saves"))
    columns = {index["name"]: index["column_names"] for index in indexes}
    assert columns["ix_saves_workspace_saved_at"] == [
        "platform", "workspace", "saved_at", "paper_id",
    ]  # fmt: skip
    if store.engine.dialect.name != "sqlite":
        return
    # SQLite counts a week's saves from a range of the index alone, never reading the table.
    statement = team_saves_statement("test", "T1", NOW - timedelta(days=7), 5)
    compiled = statement.compile(dialect=store.engine.dialect)
    values = [compiled.params[name] for name in compiled.positiontup or ()]
    values = [value.isoformat(" ") if isinstance(value, datetime) else value for value in values]
    async with store.engine.connect() as conn:
        plan = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", tuple(values))
        details = [str(row[-1]) for row in plan]
    assert any(
        "saves USING COVERING INDEX ix_saves_workspace_saved_at" in detail
        and "saved_at>?" in detail
        for detail in details
    ), details


async def test_a_member_who_ran_forget_me_is_counted_no_more(harness: Harness) -> None:
    refs = await posted_papers(harness)
    ref = refs["2605.00101"]
    await save_at(harness, NOW - timedelta(hours=2), ref, ANN, BEN)
    assert ranked(await harness.say("team")) == [("2605.00101", 2)]
    assert not (await harness.say("forget me confirm", user=ANN)).is_usage_hint
    assert ranked(await harness.say("team all")) == [("2605.00101", 1)]
    assert (await harness.bot.weekly.post(CHANNEL)).papers >= 1
    (weekly,) = [m for _, m, _ in harness.platform.posts if m.text.startswith("The week in")]
    assert [(c.paper_id, c.saved_by) for c in weekly.cards if c.saved_by] == [("2605.00101", 1)]
