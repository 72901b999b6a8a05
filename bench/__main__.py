"""Run the benchmarks: `python -m bench [--quick] [names...]`.

Names: topic, load, digest, fanout, workers, memory, relevance, stalled. A full run (all of
them, not `--quick`) writes bench/RESULTS.md; a run of some of them replaces their sections in
it (each section says its own run's time and commit); a quick one only prints. The exit status is 1
when a target was missed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import platform
import re
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Section, cores

BENCHMARKS = ("topic", "load", "digest", "fanout", "workers", "memory", "relevance", "stalled")
HERE = Path(__file__).resolve().parent


def revision() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
            ).stdout.strip()
            or "unknown"
        )
    except OSError:
        return "unknown"


def machine() -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        f"- Machine: {cores()} cores ({cpu}), {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
    ]


def write(sections: list[Section]) -> None:
    """RESULTS.md with `sections` in it: all of them when the file is missing, else in place
    of the sections of the same titles (others kept as they were)."""
    path = HERE / "RESULTS.md"
    header = ["# Benchmark results", "", "Written by `python -m bench`.", "", *machine(), ""]
    fresh = {section.title: section.markdown() for section in sections}
    kept: list[str] = []
    if path.exists():
        # Sections start at "## " lines; what comes before the first is the header.
        parts = re.split(r"(?m)^(?=## )", path.read_text())
        for part in parts[1:]:
            title = part.splitlines()[0][3:]
            kept.append(fresh.pop(title, part))
    body = "\n".join(part.rstrip("\n") + "\n" for part in [*kept, *fresh.values()])
    path.write_text("\n".join(header) + "\n" + body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="name", help=", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="smaller sizes, shorter runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark {', '.join(sorted(unknown))}")
    names = args.names or list(BENCHMARKS)
    sections: list[Section] = []
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        section = importlib.import_module(f"bench.{name}").run(quick=args.quick)
        section.add(
            f"_Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {revision()}; "
            f"wall time {time.perf_counter() - start:.0f} s._"
        )
        print(section.markdown(), flush=True)
        sections.append(section)
    if not args.quick:
        write(sections)
        print("bench: wrote bench/RESULTS.md", file=sys.stderr)
    missed = [name for s in sections for name, met in s.verdicts if not met]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
