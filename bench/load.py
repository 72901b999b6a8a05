"""Sustained load: 50 concurrent Slack clients for 30 s against `paperboy serve`.

Each client loops (bounded by the deadline): a signed `/papers` command, then waits for its
answer (in the acknowledgement, or at the fake Slack's response_url when it took over 2 s)
before sending the next. The commands mix what
people type: topics (drawn from the corpus's own AI keywords, so most are distinct, and
some multi-word), `today`, `following`, `saved` and `help`, from 200 users. An error is a
non-200 acknowledgement, an answer that never arrives (10 s), or an apology.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.common import Section, ms, percentile
from bench.corpus import Corpus, database
from bench.served import Timed, served

CLIENTS = 50
DURATION = 30.0
USERS = 200
PAPERS = 100_000


def command_mix(corpus: Corpus, seed: int = 7) -> list[str]:
    """2,000 commands in the proportions people use them."""
    rng = random.Random(seed)
    keywords = sorted({k for p in corpus.papers[-20_000:] for k in p.ai_keywords if k.isascii()})
    commands = []
    for _ in range(2000):
        roll = rng.random()
        if roll < 0.70:
            commands.append(f"topic {rng.choice(keywords)}")
        elif roll < 0.85:
            commands.append("today")
        elif roll < 0.92:
            commands.append("following")
        elif roll < 0.97:
            commands.append("saved")
        else:
            commands.append("help")
    return commands


async def sustained(path: Path, commands: list[str], duration: float) -> tuple[
    list[tuple[str, Timed]], float, float
]:  # fmt: skip
    """Every (command, outcome), the measured wall time, and the server's start-up time."""
    async with served(path) as bot:
        for text in ("help", "today", "topic agents"):  # warm caches and the admin check
            await bot.client.command(text)
        results: list[tuple[str, Timed]] = []
        deadline = time.perf_counter() + duration

        async def client(number: int) -> None:
            rng = random.Random(number)
            while time.perf_counter() < deadline:
                text = rng.choice(commands)
                user = f"U{rng.randrange(USERS):04d}"
                results.append((text, await bot.client.command(text, user=user)))

        start = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(CLIENTS)))
        return results, time.perf_counter() - start, bot.started_in


def run(quick: bool = False) -> Section:
    duration = 10.0 if quick else DURATION
    size = 10_000 if quick else PAPERS
    section = Section(f"Sustained load: {CLIENTS} concurrent clients for {duration:.0f} s")
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        path, corpus = database(size, Path(tmp))
        results, wall, started_in = asyncio.run(sustained(path, command_mix(corpus), duration))
    errors = [timed for _, timed in results if timed.error]
    times = [timed.seconds for _, timed in results if not timed.error]
    kinds = Counter(text.split()[0] for text, _ in results)
    section.add(
        f"`paperboy serve` (one process, SQLite, {size:,} papers), {CLIENTS} clients each "
        f"sending a signed command and waiting for its answer (in the acknowledgement, or at the "
        f"response_url when slow) before the next, for {duration:.0f} s; {USERS} users. Mix: "
        + ", ".join(f"{kind} {count}" for kind, count in kinds.most_common())
        + f". Server start-up to healthy: {started_in:.1f} s."
    )
    section.add()
    by_kind = []
    for kind in kinds:
        kind_times = [t.seconds for text, t in results if text.split()[0] == kind and not t.error]
        by_kind.append(
            [kind, len(kind_times), ms(percentile(kind_times, 50)), ms(percentile(kind_times, 99))]
        )
    section.table(
        ["commands", "answered", "errors", "throughput (answers/s)", "p50 ms", "p99 ms"],
        [[len(results), len(times), len(errors), f"{len(times) / wall:.0f}",
          ms(percentile(times, 50)), ms(percentile(times, 99))]],
    )  # fmt: skip
    section.table(["command", "answered", "p50 ms", "p99 ms"], by_kind)
    if errors:
        reasons = Counter(timed.error for timed in errors)
        section.add("Errors: " + ", ".join(f"{why}: {n}" for why, n in reasons.items()))
    section.target(f"0 errors ({len(errors)})", not errors)
    return section
