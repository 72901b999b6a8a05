"""Relevance of `/papers topic` on the real archive: how many of each query's top 10 papers
are on-topic.

What is measured: `find_papers`, the search `/papers topic` runs (here with Hugging Face
search off, so the store alone answers), asked for 10 papers for each query of
`bench/relevance.json` over the real Daily Papers archive (`../shared/data/hf-daily-papers`,
2,097 papers) in a SQLite store.

How the papers were judged: each query has a written judgement of what counts as on-topic,
and each paper of its pool was read (title, AI keywords, abstract) and judged against that
text alone, before any ranking was compared. A query's pool is the papers any of these put
forward: the store's full-text search as it was when the pool was made (its top 10, and the
12 best matches of any of the query's words), and the papers matching most of the words and
phrases listed under `pooled_with` (18 a query, and 25 to 40 more for the queries whose first
pool held few on-topic papers). A result outside the pool is counted as unjudged and not
on-topic: when a new ranking brings one up, judge it against the query's text and add it to
the file.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Section
from bench.corpus import ARCHIVE, archive_days
from bot.search import find_papers
from storage.store import Store

JUDGEMENTS = Path(__file__).with_name("relevance.json")
TOP = 10
# The bar: on-topic papers in a query's top 10, for every query and on average.
EACH, AVERAGE = 8, 9


@dataclass(frozen=True)
class Query:
    query: str
    kind: str  # "keyword", "phrase" or "question"
    on_topic: str  # the written judgement
    judged: dict[str, bool]  # arXiv id -> on-topic

    @property
    def known(self) -> int:
        """On-topic papers judged so far: what a top 10 can hold at best, as far as known."""
        return sum(self.judged.values())


@dataclass(frozen=True)
class Outcome:
    query: Query
    found: list[str]  # arXiv ids, best first

    @property
    def on_topic(self) -> int:
        return sum(1 for paper in self.found if self.query.judged.get(paper) is True)

    @property
    def unjudged(self) -> int:
        return sum(1 for paper in self.found if paper not in self.query.judged)


def load_queries(path: Path = JUDGEMENTS) -> list[Query]:
    return [
        Query(q["query"], q["kind"], q["on_topic"], dict(q["judged"]))
        for q in json.loads(path.read_text(encoding="utf-8"))["queries"]
    ]


async def _rankings(queries: list[Query], directory: Path) -> list[Outcome]:
    store = await Store.open(f"sqlite+aiosqlite:///{directory / 'archive.db'}")
    try:
        now = datetime.now(UTC)
        async with store.transaction() as repos:
            for day, papers in archive_days():
                ids = await repos.papers.upsert(papers, now)
                ranked = [(ids[paper.arxiv_id], paper.upvotes) for paper in papers]
                await repos.papers.record_listing(day, ranked)
        outcomes = []
        for query in queries:
            found = await find_papers(store, query.query, limit=TOP, source=None, budget=0.0)
            outcomes.append(Outcome(query, [paper.arxiv_id for paper in found]))
        return outcomes
    finally:
        await store.close()


def run(quick: bool = False) -> Section:
    s = Section("Relevance of `/papers topic` on the real archive")
    if not ARCHIVE.is_dir():
        s.add(f"Not run: the archive ({ARCHIVE}) is not present.")
        return s
    queries = load_queries()
    with tempfile.TemporaryDirectory() as directory:
        outcomes = asyncio.run(_rankings(queries, Path(directory)))
    counts = [outcome.on_topic for outcome in outcomes]
    average = sum(counts) / len(counts)
    s.target(
        f"at least {EACH} of {TOP} on-topic for every query, full-text search "
        f"(lowest {min(counts)}, {sum(c >= EACH for c in counts)} of {len(counts)} queries)",
        min(counts) >= EACH,
    )
    s.target(
        f"at least {AVERAGE} of {TOP} on-topic on average, full-text search "
        f"(measured {average:.1f})",
        average >= AVERAGE,
    )
    s.add(
        f"{len(queries)} queries of `bench/relevance.json` (keywords, phrases and questions in "
        f"plain words), each asked for its top {TOP} papers from `find_papers` (what "
        "`/papers topic` runs, Hugging Face search off) over the 2,097 papers of the real "
        "archive. On-topic: judged by reading each paper against the query's written "
        "judgement, in a pool made before the rankings were compared (the module's docstring "
        "says how). Known: the pool's on-topic papers, the most a top 10 can hold as far as "
        "judged. Unjudged: in the top 10 but not in the pool, counted as not on-topic."
    )
    s.add()
    rows: list[list[object]] = [
        [f"`{o.query.query}`", o.query.kind, o.query.known, len(o.found), o.on_topic, o.unjudged]
        for o in outcomes
    ]
    known = sum(o.query.known for o in outcomes)
    found, unjudged = sum(len(o.found) for o in outcomes), sum(o.unjudged for o in outcomes)
    rows.append(["**total**", "", known, found, sum(counts), unjudged])
    header = ["query", "kind", "on-topic papers known", "papers found", "on-topic in top 10",
              "unjudged"]  # fmt: skip
    s.table(header, rows)
    return s
