"""Delivery grows with workers: one morning's daily posts to 1,000 Slack channels in 200
workspaces (5 each), by 1, 2 and 4 worker processes on one PostgreSQL, then by 4 of which
one is killed (SIGKILL) midway.

The same morning as `bench.fanout` (its pieces: the worker path as `paperboy worker` wires
it, the rate-limiting fake Slack in its own process, the tally of lost and doubled posts),
with four times the workspaces: 200 workspaces at 5 messages/s allow 1,000 messages/s, more
than one process sends. The live workers share the workspaces' sender leases
(`bot.delivery.workers`): each worker sends to about a quarter of them when four run, and a
killed worker's workspaces are taken over once its sender leases and heartbeat run out, its
claimed deliveries once their lease (here 20 s) does.
"""

from __future__ import annotations

import os
import time

from bench.common import Section, cores
from bench.fanout import KILLED_WORKER_LEASE, Morning, morning_with_fake, tally
from tests.postgres import find_bindir, running_server

FULL = (200, 1000)  # workspaces, channels
QUICK = (40, 200)
RUNS = ((1, False), (2, False), (4, False), (4, True))  # worker processes, one killed


def run(quick: bool = False) -> Section:
    workspaces, channels = QUICK if quick else FULL
    s = Section(f"Delivery by 1, 2 and 4 workers ({channels} channels in {workspaces} workspaces)")
    bindir = find_bindir()
    if bindir is None:
        s.add("Skipped: no PostgreSQL server binaries (Debian's `postgresql` package).")
        return s
    mornings: list[Morning] = []
    with running_server(bindir) as server:
        for workers, kill_one in RUNS:
            with server.database() as url:
                mornings.append(morning_with_fake(workspaces, channels, workers, url, kill_one))
    counted = [tally(m) for m in mornings]
    alone = mornings[0].wall  # one worker's time
    s.target(
        f"lost = 0 in every run (measured {sum(c.lost for c in counted)})",
        all(c.lost == 0 for c in counted),
    )
    s.target(
        f"doubled = 0 in every run (measured {sum(c.duplicated for c in counted)})",
        all(c.duplicated == 0 for c in counted),
    )
    s.add(
        f"{channels} channels in {workspaces} workspaces, {mornings[0].per_post} messages a "
        f"post ({counted[0].due} due), against the fake Slack (1 message/s per channel, 5/s in "
        "bursts of 10 per workspace, 429 beyond). Worker processes on one PostgreSQL, started "
        "together after every slot: each catches the morning up. Time: from the start to the "
        f"last outcome in the ledger. Machine: {cores()} cores, shared with PostgreSQL and the "
        "fake Slack. With a worker killed, `PAPERBOY_DELIVERY_LEASE_SECONDS` is "
        f"{KILLED_WORKER_LEASE}: its claims wait that long, then the others' retries (every "
        "minute) take them over."
    )
    s.add()
    rows = []
    for m, c in zip(mornings, counted, strict=True):
        shares = sorted(m.workspaces_of.values(), reverse=True)
        rows.append(
            [
                f"{m.workers}" + (", 1 killed midway" if m.killed else ""),
                f"{m.wall:.1f} s",
                f"{c.delivered} / {c.due}",
                f"{c.delivered / m.wall:.0f} msgs/s",
                f"{c.fraction:.1%}",
                f"{alone / m.wall:.2f}x",
                c.lost,
                c.duplicated,
                len(m.report.refused),
                " / ".join(str(n) for n in shares),
                f"{m.process_cpu:.1f} s",
            ]
        )
    s.table(
        [
            "workers",
            "time to deliver every post",
            "messages",
            "achieved",
            "of the allowed rate",
            "speed-up over 1 worker",
            "lost",
            "doubled",
            "429s",
            "workspaces sent to, by worker",
            "worker CPU",
        ],
        rows,
    )
    s.add(
        "A workspace counts for every worker that recorded one of its deliveries, so the "
        "killed run's counts add up to more than the workspaces."
    )
    return s


if __name__ == "__main__":
    started = time.perf_counter()
    print(run(quick=bool(os.environ.get("QUICK"))).markdown())
    print(f"(bench ran {time.perf_counter() - started:.0f} s)")
