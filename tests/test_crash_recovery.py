"""A worker killed in the middle of a 200-recipient digest run, then started again: every
remaining digest goes out once and none twice, including the ones whose send reached Slack
just before the kill (the restarted worker finds them by their metadata)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app import Paperboy
from bot.config import BotConfig
from bot.events import ChannelRef, CommandInvoked, Scope
from storage.store import Store
from tests.core_fixtures import RecordingPlatform, stocked
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import BOT_TOKEN, FakeSlack

USERS = 200
LEASE_SECONDS = 2
WAIT = 120.0  # seconds: an upper bound for each stage, never an expected duration


async def set_up_digests(database: Path, fake_hf: FakeHuggingFace) -> None:
    """200 Slack users of T1 following a topic, each with a daily digest due at 00:00 UTC,
    set up yesterday: today's slot is due when the worker starts."""
    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    try:
        async with stocked(store, fake_hf):
            bot = Paperboy(store, RecordingPlatform(), config=BotConfig())
            channel = ChannelRef(Scope("slack", "T1"), "C1")
            for index in range(USERS):
                for words in ("follow retrieval", "digest daily 00:00 UTC"):
                    answer = await bot.handle_command(
                        CommandInvoked(channel, f"U{index:03d}", words, False)
                    )
                    assert not answer.is_usage_hint, answer.text
    finally:
        await store.close()
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    with sqlite3.connect(database) as db:
        db.execute("UPDATE digest_settings SET updated_at = ?", (yesterday,))


def ledger(database: Path) -> dict[str, tuple[str, int]]:
    """user -> (status, attempts) of today's digest deliveries."""
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT target, status, attempts FROM deliveries WHERE kind = 'digest'")
        return {target: (status, attempts) for target, status, attempts in rows}


def start_worker(env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", "worker"],
            env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        )  # fmt: skip


async def until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(WAIT * 10)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_killed_worker_restarted_delivers_the_rest_once(
    tmp_path: Path, fake_hf: FakeHuggingFace, fake_slack: FakeSlack
) -> None:
    database = tmp_path / "paperboy.db"
    await set_up_digests(database, fake_hf)
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "PAPERBOY_SLACK_API_URL": fake_slack.api_url,
        "PAPERBOY_HF_BASE_URL": fake_hf.base_url,
        "PAPERBOY_DELIVERY_LEASE_SECONDS": str(LEASE_SECONDS),
        "PAPERBOY_SLACK_MESSAGES_PER_SECOND": "100",
    }
    for name in ("SLACK_APP_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "DISCORD_TOKEN"):
        env.pop(name, None)
    log = tmp_path / "worker.log"
    fake_slack.stall_answers_after(80)  # from the 81st DM on, Slack gets it but never answers

    first = start_worker(env, tmp_path, log)
    try:
        await until(lambda: fake_slack.stalled >= 8, "sends in flight")
    finally:
        first.send_signal(signal.SIGKILL)  # no clean-up: claims stay, answers are never read
        first.wait(timeout=30)
    delivered_before = len(fake_slack.delivered)
    in_flight = fake_slack.stalled
    fake_slack.release_stalled()
    claimed = [user for user, (status, _) in ledger(database).items() if status == "claimed"]
    assert len(claimed) >= in_flight and delivered_before < USERS

    await asyncio.sleep(LEASE_SECONDS + 0.5)  # the dead worker's leases run out
    second = start_worker(env, tmp_path, log)
    try:
        await until(
            lambda: [s for s, _ in ledger(database).values()].count("sent") == USERS,
            "every digest recorded as sent",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)

    per_user = Counter(posted.channel for posted in fake_slack.delivered)
    assert per_user == {f"DU{index:03d}": 1 for index in range(USERS)}  # once each, none twice
    taken_over = {
        user: attempts for user, (_, attempts) in ledger(database).items() if attempts > 1
    }
    assert set(claimed) <= set(taken_over)  # the in-flight ones were finished by the restart
    lookups = [c for c in fake_slack.calls("conversations.history")]
    assert {c.args["channel"] for c in lookups} >= {f"D{user}" for user in claimed}
    assert BOT_TOKEN not in log.read_text()
