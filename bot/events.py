"""Neutral events and references. Identities are opaque strings scoped by (platform, workspace):
the core never knows what a Slack `ts` or a Discord snowflake is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Scope:
    platform: str
    workspace: str


@dataclass(frozen=True)
class ChannelRef:
    scope: Scope
    channel: str


@dataclass(frozen=True)
class UserRef:
    scope: Scope
    user: str


@dataclass(frozen=True)
class MessageRef:
    """A message the bot sent; `message_id` is whatever the platform uses to name it."""

    channel: ChannelRef
    message_id: str


AdminCheck = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class CommandInvoked:
    """`/papers <text>` typed by `user` in `channel`. `is_admin` is the platform's judgement:
    known at once (Discord sends the member's permissions along), or a check the core makes
    only for a command that needs it (Slack asks its Web API)."""

    channel: ChannelRef
    user: str
    text: str
    is_admin: bool | AdminCheck
    # Whether the answer itself can carry a file to the caller alone (Discord's private
    # replies, the console); else a file goes to the caller's DMs (`Outbound.send_file`).
    files_in_answer: bool = True

    async def by_admin(self) -> bool:
        if isinstance(self.is_admin, bool):
            return self.is_admin
        return await self.is_admin()


@dataclass(frozen=True)
class ReactionChanged:
    """`user` added (or removed) `emoji` (a name without colons, or the character) on `message`.
    For a save emoji on a message that is not one of its paper posts, the core reads the
    message (`Outbound.read_text`), whose links then say what to save."""

    message: MessageRef
    user: str
    emoji: str
    added: bool


@dataclass(frozen=True)
class SaveFromMessage:
    """`user` asked to save the papers a message links to (Slack's message shortcut,
    Discord's context menu); `text` is that message's text, links included."""

    user: UserRef
    text: str


class GoneWhy(Enum):
    """Why the bot can no longer post in a channel, as adapters tell it."""

    REMOVED = "removed"  # the bot was removed from the channel, or lost access to it
    ARCHIVED = "archived"
    DELETED = "deleted"
    UNREACHABLE = "unreachable"  # any other lasting refusal
    # The platform refused the app itself (its token revoked): the app was removed from the
    # whole workspace, whose uninstall event may come later, or never reach a process.
    APP_REMOVED = "app_removed"


@dataclass(frozen=True)
class ChannelGone:
    """The bot can no longer post in `channel`."""

    channel: ChannelRef
    why: GoneWhy


@dataclass(frozen=True)
class WorkspaceGone:
    """A workspace (a Discord server) removed the app: uninstalled, its bot token revoked,
    or the bot was removed from the server."""

    scope: Scope


@dataclass(frozen=True)
class WorkspaceBack:
    """The app was installed in a workspace (again): an OAuth install, a server joined."""

    scope: Scope
