"""Run the benchmarks: `python -m bench [--quick] [names...]`.

Names: topic, load, digest, fanout, memory, relevance. A full run (all of them, not
`--quick`) writes bench/RESULTS.md; a partial or quick one only prints. The exit status is 1
when a target was missed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import platform
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Section, cores

BENCHMARKS = ("topic", "load", "digest", "fanout", "memory", "relevance")
HERE = Path(__file__).resolve().parent


def machine() -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip()
    except OSError:
        revision = ""
    return [
        f"- Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {revision or 'unknown'}",
        f"- Machine: {cores()} cores ({cpu}), {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
    ]


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
        section.add(f"_Benchmark wall time: {time.perf_counter() - start:.0f} s._")
        print(section.markdown(), flush=True)
        sections.append(section)
    if not args.quick and names == list(BENCHMARKS):
        header = ["# Benchmark results", "", "Written by `python -m bench`.", "", *machine(), ""]
        body = "\n".join(section.markdown() for section in sections)
        (HERE / "RESULTS.md").write_text("\n".join(header) + "\n" + body)
        print("bench: wrote bench/RESULTS.md", file=sys.stderr)
    missed = [name for s in sections for name, met in s.verdicts if not met]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
