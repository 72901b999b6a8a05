"""Hostile command input cannot break the bot.

Property-based: the parser, and every command handler through `Paperboy.handle_command` on a
real store (SQLite and PostgreSQL), get arbitrary unicode, 10k-character text, control and
bidi characters, NUL bytes, SQL and full-text query syntax and chat markup, both as random
text and shaped like each command of the surface with hostile arguments. Whatever comes in:
no handler fails, the answer is short, a rejected command changes no row of any table, and an
accepted one changes only the caller's own rows, storing exactly the (normalised) text typed.
"""

from __future__ import annotations

import asyncio
import inspect as pyinspect
import itertools
import json
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, inspect, select, text

from bot import app, commands, daily, digest, weekly
from bot.app import SOMETHING_WENT_WRONG
from bot.commands import channels, digests, library, papers
from bot.commands import parser as p
from bot.commands import weekly as weekly_commands
from bot.commands.parser import MAX_COMMAND_LENGTH, MAX_TOPIC_LENGTH, UsageError, parse
from bot.delivery import slots, status
from bot.events import ChannelRef, CommandInvoked, Scope
from bot.links import ARCHIVES
from bot.messages import Message
from storage.models import ChannelSubscription, ChannelTopic, DigestSetting, Follow
from storage.store import Store
from tests.core_fixtures import SCOPE, Harness

# Hostile material ---------------------------------------------------------------------------

SQL = (
    "'; DROP TABLE papers;--", "' OR '1'='1", '"; DELETE FROM follows; --', "%", "_", "\\",
    "%_%", "\\%", "'", "''", ";", "--", "/*", "*/", "$1", "?", "%s", "{0}",
)  # fmt: skip
FULL_TEXT = (
    '"', '""', "*", "a*", "NEAR(", "NEAR(a b, 2)", ")", "AND", "OR", "NOT", "-", ":", "^",
    "title:", "{a b}", "!", "&", "|", "<->", "&&", "||", "(",
)  # fmt: skip
MARKUP = (
    "<!channel>", "<!here>", "<!everyone>", "@everyone", "@here", "<@U123>", "<#C123>",
    "<https://evil.example|click>", "`", "```", "*bold*", "_it_", "~strike~", "|", ">", "&lt;",
    "&amp;", "||spoiler||", "[x](https://evil.example)", "<script>alert(1)</script>",
)  # fmt: skip
CONTROL = (
    "\x00", "\x1b[31m", "\x07", "\x7f", "\u0085", "\u202e", "\u2066", "\u2069", "\u200b",
    "\u200f", "\ufeff", "\u2028", "\r\n", "\t", "\ud800",
)  # fmt: skip
UNICODE = (
    "İ", "ß", "ﬁ", "Ǆ", "Ⅻ", "²", "٠٨:٠٠", "０８:００", "５", "𝟘𝟠", "e\u0301", "😀", "👩\u200d💻",  # noqa: RUF001
    "中文", "العربية", "\U0010ffff", "Ωmega",
)  # fmt: skip
PLAUSIBLE = (
    "c++", "text-to-speech", "bayes' rule", "a/b", "#1", "08:00", "8:05", "25:00", "24:00",
    "8am", "0830", "Europe/Berlin", "asia/tokyo", "UTC", "Mars/Olympus", "../../etc/passwd",
    "mon", "Friday", "fr", "weekdays", "daily", "weekends", "mon,wed,fri", "mon-thu,sat",
    "mon,,fri", "0", "1", "3", "10", "11", "99", "-1", "2405.15738", "2405.15738v2",
    "arXiv:2405.15738", "https://arxiv.org/abs/2405.15738v2", "hep-th/9901001", "demo-007",
    "2605.00101", "<https://huggingface.co/papers/2605.00102>", "bibtex", "BibTeX", "add",
    "remove", "on", "off", "now", "status", "post-now", "topics",
)  # fmt: skip
CLEAN = SQL + FULL_TEXT + MARKUP + UNICODE + PLAUSIBLE

# A "word" as someone might type it: hostile material, random printable unicode (no control
# characters, so the parser looks past its first check), or pieces of both glued together.
printable = st.characters(exclude_categories=("Cc", "Cs"))
atom = st.sampled_from(CLEAN)
word = st.one_of(
    atom,
    st.text(printable, min_size=1, max_size=12),
    st.lists(st.one_of(atom, st.text(printable, max_size=4)), min_size=1, max_size=4).map("".join),
)
args = st.lists(word, max_size=5).map(" ".join)
# The same with control, bidi and invisible characters, and any code point at all.
dirty_word = st.one_of(word, st.sampled_from(CONTROL), st.text(min_size=1, max_size=12))
dirty_args = st.lists(dirty_word, max_size=5).map(" ".join)
huge = st.builds(
    lambda w, n: (w * (n // max(len(w), 1) + 1))[:n], dirty_word, st.integers(10_000, 12_000)
)
# Topics the parser accepts, in any script, with the joiners it allows.
good_topic = st.from_regex(r"\w[\w .+#'/-]{0,60}", fullmatch=True)
topicish = st.one_of(args, good_topic, st.tuples(good_topic, atom).map(" ".join))
time_ = st.one_of(st.times().map(lambda t: t.strftime("%H:%M")), word)
timezone = st.one_of(st.sampled_from(["UTC", "Europe/Berlin", "america/new_york"]), word)
count = st.one_of(st.integers(-2, 12).map(str), word)
days = st.one_of(st.sampled_from(["weekdays", "daily", "mon,wed,fri", "fri-mon"]), word)


def spelled(name: str) -> st.SearchStrategy[str]:
    """A command word as people type it."""
    return st.sampled_from([name, name.upper(), name.title()])


def shaped(*parts: st.SearchStrategy[str] | str) -> st.SearchStrategy[str]:
    """`parts` joined by spaces; a plain string part is a command word."""
    pieces = [spelled(part) if isinstance(part, str) else part for part in parts]
    return st.tuples(*pieces).map(lambda words: " ".join(w for w in words if w))


def maybe(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), strategy)


command_shaped = st.one_of(
    shaped("topic", topicish),
    shaped("follow", topicish),
    shaped("unfollow", topicish),
    shaped("unsave", args),
    shaped("saved", maybe(args)),
    shaped("following", maybe(args)),
    shaped("export", maybe(st.one_of(st.just("bibtex"), args))),
    shaped("digest", st.sampled_from(["daily", "weekly"]), time_, maybe(timezone)),
    shaped("digest", "weekly", word, time_, maybe(timezone)),
    shaped("digest", st.sampled_from(["off", "now", "status", ""]), maybe(args)),
    shaped("digest", args),
    shaped("channel", "on", maybe(time_), maybe(timezone), maybe(count), maybe(days)),
    shaped("channel", "topics", st.sampled_from(["add", "remove"]), topicish),
    shaped("channel", st.sampled_from(["off", "status", "post-now", ""]), maybe(args)),
    shaped("channel", args),
    shaped("help", maybe(args)),
    shaped("today", maybe(args)),
    args,
)
# A command with one control or bidi character slipped in somewhere.
smuggled = st.builds(
    lambda typed, bad, at: typed[:at] + bad + typed[at:],
    command_shaped,
    st.sampled_from(CONTROL),
    st.integers(0, 100),
)
# Over-long input: 10k characters of hostile text, or a valid command padded out.
too_long = st.one_of(
    huge,
    shaped(st.sampled_from(["follow", "topic", "help", "unsave"]), huge),
    st.builds(
        str.__add__, command_shaped, st.sampled_from([" " * 10_000, "\t" * 501, " x" * 5_000])
    ),
)
any_input = st.one_of(command_shaped, smuggled, st.text(), dirty_args, too_long)

PARSER_SOURCE = pyinspect.getsource(p).lower()
# Everything the command handlers could say on their own.
BOT_MODULES = (p, commands, channels, digests, library, papers, status, app, daily, digest)
BOT_TEXT = "\n".join(
    pyinspect.getsource(module).lower() for module in (*BOT_MODULES, slots, weekly, weekly_commands)
)


# The parser alone --------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.one_of(any_input, args))
def test_the_parser_returns_a_command_or_a_short_usage_error(typed: str) -> None:
    try:
        command = parse(typed)
    except UsageError as error:
        hint = str(error)
        assert 0 < len(hint) < 400 and "\n" not in hint
        assert hint.isascii(), hint  # no echo of non-ASCII input, no control characters
        echoed = [w for w in typed.lower().split() if len(w) >= 5 and w not in PARSER_SOURCE]
        assert not [w for w in echoed if w in hint.lower()], (typed, hint)
        return
    assert len(typed) <= MAX_COMMAND_LENGTH
    assert not any(ch in typed for ch in "\x00\u202e\u2066")
    for value in vars(command).values():
        if isinstance(value, str):
            assert value.isprintable() and value == value.strip() and "  " not in value


@settings(max_examples=150, deadline=None)
@given(shaped(st.sampled_from(["follow", "unfollow", "topic"]), topicish))
@example("follow e\u0301")
def test_accepted_topics_are_the_typed_words_lower_cased_and_single_spaced(typed: str) -> None:
    try:
        command = parse(typed)
    except UsageError:
        return
    assert isinstance(command, p.Follow | p.Unfollow | p.Topic)
    # Commands are read in NFC, so a decomposed "e" + U+0301 arrives as the one letter "é".
    assert command.topic == " ".join(unicodedata.normalize("NFC", typed).split()[1:]).lower()
    assert 0 < len(command.topic) <= MAX_TOPIC_LENGTH
    assert not set(command.topic) & set('<>@`*~|%\\";:^()!&$?{}\x00')
    assert command.topic[0].isalnum() or command.topic[0] == "_"


# Every handler, on a real store --------------------------------------------------------------

ACTOR_WORKSPACE = SCOPE
OTHER_WORKSPACE = Scope(SCOPE.platform, "T2")
VICTIM_CHANNEL = ChannelRef(ACTOR_WORKSPACE, "C-victims")
FTS_TABLES = "papers_fts"  # SQLite's full-text index of papers and its shadow tables

Row = tuple[tuple[str, Any], ...]
Snapshot = dict[str, Counter[Row]]


async def snapshot(store: Store) -> Snapshot:
    """Every row of every table in the database (not just the models': Alembic's, Slack's
    installation tables, the full-text index), as multisets per table."""
    async with store.engine.connect() as conn:
        return await conn.run_sync(_snapshot)


def _snapshot(conn: Connection) -> Snapshot:
    tables: Snapshot = {}
    for name in sorted(inspect(conn).get_table_names()):
        rows = conn.execute(text(f'SELECT * FROM "{name}"')).mappings()
        tables[name] = Counter(
            tuple(sorted((key, _hashable(value)) for key, value in row.items())) for row in rows
        )
    return tables


def _hashable(value: Any) -> Any:
    """JSON columns come back as lists on PostgreSQL."""
    return json.dumps(value, sort_keys=True) if isinstance(value, list | dict) else value


async def settle() -> None:
    """Let work a command left running in the background (a search storing what Hugging Face
    found) finish, so the snapshot taken next sees all of its effect."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    if others:
        _, pending = await asyncio.wait(others, timeout=5)
        assert not pending, f"background work still running: {pending}"


@dataclass(repr=False)
class Bot:
    """The core harness with other people's data in place, and a fresh caller per example."""

    harness: Harness
    names: Callable[[], int]

    def fresh_actor(self) -> tuple[str, ChannelRef]:
        n = self.names()
        return f"mallory{n}", ChannelRef(ACTOR_WORKSPACE, f"C-mallory{n}")

    def __repr__(self) -> str:
        return "Bot(alice and bob's data in place)"

    async def run(self, typed: str, user: str, channel: ChannelRef, admin: bool) -> Message:
        answer = await self.harness.bot.handle_command(CommandInvoked(channel, user, typed, admin))
        await settle()
        return answer


@pytest.fixture
async def victims(harness: Harness) -> AsyncIterator[Bot]:
    """alice and bob in the caller's workspace, and alice in workspace T2, each with follows,
    saves, a digest and a channel's daily post with a topic."""
    for user, channel in (("alice", VICTIM_CHANNEL), ("bob", VICTIM_CHANNEL),
                          ("alice", ChannelRef(OTHER_WORKSPACE, "C1"))):  # fmt: skip
        await harness.say("follow diffusion", user=user, channel=channel)
        await harness.say("follow c++ text-to-speech", user=user, channel=channel)
        await harness.say("digest weekly fri 07:30 Asia/Tokyo", user=user, channel=channel)
        await harness.say("channel on 09:00 UTC 3", user=user, channel=channel, admin=True)
        await harness.say("channel post-now", user=user, channel=channel, admin=True)
        await harness.say("channel topics add agents", user=user, channel=channel, admin=True)
    for _, ref in harness.paper_posts():
        await harness.react(ref, user="alice")
        if ref.channel == VICTIM_CHANNEL:
            await harness.react(ref, user="bob")
    await settle()
    counter = itertools.count(1)
    yield Bot(harness, lambda: next(counter))


Owner = dict[str, Callable[[dict[str, Any]], bool]]


def owned_by(user: str, channel: ChannelRef, subscriptions: set[int]) -> Owner:
    """For each table a caller may write to, whether a row is the caller's own."""
    scope = channel.scope

    def mine(row: dict[str, Any], who: str, key: str) -> bool:
        return (row["platform"], row["workspace"], row[key]) == (scope.platform, scope.workspace,
                                                                 who)  # fmt: skip

    return {
        "follows": lambda row: mine(row, user, "user"),
        "saves": lambda row: mine(row, user, "user"),
        "digest_settings": lambda row: mine(row, user, "user"),
        "digest_items": lambda row: mine(row, user, "user"),
        "channel_subscriptions": lambda row: mine(row, channel.channel, "channel"),
        "posts": lambda row: mine(row, channel.channel, "channel"),
        "channel_topics": lambda row: row["subscription_id"] in subscriptions,
        "deliveries": lambda row: mine(row, user, "target") or mine(row, channel.channel, "target"),
    }


async def subscription_ids(store: Store, channel: ChannelRef) -> set[int]:
    async with store.transaction() as repos:
        found = await repos.channels.subscription(
            channel.scope.platform, channel.scope.workspace, channel.channel
        )
    return {found.id} if found else set()


def assert_only_own_rows_changed(
    before: Snapshot, after: Snapshot, owner: Owner, typed: str
) -> None:
    assert set(before) == set(after), f"tables changed: {set(before) ^ set(after)}"
    for table in before:
        changed = (before[table] - after[table]) + (after[table] - before[table])
        if not changed:
            continue
        if table == "papers":
            # A topic search may refresh what Hugging Face says about a paper; no paper may
            # come or go.
            ids = [sorted(dict(r)["arxiv_id"] for r in snap[table]) for snap in (before, after)]
            assert ids[0] == ids[1], typed
            continue
        if table.startswith(FTS_TABLES):
            continue  # the full-text index follows the papers table, checked above
        assert table in owner, f"{typed!r} changed {table}"
        strangers = [dict(row) for row in changed if not owner[table](dict(row))]
        assert not strangers, f"{typed!r} changed other people's {table}: {strangers}"


def assert_safe_answer(answer: Message, typed: str, echo_ok: str = "") -> None:
    """A normal answer or a usage hint, never the apology of a failed handler; bounded (a
    10k-character command is not repeated back); and no word of the input comes back unless it
    is what the command stores or shows (`echo_ok`: a topic, an arXiv id, a timezone)."""
    assert isinstance(answer, Message)
    assert answer.text and answer.text != SOMETHING_WENT_WRONG, typed
    fields = [answer.text, *answer.lines, answer.note or ""]
    assert all(len(field) <= 2 * MAX_COMMAND_LENGTH for field in fields), (typed, answer)
    assert sum(map(len, fields)) <= 4 * MAX_COMMAND_LENGTH, (typed, answer)
    shown = "\n".join(fields)
    # Input markup never comes back (paper titles are in cards, escaped by the adapters).
    assert not any(ping in shown for ping in ("<!", "@everyone", "@here", "\x00", "\u202e"))
    echo_ok = echo_ok.lower()
    foreign = {w for w in typed.lower().split() if len(w) >= 5 and w not in BOT_TEXT}
    assert not {w for w in foreign if w in shown.lower() and w not in echo_ok}, (typed, shown)
    if len(typed) > MAX_COMMAND_LENGTH:
        assert answer.is_usage_hint and len(answer.text) < 200 and answer.lines == ()


def stored_text(command: p.Command | None) -> str:
    """The text fields of a parsed command: what its answer may rightly repeat."""
    return " ".join(v for v in vars(command).values() if isinstance(v, str)) if command else ""


async def own_state(store: Store, user: str, channel: ChannelRef) -> dict[str, Any]:
    scope = channel.scope
    async with store.transaction() as repos:
        follows = await repos.session.scalars(
            select(Follow.topic).where(Follow.platform == scope.platform,
                                       Follow.workspace == scope.workspace, Follow.user == user)
        )  # fmt: skip
        digest = await repos.session.get(DigestSetting, (scope.platform, scope.workspace, user))
        subscription = await repos.session.scalar(
            select(ChannelSubscription).where(
                ChannelSubscription.platform == scope.platform,
                ChannelSubscription.workspace == scope.workspace,
                ChannelSubscription.channel == channel.channel,
            )
        )
        topics = (
            await repos.session.scalars(
                select(ChannelTopic.topic).where(ChannelTopic.subscription_id == subscription.id)
            )
            if subscription
            else []
        )
        return {
            "follows": set(follows),
            "digest": (digest.cadence, digest.weekday, digest.send_time, digest.timezone)
            if digest
            else None,
            "channel": (subscription.enabled, subscription.post_time, subscription.timezone,
                        subscription.count, subscription.days) if subscription else None,
            "topics": set(topics),
        }  # fmt: skip


def check_effect(
    command: p.Command, typed: str, was: dict[str, Any], now: dict[str, Any], admin: bool
) -> None:
    """What an accepted command stored is exactly what was typed (as the parser normalised
    it: NFC, lower-cased, single-spaced topics; canonical times, timezones and days), and
    what it left unsaid keeps its earlier value or the default."""
    words = unicodedata.normalize("NFC", typed).split()
    if isinstance(command, p.Follow):
        assert command.topic == " ".join(words[1:]).lower(), typed
        assert now["follows"] == was["follows"] | {command.topic}, typed
    elif isinstance(command, p.Unfollow):
        assert now["follows"] == was["follows"] - {command.topic}, typed
    elif isinstance(command, p.DigestSet):
        kept_tz = was["digest"][3] if was["digest"] else "UTC"
        expected = (command.cadence, command.weekday, command.time, command.timezone or kept_tz)
        assert now["digest"] == expected, typed
    elif isinstance(command, p.DigestOff):
        assert now["digest"] is None, typed
    elif not admin or not isinstance(command, p.ADMIN_COMMANDS):
        assert now == was, typed  # reading commands store nothing of the caller's
    elif isinstance(command, p.ChannelTopicAdd | p.ChannelTopicRemove):
        assert command.topic == " ".join(words[3:]).lower(), typed
        change = {command.topic} if was["channel"] else set()
        add = isinstance(command, p.ChannelTopicAdd)
        assert now["topics"] == (was["topics"] | change if add else was["topics"] - change)
    elif isinstance(command, p.ChannelOn):
        _, time, tz, count, days = was["channel"] or (True, "09:00", "UTC", 5, "mon-fri")
        expected = (True, command.time or time, command.timezone or tz, command.count or count,
                    command.days or days)  # fmt: skip
        assert now["channel"] == expected, typed
    elif isinstance(command, p.ChannelOff):
        assert now["channel"] is None or not now["channel"][0], typed


HYPOTHESIS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@HYPOTHESIS
@given(typed=st.lists(any_input, min_size=1, max_size=3), admin=st.booleans())
@example(typed=["help <!channel> @everyone `x` *b* _i_ ~s~ | > xyzzy"], admin=False)
@example(typed=["today '; DROP TABLE papers;--", "saved %_%", "export csv\\"], admin=False)
@example(
    typed=['topic "NEAR(" AND OR - : ^ *', "topic a\x00b", "follow " + "x" * 10_000], admin=False
)
@example(typed=["unsave '; DROP TABLE papers;--", "unfollow <@U123>", "following ``"], admin=False)
@example(typed=["digest daily 08:00 '; DROP TABLE papers;--", "digest weekly \u202e 08:00"],
         admin=False)  # fmt: skip
@example(typed=["channel on 09:00 \u202eUTC 3", "channel topics add <!here>", "channel xyzzy"],
         admin=True)  # fmt: skip
@example(typed=["channel post-now", "channel off", "channel topics remove agents"], admin=False)
@example(typed=["help " + "<!channel> " * 2_000, "topic a" + " " * 10_000], admin=True)
async def test_no_input_breaks_a_handler_or_touches_other_peoples_data(
    victims: Bot, typed: list[str], admin: bool
) -> None:
    """Up to three commands in a row from a fresh caller, admin or not."""
    store, platform = victims.harness.store, victims.harness.platform
    user, channel = victims.fresh_actor()
    posts, dms = len(platform.posts), len(platform.dms)
    after, echo_ok = await snapshot(store), ""
    for line in typed:
        try:
            command: p.Command | None = parse(line)
        except UsageError:
            command = None
        refused = command is None or (isinstance(command, p.ADMIN_COMMANDS) and not admin)
        before = after
        was = None if refused else await own_state(store, user, channel)
        answer = await victims.run(line, user, channel, admin)
        after = await snapshot(store)
        if not refused:
            echo_ok += " " + stored_text(command)  # later answers may list it too
        assert_safe_answer(answer, line, echo_ok)
        if refused:
            assert after == before, f"refused {line!r} changed the database"
            assert answer.is_usage_hint == (command is None), line
            assert command is None or answer.text.startswith("Only workspace admins")
            assert answer.cards == () and answer.attachment is None
            continue
        assert not answer.is_usage_hint and command is not None and was is not None
        owner = owned_by(user, channel, await subscription_ids(store, channel))
        assert_only_own_rows_changed(before, after, owner, line)
        check_effect(command, line, was, await own_state(store, user, channel), admin)
    # Messages went to the caller's channel and the caller's DMs only.
    assert {to for to, _, _ in platform.posts[posts:]} <= {channel}
    assert {to.user for to, _, _ in platform.dms[dms:]} <= {user}


def parses(typed: str) -> bool:
    try:
        parse(typed)
    except UsageError:
        return False
    return True


# Hostile but legal: SQL comments and quotes, LIKE wildcards, full-text operators and words
# made only of the characters a topic may hold.
LEGAL_WORDS = (
    "bobby'", "--", "drop", "table", "papers", "and", "or", "not", "near", "a_b", "__", "_",
    "o'reilly", "c++", "c#", "a/b", "x-y", "'", "...", "/", "#", "+", "delete", "from",
    "follows", "select", "1'-'1", "'or'", "ß", "中文", "٣", "Ωmega",
)  # fmt: skip
legal_word = st.one_of(
    st.sampled_from(LEGAL_WORDS), st.from_regex(r"\w[\w.+#'/-]{0,10}", fullmatch=True)
)
legal_topic = st.tuples(
    st.one_of(st.sampled_from(["bobby", "drop", "near", "and", "a_b", "__", "x"]),
              st.from_regex(r"\w{1,8}", fullmatch=True)),
    st.lists(legal_word, max_size=5),  # at most 68 characters: a topic holds 80
).map(lambda t: " ".join([t[0], *t[1]])).filter(
    # Leave out the few letters whose lower case is no letter ("İ" -> "i" + a combining dot).
    lambda topic: parses(f"follow {topic}")
)  # fmt: skip
paper_id = st.one_of(
    st.sampled_from(["2605.00101", "2605.00102", "https://arxiv.org/abs/2605.00101v3",
                     "<https://huggingface.co/papers/2605.00102>", "arXiv:2605.00103"]),
    # Ids arXiv could have issued (bot.links checks the month, the digits, the archive).
    st.builds(
        lambda yy, mm, number, version: f"{yy:02d}{mm:02d}.{number:05d}{version}",
        st.integers(15, 26), st.integers(1, 12), st.integers(0, 99_999),
        st.sampled_from(["", "v1", "v12"]),
    ),
    st.builds(
        lambda archive, yy, mm, number: f"{archive}/{yy:02d}{mm:02d}{number:03d}",
        st.sampled_from(sorted(ARCHIVES)), st.sampled_from([91, 99, 0, 6]),
        st.integers(1, 12), st.integers(0, 999),
    ),
    st.from_regex(r"demo-\d{3,6}", fullmatch=True),
)  # fmt: skip
hhmm = st.times().map(lambda t: t.strftime("%H:%M"))
tz = st.sampled_from(["UTC", "utc", "Europe/Berlin", "america/new_york", "Asia/Kolkata"])
weekday = st.sampled_from(["mon", "Tue", "wednesday", "THU", "fri", "sat", "sunday"])
stores_text = st.one_of(
    shaped(st.sampled_from(["follow", "unfollow", "topic"]), legal_topic),
    shaped("channel", "topics", st.sampled_from(["add", "remove"]), legal_topic),
)
accepted = st.one_of(
    stores_text,  # half of the examples: the commands that store (or search) typed text
    st.one_of(
        shaped("unsave", paper_id),
        shaped("digest", "daily", hhmm, maybe(tz)),
        shaped("digest", "weekly", maybe(weekday), hhmm, maybe(tz)),
        shaped("digest", st.sampled_from(["off", "now", "status", ""])),
        shaped("channel", "on", maybe(hhmm), maybe(tz), maybe(st.integers(1, 10).map(str)),
               maybe(st.sampled_from(["weekdays", "daily", "mon,wed,fri", "fri-mon"]))),
        shaped("channel", st.sampled_from(["off", "status", "post-now", ""])),
        shaped(st.sampled_from(["saved", "following", "today", ""])),
        shaped("export", "bibtex"),
        shaped("help", maybe(st.text(st.characters(categories=["L", "N", "P", "S"]),
                                     max_size=40))),
    ),
).filter(lambda typed: len(typed) <= MAX_COMMAND_LENGTH)  # fmt: skip


@HYPOTHESIS
@given(typed=accepted, admin=st.booleans())
@example(typed="follow bobby' -- drop table papers", admin=False)
@example(typed="FOLLOW  O'Reilly   NEAR  and  a_b  1'-'1", admin=False)
@example(typed="follow Diffusion", admin=False)  # alice's and bob's topic
@example(typed="unfollow diffusion", admin=False)
@example(typed="unsave 2605.00101", admin=False)  # a paper alice and bob saved
@example(typed="digest off", admin=False)
@example(typed="digest now", admin=False)
@example(typed="channel topics add x'-'1 or c++ a/b #1 __", admin=True)
@example(typed="channel topics remove agents", admin=True)  # the victims' channel topic
@example(typed="topic drop table papers and or not near", admin=False)
@example(typed="digest weekly sunday 23:59 america/new_york", admin=False)
@example(typed="channel on 07:05 asia/kolkata 10 fri-mon", admin=True)
@example(typed="channel post-now", admin=True)
@example(typed="channel off", admin=False)
async def test_hostile_but_legal_arguments_are_stored_verbatim_and_never_run_as_sql(
    victims: Bot, typed: str, admin: bool
) -> None:
    """Every form of the surface with arguments made of SQL, LIKE and full-text syntax that
    the parser allows: accepted, stored exactly (normalised), and nothing else changes."""
    store = victims.harness.store
    user, channel = victims.fresh_actor()
    command = parse(typed)  # every generated form is legal
    before, was = await snapshot(store), await own_state(store, user, channel)
    answer = await victims.run(typed, user, channel, admin)
    after = await snapshot(store)
    assert_safe_answer(answer, typed, stored_text(command))
    assert not answer.is_usage_hint, (typed, answer)
    if isinstance(command, p.ADMIN_COMMANDS) and not admin:
        assert after == before, typed
        return
    assert len(after["papers"]) == len(before["papers"]) > 0  # no table dropped or emptied
    owner = owned_by(user, channel, await subscription_ids(store, channel))
    assert_only_own_rows_changed(before, after, owner, typed)
    check_effect(command, typed, was, await own_state(store, user, channel), admin)
