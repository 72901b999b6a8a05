"""One worker at a time sends a workspace's scheduled deliveries.

Pacing is per process. Were two workers to send to one workspace together, each would have
to keep to a share of its rate, and whichever claimed more of its posts would finish late
at that share while the other sat idle (bench: 61% of the allowed rate with two workers).
So a worker sends a workspace's deliveries only while it holds the workspace's sender lease
(`send:<platform>:<workspace>`, in the leases table): taken when the first of them starts,
renewed while any is in flight, released when the last one ends. Another worker's runs for
that workspace wait for the lease, then find their claims already done (the ledger). A worker
that dies holding a lease holds up its workspaces until the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.delivery.batching import Batcher
from storage.db import DB_ERRORS
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

    after: asyncio.Future[None] | None = None  # the previous holding's release, if in progress
    runs: int = 0
    held: bool = False
    released: asyncio.Future[None] | None = None  # set when the last run has ended

    @property
    def sending(self) -> bool:
        """Holds the lease and has not begun letting it go."""
        return self.held and self.released is None


class SenderLeases:
    def __init__(
        self,
        store: Store,
        holder: str,
        *,
        ttl: timedelta,
        poll: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.holder = holder
        self.ttl = ttl
        self.poll = poll
        self.clock = clock
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
        holding = self._holdings.get(name)
        if holding is None or holding.released is not None:
            # A release in progress is waited for: taking the lease again before its DELETE
            # ran would leave this worker sending without it.
            holding = _Holding(after=holding.released if holding is not None else None)
            self._holdings[name] = holding
        holding.runs += 1
        try:
            if holding.after is not None:
                await asyncio.wait([holding.after])
            while not holding.held:
                if await self._acquiring.submit(name):
                    holding.held = True
                    self._keep_renewing()
                else:
                    await asyncio.sleep(self.poll.total_seconds())
            yield
        finally:
            holding.runs -= 1
            if not holding.runs:
                await self._let_go(name, holding)

    def _keep_renewing(self) -> None:
        if self._renewing is None:
            self._renewing = asyncio.create_task(self._renew(), name="sender lease renewal")

    async def _let_go(self, name: str, holding: _Holding) -> None:
        release = self._release(name) if holding.held else asyncio.sleep(0)
        holding.released = asyncio.ensure_future(release)
        try:
            await asyncio.shield(holding.released)
        finally:
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
            log.warning("sender lease %s not released: %s", name, type(error).__name__)

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
                log.warning("sender leases not renewed: %s", type(error).__name__)
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
