"""`/papers topic` end to end through the real Slack HTTP path, against the raw query.

End to end: a signed slash command is POSTed to `paperboy serve` (a subprocess on a SQLite
file holding N papers); the time runs until the answer arrives (in the acknowledgement: these
answers are quick). Hugging Face search is answered by a local fake. One client, one command
at a time, after a warm-up. Raw: the SQL text and parameters the command hands to SQLite
(`sqlite_search`: the matches ranked and the shown papers loaded), executed alone with
Python's sqlite3 on the same file, so only the engine is timed.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.dialects import sqlite

from adapters.slack.render import blocks, fallback_text
from bench.common import Section, ms, percentile
from bench.corpus import Corpus, FullText, database, seed_corpus
from bench.served import served
from bot.cards import paper_cards
from bot.config import BotConfig
from bot.messages import Message
from bot.search import find_papers
from bot.words import search_terms
from storage.models import Paper
from storage.papers import RANK_POOL, sqlite_search
from storage.store import Store

SIZES = (1_000, 10_000, 100_000)
TOPICS = {
    "rare": "watermark",
    "common": "model",
    "multi-word": "video diffusion transformer",
}
WARM_UP = 30
RUNS = 300
TARGET_P50, TARGET_P99, TARGET_RATIO = 0.015, 0.050, 2.0
TOPIC_COUNT = BotConfig().topic_count  # papers in an answer


def raw_statement(topic: str) -> tuple[str, list[object]]:
    return sqlite_search(sqlite.dialect(), search_terms(topic), TOPIC_COUNT)


@dataclass
class TopicTimes:
    """Seconds per run, end to end and for the statement alone (raw) and without ranking
    (unranked: the newest RANK_POOL matching rowids, no bm25: what FTS5 spends finding the
    papers, as against scoring them); `matches`: how many papers match at all."""

    end_to_end: list[float] = field(default_factory=list)
    store: list[float] = field(default_factory=list)  # the command's search, in process
    render: list[float] = field(default_factory=list)  # its papers as Block Kit JSON
    raw: list[float] = field(default_factory=list)
    unranked: list[float] = field(default_factory=list)
    matches: int = 0


def timed(db: sqlite3.Connection, sql: str, params: Sequence[object]) -> float:
    start = time.perf_counter()
    db.execute(sql, params).fetchall()
    return time.perf_counter() - start


def rendered(topic: str, papers: Sequence[Paper]) -> float:
    """Seconds to make `papers` the answer's Block Kit JSON, as the Slack adapter does."""
    start = time.perf_counter()
    answer = Message(text=f"Papers on “{topic}”", cards=paper_cards(papers))
    json.dumps({"text": fallback_text(answer), "blocks": blocks(answer)})
    return time.perf_counter() - start


async def measure(path: Path, runs: int) -> tuple[list[float], dict[str, TopicTimes]]:
    """The `help` floor's times, and each topic's. Each command is followed at once by the
    same search through the Store (SQLAlchemy and aiosqlite, in this process), then one raw
    and one unranked run, so that they compare times taken under the same load: a shared
    host's speed can drift by 2x within a minute."""
    store = await Store.open(f"sqlite+aiosqlite:///{path}", migrate=False)
    async with served(path) as bot:
        for i in range(WARM_UP):
            await bot.client.command(f"topic {list(TOPICS.values())[i % len(TOPICS)]}")
        floor = [(await bot.client.command("help")).seconds for _ in range(runs)]
        topics: dict[str, TopicTimes] = {}
        with sqlite3.connect(path) as db:
            for kind, topic in TOPICS.items():
                sql, params = raw_statement(topic)
                expression = " AND ".join(f'"{term}"' for term in search_terms(topic))
                unranked = (
                    "SELECT rowid FROM papers_fts WHERE papers_fts MATCH ? "
                    "ORDER BY rowid DESC LIMIT ?"
                )
                times = topics[kind] = TopicTimes()
                for _ in range(runs):
                    answer = await bot.client.command(f"topic {topic}")
                    if answer.error:
                        raise RuntimeError(f"/papers topic {topic}: {answer.error}")
                    times.end_to_end.append(answer.seconds)
                    start = time.perf_counter()
                    papers = await find_papers(
                        store, topic, limit=TOPIC_COUNT, source=None, budget=0.0
                    )
                    times.store.append(time.perf_counter() - start)
                    times.render.append(rendered(topic, papers))
                    times.raw.append(timed(db, sql, params))
                    times.unranked.append(timed(db, unranked, (expression, RANK_POOL)))
                count = "SELECT count(*) FROM papers_fts WHERE papers_fts MATCH ?"
                times.matches = int(db.execute(count, (expression,)).fetchone()[0])
    await store.close()
    return floor, topics


def run(quick: bool = False) -> Section:
    sizes: Sequence[int] = SIZES[:2] if quick else SIZES
    runs = RUNS // 3 if quick else RUNS
    section = Section("`/papers topic` through the Slack HTTP path")
    section.add(
        f"{runs} sequential signed `/papers topic` requests per topic to `paperboy serve` "
        "(SQLite), timed from the request to the answer (which rides in the acknowledgement); "
        "raw = the search statement alone in Python's sqlite3 on the same file. Times in ms."
    )
    section.add()
    rows = []
    at_largest: dict[str, tuple[float, float, float]] = {}
    largest_times: dict[str, TopicTimes] = {}
    floors: list[float] = []
    short: list[str] = []  # topics matching fewer papers than an answer shows
    with tempfile.TemporaryDirectory(prefix="bench-topic-") as tmp:
        for size in sizes:
            path, corpus = database(size, Path(tmp))
            floor, topics = asyncio.run(measure(path, runs))
            rows.append(
                [f"{size:,}", "floor: `help` (no search)", "", ms(percentile(floor, 50)),
                 ms(percentile(floor, 99)), "", "", "", "", "", ""]
            )  # fmt: skip
            floors.append(percentile(floor, 50))
            for kind, topic in TOPICS.items():
                times = topics[kind]
                p50, p99 = percentile(times.end_to_end, 50), percentile(times.end_to_end, 99)
                raw50, raw99 = percentile(times.raw, 50), percentile(times.raw, 99)
                rows.append(
                    [f"{size:,}", f"{kind}: `{topic}`", f"{times.matches:,}", ms(p50), ms(p99),
                     ms(percentile(times.store, 50)), ms(percentile(times.render, 50)),
                     ms(raw50), ms(raw99),
                     ms(percentile(times.unranked, 50)), f"{p50 / raw50:.1f}"]
                )  # fmt: skip
                at_largest[kind] = (p50, p99, p50 / raw50)
                largest_times[kind] = times
                if times.matches < TOPIC_COUNT:
                    short.append(f"`{topic}` at {size:,} papers")
            path.unlink()
    section.table(
        [
            "papers",
            "topic",
            "matches",
            "p50",
            "p99",
            "store p50",
            "render p50",
            "raw p50",
            "raw p99",
            "unranked p50",
            "p50 ratio",
        ],
        rows,
    )
    largest = f"{sizes[-1]:,} papers"
    worst50 = max(v[0] for v in at_largest.values())
    worst99 = max(v[1] for v in at_largest.values())
    worst_ratio = max(v[2] for v in at_largest.values())
    section.target(
        f"p50 <= 15 ms at {largest} (worst topic {ms(worst50)} ms)", worst50 <= TARGET_P50
    )
    section.target(
        f"p99 <= 50 ms at {largest} (worst topic {ms(worst99)} ms)", worst99 <= TARGET_P99
    )
    section.target(
        f"end to end within 2x of the raw query at {largest} (worst {worst_ratio:.1f}x)",
        worst_ratio <= TARGET_RATIO,
    )
    # What the bot adds to the engine's time, per topic at the largest size: the Store
    # (one round trip to aiosqlite's thread, the rows made papers), then the Slack path.
    store_cost = [percentile(t.store, 50) - percentile(t.raw, 50) for t in largest_times.values()]
    slack_cost = [
        percentile(t.end_to_end, 50) - percentile(t.store, 50) for t in largest_times.values()
    ]
    # The cheapest query bounds the ratio: the floor and rendering alone add to it.
    cheapest = min(TOPICS, key=lambda kind: percentile(largest_times[kind].raw, 50))
    raw = percentile(largest_times[cheapest].raw, 50)
    render = percentile(largest_times[cheapest].render, 50)
    least = (floors[-1] + raw + render) / raw
    section.add(
        f"The floor row is the same signed request and answer without a search (`help`): "
        f"p50 {ms(floors[-1])} ms at {largest}. The store column is the command's search "
        "(`find_papers` without Hugging Face: SQLAlchemy and aiosqlite on the same file) and "
        "the render column its papers made Block Kit JSON (cards, blocks, fallback text), "
        f"both run in the benchmark's process. At {largest}, store minus raw is "
        f"{_span(store_cost)} ms (the session, a pooled connection, one round trip to "
        "aiosqlite's thread, the rows made into the five papers shown) and end to end minus "
        f"store is {_span(slack_cost)} ms (bolt's signature check and dispatch, rendering and "
        f"the acknowledgement). For the cheapest query ({cheapest}, raw {ms(raw)} ms) the "
        f"floor, the raw query and rendering ({ms(render)} ms) alone make {least:.1f}x"
        + (
            ", before any of the store's work: on this path (Python, uvicorn, bolt) the 2x "
            "target is out of reach for a query this cheap."
            if least > TARGET_RATIO
            else "."
        )
        + " The ratio is meaningful for the expensive queries. Each command is paired with a "
        "store, render, raw and unranked run at once, so all columns share the host's load of "
        "the moment. The unranked column is the same match without bm25 (the newest matching "
        "rowids only): most of an expensive query is FTS5 scoring, whose bm25 reads each "
        "term's whole document list to count the papers holding it, however few rows it ranks."
    )
    if short:
        section.add()
        section.add(
            f"Where a topic matches fewer papers than an answer shows ({', '.join(short)}), "
            "the command also asks Hugging Face search (the local fake) within its budget and "
            "stores what it finds: that row's end to end holds the HTTP call (and, when it "
            "finds papers, their storing and a second search)."
        )
    section.add()
    section.add(realism(corpus))
    return section


REALISM_SAMPLE = 10_000


def realism(corpus: Corpus) -> str:
    """How often words occur in the generated papers against the archive (the seeds)."""
    seeds = seed_corpus()
    generated = corpus.papers[len(seeds.papers) :]
    if not generated:
        return f"Corpus: {corpus.seed_source}, no generated papers."
    sample = generated[:: max(1, len(generated) // REALISM_SAMPLE)][:REALISM_SAMPLE]
    archive_text, generated_text = FullText(seeds.papers), FullText(sample)
    archive, made = archive_text.shares(), generated_text.shares()
    ratios = [made.get(term, 0.0) / share for term, share in archive.items() if share >= 0.01]
    topics = ", ".join(
        f"`{topic}` {archive_text.share(topic):.2%} / {generated_text.share(topic):.2%}"
        for topic in TOPICS.values()
    )
    return (
        f"Corpus: {corpus.seed_source} and generated papers. A word is in about as many "
        f"generated papers as archive papers: for the {len(ratios):,} terms in at least 1% "
        f"of the archive's papers, the generated share is {percentile(ratios, 10):.2f}x to "
        f"{percentile(ratios, 90):.2f}x the archive's (10th to 90th percentile; median "
        f"{percentile(ratios, 50):.2f}x; {len(sample):,} generated papers sampled). Papers "
        f"matching each topic, archive / generated: {topics}."
    )


def _span(values: Sequence[float]) -> str:
    low, high = ms(min(values)), ms(max(values))
    return low if low == high else f"{low}-{high}"
