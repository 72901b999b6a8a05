"""Neutral events and references. Identities are opaque strings scoped by (platform, workspace):
the core never knows what a Slack `ts` or a Discord snowflake is."""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True)
class CommandInvoked:
    """`/papers <text>` typed by `user` in `channel`; `is_admin` as the platform judges it."""

    channel: ChannelRef
    user: str
    text: str
    is_admin: bool


@dataclass(frozen=True)
class ReactionChanged:
    """`user` added (or removed) `emoji` (a name without colons, or the character) on `message`."""

    message: MessageRef
    user: str
    emoji: str
    added: bool
