"""Housekeeping: what every send adds and no rule reads any more is deleted, so that a bot
running for months keeps its tables the size of its recent work.

Each retention is stated once, beside the rule that reads the rows: the papers sent in digests
(`bot.digest.SENT_KEPT`), the papers weekly posts carried (`bot.weekly.ITEMS_KEPT`), and the
deliveries ledger's finished rows (`bot.delivery.scheduler.LEDGER_KEPT`). Smaller tables are
pruned where they are written (`storage.inbox`, `storage.workers`), and workspaces that left
by `bot.lifecycle`. Deletes go in batches, each its own short transaction, with a pause
between them: SQLite has one writer at a time, and a command waits at most 2 s for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from bot.delivery.scheduler import LEDGER_KEPT
from bot.digest import SENT_KEPT, forgotten_before
from bot.messages import counted
from bot.weekly import ITEMS_KEPT
from storage.db import DB_ERRORS
from storage.store import Repositories, Store

log = logging.getLogger(__name__)

PRUNE_EVERY = 60 * 60.0  # seconds between prunes: a day's sends are a few batches an hour
BATCH = 1000  # rows a transaction deletes: a few ms of SQLite's write lock
# Seconds between batches: longer than SQLite's busy handler sleeps between tries (100 ms),
# so a process waiting for the write lock gets it between two batches.
PAUSE = 0.2


@dataclass(frozen=True)
class Pruned:
    """How many rows of each table went."""

    digest_items: int = 0
    weekly_items: int = 0
    deliveries: int = 0

    @property
    def total(self) -> int:
        return self.digest_items + self.weekly_items + self.deliveries


async def prune_history(
    store: Store, now: datetime, *, batch: int = BATCH, pause: float = PAUSE
) -> Pruned:
    """Delete, at `now`, what no rule reads any more; one log line when anything went."""

    async def in_batches(prune: Callable[[Repositories], Awaitable[int]]) -> int:
        deleted = 0
        while True:
            async with store.transaction() as repos:
                gone = await prune(repos)
            deleted += gone
            if gone < batch:
                return deleted
            await asyncio.sleep(pause)

    async with store.reading() as repos:
        newest = await repos.papers.latest_listing_day()
    digest_items = 0
    if newest is not None:  # no list, no digest ever sent: nothing to forget
        listed_since = forgotten_before(now, newest)
        digest_items = await in_batches(
            lambda repos: repos.users.prune_sent(now - SENT_KEPT, listed_since, batch)
        )
    weekly_items = await in_batches(lambda repos: repos.weekly.prune_sent(now - ITEMS_KEPT, batch))
    deliveries = await in_batches(lambda repos: repos.deliveries.prune(now - LEDGER_KEPT, batch))
    pruned = Pruned(digest_items, weekly_items, deliveries)
    if pruned.total:
        log.info(
            "pruned old history: %s sent in digests (kept %d days), %s of weekly posts (%d "
            "days), %s (%d days)",
            counted(pruned.digest_items, "paper"), SENT_KEPT.days,
            counted(pruned.weekly_items, "paper"), ITEMS_KEPT.days,
            counted(pruned.deliveries, "finished ledger row"), LEDGER_KEPT.days,
        )  # fmt: skip
    return pruned


async def keep_pruning(
    store: Store, clock: Callable[[], datetime], *, every: float = PRUNE_EVERY
) -> None:
    """The worker's job: prune every `every` seconds, until cancelled. A database error is a
    warning line; the next turn tries again."""
    while True:
        try:
            await prune_history(store, clock())
        except DB_ERRORS as error:
            log.warning("pruning old history failed: %s", type(error).__name__)
        await asyncio.sleep(every)
