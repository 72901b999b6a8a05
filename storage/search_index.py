"""Keeping SQLite's full-text index compact. PostgreSQL's GIN index needs nothing of ours.

FTS5 writes each transaction's changes as a new segment and merges segments of a like size as
they pile up, so an index grown a refresh at a time holds a dozen segments, and every search
reads each of its terms from each one. Merged into one segment, the three-word topic's
statement at 100k papers took 8.8 ms instead of 9.9 (Python's sqlite3 on copies of one
database, run in turn).
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import writing

log = logging.getLogger(__name__)

# Merged when more than this share of the index lies outside its largest segment. Writes since
# the last merge (a refresh, a search that learnt papers) add small segments, which cost a
# search little; a merge rewrites the whole index (~4 s at 100k papers), and waiting for a
# tenth to be new keeps what is rewritten to about ten times what was written.
MOST_OUTSIDE_LARGEST = 0.1
# Each merge step is a transaction of its own, so writers wait at most one step for the lock
# (at 100k papers: 84 steps, median 45 ms, the longest 0.5 s).
PAGES_PER_STEP = 250
# A bound on the loop, should FTS5 keep reporting work: 2.5 million pages is a 10 GB index.
MOST_STEPS = 10_000

# FTS5 indexes each segment's leaf pages in `papers_fts_idx`, about one row per two pages.
_SEGMENT_SIZES = text("SELECT count(*) FROM papers_fts_idx GROUP BY segid ORDER BY count(*) DESC")
_CHANGES = text("SELECT total_changes()")
# With a negative page count, FTS5 merges any segments, whatever their level, into one.
_MERGE = text("INSERT INTO papers_fts(papers_fts, rank) VALUES ('merge', :pages)")


async def segment_sizes(engine: AsyncEngine) -> list[int]:
    """The sizes of SQLite's full-text index segments (rows of its page index), largest
    first; empty on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return []
    async with engine.connect() as connection:
        return list(await connection.scalars(_SEGMENT_SIZES))


async def compact(engine: AsyncEngine, *, pages_per_step: int = PAGES_PER_STEP) -> int:
    """Merge SQLite's full-text index into one segment when more than MOST_OUTSIDE_LARGEST of
    it lies outside the largest. Returns the merge steps taken: 0 on PostgreSQL or when
    compact enough."""
    sizes = await segment_sizes(engine)
    if sum(sizes[1:]) <= MOST_OUTSIDE_LARGEST * sum(sizes):
        return 0
    steps, done = 0, False
    while not done and steps < MOST_STEPS:
        steps += 1
        async with writing(engine).begin() as connection:
            changes = await connection.scalar(_CHANGES)
            await connection.execute(_MERGE, {"pages": -pages_per_step})
            # FTS5's documented signal: fewer than two changes means nothing was left to merge.
            done = await connection.scalar(_CHANGES) - changes < 2
    log.info("Merged the full-text index's %d segments into one in %d steps", len(sizes), steps)
    return steps
