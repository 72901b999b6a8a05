"""`paperboy status` and the last-delivery lines of `/papers channel status` and `/papers digest`:
what is scheduled next, what was delivered, how fresh the store is, and no secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

from bot.delivery.runner import DeliveryPolicy
from bot.delivery.status import collect_status, render_status
from bot.events import ChannelRef, MessageRef, ReactionChanged
from bot.messages import Message
from bot.ports import DeliveryError
from tests.core_fixtures import CHANNEL, NOW, Harness, RecordingPlatform
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


class GoneChannelPlatform(RecordingPlatform):
    """A platform on which the channel was deleted."""

    async def post(self, channel: ChannelRef, message: Message) -> MessageRef:
        raise DeliveryError("channel_not_found", permanent=True)


async def test_manual_sends_are_recent_deliveries_marked_manual(harness: Harness) -> None:
    await deliver_today(harness)
    platform = harness.platform
    harness.clock[0] = NOW + timedelta(minutes=1)
    harness.use(GoneChannelPlatform())
    await harness.say("channel post-now", user="admin", admin=True)
    harness.use(platform)
    harness.clock[0] = NOW + timedelta(minutes=2)
    await harness.say("channel post-now", user="admin", admin=True)
    harness.clock[0] = NOW + timedelta(minutes=3)
    await harness.say("digest now")
    harness.clock[0] = NOW + timedelta(minutes=4)
    await harness.bot.weekly.post(CHANNEL)
    lines = render_status(await collect_status(harness.store, harness.clock[0])).splitlines()
    assert "Last 24 hours: 4 sent, 1 empty, 1 failed" in lines
    recent = lines[lines.index("Recent deliveries (6):") + 1 :][:6]
    assert recent[:4] == [
        "  2026-05-05 12:04 UTC  weekly  test    T1/C1  manual      sent     5 papers",
        "  2026-05-05 12:03 UTC  digest  test    T1/alice  manual      empty    0 papers",
        "  2026-05-05 12:02 UTC  channel test    T1/C1  manual      sent     1 paper",
        "  2026-05-05 12:01 UTC  channel test    T1/C1  manual      failed   channel_not_found",
    ]
    assert sorted(recent[4:]) == [  # the scheduled ones, as they were
        "  2026-05-05 12:00 UTC  channel test    T1/C1  2026-05-05  sent    attempt 1  3 papers",
        "  2026-05-05 12:00 UTC  digest  test    T1/alice  2026-05-05  sent    attempt 1  3 papers",
    ]
    # The last scheduled post, as `channel status` says it, is still the scheduled one.
    channel = await harness.say("channel status")
    assert "Last scheduled post (2026-05-05): sent, 3 papers." in channel.lines


async def test_manual_sends_at_one_moment_share_a_row(harness: Harness) -> None:
    await harness.say("follow retrieval")
    await harness.say("digest now")
    await harness.say("digest now")  # at the same moment (a fixed clock): the latest shows
    lines = render_status(await collect_status(harness.store, NOW)).splitlines()
    recent = lines[lines.index("Recent deliveries (1):") + 1]
    assert (
        recent == "  2026-05-05 12:00 UTC  digest  test    T1/alice  manual      empty    0 papers"
    )


async def test_status_counts_the_reactions_waiting_to_be_acted_on(harness: Harness) -> None:
    assert "Reactions waiting: none" in render_status(await collect_status(harness.store, NOW))
    unread = MessageRef(CHANNEL, "a-members-message")
    for user in ("alice", "bob"):  # taken in, not acted on yet (as if the process stopped)
        assert await harness.bot.inbox.take_in(ReactionChanged(unread, user, "bookmark", True))
    async with harness.store.transaction() as repos:  # one had a failed attempt
        [first] = await repos.inbox.take_due("test", NOW, hold=timedelta(0), most=1)
        await repos.inbox.try_reaction_again(first.id, 1, NOW)
    text = render_status(await collect_status(harness.store, NOW))
    assert (
        "Reactions waiting: 2, the oldest taken in at 2026-05-05 12:00:00 UTC, "
        "1 failed attempt at most"
    ) in text
