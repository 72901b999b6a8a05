"""What every command handler receives: the event and what it may use, nothing more."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bot.config import BotConfig
from bot.daily import DailyPosts
from bot.digest import Digests
from bot.events import CommandInvoked, UserRef
from bot.ports import Outbound
from bot.search import SearchSource
from bot.sources.lookup import PaperLookup
from storage.store import Store

if TYPE_CHECKING:
    from bot.semantic.meaning import Semantic


@dataclass(frozen=True)
class CommandContext:
    event: CommandInvoked
    now: datetime
    store: Store
    config: BotConfig
    source: SearchSource | None  # Hugging Face search, when the store has too few papers
    semantic: Semantic | None  # search by meaning, when its extra is installed and on
    daily: DailyPosts  # `channel post-now`
    digests: Digests  # `digest now`
    outbound: Outbound  # files for the caller's DMs (`export mine` on platforms that need it)
    lookup: PaperLookup | None = None  # papers by id from Hugging Face and arXiv (`save`)

    @property
    def actor(self) -> UserRef:
        return UserRef(self.event.channel.scope, self.event.user)

    @property
    def platform(self) -> str:
        return self.event.channel.scope.platform

    @property
    def workspace(self) -> str:
        return self.event.channel.scope.workspace

    @property
    def user(self) -> str:
        return self.event.user
