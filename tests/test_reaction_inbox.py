"""The reaction inbox (`bot.inbox`): a save reaction is recorded before its platform is
answered and acted on until it succeeds; one that cannot be recorded is sent again by Slack;
a user-facing answer never waits out another writer's lock."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from adapters.slack.app import create_slack_bot
from adapters.slack.server import SocketMode
from bot.app import DATABASE_BUSY
from bot.events import MessageRef, ReactionChanged
from bot.inbox import HOLD, MAX_ATTEMPTS, RETRY_AFTER, not_taken
from bot.ports import DeliveryError
from storage.models import PendingReaction, Post
from storage.store import Store
from tests.core_fixtures import CHANNEL, NOW, SCOPE, Harness, RecordingPlatform, bot_on, stocked
from tests.fakes.discord import USER_ID, FakeDiscord, reaction_add
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import (
    APP_TOKEN,
    FakeSlack,
    FakeSocketMode,
    event_payload,
    reaction_event,
    slash_command_payload,
    socket_envelope,
)
from tests.slack_fixtures import SlackHarness, all_text, slack_settings
from tests.test_discord import text_of
from tests.test_discord_save_from_messages import (
    AUTHOR,
    LINKS,
    dm_to,
    harness_for,
    members_message,
    message_reads,
    saved_ids,
)
from tests.test_slack import paper_post_ts

MEMBERS_MESSAGE = MessageRef(CHANNEL, "member-1")
RETRIED = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"}


@pytest.fixture
def dialect() -> str:
    return "sqlite"  # SQLite's one write lock, held by another process, is what is tested here


@contextmanager
def write_locked(store: Store) -> Iterator[None]:
    """SQLite's write lock held by another process (as a long write of the worker would)."""
    holder = sqlite3.connect(str(store.engine.url.database), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@dataclass
class FlakyPlatform(RecordingPlatform):
    """Cannot be reached to read members' messages the first `failures` times."""

    failures: int = 0

    async def read_text(self, message: MessageRef) -> str | None:
        if self.failures:
            self.failures -= 1
            raise DeliveryError("network_error", permanent=False, unreachable=True)
        return await super().read_text(message)


async def pending(store: Store) -> list[PendingReaction]:
    async with store.reading() as repos:
        return list(await repos.session.scalars(select(PendingReaction)))


async def saved(harness: Harness, user: str = "alice") -> list[str]:
    async with harness.store.reading() as repos:
        papers = await repos.users.saved(SCOPE.platform, SCOPE.workspace, user)
    return [paper.arxiv_id for paper in papers]


async def members_link(harness: Harness, platform: RecordingPlatform) -> str:
    """A paper of the daily post, linked from a member's message the platform can read."""
    await harness.say("channel post-now", admin=True)
    paper = next(m.cards[0].paper_id for _, m, _ in platform.posts if len(m.cards) == 1)
    platform.members_messages[MEMBERS_MESSAGE] = f"worth a read: https://arxiv.org/abs/{paper}"
    return paper


async def test_a_save_that_fails_is_kept_and_done_on_a_later_try(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    platform = harness.use(FlakyPlatform(failures=1))
    paper = await members_link(harness, platform)
    inbox = harness.bot.inbox
    event = ReactionChanged(MEMBERS_MESSAGE, "alice", "bookmark", True)
    with caplog.at_level(logging.WARNING):
        assert await inbox.take_in(event)
        assert await inbox.work_through(SCOPE.platform) == 0  # Slack could not be reached
    [kept] = await pending(harness.store)
    assert (kept.attempts, kept.due_at) == (1, NOW + RETRY_AFTER[0])
    assert platform.told == [] and await saved(harness) == []
    [line] = [r for r in caplog.records if "trying again" in r.getMessage()]
    assert line.exc_info is None  # one line, no traceback

    assert await inbox.work_through(SCOPE.platform) == 0  # not due yet
    harness.clock[0] = NOW + RETRY_AFTER[0]
    assert await inbox.work_through(SCOPE.platform) == 1
    assert await saved(harness) == [paper]
    [(user, about, message)] = platform.told
    assert (user.user, about) == ("alice", MEMBERS_MESSAGE) and message.text.startswith("Saved")
    assert await pending(harness.store) == []


async def test_after_the_last_try_the_member_is_told_privately_and_nothing_is_saved(
    harness: Harness,
) -> None:
    platform = harness.use(FlakyPlatform(failures=MAX_ATTEMPTS + 5))
    await members_link(harness, platform)
    inbox = harness.bot.inbox
    assert await inbox.take_in(ReactionChanged(MEMBERS_MESSAGE, "alice", "bookmark", True))
    assert await inbox.work_through(SCOPE.platform) == 0
    for wait in RETRY_AFTER:
        assert platform.told == []
        harness.clock[0] += wait
        assert await inbox.work_through(SCOPE.platform) == 0
    assert [message for _, _, message in platform.told] == [not_taken(True)]
    assert await pending(harness.store) == [] and await saved(harness) == []
    assert platform.failures == 5  # MAX_ATTEMPTS tries, no more


async def test_a_reaction_left_by_a_stopped_process_is_acted_on_by_another(
    harness: Harness,
) -> None:
    first = harness.platform
    paper = await members_link(harness, first)
    stopped = harness.bot
    assert await stopped.inbox.take_in(ReactionChanged(MEMBERS_MESSAGE, "alice", "bookmark", True))
    async with harness.store.transaction() as repos:  # it took the reaction, then stopped
        [taken] = await repos.inbox.take_due(SCOPE.platform, NOW, hold=HOLD, most=10)
    second = RecordingPlatform(members_messages=dict(first.members_messages))
    other = bot_on(harness.store, second, None, harness.clock)
    assert await other.inbox.work_through(SCOPE.platform) == 0  # still held by the first
    harness.clock[0] = NOW + HOLD
    worker = asyncio.create_task(other.keep_working(SCOPE.platform, every=0.01))
    try:
        async with asyncio.timeout(10):
            while not second.told:
                await asyncio.sleep(0.01)
    finally:
        worker.cancel()
    assert await saved(harness) == [paper]
    assert [m.text.startswith("Saved") for _, _, m in second.told] == [True]
    assert first.told == [] and taken.user == "alice"


async def test_slack_sends_a_reaction_again_when_the_database_is_locked(
    slack_harness: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    slack_harness.fake.admins.add("U1")
    await slack_harness.command("channel post-now")
    ts = await paper_post_ts(slack_harness, 0)
    with caplog.at_level(logging.INFO), write_locked(slack_harness.store):
        locked = await slack_harness.react(ts, event_id="EvLocked")
        follow = all_text(await slack_harness.command("follow agents"))
    assert locked.status_code == 503  # not taken in: Slack sends it again
    assert DATABASE_BUSY in follow
    assert await pending(slack_harness.store) == []
    async with slack_harness.store.reading() as repos:
        assert await repos.users.following("slack", "T1", "U1") == []  # nothing changed
        assert await repos.users.saved("slack", "T1", "U1") == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    [line] = [r for r in caplog.records if "asking Slack to send it again" in r.getMessage()]
    assert line.exc_info is None

    retried = await slack_harness.react(ts, event_id="EvLocked", headers=RETRIED)
    assert retried.status_code == 200
    await slack_harness.fake.wait_for_calls("chat.postEphemeral", 1)
    [confirmation] = slack_harness.fake.calls("chat.postEphemeral")
    assert confirmation.args["user"] == "U1" and confirmation.args["text"].startswith("Saved")
    again = await slack_harness.react(ts, event_id="EvLocked", headers=RETRIED)
    assert again.status_code == 200  # taken in already: skipped
    assert await pending(slack_harness.store) == []
    async with slack_harness.store.reading() as repos:
        assert len(await repos.users.saved("slack", "T1", "U1")) == 1
    assert "agents" in all_text(await slack_harness.command("follow agents"))


async def test_a_discord_reaction_that_cannot_be_recorded_is_the_members_to_repeat(
    store: Store, fake_hf: FakeHuggingFace, fake_discord: FakeDiscord
) -> None:
    async with harness_for(store, fake_hf, fake_discord, message_content=True) as harness:
        message = members_message(harness, LINKS)
        start = len(fake_discord.calls)
        add = reaction_add(message_id=int(message["id"]), message_author_id=AUTHOR)
        with write_locked(store):
            await fake_discord.dispatch("MESSAGE_REACTION_ADD", add)
            dm = await fake_discord.wait_for_call(dm_to(harness, USER_ID), start=start)
        assert text_of(dm).startswith(not_taken(True).text)  # Discord never sends it again
        assert await saved_ids(harness) == set() and await pending(store) == []
        assert message_reads(harness, message) == []


async def test_over_socket_mode_a_reaction_not_taken_in_is_left_unacknowledged(
    store: Store, fake_slack: FakeSlack, fake_hf: FakeHuggingFace, fake_socket_mode: FakeSocketMode
) -> None:
    fake_slack.socket_url = fake_socket_mode.url
    fake_slack.admins.add("U1")
    settings = slack_settings(fake_slack, fake_hf, SLACK_APP_TOKEN=APP_TOKEN)
    async with stocked(store, fake_hf) as source:
        slack = create_slack_bot(settings, store, source=source, socket_mode=True)
        socket = SocketMode(slack.app, APP_TOKEN)
        try:
            await socket.connect()
            await fake_socket_mode.wait_connected(timeout=10)
            command = slash_command_payload(
                "channel post-now", response_url=fake_slack.response_url("p")
            )
            fake_socket_mode.send_envelope(
                socket_envelope("slash_commands", command, envelope_id="p")
            )
            await fake_socket_mode.wait_for_ack("p", timeout=20)
            await fake_slack.wait_for_calls("chat.postMessage", 5)  # a header, 4 papers
            async with store.reading() as repos:
                posts = (
                    await repos.session.scalars(select(Post.message_id).order_by(Post.id))
                ).all()
            event = reaction_event(
                "reaction_added", user="U1", reaction="bookmark", channel="C1", ts=posts[1]
            )
            payload = event_payload(event, event_id="EvSock")
            envelope = socket_envelope("events_api", payload, envelope_id="r1")
            with write_locked(store):
                fake_socket_mode.send_envelope(envelope)
                with pytest.raises(TimeoutError):  # Slack sends what is not acknowledged again
                    await fake_socket_mode.wait_for_ack("r1", timeout=4)
            assert await pending(store) == []
            fake_socket_mode.send_envelope({**envelope, "envelope_id": "r2", "retry_attempt": 1})
            await fake_socket_mode.wait_for_ack("r2", timeout=10)
            await fake_slack.wait_for_calls("chat.postEphemeral", 1)
            assert fake_slack.calls("chat.postEphemeral")[0].args["text"].startswith("Saved")
        finally:
            await socket.close()
            await slack.close()
