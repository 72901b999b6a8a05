"""Running one scheduled delivery: take the workspace's sender lease, claim the ledger row,
have its kind compose it, send, and record the outcome.

The ledger (`storage.deliveries`) lets exactly one worker claim a (kind, target, period);
a claim carries a lease, so a dead worker's deliveries are taken over. What a delivery sends
is its kind's business (`DeliveryKind`: the daily post in `bot.daily`, the digest in
`bot.digest`); the runner only knows that a send step ends in `Delivered`, `NotReady` (wait)
or an error (retry, or give up when permanent). Deliveries that fire together share their
transactions: claims and composition, and the recording of outcomes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.delivery.batching import Batcher
from bot.delivery.leases import SenderLeases
from bot.delivery.outage import Backoff, Outage
from bot.delivery.resumable import SendKey
from bot.delivery.workers import LiveWorkers
from bot.events import Scope
from bot.messages import counted
from bot.observe import observer
from bot.ports import Delivered, DeliveryError
from storage.db import unreachable
from storage.deliveries import DeliveryKey, Status
from storage.models import Delivery
from storage.store import Repositories, Store

log = logging.getLogger(__name__)

SENDER_LEASE = timedelta(seconds=30)

Send = Callable[[], Awaitable[Delivered]]  # one claimed delivery's send step


@dataclass(frozen=True)
class DeliveryPolicy:
    lease: timedelta = timedelta(minutes=5)  # longer than any one delivery takes
    max_attempts: int = 5
    first_retry: timedelta = timedelta(minutes=1)  # doubled per attempt, up to max_retry
    max_retry: timedelta = timedelta(minutes=30)
    # Deliveries in flight per worker, and per workspace. Paced sends mostly wait, so many can
    # be in flight. A workspace's posts share its rate: when all of them are in flight they
    # progress together and end together; when only some are, the last ones to start are
    # left alone at the end, each at 1 message/s per channel, and the workspace's rate goes
    # unused (bench: 8 per workspace left the last 5 s of a morning at 80% of the rate).
    # per_workspace x messages per post / the rate must stay well under the lease:
    # 32 x 6 / 4 per second is 48 s against 300 s. The worker-wide cap bounds memory.
    concurrency: int = 1024
    per_workspace: int = 32
    resync_every: timedelta = timedelta(minutes=1)
    # A delivery whose list is not out yet waits, looking again every `list_poll`, for up to
    # `list_wait` after its slot; then its kind gives up (the post says the list is missing).
    list_wait: timedelta = timedelta(hours=4)
    list_poll: timedelta = timedelta(minutes=10)
    # One worker at a time sends to a workspace (`bot.delivery.leases`); the others look again
    # every `sender_poll` for its lease to be free. The workspace's owner among the live
    # workers asks at once, the others after `sender_grace`: long enough for the owner to
    # take it when it fires the same slots, short enough that a workspace whose owner has no
    # runs for it (or died) is hardly late.
    sender_poll: timedelta = timedelta(seconds=1)
    sender_grace: timedelta = timedelta(seconds=5)
    # Waits before trying a slot again while the database (or the platform) is unreachable,
    # until the slot's local day ends (`bot.delivery.outage`).
    outage_backoff: Backoff = field(default_factory=Backoff)

    @property
    def sender_lease(self) -> timedelta:
        """How long a workspace's sender lease lasts unrenewed: what a dead worker holds its
        workspaces up by. Never longer than a claim's lease, which it would outlast."""
        return min(self.lease, SENDER_LEASE)

    def retry_delay(self, attempts: int) -> timedelta:
        delay: timedelta = min(self.first_retry * 2 ** max(attempts - 1, 0), self.max_retry)
        return delay


class NotReady(Exception):
    """What a delivery needs is not in yet (the day's Daily Papers list): it waits, looked at
    again every `list_poll` for up to `list_wait`, and waiting uses up no attempt."""

    def __init__(self, awaited: str) -> None:
        super().__init__(f"waiting for {awaited}")


@dataclass(frozen=True)
class Claim:
    """A delivery this worker won, as its kind composes it."""

    key: DeliveryKey
    first_run: datetime  # when its slot first ran: the ledger row's creation
    attempts: int  # this one included
    give_up: bool  # it waited `list_wait` already: say what is missing instead of waiting

    @property
    def scope(self) -> Scope:
        return Scope(self.key.platform, self.key.workspace)

    @property
    def send_key(self) -> SendKey:
        # After a first attempt, part of the delivery may be out (the worker died mid-way, a
        # send timed out after reaching the platform): the platform is asked first.
        retry_since = self.first_run if self.attempts > 1 else None
        return SendKey(f"{self.key.kind}:{self.key.period}", retry_since)


class DeliveryKind(Protocol):
    """What one kind of scheduled delivery sends (`storage.deliveries`' kind names them)."""

    async def prepare(self, repos: Repositories, claims: Sequence[Claim]) -> list[Send]:
        """One send step per claim, in order, composed in the claims' transaction where the
        kind can. A step returns what it sent, raises NotReady to wait, or DeliveryError; a
        permanent one the kind has dealt with already (the channel's post stopped)."""
        ...


def settled(delivered: Delivered) -> tuple[Status, str | None, str]:
    """How the ledger records a send that went through: its status, message and detail."""
    status = Status.SENT if delivered.ref else Status.EMPTY
    ref = delivered.ref.message_id if delivered.ref else None
    return status, ref, delivered.note or counted(delivered.papers, "paper")


def worker_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Outcome:
    """What became of a claimed attempt, for the ledger."""

    delivery_id: int
    status: Status
    at: datetime
    message_ref: str | None
    detail: str | None
    retry_at: datetime | None
    spent: bool  # False: the attempt is given back (waiting for a list, the platform down)


class DeliveryRunner:
    """Runs ledger-keyed deliveries: claim, send through the delivery's kind, record."""

    def __init__(
        self,
        store: Store,
        kinds: Mapping[str, DeliveryKind],
        *,
        workers: LiveWorkers,
        policy: DeliveryPolicy,
        clock: Callable[[], datetime],
        outage: Outage,
    ) -> None:
        self.store = store
        self.kinds = kinds
        self.worker = workers.worker
        self.policy = policy
        self.clock = clock
        self._slots = asyncio.Semaphore(policy.concurrency)
        # Batches of 100: the first posts start sending while the next are composed, and
        # a thousand first messages do not leave at once (the event loop's lag would bunch
        # them past a workspace's burst).
        self._preparing = Batcher(self._prepare, max_batch=100)
        self._finishing = Batcher(self._finish)
        # (platform, workspace) -> its slots and how many runs hold or wait for them.
        self._workspaces: dict[tuple[str, str], tuple[asyncio.Semaphore, list[int]]] = {}
        self._senders = SenderLeases(
            store, workers, ttl=policy.sender_lease, poll=policy.sender_poll,
            grace=policy.sender_grace, clock=clock, outage=outage,
        )  # fmt: skip

    async def run(self, key: DeliveryKey, until: datetime | None = None) -> Status | None:
        """The outcome, or None when this worker did not get the claim (another worker has
        it, it is done, or its retry is not due). `until`, when known, is the end of the
        slot's local day: until then an unreachable platform costs no attempt. Raises what
        the database raises when it cannot be reached (the scheduler tries again)."""
        workspace = (key.platform, key.workspace)
        # The workspace's sender lease first, then its slot: a run waiting for either holds
        # no worker-wide slot.
        async with self._senders.sending(key.platform, key.workspace):
            slots, users = self._workspaces.setdefault(
                workspace, (asyncio.Semaphore(self.policy.per_workspace), [0])
            )
            users[0] += 1
            try:
                async with slots, self._slots:
                    return await self._run(key, until)
            finally:
                users[0] -= 1
                if not users[0]:
                    del self._workspaces[workspace]

    async def _run(self, key: DeliveryKey, until: datetime | None) -> Status | None:
        policy = self.policy
        prepared = await self._preparing.submit(key)
        if prepared is None:
            return None
        delivery, send = prepared
        started = time.monotonic()
        status, retry_at, ref, detail = Status.FAILED, None, None, None
        spent = True  # whether this attempt counts against max_attempts
        try:
            delivered = await send()
        except NotReady as waiting:
            status, detail, spent = Status.WAITING, str(waiting), False
            give_up_at = delivery.created_at + policy.list_wait
            retry_at = min(self.clock() + policy.list_poll, give_up_at)
        except DeliveryError as error:
            detail = error.reason
            now = self.clock()
            if error.unreachable and until is not None:
                # The platform is down, not this delivery wrong: as through an outage of the
                # database, it is tried again until the slot's local day ends, using up no
                # attempt, and not sent later.
                retry_at = policy.outage_backoff.next_try(delivery.created_at, now, until)
                if retry_at is not None:
                    status, spent = Status.RETRY, False
            elif not error.permanent and delivery.attempts < policy.max_attempts:
                status = Status.RETRY
                retry_at = now + policy.retry_delay(delivery.attempts)
        except Exception as error:  # a bug or an outage of ours: retry, never crash the worker
            if unreachable(error):
                # Its claim stays until its lease runs out, then a retry takes it over and
                # finds out what went out; the outage is logged once by the scheduler.
                raise
            log.exception("delivery %s crashed", key)
            detail = f"internal_error: {type(error).__name__}"
            if delivery.attempts < policy.max_attempts:
                status = Status.RETRY
                retry_at = self.clock() + policy.retry_delay(delivery.attempts)
        else:
            status, ref, detail = settled(delivered)
        await self._finishing.submit(
            Outcome(delivery.id, status, self.clock(), ref, detail, retry_at, spent)
        )
        observer().delivery_finished(key.kind, status.value)
        log.info(
            "delivery kind=%s platform=%s workspace=%s target=%s period=%s outcome=%s "
            "attempt=%d latency_ms=%d detail=%s",
            key.kind, key.platform, key.workspace, key.target, key.period, status.value,
            delivery.attempts, (time.monotonic() - started) * 1000, detail,
        )  # fmt: skip
        return status

    async def _finish(self, outcomes: Sequence[Outcome]) -> list[None]:
        """Record outcomes in the ledger, those that arrive together in one transaction: a
        morning's runs end by the hundred, and SQLite lets one transaction write at a time.
        A transaction each kept the others waiting in SQLite's busy handler, which sleeps up
        to 100 ms between tries (a thousand channels: a median wait of 90-170 ms, the longest
        2-2.7 s, and the last outcome that much after the last post)."""
        async with self.store.transaction() as repos:
            for outcome in outcomes:
                await repos.deliveries.finish(
                    outcome.delivery_id, outcome.status, outcome.at,
                    message_ref=outcome.message_ref, detail=outcome.detail,
                    retry_at=outcome.retry_at, spent=outcome.spent,
                )  # fmt: skip
        return [None] * len(outcomes)

    async def _prepare(self, keys: Sequence[DeliveryKey]) -> list[tuple[Delivery, Send] | None]:
        """Claim `keys` and have their kinds compose them, in one transaction: deliveries that
        fire together share it (a morning's posts would otherwise queue for the database one
        by one, the last composed long after the first went out). For each key, None when
        this worker did not get the claim (or the key came twice), else the claim and the
        step that sends."""
        policy, now = self.policy, self.clock()
        async with self.store.transaction() as repos:
            claimed = await repos.deliveries.claim_many(
                keys, self.worker, now, lease=policy.lease, max_attempts=policy.max_attempts
            )
            by_kind: dict[str, list[Claim]] = {}
            for key, row in claimed.items():
                give_up = now >= row.created_at + policy.list_wait
                claim = Claim(key, row.created_at, row.attempts, give_up)
                by_kind.setdefault(key.kind, []).append(claim)
            steps: dict[DeliveryKey, Send] = {}
            for kind, claims in by_kind.items():
                composed = await self._compose(repos, self.kinds[kind], claims)
                steps.update(zip((claim.key for claim in claims), composed, strict=True))
        prepared: list[tuple[Delivery, Send] | None] = []
        for key in keys:
            if key in claimed:  # a key that came twice is claimed once
                prepared.append((claimed.pop(key), steps[key]))
            else:
                prepared.append(None)
        return prepared

    async def _compose(
        self, repos: Repositories, kind: DeliveryKind, claims: list[Claim]
    ) -> list[Send]:
        """The claims' send steps. A delivery whose composing fails (a bug, bad data) fails
        alone: its step raises the error, recorded as its outcome, and the claims still
        commit."""
        try:
            return await kind.prepare(repos, claims)
        except Exception:
            log.warning("composing %d deliveries together failed; one by one now", len(claims))
        steps: list[Send] = []
        for claim in claims:
            try:
                (step,) = await kind.prepare(repos, [claim])
            except Exception as error:
                step = _failing(error)
            steps.append(step)
        return steps


def _failing(error: Exception) -> Send:
    async def fail() -> Delivered:
        raise error

    return fail
