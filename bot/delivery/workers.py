"""Which workers deliver a platform now, and which of them is to send to each workspace.

Every worker records a heartbeat (the `workers` table) every third of the sender lease and
reads which workers are live: those with a heartbeat within one lease period. A workspace's
sender is chosen by rendezvous hashing of its lease name over the live workers' names: every
worker computes the same owner from the same list, each gets about 1/N of the workspaces, a
new worker takes about 1/N from each of the others, and a dead one's are spread over the
rest. The hashing only says who asks for a lease; the leases table still lets one holder at a
time have it (`bot.delivery.leases`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

from storage.store import Store


def _weight(worker: str, lease: str) -> bytes:
    return hashlib.blake2b(f"{worker}\n{lease}".encode(), digest_size=8).digest()


class LiveWorkers:
    """This worker's view of the live workers of its platform."""

    def __init__(
        self,
        store: Store,
        worker: str,
        *,
        platform: str,
        ttl: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.worker = worker
        self.platform = platform
        self.ttl = ttl
        self.clock = clock
        self.live: tuple[str, ...] = (worker,)  # until the first beat: alone

    async def beat(self) -> None:
        """Record this worker live for another `ttl`, and read who else is."""
        async with self.store.transaction() as repos:
            live = await repos.workers.beat(self.worker, self.platform, self.clock(), self.ttl)
        self.live = tuple(live)

    async def leave(self) -> None:
        async with self.store.transaction() as repos:
            await repos.workers.leave(self.worker)

    def owner(self, lease: str) -> str:
        """The live worker that is to hold `lease`."""
        return max(self.live, key=lambda worker: _weight(worker, lease))

    def owns(self, lease: str) -> bool:
        return self.owner(lease) == self.worker
