"""`paperboy serve` and `paperboy worker`, real processes, on one SQLite file: 50 signed
slash commands that write and read arrive while the worker's delivery run of many channel
posts writes to the same file. Every command gets its answer, no "database is locked" reaches
a user or a log, and every post goes out once. Bounded waits only; nothing is timed."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import SOMETHING_WENT_WRONG
from bot.daily import due_list_day
from bot.sources.huggingface import HuggingFaceClient
from bot.sources.ingest import ingest_day
from storage.store import Store
from tests.fakes.http import free_port
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import BOT_TOKEN, FakeSlack, sign, slash_command_body
from tests.test_operations import sample

CHANNELS = 40
WORKSPACES = 4
PER_POST = 4  # papers per post: every paper of the fixture's list
COMMANDS = 50
SIGNING_SECRET = "two-processes-signing-secret"
START_TIMEOUT = 120.0
ANSWER_TIMEOUT = 120.0
DELIVERY_TIMEOUT = 240.0
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


@dataclass
class Process:
    """A `paperboy` subprocess whose standard error goes to a file (a pipe could fill)."""

    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, command: str, env: dict[str, str], cwd: Path) -> Process:
        log = cwd / f"{command}.log"
        with log.open("wb") as sink:
            popen = subprocess.Popen(
                [sys.executable, "-m", "adapters.cli", command], env=env, cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return cls(popen, log)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


async def wait_until(condition: Callable[[], bool], what: str, timeout: float,
                     *alive: Process) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while not condition():
        for process in alive:
            assert process.popen.poll() is None, f"exited before {what}:\n{process.output()}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        await asyncio.sleep(0.1)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def ledger(path: Path) -> Counter[str]:
    """Channel deliveries per status, read beside the processes."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        rows = db.execute(
            "SELECT status, count(*) FROM deliveries WHERE kind = 'channel' GROUP BY status"
        )
        found = Counter({str(status): int(n) for status, n in rows})
    db.close()
    return found


def count_rows(path: Path, table: str) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        (count,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    db.close()
    return int(count)


async def set_up(url: str, hf: FakeHuggingFace) -> list[str]:
    """Every channel's daily post due since midnight (UTC), missed: the worker sends them all
    as it starts. The list they carry, the one due at midnight, is stored as an earlier refresh
    would have left it (and served, as Hugging Face would). Returns the listed papers' ids."""
    store = await Store.open(url)
    now = datetime.now(UTC)
    try:
        # The worker may start after the next midnight: both days' posts find their list.
        midnights = {datetime.combine(t.date(), datetime.min.time(), UTC)
                     for t in (now, now + timedelta(hours=1))}  # fmt: skip
        for day in sorted({due_list_day(midnight) for midnight in midnights}):
            items = hf.load_day(day.isoformat(), "2026-05-05.json")
            async with HuggingFaceClient(hf.base_url) as source:
                assert await ingest_day(store, source, day, now) == len(items) == PER_POST
        async with store.transaction() as repos:
            for n in range(CHANNELS):
                await repos.channels.subscribe(
                    "slack", f"T{n % WORKSPACES}", f"C{n:03d}", post_time="00:00",
                    timezone="UTC", count=PER_POST, days="*", by="UADMIN",
                    now=now - timedelta(days=1),
                )  # fmt: skip
    finally:
        await store.close()
    return [str(item["paper"]["id"]).split("v")[0] for item in items]


def command_text(n: int, papers: list[str]) -> str:
    """Writes and reads, in turn: follow, save, digest, search, list."""
    return [
        f"follow latency{n}",
        f"save {papers[n % len(papers)]}",
        "digest daily 08:00 UTC",
        "topic diffusion",
        "saved",
    ][n % 5]


async def run_command(
    http: httpx.AsyncClient, slack: FakeSlack, n: int, text: str
) -> dict[str, Any]:
    """Send `/papers text` as Slack would; its answer, from the acknowledgement or (when
    slow) from the response_url."""
    name = f"cmd{n}"
    body = slash_command_body(
        text, team_id=f"T{n % WORKSPACES}", channel_id=f"C{n:03d}", user_id=f"U{n:03d}",
        response_url=slack.response_url(name),
    )  # fmt: skip
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, body)}
    response = await http.post("/slack/events", content=body.encode(), headers=headers)
    assert response.status_code == 200, response.text
    if response.content:
        answer: dict[str, Any] = response.json()
        return answer
    [late] = await slack.wait_for_responses(name, timeout=ANSWER_TIMEOUT)
    return late  # type: ignore[no-any-return]


@pytest.fixture
def environment(
    tmp_path: Path, fake_slack: FakeSlack, fake_hf: FakeHuggingFace
) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'paperboy.db'}",
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "PAPERBOY_SLACK_API_URL": fake_slack.api_url,
        "PAPERBOY_HF_BASE_URL": fake_hf.base_url,
        "PAPERBOY_SEMANTIC": "off",
        "PAPERBOY_HOST": "127.0.0.1",
        "PAPERBOY_SLACK_MESSAGES_PER_SECOND": "50",
        "PAPERBOY_SLACK_BURST": "50",
        "PAPERBOY_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    for name in (*_PROXY_VARS, "SLACK_APP_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET",
                 "DISCORD_TOKEN", "PAPERBOY_LOG_FORMAT", "PAPERBOY_METRICS_PORT"):  # fmt: skip
        env.pop(name, None)
    yield env


async def test_commands_during_a_delivery_run_on_one_sqlite_file(
    tmp_path: Path, environment: dict[str, str], fake_slack: FakeSlack, fake_hf: FakeHuggingFace
) -> None:
    database = tmp_path / "paperboy.db"
    papers = await set_up(environment["DATABASE_URL"], fake_hf)
    web_port, metrics_port = free_port(), free_port()
    web = f"http://127.0.0.1:{web_port}"
    worker_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    serve = Process.start("serve", environment | {"PORT": str(web_port)}, tmp_path)
    worker: Process | None = None
    try:
        await wait_until(lambda: answers(f"{web}/readyz"), "readiness", START_TIMEOUT, serve)
        worker = Process.start(
            "worker", environment | {"PAPERBOY_METRICS_PORT": str(metrics_port)}, tmp_path
        )
        # The delivery run has begun: the commands arrive while it writes.
        await wait_until(
            lambda: bool(fake_slack.calls("chat.postMessage")), "first post", START_TIMEOUT,
            serve, worker,
        )  # fmt: skip
        texts = [command_text(n, papers) for n in range(COMMANDS)]
        async with httpx.AsyncClient(base_url=web, timeout=ANSWER_TIMEOUT) as http:
            replies = await asyncio.gather(
                *(run_command(http, fake_slack, n, text) for n, text in enumerate(texts))
            )
        await wait_until(
            lambda: sum(n for s, n in ledger(database).items() if s != "claimed") >= CHANNELS,
            "every delivery's outcome", DELIVERY_TIMEOUT, serve, worker,
        )  # fmt: skip
        async with httpx.AsyncClient(timeout=10) as http:
            served = (await http.get(f"{web}/metrics")).text
            delivered = (await http.get(worker_metrics)).text
            worker_ready = await http.get(worker_metrics.replace("/metrics", "/readyz"))
    finally:
        serve.stop()
        if worker is not None:
            worker.stop()
    logs = serve.output() + (worker.output() if worker is not None else "")

    # Every command answered, none with an apology or a lock.
    assert len(replies) == COMMANDS
    for text, reply in zip(texts, replies, strict=True):
        shown = str(reply)
        assert SOMETHING_WENT_WRONG not in shown and "locked" not in shown, (text, shown)
    assert count_rows(database, "follows") == COMMANDS // 5
    assert count_rows(database, "saves") == COMMANDS // 5
    assert count_rows(database, "digest_settings") == COMMANDS // 5

    # Every post out once: a header and each paper, in each channel.
    assert ledger(database) == Counter({"sent": CHANNELS})
    per_channel = Counter(posted.channel for posted in fake_slack.delivered)
    assert per_channel == Counter({f"C{n:03d}": 1 + PER_POST for n in range(CHANNELS)})
    assert len({(p.channel, p.text) for p in fake_slack.delivered}) == len(fake_slack.delivered)

    # Neither process logged a lock, an error or a traceback.
    assert "database is locked" not in logs
    assert not [line for line in logs.splitlines() if " ERROR " in line or "Traceback" in line]

    # Each process counted its own work, served on its own port.
    assert worker_ready.status_code == 200
    sent = {"kind": "channel", "state": "sent"}
    assert sample(delivered, "paperboy_deliveries_total", **sent) == CHANNELS
    counted = sum(
        sample(served, "paperboy_commands_total", command=command, outcome=outcome)
        for command in ("follow", "save_papers", "digest_set", "topic", "saved")
        for outcome in ("ok", "usage", "denied", "error")
    )
    assert counted == COMMANDS
    assert sample(served, "paperboy_deliveries_total", **sent) == 0  # the worker's, not web's
