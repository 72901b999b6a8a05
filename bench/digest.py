"""Digest composition: 10,000 users following 3 topics each (500 distinct topics).

What is measured: `bot.digest.compose_digests` for every user at once, in one transaction of
a real SQLite store holding the benchmark corpus (100k papers; 10k when quick), with no
cached window (every distinct topic searched, every candidate loaded). The users are spread
over four workspaces on two platforms; each follows one topic of a round robin over all 500
(so every topic is followed) and two drawn with a Zipf-like popularity, as a few topics are
followed by many and most by few. Topics are AI keywords and title bigrams of the corpus at
evenly spaced frequency ranks, from words in most papers to words in a handful. A third of
the users were already sent 1 to 5 papers of the window. `now` is the newest list's day at
09:00 UTC, so a daily digest's window holds that list and the ones of the three days before.

Compared with, over a sample of users, each in its own transaction as `send_digest` runs it:
the composition before batching (kept query for query in tests/test_digest_batch.py as the
tests' oracle), and `compose_digest` for one user without the window cache and with it (as
scheduled digests run, on the process's `WINDOWS`). Each sampled digest is checked to
equal the batch's.
"""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from datetime import time as clock_time
from itertools import pairwise
from pathlib import Path

from sqlalchemy import insert

from bench.common import Section, cores, ms, stopwatch
from bench.corpus import Corpus, database, seed_corpus
from bot.digest import WINDOW, Digest, WindowCache, compose_digest, compose_digests, window_days
from bot.events import Scope, UserRef
from bot.words import search_terms
from storage.models import DigestItem, Follow
from storage.store import Store
from tests.test_digest_batch import reference_digest

USERS = 10_000
TOPICS = 500
PER_USER = 3
SAMPLE = 200
BEFORE_SAMPLE = 20  # the pre-batching path takes ~0.1-0.3 s per user
RUNS = 5
TARGET_SECONDS = 5.0
SEED = 20260501
SCOPES = (Scope("slack", "T001"), Scope("slack", "T002"), Scope("slack", "T003"),
          Scope("discord", "G001"))  # fmt: skip
INSERT_BATCH = 5000

_WORD = re.compile(r"[A-Za-z][A-Za-z\-]{2,}")
_STOP = {"and", "are", "for", "from", "into", "its", "not", "the", "than", "that", "this",
         "via", "what", "when", "with", "without", "you", "your"}  # fmt: skip


def realistic_topics(corpus: Corpus, count: int = TOPICS) -> list[str]:
    """`count` distinct topics people would follow: AI keywords (two thirds) and title
    bigrams (one third) at evenly spaced ranks of their frequency, so the list runs from
    words in most papers to words in a handful."""
    keywords = Counter(k.lower() for p in corpus.papers for k in p.ai_keywords if 3 <= len(k) <= 40)
    # Bigrams of the real titles only: generated titles swap words at random.
    bigrams: Counter[str] = Counter()
    for paper in seed_corpus().papers:
        words = [w.lower() for w in _WORD.findall(paper.title)]
        bigrams.update(f"{a} {b}" for a, b in pairwise(words) if not {a, b} & _STOP)
    topics: list[str] = []
    for pool, share in ((keywords, count - count // 3), (bigrams, count // 3)):
        ranked = [t for t, _ in sorted(pool.items(), key=lambda kv: (-kv[1], kv[0]))]
        ranked = [t for t in ranked if search_terms(t) and t not in topics]
        step = max(1, len(ranked) // share)
        topics += ranked[::step][:share]
    return topics[:count]


def follows_of(topics: Sequence[str], users: int = USERS) -> list[tuple[UserRef, list[str]]]:
    rng = random.Random(SEED)
    order = list(topics)
    rng.shuffle(order)  # popularity independent of how common a topic's words are
    weights = [1 / (rank + 1) ** 0.8 for rank in range(len(order))]
    people = []
    for i in range(users):
        chosen = [order[i % len(order)]]  # round robin: every topic has followers
        while len(chosen) < PER_USER:
            topic = rng.choices(order, weights)[0]
            if topic not in chosen:
                chosen.append(topic)
        people.append((UserRef(SCOPES[i % len(SCOPES)], f"U{i:05d}"), chosen))
    return people


async def subscribe(
    store: Store, people: Sequence[tuple[UserRef, list[str]]], window: Sequence[int], now: datetime
) -> int:
    """Bulk-insert the follows, and already-sent papers for a third of the users; returns how
    many already-sent rows were written."""
    rng = random.Random(SEED + 1)
    follows = [
        {"platform": u.scope.platform, "workspace": u.scope.workspace, "user": u.user,
         "topic": topic, "created_at": now}
        for u, topics in people for topic in topics
    ]  # fmt: skip
    sent = [
        {"platform": u.scope.platform, "workspace": u.scope.workspace, "user": u.user,
         "paper_id": paper_id, "sent_at": now}
        for i, (u, _) in enumerate(people) if i % 3 == 0 and window
        for paper_id in rng.sample(list(window), min(len(window), rng.randint(1, 5)))
    ]  # fmt: skip
    for table, rows in ((Follow, follows), (DigestItem, sent)):
        for first in range(0, len(rows), INSERT_BATCH):
            async with store.transaction() as repos:
                await repos.session.execute(insert(table), rows[first : first + INSERT_BATCH])
    return len(sent)


async def measure(path: Path, corpus: Corpus, quick: bool) -> Section:
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        return await _measure(store, corpus, quick)
    finally:
        await store.close()


async def _measure(store: Store, corpus: Corpus, quick: bool) -> Section:
    now = datetime.combine(corpus.newest_day, clock_time(9), tzinfo=UTC)
    topics = realistic_topics(corpus)
    people = follows_of(topics)
    users = [user for user, _ in people]
    first, last = window_days(now, "daily")
    async with store.transaction() as repos:
        window = await repos.papers.listed_between(first, last)
        paper_count = await repos.papers.count()
    sent_rows = await subscribe(store, people, window, now)

    # The batch, cold (no cached window), RUNS times; then once more on a warm cache, which
    # leaves only the per-user queries and Python: the difference is the shared work.
    # CPU time (all threads, so SQLite's too) is shown beside wall time: on a shared machine
    # the wall time also counts waiting for a core.
    runs: list[tuple[float, float]] = []
    digests: dict[UserRef, Digest | None] = {}
    for _ in range(RUNS):
        async with store.transaction() as repos:
            cpu = time.process_time()
            with stopwatch() as took:
                digests = await compose_digests(repos, users, "daily", now, cache=None)
        runs.append((took[0], time.process_time() - cpu))
    cache = WindowCache(ttl=3600)
    async with store.transaction() as repos:
        with stopwatch() as cold_cached:
            await compose_digests(repos, users, "daily", now, cache=cache)
    async with store.transaction() as repos:
        with stopwatch() as warm:
            warm_digests = await compose_digests(repos, users, "daily", now, cache=cache)
    searches = len({tuple(search_terms(t)) for _, ts in people for t in ts})
    async with store.transaction() as repos:
        with stopwatch() as weekly:
            weekly_digests = await compose_digests(repos, users, "weekly", now, cache=None)

    # The one-user path over a sample, each digest in its own transaction.
    sample = random.Random(SEED + 2).sample(users, min(SAMPLE, len(users)))
    mismatches = sum(warm_digests[u] != digests[u] for u in users)
    single: dict[str, float] = {}
    # "cached window" uses the cache the warm batch left: every topic already matched, as
    # for all but the first few hundred of 10,000 digests due at the same time.
    for label, single_cache in (("uncached", None), ("cached window", cache)):
        with stopwatch() as took:
            for user in sample:
                async with store.transaction() as repos:
                    one = await compose_digest(repos, user, "daily", now, cache=single_cache)
                mismatches += one != digests[user]
        single[label] = took[0]
    before = sample[:BEFORE_SAMPLE]
    with stopwatch() as took:
        for user in before:
            async with store.transaction() as repos:
                one = await reference_digest(repos, user, "daily", now)
            mismatches += one != digests[user]
    single["before batching"] = took[0] * len(sample) / len(before)

    total = max(wall for wall, _ in runs)  # the target holds for the slowest run
    made = [d for d in digests.values() if d is not None]
    sizes = [len(d.paper_ids) for d in made]
    weekly_made = sum(d is not None for d in weekly_digests.values())
    per_user = {label: took / len(sample) for label, took in single.items()}

    s = Section("Digest composition for 10,000 users")
    s.target(
        f"{USERS:,} users x {PER_USER} topics ({len(topics)} distinct): total <= "
        f"{TARGET_SECONDS:.0f} s (measured {total:.2f} s, slowest of {RUNS} cold runs; "
        f"median {statistics.median(wall for wall, _ in runs):.2f} s)",
        total <= TARGET_SECONDS,
    )
    s.add(
        f"`compose_digests` for {USERS:,} users in {len(SCOPES)} workspaces on 2 platforms, "
        f"each following {PER_USER} of {len(topics)} distinct topics (corpus AI keywords and "
        f"title bigrams from common to rare), against SQLite {sqlite3.sqlite_version} holding "
        f"{paper_count:,} papers{' (quick)' if quick else ''}; daily window "
        f"{first}..{last}: {len(window)} candidate papers; {sent_rows:,} already-sent rows "
        f"for a third of the users. No window cache unless said. {cores()} cores."
    )
    s.add()
    s.table(
        ["what", "wall time", "users/s", "notes"],
        [
            [f"batch, daily, cold: run {i + 1}", f"{wall:.2f} s", f"{USERS / wall:,.0f}",
             f"CPU {cpu:.2f} s; {searches} distinct topics matched, {len(window)} papers loaded"]
            for i, (wall, cpu) in enumerate(runs)
        ] + [
            ["batch, daily, cold, filling a cache", f"{cold_cached[0]:.2f} s",
             f"{USERS / cold_cached[0]:,.0f}", "same work, window kept"],
            ["batch, daily, warm cache", f"{warm[0]:.2f} s", f"{USERS / warm[0]:,.0f}",
             "follows + already-sent queries and per-user Python only"],
            ["batch, weekly, cold", f"{weekly[0]:.2f} s", f"{USERS / weekly[0]:,.0f}",
             f"window {WINDOW['weekly'].days + 1} days; {weekly_made:,} non-empty digests"],
            [f"one user at a time, before batching ({len(before)} sampled)",
             f"{per_user['before batching'] * USERS:.1f} s extrapolated",
             f"{1 / per_user['before batching']:,.0f}",
             f"{ms(per_user['before batching'])} ms per user: the old code, query for query"],
            [f"one user at a time, uncached ({len(sample)} sampled)",
             f"{per_user['uncached'] * USERS:.1f} s extrapolated",
             f"{1 / per_user['uncached']:,.0f}",
             f"{ms(per_user['uncached'])} ms per user: a batch of one, nothing shared"],
            [f"one user at a time, cached window ({len(sample)} sampled)",
             f"{per_user['cached window'] * USERS:.1f} s extrapolated",
             f"{1 / per_user['cached window']:,.0f}",
             f"{ms(per_user['cached window'])} ms per user: scheduled digests, topics "
             "matched"],
        ],
    )  # fmt: skip
    s.add(
        f"Non-empty digests: {len(made):,} of {USERS:,}; papers per non-empty digest: "
        f"mean {statistics.fmean(sizes) if sizes else 0:.1f}, median "
        f"{statistics.median(sizes) if sizes else 0:g}, max {max(sizes, default=0)}. "
        f"Digests differing from the cold batch's (warm batch, "
        f"{2 * len(sample) + len(before)} one-user compositions): {mismatches}."
    )
    return s


def run(quick: bool = False) -> Section:
    """Compose 10,000 digests over the 100k-paper corpus (quick: the 10k-paper one)."""
    with tempfile.TemporaryDirectory() as tmp:
        path, corpus = database(10_000 if quick else 100_000, Path(tmp))
        return asyncio.run(measure(path, corpus, quick))


if __name__ == "__main__":
    print(run().markdown())
