"""What every benchmark shares: its result section, percentiles and timing."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Section:
    """One benchmark's part of RESULTS.md: a title, markdown lines, and its targets' verdicts."""

    title: str
    lines: list[str] = field(default_factory=list)
    verdicts: list[tuple[str, bool]] = field(default_factory=list)

    def add(self, line: str = "") -> None:
        self.lines.append(line)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.add("| " + " | ".join(header) + " |")
        self.add("|" + "|".join(" --- " for _ in header) + "|")
        for row in rows:
            self.add("| " + " | ".join(str(cell) for cell in row) + " |")
        self.add()

    def target(self, name: str, met: bool) -> None:
        """Record whether a target from the quality bars was met."""
        self.verdicts.append((name, met))

    def markdown(self) -> str:
        out = [f"## {self.title}", ""]
        if self.verdicts:
            out += [f"- {'met' if met else '**missed**'}: {name}" for name, met in self.verdicts]
            out.append("")
        return "\n".join(out + self.lines).rstrip() + "\n"


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile `p` (0-100) of `values`."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """`with stopwatch() as took:` ... `took[0]` is the elapsed wall time in seconds."""
    took: list[float] = []
    start = time.perf_counter()
    try:
        yield took
    finally:
        took.append(time.perf_counter() - start)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
