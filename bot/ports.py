"""The outbound port: the only way the core reaches a platform. Each adapter implements it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.events import ChannelRef, GoneWhy, MessageRef, UserRef
from bot.messages import Message


@dataclass(frozen=True)
class Delivered:
    """What a send put out: how many papers, and its first message (a daily post's header,
    a digest's DM); no `ref` means nothing was sent."""

    papers: int
    ref: MessageRef | None = None
    note: str = ""  # what was sent instead of papers, e.g. "list missing"


class DeliveryError(Exception):
    """A send failed. `permanent` means retrying cannot help (channel gone, DMs closed);
    `unreachable`, that the platform could not be reached (the network, its 5xx): retried
    through the slot's day like an outage, using up no attempt. `gone` says why a channel
    cannot be posted to, where the platform told. `reason` is the platform's code, for logs
    and the ledger, never for people to read."""

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool,
        unreachable: bool = False,
        gone: GoneWhy | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.unreachable = unreachable
        self.gone = gone


@dataclass(frozen=True)
class FileToSend:
    """A file for one person: its name, its bytes, and a line saying what it is."""

    name: str
    content: bytes
    caption: str


# Reads a member's message: its text as the platform shows it (links included), or None when
# it cannot be read (deleted, no access, or a platform that does not let the bot read it) or
# is the bot's own (a shared list: one reaction never saves every paper of it).
MessageReader = Callable[[MessageRef], Awaitable[str | None]]


class Outbound(Protocol):
    async def post(self, channel: ChannelRef, message: Message) -> MessageRef:
        """Post publicly in a channel."""
        ...

    async def send_dm(self, user: UserRef, message: Message) -> MessageRef:
        """Send a direct message."""
        ...

    async def send_file(self, user: UserRef, file: FileToSend) -> MessageRef:
        """Send a file to a user privately (their DMs)."""
        ...

    async def tell(self, user: UserRef, about: MessageRef, message: Message) -> None:
        """A note only `user` sees, about something they did on message `about` (Slack shows
        it beside that message, in its thread if it has one; Discord, which cannot, in their
        DMs)."""
        ...

    async def read_text(self, message: MessageRef) -> str | None:
        """A `MessageReader`. Raises DeliveryError when the platform cannot be reached,
        so that the read is tried again."""
        ...

    def spread(self, message: Message) -> Sequence[Message]:
        """`message` as the messages this platform sends it in, in order: itself when one
        message holds it, else its lines and cards spread over several (the first with its
        heading, the last with its note), each line and card in exactly one of them and in
        its order."""
        ...

    async def sent_keys(
        self, target: ChannelRef | UserRef, since: datetime
    ) -> dict[str, MessageRef]:
        """The `delivery_key`s of messages this bot sent to `target` (a channel, or a user's
        DMs) since `since`, where the platform can tell; {} where it cannot."""
        ...
