"""Live workers share the workspaces' sender leases: each worker sends to its share, no
workspace has two senders, a dead worker's workspaces move within one lease period, and a
worker that joins gets its share from the others. On PostgreSQL, the deployment with many
workers."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import Paperboy
from bot.config import BotConfig
from bot.delivery.leases import SenderLeases, lease_name
from bot.delivery.outage import Outage
from bot.delivery.runner import DeliveryPolicy
from bot.delivery.workers import LiveWorkers
from bot.events import ChannelRef, CommandInvoked, Scope
from storage.models import Delivery
from storage.store import Store
from tests.core_fixtures import NOW, RecordingPlatform, stocked
from tests.fakes.huggingface import FakeHuggingFace

WORKSPACES = 24
TTL = timedelta(seconds=30)  # the sender lease and heartbeat: time moves by the test's clock
WAIT = 30.0  # seconds: an upper bound for a stage, never an expected duration


@pytest.fixture
def dialect() -> str:
    return "postgresql"


@pytest.fixture
async def stocked_store(store: Store, fake_hf: FakeHuggingFace) -> AsyncIterator[Store]:
    async with stocked(store, fake_hf):
        yield store


async def until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(WAIT / 0.02)):
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("count", [2, 4])
async def test_live_workers_share_the_workspaces_and_post_each_once(
    stocked_store: Store, count: int
) -> None:
    store = stocked_store
    clock = [NOW - timedelta(hours=5)]
    admin = Paperboy(store, RecordingPlatform(), config=BotConfig(), clock=lambda: clock[0])
    for n in range(WORKSPACES):
        for channel in ("C1", "C2"):
            where = ChannelRef(Scope("test", f"T{n:02d}"), channel)
            answer = await admin.handle_command(
                CommandInvoked(where, "admin", "channel on 09:00 UTC 2", True)
            )
            assert not answer.is_usage_hint, answer.text
    clock[0] = NOW
    # The owner asks at once; the others wait out the grace, long after the owner is done.
    policy = DeliveryPolicy(sender_poll=timedelta(seconds=0.02), sender_grace=timedelta(seconds=2))
    platforms = [RecordingPlatform() for _ in range(count)]
    workers = [
        Paperboy(store, p, config=BotConfig(), clock=lambda: clock[0]).scheduler(
            platform="test", worker=f"w{n}", policy=policy, clock=lambda: clock[0]
        )
        for n, p in enumerate(platforms)
    ]
    for _ in range(2):  # the second beat sees every worker that joined
        for worker in workers:
            await worker.workers.beat()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(worker.resync(catch_up=True) for worker in workers)), WAIT
        )
    finally:
        for worker in workers:
            await worker.stop()

    headers = Counter(
        to for p in platforms for to, m, _ in p.posts if m.text.startswith("Trending papers")
    )
    assert len(headers) == 2 * WORKSPACES and set(headers.values()) == {1}  # each once
    async with store.transaction() as repos:
        rows = list(await repos.session.scalars(select(Delivery)))
    senders: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        senders[row.workspace].add(row.worker)
    assert all(len(by) == 1 for by in senders.values())  # no workspace had two senders
    share = Counter(by.pop() for by in senders.values())
    owners = Counter(workers[0].workers.owner(lease_name("test", w)) for w in senders)
    assert share == owners  # each sent to the workspaces rendezvous hashing gave it
    assert set(share) == {f"w{n}" for n in range(count)}  # every worker had a share


@dataclass
class Worker:
    """A worker's heartbeat and sender leases on the test's clock."""

    workers: LiveWorkers
    leases: SenderLeases


def worker(store: Store, name: str, clock: list) -> Worker:  # type: ignore[type-arg]
    workers = LiveWorkers(store, name, platform="slack", ttl=TTL, clock=lambda: clock[0])
    leases = SenderLeases(
        store, workers, ttl=TTL, poll=timedelta(seconds=0.02), grace=timedelta(hours=1),
        clock=lambda: clock[0], outage=Outage(),
    )  # fmt: skip
    return Worker(workers, leases)


async def holders(store: Store, names: list[str], clock: list) -> dict[str, str]:  # type: ignore[type-arg]
    async with store.transaction() as repos:
        held = await repos.leases.held(clock[0])
    return {lease.name: lease.holder for lease in held if lease.name in names}


async def test_a_dead_workers_workspaces_move_within_one_lease_period(store: Store) -> None:
    clock = [NOW]
    alive, dead = worker(store, "alive", clock), worker(store, "dead", clock)
    for each in (alive, dead, alive):
        await each.workers.beat()
    workspaces = [f"T{n:02d}" for n in range(WORKSPACES)]
    names = {w: lease_name("slack", w) for w in workspaces}
    theirs = [w for w in workspaces if alive.workers.owner(names[w]) == "dead"]
    assert theirs and len(theirs) < WORKSPACES
    async with store.transaction() as repos:  # it sends to its share, then dies
        await repos.leases.acquire_many([names[w] for w in theirs], "dead", NOW, TTL)
    entered: set[str] = set()
    release = asyncio.Event()

    async def run(workspace: str) -> None:
        async with alive.leases.sending("slack", workspace):
            entered.add(workspace)
            await release.wait()

    runs = [asyncio.create_task(run(w)) for w in workspaces]
    try:

        async def own_share_entered() -> bool:
            return entered == set(workspaces) - set(theirs)

        await until(own_share_entered, "the live worker's own workspaces")
        await asyncio.sleep(0.1)
        assert not entered & set(theirs)  # the dead worker's leases still hold
        clock[0] = NOW + TTL + timedelta(milliseconds=1)  # one lease period after it died
        await alive.workers.beat()  # its heartbeat, a third of a lease after the last

        async def all_entered() -> bool:
            return entered == set(workspaces)

        await until(all_entered, "the dead worker's workspaces")
        held = await holders(store, list(names.values()), clock)
        assert {names[w]: "alive" for w in theirs}.items() <= held.items()
    finally:
        release.set()
        await asyncio.gather(*runs)


async def test_a_worker_that_joins_gets_its_share_as_the_runs_in_flight_end(
    store: Store,
) -> None:
    clock = [NOW]
    first = worker(store, "first", clock)
    await first.workers.beat()
    joining = worker(store, "joining", clock)
    both = LiveWorkers(store, "first", platform="slack", ttl=TTL, clock=lambda: clock[0])
    both.live = ("first", "joining")  # as every worker will see them once both beat
    workspaces = (f"T{n:02d}" for n in range(100))
    workspace = next(w for w in workspaces if both.owner(lease_name("slack", w)) == "joining")
    name = lease_name("slack", workspace)
    in_flight = asyncio.Event()
    ended = asyncio.Event()

    async def run(leases: SenderLeases, started: asyncio.Event, done: asyncio.Event) -> str:
        async with leases.sending("slack", workspace):
            started.set()
            await done.wait()
            return leases.holder

    sending = asyncio.create_task(run(first.leases, in_flight, ended))  # alone: its own
    await asyncio.wait_for(in_flight.wait(), WAIT)
    await joining.workers.beat()
    await first.workers.beat()  # both now see both: the workspace is the newcomer's
    later_on_first = asyncio.create_task(run(first.leases, asyncio.Event(), asyncio.Event()))
    on_joining_started = asyncio.Event()
    on_joining = asyncio.create_task(run(joining.leases, on_joining_started, asyncio.Event()))
    await asyncio.sleep(0.1)
    assert not on_joining_started.is_set()  # the run in flight keeps the lease
    ended.set()
    assert await asyncio.wait_for(sending, WAIT) == "first"
    await asyncio.wait_for(on_joining_started.wait(), WAIT)  # released, taken by its owner
    assert await holders(store, [name], clock) == {name: "joining"}
    assert not later_on_first.done()  # a non-owner now: waits for the grace (an hour)
    for task in (later_on_first, on_joining):
        task.cancel()
    await asyncio.gather(later_on_first, on_joining, return_exceptions=True)
