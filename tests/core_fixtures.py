"""Fixtures for core tests: a bot on a real store, fed by the fake Hugging Face over HTTP,
sending through a recording stand-in for a chat platform."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pytest

from bot.app import Paperboy
from bot.config import BotConfig
from bot.events import ChannelRef, CommandInvoked, MessageRef, ReactionChanged, Scope, UserRef
from bot.messages import Message
from bot.search import SearchSource
from bot.sources.huggingface import HuggingFaceClient
from bot.sources.ingest import ingest_days
from storage.store import Store
from tests.fakes.huggingface import FakeHuggingFace

NOW = datetime(2026, 5, 5, 12, 0, tzinfo=UTC)
SCOPE = Scope("test", "T1")
CHANNEL = ChannelRef(SCOPE, "C1")


@dataclass
class RecordingPlatform:
    """The outbound port of a pretend platform: keeps every message and numbers them."""

    posts: list[tuple[ChannelRef, Message, MessageRef]] = field(default_factory=list)
    dms: list[tuple[UserRef, Message, MessageRef]] = field(default_factory=list)
    told: list[tuple[UserRef, MessageRef, Message]] = field(default_factory=list)
    members_messages: dict[MessageRef, str] = field(default_factory=dict)  # readable ones

    async def post(self, channel: ChannelRef, message: Message) -> MessageRef:
        ref = MessageRef(channel, f"m{len(self.posts) + len(self.dms) + 1}")
        self.posts.append((channel, message, ref))
        return ref

    async def send_dm(self, user: UserRef, message: Message) -> MessageRef:
        ref = MessageRef(ChannelRef(user.scope, f"D-{user.user}"), f"m{len(self.posts) + 1}")
        self.dms.append((user, message, ref))
        return ref

    async def tell(self, user: UserRef, about: MessageRef, message: Message) -> None:
        self.told.append((user, about, message))

    async def read_text(self, message: MessageRef) -> str | None:
        return self.members_messages.get(message)

    def spread(self, message: Message) -> list[Message]:
        return [message]  # no limit on a message's size

    async def sent_keys(
        self, target: ChannelRef | UserRef, since: datetime
    ) -> dict[str, MessageRef]:
        """Like Slack's message metadata: the keys of the messages sent to `target`."""
        sent = self.posts if isinstance(target, ChannelRef) else self.dms
        return {
            message.delivery_key: ref
            for to, message, ref in sent
            if to == target and message.delivery_key is not None
        }


async def react(
    bot: Paperboy, platform: RecordingPlatform, event: ReactionChanged
) -> Message | None:
    """A reaction handed in as platforms hand it (`bot.inbox`): what its user was told."""
    told = len(platform.told)
    if await bot.inbox.take_in(event):
        await bot.inbox.work_through(event.message.channel.scope.platform)
    return platform.told[-1][2] if len(platform.told) > told else None


@dataclass
class Harness:
    bot: Paperboy
    platform: RecordingPlatform
    store: Store
    hf: FakeHuggingFace
    clock: list[datetime]

    async def say(
        self, text: str, *, user: str = "alice", admin: bool = False, channel: ChannelRef = CHANNEL
    ) -> Message:
        return await self.bot.handle_command(CommandInvoked(channel, user, text, admin))

    async def react(self, ref: MessageRef, emoji: str = "bookmark", *, user: str = "alice",
                    added: bool = True) -> Message | None:  # fmt: skip
        return await react(self.bot, self.platform, ReactionChanged(ref, user, emoji, added))

    def use(self, platform: RecordingPlatform) -> RecordingPlatform:
        """From now on the bot sends through `platform` (same store, clock and sources)."""
        self.bot = bot_on(self.store, platform, self.bot.source, self.clock)
        return platform

    def paper_posts(self) -> list[tuple[str, MessageRef]]:
        """(arXiv id, message ref) of every single-paper message posted so far."""
        return [(m.cards[0].paper_id, ref) for _, m, ref in self.platform.posts if len(m.cards) == 1
                and not m.text]  # fmt: skip


@contextlib.asynccontextmanager
async def stocked(store: Store, fake_hf: FakeHuggingFace) -> AsyncIterator[HuggingFaceClient]:
    """The fake Hugging Face serving the lists of 4 and 5 May 2026, both already ingested into
    `store`; yields a client of it for the bot's searches."""
    fake_hf.load_day("2026-05-04")
    fake_hf.load_day("2026-05-05")
    async with HuggingFaceClient(fake_hf.base_url, timeout=2.0, max_retries=0) as client:
        await ingest_days(store, client, date(2026, 5, 4), date(2026, 5, 5), NOW)
        yield client


@pytest.fixture
async def harness(store: Store, fake_hf: FakeHuggingFace) -> AsyncIterator[Harness]:
    async with stocked(store, fake_hf) as client:
        clock = [NOW]
        platform = RecordingPlatform()
        yield Harness(bot_on(store, platform, client, clock), platform, store, fake_hf, clock)


def bot_on(
    store: Store, platform: RecordingPlatform, source: SearchSource | None, clock: list[datetime]
) -> Paperboy:
    return Paperboy(
        store, platform, config=BotConfig(search_budget=1.0), source=source,
        clock=lambda: clock[0],
    )  # fmt: skip
