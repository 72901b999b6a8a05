"""A member's reactions on one message are acted on in the order they were made: whatever
retries and concurrent handling do, adding and then removing the save emoji leaves the paper
unsaved, and removing then adding it leaves it saved (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bot.events import MessageRef, ReactionChanged
from bot.inbox import RETRY_AFTER
from tests.core_fixtures import CHANNEL, SCOPE, Harness, RecordingPlatform
from tests.test_reaction_inbox import FlakyPlatform, members_link, pending, saved

MEMBERS_MESSAGE = MessageRef(CHANNEL, "member-1")
ADD = ReactionChanged(MEMBERS_MESSAGE, "alice", "bookmark", True)
REMOVE = ReactionChanged(MEMBERS_MESSAGE, "alice", "bookmark", False)


@dataclass
class SlowPlatform(RecordingPlatform):
    """Reading a member's message waits until `go` is set (a slow Slack), the first time."""

    reading: asyncio.Event = field(default_factory=asyncio.Event)
    go: asyncio.Event = field(default_factory=asyncio.Event)
    reads: int = 0

    async def read_text(self, message: MessageRef) -> str | None:
        self.reads += 1
        if self.reads == 1:
            self.reading.set()
            await self.go.wait()
        return await super().read_text(message)


async def test_an_add_retried_after_its_remove_leaves_the_paper_unsaved(
    harness: Harness,
) -> None:
    platform = harness.use(FlakyPlatform(failures=1))
    await members_link(harness, platform)
    inbox = harness.bot.inbox
    assert await inbox.take_in(ADD)
    assert await inbox.work_through(SCOPE.platform) == 0  # the read failed: tried again later
    assert await inbox.take_in(REMOVE)
    await inbox.work_through(SCOPE.platform)
    harness.clock[0] += RETRY_AFTER[0]
    await inbox.work_through(SCOPE.platform)
    assert await saved(harness) == []  # the member's last word was to remove it
    assert await pending(harness.store) == []
    assert platform.told[-1][2].text.startswith("Removed")


async def test_a_remove_made_while_the_add_is_acted_on_waits_for_it(harness: Harness) -> None:
    platform = harness.use(SlowPlatform())
    paper = await members_link(harness, platform)
    inbox = harness.bot.inbox
    assert await inbox.take_in(ADD)
    adding = asyncio.create_task(inbox.act_now(SCOPE.platform))
    async with asyncio.timeout(10):
        await platform.reading.wait()  # the add is being acted on
    assert await inbox.take_in(REMOVE)
    await inbox.act_now(SCOPE.platform)  # as the adapter does for the remove, at once
    platform.go.set()
    async with asyncio.timeout(10):
        await adding
    assert await saved(harness) == []
    assert await pending(harness.store) == []
    told = [m.text for _, _, m in platform.told]
    assert told == ["Saved 1 paper", "Removed from your saved papers: 1 paper"]
    assert paper not in await saved(harness)


async def test_add_remove_add_in_the_inbox_at_once_ends_saved(
    harness: Harness,
) -> None:
    platform = harness.platform
    paper = await members_link(harness, platform)
    inbox = harness.bot.inbox
    for event in (ADD, REMOVE, ADD):
        assert await inbox.take_in(event)
    await inbox.work_through(SCOPE.platform)
    assert await saved(harness) == [paper]
    assert [m.text for _, _, m in platform.told][-1] == "Saved 1 paper"
    assert await pending(harness.store) == []


async def test_reactions_of_other_members_or_messages_do_not_wait_for_each_other(
    harness: Harness,
) -> None:
    platform = harness.use(FlakyPlatform(failures=1))
    paper = await members_link(harness, platform)
    other = MessageRef(CHANNEL, "member-2")
    platform.members_messages[other] = platform.members_messages[MEMBERS_MESSAGE]
    inbox = harness.bot.inbox
    assert await inbox.take_in(ADD)
    assert await inbox.work_through(SCOPE.platform) == 0  # alice's add waits for a retry
    assert await inbox.take_in(ReactionChanged(MEMBERS_MESSAGE, "bob", "bookmark", True))
    assert await inbox.take_in(ReactionChanged(other, "alice", "bookmark", True))
    assert await inbox.work_through(SCOPE.platform) == 2
    assert await saved(harness, "bob") == [paper]
    assert await saved(harness) == [paper]
