"""A DM digest of ten papers with long summaries on Discord, end to end: the real discord.py
client against the fake Discord (which refuses what Discord refuses), a real store, the
scheduled delivery's ledger. The digest goes out over several messages, each within
Discord's limits, every summary whole, and a retry after a failure mid-way sends each
message once."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import discord

from bot.delivery.runner import DeliveryPolicy
from bot.sources.huggingface import HuggingFaceClient
from bot.sources.ingest import ingest_days
from storage.deliveries import DeliveryKey, Status
from tests.core_fixtures import NOW
from tests.discord_fixtures import DiscordHarness
from tests.fakes.discord import GUILD_ID, USER_ID, FakeDiscord
from tests.fakes.huggingface import FakeHuggingFace
from tests.long_papers import long_item, long_summary, long_title

DAY = "2026-05-05"
KEY = DeliveryKey("digest", "discord", str(GUILD_ID), str(USER_ID), DAY)
PAPERS = range(1, 11)


async def follow_ten_long_papers(harness: DiscordHarness, fake_hf: FakeHuggingFace) -> None:
    """Ten long papers join the day's list; the user follows the topic only they are on and
    gets a daily digest."""
    fake_hf.days[DAY] = fake_hf.days[DAY] + [long_item(n, DAY) for n in PAPERS]
    async with HuggingFaceClient(fake_hf.base_url, timeout=2.0, max_retries=0) as client:
        await ingest_days(harness.store, client, date(2026, 5, 5), date(2026, 5, 5), NOW)
    await harness.command("follow", topic="streaming speech recognition")
    await harness.command("digest daily", time="12:00", timezone="UTC")


def digest_messages(fake: FakeDiscord) -> list[dict[str, Any]]:
    """The messages in the user's DM channel, oldest first."""
    return fake.messages[int(fake.dm_channel_for(USER_ID)["id"])]


def assert_within_discord_limits(message: dict[str, Any]) -> None:
    """Discord's documented limits, with the embeds as discord.py reads them."""
    embeds = [discord.Embed.from_dict(embed) for embed in message["embeds"]]
    assert len(message["content"]) <= 2000 and len(embeds) <= 10
    assert sum(len(embed) for embed in embeds) <= 6000
    for embed in embeds:
        assert 0 < len(embed.title or "") <= 256 and len(embed.description or "") <= 4096
        assert len(embed.fields) <= 25 and len(embed.footer.text or "") <= 2048
        assert all(len(f.name or "") <= 256 and len(f.value or "") <= 1024 for f in embed.fields)


def shown_papers(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(title, summary) of every embed, markdown escapes undone."""
    return [
        (re.sub(r"\\(.)", r"\1", embed["title"]), embed.get("description", ""))
        for message in messages
        for embed in message["embeds"]
    ]


def assert_spread(
    messages: list[dict[str, Any]], papers: list[tuple[str, str]], heading: str
) -> None:
    """A list of long papers as Discord shows it, spread: several messages, each within
    Discord's limits, every paper once and in order with its whole summary, the heading on
    the first message only, a nonce of its own for each."""
    assert len(messages) > 1
    for message in messages:
        assert_within_discord_limits(message)
    assert shown_papers(messages) == papers
    assert messages[0]["content"].startswith(heading)
    assert not any(message["content"] for message in messages[1:])
    assert len({message["nonce"] for message in messages}) == len(messages)


def expected_papers() -> list[tuple[str, str]]:
    """The ten papers, most upvoted first, each with its whole summary."""
    return [(long_title(n), long_summary(n)) for n in PAPERS]


async def test_a_long_digest_spreads_over_messages_with_every_summary_whole(
    discord_harness: DiscordHarness, fake_hf: FakeHuggingFace
) -> None:
    await follow_ten_long_papers(discord_harness, fake_hf)
    runner = discord_harness.discord.bot.scheduler(
        worker="w1", policy=DeliveryPolicy(), clock=lambda: NOW
    ).runner
    assert await runner.run(KEY) is Status.SENT
    messages = digest_messages(discord_harness.fake)
    assert_spread(messages, expected_papers(), "Your paperboy digest: 10 new papers")


async def test_a_retry_after_a_failure_mid_digest_sends_each_message_once(
    discord_harness: DiscordHarness, fake_hf: FakeHuggingFace
) -> None:
    await follow_ten_long_papers(discord_harness, fake_hf)
    fake = discord_harness.fake
    dm = fake.dm_channel_for(USER_ID)["id"]
    # The first message goes out; Discord refuses the second (the worker may as well have
    # died there), and the retry comes after Discord forgot the nonces.
    fake.fail_next("POST", rf"/channels/{dm}/messages", 503, after=1, times=10)
    clock = [NOW]
    scheduler = discord_harness.discord.bot.scheduler(
        worker="w1", policy=DeliveryPolicy(), clock=lambda: clock[0]
    )
    assert await scheduler.runner.run(KEY) is Status.RETRY
    assert len(digest_messages(fake)) == 1
    fake.faults.clear()
    fake.forget_nonces()
    clock[0] = NOW + timedelta(minutes=5)
    await scheduler.retry_due()
    messages = digest_messages(fake)
    for message in messages:
        assert_within_discord_limits(message)
    assert shown_papers(messages) == expected_papers()  # none twice, none missing
    assert [bool(message["content"]) for message in messages] == [True] + [False] * (
        len(messages) - 1
    )  # the heading once, on the first
    async with discord_harness.store.reading() as repos:
        row = await repos.deliveries.latest("digest", "discord", str(GUILD_ID), str(USER_ID))
    assert row is not None and (row.status, row.attempts) == ("sent", 2)
    assert row.detail == "10 papers"
