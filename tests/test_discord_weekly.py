"""A weekly team post of ten papers with long summaries on Discord, end to end: the real
discord.py client against the fake Discord (which refuses what Discord refuses), a real store,
the scheduled delivery's ledger. The post goes out over several messages, each within
Discord's limits, every summary whole, and a retry after a failure mid-way sends each paper
once."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from bot.delivery.runner import DeliveryPolicy
from bot.sources.huggingface import HuggingFaceClient
from bot.sources.ingest import ingest_days
from storage.deliveries import WEEKLY, DeliveryKey, Status
from tests.core_fixtures import NOW
from tests.discord_fixtures import DiscordHarness
from tests.fakes.discord import CHANNEL_ID, GUILD_ID, USER_ID, FakeDiscord
from tests.fakes.huggingface import FakeHuggingFace
from tests.long_papers import long_item, long_summary, long_title
from tests.test_discord_digest import assert_spread, assert_within_discord_limits, shown_papers

DAY = "2026-05-05"
KEY = DeliveryKey(WEEKLY, "discord", str(GUILD_ID), str(CHANNEL_ID), DAY)
SAVED = range(1, 6)  # the team's part
TRENDING = range(6, 11)  # the most upvoted of the rest
TITLE = "The week in papers"


async def a_week_of_long_papers(harness: DiscordHarness, fake_hf: FakeHuggingFace) -> None:
    """Ten long papers join the day's list (the most upvoted of the week); a member saved the
    first five, paper 1 last, so the team's part lists them in order."""
    fake_hf.days[DAY] = fake_hf.days[DAY] + [long_item(n, DAY) for n in (*SAVED, *TRENDING)]
    async with HuggingFaceClient(fake_hf.base_url, timeout=2.0, max_retries=0) as client:
        await ingest_days(harness.store, client, date(2026, 5, 5), date(2026, 5, 5), NOW)
    async with harness.store.transaction() as repos:
        for n in SAVED:
            paper = await repos.papers.by_arxiv_id(f"2605.{20100 + n}")
            assert paper is not None
            saved_at = NOW - timedelta(minutes=n)
            await repos.users.save("discord", str(GUILD_ID), str(USER_ID), paper.id, saved_at)


def channel_messages(fake: FakeDiscord) -> list[dict[str, Any]]:
    return fake.messages[CHANNEL_ID]


def expected_papers() -> list[tuple[str, str]]:
    """The team's five, then the five most upvoted, each with its whole summary."""
    return [(long_title(n), long_summary(n)) for n in (*SAVED, *TRENDING)]


async def test_a_long_weekly_post_spreads_over_messages_with_every_summary_whole(
    discord_harness: DiscordHarness, fake_hf: FakeHuggingFace
) -> None:
    await a_week_of_long_papers(discord_harness, fake_hf)
    runner = discord_harness.discord.bot.scheduler(
        worker="w1", policy=DeliveryPolicy(), clock=lambda: NOW
    ).runner
    assert await runner.run(KEY) is Status.SENT
    messages = channel_messages(discord_harness.fake)
    assert_spread(messages, expected_papers(), TITLE)
    footers = [embed.get("footer", {}).get("text", "") for m in messages for embed in m["embeds"]]
    assert [footer.startswith("saved by 1") for footer in footers] == [True] * 5 + [False] * 5
    async with discord_harness.store.reading() as repos:
        row = await repos.deliveries.latest(WEEKLY, "discord", str(GUILD_ID), str(CHANNEL_ID))
    assert row is not None and (row.status, row.detail) == ("sent", "10 papers")
    assert row.message_ref == messages[0]["id"]


async def test_a_retry_after_a_failure_mid_post_sends_each_paper_once(
    discord_harness: DiscordHarness, fake_hf: FakeHuggingFace
) -> None:
    await a_week_of_long_papers(discord_harness, fake_hf)
    fake = discord_harness.fake
    # The first message goes out; Discord refuses the second (the worker may as well have
    # died there), and the retry comes after Discord forgot the nonces.
    fake.fail_next("POST", rf"/channels/{CHANNEL_ID}/messages", 503, after=1, times=10)
    clock = [NOW]
    scheduler = discord_harness.discord.bot.scheduler(
        worker="w1", policy=DeliveryPolicy(), clock=lambda: clock[0]
    )
    assert await scheduler.runner.run(KEY) is Status.RETRY
    (first,) = channel_messages(fake)
    assert first["content"].startswith(TITLE)
    fake.faults.clear()
    fake.forget_nonces()
    clock[0] = NOW + timedelta(minutes=5)
    await scheduler.retry_due()
    messages = channel_messages(fake)
    assert len(messages) > 2  # the rest, itself more than one message holds
    for message in messages:
        assert_within_discord_limits(message)
    assert shown_papers(messages) == expected_papers()  # none twice, none missing
    assert [bool(message["content"]) for message in messages] == [True] + [False] * (
        len(messages) - 1
    )  # the heading once, on the first
    async with discord_harness.store.reading() as repos:
        row = await repos.deliveries.latest(WEEKLY, "discord", str(GUILD_ID), str(CHANNEL_ID))
    assert row is not None and (row.status, row.attempts) == ("sent", 2)
    assert row.detail == "10 papers"
