"""What every command handler receives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bot.events import CommandInvoked, UserRef

if TYPE_CHECKING:
    from bot.core import Paperboy


@dataclass(frozen=True)
class CommandContext:
    bot: Paperboy
    event: CommandInvoked
    now: datetime

    @property
    def actor(self) -> UserRef:
        return self.event.actor

    @property
    def platform(self) -> str:
        return self.event.channel.scope.platform

    @property
    def workspace(self) -> str:
        return self.event.channel.scope.workspace

    @property
    def user(self) -> str:
        return self.event.user
