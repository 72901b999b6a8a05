"""Relevance of `/papers topic` on the real archive: how many of each query's top 10 papers
are on-topic, by the lexical search alone and by the hybrid one.

What is measured: `find_papers`, the search `/papers topic` runs (here with Hugging Face
search off, so the store alone answers), asked for 10 papers for each query of
`bench/relevance.json` over the real Daily Papers archive (`../shared/data/hf-daily-papers`,
2,097 papers) in a SQLite store, in both of its modes: lexical (full-text search re-ranked by
phrases) and hybrid (that fused with the nearest papers by meaning, `bot/semantic`). The
targets are judged on the hybrid column; the lexical one is shown beside it. Hybrid needs the
`semantic` extra (without it the column is reported as not run) and every paper's vector by
the real sentence model: embedding the archive takes a minute or two on 2 cores, so the
vectors are cached in `bench/.cache/` by model, arXiv id and embedded text, and later runs
only embed what changed.

How the papers were judged: each query has a written judgement of what counts as on-topic,
and each paper of its pool was read (title, AI keywords, abstract) and judged against that
text alone, before any ranking was compared. A query's pool is the papers any of these put
forward: the store's full-text search as it was when the pool was made (its top 10, and the
12 best matches of any of the query's words), and the papers matching most of the words and
phrases listed under `pooled_with` (18 a query, and 25 to 40 more for the queries whose first
pool held few on-topic papers); then every paper either mode put in a top 10, judged the same
way (against the query's text, not by its rank). A result outside the pool is counted as
unjudged and not on-topic: when a new ranking brings one up, judge it against the query's
text and add it to the file. `python -m bench.relevance` prints each query's top 10 in both
modes, titled, with the unjudged ones marked, for that.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench.common import Section
from bench.corpus import ARCHIVE, CACHE, archive_days
from bot.search import find_papers
from bot.semantic.model import MODEL_ID, SemanticUnavailable, SentenceModel
from storage.store import Store

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from bot.semantic.meaning import Semantic

JUDGEMENTS = Path(__file__).with_name("relevance.json")
TOP = 10
# The bar: on-topic papers in a query's top 10, for every query and on average (hybrid).
EACH, AVERAGE = 8, 9
# The archive's vectors by the sentence model, one file a model.
VECTORS = CACHE / f"relevance-vectors-{re.sub(r'[^A-Za-z0-9.-]+', '_', MODEL_ID)}.npz"


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


@dataclass(frozen=True)
class Rankings:
    """Both modes' answers to every query, in the queries' order."""

    lexical: list[Outcome]
    hybrid: list[Outcome] | None  # None: search by meaning could not run
    vectors: str  # how the papers' vectors were had, or why hybrid did not run
    titles: dict[str, str]  # arXiv id -> title, for every archive paper


def load_queries(path: Path = JUDGEMENTS) -> list[Query]:
    return [
        Query(q["query"], q["kind"], q["on_topic"], dict(q["judged"]))
        for q in json.loads(path.read_text(encoding="utf-8"))["queries"]
    ]


async def _archive_store(directory: Path) -> tuple[Store, dict[str, int]]:
    """A SQLite store holding the archive's papers and listings; arXiv id -> paper id."""
    store = await Store.open(f"sqlite+aiosqlite:///{directory / 'archive.db'}")
    now = datetime.now(UTC)
    paper_ids: dict[str, int] = {}
    async with store.transaction() as repos:
        for day, papers in archive_days():
            ids = await repos.papers.upsert(papers, now)
            ranked = [(ids[paper.arxiv_id], paper.upvotes) for paper in papers]
            await repos.papers.record_listing(day, ranked)
            paper_ids |= ids
    return store, paper_ids


async def _semantic(store: Store, paper_ids: dict[str, int]) -> tuple[Semantic, str]:
    """Search by meaning over the store, with a sentence saying how its vectors were had.
    Every paper gets one: the cached vector when the paper's text is unchanged, else a new
    one (and the cache is rewritten). `SemanticUnavailable` when the extra is missing."""
    model = SentenceModel.load()
    from bot.semantic.meaning import Semantic, paper_text
    from bot.semantic.stored import as_bytes, as_vector

    semantic = Semantic(store, model)
    async with store.reading() as repos:
        papers = list((await repos.papers.by_ids(paper_ids.values())).values())
    digests = {p.arxiv_id: hashlib.sha256(paper_text(p).encode()).hexdigest() for p in papers}
    cached = {
        paper_ids[arxiv_id]: as_bytes(vector)
        for arxiv_id, (digest, vector) in _read_vectors().items()
        if digests.get(arxiv_id) == digest
    }
    async with store.transaction() as repos:
        await repos.vectors.put(cached, MODEL_ID)
    start = time.perf_counter()
    embedded = await semantic.embed_missing()
    took = time.perf_counter() - start
    where = f"`bench/.cache/{VECTORS.name}`"
    if not embedded:
        return semantic, f"{len(papers):,} paper vectors by {MODEL_ID}, all read from {where}."
    async with store.reading() as repos:
        stored = await repos.vectors.of(paper_ids.values(), MODEL_ID)
    _write_vectors({p.arxiv_id: (digests[p.arxiv_id], as_vector(stored[p.id])) for p in papers})
    return semantic, (
        f"{len(papers):,} paper vectors by {MODEL_ID}: {len(cached):,} read from {where}, "
        f"{embedded:,} embedded in {took:.0f} s and cached there, so later runs skip them."
    )


def _read_vectors() -> dict[str, tuple[str, NDArray[np.float32]]]:
    """The cached vectors: arXiv id -> (digest of the text embedded, vector); empty when
    there is no cache or it cannot be read."""
    import numpy as np

    try:
        with np.load(VECTORS, allow_pickle=False) as cache:
            ids, digests, vectors = cache["ids"], cache["digests"], cache["vectors"]
    except (OSError, KeyError, ValueError):
        return {}
    return {str(a): (str(d), v) for a, d, v in zip(ids, digests, vectors, strict=True)}


def _write_vectors(entries: dict[str, tuple[str, NDArray[np.float32]]]) -> None:
    import numpy as np

    ids = sorted(entries)
    VECTORS.parent.mkdir(parents=True, exist_ok=True)
    partial = VECTORS.with_name(VECTORS.name + ".partial")
    with partial.open("wb") as out:  # a file object: np.savez would add ".npz" to a path
        np.savez(
            out,
            ids=np.array(ids),
            digests=np.array([entries[a][0] for a in ids]),
            vectors=np.stack([entries[a][1] for a in ids]).astype(np.float32),
        )
    os.replace(partial, VECTORS)  # a run stopped midway leaves the old cache whole


async def _rankings(queries: list[Query], directory: Path) -> Rankings:
    store, paper_ids = await _archive_store(directory)
    try:
        lexical = [await _ask(store, query) for query in queries]
        try:
            semantic, vectors = await _semantic(store, paper_ids)
        except SemanticUnavailable as exc:
            hybrid, vectors = None, f"Hybrid not run: {exc}."
        else:
            hybrid = [await _ask(store, query, semantic) for query in queries]
        async with store.reading() as repos:
            papers = await repos.papers.by_ids(paper_ids.values())
        titles = {paper.arxiv_id: paper.title for paper in papers.values()}
        return Rankings(lexical, hybrid, vectors, titles)
    finally:
        await store.close()


async def _ask(store: Store, query: Query, semantic: Semantic | None = None) -> Outcome:
    found = await find_papers(
        store, query.query, limit=TOP, source=None, budget=0.0, semantic=semantic
    )
    return Outcome(query, [paper.arxiv_id for paper in found])


def rankings() -> Rankings:
    """Both modes' top 10 for every query of `bench/relevance.json` (the archive present)."""
    with tempfile.TemporaryDirectory() as directory:
        return asyncio.run(_rankings(load_queries(), Path(directory)))


def run(quick: bool = False) -> Section:
    s = Section("Relevance of `/papers topic` on the real archive")
    if not ARCHIVE.is_dir():
        s.add(f"Not run: the archive ({ARCHIVE}) is not present.")
        return s
    ranked = rankings()
    _targets(s, ranked.hybrid)
    s.add(
        f"{len(ranked.lexical)} queries of `bench/relevance.json` (keywords, phrases and "
        f"questions in plain words), each asked for its top {TOP} papers from `find_papers` "
        "(what `/papers topic` runs, Hugging Face search off) over the 2,097 papers of the "
        "real archive, in both modes: lexical (full-text search, phrases first) and hybrid "
        "(that fused with the nearest papers by meaning); the targets are the hybrid "
        "column's. On-topic: judged by reading each paper against the query's written "
        "judgement, in a pool made before the rankings were compared and grown by every "
        "paper either mode put in a top 10 (the module's docstring says how). Known: the "
        "pool's on-topic papers, the most a top 10 can hold as far as judged. Unjudged: in "
        "the top 10 but not in the pool, counted as not on-topic."
    )
    s.add()
    s.add(ranked.vectors)
    s.add()
    s.table(*_table(ranked))
    return s


def _targets(s: Section, hybrid: Sequence[Outcome] | None) -> None:
    each = f"at least {EACH} of {TOP} on-topic for every query, hybrid search"
    average = f"at least {AVERAGE} of {TOP} on-topic on average, hybrid search"
    if hybrid is None:
        s.target(f"{each} (not run)", False)
        s.target(f"{average} (not run)", False)
        return
    counts = [outcome.on_topic for outcome in hybrid]
    reached = sum(count >= EACH for count in counts)
    s.target(
        f"{each} (lowest {min(counts)}, {reached} of {len(counts)} queries)", min(counts) >= EACH
    )
    mean = sum(counts) / len(counts)
    s.target(f"{average} (measured {mean:.1f})", mean >= AVERAGE)


def _table(ranked: Rankings) -> tuple[list[str], list[list[object]]]:
    """The header and rows: per query, then the totals and the averages of both modes."""
    modes = [ranked.lexical, ranked.hybrid]
    header = ["query", "kind", "on-topic papers known"]
    for mode in ("lexical", "hybrid"):
        header += [f"{mode}: on-topic in top {TOP}", f"{mode}: unjudged"]
    rows: list[list[object]] = []
    for at, query in enumerate(outcome.query for outcome in ranked.lexical):
        row: list[object] = [f"`{query.query}`", query.kind, query.known]
        for outcomes in modes:
            row += _cells(outcomes[at]) if outcomes else ["not run", ""]
        rows.append(row)
    count = len(ranked.lexical)
    known = sum(o.query.known for o in ranked.lexical)
    total: list[object] = ["**total**", "", known]
    average: list[object] = ["**average**", "", f"{known / count:.1f}"]
    for outcomes in modes:
        if not outcomes:
            total += ["not run", ""]
            average += ["not run", ""]
            continue
        on_topic, unjudged = sum(o.on_topic for o in outcomes), sum(o.unjudged for o in outcomes)
        found = sum(len(o.found) for o in outcomes)
        total += [f"{on_topic} of {found}", unjudged]
        average += [f"{on_topic / count:.1f}", f"{unjudged / count:.1f}"]
    return header, [*rows, total, average]


def _cells(outcome: Outcome) -> list[object]:
    """On-topic (and how many were found, when fewer than TOP) and unjudged."""
    short = f" of {len(outcome.found)} found" if len(outcome.found) < TOP else ""
    return [f"{outcome.on_topic}{short}", outcome.unjudged]


def show(ranked: Rankings) -> str:
    """Each query's top 10 in both modes, titled: + on-topic, - not, ? unjudged."""
    lines = []
    for at, lexical in enumerate(ranked.lexical):
        query = lexical.query
        lines += [f"== {query.query} ({query.kind})", f"   on-topic: {query.on_topic}"]
        for mode, outcomes in (("lexical", ranked.lexical), ("hybrid", ranked.hybrid)):
            if outcomes is None:
                lines.append(f"   {mode}: not run")
                continue
            outcome = outcomes[at]
            lines.append(f"   {mode}: {outcome.on_topic} on-topic, {outcome.unjudged} unjudged")
            for rank, paper in enumerate(outcome.found, start=1):
                mark = {True: "+", False: "-", None: "?"}[query.judged.get(paper)]
                lines.append(f"   {rank:>3} {mark} {paper}  {ranked.titles.get(paper, '')}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    # python -m bench.relevance: the top 10s to judge from, unjudged papers marked "?".
    if not ARCHIVE.is_dir():
        sys.exit(f"The archive ({ARCHIVE}) is not present.")
    ranked = rankings()
    print(ranked.vectors, end="\n\n")
    print(show(ranked))
