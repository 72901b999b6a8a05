"""Neutral messages as Slack Block Kit: a pure module (no network, no Slack client).

Escaping follows Slack's formatting docs: `&`, `<` and `>` are the only characters Slack
parses as control sequences (`<!channel>`, `<@U1>`, `<#C1>`, `<!subteam^S1>`, `<url|label>`),
so every piece of text, including the core's own lines (which may embed paper or user text),
goes through `escape`. Our own links are built by `link` from validated URLs. mrkdwn has no
backslash escaping for `*`, `_`, `~` or backticks, so we don't try: paper text can at worst
make some of its own words bold or italic. Paper titles sit inside `<url|title>` link labels,
where a `|` or `>` would end the label early: `>` is escaped and `|` becomes U+2223
(DIVIDES), which looks like a pipe. plain_text (header, button labels) is escaped the same
way: Slack's docs say all text shares one escaping scheme.

Slack limits respected here: 50 blocks per message, 3000 characters per section or context
text, 150 per header, 75 per button label, 2000 per button value, 25 elements per actions
block, unique action_ids within a message.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from urllib.parse import quote

from bot.cards import saved_by_text
from bot.messages import CHANNEL_SLOT, Attachment, Message, PaperCard, Visibility
from bot.text import strip_unsafe

SHARE_ACTION = "paperboy_share"
LINK_ACTION_PREFIX = "paperboy_link_"  # + a number; URL buttons still send an action to ack
SHARE_LABEL = "Share to channel"

MAX_BLOCKS = 50
MAX_TEXT = 3000  # section and context text
MAX_HEADER = 150
MAX_BUTTON_LABEL = 75
MAX_BUTTON_VALUE = 2000
MAX_BUTTONS = 25  # elements in one actions block
MAX_URL = 2000  # longer URLs are left out (a link keeps just its label)
MAX_ALT_TEXT = 2000
MAX_AUTHORS = 3
MAX_TITLE = 300  # escaped characters of a card title
MAX_AUTHORS_TEXT = 300
MAX_FILENAME = 100
MAX_ATTACHMENT_BLOCKS = 40
CODE_LIMIT = MAX_TEXT - MAX_FILENAME - 20  # room for the filename and the ``` fences
MIN_SUMMARY = 40  # don't bother with a summary squeezed into less than this

PIPE_STAND_IN = "\u2223"  # DIVIDES: looks like `|` but can't end a link label
ZWSP = "\u200b"
_URL_SAFE = ":/?#[]@!$&'()*+,;=%"  # RFC 3986 reserved characters (and existing %-escapes)
_HTTP_URL = re.compile(r"https?://[^/?#\s]", re.IGNORECASE)
_BACKTICK_RUN = re.compile(r"`{3,}")
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")
_SLACK_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]+$")

Block = dict[str, object]


# --- text ---------------------------------------------------------------------------------


def escape(text: str) -> str:
    """mrkdwn-safe text: `&`, `<`, `>` as HTML entities, unsafe characters dropped
    (`bot.text.strip_unsafe`)."""
    return strip_unsafe(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _inline(text: str) -> str:
    """Escaped text on one line, whitespace runs collapsed."""
    return " ".join(escape(text).split())


def _label(text: str) -> str:
    """Escaped one-line text that is safe inside `<url|label>`."""
    return _inline(text).replace("|", PIPE_STAND_IN)


def _split_escaped(text: str, limit: int) -> list[str]:
    """Split escaped text into pieces of at most `limit` characters, never inside an entity."""
    pieces = []
    while len(text) > limit:
        cut = limit
        amp = text.rfind("&", max(0, cut - 4), cut)
        if amp > 0 and ";" not in text[amp:cut]:
            cut = amp
        pieces.append(text[:cut])
        text = text[cut:]
    pieces.append(text)
    return pieces


def _shorten(text: str, limit: int) -> str:
    """Escaped text cut to `limit` characters with an ellipsis, never inside an entity."""
    if len(text) <= limit:
        return text
    return _split_escaped(text, limit - 1)[0] + "…"


# --- links --------------------------------------------------------------------------------


def _safe_url(url: str) -> str | None:
    """An http(s) URL with `|`, `<`, `>`, spaces and the like percent-encoded, or None."""
    url = strip_unsafe(url).strip()
    if not _HTTP_URL.match(url):
        return None
    encoded = quote(url, safe=_URL_SAFE)
    return encoded if len(encoded) <= MAX_URL else None


def _link(url: str, label: str) -> str:
    """`<url|label>` for an already escaped label; just the label if the URL won't do."""
    safe = _safe_url(url)
    if safe is None:
        return label
    target = safe.replace("&", "&amp;")
    if len(target) > MAX_URL:
        return label
    return f"<{target}|{label}>" if label else f"<{target}>"


def link(url: str, label: str) -> str:
    """A mrkdwn link `<url|label>`; only the escaped label if the URL is not http(s)."""
    return _link(url, _label(label))


# --- block pieces -------------------------------------------------------------------------


def _plain(text: str) -> dict[str, object]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _section(text: str, accessory: Block | None = None) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if accessory is not None:
        block["accessory"] = accessory
    return block


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _button(
    label: str, *, action_id: str, url: str | None = None, value: str | None = None
) -> Block:
    button: Block = {"type": "button", "text": _plain(label), "action_id": action_id}
    if url is not None:
        button["url"] = url
    if value is not None:
        button["value"] = value
    return button


# --- heading and lines --------------------------------------------------------------------


def _wants_header(message: Message, heading: str) -> bool:
    """A header block for lists and public posts, when the heading fits one plain line;
    replies keep their heading in a section, where backtick code renders."""
    if not (message.cards or message.visibility is Visibility.PUBLIC):
        return False
    return "\n" not in heading and "`" not in heading and len(heading) <= MAX_HEADER


def _naming_channel(escaped: str, channel: str | None) -> str:
    """Escaped core text with the channel it names as a mention, which Slack shows as the
    channel's name (built here, from a real channel id only)."""
    if channel is None:
        return escaped
    mention = f"<#{channel}>" if _SLACK_CHANNEL_ID.match(channel) else "a channel"
    return escaped.replace(CHANNEL_SLOT, mention)


def _heading_blocks(message: Message) -> list[Block]:
    heading = _naming_channel(escape(message.text).strip(), message.channel)
    lines = "\n".join(escape(line) for line in message.lines).strip("\n")
    blocks: list[Block] = []
    # A header is plain text, where a channel mention would show as typed.
    if heading and message.channel is None and _wants_header(message, heading):
        blocks.append({"type": "header", "text": _plain(heading)})
        heading = ""
    body = "\n".join(part for part in (heading, lines) if part)
    if body.strip():
        blocks.append(_section(_shorten(body, MAX_TEXT)))
    return blocks


# --- paper cards --------------------------------------------------------------------------


def _facts(card: PaperCard) -> str:
    """`saved by N · authors · :arrow_up_small: upvotes · date`; demo cards say "demo
    sample" instead."""
    facts = [saved_by_text(card.saved_by)] if card.saved_by is not None else []
    names = [name for name in (_inline(author) for author in card.authors) if name]
    if names:
        shown = ", ".join(names[:MAX_AUTHORS])
        more = len(names) - MAX_AUTHORS
        facts.append(_shorten(shown, MAX_AUTHORS_TEXT) + (f" +{more} more" if more > 0 else ""))
    if card.upvotes is not None:
        facts.append(f":arrow_up_small: {card.upvotes}")
    if card.published is not None:
        facts.append(card.published.isoformat())
    if card.is_demo:
        facts.append("demo sample")
    return " · ".join(facts)


def _card_text(card: PaperCard) -> str:
    title = _shorten(_label(card.title) or _label(card.paper_id) or "Untitled", MAX_TITLE)
    parts = [f"*{_link(card.url, title)}*"]
    facts = _facts(card)
    if facts:
        parts.append(facts)
    summary = _inline(card.summary or "")
    room = MAX_TEXT - len("\n".join(parts)) - 1
    if summary and room >= MIN_SUMMARY:
        parts.append(_shorten(summary, room))
    return _shorten("\n".join(parts), MAX_TEXT)  # a no-op: the parts are bounded above


def _thumbnail(card: PaperCard) -> Block | None:
    url = _safe_url(card.thumbnail) if card.thumbnail else None
    if url is None:
        return None
    alt = _shorten(_inline(card.title), MAX_ALT_TEXT) or "thumbnail"
    return {"type": "image", "image_url": url, "alt_text": alt}


def _link_buttons(card: PaperCard, action_ids: Iterator[str]) -> Block | None:
    buttons = []
    for card_link in card.links:
        url = _safe_url(card_link.url)
        if url is None:
            continue
        label = _shorten(_inline(card_link.label), MAX_BUTTON_LABEL) or "Link"
        buttons.append(_button(label, action_id=next(action_ids), url=url))
    if not buttons:
        return None
    return {"type": "actions", "elements": buttons[:MAX_BUTTONS]}


def _card_blocks(card: PaperCard, action_ids: Iterator[str]) -> list[Block]:
    blocks = [_section(_card_text(card), _thumbnail(card))]
    buttons = _link_buttons(card, action_ids)
    if buttons is not None:
        blocks.append(buttons)
    return blocks


def unfurl_blocks(card: PaperCard) -> list[Block]:
    """A paper card alone, as the blocks of a link's unfurl: the same card as in lists."""
    return _card_blocks(card, (f"{LINK_ACTION_PREFIX}{n}" for n in itertools.count(1)))


def _cards_blocks(
    cards: tuple[PaperCard, ...], budget: int, action_ids: Iterator[str]
) -> list[Block]:
    """The cards that fit in `budget` blocks, then "…and N more papers" if some don't."""
    blocks: list[Block] = []
    for index, card in enumerate(cards):
        rendered = _card_blocks(card, action_ids)
        left_after = len(cards) - index - 1
        room = budget - len(blocks) - (1 if left_after else 0)
        if len(rendered) > room:
            missing = len(cards) - index
            blocks.append(_context(f"…and {missing} more paper{'s' if missing != 1 else ''}"))
            break
        blocks.extend(rendered)
    return blocks


# --- attachment ---------------------------------------------------------------------------


def _code_text(content: str) -> str:
    """Escaped code: tabs expanded, runs of 3+ backticks broken so they can't close ```."""
    text = escape(content.expandtabs(4))
    return _BACKTICK_RUN.sub(lambda run: ZWSP.join(run.group()), text)


def _code_chunks(content: str, limit: int) -> list[tuple[str, int]]:
    """Escaped content in chunks of at most `limit` characters, each with the number of
    lines complete once it is shown."""
    chunks: list[tuple[str, int]] = []
    body: list[str] = []
    size = 0
    done = 0
    for number, line in enumerate(_code_text(content).rstrip("\n").split("\n"), start=1):
        pieces = _split_escaped(line, limit)
        for index, piece in enumerate(pieces):
            grown = size + (1 if body else 0) + len(piece)
            if body and grown > limit:
                chunks.append(("\n".join(body), done))
                body, grown = [], len(piece)
            body.append(piece)
            size = grown
            done = number if index == len(pieces) - 1 else number - 1
    chunks.append(("\n".join(body), done))
    return chunks


def _attachment_blocks(attachment: Attachment, budget: int) -> list[Block]:
    """The attachment as ``` sections within `budget` blocks, with a note if truncated."""
    budget = min(budget, MAX_ATTACHMENT_BLOCKS)
    if budget < 1:
        return []
    name = _shorten(_inline(attachment.filename), MAX_FILENAME) or "attachment"
    if not attachment.content.strip():
        return [_section(f"*{name}* (empty)")]
    chunks = _code_chunks(attachment.content, CODE_LIMIT)
    total = chunks[-1][1]
    shown = chunks if len(chunks) <= budget else chunks[: budget - 1]
    blocks = [
        _section((f"*{name}*\n" if index == 0 else "") + f"```\n{body}\n```")
        for index, (body, _) in enumerate(shown)
    ]
    if len(shown) < len(chunks):
        more = total - (shown[-1][1] if shown else 0)
        blocks.append(_context(f"…truncated, {more} more line{'s' if more != 1 else ''}"))
    return blocks


# --- messages -----------------------------------------------------------------------------


def _share_block(value: str) -> Block:
    if len(value) > MAX_BUTTON_VALUE:
        raise ValueError(f"share value is {len(value)} characters; Slack allows 2000")
    return {
        "type": "actions",
        "elements": [_button(SHARE_LABEL, action_id=SHARE_ACTION, value=value)],
    }


def _shared_by(user: str) -> Block:
    """Who shared a message to the channel: a mention of a real user id, built here."""
    return _context(f"Shared by <@{user}>" if _SLACK_USER_ID.match(user) else "Shared")


def blocks(message: Message, *, share_value: str | None = None) -> list[Block]:
    """Block Kit for `message`: who shared it, heading, lines, cards, note, attachment, share
    button.

    Never more than 50 blocks: cards and then the attachment are cut (with a note) to fit.
    Raises ValueError only for a `share_value` over Slack's 2000 characters.
    """
    shared = [_shared_by(message.shared_by)] if message.shared_by is not None else []
    head = [*shared, *_heading_blocks(message)]
    note = escape(message.note or "").strip()
    tail = [_context(_shorten(note, MAX_TEXT))] if note else []
    share = [_share_block(share_value)] if share_value is not None else []
    budget = MAX_BLOCKS - len(head) - len(tail) - len(share)
    reserved = 2 if message.attachment else 0  # the attachment keeps at least a section
    action_ids = (f"{LINK_ACTION_PREFIX}{n}" for n in itertools.count(1))
    cards = _cards_blocks(message.cards, budget - reserved, action_ids)
    attachment = (
        _attachment_blocks(message.attachment, budget - len(cards)) if message.attachment else []
    )
    return [*head, *cards, *tail, *attachment, *share]


def fallback_text(message: Message) -> str:
    """Plain `text` for notifications and screen readers: the heading and the card titles."""
    heading = " ".join(_naming_channel(escape(message.text), message.channel).split())
    titles = [_inline(card.title) for card in message.cards]
    if heading:
        parts = [heading, *(f"• {title}" for title in titles if title)]
    elif titles:
        parts = [title for title in titles if title]
    else:
        parts = [_inline(line) for line in message.lines[:1]]
    if message.attachment:
        parts.append(_inline(message.attachment.filename))
    return _shorten("\n".join(part for part in parts if part), MAX_TEXT) or "paperboy"
