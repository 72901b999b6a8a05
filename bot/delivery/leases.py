"""One worker at a time sends a workspace's scheduled deliveries; the live workers share the
workspaces.

Pacing is per process. Were two workers to send to one workspace together, each would have
to keep to a share of its rate, and whichever claimed more of its posts would finish late
at that share while the other sat idle (bench: 61% of the allowed rate with two workers).
So a worker sends a workspace's deliveries only while it holds the workspace's sender lease
(`send:<platform>:<workspace>`, in the leases table): taken when the first of them starts,
renewed while any is in flight, released when the last one ends. Another worker's runs for
that workspace wait for the lease, then find their claims already done (the ledger).

Every worker fires every slot, so who asks first decides who sends. The workspace's owner
among the live workers (`bot.delivery.workers`, rendezvous hashing) asks at once; the others
ask only after a grace (`DeliveryPolicy.sender_grace`), so a morning's workspaces are spread
over the workers, and one whose owner has no runs for it, or died, is still sent. A worker
that no longer owns a workspace it holds (a worker joined) lets its runs in flight end and
releases it; runs arriving meanwhile wait and ask again as non-owners. A worker that dies
holding a lease holds up its workspaces until the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.delivery.batching import Batcher
from bot.delivery.outage import Outage
from bot.delivery.workers import LiveWorkers
from storage.db import DB_ERRORS, unreachable
from storage.models import LEASE_NAME_LENGTH
from storage.store import Store

log = logging.getLogger(__name__)


def lease_name(platform: str, workspace: str) -> str:
    name = f"send:{platform}:{workspace}"
    if len(name) <= LEASE_NAME_LENGTH:
        return name
    # A workspace id may fill its own column; a digest of it tells workspaces apart as well.
    return f"send:{platform}:{hashlib.sha256(workspace.encode()).hexdigest()[:40]}"


@dataclass
class _Holding:
    """This worker's runs for one workspace: how many, and whether they hold its lease."""

    waiting_since: float = field(default_factory=time.monotonic)  # its first run's arrival
    runs: int = 0
    held: bool = False
    closed: bool = False  # takes no more runs: letting go, or handing over to the owner
    letting_go: bool = False  # its last run has ended
    ended: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )  # set once its lease is let go

    @property
    def sending(self) -> bool:
        """Holds the lease and has not begun letting it go."""
        return self.held and not self.letting_go


class SenderLeases:
    def __init__(
        self,
        store: Store,
        workers: LiveWorkers,
        *,
        ttl: timedelta,
        poll: timedelta,
        grace: timedelta,
        clock: Callable[[], datetime],
        outage: Outage,
    ) -> None:
        self.store = store
        self.workers = workers
        self.holder = workers.worker
        self.ttl = ttl
        self.poll = poll
        self.grace = grace
        self.clock = clock
        self.outage = outage
        self._holdings: dict[str, _Holding] = {}
        self._renewing: asyncio.Task[None] | None = None
        # Every run asks, and a morning's runs ask together: one transaction takes the
        # leases of all their workspaces, and the runs resume in the order they asked, all
        # workspaces mixed (resumed workspace by workspace, the first claims held only a few
        # workspaces, and the last started sending about a second after the first).
        self._acquiring = Batcher(self._acquire)

    @contextlib.asynccontextmanager
    async def sending(self, platform: str, workspace: str) -> AsyncIterator[None]:
        """Enter when this worker holds the workspace's lease (waiting for it if another
        worker does); the lease is released when the last such block ends."""
        name = lease_name(platform, workspace)
        holding = await self._join(name)
        holding.runs += 1
        try:
            while not holding.held:
                if self._may_ask(name, holding) and await self._acquiring.submit(name):
                    holding.held = True
                    self._keep_renewing()
                else:
                    await asyncio.sleep(self.poll.total_seconds())
            yield
        finally:
            holding.runs -= 1
            if not holding.runs:
                await self._let_go(name, holding)

    async def _join(self, name: str) -> _Holding:
        """The holding a run for lease `name` joins. One that is closing is waited out: taking
        the lease again before its release ran would leave this worker sending without it.
        One this worker holds but no longer owns is closed: its runs end, the new ones ask
        again."""
        while True:
            holding = self._holdings.get(name)
            if holding is not None and holding.sending and not self.workers.owns(name):
                holding.closed = True
            if holding is None or not holding.closed:
                break
            await asyncio.wait([holding.ended])
        if holding is None:
            holding = self._holdings[name] = _Holding()
        return holding

    def _may_ask(self, name: str, holding: _Holding) -> bool:
        """Its owner asks for a lease at once, the other workers after the grace."""
        waited = time.monotonic() - holding.waiting_since
        return self.workers.owns(name) or waited >= self.grace.total_seconds()

    def _keep_renewing(self) -> None:
        if self._renewing is None:
            self._renewing = asyncio.create_task(self._renew(), name="sender lease renewal")

    async def _let_go(self, name: str, holding: _Holding) -> None:
        holding.closed = holding.letting_go = True
        release = asyncio.ensure_future(self._release(name) if holding.held else asyncio.sleep(0))
        try:
            await asyncio.shield(release)
        finally:
            if not holding.ended.done():
                holding.ended.set_result(None)
            if self._holdings.get(name) is holding:
                del self._holdings[name]
            if not self._holdings and self._renewing is not None:
                self._renewing.cancel()
                self._renewing = None  # the next lease taken starts another

    async def _release(self, name: str) -> None:
        try:
            async with self.store.transaction() as repos:
                await repos.leases.release(name, self.holder)
        except DB_ERRORS as error:  # it runs out by itself
            self._database_failed(error, f"sender lease {name} not released")

    def _database_failed(self, error: Exception, what: str) -> None:
        """An outage is the outage's to report, once; any other error gets a line each."""
        if unreachable(error):
            self.outage.failed(error)
        else:
            log.warning("%s: %s", what, type(error).__name__)

    async def _renew(self) -> None:
        """Every third of the lease, renew the leases this worker holds."""
        while True:
            await asyncio.sleep(self.ttl.total_seconds() / 3)
            held = [name for name, holding in self._holdings.items() if holding.sending]
            if not held:  # only waiting for other workers' leases, or letting go
                continue
            try:
                async with self.store.transaction() as repos:
                    renewed = await repos.leases.renew_many(
                        held, self.holder, self.clock(), self.ttl
                    )
            except DB_ERRORS as error:  # try again next time; the leases last till then
                self._database_failed(error, "sender leases not renewed")
                continue
            for name in set(held) - renewed:  # released meanwhile, or lost after a stall
                holding = self._holdings.get(name)
                if holding is not None and holding.sending:
                    log.warning("sender lease %s lost; sending on under the ledger's claims", name)

    async def _acquire(self, names: Sequence[str]) -> list[bool]:
        """Take the leases `names` (or extend those this worker holds), in one transaction:
        whether each is held."""
        async with self.store.transaction() as repos:
            held = await repos.leases.acquire_many(names, self.holder, self.clock(), self.ttl)
        return [name in held for name in names]
