"""Papers named in text: the arXiv ids of the links and references people paste.

Which links count (the one rule, whatever the text comes from: a command, a message someone
reacted to, a message shortcut or context menu):

- a link to a paper's page: `arxiv.org/abs|pdf|html/<id>` (`http://`, `https://` or no
  scheme; with or without `www.` or `export.`), `huggingface.co/papers/<id>`,
  `alphaxiv.org/abs/<id>` (with or without `www.`); a version (`v2`) and `.pdf` may follow
  the id, and anything after a `/`, `?` or `#` is ignored;
- `arXiv:<id>` written out (one space after the colon is allowed);
- nothing else in running text: a bare `2501.12345` there may be a version number or a
  figure. In `/papers save`, where every word is meant as a paper, a bare id counts too
  (`reference_id`).

A link counts only where one can start: at the start of the text, after whitespace, or after
punctuation that surrounds links in chat (`<`, `(`, `[`, quotes, `*`, `_`, `~`, `|`, `>`...).
So an arXiv address inside another word or URL (`notarxiv.org/abs/...`,
`https://evil.example/?u=https://arxiv.org/abs/...`) does not count, nor does a host that
only begins like arXiv's (`arxiv.org.evil.com/abs/...` is evil.com's). The id must end
where it ends: `2501.123456` or `2501.12345abc` is not `2501.12345`.

Slack writes links in message text as `<url>` or `<url|label>`: the url counts, the label
(text the sender chose to show) does not.

Ids, as arXiv defines them (arxiv.org/help/arxiv_identifier):

- new style `YYMM.NNNNN`: from 0704 (April 2007), four digits after the dot up to 1412 and
  five from 1501 on; the month is 01-12;
- old style `archive/YYMMNNN` (`hep-th/9901001`), also written with a subject class
  (`math.GT/0309136`), which is not part of the id: arXiv answers with `math/0309136`, and so
  do we;
- a version suffix is dropped: `2501.12345v3` is `2501.12345`.

A text yields at most MAX_IDS ids, in the order they first appear, each once; `FoundPapers`
says when the text named more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

MAX_IDS = 20

# ASCII letters match either case, and nothing else does: under Unicode rules `arxiv` would
# match `arx\u0131v` (with a dotless i: another domain), and `\d` Arabic-Indic digits.
_FLAGS = re.IGNORECASE | re.ASCII
# Where a link may start: at the start, or after whitespace or punctuation that surrounds
# links in chat; never after a character that makes it part of a longer word, host, path or
# query (letters, digits, `.`, `/`, `@`, `=`, `-`, `:`, `%`, `&`, `?`, `#`).
_QUOTES = r"\u201c\u201d\u2018\u2019\u00ab\u00bb"  # typographic quotes and guillemets
_START = rf"""(?:(?<![\s\S])|(?<=(?u:[\s<>()\[\]{{}}"'|*_~`,;!{_QUOTES}])))"""
_URL_PREFIX = (
    r"(?:https?://)?(?:"
    r"(?:(?:www|export)\.)?arxiv\.org/(?:abs|pdf|html)/"
    r"|(?:www\.)?huggingface\.co/papers/"
    r"|(?:www\.)?alphaxiv\.org/abs/"
    r")"
)
_ARXIV_PREFIX = r"arxiv:[ ]?"
# Syntax only: `_valid` checks the dates and lengths.
_ID = (
    r"(?:(?P<yymm>\d{4})\.(?P<number>\d{4,5})"
    r"|(?P<archive>[a-z]+(?:-[a-z]+)?)(?:\.[a-z]+(?:-[a-z]+)?)?/(?P<old>\d{7}))"
)
_SUFFIX = r"(?:v\d{1,4})?(?:\.pdf)?"
# Where an id must end: not before a letter or digit (also after one `_`), a `-`, or `.digit`.
_END = r"(?!(?u:[^\W_])|_(?u:[^\W_])|-|\.\d)"

_IN_TEXT = re.compile(f"{_START}(?:{_URL_PREFIX}|{_ARXIV_PREFIX}){_ID}{_SUFFIX}{_END}", _FLAGS)
_SLACK_LABEL = re.compile(r"<([^<>|\s]*)\|[^<>]*>")

# A word of `/papers save`: the same forms, or a bare id, and nothing around them.
_REFERENCE = re.compile(
    f"(?:{_URL_PREFIX}|{_ARXIV_PREFIX})?{_ID}{_SUFFIX}(?:[/?#].*)?", _FLAGS | re.DOTALL
)
_PREFIX = re.compile(f"(?P<url>{_URL_PREFIX})|{_ARXIV_PREFIX}", _FLAGS)
_LOOKS_LIKE_NEW_ID = re.compile(r"\d{4}\.?\d", _FLAGS)
_LOOKS_LIKE_OLD_ID = re.compile(r"(?P<archive>[a-z]+(?:-[a-z]+)?)(?:\.[a-z-]*)?/\d", _FLAGS)
_LOOKS_LIKE_LINK = re.compile(r"[a-z][a-z0-9+.-]*:/|(?:[\w-]+\.)+[a-z]{2,}(?:[/?#:]|$)", _FLAGS)
# The archives of old-style ids (before April 2007), current and retired.
ARCHIVES = frozenset(
    {
        "acc-phys", "adap-org", "alg-geom", "ao-sci", "astro-ph", "atom-ph", "bayes-an",
        "chao-dyn", "chem-ph", "cmp-lg", "comp-gas", "cond-mat", "cs", "dg-ga", "funct-an",
        "gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th", "math", "math-ph", "mtrl-th", "nlin",
        "nucl-ex", "nucl-th", "patt-sol", "physics", "plasm-ph", "q-alg", "q-bio", "quant-ph",
        "solv-int", "supr-con",
    }
)  # fmt: skip
_TOKEN = re.compile(r"<[^<>]*>|[^\s,]+")


@dataclass(frozen=True)
class FoundPapers:
    """The ids a text names, in order, each once, at most MAX_IDS; `capped` when it named
    more (the rest were not looked at)."""

    ids: tuple[str, ...]
    capped: bool = False


class Rejected(Enum):
    """Why a word of `/papers save` names no paper."""

    MALFORMED_ID = "malformed"  # an id, or a paper link, whose id is not a well-formed one
    NOT_A_PAPER_LINK = "not a paper link"  # a link to something other than a paper page
    NOT_AN_ID = "not an id"  # neither an id nor a link


def find_paper_ids(text: str, limit: int = MAX_IDS) -> FoundPapers:
    """The papers `text` names by link or `arXiv:` reference (see the module's rule)."""
    text = _SLACK_LABEL.sub(r"<\1>", text)
    found: dict[str, None] = {}
    for match in _IN_TEXT.finditer(text):
        arxiv_id = _valid(match)
        if arxiv_id is None or arxiv_id in found:
            continue
        if len(found) == limit:
            return FoundPapers(tuple(found), capped=True)
        found[arxiv_id] = None
    return FoundPapers(tuple(found))


def reference_id(word: str) -> str | Rejected:
    """The id one word names (a link, `arXiv:<id>` or a bare id, perhaps in Slack's `<...>`),
    or why it names none."""
    word = _unwrap(word)
    match = _REFERENCE.fullmatch(word)
    if match is not None:
        return _valid(match) or Rejected.MALFORMED_ID
    prefix = _PREFIX.match(word)
    if prefix is not None:  # a paper page's address or `arXiv:`, and no id after it
        if prefix.group("url") is None or _looks_like_id(word[prefix.end() :]):
            return Rejected.MALFORMED_ID
        return Rejected.NOT_A_PAPER_LINK  # e.g. huggingface.co/papers/trending
    if _looks_like_id(word):
        return Rejected.MALFORMED_ID
    if _LOOKS_LIKE_LINK.match(word):
        return Rejected.NOT_A_PAPER_LINK
    return Rejected.NOT_AN_ID


def reference_words(text: str) -> list[str]:
    """`text` split into the words `reference_id` reads: at spaces and commas, a Slack link
    (`<url|label with spaces>`) being one word."""
    return _TOKEN.findall(text)


def _unwrap(word: str) -> str:
    """`<url|label>` or `<url>` (also nested, as hostile text may be) -> url; trailing
    sentence punctuation and surrounding brackets dropped."""
    word = word.strip()
    depth = min(len(word) - len(word.lstrip("<")), len(word) - len(word.rstrip(">")))
    if depth:
        word = word[depth:-depth].split("|", 1)[0]
    word = word.strip()
    if word[:1] == "(" and word[-1:] == ")":
        word = word[1:-1]
    return word.rstrip(".;:!?")


def _looks_like_id(text: str) -> bool:
    """Whether `text` starts like an id (`2501.1`, `25011`, `hep-th/99`): a mistyped one."""
    if _LOOKS_LIKE_NEW_ID.match(text):
        return True
    old = _LOOKS_LIKE_OLD_ID.match(text)
    return old is not None and old.group("archive").lower() in ARCHIVES


def _valid(match: re.Match[str]) -> str | None:
    """The canonical id of a syntactic match, or None when arXiv could not have issued it."""
    yymm = match.group("yymm")
    if yymm is not None:
        number = match.group("number")
        month = int(yymm[2:])
        if not 1 <= month <= 12 or yymm < "0704":
            return None
        if len(number) != (4 if yymm < "1501" else 5):
            return None
        return f"{yymm}.{number}"
    archive, old = match.group("archive").lower(), match.group("old")
    if archive not in ARCHIVES or not 1 <= int(old[2:4]) <= 12:
        return None
    return f"{archive}/{old}"
