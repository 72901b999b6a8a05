"""Parse the text after `/papers` into one typed command, or a UsageError with the right form.

The same words work on every platform. Nothing here touches storage: a rejected command
changes nothing by construction.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from zoneinfo import available_timezones

from bot.delivery.slots import WEEKDAYS, days_spec
from bot.links import MAX_IDS, Rejected, reference_id, reference_words
from bot.text import is_unsafe
from bot.words import is_word_character, search_terms
from config.settings import MAX_POST_COUNT, parse_time_of_day

MAX_COMMAND_LENGTH = 500
MAX_SAVE_LENGTH = 4000  # `save` takes up to MAX_IDS links, which run long
MAX_TOPIC_LENGTH = 80

USAGE = {
    "today": "`/papers today`",
    "topic": "`/papers topic <words>`, e.g. `/papers topic speculative decoding`",
    "week": "`/papers week`",
    "month": "`/papers month`",
    "team": "`/papers team [week|month|all]`",
    "follow": "`/papers follow <topic>`, e.g. `/papers follow latency`",
    "unfollow": "`/papers unfollow <topic>`",
    "following": "`/papers following`",
    "saved": "`/papers saved`",
    "unsave": "`/papers unsave <arXiv id>`, e.g. `/papers unsave 2405.15738`",
    "save": "`/papers save <link or arXiv id> [more...]`, "
    "e.g. `/papers save https://arxiv.org/abs/2405.15738`",
    "export": "`/papers export bibtex` or `/papers export mine`",
    "forget": "`/papers forget me`, then `/papers forget me confirm`",
    "digest": "`/papers digest daily HH:MM [timezone]`, "
    "`/papers digest weekly [mon..sun] HH:MM [timezone]`, `/papers digest off` "
    "or `/papers digest now`",
    "channel": "`/papers channel on [HH:MM] [timezone] [count] [days]`, `/papers channel off`, "
    "`/papers channel status`, `/papers channel post-now`, "
    "`/papers channel topics add|remove <topic>` "
    "or `/papers channel weekly on <mon..sun> HH:MM [timezone] | off`",
    "weekly": "`/papers channel weekly on <mon..sun> HH:MM [timezone]`, "
    "e.g. `/papers channel weekly on fri 16:00 Europe/Berlin`, or `/papers channel weekly off`",
    "help": "`/papers help`",
}

# Words, numbers and the few joiners topics need ("c++", "text-to-speech", "bayes' rule").
_TOPIC_PUNCTUATION = frozenset(" .+#'/-")
# The apostrophes phones and word processors type for ' ("smart punctuation"): the same topic.
_APOSTROPHES = str.maketrans({"\u2018": "'", "\u2019": "'"})
_DEMO_ID = re.compile(r"^(demo-\d{3,})$")
_AM_PM = re.compile(r"\d\s*[ap]\.?m\.?$", re.IGNORECASE)


class UsageError(Exception):
    """A command that cannot run; `str()` is one line showing the right form."""


# Commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Today:
    pass


@dataclass(frozen=True)
class Topic:
    topic: str


@dataclass(frozen=True)
class MostUpvoted:
    period: str  # "week" | "month": the Daily Papers lists of the last 7 or 30 days


@dataclass(frozen=True)
class Team:
    period: str  # "week" | "month" | "all": papers this workspace's members saved since then


@dataclass(frozen=True)
class Follow:
    topic: str


@dataclass(frozen=True)
class Unfollow:
    topic: str


@dataclass(frozen=True)
class Following:
    pass


@dataclass(frozen=True)
class Saved:
    pass


@dataclass(frozen=True)
class Unsave:
    paper_id: str


@dataclass(frozen=True)
class SavePapers:
    paper_ids: tuple[str, ...]  # in the order given, each once, at most MAX_IDS
    capped: bool = False  # more were given; only the first MAX_IDS are here


@dataclass(frozen=True)
class ExportBibtex:
    pass


@dataclass(frozen=True)
class ExportMine:
    pass


@dataclass(frozen=True)
class ForgetMe:
    confirmed: bool  # without it, the answer says what would be deleted and asks to confirm


@dataclass(frozen=True)
class DigestSet:
    cadence: str  # "daily" | "weekly"
    weekday: int | None  # 0 = Monday; weekly only
    time: str  # HH:MM
    timezone: str | None  # None: keep the current one, or the default


@dataclass(frozen=True)
class DigestOff:
    pass


@dataclass(frozen=True)
class DigestNow:
    pass


@dataclass(frozen=True)
class DigestStatus:
    pass


@dataclass(frozen=True)
class ChannelOn:
    time: str | None
    timezone: str | None
    count: int | None
    days: str | None = None  # cron day_of_week, e.g. "mon-fri"; None: keep the current days


@dataclass(frozen=True)
class ChannelOff:
    pass


@dataclass(frozen=True)
class ChannelStatus:
    pass


@dataclass(frozen=True)
class ChannelPostNow:
    pass


@dataclass(frozen=True)
class ChannelTopicAdd:
    topic: str


@dataclass(frozen=True)
class ChannelTopicRemove:
    topic: str


@dataclass(frozen=True)
class ChannelWeeklyOn:
    weekday: int  # 0 = Monday
    time: str  # HH:MM
    timezone: str | None  # None: keep the current one, or the default


@dataclass(frozen=True)
class ChannelWeeklyOff:
    pass


@dataclass(frozen=True)
class Help:
    pass


Command = (
    Today | Topic | Follow | Unfollow | Following | Saved | Unsave | SavePapers | ExportBibtex
    | ExportMine | ForgetMe | DigestSet | DigestOff | DigestNow | DigestStatus
    | ChannelOn | ChannelOff | ChannelStatus | ChannelPostNow | ChannelTopicAdd
    | ChannelTopicRemove | ChannelWeeklyOn | ChannelWeeklyOff | Help
    | MostUpvoted | Team
)  # fmt: skip

ArgsParser = Callable[[list[str]], Command]  # the words after a command's name

ADMIN_COMMANDS = (
    ChannelOn, ChannelOff, ChannelPostNow, ChannelTopicAdd, ChannelTopicRemove,
    ChannelWeeklyOn, ChannelWeeklyOff,
)  # fmt: skip


# Parsing --------------------------------------------------------------------------------


def usage(name: str) -> UsageError:
    return UsageError(f"Usage: {USAGE[name]}")


def parse(text: str) -> Command:
    """Parse `/papers` arguments. Raises UsageError for anything malformed."""
    limit = MAX_SAVE_LENGTH if text[:16].lower().split()[:1] == ["save"] else MAX_COMMAND_LENGTH
    if len(text) > limit:
        raise UsageError(
            f"That command is too long ({limit} characters at most). Try `/papers help`."
        )
    # One form for text that looks the same: a decomposed "é" (e + U+0301) as the composed one.
    text = unicodedata.normalize("NFC", text.replace("\t", " ").replace("\r", " "))
    text = text.replace("\n", " ")
    if any(is_unsafe(ch) for ch in text):
        raise UsageError("Commands can't contain control characters. Try `/papers help`.")
    words = text.split()
    if not words:
        return Today()
    name, args = words[0].lower(), words[1:]
    parser = _PARSERS.get(name)
    if parser is None:
        close = difflib.get_close_matches(name, _PARSERS, n=1, cutoff=0.75)
        if close:
            raise UsageError(f"Unknown command: did you mean `/papers {close[0]}`?")
        raise UsageError(
            "Unknown command. Try `/papers today`, `/papers topic <words>` or `/papers help`."
        )
    return parser(args)


def _no_args(command: Command, name: str) -> ArgsParser:
    def parse_no_args(args: list[str]) -> Command:
        if args:
            raise usage(name)
        return command

    return parse_no_args


def _is_topic(text: str) -> bool:
    return (
        bool(text)
        and (text[0].isalnum() or text[0] == "_")
        and all(is_word_character(ch) or ch in _TOPIC_PUNCTUATION for ch in text)
    )


def normalise_topic(words: list[str], name: str, *, searchable: bool = True) -> str:
    """Lower-case, single-spaced topic text, or UsageError naming `name`'s form. A new topic
    (`searchable`) needs a word the search can look for; removing one does not, so a topic
    stored before that rule can still be removed."""
    topic = " ".join(words).lower().translate(_APOSTROPHES)
    if len(topic) > MAX_TOPIC_LENGTH or not _is_topic(topic):
        raise UsageError(
            f"Usage: {USAGE[name]} (a topic is letters, digits, spaces and - . + # ' /,"
            f" {MAX_TOPIC_LENGTH} characters at most)"
        )
    if searchable and not search_terms(topic):
        raise UsageError(
            f"Usage: {USAGE[name]} (a topic needs a word other than common ones such as "
            "`the` or `of`)"
        )
    return topic


def _topic_command(
    factory: Callable[[str], Command], name: str, *, searchable: bool = True
) -> ArgsParser:
    def parse_topic(args: list[str]) -> Command:
        return factory(normalise_topic(args, name, searchable=searchable))

    return parse_topic


def parse_paper_id(value: str, name: str = "unsave") -> str:
    """Accept an arXiv id (`2405.15738`, `2405.15738v2`, `arXiv:2405.15738`, `hep-th/9901001`),
    a link to a paper (bot.links) or a demo paper's id."""
    found = reference_id(value)
    if isinstance(found, str):
        return found
    demo = _DEMO_ID.match(value.strip())
    if demo:
        return demo.group(1)
    raise usage(name)


def _unsave(args: list[str]) -> Command:
    if len(args) != 1:
        raise usage("unsave")
    return Unsave(parse_paper_id(args[0]))


_REJECTED = {
    Rejected.MALFORMED_ID: "is not a well-formed arXiv id (such as 2501.12345 or hep-th/9901001)",
    Rejected.NOT_A_PAPER_LINK: "links to something other than a paper (links to arxiv.org/abs, "
    "huggingface.co/papers or alphaxiv.org/abs name one)",
    Rejected.NOT_AN_ID: "is neither an arXiv id nor a link to a paper",
}


def _save(args: list[str]) -> Command:
    """`save <link or id> [more...]`: every word must name a paper, or nothing is saved."""
    words = reference_words(" ".join(args))
    if not words:
        raise usage("save")
    ids: dict[str, None] = {}
    for position, word in enumerate(words, start=1):
        found = reference_id(word)
        if isinstance(found, Rejected):
            demo = _DEMO_ID.match(word)
            if demo is None:
                which = "That" if len(words) == 1 else f"Item {position} of {len(words)}"
                raise UsageError(
                    f"{which} {_REJECTED[found]}; nothing was saved. Usage: {USAGE['save']}"
                )
            found = demo.group(1)
        ids.setdefault(found, None)
    chosen = tuple(ids)
    return SavePapers(chosen[:MAX_IDS], capped=len(chosen) > MAX_IDS)


def _export(args: list[str]) -> Command:
    """`export bibtex` or `export mine`."""
    exports: dict[str, Command] = {"bibtex": ExportBibtex(), "mine": ExportMine()}
    words = [arg.lower() for arg in args]
    if len(words) != 1 or words[0] not in exports:
        raise usage("export")
    return exports[words[0]]


def _forget(args: list[str]) -> Command:
    """`forget me` (asks to confirm) or `forget me confirm`."""
    words = [arg.lower() for arg in args]
    if words not in (["me"], ["me", "confirm"]):
        raise usage("forget")
    return ForgetMe(confirmed=len(words) == 2)


def parse_time(value: str, name: str) -> str:
    try:
        return parse_time_of_day(value).strftime("%H:%M")
    except ValueError:
        raise UsageError(f"Times are like 09:00, 21:30 or 9am. Usage: {USAGE[name]}") from None


def _looks_like_time(value: str) -> bool:
    """Meant as a time (then checked as one): 0830 is a mistyped time, not a count; 9am and
    9pm are times, not time zones."""
    return ":" in value or (value.isdigit() and len(value) >= 3) or bool(_AM_PM.search(value))


@cache
def _timezones() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()} | {"utc": "UTC"}


COMMON_TIMEZONES = (
    "UTC", "Europe/London", "Europe/Berlin", "Europe/Paris", "America/New_York",
    "America/Chicago", "America/Los_Angeles", "America/Sao_Paulo", "Asia/Kolkata",
    "Asia/Shanghai", "Asia/Tokyo", "Asia/Singapore", "Australia/Sydney",
)  # fmt: skip


def suggest_timezones(text: str, limit: int = 25) -> list[str]:
    """IANA names for a picker: those starting with `text` (or whose city does), then those
    containing it; spaces match underscores ("new york" finds America/New_York)."""
    needle = "_".join(text.lower().split())
    if not needle:
        return list(COMMON_TIMEZONES[:limit])
    names = sorted(_timezones().values())
    starts = [n for n in names if n.lower().startswith(needle)]
    city = [n for n in names if n not in starts and n.lower().rsplit("/", 1)[-1].startswith(needle)]
    rest = [n for n in names if n not in starts and n not in city and needle in n.lower()]
    return (starts + city + rest)[:limit]


def parse_timezone(value: str, name: str) -> str:
    canonical = _timezones().get(value.lower())
    if canonical is None:
        raise UsageError(
            f"Unknown timezone; use an IANA name such as Europe/Berlin or UTC. Usage: {USAGE[name]}"
        )
    return canonical


def parse_weekday(value: str, name: str) -> int:
    """`mon`, `Monday`, `tues`...: three letters at least of a weekday's English name."""
    try:
        return _weekday_index(value.lower())
    except ValueError:
        raise UsageError(
            f"Days are mon, tue, wed, thu, fri, sat or sun. Usage: {USAGE[name]}"
        ) from None


def _digest(args: list[str]) -> Command:
    if not args:
        return DigestStatus()
    head, rest = args[0].lower(), args[1:]
    choices: dict[str, Command] = {"off": DigestOff(), "now": DigestNow(), "status": DigestStatus()}
    if head in choices and not rest:
        return choices[head]
    if head not in ("daily", "weekly"):
        raise usage("digest")
    weekday = None
    if head == "weekly":
        weekday = 0  # Monday unless a day is given
        if rest and rest[0].isalpha():
            weekday = parse_weekday(rest.pop(0), "digest")
    if not rest or len(rest) > 2:
        raise usage("digest")
    time = parse_time(rest[0], "digest")
    timezone = parse_timezone(rest[1], "digest") if len(rest) == 2 else None
    return DigestSet(head, weekday, time, timezone)


def _channel(args: list[str]) -> Command:
    if not args:
        return ChannelStatus()
    head, rest = args[0].lower(), args[1:]
    choices: dict[str, Command] = {
        "off": ChannelOff(), "status": ChannelStatus(), "post-now": ChannelPostNow()
    }  # fmt: skip
    if head in choices and not rest:
        return choices[head]
    if head == "on":
        return _channel_on(rest)
    if head == "weekly":
        return _channel_weekly(rest)
    if head == "topics" and len(rest) >= 2 and rest[0].lower() in ("add", "remove"):
        add = rest[0].lower() == "add"
        topic = normalise_topic(rest[1:], "channel", searchable=add)
        return ChannelTopicAdd(topic) if add else ChannelTopicRemove(topic)
    raise usage("channel")


def _channel_on(args: list[str]) -> Command:
    """`on [HH:MM] [tz] [count] [days]`, each part optional but in this order."""
    time = timezone = count = days = None
    rest = list(args)
    if rest and _looks_like_time(rest[0]):
        time = parse_time(rest.pop(0), "channel")
    if rest and not rest[0].isdigit() and parse_days(rest[0]) is None:
        timezone = parse_timezone(rest.pop(0), "channel")
    if rest and parse_days(rest[0]) is None:
        value = rest.pop(0)
        if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_POST_COUNT:
            raise UsageError(
                f"The count is a number from 1 to {MAX_POST_COUNT}. Usage: {USAGE['channel']}"
            )
        count = int(value)
    if rest:
        days = parse_days(rest.pop(0))
        if days is None:
            raise UsageError(
                "Days are `weekdays`, `daily` or a list such as `mon,wed,fri`. "
                f"Usage: {USAGE['channel']}"
            )
    if rest:
        raise usage("channel")
    return ChannelOn(time, timezone, count, days)


def _channel_weekly(args: list[str]) -> Command:
    """`weekly on <day> HH:MM [tz]` or `weekly off`."""
    if [arg.lower() for arg in args] == ["off"]:
        return ChannelWeeklyOff()
    if not 3 <= len(args) <= 4 or args[0].lower() != "on":
        raise usage("weekly")
    weekday = parse_weekday(args[1], "weekly")
    time = parse_time(args[2], "weekly")
    timezone = parse_timezone(args[3], "weekly") if len(args) == 4 else None
    return ChannelWeeklyOn(weekday, time, timezone)


DAY_WORDS = {"weekdays": range(5), "daily": range(7), "everyday": range(7), "weekends": (5, 6)}


def parse_days(value: str) -> str | None:
    """`weekdays`, `daily`, `mon,wed,fri`, `mon-thu` as a canonical cron day_of_week
    (`mon-fri`, `mon,wed,fri`), or None when `value` names no days."""
    value = value.lower()
    if value in DAY_WORDS:
        return days_spec(set(DAY_WORDS[value]))
    chosen: set[int] = set()
    for part in value.split(","):
        first, dash, last = part.partition("-")
        try:
            start = _weekday_index(first)
            end = _weekday_index(last) if dash else start
        except ValueError:
            return None
        chosen.update(day % 7 for day in range(start, end + 1 + (7 if end < start else 0)))
    return days_spec(chosen)


def _weekday_index(value: str) -> int:
    for index, day in enumerate(WEEKDAYS):
        if len(value) >= 3 and day.startswith(value):
            return index
    raise ValueError(value)


def _topic(args: list[str]) -> Command:
    return Topic(normalise_topic(args, "topic"))


TEAM_PERIODS = ("week", "month", "all")


def _team(args: list[str]) -> Command:
    """`team` (the last week), `team week`, `team month` or `team all`."""
    if not args:
        return Team("week")
    if len(args) == 1 and args[0].lower() in TEAM_PERIODS:
        return Team(args[0].lower())
    raise usage("team")


_PARSERS: dict[str, ArgsParser] = {
    "today": _no_args(Today(), "today"),
    "topic": _topic,
    "week": _no_args(MostUpvoted("week"), "week"),
    "month": _no_args(MostUpvoted("month"), "month"),
    "team": _team,
    "follow": _topic_command(Follow, "follow"),
    "unfollow": _topic_command(Unfollow, "unfollow", searchable=False),
    "following": _no_args(Following(), "following"),
    "saved": _no_args(Saved(), "saved"),
    "unsave": _unsave,
    "save": _save,
    "export": _export,
    "forget": _forget,
    "digest": _digest,
    "channel": _channel,
    "help": lambda args: Help(),
}
