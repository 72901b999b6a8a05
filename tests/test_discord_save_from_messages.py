"""Saving papers from anyone's Discord message: the "Save paper" message context menu (no
privileged intent needed) and, with PAPERBOY_DISCORD_MESSAGE_CONTENT on, the save reaction on
a member's message; the real discord.py client on the fake Discord, papers not stored
fetched from the fake Hugging Face."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from adapters.discord.client import SAVE_PAPER, create_discord_bot
from adapters.discord.gateway import LeasedGateway
from bot.sources.lookup import PaperLookup
from config import ConfigError
from storage.store import Store
from tests.core_fixtures import NOW, stocked
from tests.discord_fixtures import DiscordHarness, discord_settings, running
from tests.fakes.discord import (
    CHANNEL_ID,
    GUILD_ID,
    USER_ID,
    Call,
    FakeDiscord,
    message_command,
    reaction_add,
    reaction_remove,
    user_object,
)
from tests.fakes.huggingface import FakeHuggingFace
from tests.test_discord import EPHEMERAL, data, text_of

MESSAGE_CONTENT = 1 << 15  # the privileged intent's bit in IDENTIFY
AUTHOR = USER_ID + 11  # the member who posted the links
STORED = "2605.00101"  # Self-Speculative Decoding Without a Draft Model, stored
FETCHED = "2405.90001"  # Speculative Retrieval: only on Hugging Face, a day never ingested
LINKS = f"look: https://arxiv.org/abs/{STORED}v2 and <https://huggingface.co/papers/{FETCHED}>"


@contextlib.asynccontextmanager
async def harness_for(
    store: Store, fake_hf: FakeHuggingFace, fake_discord: FakeDiscord, *, message_content: bool
) -> AsyncIterator[DiscordHarness]:
    async with stocked(store, fake_hf) as source:
        fake_hf.load_day("2024-05-27", "legacy-2024-05-27.json")  # served, never ingested
        settings = discord_settings(
            fake_discord, fake_hf, PAPERBOY_DISCORD_MESSAGE_CONTENT=message_content
        )
        discord_bot = create_discord_bot(
            settings, store, source=source, lookup=PaperLookup(source), clock=lambda: NOW,
            guild_ready_timeout=0.05,
        )  # fmt: skip
        async with running(discord_bot, store):
            yield DiscordHarness(discord_bot, fake_discord, store)


@pytest.fixture
async def harness(
    store: Store, fake_hf: FakeHuggingFace, fake_discord: FakeDiscord
) -> AsyncIterator[DiscordHarness]:
    """The bot with the message-content intent asked for."""
    async with harness_for(store, fake_hf, fake_discord, message_content=True) as harness:
        yield harness


@pytest.fixture
async def harness_without_intent(
    store: Store, fake_hf: FakeHuggingFace, fake_discord: FakeDiscord
) -> AsyncIterator[DiscordHarness]:
    async with harness_for(store, fake_hf, fake_discord, message_content=False) as harness:
        yield harness


def members_message(harness: DiscordHarness, content: str) -> dict[str, Any]:
    return harness.fake.add_message(CHANNEL_ID, content, author=user_object(AUTHOR))


async def saved_ids(harness: DiscordHarness, user: int = USER_ID) -> set[str]:
    async with harness.store.reading() as repos:
        saved = await repos.users.saved("discord", str(GUILD_ID), str(user))
    return {paper.arxiv_id for paper in saved}


def reactions_acted_on(harness: DiscordHarness, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Grows by one each time the client has had a reaction taken in and acted on."""
    acted: list[str] = []
    act_now = harness.discord.bot.inbox.act_now

    async def counted(platform: str) -> None:
        await act_now(platform)
        acted.append(platform)

    monkeypatch.setattr(harness.discord.bot.inbox, "act_now", counted)
    return acted


def told(harness: DiscordHarness, user: int = USER_ID) -> list[Call]:
    return [call for call in harness.fake.calls if dm_to(harness, user)(call)]


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def message_reads(harness: DiscordHarness, message: dict[str, Any]) -> list[Call]:
    return harness.fake.calls_to("GET", rf"/channels/{CHANNEL_ID}/messages/{message['id']}")


def dm_to(harness: DiscordHarness, user: int) -> Callable[[Call], bool]:
    path = f"/channels/{harness.fake.dm_channel_for(user)['id']}/messages"
    return lambda call: call.method == "POST" and call.path == path and call.status < 400


async def test_the_context_menu_saves_a_members_links_privately(
    harness_without_intent: DiscordHarness,
) -> None:
    harness = harness_without_intent
    message = members_message(harness, LINKS)
    answer = await harness.interact(message_command(SAVE_PAPER, message))
    assert data(answer)["flags"] & EPHEMERAL
    assert text_of(answer).startswith("Saved 2 papers")
    assert "Speculative Retrieval" in text_of(answer) and "Self-Speculative" in text_of(answer)
    assert await saved_ids(harness) == {STORED, FETCHED}
    assert await saved_ids(harness, AUTHOR) == set()
    assert message_reads(harness, message) == []  # the interaction carried the content


async def test_the_context_menu_on_a_message_without_links_says_so(
    harness_without_intent: DiscordHarness,
) -> None:
    harness = harness_without_intent
    message = members_message(harness, "lunch at noon? https://example.com/menu")
    answer = await harness.interact(message_command(SAVE_PAPER, message))
    assert data(answer)["flags"] & EPHEMERAL
    assert "no paper link" in text_of(answer)
    assert await saved_ids(harness) == set()


async def test_the_context_menu_on_a_daily_post_saves_its_paper(
    harness_without_intent: DiscordHarness,
) -> None:
    harness = harness_without_intent
    await harness.command("channel post-now", admin=True)
    public = [m for m in harness.fake.messages[CHANNEL_ID] if not m["flags"] & EPHEMERAL]
    paper_post = public[1]  # an embed only, no content: its links are the embed's
    answer = await harness.interact(message_command(SAVE_PAPER, paper_post))
    assert text_of(answer).startswith("Saved 1 paper")
    [saved] = await saved_ids(harness)
    assert saved in paper_post["embeds"][0]["url"]


async def test_with_the_intent_a_reaction_on_a_members_message_saves_and_unsaves(
    harness: DiscordHarness,
) -> None:
    fake = harness.fake
    assert fake.identifies[0]["intents"] & MESSAGE_CONTENT
    message = members_message(harness, LINKS)
    start = len(fake.calls)
    add = reaction_add(message_id=int(message["id"]), message_author_id=AUTHOR)
    await fake.dispatch("MESSAGE_REACTION_ADD", add)
    dm = await fake.wait_for_call(dm_to(harness, USER_ID), start=start)
    assert text_of(dm).startswith("Saved 2 papers") and "Speculative Retrieval" in text_of(dm)
    assert len(message_reads(harness, message)) == 1
    assert await saved_ids(harness) == {STORED, FETCHED}

    start = len(fake.calls)
    await fake.dispatch("MESSAGE_REACTION_REMOVE", reaction_remove(message_id=int(message["id"])))
    dm = await fake.wait_for_call(dm_to(harness, USER_ID), start=start)
    assert text_of(dm).startswith("Removed from your saved papers: 2 papers")
    assert await saved_ids(harness) == set()


async def test_with_the_intent_a_deleted_or_linkless_message_gets_nothing(
    harness: DiscordHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    acted = reactions_acted_on(harness, monkeypatch)
    linkless = members_message(harness, "nice talk yesterday")
    gone = 1_100_000_000_000_000_999  # never posted: GET answers 404 Unknown Message
    with caplog.at_level(logging.INFO):
        for message_id in (int(linkless["id"]), gone):
            add = reaction_add(message_id=message_id, message_author_id=AUTHOR)
            await harness.fake.dispatch("MESSAGE_REACTION_ADD", add)
        await eventually(lambda: len(acted) == 2)
    [line] = [r for r in caplog.records if "cannot read message" in r.getMessage()]
    assert f"{gone}" in line.getMessage() and "404" in line.getMessage()
    assert line.exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert told(harness) == []  # nothing to say
    assert len(message_reads(harness, linkless)) == 1
    assert [c.status for c in harness.fake.calls_to("GET", rf"/channels/\d+/messages/{gone}")] == [
        404
    ]
    assert await saved_ids(harness) == set()


async def test_with_the_intent_a_reaction_on_the_bots_list_of_papers_saves_none_of_them(
    harness: DiscordHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    acted = reactions_acted_on(harness, monkeypatch)
    shared = harness.fake.add_message(CHANNEL_ID, f"Shared: {LINKS}")  # the bot's own message
    await harness.fake.dispatch("MESSAGE_REACTION_ADD", reaction_add(message_id=int(shared["id"])))
    await eventually(lambda: len(acted) == 1)
    assert await saved_ids(harness) == set()  # one reaction never saves a whole list
    await harness.fake.dispatch(
        "MESSAGE_REACTION_REMOVE", reaction_remove(message_id=int(shared["id"]))
    )
    await eventually(lambda: len(acted) == 2)
    assert told(harness) == []


async def test_without_the_intent_reactions_on_members_messages_are_ignored(
    harness_without_intent: DiscordHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = harness_without_intent
    assert not harness.fake.identifies[0]["intents"] & MESSAGE_CONTENT
    acted = reactions_acted_on(harness, monkeypatch)
    message = members_message(harness, LINKS)
    add = reaction_add(message_id=int(message["id"]), message_author_id=AUTHOR)
    await harness.fake.dispatch("MESSAGE_REACTION_ADD", add)
    await eventually(lambda: len(acted) == 1)
    assert told(harness) == []
    assert message_reads(harness, message) == []
    assert await saved_ids(harness) == set()


async def test_asking_for_an_intent_the_portal_refuses_is_one_clear_setting_error(
    store: Store, fake_hf: FakeHuggingFace, fake_discord: FakeDiscord
) -> None:
    fake_discord.privileged_intents_allowed = 0  # Message Content Intent switched off
    settings = discord_settings(fake_discord, fake_hf, PAPERBOY_DISCORD_MESSAGE_CONTENT=True)
    discord_bot = create_discord_bot(settings, store, source=None, guild_ready_timeout=0.05)
    gateway = LeasedGateway(discord_bot, store, ttl=60)
    with pytest.raises(ConfigError, match=r"^PAPERBOY_DISCORD_MESSAGE_CONTENT: .*Message Content"):
        await asyncio.wait_for(gateway.run(), timeout=10)
    await discord_bot.client.close()
