"""Tolerant parsing of Hugging Face papers API items into `PaperData`.

Accepts daily/search items (`{"paper": {...}, "title": ..., "thumbnail": ...}`) and bare paper
objects, in the current schema and the 2024 one (no `thumbnail`, no `ai_*`). Wrong types never
raise: a broken field is dropped, an item without a usable id or title is skipped. Text no
database can store (a lone surrogate, from a broken `\ud800` escape; NUL, which PostgreSQL's
text refuses) is replaced by U+FFFD, so one bad item never costs a day's others their storing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from storage.papers import PaperData

__all__ = ["HFParseError", "parse_item", "parse_items", "strip_version"]


class HFParseError(ValueError):
    """The payload as a whole is not in the expected shape (e.g. not a JSON array)."""


_VERSION = re.compile(r"v\d+$")
# New-style (2405.15738) and old-style (hep-th/9901001) arXiv ids; nothing that could break a URL.
_ARXIV_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*(/[0-9]{7})?")
_WHITESPACE = re.compile(r"\s+")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

log = logging.getLogger(__name__)
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def strip_version(arxiv_id: str) -> str:
    """`2405.15738v2` -> `2405.15738`."""
    return _VERSION.sub("", arxiv_id.strip())


def parse_items(payload: object) -> list[PaperData]:
    """Parse a daily or search answer (a JSON array); unusable entries are skipped.

    Raises `HFParseError` when the payload is not a list.
    """
    if not isinstance(payload, list):
        raise HFParseError(f"expected a JSON array, got {type(payload).__name__}")
    papers = []
    for entry in payload:
        paper = parse_item(entry)
        if paper is not None:
            papers.append(paper)
            if _has_unstorable(entry):
                log.warning("Paper %s: text no database stores, replaced by U+FFFD", paper.arxiv_id)
    return papers


def parse_item(obj: object) -> PaperData | None:
    """Parse one daily/search item or bare paper object; None when it has no usable id or title."""
    if not isinstance(obj, Mapping):
        return None
    if "paper" in obj:
        paper = obj["paper"]
        if not isinstance(paper, Mapping):
            return None
        item: Mapping[str, Any] = obj
    else:
        paper, item = obj, {}

    arxiv_id = _arxiv_id(paper.get("id"))
    title = _one_line(paper.get("title")) or _one_line(item.get("title"))
    if arxiv_id is None or title is None:
        return None

    def pick(key: str) -> object:
        value = paper.get(key)
        return item.get(key) if value is None else value

    return PaperData(
        arxiv_id=arxiv_id,
        title=title,
        abstract=_paragraphs(paper.get("summary")) or _paragraphs(item.get("summary")) or "",
        authors=_authors(paper.get("authors")),
        ai_summary=_one_line(pick("ai_summary")),
        ai_keywords=_keywords(pick("ai_keywords")),
        published_at=_datetime(paper.get("publishedAt")) or _datetime(item.get("publishedAt")),
        upvotes=_count(pick("upvotes")),
        github_repo=_url(pick("githubRepo")),
        github_stars=_count(pick("githubStars")),
        project_page=_url(pick("projectPage")),
        thumbnail=_url(item.get("thumbnail")) or _url(paper.get("thumbnail")),
        organization=_organization(pick("organization")),
    )


def _arxiv_id(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    arxiv_id = strip_version(value)
    if len(arxiv_id) > 32 or not _ARXIV_ID.fullmatch(arxiv_id):
        return None
    return arxiv_id


def _one_line(value: object) -> str | None:
    """Whitespace (legacy titles carry "\\n  ") collapsed to single spaces; empty -> None."""
    if not isinstance(value, str):
        return None
    text = _WHITESPACE.sub(" ", _UNSTORABLE.sub("\ufffd", value)).strip()
    return text or None


def _has_unstorable(value: object) -> bool:
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, Mapping):
        return any(_has_unstorable(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_unstorable(item) for item in value)
    return False


def _paragraphs(value: object) -> str | None:
    """Hard-wrapped lines joined, blank-line paragraph breaks kept."""
    if not isinstance(value, str):
        return None
    parts = (_one_line(part) for part in _PARAGRAPH_BREAK.split(value))
    text = "\n\n".join(part for part in parts if part)
    return text or None


def _authors(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    names = []
    for author in value:
        if isinstance(author, Mapping):
            name = _one_line(author.get("name"))
            user = author.get("user")
            if name is None and isinstance(user, Mapping):
                name = _one_line(user.get("fullname"))
        else:
            name = _one_line(author)
        if name:
            names.append(name)
    return tuple(names)


def _keywords(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    seen: dict[str, None] = {}
    for keyword in value:
        text = _one_line(keyword)
        if text:
            seen.setdefault(text, None)
    return tuple(seen)


def _count(value: object) -> int | None:
    # bool is an int subclass; a JSON `true` is not a count.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _url(value: object) -> str | None:
    text = _one_line(value)
    if text is None or " " in text or not text.lower().startswith(("https://", "http://")):
        return None
    return text


def _organization(value: object) -> str | None:
    if isinstance(value, Mapping):
        return _one_line(value.get("fullname")) or _one_line(value.get("name"))
    return _one_line(value)


def _datetime(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
