"""Slash-command answers longer than one Discord message, end to end: the real discord.py
client against the fake Discord (which refuses what Discord refuses, follow-ups included), a
real store. A long answer arrives whole as the interaction's response plus follow-ups, in
order, each within Discord's limits and as private as the answer; a short one stays one
message; a follow-up that fails is one log line."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import date, timedelta
from typing import Any

import pytest

from adapters.discord import client as discord_client
from bot.events import ChannelRef, CommandInvoked, Scope
from bot.sources.huggingface import HuggingFaceClient
from bot.sources.ingest import ingest_days
from tests.core_fixtures import NOW
from tests.discord_fixtures import TIMEOUT, DiscordHarness, papers_options
from tests.fakes.discord import (
    APPLICATION_ID,
    CHANNEL_ID,
    GUILD_ID,
    USER_ID,
    Call,
    component,
    slash_command,
)
from tests.fakes.huggingface import FakeHuggingFace
from tests.long_papers import long_item, long_summary, long_title
from tests.test_discord import EPHEMERAL
from tests.test_discord_digest import assert_within_discord_limits, shown_papers

DAY = "2026-05-05"
PAPERS = range(1, 11)
LOADING = 1 << 7
FOLLOW_UPS = rf"/webhooks/{APPLICATION_ID}/[^/]+"
OTHER_USER = USER_ID + 7
# discord.py runs a command's callback, and a button's, in a task named so.
HANDLERS = ("CommandTree-invoker", "discord-ui-dynamic-item-")


async def handled() -> None:
    """Until every running command and button handler ended: all their follow-ups are out."""
    running = [t for t in asyncio.all_tasks() if t.get_name().startswith(HANDLERS)]
    if running:
        await asyncio.wait(running, timeout=TIMEOUT)


async def answer_to(harness: DiscordHarness, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages answering the interaction `payload`, in the order they were sent, once
    its handler ended."""
    await harness.fake.interact(payload)
    await harness.fake.wait_for_response(payload, timeout=TIMEOUT)
    await handled()
    return [
        message
        for message in harness.fake.messages[CHANNEL_ID]
        if (message.get("interaction_metadata") or {}).get("id") == payload["id"]
    ]


def papers(words: str, /, **values: str | int) -> dict[str, Any]:
    return slash_command("papers", papers_options(words, **values))


def follow_ups(harness: DiscordHarness, payload: dict[str, Any]) -> list[Call]:
    return [
        call
        for call in harness.fake.calls_to("POST", FOLLOW_UPS)
        if call.path.endswith(payload["token"])
    ]


def plain(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


async def ten_long_papers_saved(harness: DiscordHarness, fake_hf: FakeHuggingFace) -> None:
    """Ten papers with the longest texts Daily Papers carries join the day's list (the most
    upvoted of it), and the member saved them, paper 1 last: `saved` lists 1 to 10."""
    fake_hf.days[DAY] = fake_hf.days[DAY] + [long_item(n, DAY) for n in PAPERS]
    async with HuggingFaceClient(fake_hf.base_url, timeout=2.0, max_retries=0) as client:
        await ingest_days(harness.store, client, date(2026, 5, 5), date(2026, 5, 5), NOW)
    async with harness.store.transaction() as repos:
        for n in PAPERS:
            paper = await repos.papers.by_arxiv_id(f"2605.{20100 + n}")
            assert paper is not None
            saved_at = NOW - timedelta(minutes=n)
            await repos.users.save("discord", str(GUILD_ID), str(USER_ID), paper.id, saved_at)


def assert_whole_and_private(messages: list[dict[str, Any]], calls: list[Call]) -> None:
    """Several messages, each within Discord's limits, ephemeral, sent with mentions off."""
    assert len(messages) > 1
    for message in messages:
        assert_within_discord_limits(message)
        assert message["flags"] & EPHEMERAL and not message["flags"] & LOADING
    for call in calls:
        body = call.json.get("data", call.json)
        assert body["allowed_mentions"] == {"parse": []}


async def test_a_long_saved_list_arrives_whole_over_private_follow_ups(
    discord_harness: DiscordHarness, fake_hf: FakeHuggingFace
) -> None:
    await ten_long_papers_saved(discord_harness, fake_hf)
    payload = papers("saved")
    messages = await answer_to(discord_harness, payload)
    response = await discord_harness.fake.wait_for_response(payload)
    sent = follow_ups(discord_harness, payload)
    assert response.json["type"] == 4  # the response, then a follow-up per further message
    assert len(sent) == len(messages) - 1 and all(call.status < 400 for call in sent)
    assert_whole_and_private(messages, [response, *sent])
    # Every paper once, in order, its whole summary: nothing cut, nothing listed by title.
    assert shown_papers(messages) == [(long_title(n), long_summary(n)) for n in PAPERS]
    assert messages[0]["content"] == "Your saved papers (10)"
    assert not any(message["content"] for message in messages[1:])


async def test_a_deferred_long_answer_ends_thinking_then_follows_up_privately(
    discord_harness: DiscordHarness, fake_hf: FakeHuggingFace, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ten_long_papers_saved(discord_harness, fake_hf)
    monkeypatch.setattr(discord_client, "DEFER_AFTER", 0.0)  # always "thinking..." first
    ids = " ".join(f"2605.{20100 + n}" for n in PAPERS)
    payload = papers("save", papers=ids)
    messages = await answer_to(discord_harness, payload)
    response = await discord_harness.fake.wait_for_response(payload)
    assert response.json["type"] == 5 and response.json["data"]["flags"] & EPHEMERAL
    record = discord_harness.fake.interactions[payload["id"]]
    assert messages[0]["id"] == record.original_message_id  # the "thinking" message, edited
    assert_whole_and_private(messages, follow_ups(discord_harness, payload))
    assert shown_papers(messages) == [(long_title(n), long_summary(n)) for n in PAPERS]
    assert plain(messages[0]["content"]).startswith("Already in your saved papers: 10 papers")
    assert "See them all with `/papers saved`." in plain(messages[0]["content"])


async def test_a_long_list_of_lines_spreads_with_none_cut(
    discord_harness: DiscordHarness,
) -> None:
    topics = [f"topic {n:02d} " + "on efficient long context inference " * 2 for n in range(25)]
    topics = [topic[:80].strip() for topic in topics]
    channel = ChannelRef(Scope("discord", str(GUILD_ID)), str(CHANNEL_ID))
    for topic in topics:
        event = CommandInvoked(channel, str(USER_ID), f"follow {topic}", False)
        answer = await discord_harness.discord.bot.handle_command(event)
        assert "now follow" in answer.text
    payload = papers("following")
    messages = await answer_to(discord_harness, payload)
    assert_whole_and_private(messages, [await discord_harness.fake.wait_for_response(payload)])
    lines = [line for message in messages for line in plain(message["content"]).split("\n")]
    assert lines == ["You follow 25 topics:", *sorted(topics)]  # each once, in order, whole
    assert not any("…" in message["content"] for message in messages)


async def test_a_short_answer_is_still_one_message(discord_harness: DiscordHarness) -> None:
    payload = papers("help")
    messages = await answer_to(discord_harness, payload)
    response = await discord_harness.fake.wait_for_response(payload)
    assert response.json["type"] == 4 and not follow_ups(discord_harness, payload)
    [message] = messages
    assert message["flags"] & EPHEMERAL
    assert "`/papers topic <words>`" in message["content"]


async def test_a_failed_follow_up_is_one_log_line_and_no_traceback(
    discord_harness: DiscordHarness, fake_hf: FakeHuggingFace, caplog: pytest.LogCaptureFixture
) -> None:
    await ten_long_papers_saved(discord_harness, fake_hf)
    fake = discord_harness.fake
    fake.fail_next("POST", FOLLOW_UPS, 404, {"message": "Unknown Webhook", "code": 10015})
    payload = papers("saved")
    with caplog.at_level(logging.INFO):
        messages = await answer_to(discord_harness, payload)
    [failed] = follow_ups(discord_harness, payload)  # the first failed; none came after it
    assert failed.status == 404
    [first] = messages
    assert first["content"] == "Your saved papers (10)" and first["embeds"]
    [problem] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert re.fullmatch(
        r"Discord answer cut short: follow-up 1 of \d+ failed: not_found", problem.getMessage()
    )
    assert not any(r.exc_info for r in caplog.records)  # no traceback, and no "went wrong"
    assert "paperboy" in (await answer_to(discord_harness, papers("help")))[0]["content"]


async def test_a_shared_long_answer_is_posted_whole_in_the_channel(
    discord_harness: DiscordHarness, fake_hf: FakeHuggingFace
) -> None:
    await ten_long_papers_saved(discord_harness, fake_hf)
    answer = await answer_to(discord_harness, papers("week"))
    assert len(answer) > 1
    with_button = [message for message in answer if message["components"]]
    assert with_button == [answer[-1]]  # "Share to channel" under the whole answer
    private = shown_papers(answer)
    click = component("share:week", message=answer[-1], user_id=OTHER_USER)
    shared = await answer_to(discord_harness, click)
    assert answer[-1]["content"] == "Shared to the channel." and not answer[-1]["components"]
    assert len(shared) > 1
    for message in shared:
        assert_within_discord_limits(message)
        assert not message["flags"] & EPHEMERAL
    assert shown_papers(shared) == private
    assert [title for title, _ in private] == [long_title(n) for n in range(1, 6)]
    assert shared[0]["content"].startswith(f"Shared by <@{OTHER_USER}>")
    assert not any(message["content"] for message in shared[1:])
