"""DM digests: new trending papers on the topics a user follows and like the papers they
saved, none sent to them before; and the digest as a kind of scheduled delivery (`Digests`),
whose sending `bot.delivery` does once.

"Like a saved paper": with search by meaning on, a paper whose vector is at least LIKE_SAVED
alike (cosine) to one of the user's latest saves, the most alike first; a weak match never pads
a digest. Without it, a paper sharing one of a save's first AI keywords (Hugging Face's, such
as "speculative decoding"), matched as a topic would be. Papers on followed topics come first
(by upvotes), then papers like the saves.

Composition is batched. Every digest over the same window shares most of its work: which
papers the recent lists hold, their cards, and which of them each topic matches (a full-text
search). `compose_digests` does that once for any number of users, then gives each user a
few set operations: their follows, saves and already-sent papers are read for all users at
once (four queries per scope and 400 users). `compose_digest` (one user) is a batch of one, so
there is one composition path.

Scheduled digests are composed one at a time (each slot fires on its own), so the shared
window work is also kept for a minute in `WINDOWS`: 10,000 digests due at 09:00 then run
each distinct topic's search once rather than 30,000 times.
"""

from __future__ import annotations

import functools
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from bot.cards import demo_note, paper_card
from bot.delivery.manual import manual_send
from bot.delivery.resumable import ResumableSend, SendKey, spread_papers
from bot.delivery.runner import Claim, Send
from bot.events import GoneWhy, MessageRef, Scope, UserRef, WorkspaceGone
from bot.messages import Message, PaperCard, Visibility, counted
from bot.ports import Delivered, DeliveryError, Outbound
from bot.words import search_terms
from storage.deliveries import DIGEST
from storage.store import Repositories, Store

if TYPE_CHECKING:
    from bot.semantic.meaning import Semantic

log = logging.getLogger(__name__)

# How far back a digest looks: a daily digest covers a weekend, a weekly one its week.
WINDOW = {"daily": timedelta(days=3), "weekly": timedelta(days=8)}
# How long a paper sent in a digest is remembered (`digest_items`): SENT_KEPT after it was
# sent and after the last list that holds it. A digest's candidates are the papers of the
# lists of its WINDOW, or of the newest list when the store has none that recent (`_window`):
# a paper on neither can never be offered again, so forgetting it sends nothing twice
# (`forgotten_before`; `bot.housekeeping` forgets). Three weeks past the longest window.
SENT_KEPT = timedelta(days=30)
MAX_PAPERS = 10
RECENT_SAVES = 10  # the saves whose keywords count, latest first
KEYWORDS_PER_SAVE = 3  # Hugging Face lists a paper's most telling keywords first
# Cosine similarity to a save that makes a paper "like" it. Measured on the real archive's
# relevance judgements (bench/relevance.json): two papers on one query's subject reach 0.6 in
# 9.5% of pairs, an on-subject and an off-subject paper of its pool in 1.7%, any two papers in
# 0.3% (about 3 of 2,097 per paper); at 0.55 those were 18%, 4.8% and 0.9%, and the pairs
# read as sharing a field rather than a subject.
LIKE_SAVED = 0.6
TOPICS_NAMED = 90  # characters of topic names in a heading; the rest of it takes about 50
LEAD = "dm"  # the part that is a whole digest in one message
NOTE = "Change topics with `/papers follow` / `unfollow`, timing with `/papers digest`."


@dataclass(frozen=True)
class Digest:
    message: Message
    paper_ids: tuple[int, ...]


@dataclass(frozen=True)
class Interests:
    """What one user's digest draws on: the topics they follow and what they saved."""

    topics: tuple[str, ...] = ()
    saved: frozenset[int] = frozenset()
    saved_keywords: tuple[str, ...] = ()  # lower-cased, as topics are


def interests(topics: Sequence[str], saves: Sequence[tuple[int, Sequence[str]]]) -> Interests:
    """A user's interests from their topics and their latest saves (paper id, AI keywords)."""
    keywords = dict.fromkeys(
        keyword.lower() for _, words in saves for keyword in words[:KEYWORDS_PER_SAVE]
    )
    return Interests(tuple(topics), frozenset(paper_id for paper_id, _ in saves), tuple(keywords))


@dataclass
class Window:
    """What every digest over one set of candidate papers shares.

    `matches` maps a topic's search terms to the candidates they match; it is filled in as
    topics come up, so a cached window serves later users' topics too.
    """

    candidates: frozenset[int]
    ranked: tuple[int, ...]  # the candidates by (upvotes, id), highest first
    cards: dict[int, PaperCard]
    built: float  # WindowCache clock reading
    matches: dict[tuple[str, ...], frozenset[int]] = field(default_factory=dict)
    vectors: dict[int, bytes] | None = None  # the candidates' vectors, read when first needed


class WindowCache:
    """Windows built in the last `ttl` seconds, per store (engine), keyed by their exact
    candidate ids.

    Correctness: the candidate ids are read afresh for every composition (one indexed query
    over a few days of listings), and only a window with exactly those ids is reused, so a
    newly ingested list is never hidden: it changes the key. What a cached window can hold
    back, for at most `ttl`, is a change to papers it already holds: new upvotes (the order)
    or rewritten text (what a topic matches). Keyed weakly by engine, so two stores in one
    process (tests) never share entries and a closed store's entries go with it.
    """

    def __init__(
        self, ttl: float = 60.0, *, size: int = 8, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.size = size  # windows per store: daily and weekly, around midnight UTC, ...
        self.clock = clock
        self._stores: weakref.WeakKeyDictionary[object, dict[frozenset[int], Window]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, store: object, candidates: frozenset[int]) -> Window | None:
        windows = self._stores.get(store, {})
        window = windows.get(candidates)
        if window is not None and self.clock() - window.built > self.ttl:
            del windows[candidates]
            return None
        return window

    def put(self, store: object, window: Window) -> None:
        windows = self._stores.setdefault(store, {})
        now = self.clock()
        for key in [k for k, w in windows.items() if now - w.built > self.ttl]:
            del windows[key]
        while len(windows) >= self.size:
            del windows[min(windows, key=lambda k: windows[k].built)]
        windows[window.candidates] = window

    def clear(self) -> None:
        self._stores.clear()


# The process's cache, used by default so scheduled single-user compositions share work.
WINDOWS = WindowCache()


async def compose_digests(
    repos: Repositories,
    users: Sequence[UserRef],
    cadence: str,
    now: datetime,
    *,
    cache: WindowCache | None = WINDOWS,
    semantic: Semantic | None = None,
    sent_before: datetime | None = None,
) -> dict[UserRef, Digest | None]:
    """Each user's digest at `now` (None when nothing is new for them), all composed at once.
    With `sent_before`, only papers sent before then count as sent (a retry's view).

    Queries: follows, saves and already-sent papers per scope (chunked), the window's listings,
    and, unless `cache` holds them, the candidates' rows and the distinct topics' matches.
    """
    digests: dict[UserRef, Digest | None] = dict.fromkeys(users)
    by_scope: dict[Scope, list[str]] = {}
    for user in digests:
        by_scope.setdefault(user.scope, []).append(user.user)
    wants: dict[Scope, dict[str, Interests]] = {}
    for scope, names in by_scope.items():
        follows = await repos.users.following_many(scope.platform, scope.workspace, names)
        saves = await repos.users.recent_saves_many(
            scope.platform, scope.workspace, names, RECENT_SAVES
        )
        wants[scope] = {
            name: interests(follows.get(name, ()), saves.get(name, ()))
            for name in follows.keys() | saves.keys()
        }
    if not any(wants.values()):
        return digests
    window = await _window(repos, cadence, now, cache)
    if window is None:
        return digests
    topics = {
        topic for scoped in wants.values() for want in scoped.values() for topic in want.topics
    }
    if semantic is None:
        topics.update(
            k for scoped in wants.values() for w in scoped.values() for k in w.saved_keywords
        )
    matches = await _match(repos, window, topics)
    saved = {want.saved for scoped in wants.values() for want in scoped.values()}
    alike = await _like_saved(repos, window, saved, semantic)
    for scope, scoped in wants.items():
        if not scoped:
            continue
        names = list(scoped)
        sent = await repos.users.already_sent_many(
            scope.platform, scope.workspace, names, window.ranked, before=sent_before
        )
        # Every save counts here, not only the latest that say what the user likes.
        theirs = await repos.users.saved_among_many(
            scope.platform, scope.workspace, names, window.ranked
        )
        for name, want in scoped.items():
            seen = sent.get(name, set()) | theirs.get(name, set())
            digests[UserRef(scope, name)] = _compose(window, want, matches, alike[want.saved], seen)
    return digests


async def compose_digest(
    repos: Repositories,
    user: UserRef,
    cadence: str,
    now: datetime,
    *,
    cache: WindowCache | None = WINDOWS,
    semantic: Semantic | None = None,
    sent_before: datetime | None = None,
) -> Digest | None:
    """What `user`'s digest holds at `now`, or None when nothing is new for them."""
    digests = await compose_digests(
        repos, [user], cadence, now, cache=cache, semantic=semantic, sent_before=sent_before
    )
    return digests[user]


def window_days(now: datetime, cadence: str) -> tuple[date, date]:
    """The first and last listing day a `cadence` digest at `now` looks at."""
    last = now.date()
    return last - WINDOW[cadence], last


def forgotten_before(now: datetime, newest: date) -> date:
    """Papers sent in digests that no list from this day on holds are no digest's candidates
    from `now` on, and may be forgotten: this day lies SENT_KEPT before `now`, far before any
    WINDOW starts, and never after the `newest` list stored (the stale store's fallback)."""
    return min(now.date() - SENT_KEPT, newest)


async def _window(
    repos: Repositories, cadence: str, now: datetime, cache: WindowCache | None
) -> Window | None:
    """The window's candidates (ids read afresh every time; see WindowCache), or None when
    the store holds no list at all."""
    first, last = window_days(now, cadence)
    ids = await repos.papers.listed_between(first, last)
    if not ids:
        # No list in the window (a stale store): fall back to the newest list there is.
        newest = await repos.papers.latest_listing_day()
        if newest is None:
            return None
        ids = await repos.papers.listed_between(newest, newest)
    candidates = frozenset(ids)
    engine = repos.session.bind
    window = cache.get(engine, candidates) if cache is not None else None
    if window is None:
        papers = sorted(
            (await repos.papers.by_ids(candidates)).values(),
            key=lambda paper: (paper.upvotes or 0, paper.id),
            reverse=True,
        )
        window = Window(
            candidates=candidates,
            ranked=tuple(paper.id for paper in papers),
            # Cards are immutable, so one per paper serves every digest that carries it.
            cards={paper.id: paper_card(paper) for paper in papers},
            built=cache.clock() if cache is not None else 0.0,
        )
        if cache is not None:
            cache.put(engine, window)
    return window


async def _match(
    repos: Repositories, window: Window, topics: set[str]
) -> dict[str, frozenset[int]]:
    """Which candidates each topic matches, filling in `window.matches`: one full-text
    match per distinct set of search terms ("kv cache" and "kv-cache" search alike),
    restricted to the candidates.

    Matching all candidates rather than each user's unsent ones gives the same matches: the
    restriction only filters.
    """
    terms = {topic: tuple(search_terms(topic)) for topic in topics}
    missing = sorted(set(terms.values()) - window.matches.keys())
    if missing:
        window.matches.update(await repos.papers.matching_ids(missing, window.ranked))
    return {topic: window.matches[terms[topic]] for topic in topics}


async def _like_saved(
    repos: Repositories,
    window: Window,
    saved: set[frozenset[int]],
    semantic: Semantic | None,
) -> dict[frozenset[int], dict[int, float]]:
    """For each set of saves, the candidates alike to one of them with their similarity (by
    meaning); empty without search by meaning, where the saves' keywords act as topics."""
    if semantic is None:
        return {ids: {} for ids in saved}
    if window.vectors is None:
        window.vectors = await semantic.vectors_of(repos, window.candidates)
    vectors = await semantic.vectors_of(repos, frozenset().union(*saved))
    return {
        ids: semantic.like_saved(
            [vectors[pid] for pid in ids if pid in vectors], window.vectors, LIKE_SAVED
        )
        for ids in saved
    }


def _compose(
    window: Window,
    want: Interests,
    matches: dict[str, frozenset[int]],
    alike: dict[int, float],
    seen: set[int],
) -> Digest | None:
    """One user's digest from the shared window: pure Python, no queries. `alike`: the
    candidates like their saves by meaning, with how alike (empty without search by meaning).
    `seen`: the candidates sent to them before or saved by them (not news to them)."""
    on_topics = frozenset().union(*(matches[topic] for topic in want.topics))
    like_saved = frozenset(alike) or frozenset().union(
        *(matches[keyword] for keyword in want.saved_keywords if keyword in matches)
    )
    rank = {paper_id: index for index, paper_id in enumerate(window.ranked)}
    fresh = [p for p in on_topics | like_saved if p not in seen]
    # Followed topics first, by upvotes; then papers like the saves, most alike first.
    fresh.sort(key=lambda p: (p not in on_topics, -alike.get(p, 0.0), rank[p]))
    chosen = fresh[:MAX_PAPERS]
    if not chosen:
        return None
    cards = tuple(window.cards[paper_id] for paper_id in chosen)
    matched = [topic for topic in want.topics if matches[topic].intersection(chosen)]
    message = Message(
        text=digest_heading(len(chosen), matched, like_saved=not on_topics.issuperset(chosen)),
        cards=cards,
        note=demo_note(cards) or NOTE,
        visibility=Visibility.PUBLIC,
    )
    return Digest(message, tuple(chosen))


async def _without_digest(repos: Repositories, users: Sequence[UserRef]) -> set[UserRef]:
    """Which of `users` have no digest set."""
    by_scope: dict[Scope, list[str]] = {}
    for user in users:
        by_scope.setdefault(user.scope, []).append(user.user)
    on: set[UserRef] = set()
    for scope, names in by_scope.items():
        found = await repos.users.with_digest(scope.platform, scope.workspace, names)
        on.update(UserRef(scope, name) for name in found)
    return set(users) - on


async def _turned_off() -> Delivered:
    return Delivered(0, note="digest off")


def digest_heading(count: int, matched: Sequence[str], *, like_saved: bool) -> str:
    """A digest's first line: how many papers, on which of the followed topics (those its
    papers are on, as many as fit in TOPICS_NAMED characters: Slack drops a header block over
    150), and whether some are like the user's saves."""
    reasons = [f"on {_named(matched)}"] if matched else []
    if like_saved:
        reasons.append("like ones you saved")
    return f"Your paperboy digest: {counted(count, 'new paper')} {' and '.join(reasons)}"


def _named(topics: Sequence[str]) -> str:
    named: list[str] = []
    for at, topic in enumerate(topics):
        rest = len(topics) - at - 1
        suffix = f" and {counted(rest, 'more topic')}" if rest else ""
        if named and len(", ".join([*named, topic]) + suffix) > TOPICS_NAMED:
            return f"{', '.join(named)} and {counted(len(topics) - at, 'more topic')}"
        named.append(topic)
    return ", ".join(named)


@dataclass
class Digests:
    """The DM digest as a kind of delivery (`bot.delivery.runner.DeliveryKind`), and
    `/papers digest now`. A permanent delivery error (DMs closed, user gone) pauses the
    user's digest with the reason; scheduled runs skip a paused digest instead of retrying
    forever, and the user asking for one (`digest now`) without an error lifts the pause. A
    DM refused as the app was removed stops the whole workspace instead (`workspace_gone`)."""

    store: Store
    outbound: Outbound
    clock: Callable[[], datetime]
    schedule_changed: Callable[[], None]  # a digest was paused or its pause lifted
    # A DM refused as the app was removed from the workspace: `Lifecycle.workspace_gone`.
    workspace_gone: Callable[[WorkspaceGone], Awaitable[None]]
    semantic: Semantic | None = None  # papers like the saves by meaning, when on

    async def prepare(self, repos: Repositories, claims: Sequence[Claim]) -> list[Send]:
        """Digests compose as they send, each in its own transaction: a morning's digests
        share their window's work through `WINDOWS` instead. A digest turned off (or its
        reader forgotten) since its slot was planned sends nothing and leaves no ledger row:
        `forget me` keeps no trace of the reader, and an off digest has no history to show."""
        users = [UserRef(claim.scope, claim.key.target) for claim in claims]
        off = await _without_digest(repos, users)
        await repos.deliveries.drop([c.key for c, u in zip(claims, users, strict=True) if u in off])
        return [
            _turned_off
            if user in off
            else functools.partial(self.send, user, scheduled=True, key=claim.send_key)
            for user, claim in zip(users, claims, strict=True)
        ]

    async def send(
        self, user: UserRef, *, scheduled: bool = False, key: SendKey | None = None
    ) -> Delivered:
        """Compose and DM `user`'s digest now; a retry of a scheduled one (`key`) sends only
        what its earlier attempts did not (see `_resumable`). One asked for (not
        `scheduled`) the ledger records as manual."""
        if scheduled:
            return await self._send(user, scheduled=True, key=key)
        send = functools.partial(self._send, user)
        return await manual_send(self.store, DIGEST, user, self.clock, send)

    async def _send(
        self, user: UserRef, *, scheduled: bool = False, key: SendKey | None = None
    ) -> Delivered:
        scope, now = user.scope, self.clock()
        retry_since = key.retry_since if key else None
        out: set[int] = set()
        async with self.store.transaction() as repos:
            setting = await repos.users.digest_setting(scope.platform, scope.workspace, user.user)
            paused = setting is not None and setting.disabled_reason is not None
            if scheduled and paused:
                log.info("digest paused, skipped: user=%s", user.user)
                return Delivered(0)
            if scheduled and setting is None:
                # Turned off (or forgotten) after its slot was planned: a worker's jobs learn
                # of it within a minute, and a retry's row outlives it.
                log.info("digest off, skipped: user=%s", user.user)
                return Delivered(0, note="digest off")
            cadence = setting.cadence if setting else "daily"
            # A retry composes the digest its first attempt chose: papers that attempt sent
            # are still in it, and known as out.
            digest = await compose_digest(
                repos, user, cadence, now, semantic=self.semantic, sent_before=retry_since
            )
            if digest is not None and retry_since is not None:
                earlier = await repos.users.already_sent_many(
                    scope.platform, scope.workspace, [user.user], digest.paper_ids
                )
                out = earlier.get(user.user, set())
        send = self._resumable(user, digest, out, now)
        try:
            sent = await send.run(self.outbound, key)
        except DeliveryError as error:
            if error.gone is GoneWhy.APP_REMOVED:
                # Not this reader's DMs: everything there stops, and resumes with the app.
                await self.workspace_gone(WorkspaceGone(user.scope))
            elif error.permanent:
                await self._pause(user, error.reason)
            raise
        if paused:
            # Only the reader asks while paused (scheduled runs skip), as the pause tells them
            # to once their DMs are open: that lifts it even with nothing new to send. DMs
            # still closed pause it again at the next digest.
            await self._pause(user, None)
        return sent

    def _resumable(
        self, user: UserRef, digest: Digest | None, out: set[int], now: datetime
    ) -> ResumableSend:
        """The digest as the messages its platform sends it in, each recording its papers as
        sent once it is out. On a retry, the papers not `out` yet."""
        if digest is None:
            return ResumableSend(user, LEAD)
        record = functools.partial(self._record_sent, user, now)
        return spread_papers(
            self.outbound, user, LEAD, digest.message, digest.paper_ids, out, record
        )

    async def _record_sent(
        self, user: UserRef, now: datetime, paper_ids: Sequence[int], ref: MessageRef
    ) -> None:
        scope = user.scope
        async with self.store.transaction() as repos:
            await repos.users.record_sent(
                scope.platform, scope.workspace, user.user, paper_ids, now
            )

    async def _pause(self, user: UserRef, reason: str | None) -> None:
        """Pause the digest with `reason`, or lift the pause (None)."""
        scope = user.scope
        async with self.store.transaction() as repos:
            setting = await repos.users.digest_setting(scope.platform, scope.workspace, user.user)
            if setting is not None:
                setting.disabled_reason = reason[:200] if reason else None
        self.schedule_changed()
        if reason:
            log.warning(
                "digest paused: platform=%s workspace=%s user=%s reason=%s",
                scope.platform, scope.workspace, user.user, reason,
            )  # fmt: skip
