"""Worker memory with 100k papers stored, and start-up time to ready.

What is measured: the real `paperboy worker` (`python -m adapters.cli worker`, a subprocess)
on a copy of the 100k-paper benchmark database (bench/corpus.py; 10k when quick), with Slack
over HTTP configured (SLACK_BOT_TOKEN + SLACK_SIGNING_SECRET, Web API on the fake Slack) and
Hugging Face on the fake Hugging Face serving three real archive days as the three days its
refresh asks for. Before it starts, 200 channel subscriptions and 1,000 daily digests (3
followed topics and 3 saved papers each) over 10 workspaces are written through the
repositories, all due at the first whole minute at least LEAD seconds away, so the run
includes a Daily Papers refresh and a delivery run of 1,200 deliveries.

How: /proc/<pid>/status is read every 50 ms (VmRSS) and VmHWM (the kernel's peak RSS) at the
end; the peak is the larger of the two. "Ready" is the worker's `slack: N scheduled slot(s)`
log line (adapters/cli.py `_deliver`, printed once its scheduler has started); start-up time
runs from spawning the process to that line. The run ends when every delivery has its
outcome in the ledger (or after a bounded time), then the worker gets SIGTERM. `paperboy
serve` (the web process) is measured the same way, to /healthz answering, then after 50
signed `/papers topic` commands.

Both run twice: with search by meaning off (PAPERBOY_SEMANTIC=off), then on, on a copy of the
database holding a vector per paper (bench/corpus.py `database(..., vectors=True)`) but for the
papers of the three days the fake serves, which the worker's refresh embeds as a day's new
papers. The worker answers no searches (Slack over HTTP): it reads no model and embeds the
refresh's papers in a child process (`paperboy embed --most 500`); `paperboy serve` reads the
model and every vector into its index (the process answering `/papers topic` does: the worker
too, when it answers Slack over Socket Mode or Discord). The pieces are measured alone in
fresh interpreters: the model loaded and run (as the child does), and the 100k vectors read
into the index.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO

import httpx

from bench.common import Section, cores
from bench.corpus import ARCHIVE, database
from bot.daily import due_list_day
from bot.sources.hf_items import parse_items
from bot.sources.huggingface import HuggingFaceClient
from bot.sources.ingest import ingest_day
from storage.store import Store
from tests.fakes.http import free_port
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import BOT_TOKEN, FakeSlack, sign, slash_command_body

TARGET_MB = 150.0
CHANNELS = 200
DIGESTS = 1000
WORKSPACES = 10
PER_POST = 5  # papers per daily post (the default)
TOPICS = (
    "diffusion", "agents", "reasoning", "video generation", "retrieval", "reinforcement learning",
    "multimodal", "benchmark", "robotics", "code generation", "speech", "world models",
)  # fmt: skip
LEAD = 25.0  # seconds from setting the work up to its slot, at least
SAMPLE_EVERY = 0.05
READY_TIMEOUT = 180.0
DELIVERY_TIMEOUT = 240.0  # after the slot
SIGNING_SECRET = "bench-signing-secret"
SEARCHES = 50
READY = re.compile(r"slack: (\d+) scheduled slot")
REFRESHED = re.compile(r"Refreshed Daily Papers|Daily Papers refresh failed")
EMBEDDED = re.compile(r"Embedded \d+ .*papers|Papers not embedded")
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, ... of `pid` in kB ({} once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.startswith("Vm") or name.startswith("Rss"):
            found[name] = int(value.split()[0])
    return found


def mb(kb: float) -> str:
    return f"{kb / 1024:.1f}" if not math.isnan(kb) else "n/a"


@dataclass
class Watched:
    """A subprocess with its stderr lines (arrival time, text) and its RSS samples (kB)."""

    process: subprocess.Popen[bytes]
    started: float
    lines: list[tuple[float, str]] = field(default_factory=list)
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def start(cls, args: list[str], env: dict[str, str], cwd: Path) -> Watched:
        started = time.monotonic()
        process = subprocess.Popen(
            args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        watched = cls(process, started)
        assert process.stderr is not None
        threading.Thread(target=watched._read, args=(process.stderr,), daemon=True).start()
        threading.Thread(target=watched._sample, daemon=True).start()
        return watched

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.lines.append((time.monotonic(), raw.decode("utf-8", "replace").rstrip()))

    def _sample(self) -> None:
        while not self._stop.is_set() and self.process.poll() is None:
            rss = status_kb(self.process.pid).get("VmRSS")
            if rss is not None:
                self.samples.append((time.monotonic(), rss))
            time.sleep(SAMPLE_EVERY)

    def rss(self) -> float:
        return float(status_kb(self.process.pid).get("VmRSS", math.nan))

    def hwm(self) -> float:
        return float(status_kb(self.process.pid).get("VmHWM", math.nan))

    def peak_sampled(self) -> float:
        return float(max((rss for _, rss in self.samples), default=math.nan))

    def line_at(self, pattern: re.Pattern[str]) -> tuple[float, str] | None:
        return next(((at, line) for at, line in list(self.lines) if pattern.search(line)), None)

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                tail = "\n".join(line for _, line in self.lines[-15:])
                raise RuntimeError(f"exited ({self.process.returncode}) before {what}:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} after {timeout:.0f} s")
            time.sleep(0.05)

    def stop(self) -> int | None:
        self._stop.set()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def recent_archive_days(count: int) -> list[list[dict[str, object]]]:
    """The newest `count` days of the real archive (oldest first); the demo-free fixtures of
    tests/fixtures/hf when the archive is absent."""
    paths = sorted(ARCHIVE.glob("*.json"))[-count:]
    if not paths:
        fixtures = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "hf"
        paths = sorted(fixtures.glob("2026-05-0*.json"))[-count:]
    return [json.loads(path.read_text()) for path in paths]


def next_slot(after: datetime) -> datetime:
    """The first whole minute at or after `after`."""
    minute = after.replace(second=0, microsecond=0)
    return minute if minute == after else minute + timedelta(minutes=1)


async def set_up(url: str, hf: FakeHuggingFace, slot: datetime, now: datetime) -> int:
    """Write the subscriptions and digests due at `slot`, and make sure the list the daily
    posts carry is stored (as an earlier refresh would have). Returns the deliveries due."""
    store = await Store.open(url)
    try:
        due_day = due_list_day(slot)
        async with HuggingFaceClient(hf.base_url) as source:
            if await ingest_day(store, source, due_day, now) == 0:
                raise RuntimeError(f"the fake Hugging Face has no list for {due_day}")
        at = f"{slot:%H:%M}"
        async with store.transaction() as repos:
            for n in range(CHANNELS):
                await repos.channels.subscribe(
                    "slack", f"T{n % WORKSPACES:03d}", f"CBENCH{n:04d}", post_time=at,
                    timezone="UTC", count=PER_POST, days="*", by="UADMIN", now=now,
                )  # fmt: skip
        async with store.transaction() as repos:
            stored = await repos.papers.count()
        for first in range(0, DIGESTS, 250):
            async with store.transaction() as repos:
                for n in range(first, min(first + 250, DIGESTS)):
                    team, user = f"T{n % WORKSPACES:03d}", f"U{n:05d}"
                    for k in range(3):
                        topic = TOPICS[(n + 5 * k) % len(TOPICS)]
                        await repos.users.follow("slack", team, user, topic, now)
                        # Saved papers too, so digests look for papers like them.
                        paper_id = 1 + (n * 97 + k * 31) % stored
                        await repos.users.save("slack", team, user, paper_id, now)
                    await repos.users.set_digest(
                        "slack", team, user, cadence="daily", weekday=None, send_time=at,
                        timezone="UTC", now=now,
                    )  # fmt: skip
    finally:
        await store.close()
    return CHANNELS + DIGESTS


def ledger(path: Path) -> Counter[str]:
    """Deliveries per status, read from the worker's database while it runs."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            rows = db.execute("SELECT status, count(*) FROM deliveries GROUP BY status")
            return Counter({str(status): int(n) for status, n in rows})
    except sqlite3.Error:
        return Counter()


@dataclass
class WorkerRun:
    papers: int
    startup: float  # seconds from spawn to ready
    slots: int
    rss_ready: float  # kB
    rss_refreshed: float
    rss_delivered: float
    peak_sampled: float
    hwm: float
    delivered_after: float  # seconds from the slot to the last outcome
    statuses: Counter[str]
    messages: int
    refresh_line: str
    exit_code: int | None
    samples: list[tuple[float, int]]
    started: float
    slot_at: float  # monotonic time of the slot
    ready_at: float
    rss_embedded: float = math.nan  # kB, once the refresh's new papers are embedded
    embed_line: str = ""


@dataclass
class ServeRun:
    startup: float
    rss_ready: float
    rss_after: float
    hwm: float
    answered: int


def _env(
    db_path: Path, slack: FakeSlack, hf: FakeHuggingFace, *, semantic: bool = False
) -> dict[str, str]:
    env = {
        **os.environ,
        "PAPERBOY_SEMANTIC": "on" if semantic else "off",
        "DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "PAPERBOY_SLACK_API_URL": slack.api_url,
        "PAPERBOY_HF_BASE_URL": hf.base_url,
        # 10 workspaces x 50/s: the run is bounded by the worker, not by pacing.
        "PAPERBOY_SLACK_MESSAGES_PER_SECOND": "50",
        "PAPERBOY_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("SLACK_APP_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "DISCORD_TOKEN"):
        env.pop(name, None)
    for name in _PROXY_VARS:
        env.pop(name, None)
    return env


def run_worker(
    db_path: Path,
    papers: int,
    slack: FakeSlack,
    hf: FakeHuggingFace,
    *,
    semantic: bool = False,
    embeds: bool = False,
) -> WorkerRun:
    """Set the work up, start the worker, watch it until the deliveries are done (with
    `semantic` and `embeds`, until its refresh's papers are embedded too)."""
    now = datetime.now(UTC)
    slot = next_slot(now + timedelta(seconds=LEAD))
    due = asyncio.run(set_up(f"sqlite+aiosqlite:///{db_path}", hf, slot, now))
    slot_at = time.monotonic() + (slot - datetime.now(UTC)).total_seconds()
    cmd = [sys.executable, "-m", "adapters.cli", "worker"]
    watched = Watched.start(cmd, _env(db_path, slack, hf, semantic=semantic), db_path.parent)
    try:
        watched.wait_for(lambda: watched.line_at(READY) is not None, READY_TIMEOUT, "ready")
        ready = watched.line_at(READY)
        assert ready is not None
        rss_ready = watched.rss()
        watched.wait_for(lambda: watched.line_at(REFRESHED) is not None, 120, "a refresh")
        rss_refreshed = watched.rss()
        refreshed = watched.line_at(REFRESHED)
        rss_embedded, embedded = math.nan, None
        if semantic and embeds:
            watched.wait_for(lambda: watched.line_at(EMBEDDED) is not None, 120, "embedding")
            rss_embedded, embedded = watched.rss(), watched.line_at(EMBEDDED)

        def finished() -> bool:
            done = ledger(db_path)
            return sum(n for status, n in done.items() if status != "claimed") >= due

        remaining = slot_at - time.monotonic() + DELIVERY_TIMEOUT
        watched.wait_for(finished, remaining, "every delivery's outcome")
        delivered_after = time.monotonic() - slot_at
        time.sleep(1.0)  # let the last sends' buffers go, as an idle worker would
        rss_delivered = watched.rss()
        hwm = watched.hwm()
        peak = watched.peak_sampled()
    finally:
        code = watched.stop()
    return WorkerRun(
        papers=papers, startup=ready[0] - watched.started, slots=int(READY.search(ready[1])[1]),  # type: ignore[index]
        rss_ready=rss_ready, rss_refreshed=rss_refreshed, rss_delivered=rss_delivered,
        peak_sampled=peak, hwm=hwm, delivered_after=delivered_after, statuses=ledger(db_path),
        messages=len(slack.delivered), refresh_line=refreshed[1] if refreshed else "",
        exit_code=code, samples=list(watched.samples), started=watched.started,
        slot_at=slot_at, ready_at=ready[0], rss_embedded=rss_embedded,
        embed_line=embedded[1] if embedded else "",
    )  # fmt: skip


def imports_only(env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """VmRSS (kB) of a fresh interpreter that has only imported `adapters.cli`, the floor
    every process of ours starts from, and the seconds that took (spawn to exit)."""
    script = (
        "import adapters.cli, pathlib; print(next(line.split()[1] for line in "
        "pathlib.Path('/proc/self/status').read_text().splitlines() "
        "if line.startswith('VmRSS')))"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    took = time.monotonic() - started
    try:
        return float(done.stdout.strip()), took
    except ValueError:
        return math.nan, took


def run_serve(
    db_path: Path, slack: FakeSlack, hf: FakeHuggingFace, *, semantic: bool = False
) -> ServeRun:
    """`paperboy serve` on the same database: RSS when /healthz answers, then after
    SEARCHES signed `/papers topic` commands (answered in the acknowledgement, or at the
    fake's response_url when slow), sent once search by meaning is ready when it is on."""
    port = free_port()
    env = _env(db_path, slack, hf, semantic=semantic) | {
        "PORT": str(port),
        "PAPERBOY_HOST": "127.0.0.1",
    }
    cmd = [sys.executable, "-m", "adapters.cli", "serve"]
    watched = Watched.start(cmd, env, db_path.parent)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        watched.wait_for(healthy, READY_TIMEOUT, "/healthz")
        startup = time.monotonic() - watched.started
        rss_ready = watched.rss()
        if semantic:  # the model and the index read: what a searching process holds
            ready = re.compile("Search by meaning ready")
            watched.wait_for(lambda: watched.line_at(ready) is not None, 300, "search by meaning")
        answered, late = 0, []
        with httpx.Client(base_url=base, timeout=30) as http:
            for n in range(SEARCHES):
                name = f"mem{n}"
                body = slash_command_body(
                    f"topic {TOPICS[n % len(TOPICS)]}", team_id=f"T{n % WORKSPACES:03d}",
                    response_url=slack.response_url(name),
                )  # fmt: skip
                response = http.post(
                    "/slack/events", content=body.encode(),
                    headers={"Content-Type": "application/x-www-form-urlencoded",
                             **sign(SIGNING_SECRET, body)},
                )  # fmt: skip
                response.raise_for_status()
                if response.content:
                    answered += 1
                else:
                    late.append(name)
        watched.wait_for(lambda: all(slack.responses_to(name) for name in late), 60, "every answer")
        rss_after = watched.rss()
        hwm = watched.hwm()
    finally:
        watched.stop()
    answered += sum(bool(slack.responses_to(name)) for name in late)
    return ServeRun(startup, rss_ready, rss_after, hwm, answered)


@dataclass
class Measured:
    worker: WorkerRun
    serve: ServeRun
    today: date
    baseline: tuple[float, float]  # imports only: RSS (kB), seconds
    unembedded: int = 0  # papers the refresh lists with no stored vector


def run(quick: bool = False) -> Section:
    """Measure the worker (and the web process) holding 100k papers (quick: 10k), with search
    by meaning off, then on."""
    papers = 10_000 if quick else 100_000
    for name in _PROXY_VARS:
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        off = measure(papers, Path(tmp), semantic=False)
        on = measure(papers, Path(tmp), semantic=True)
        db_path, _ = database(papers, Path(tmp), vectors=True)
        env = {**os.environ, "BENCH_DATABASE": str(db_path)}
        pieces = {name: _piece(script, env, Path(tmp)) for name, script in PIECES.items()}
        db_path.unlink()
    out = section(off.worker, off.serve, off.today, off.baseline)
    with_meaning(out, off, on, pieces)
    return out


def measure(papers: int, tmp: Path, *, semantic: bool) -> Measured:
    """The worker, then `paperboy serve`, on a fresh copy of the database (with a vector per
    paper when `semantic`, but for the papers of the days the fake serves)."""
    db_path, _ = database(papers, tmp, vectors=semantic)
    slack, hf = FakeSlack().start(), FakeHuggingFace().start()
    try:
        today = datetime.now(UTC).date()
        days = recent_archive_days(3)
        for back, items in enumerate(reversed(days)):
            hf.days[(today - timedelta(days=back)).isoformat()] = items  # type: ignore[assignment]
        slot_day = due_list_day(next_slot(datetime.now(UTC) + timedelta(seconds=LEAD)))
        hf.days.setdefault(slot_day.isoformat(), days[-1])  # type: ignore[arg-type]
        unembedded = _unembed(db_path, days) if semantic else 0
        baseline = imports_only(_env(db_path, slack, hf), tmp)
        worker = run_worker(db_path, papers, slack, hf, semantic=semantic, embeds=unembedded > 0)
        serve = run_serve(db_path, slack, hf, semantic=semantic)
    finally:
        slack.stop()
        hf.stop()
        db_path.unlink()
    return Measured(worker, serve, today, baseline, unembedded)


def _unembed(db_path: Path, days: list[list[dict[str, object]]]) -> int:
    """Remove the stored vectors of the papers `days` list, so that the worker's refresh
    embeds them as it would a day's new papers; how many."""
    arxiv_ids = [(paper.arxiv_id,) for items in days for paper in parse_items(items)]
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TEMP TABLE listed (arxiv_id TEXT)")
        db.executemany("INSERT INTO listed VALUES (?)", arxiv_ids)
        removed = db.execute(
            "DELETE FROM paper_vectors WHERE paper_id IN "
            "(SELECT id FROM papers WHERE arxiv_id IN (SELECT arxiv_id FROM listed))"
        ).rowcount
    db.close()
    return removed


_STATUS = """
import json, pathlib, sys
def status():
    lines = pathlib.Path("/proc/self/status").read_text().splitlines()
    return {k: int(v.split()[0]) for k, _, v in (l.partition(":") for l in lines)
            if k in ("VmRSS", "VmHWM")}
"""
# Fresh interpreters that import what every process of ours does, then one piece of search
# by meaning: each prints its /proc/self/status readings (kB) after each step, as JSON.
PIECES = {
    "model": _STATUS
    + """
import os, sqlite3
import adapters.cli
steps = {"imported": status()}
from bot.semantic.model import SentenceModel
model = SentenceModel.load()
steps["loaded"] = status()
model.embed(["video diffusion transformer"])
steps["a query embedded"] = status()
with sqlite3.connect(os.environ["BENCH_DATABASE"]) as db:
    rows = db.execute("SELECT title, coalesce(ai_summary, abstract) FROM papers "
                      "ORDER BY id DESC LIMIT 256").fetchall()
model.embed([f"{title}. {summary}" for title, summary in rows])
steps["256 papers embedded"] = status()
print(json.dumps(steps))
""",
    "index": _STATUS
    + """
import asyncio, os
import adapters.cli
from bot.semantic.index import VectorIndex
from bot.semantic.model import MODEL_ID
from storage.store import Store
steps = {"imported": status()}
async def read():
    store = await Store.open("sqlite+aiosqlite:///" + os.environ["BENCH_DATABASE"])
    index = VectorIndex(MODEL_ID)
    await index.refresh(store)
    await store.close()
    return index
index = asyncio.run(read())
steps["vectors read"] = status()
steps["count"] = len(index)
print(json.dumps(steps))
""",
}


def _piece(script: str, env: dict[str, str], cwd: Path) -> dict[str, dict[str, int] | int]:
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"measuring a piece failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def section(w: WorkerRun, s: ServeRun, today: date, baseline: tuple[float, float]) -> Section:
    """The results as markdown."""
    peak = max(w.hwm, w.peak_sampled)
    out = Section("Worker memory and start-up")
    out.target(
        f"worker peak RSS <= {TARGET_MB:.0f} MB with {w.papers:,} papers (measured {mb(peak)} MB)",
        peak <= TARGET_MB * 1024,
    )
    out.add(
        f"`paperboy worker` on a copy of the {w.papers:,}-paper database, Slack over HTTP "
        f"configured, {CHANNELS} channel subscriptions and {DIGESTS} daily digests (3 topics "
        f"and 3 saved papers each) over {WORKSPACES} workspaces all due at one minute; the "
        f"fake Hugging Face serves three real archive days as {today - timedelta(days=2)} to "
        f"{today}. RSS from "
        f"/proc/<pid>/status every {SAMPLE_EVERY * 1000:.0f} ms; peak = the larger of the "
        "sampled maximum and the kernel's VmHWM. "
        f"{cores()} cores, shared."
    )
    out.add()
    phases = _phases(w)
    out.table(
        ["worker", "value"],
        [
            ["start-up: spawn to ready (`slack: N scheduled slot(s)`)", f"{w.startup:.2f} s"],
            ["slots scheduled at ready", w.slots],
            [
                "an interpreter that only imports `adapters.cli`: RSS / spawn to exit",
                f"{mb(baseline[0])} MB / {baseline[1]:.2f} s",
            ],
            ["RSS at ready", f"{mb(w.rss_ready)} MB"],
            ["RSS after the Daily Papers refresh", f"{mb(w.rss_refreshed)} MB"],
            ["RSS after the delivery run", f"{mb(w.rss_delivered)} MB"],
            ["peak RSS sampled / VmHWM", f"{mb(w.peak_sampled)} / {mb(w.hwm)} MB"],
            ["peak RSS before the slot / during the run", phases],
            ["deliveries: slot to last outcome", f"{w.delivered_after:.1f} s"],
            [
                "ledger outcomes",
                ", ".join(f"{k} {v}" for k, v in sorted(w.statuses.items())) or "none",
            ],
            ["messages the fake Slack accepted", w.messages],
            ["refresh", w.refresh_line.split(": ", 1)[-1][:110]],
            ["exit code on SIGTERM", w.exit_code],
        ],
    )
    out.table(
        ["`paperboy serve`", "value"],
        [
            ["start-up: spawn to /healthz answering", f"{s.startup:.2f} s"],
            ["RSS at ready", f"{mb(s.rss_ready)} MB"],
            [f"RSS after {s.answered} `/papers topic` answers", f"{mb(s.rss_after)} MB"],
            ["VmHWM", f"{mb(s.hwm)} MB"],
        ],
    )
    return out


def _phases(w: WorkerRun) -> str:
    before = [rss for at, rss in w.samples if at < w.slot_at]
    during = [rss for at, rss in w.samples if at >= w.slot_at]
    return f"{mb(max(before, default=math.nan))} / {mb(max(during, default=math.nan))} MB"


if __name__ == "__main__":
    begun = time.perf_counter()
    print(run(quick=bool(os.environ.get("QUICK"))).markdown())
    print(f"(bench ran {time.perf_counter() - begun:.0f} s)")


def with_meaning(
    out: Section, off: Measured, on: Measured, pieces: dict[str, dict[str, dict[str, int] | int]]
) -> None:
    """Search by meaning on, beside off: targets, a table, the pieces."""
    papers = on.worker.papers
    worker_peak = max(on.worker.hwm, on.worker.peak_sampled)
    out.target(
        f"search by meaning on: worker peak RSS <= {TARGET_MB:.0f} MB with {papers:,} papers "
        f"(measured {mb(worker_peak)} MB)",
        worker_peak <= TARGET_MB * 1024,
    )
    out.add("### With search by meaning on")
    out.add()
    out.add(
        "The same runs with `PAPERBOY_SEMANTIC=on`, on a copy of the database holding a "
        "vector per paper (bench/corpus.py) but for the "
        f"{on.unembedded} papers of the three days the fake serves, which the worker's "
        "refresh embeds as it would a day's new papers, in a child process (`paperboy embed "
        "--most 500`, not sampled here: its memory is the model's piece below). With Slack "
        "over HTTP the worker answers no searches, so it reads neither the model nor the "
        "vectors; its digests compare stored vectors. `paperboy serve` reads the model and "
        "every stored vector into its index at start (in the background; the first search "
        "waits for it), as a worker answering Slack over Socket Mode or Discord would."
    )
    out.add()
    w0, w1, s0, s1 = off.worker, on.worker, off.serve, on.serve
    out.table(
        ["", "off", "on"],
        [
            ["worker start-up: spawn to ready", f"{w0.startup:.2f} s", f"{w1.startup:.2f} s"],
            ["worker RSS at ready", f"{mb(w0.rss_ready)} MB", f"{mb(w1.rss_ready)} MB"],
            ["worker RSS after the Daily Papers refresh", f"{mb(w0.rss_refreshed)} MB",
             f"{mb(w1.rss_refreshed)} MB"],
            ["worker RSS after embedding the refresh's papers", "",
             f"{mb(w1.rss_embedded)} MB ({w1.embed_line.split(': ', 1)[-1][:60]})"],
            ["worker RSS after the delivery run", f"{mb(w0.rss_delivered)} MB",
             f"{mb(w1.rss_delivered)} MB"],
            ["worker peak RSS (sampled / VmHWM)", f"{mb(w0.peak_sampled)} / {mb(w0.hwm)} MB",
             f"{mb(w1.peak_sampled)} / {mb(w1.hwm)} MB"],
            ["deliveries: slot to last outcome", f"{w0.delivered_after:.1f} s",
             f"{w1.delivered_after:.1f} s"],
            ["ledger outcomes", _outcomes(w0), _outcomes(w1)],
            ["`paperboy serve` start-up: spawn to /healthz", f"{s0.startup:.2f} s",
             f"{s1.startup:.2f} s"],
            ["`paperboy serve` RSS at ready", f"{mb(s0.rss_ready)} MB", f"{mb(s1.rss_ready)} MB"],
            [f"`paperboy serve` RSS after {s1.answered} `/papers topic` answers",
             f"{mb(s0.rss_after)} MB", f"{mb(s1.rss_after)} MB"],
            ["`paperboy serve` VmHWM", f"{mb(s0.hwm)} MB", f"{mb(s1.hwm)} MB"],
        ],
    )  # fmt: skip
    model, index = pieces["model"], pieces["index"]

    def grown(steps: dict[str, dict[str, int] | int], step: str, key: str = "VmRSS") -> str:
        before, after = steps["imported"], steps[step]
        assert isinstance(before, dict) and isinstance(after, dict)
        return f"+{mb(after[key] - before['VmRSS'])} MB"

    count = int(index["count"])  # type: ignore[arg-type]
    out.table(
        ["piece, alone in a fresh interpreter that imported `adapters.cli`", "RSS"],
        [
            ["imports only", f"{mb(model['imported']['VmRSS'])} MB"],  # type: ignore[index]
            ["the sentence model loaded (numpy, onnxruntime, tokenizers, the int8 model)",
             grown(model, "loaded")],
            ["... and a query embedded", grown(model, "a query embedded")],
            ["... and 256 papers embedded (a page of the child that embeds)",
             grown(model, "256 papers embedded")],
            ["... its peak (VmHWM)", grown(model, "256 papers embedded", "VmHWM")],
            [f"{count:,} stored vectors read into the index (numpy and faiss imported first)",
             grown(index, "vectors read")],
            ["... its peak while reading (VmHWM)", grown(index, "vectors read", "VmHWM")],
            ["the codes' own size (count x 384 bytes, the ids 8 more)",
             f"{mb(count * 392 / 1024)} MB"],
        ],
    )  # fmt: skip
    out.add(
        f"With search by meaning on, `paperboy serve` holds {mb(s1.rss_after - s0.rss_after)} "
        f"MB more after its answers than with it off: the model ({grown(model, 'loaded')} "
        f"alone) and the index ({grown(index, 'vectors read')} alone once read). A process "
        f"that answers searches by meaning is over the worker's {TARGET_MB:.0f} MB by the "
        "model alone: with Slack over Socket Mode or Discord, the worker is such a process. "
        f"The worker here holds {mb(w1.rss_delivered - w0.rss_delivered)} MB more at the end "
        "than with search by meaning off. The child that embeds a refresh's papers peaks as "
        f"the model's piece does ({grown(model, '256 papers embedded', 'VmHWM')} over its "
        "imports after 256 papers), and gives it all back when it ends."
    )


def _outcomes(w: WorkerRun) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(w.statuses.items())) or "none"
