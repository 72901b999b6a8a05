"""The benchmark corpus: the real Daily Papers archive, scaled to any size by a deterministic
generator, stored in a SQLite file that is built once per size and reused.

Seeds: `../shared/data/hf-daily-papers/` (85 days of real API answers) when present, else the
bundled demo sample. Each generated paper is made from one seed paper (its anchor) and one or
two seed papers that share a topic term with it (an AI keyword, or a long title word when the
anchor has no keywords), so its words stay on one topic and a word is in about as many papers
as in the archive (the topic benchmark compares them, with `FullText`). Drawing from every
abstract at random instead put "video" in 48% of generated papers, against 18% of the
archive's.
- title: the anchor's title with about a third of its longer words swapped for title words
  of the group;
- abstract: as many sentences as the anchor's, drawn from the group's abstracts;
- keywords: as many as the anchor has, drawn from the group's;
- authors: as many as the anchor has, each a seed first name with a seed family name;
- upvotes and organization: the anchor's;
- dates: spread over the three years before the archive; each weekday lists its 25 most
  upvoted papers, so the store also holds papers it only learnt from searches, as in use.

Vectors for search by meaning (`database(..., vectors=True)`, a database of its own in the
cache): a seed paper's is the sentence model's vector of its title and summary, as the product
embeds it (the seeds are embedded once and cached); a generated paper's is its anchor's with
seeded Gaussian noise added and scaled back to length 1 (about 0.9 alike, cosine), as its words
come from its anchor and papers on the anchor's topic. Embedding 100,000 papers would take the
model most of an hour on 2 cores; these take seconds.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import random
import re
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bot.demo import load_demo_corpus
from bot.sources.hf_items import parse_items
from storage import search_index
from storage.papers import PaperData
from storage.store import Store

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parent.parent
ARCHIVE = ROOT.parent / "shared" / "data" / "hf-daily-papers"
CACHE = ROOT / "bench" / ".cache"
# Bump when the generator changes, so cached databases are rebuilt.
GENERATOR_VERSION = 4
SEED = 20260423
LISTED_PER_DAY = 25
GENERATED_SPAN = timedelta(days=3 * 365)
BATCH = 2000
# Bump when the stored vectors change (how they are made), so cached databases holding them
# are rebuilt; a database with vectors is named after both versions.
VECTORS_VERSION = 1
VECTOR_NOISE = 0.025  # per dimension, added to a generated paper's anchor's unit vector

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"[A-Za-z][A-Za-z\-]{3,}")


@dataclass(frozen=True)
class Corpus:
    """Papers in insertion order and the days that list them (paper indexes, rank order);
    `anchors`: each paper's anchor, an index into the seed corpus' papers (a seed paper is its
    own anchor)."""

    papers: list[PaperData]
    listings: dict[date, list[int]]
    seed_source: str
    anchors: list[int] = field(default_factory=list)

    @property
    def newest_day(self) -> date:
        return max(self.listings)


class FullText:
    """`papers` in an in-memory FTS5 index that reads them as the store's does (migration
    0001's columns and tokenizer): which share of them hold a word."""

    TOKENIZER = "porter unicode61 remove_diacritics 2"

    def __init__(self, papers: Sequence[PaperData]) -> None:
        self.count = len(papers)
        self.db = sqlite3.connect(":memory:")
        self.db.execute(
            "CREATE VIRTUAL TABLE text USING fts5(title, abstract, authors, ai_keywords, "
            f"tokenize='{self.TOKENIZER}')"
        )
        self.db.executemany(
            "INSERT INTO text VALUES (?, ?, ?, ?)",
            ((p.title, p.abstract, " ".join(p.authors), " ".join(p.ai_keywords)) for p in papers),
        )
        self.db.execute("CREATE VIRTUAL TABLE vocabulary USING fts5vocab(text, row)")

    def shares(self) -> dict[str, float]:
        """Each indexed term and the share of the papers holding it."""
        rows = self.db.execute("SELECT term, doc FROM vocabulary")
        return {term: docs / self.count for term, docs in rows}

    def share(self, words: str) -> float:
        """The share of the papers holding all of `words`."""
        expression = " AND ".join(f'"{word}"' for word in words.split())
        query = "SELECT count(*) FROM text WHERE text MATCH ?"
        return int(self.db.execute(query, (expression,)).fetchone()[0]) / self.count


def archive_days(archive: Path = ARCHIVE) -> list[tuple[date, list[PaperData]]]:
    """The real archive's days, oldest first; empty when the archive is absent."""
    if not archive.is_dir():
        return []
    days = []
    for path in sorted(archive.glob("*.json")):
        days.append((date.fromisoformat(path.stem), parse_items(json.loads(path.read_text()))))
    return days


@functools.cache  # read once a run: every corpus size is made from it, and none changes it
def seed_corpus() -> Corpus:
    """The real archive, or the demo sample (listed as one day) when the archive is absent."""
    days = archive_days()
    source = f"{len(days)} days of real Hugging Face answers ({ARCHIVE.name})"
    if not days:
        demo = [replace(p, is_demo=False) for p in load_demo_corpus()]
        days = [(date(2026, 8, 21), demo)]
        source = f"the bundled demo sample ({len(demo)} papers; archive not found)"
    papers: list[PaperData] = []
    index: dict[str, int] = {}
    listings: dict[date, list[int]] = {}
    for day, listed in days:
        ranked = sorted(listed, key=lambda p: -(p.upvotes or 0))
        for paper in ranked:
            if paper.arxiv_id not in index:
                index[paper.arxiv_id] = len(papers)
                papers.append(paper)
        listings[day] = list(dict.fromkeys(index[p.arxiv_id] for p in ranked))
    return Corpus(papers, listings, source, list(range(len(papers))))


class _Pools:
    """Seed text cut into the parts generated papers are made of, per seed paper."""

    def __init__(self, seeds: Sequence[PaperData]) -> None:
        self.seeds = seeds
        self.sentences = [
            [s for s in _SENTENCE_END.split(p.abstract) if len(s) > 20] for p in seeds
        ]
        self.title_words = [_WORD.findall(p.title) for p in seeds]
        names = [a.split() for p in seeds for a in p.authors]
        self.first_names = [n[0] for n in names if len(n) >= 2]
        self.family_names = [n[-1] for n in names if len(n) >= 2]
        self.by_term: dict[str, list[int]] = {}
        for index, paper in enumerate(seeds):
            for term in _topic_terms(paper):
                self.by_term.setdefault(term, []).append(index)

    def group(self, rng: random.Random) -> list[int]:
        """A random seed paper (the anchor) and up to two other seed papers sharing a topic
        term with it."""
        anchor = rng.randrange(len(self.seeds))
        terms = _topic_terms(self.seeds[anchor])
        group = [anchor]
        for _ in range(rng.randint(1, 2)):
            group.append(rng.choice(self.by_term[rng.choice(terms)]) if terms else anchor)
        return list(dict.fromkeys(group))


def _topic_terms(paper: PaperData) -> list[str]:
    """What a paper is about: its AI keywords, else its title's longer words."""
    keywords = [k.lower() for k in paper.ai_keywords]
    return keywords or [w.lower() for w in _WORD.findall(paper.title) if len(w) >= 6]


def _generated_paper(
    rng: random.Random, pools: _Pools, group: list[int], arxiv_id: str, published: datetime
) -> PaperData:
    anchor = pools.seeds[group[0]]
    title_words = [w for i in group for w in pools.title_words[i]]
    sentences = [s for i in group for s in pools.sentences[i]]
    keywords = list(dict.fromkeys(k for i in group for k in pools.seeds[i].ai_keywords))

    def swap(match: re.Match[str]) -> str:
        return rng.choice(title_words) if rng.random() < 0.35 else match.group(0)

    sentence_count = min(len(sentences), max(1, len(pools.sentences[group[0]])))
    author_count = len(anchor.authors) if pools.first_names else 0
    return PaperData(
        arxiv_id=arxiv_id,
        title=_WORD.sub(swap, anchor.title),
        abstract=" ".join(rng.sample(sentences, sentence_count)) or anchor.abstract,
        authors=tuple(
            f"{rng.choice(pools.first_names)} {rng.choice(pools.family_names)}"
            for _ in range(author_count)
        ),
        ai_keywords=tuple(rng.sample(keywords, min(len(keywords), len(anchor.ai_keywords)))),
        published_at=published,
        upvotes=anchor.upvotes,
        thumbnail=f"https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/{arxiv_id}.png",
        organization=anchor.organization,
    )


def generate(count: int, seeds: Corpus, *, seed: int = SEED) -> Corpus:
    """`seeds` plus generated papers up to `count` in all (or the seeds' newest `count`).
    Same arguments, same corpus."""
    if count <= len(seeds.papers):
        return _newest(seeds, count)
    rng = random.Random(seed)
    pools = _Pools(seeds.papers)
    taken = {p.arxiv_id for p in seeds.papers}
    end = datetime.combine(min(seeds.listings), time(8), tzinfo=UTC)
    start = end - GENERATED_SPAN
    span = (end - start).total_seconds()
    made: list[tuple[PaperData, int]] = []  # and its anchor
    serial: dict[str, int] = {}
    while len(seeds.papers) + len(made) < count:
        published = start + timedelta(seconds=rng.random() * span)
        month = published.strftime("%y%m")
        serial[month] = serial.get(month, 50000) + 1
        arxiv_id = f"{month}.{serial[month]:05d}"
        if arxiv_id in taken:
            continue
        taken.add(arxiv_id)
        group = pools.group(rng)
        made.append((_generated_paper(rng, pools, group, arxiv_id, published), group[0]))
    made.sort(key=lambda pair: pair[0].published_at or end)
    papers = seeds.papers + [paper for paper, _ in made]
    listings = dict(seeds.listings)
    for day, indexes in _generated_listings(papers[len(seeds.papers) :], offset=len(seeds.papers)):
        listings.setdefault(day, indexes)
    anchors = seeds.anchors + [anchor for _, anchor in made]
    return Corpus(papers, listings, seeds.seed_source, anchors)


def _newest(seeds: Corpus, count: int) -> Corpus:
    """The papers of the newest lists, `count` of them."""
    keep: dict[int, None] = {}
    listings: dict[date, list[int]] = {}
    for day in sorted(seeds.listings, reverse=True):
        room = count - len(keep)
        if room <= 0:
            break
        listed = [i for i in seeds.listings[day] if i not in keep][:room]
        keep |= dict.fromkeys(listed)
        listings[day] = listed
    order = sorted(keep)
    new_index = {old: new for new, old in enumerate(order)}
    return Corpus(
        [seeds.papers[i] for i in order],
        {day: [new_index[i] for i in listed] for day, listed in listings.items()},
        seeds.seed_source,
        [seeds.anchors[i] for i in order],
    )


def _generated_listings(
    papers: Sequence[PaperData], *, offset: int
) -> Iterator[tuple[date, list[int]]]:
    by_day: dict[date, list[int]] = {}
    for i, paper in enumerate(papers):
        assert paper.published_at is not None
        day = paper.published_at.date()
        if day.weekday() < 5:
            by_day.setdefault(day, []).append(i)
    for day, indexes in sorted(by_day.items()):
        top = sorted(indexes, key=lambda i: -(papers[i].upvotes or 0))[:LISTED_PER_DAY]
        yield day, [offset + i for i in top]


async def fill(store: Store, corpus: Corpus, now: datetime) -> None:
    """Upsert every paper, oldest first as a store grows in use, record every listing, and
    compact the full-text index as a refresh does after its writes."""
    oldest_first = sorted(corpus.papers, key=lambda p: p.published_at or now)
    ids: dict[str, int] = {}
    for first in range(0, len(oldest_first), BATCH):
        async with store.transaction() as repos:
            ids |= await repos.papers.upsert(oldest_first[first : first + BATCH], now)
    days = sorted(corpus.listings)
    for first in range(0, len(days), 200):
        async with store.transaction() as repos:
            for day in days[first : first + 200]:
                papers = [corpus.papers[i] for i in corpus.listings[day]]
                await repos.papers.record_listing(
                    day, [(ids[p.arxiv_id], p.upvotes) for p in papers]
                )
    await search_index.compact(store.engine)


def database(count: int, directory: Path, *, vectors: bool = False) -> tuple[Path, Corpus]:
    """A fresh copy (in `directory`) of a SQLite database holding `count` papers, and with
    `vectors`, a vector per paper by the product's sentence model (see the module's
    docstring; needs the `semantic` extra).

    The first call for a size builds it under bench/.cache; later calls copy that file.
    """
    corpus = generate(count, seed_corpus())
    cached = CACHE / f"papers-{count}-v{GENERATOR_VERSION}.db"
    if not cached.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        building = cached.with_suffix(f".building-{os.getpid()}")
        building.unlink(missing_ok=True)
        asyncio.run(_build(f"sqlite+aiosqlite:///{building}", corpus))
        building.rename(cached)  # atomic: a concurrent build of the same size is harmless
    if vectors:
        plain, cached = cached, cached.with_name(f"{cached.stem}-vectors{VECTORS_VERSION}.db")
        if not cached.exists():
            building = cached.with_suffix(f".building-{os.getpid()}")
            shutil.copyfile(plain, building)
            asyncio.run(_store_vectors(building, corpus))
            building.rename(cached)
    copy = directory / f"papers-{count}{'-vectors' if vectors else ''}.db"
    # A journal left by a process that had an earlier copy open (a stopped server's child
    # still embedding) would be read as this copy's: SQLite calls that malformed.
    for journal in ("-wal", "-shm", "-journal"):
        copy.with_name(copy.name + journal).unlink(missing_ok=True)
    shutil.copyfile(cached, copy)
    return copy, corpus


async def _build(url: str, corpus: Corpus) -> None:
    store = await Store.open(url)
    try:
        await fill(store, corpus, datetime.combine(corpus.newest_day, time(9), tzinfo=UTC))
    finally:
        await store.close()


def seed_vectors(seeds: Corpus) -> NDArray[np.float32]:
    """The sentence model's vector of each seed paper, as the product makes it (bot/semantic
    `paper_text`, `SentenceModel.embed`); computed once (a few minutes), then read from the
    cache, keyed by the model and the texts."""
    import numpy as np

    from bot.semantic.meaning import paper_text
    from bot.semantic.model import MODEL_ID, SentenceModel

    texts = [paper_text(paper) for paper in seeds.papers]  # type: ignore[arg-type]
    key = hashlib.sha256("\n".join([MODEL_ID, *texts]).encode()).hexdigest()[:16]
    cached = CACHE / f"seed-vectors-{key}.npy"
    if cached.exists():
        return np.load(cached)
    model = SentenceModel.load()
    vectors = np.concatenate(
        [model.embed(texts[at : at + 256]) for at in range(0, len(texts), 256)]
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    building = cached.with_suffix(f".building-{os.getpid()}.npy")
    np.save(building, vectors)
    building.rename(cached)
    return vectors


def paper_vectors(corpus: Corpus) -> NDArray[np.float32]:
    """One unit vector per paper of `corpus`, in its order (see the module's docstring).
    Same corpus, same vectors."""
    import numpy as np

    seeds = seed_corpus()
    anchors = np.array(corpus.anchors, np.int64)
    vectors = seed_vectors(seeds)[anchors].astype(np.float32)
    generated = np.array(
        [paper.arxiv_id != seeds.papers[anchor].arxiv_id
         for paper, anchor in zip(corpus.papers, corpus.anchors, strict=True)]
    )  # fmt: skip
    rng = np.random.default_rng(SEED)
    noise = rng.standard_normal((int(generated.sum()), vectors.shape[1]), dtype=np.float32)
    vectors[generated] += noise * VECTOR_NOISE
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


async def _store_vectors(path: Path, corpus: Corpus) -> None:
    """Store a vector for every paper of `corpus` in the database at `path` (which holds
    them), as the product does (`repos.vectors.put`, migrations applied first)."""
    from bot.semantic.model import MODEL_ID
    from bot.semantic.stored import as_bytes

    vectors = paper_vectors(corpus)
    with sqlite3.connect(path) as db:
        ids = dict(db.execute("SELECT arxiv_id, id FROM papers").fetchall())
    db.close()
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        for first in range(0, len(corpus.papers), BATCH):
            batch = range(first, min(first + BATCH, len(corpus.papers)))
            async with store.transaction() as repos:
                await repos.vectors.put(
                    {ids[corpus.papers[i].arxiv_id]: as_bytes(vectors[i]) for i in batch},
                    MODEL_ID,
                )
    finally:
        await store.close()
