"""Neutral messages as discord.py send arguments: a pure module (no network, no client).

Escaping. Discord parses markdown in message content, embed titles, descriptions and field
values, and a backslash before any ASCII punctuation shows that character literally. `escape`
backslash-escapes every markdown character (`\\ * _ ~ | ` [ ] < >`) and the markers that only
count at the start of a line (`#` headings, `-#` subtext, `-`/`+` lists, `1.` lists), and puts
a zero-width space after `@` in `@everyone`, `@here` and raw ids (`discord.utils.
escape_mentions`, which is right for those). Escaping `<` defuses every bracketed form at once:
`<@1>`, `<@!1>`, `<@&1>` roles, `<#1>` channels, `</cmd:1>` slash mentions, `<t:1:R>`
timestamps, `<:emoji:1>` and `<https://...>` links; a zero-width space after `<` in `<@` and
`<#` also keeps the raw text free of mention syntax, for anything that reads it without
markdown. Escaping `[` defuses masked links.
`discord.utils.escape_markdown` is not used: it escapes only the first masked link of a line
(its pattern is a greedy `\\[.+\\]\\(.+\\)`), leaves anything inside a "URL" alone (so
`https://x/[a](https://evil)` keeps a live masked link) and misses `1.` lists, `<`, `>` and
`#`/`-` after leading spaces. Bare http(s) URLs are kept verbatim so they still autolink, but
only while they consist of characters that can't open a link, mention or code span (`_` and
`~` may stay: at worst some URL text turns italic). Unsafe characters (`bot.text`: control
characters, lone surrogates, bidi controls) are dropped everywhere. The core marks inline
code with backticks in `Message.text`, `lines` and `note`: those spans stay code (nothing
inside needs escaping; an unpaired backtick is dropped). Footers don't render markdown, so
they get plain text.
AllowedMentions.none() in `send_kwargs` is the first layer against pings; escaping the second.

Layout. Content is the heading and lines; each paper card is an embed (title linking to the
Hugging Face page, summary, Authors/Upvotes/Published inline fields, a Links field of masked
links, thumbnail). `Message.note` is the footer of the last embed, or a `-#` subtext line in
the content when there are no cards. Demo cards say "Demo sample" in their footer, and a card
that counts its savers says "saved by N" there. Cards beyond Discord's 10 embeds, or beyond
its 6000 characters of embed text per message (which is met by cutting summaries first, then
dropping trailing cards), are listed by title in the content, and content beyond 2000
characters is cut at a word. So a message sent through the Outbound port, and a command's
answer, is first spread over as many Discord messages as keep every line and card whole
(`spread`): only a line or a card too big for a message alone is cut. An attachment becomes
a `discord.File`; a message with nothing to show says "paperboy" (Discord refuses an empty
message).

Discord limits respected here: 2000 characters of content, 10 embeds per message, title 256,
description 4096, field value 1024, footer 2048, 25 fields, and 6000 characters of embed text
across all embeds of a message (field names are the adapter's own, well under 256).
"""

from __future__ import annotations

import io
import mimetypes
import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlsplit

import discord
from discord.utils import escape_mentions

from bot.cards import saved_by_text
from bot.messages import CHANNEL_SLOT, Attachment, Message, PaperCard
from bot.text import strip_unsafe

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_FIELDS = 25
MAX_EMBED_TOTAL = 6000  # title, description, fields and footer, summed over all embeds
MAX_URL = 2048  # longer URLs are left out
MAX_AUTHORS = 3
MAX_AUTHORS_TEXT = 300  # the shown names, before " +N more"
MAX_LINK_LABEL = 64
MAX_FILENAME = 100
MAX_FILE_BYTES = 10 * 1024 * 1024  # Discord's smallest upload limit (servers without boosts)
MIN_SUMMARY = 40  # a summary squeezed below this is left out rather than shown as a stub
WORD_CUT_SLACK = 30  # characters given up at most to end a cut text between words

EMBED_COLOUR = discord.Colour(0xFFD21E)  # Hugging Face yellow
FALLBACK_CONTENT = "paperboy"
DEMO_FOOTER = "Demo sample"
LINK_SEPARATOR = " · "
ZWSP = "\u200b"

_MARKDOWN_CHAR = re.compile(r"[\\*_~|`\[\]<>]")
_RAW_MENTION = re.compile(r"<(?=[@#])")  # `<@1>`, `<@&1>`, `<#1>`: break the raw syntax too
# At a line start: headings and subtext (`#`, `-#`), bullets (`-`, `+`; `*` is always
# escaped) and numbered lists (`1. `). Leading spaces don't stop Discord seeing them.
_LINE_MARKER = re.compile(r"^([^\S\n]*)(?:([#+-])|(\d+)\.(?=\s|$))", re.MULTILINE)
# A bare URL made only of characters that can't start markup (no `*|`[]<>()\`, no spaces).
_BARE_URL = re.compile(r"https?://[\w\-.~:/?#@!$&'+,;=%]+", re.IGNORECASE)
# One indivisible piece of rendered text: an escape, a code span, or one character.
_UNIT = re.compile(r"\\.|`[^`]*`|.", re.DOTALL)
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$")
# Percent-encode everything but RFC 3986 characters that can't end a masked link's `(url)`:
# `(`, `)`, `[`, `]`, spaces, `<`, `>`, `\` and quotes all get encoded.
_URL_SAFE = ":/?#@!$&'*+,;=%~"
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_FILENAME_JUNK = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS = re.compile(r"\.{2,}")


# --- text ---------------------------------------------------------------------------------


def _defuse(text: str) -> str:
    """A zero-width space after `@` in `@everyone`, `@here` and raw ids, and after `<` in
    `<@`/`<#`, so the raw text holds no mention syntax (even where markdown doesn't apply)."""
    return _RAW_MENTION.sub("<" + ZWSP, escape_mentions(text))


def _escape_line_marker(match: re.Match[str]) -> str:
    indent, marker, number = match.groups()
    return f"{indent}\\{marker}" if marker else f"{indent}{number}\\."


def escape(text: str) -> str:
    """Plain text as Discord markdown that renders literally and can't ping or link.

    Backslashes before markdown characters and line-start markers, a zero-width space after
    the `@` of `@everyone`/`@here`/ids; bare http(s) URLs kept so they still autolink.
    """
    text = _defuse(strip_unsafe(text))
    pieces = []
    last = 0
    for url in _BARE_URL.finditer(text):
        pieces.append(_MARKDOWN_CHAR.sub(r"\\\g<0>", text[last : url.start()]))
        pieces.append(url.group())
        last = url.end()
    pieces.append(_MARKDOWN_CHAR.sub(r"\\\g<0>", text[last:]))
    # A bare URL starts with `h`, so line-start markers are never inside one.
    return _LINE_MARKER.sub(_escape_line_marker, "".join(pieces))


def _one_line(text: str) -> str:
    """Text on one line, whitespace runs collapsed (not yet escaped)."""
    return " ".join(strip_unsafe(text).split())


def _inline(text: str) -> str:
    """Escaped text on one line."""
    return escape(_one_line(text))


def _markup(text: str) -> str:
    """Core text: backtick code spans stay code, everything else is escaped.

    An unpaired last backtick is dropped; empty spans are dropped; adjacent spans get a
    zero-width space between them so their backticks can't merge into a `` delimiter.
    """
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an odd number of backticks: drop the last one
        parts[-2:] = [parts[-2] + parts[-1]]
    out: list[str] = []
    for index, part in enumerate(parts):
        if index % 2 == 0:
            escaped = escape(part)
            if escaped:  # skip empties: adjacent code spans must be seen as adjacent
                out.append(escaped)
            continue
        code = _defuse(strip_unsafe(part).replace("\n", " "))  # one line: a break could end it
        if not code.strip():
            continue
        if out and out[-1].endswith("`"):
            out.append(ZWSP)
        out.append(f"`{code}`")
    return "".join(out)


def _shorten(text: str, limit: int) -> str:
    """Rendered text cut to `limit` characters with an ellipsis, between words where one ends
    in its last WORD_CUT_SLACK characters, and never inside an escape or a code span (a code
    span too long to fit is cut inside and closed again)."""
    if len(text) <= limit:
        return text
    room = limit - 1  # for the ellipsis
    kept: list[str] = []
    size = 0
    last_space = -1  # index in `kept` of the last space between units
    for unit in _UNIT.finditer(text):
        piece = unit.group()
        if size + len(piece) > room:
            if piece.startswith("`") and len(piece) > 2 and room - size >= 3:
                kept.append(piece[: room - size - 1] + "…`")  # `code…` fits exactly
                return "".join(kept)
            if not piece.isspace() and last_space >= 0 and len(kept) - last_space <= WORD_CUT_SLACK:
                kept = kept[:last_space]  # the word that does not fit goes whole
            break
        if piece.isspace():
            last_space = len(kept)
        kept.append(piece)
        size += len(piece)
    return "".join(kept).rstrip() + "…"


def _cut(text: str, limit: int) -> str:
    """Plain (unescaped) text cut to `limit` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _footer_text(text: str) -> str:
    """Footers show text literally (no markdown): one clean line, code backticks dropped,
    mention syntax still broken."""
    return _defuse(_one_line(text.replace("`", "")))


# --- URLs ---------------------------------------------------------------------------------


def _safe_url(url: str) -> str | None:
    """An http(s) URL Discord will accept and that can't break out of a masked link's
    `(url)`, or None. Hosts must be plain DNS names; user:password@ is refused."""
    url = strip_unsafe(url).strip()
    if not re.match(r"https?://", url, re.IGNORECASE):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if "@" in parts.netloc or not _HOST.match(host):
        return None
    encoded = _BAD_PERCENT.sub("%25", quote(url, safe=_URL_SAFE))
    return encoded if len(encoded) <= MAX_URL else None


def _masked_link(label: str, url: str) -> str | None:
    """`[label](url)` for a valid URL, else None. Brackets in the label become parentheses:
    an escaped `\\[` still confuses Discord's label matching."""
    safe = _safe_url(url)
    if safe is None:
        return None
    text = _one_line(label).replace("[", "(").replace("]", ")")
    shown = _shorten(escape(text), MAX_LINK_LABEL) or "Link"
    return f"[{shown}]({safe})"


# --- embeds -------------------------------------------------------------------------------


def _authors(card: PaperCard) -> str:
    """The first three names, then " +N more"."""
    names = [name for name in (_inline(author) for author in card.authors) if name]
    more = len(names) - MAX_AUTHORS
    suffix = f" +{more} more" if more > 0 else ""
    return _shorten(", ".join(names[:MAX_AUTHORS]), MAX_AUTHORS_TEXT) + suffix


def _links(card: PaperCard) -> str:
    """Masked links joined by " · ", as many as fit one field value, in order."""
    value = ""
    for link in card.links:
        masked = _masked_link(link.label, link.url)
        if masked is None:
            continue
        joined = f"{value}{LINK_SEPARATOR}{masked}" if value else masked
        if len(joined) <= MAX_FIELD_VALUE:
            value = joined
    return value


def _footer(card: PaperCard, note: str) -> str:
    parts = [DEMO_FOOTER] if card.is_demo else []
    if card.saved_by is not None:
        parts.append(saved_by_text(card.saved_by))
    if note:
        parts.append(note)
    return _cut(" · ".join(parts), MAX_FOOTER)


def _card_embed(card: PaperCard, note: str = "") -> discord.Embed:
    """One card as an embed, without its description (the summary is added once the
    message's 6000-character budget is known)."""
    title = _inline(card.title) or _inline(card.paper_id) or "Untitled"
    embed = discord.Embed(
        title=_shorten(title, MAX_TITLE), url=_safe_url(card.url), colour=EMBED_COLOUR
    )
    fields: list[tuple[str, str, bool]] = []
    authors = _authors(card)
    if authors:
        fields.append(("Authors", authors, True))
    if card.upvotes is not None:
        fields.append(("Upvotes", _cut(str(card.upvotes), MAX_FIELD_VALUE), True))
    if card.published is not None:
        fields.append(("Published", card.published.isoformat(), True))
    links = _links(card)
    if links:
        fields.append(("Links", links, False))
    for name, value, inline in fields[:MAX_FIELDS]:
        embed.add_field(name=name, value=value, inline=inline)
    thumbnail = _safe_url(card.thumbnail) if card.thumbnail else None
    if thumbnail is not None:
        embed.set_thumbnail(url=thumbnail)
    footer = _footer(card, note)
    if footer:
        embed.set_footer(text=footer)
    return embed


def _fit(texts: list[str], budget: int) -> list[str]:
    """Cut the texts to fit `budget` characters in all, fairly: the longest are cut to a
    common cap (water-filling); a text cut below MIN_SUMMARY is dropped."""
    if sum(len(text) for text in texts) <= budget:
        return texts
    low, high = 0, max(len(text) for text in texts)
    while low < high:  # the largest cap with sum(min(len, cap)) <= budget
        cap = (low + high + 1) // 2
        if sum(min(len(text), cap) for text in texts) <= budget:
            low = cap
        else:
            high = cap - 1
    fitted = []
    for text in texts:
        if len(text) <= low:
            fitted.append(text)
        else:
            fitted.append(_shorten(text, low) if low >= MIN_SUMMARY else "")
    return fitted


def _summary(card: PaperCard) -> str:
    return _shorten(_inline(card.summary or ""), MAX_DESCRIPTION)


def _whole_size(card: PaperCard, note: str) -> int:
    """The characters `card`'s embed counts towards the 6000 with its whole summary."""
    return len(_card_embed(card, note)) + len(_summary(card))


def _embeds(cards: tuple[PaperCard, ...], note: str) -> list[discord.Embed]:
    """Embeds for as many leading cards as Discord allows, the note on the last one.

    Over 6000 characters in all, summaries are cut first; if the embeds still don't fit
    without any summary, trailing cards are left out (the caller lists them by title).
    Never empty when there are cards: one embed without its summary is at most ~3700.
    """
    shown = list(cards[:MAX_EMBEDS])
    while True:
        embeds = [
            _card_embed(card, note if index == len(shown) - 1 else "")
            for index, card in enumerate(shown)
        ]
        if len(shown) <= 1 or sum(len(embed) for embed in embeds) <= MAX_EMBED_TOTAL:
            break
        shown.pop()
    budget = MAX_EMBED_TOTAL - sum(len(embed) for embed in embeds)
    summaries = [_summary(card) for card in shown]
    for embed, summary in zip(embeds, _fit(summaries, max(budget, 0)), strict=True):
        if summary:
            embed.description = summary
    return embeds


# --- attachment ---------------------------------------------------------------------------


def safe_filename(name: str, mime_type: str = "text/plain") -> str:
    """An ASCII filename of letters, digits, `.`, `_` and `-`, with an extension.

    A `SPOILER_` prefix is removed: discord.py would blur the file.
    """
    ascii_name = (
        unicodedata.normalize("NFKD", strip_unsafe(name)).encode("ascii", "ignore").decode()
    )
    ascii_name = _FILENAME_JUNK.sub("_", ascii_name)
    ascii_name = _DOTS.sub(".", ascii_name).strip("._-")
    while ascii_name.upper().startswith("SPOILER_"):
        ascii_name = ascii_name[len("SPOILER_") :].strip("._-")
    stem, dot, extension = ascii_name.rpartition(".")
    if not dot or not stem or not extension:
        stem = ascii_name
        extension = (mimetypes.guess_extension(mime_type) or ".txt").lstrip(".")
    extension = extension[:10]
    stem = stem[: MAX_FILENAME - len(extension) - 1].rstrip("._-") or "attachment"
    return f"{stem}.{extension}"


def _file_data(attachment: Attachment) -> bytes:
    return attachment.content.encode("utf-8", "replace")  # lone surrogates can't be encoded


def _file_problem(attachment: Attachment) -> str:
    """A content line saying why the attachment is missing, or "" when it can be attached."""
    size = len(_file_data(attachment))
    if size <= MAX_FILE_BYTES:
        return ""
    name = safe_filename(attachment.filename, attachment.mime_type)
    return f"{escape(name)} is too large to attach ({size:,} bytes)."


def _file(attachment: Attachment) -> discord.File | None:
    """The attachment as a file, or None when it is too large to attach."""
    data = _file_data(attachment)
    if len(data) > MAX_FILE_BYTES:
        return None
    name = safe_filename(attachment.filename, attachment.mime_type)
    return discord.File(io.BytesIO(data), filename=name)


# --- messages -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DiscordMessage:
    """What one `Message` sends. Render afresh for each send: a `discord.File` is read once."""

    content: str  # "" when there is nothing outside the embeds
    embeds: list[discord.Embed]
    file: discord.File | None

    def send_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `send`/`send_message`/`followup.send`; never pings anyone."""
        kwargs: dict[str, Any] = {
            "embeds": list(self.embeds),
            "allowed_mentions": discord.AllowedMentions.none(),
        }
        if self.content:
            kwargs["content"] = self.content
        if self.file is not None:
            kwargs["file"] = self.file
        return kwargs


def _overflow_lines(cards: tuple[PaperCard, ...]) -> list[str]:
    if not cards:
        return []
    plural = "s" if len(cards) != 1 else ""
    titles = [_inline(card.title) or _inline(card.paper_id) or "Untitled" for card in cards]
    return [f"Plus {len(cards)} more paper{plural} not shown below:", *(f"• {t}" for t in titles)]


def _content(message: Message, shown: int) -> str:
    """`message`'s content, uncut, with its first `shown` cards as embeds: the heading (the
    channel's mention at its slot, the sharer's mention above it), the lines, the cards left
    over listed by title, the note when no embed carries it, and why an attachment is missing."""
    heading = _markup(message.text).strip()
    if message.channel is not None:
        # The channel's mention, built here from a real id: Discord shows its name.
        mention = f"<#{message.channel}>" if message.channel.isdigit() else "a channel"
        heading = heading.replace(CHANNEL_SLOT, mention)
    lines = [heading, *(_markup(line) for line in message.lines)]
    if message.shared_by is not None and message.shared_by.isdigit():
        # The sharer's own mention, built here; AllowedMentions.none() keeps it from pinging.
        lines.insert(0, f"Shared by <@{message.shared_by}>")
    lines += _overflow_lines(message.cards[shown:])
    note = _one_line(message.note or "")
    if note and not shown:
        lines.append(f"-# {_markup(note)}")
    if message.attachment is not None:
        lines.append(_file_problem(message.attachment))
    return "\n".join(line for line in lines if line).strip()


def _card_groups(message: Message) -> list[tuple[PaperCard, ...]]:
    """`message`'s cards in order over as few messages as show each whole (10 embeds, 6000
    characters of embed text), the note as the last one's footer; one group when they fit one
    message (or there are none). A card too big for a message alone goes alone."""
    footer = _footer_text(_one_line(message.note or ""))
    groups: list[list[PaperCard]] = [[]]
    size = 0
    for index, card in enumerate(message.cards):
        needed = _whole_size(card, footer if index == len(message.cards) - 1 else "")
        if groups[-1] and (len(groups[-1]) == MAX_EMBEDS or size + needed > MAX_EMBED_TOTAL):
            groups.append([])
            size = 0
        groups[-1].append(card)
        size += needed
    return [tuple(group) for group in groups]


def _text_pieces(message: Message) -> list[Message]:
    """`message` without its cards, its lines in order over as few messages as keep each
    within 2000 characters of content: the first with the heading and the attachment, the last
    with the note unless a card carries it. A line too long for a message alone goes alone."""
    note = None if message.cards else message.note
    whole = replace(message, cards=(), note=note)
    if len(_content(whole, 0)) <= MAX_CONTENT:
        return [whole]
    rest = Message(text="", visibility=message.visibility)
    pieces = [replace(whole, lines=(), note=None)]
    for line in message.lines:
        grown = replace(pieces[-1], lines=(*pieces[-1].lines, line))
        if len(_content(grown, 0)) <= MAX_CONTENT or not _content(pieces[-1], 0):
            pieces[-1] = grown
        else:
            pieces.append(replace(rest, lines=(line,)))
    if note:
        grown = replace(pieces[-1], note=note)
        if len(_content(grown, 0)) <= MAX_CONTENT or not _content(pieces[-1], 0):
            pieces[-1] = grown
        else:
            pieces.append(replace(rest, note=note))
    return pieces


def spread(message: Message) -> list[Message]:
    """`message` as the Discord messages that show it whole: itself while one message holds it
    (2000 characters of content, 10 embeds, 6000 characters of embed text), else its lines and
    then its cards, in order, over as few messages as hold them: the first with the heading
    and the attachment, the last with the note (the last embed's footer, or a subtext line);
    the first cards go with the last lines. Only a line or a card too big for a message alone
    is cut, by `render`."""
    texts = _text_pieces(message)
    groups = _card_groups(message)
    if len(texts) == 1 and len(groups) == 1:
        return [message]
    rest = Message(text="", visibility=message.visibility)
    pieces = [*texts[:-1], replace(texts[-1], cards=groups[0])]
    pieces += [replace(rest, cards=group) for group in groups[1:]]
    if message.cards:
        pieces[-1] = replace(pieces[-1], note=message.note)
    return pieces


def render(message: Message) -> DiscordMessage:
    """discord.py arguments for `message`: content, one embed per card, the attachment. What
    one message cannot hold is cut (`spread` first to keep it whole)."""
    note = _one_line(message.note or "")
    embeds = _embeds(message.cards, _footer_text(note)) if message.cards else []
    file = _file(message.attachment) if message.attachment else None
    content = _shorten(_content(message, len(embeds)), MAX_CONTENT)
    if not content.strip():
        content = "" if embeds or file else FALLBACK_CONTENT
    return DiscordMessage(content=content, embeds=embeds, file=file)
