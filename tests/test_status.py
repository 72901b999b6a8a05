"""`paperboy status` and the last-delivery lines of `/papers channel status` and `/papers digest`:
what is scheduled next, what was delivered, how fresh the store is, and no secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

from bot.delivery.runner import DeliveryPolicy
from bot.delivery.status import collect_status, render_status
from tests.core_fixtures import NOW, Harness
from tests.postgres import PostgresServer

SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-0000-status-secret-token",
    "SLACK_SIGNING_SECRET": "signing-secret-for-status-test",
    "DISCORD_TOKEN": "MTAw.status-secret.discord-token",
}


async def deliver_today(harness: Harness) -> None:
    harness.clock[0] = NOW - timedelta(hours=5)
    await harness.say("channel on 09:00 UTC 3", user="admin", admin=True)
    await harness.say("follow retrieval")
    await harness.say("digest daily 10:30 Europe/Berlin")
    harness.clock[0] = NOW
    worker = harness.bot.scheduler(
        worker="w1", policy=DeliveryPolicy(), clock=lambda: harness.clock[0]
    )
    await worker.resync(catch_up=True)
    worker.shutdown()


async def test_status_shows_next_slots_deliveries_and_freshness(harness: Harness) -> None:
    await deliver_today(harness)
    report = await collect_status(harness.store, NOW)
    text = render_status(report)
    assert "latest Daily Papers list 2026-05-05 (" in text
    assert "last fetched 2026-05-05 12:00 UTC (0 min ago)" in text
    assert "Next slots (2 of 2):" in text
    lines = text.splitlines()
    slots = lines[lines.index("Next slots (2 of 2):") + 1 :][:2]
    assert "channel test    T1/C1  09:00 UTC on weekdays" in slots[1]  # Wednesday 09:00 UTC
    assert slots[0].startswith("  2026-05-06 08:30 UTC  digest")  # 10:30 in Berlin
    assert "Last 24 hours: 2 sent" in text
    assert any("2026-05-05  sent    attempt 1  3 papers" in line for line in lines)


async def test_channel_and_digest_status_show_the_last_delivery(harness: Harness) -> None:
    await deliver_today(harness)
    channel = await harness.say("channel status")
    assert "Last scheduled post (2026-05-05): sent, 3 papers." in channel.lines
    digest = await harness.say("digest")
    last = "Last scheduled digest (2026-05-05): sent,"
    assert any(line.startswith(last) for line in digest.lines)
    stopped = await harness.say("channel off", user="admin", admin=True)
    assert "off" in stopped.text
    assert (
        "Last scheduled post (2026-05-05): sent, 3 papers."
        in (await harness.say("channel status")).lines
    )


def test_the_status_command_masks_the_database_password_and_shows_no_token(
    postgres_server: PostgresServer,
) -> None:
    with postgres_server.database() as url:
        # The test server trusts local connections, so a password in the URL is accepted.
        env = {**os.environ, "DATABASE_URL": url.replace("@", ":db-password-secret@", 1), **SECRETS}

        def paperboy(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "adapters.cli", *args],
                capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
            )  # fmt: skip

        before = paperboy("status")
        assert before.returncode == 1 and "paperboy db upgrade" in before.stderr
        assert paperboy("db", "upgrade").returncode == 0
        shown = paperboy("status")
    assert shown.returncode == 0, shown.stderr
    assert ":***@" in shown.stdout and "Next slots (0 of 0)" in shown.stdout
    for output in (before.stdout, before.stderr, shown.stdout, shown.stderr):
        assert "db-password-secret" not in output
        for value in SECRETS.values():
            assert value not in output


async def test_status_shows_the_live_workers(harness: Harness) -> None:
    workers = [
        harness.bot.scheduler(platform="test", worker=name, clock=lambda: harness.clock[0])
        for name in ("w1", "w2")
    ]
    for worker in workers:
        await worker.workers.beat()
    await workers[1].stop()  # left: no longer live
    text = render_status(await collect_status(harness.store, NOW))
    assert "Workers delivering to test: 1 live (w1)" in text.splitlines()
