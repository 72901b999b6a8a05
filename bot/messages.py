"""Neutral outgoing messages that every adapter renders (Block Kit, embeds, terminal text).

Text fields hold plain text: adapters escape it for their platform. Inline code is marked
with backticks only in `Message.text`/`lines`, the one markup every platform shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import Enum

# Where `Message.text` names `Message.channel`: each adapter puts its platform's mention of the
# channel there (Slack and Discord show the channel's name), so no raw id reaches people.
CHANNEL_SLOT = "{channel}"


class Visibility(Enum):
    CALLER = "caller"  # only the person who ran the command sees it
    PUBLIC = "public"  # everyone in the channel (or the DM) sees it


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class PaperCard:
    paper_id: str  # arXiv id, or a demo id
    title: str
    url: str  # the paper's Hugging Face page
    authors: tuple[str, ...] = ()
    upvotes: int | None = None
    published: date | None = None
    summary: str | None = None
    links: tuple[Link, ...] = ()  # arXiv abstract, PDF, code, project page
    thumbnail: str | None = None
    is_demo: bool = False
    # How many members of the workspace saved the paper (`/papers team`); never who. Adapters
    # show it as `bot.cards.saved_by_text` words it.
    saved_by: int | None = None


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: str
    mime_type: str = "text/plain"


@dataclass(frozen=True)
class Message:
    """One message: a heading line, optional body lines, paper cards and a note.

    `shareable` asks the adapter to offer "Share to channel"; `shared_by` names the user who
    shared the message to the channel (the adapter shows it as its platform's mention).
    `is_usage_hint` marks a rejected command (nothing was changed). `reaction` is an emoji the
    adapter adds to the sent message itself, where the platform allows, so people can click it.
    `delivery_key` marks a scheduled message so a retry can find it on the platform (see
    `Outbound.sent_keys`). `channel` is the channel `text` names at CHANNEL_SLOT.
    """

    text: str
    lines: tuple[str, ...] = ()
    cards: tuple[PaperCard, ...] = ()
    note: str | None = None
    visibility: Visibility = Visibility.CALLER
    attachment: Attachment | None = None
    shareable: bool = False
    is_usage_hint: bool = False
    reaction: str | None = None
    delivery_key: str | None = None
    shared_by: str | None = None
    channel: str | None = None


@dataclass(frozen=True)
class DailyPost:
    """A channel's daily post: a header, then one message per paper so a reaction names it."""

    header: Message
    papers: tuple[tuple[int, Message], ...] = field(default=())  # (paper row id, message)


def counted(n: int, noun: str) -> str:
    """ "1 paper", "3 papers": a count in words, as a person writes it (regular plurals)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
