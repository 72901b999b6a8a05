"""The real discord.py client against the fake Discord: a removed server stops everything and
comes back on rejoining, a deleted channel or a refused send (403 50001/50013, 404 10003)
stops its posts with one DM in words, and a member's own data (`export mine` as a private
attachment, `forget me`)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable

import pytest

from adapters.discord.client import DiscordBot, create_discord_bot
from adapters.discord.gateway import LEASE_PREFIX
from bot.delivery.slots import load_slots
from storage.store import Store
from tests.core_fixtures import NOW, stocked
from tests.discord_fixtures import DiscordHarness, discord_settings, running
from tests.fakes.discord import (
    CHANNEL_ID,
    GUILD_ID,
    USER_ID,
    Call,
    FakeDiscord,
    guild_object,
    text_channel_object,
)
from tests.fakes.huggingface import FakeHuggingFace
from tests.test_discord import EPHEMERAL, data, text_of

WORKSPACE = str(GUILD_ID)


async def eventually(check: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait until `check()` (sync or async) is true: gateway events are handled as they come."""
    for _ in range(int(timeout / 0.02)):
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("condition not met")


async def job_ids(store: Store) -> list[str]:
    return sorted(slot.job_id for slot in await load_slots(store, "discord"))


async def has_left(store: Store) -> bool:
    async with store.reading() as repos:
        return await repos.workspaces.has_left("discord", WORKSPACE)


def dms(harness: DiscordHarness) -> list[Call]:
    dm_channel = harness.fake.dm_channel_for(USER_ID)["id"]
    return harness.fake.calls_to("POST", rf"/channels/{dm_channel}/messages")


def assert_in_words(text: str) -> None:
    """No raw id (but inside a channel mention, which Discord shows as the name) and no
    error code."""
    bare = re.sub(r"<#\d+>", "", text)
    assert not re.search(r"\d{5,}", bare), text
    assert "missing_" not in bare and "unknown_" not in bare, text


async def turn_on_both(harness: DiscordHarness) -> None:
    await harness.command("channel on", admin=True, time="09:00")
    await harness.command("channel weekly", admin=True, action="on", day="fri", time="16:00")
    await harness.command("digest daily", time="08:00")
    assert len(await job_ids(harness.store)) == 3


async def test_a_removed_server_stops_everything_until_it_adds_the_bot_back(
    discord_harness: DiscordHarness,
) -> None:
    await turn_on_both(discord_harness)
    before = await job_ids(discord_harness.store)
    await discord_harness.fake.dispatch("GUILD_DELETE", {"id": WORKSPACE})
    await eventually(lambda: has_left(discord_harness.store))
    assert await job_ids(discord_harness.store) == []
    assert dms(discord_harness) == []  # nobody to tell: the bot is out of the server
    await discord_harness.fake.dispatch("GUILD_CREATE", guild_object())
    await eventually(lambda: job_ids(discord_harness.store))
    assert await job_ids(discord_harness.store) == before
    assert not await has_left(discord_harness.store)


async def test_a_server_that_removed_the_bot_while_no_worker_ran_stops_at_the_next_start(
    store: Store, fake_hf: FakeHuggingFace, fake_discord: FakeDiscord
) -> None:
    """Discord tells of a removal only to a connected bot; the next READY lists the servers
    the bot is in, and one with posts scheduled that is not there has removed it."""
    async with stocked(store, fake_hf) as source:
        settings = discord_settings(fake_discord, fake_hf)

        def worker() -> DiscordBot:
            return create_discord_bot(
                settings, store, source=source, clock=lambda: NOW, guild_ready_timeout=0.05
            )

        first = worker()
        async with running(first, store):
            harness = DiscordHarness(first, fake_discord, store)
            await turn_on_both(harness)
            before = await job_ids(store)
        async with store.transaction() as repos:  # the gateway free at once, as at a restart
            await repos.leases.drop(f"{LEASE_PREFIX}{first.client.application_id}")
        fake_discord.guilds.pop(GUILD_ID)  # while no worker runs, the server removes the bot
        async with running(worker(), store):
            await eventually(lambda: has_left(store))
            assert await job_ids(store) == []
            assert dms(harness) == []  # nobody to tell: the bot is out of the server
            fake_discord.guilds[GUILD_ID] = guild_object()  # added back
            await fake_discord.dispatch("GUILD_CREATE", guild_object())
            await eventually(lambda: job_ids(store))
            assert await job_ids(store) == before
            assert not await has_left(store)


async def test_an_unavailable_server_is_not_a_removed_one(discord_harness: DiscordHarness) -> None:
    await turn_on_both(discord_harness)
    await discord_harness.fake.dispatch("GUILD_DELETE", {"id": WORKSPACE, "unavailable": True})
    await discord_harness.command("help")  # a round trip: the event was handled before it
    assert not await has_left(discord_harness.store)


async def test_a_deleted_channel_stops_its_posts_with_one_dm(
    discord_harness: DiscordHarness,
) -> None:
    await turn_on_both(discord_harness)
    await discord_harness.fake.dispatch("CHANNEL_DELETE", text_channel_object(CHANNEL_ID))
    await eventually(lambda: len(dms(discord_harness)) == 1)
    assert await job_ids(discord_harness.store) == [f"digest:discord:{WORKSPACE}:{USER_ID}"]
    [notice] = dms(discord_harness)
    text = text_of(notice)
    assert f"<#{CHANNEL_ID}> was deleted, so I stopped its daily post and its weekly post." in text
    assert "`/papers channel on`" in text
    assert_in_words(text)


@pytest.mark.parametrize(
    ("status", "code", "words"),
    [
        (403, 50001, "I was removed from"),
        (403, 50013, "I was removed from"),
        (404, 10003, "was deleted"),
    ],
)
async def test_a_refused_send_stops_the_channel_once(
    discord_harness: DiscordHarness, status: int, code: int, words: str
) -> None:
    await turn_on_both(discord_harness)
    discord_harness.fake.block_channel(CHANNEL_ID, status, {"message": "Refused", "code": code})
    answer = await discord_harness.command("channel post-now", admin=True)
    assert "its daily post is now off" in text_of(answer)
    again = await discord_harness.command("channel post-now", admin=True)
    assert "its daily post is now off" in text_of(again)
    [notice] = dms(discord_harness)  # told once, however often the send fails
    text = text_of(notice)
    assert words in text and f"<#{CHANNEL_ID}>" in text
    assert "its daily post and its weekly post" in text
    assert_in_words(text)
    assert await job_ids(discord_harness.store) == [f"digest:discord:{WORKSPACE}:{USER_ID}"]


async def test_export_mine_is_a_private_json_attachment(discord_harness: DiscordHarness) -> None:
    await discord_harness.command("follow", topic="diffusion")
    await discord_harness.command("save", papers="2605.00101")
    answer = await discord_harness.command("export", format="mine")
    assert data(answer)["flags"] & EPHEMERAL
    [(filename, content)] = answer.files
    assert filename == "paperboy-my-data.json"
    exported = json.loads(content)
    assert exported["user"] == str(USER_ID) and exported["workspace"] == WORKSPACE
    assert exported["follows"] == ["diffusion"]
    assert [p["arxiv_id"] for p in exported["saved_papers"]] == ["2605.00101"]
    assert "1 saved paper, 1 followed topic" in text_of(answer)


async def test_forget_asks_then_deletes(discord_harness: DiscordHarness) -> None:
    await discord_harness.command("follow", topic="diffusion")
    asked = await discord_harness.command("forget")
    assert "/papers forget me confirm" in text_of(asked)
    assert "diffusion" in text_of(await discord_harness.command("following"))
    done = await discord_harness.command("forget", confirm=True)
    assert "Deleted everything stored about you" in text_of(done)
    assert "follow no topics" in text_of(await discord_harness.command("following"))
