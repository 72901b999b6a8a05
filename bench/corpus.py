"""The benchmark corpus: the real Daily Papers archive, scaled to any size by a deterministic
generator, stored in a SQLite file that is built once per size and reused.

Seeds: `../shared/data/hf-daily-papers/` (85 days of real API answers) when present, else the
bundled demo sample. Generated papers recombine the seeds' text, so word frequencies, title
shapes, abstract lengths and author names stay realistic:
- title: a seed title with about a third of its longer words swapped for seed title words;
- abstract: 4 to 9 sentences drawn from all seed abstracts;
- authors: 2 to 12 names, each a seed first name with a seed family name;
- keywords: 4 to 8 seed AI keywords; upvotes: a seed paper's count;
- dates: spread over the three years before the archive; each weekday lists its 25 most
  upvoted papers, so the store also holds papers it only learnt from searches, as in use.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from bot.demo import load_demo_corpus
from bot.sources.hf_items import parse_items
from storage import search_index
from storage.papers import PaperData
from storage.store import Store

ROOT = Path(__file__).resolve().parent.parent
ARCHIVE = ROOT.parent / "shared" / "data" / "hf-daily-papers"
CACHE = ROOT / "bench" / ".cache"
# Bump when the generator changes, so cached databases are rebuilt.
GENERATOR_VERSION = 3
SEED = 20260423
LISTED_PER_DAY = 25
GENERATED_SPAN = timedelta(days=3 * 365)
BATCH = 2000

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"[A-Za-z][A-Za-z\-]{3,}")


@dataclass(frozen=True)
class Corpus:
    """Papers in insertion order and the days that list them (paper indexes, rank order)."""

    papers: list[PaperData]
    listings: dict[date, list[int]]
    seed_source: str

    @property
    def newest_day(self) -> date:
        return max(self.listings)


def archive_days(archive: Path = ARCHIVE) -> list[tuple[date, list[PaperData]]]:
    """The real archive's days, oldest first; empty when the archive is absent."""
    if not archive.is_dir():
        return []
    days = []
    for path in sorted(archive.glob("*.json")):
        days.append((date.fromisoformat(path.stem), parse_items(json.loads(path.read_text()))))
    return days


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
    return Corpus(papers, listings, source)


class _Pools:
    """Seed text cut into the parts generated papers are made of."""

    def __init__(self, seeds: Sequence[PaperData]) -> None:
        self.titles = [p.title for p in seeds]
        self.title_words = [w for p in seeds for w in _WORD.findall(p.title)]
        self.sentences = [s for p in seeds for s in _SENTENCE_END.split(p.abstract) if len(s) > 20]
        names = [a.split() for p in seeds for a in p.authors]
        self.first_names = [n[0] for n in names if len(n) >= 2]
        self.family_names = [n[-1] for n in names if len(n) >= 2]
        self.keywords = [k for p in seeds for k in p.ai_keywords] or self.title_words
        self.upvotes = [p.upvotes or 0 for p in seeds]
        self.organizations = [p.organization for p in seeds if p.organization]


def _title(rng: random.Random, pools: _Pools) -> str:
    def swap(match: re.Match[str]) -> str:
        return rng.choice(pools.title_words) if rng.random() < 0.35 else match.group(0)

    return _WORD.sub(swap, rng.choice(pools.titles))


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
    made: list[PaperData] = []
    serial: dict[str, int] = {}
    while len(seeds.papers) + len(made) < count:
        published = start + timedelta(seconds=rng.random() * span)
        month = published.strftime("%y%m")
        serial[month] = serial.get(month, 50000) + 1
        arxiv_id = f"{month}.{serial[month]:05d}"
        if arxiv_id in taken:
            continue
        taken.add(arxiv_id)
        authors = tuple(
            f"{rng.choice(pools.first_names)} {rng.choice(pools.family_names)}"
            for _ in range(rng.randint(2, 12))
        )
        made.append(
            PaperData(
                arxiv_id=arxiv_id,
                title=_title(rng, pools),
                abstract=" ".join(rng.sample(pools.sentences, rng.randint(4, 9))),
                authors=authors,
                ai_keywords=tuple(rng.sample(pools.keywords, rng.randint(4, 8))),
                published_at=published,
                upvotes=rng.choice(pools.upvotes),
                thumbnail=f"https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/{arxiv_id}.png",
                organization=rng.choice(pools.organizations) if pools.organizations else None,
            )
        )
    made.sort(key=lambda p: p.published_at or end)
    papers = seeds.papers + made
    listings = dict(seeds.listings)
    for day, indexes in _generated_listings(made, offset=len(seeds.papers)):
        listings.setdefault(day, indexes)
    return Corpus(papers, listings, seeds.seed_source)


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


def database(count: int, directory: Path) -> tuple[Path, Corpus]:
    """A fresh copy (in `directory`) of a SQLite database holding `count` papers.

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
    copy = directory / f"papers-{count}.db"
    shutil.copyfile(cached, copy)
    return copy, corpus


async def _build(url: str, corpus: Corpus) -> None:
    store = await Store.open(url)
    try:
        await fill(store, corpus, datetime.combine(corpus.newest_day, time(9), tzinfo=UTC))
    finally:
        await store.close()
