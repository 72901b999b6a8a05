"""Workers sharing one Discord token take turns on the gateway through a database lease.

In-process: two real `LeasedGateway`s (real discord.py clients, the fake Discord, a SQLite
file store) go through standby -> takeover -> lost lease -> standby. Out of process: two
`paperboy worker`s on one PostgreSQL database, one of them killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from adapters.discord.client import PLATFORM, DiscordBot, create_discord_bot
from adapters.discord.gateway import LEASE_PREFIX, LeasedGateway
from bot.events import ChannelRef, Scope, UserRef
from bot.messages import Message
from config import Settings
from storage.db import create_engine, upgrade
from storage.models import Lease
from storage.store import Store
from tests.fakes.discord import (
    APPLICATION_ID,
    BOT_TOKEN,
    CHANNEL_ID,
    GUILD_ID,
    USER_ID,
    FakeDiscord,
    slash_command,
    subcommand,
)
from tests.postgres import PostgresServer
from tests.test_discord_cli import TOKEN, worker_env

LEASE = f"{LEASE_PREFIX}{APPLICATION_ID}"
TTL = 0.6  # seconds: renewals and polls every 0.2 s
TIMEOUT = 10.0
WORKER_TIMEOUT = 60.0  # a worker process starting up, or taking over a dead one's lease


async def eventually(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait (bounded) for a condition that no event announces, such as a log line."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def lease(store: Store) -> Lease | None:
    async with store.transaction() as repos:
        return await repos.leases.get(LEASE)


async def answered_once(fake: FakeDiscord, *, timeout: float = TIMEOUT) -> None:
    """`/papers help` gets exactly one answer: only one gateway session receives it."""
    assert len(fake.live_sessions()) == 1
    payload = slash_command("papers", [subcommand("help")])
    await fake.interact(payload)
    answer = await fake.wait_for_response(payload, timeout=timeout)
    assert answer.json["type"] == 4 and "/papers" in answer.json["data"]["content"]
    assert len(fake.calls_to("POST", rf"/interactions/{payload['id']}/[^/]+/callback")) == 1


async def renewed_after(store: Store, expires_at: datetime) -> Lease:
    """The lease once its holder has renewed it past `expires_at`."""
    async with asyncio.timeout(TIMEOUT):
        while (current := await lease(store)) is None or current.expires_at <= expires_at:
            await asyncio.sleep(0.02)
    return current


async def sends_over_rest(gateway: LeasedGateway, fake: FakeDiscord) -> None:
    """What scheduled deliveries do (a channel post, a DM) works without the gateway."""
    scope = Scope(PLATFORM, str(GUILD_ID))
    outbound = gateway.discord.outbound
    await outbound.post(ChannelRef(scope, str(CHANNEL_ID)), Message(text="Today's papers"))
    await outbound.send_dm(UserRef(scope, str(USER_ID)), Message(text="Your digest"))
    dm_channel = int(fake.dm_channel_for(USER_ID)["id"])
    assert [m["content"] for m in fake.messages[CHANNEL_ID]][-1] == "Today's papers"
    assert [m["content"] for m in fake.messages[dm_channel]] == ["Your digest"]


# In process ------------------------------------------------------------------------------


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    yield store
    await store.close()


def discord_bot(fake: FakeDiscord, store: Store) -> DiscordBot:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DISCORD_TOKEN=BOT_TOKEN,
        PAPERBOY_DISCORD_API_URL=fake.api_url,
        PAPERBOY_DISCORD_GATEWAY_URL=fake.gateway_url,
    )
    return create_discord_bot(settings, store, source=None, guild_ready_timeout=0.05)


@contextlib.asynccontextmanager
async def running(gateway: LeasedGateway) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(gateway.run())
    try:
        await asyncio.wait_for(gateway.logged_in.wait(), TIMEOUT)
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def stop(
    task: asyncio.Task[None], fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancel a gateway's run, as a shutdown does. Not before discord.py has dispatched
    `on_ready` for every session: a client closed earlier fails to (a discord.py quirk)."""
    await eventually(lambda: caplog.text.count("Discord gateway ready as") == len(fake.identifies))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_one_gateway_hands_over_on_a_lost_lease_and_on_shutdown(
    fake_discord: FakeDiscord, sqlite_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="adapters.discord")
    a = LeasedGateway(discord_bot(fake_discord, sqlite_store), sqlite_store, ttl=TTL, holder="a")
    b = LeasedGateway(discord_bot(fake_discord, sqlite_store), sqlite_store, ttl=TTL, holder="b")
    async with running(a) as task_a:
        await fake_discord.wait_until(lambda: len(fake_discord.identifies) == 1, timeout=TIMEOUT)
        assert f"lease {LEASE} acquired by a: connecting" in caplog.text
        async with running(b) as task_b:
            await eventually(lambda: "standby: b waits" in caplog.text)
            # b stays on standby while a renews (twice, as the lease's expiry shows).
            current = await lease(sqlite_store)
            assert current is not None and current.holder == "a"
            for _ in range(2):
                current = await renewed_after(sqlite_store, current.expires_at)
                assert current.holder == "a"
            assert len(fake_discord.identifies) == 1
            await answered_once(fake_discord)
            await sends_over_rest(b, fake_discord)

            # a's renewal finds another holder (as if it had been late): a disconnects.
            async with sqlite_store.transaction() as repos:
                later = datetime.now(UTC) + timedelta(hours=1)  # a's lease looks expired
                assert await repos.leases.acquire(LEASE, "intruder", later, timedelta(hours=1))
            await fake_discord.wait_until(lambda: not fake_discord.live_sessions())
            await eventually(lambda: "standby: a waits" in caplog.text)
            assert "lost by a (now held by intruder)" in caplog.text
            assert len(fake_discord.identifies) == 1  # b does not connect either

            # The lease comes free: exactly one of them takes over and answers.
            async with sqlite_store.transaction() as repos:
                await repos.leases.release(LEASE, "intruder")
            await fake_discord.wait_until(lambda: len(fake_discord.identifies) == 2)
            await answered_once(fake_discord)
            current = await lease(sqlite_store)
            assert current is not None and current.holder in ("a", "b")
            holder, other = (task_a, task_b) if current.holder == "a" else (task_b, task_a)

            # A clean shutdown releases the lease: the other takes over at its next poll.
            await stop(holder, fake_discord, caplog)
            assert f"released by {current.holder}" in caplog.text
            await fake_discord.wait_until(lambda: len(fake_discord.identifies) == 3)
            await answered_once(fake_discord)
            await stop(other, fake_discord, caplog)
            assert await lease(sqlite_store) is None  # the last holder released it too
    assert fake_discord.max_live_sessions == 1
    assert BOT_TOKEN not in caplog.text


async def test_a_holder_cut_off_from_the_database_leaves_the_gateway_in_time(
    fake_discord: FakeDiscord, sqlite_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="adapters.discord")
    a = LeasedGateway(discord_bot(fake_discord, sqlite_store), sqlite_store, ttl=TTL, holder="a")
    async with running(a):
        await fake_discord.wait_until(lambda: len(fake_discord.live_sessions()) == 1)
        async with sqlite_store.engine.begin() as connection:  # every lease query now fails
            await connection.execute(text("ALTER TABLE leases RENAME TO leases_away"))
        # a cannot tell whether another worker took over once its lease could have expired.
        await fake_discord.wait_until(lambda: not fake_discord.live_sessions())
        assert "database error" in caplog.text
        assert "lost by a (now held by nobody known)" in caplog.text
        async with sqlite_store.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE leases_away RENAME TO leases"))
        await fake_discord.wait_until(lambda: len(fake_discord.live_sessions()) == 1)
        assert len(fake_discord.identifies) == 2
        await answered_once(fake_discord)


# Worker processes ------------------------------------------------------------------------


async def start_worker(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """`paperboy worker` with its log in a file, read while it runs."""
    with log.open("wb") as stderr:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "adapters.cli", "worker",
            env=env, cwd=log.parent, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip


async def test_workers_sharing_a_token_hold_one_gateway_and_take_over_from_a_dead_one(
    fake_discord: FakeDiscord, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    with postgres_server.database() as url:
        engine = create_engine(url)
        await upgrade(engine)  # once, before two workers start on the same database
        await engine.dispose()
        env = worker_env(
            fake_discord, tmp_path, DATABASE_URL=url, PAPERBOY_GATEWAY_LEASE_SECONDS="2"
        )
        env["PAPERBOY_DISCORD_GUILD_IDS"] = str(GUILD_ID)
        logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
        workers = [await start_worker(env, log) for log in logs]
        try:
            await fake_discord.wait_until(
                lambda: bool(fake_discord.identifies), timeout=WORKER_TIMEOUT
            )
            await eventually(
                lambda: (
                    any("acquired by" in log.read_text() for log in logs)
                    and any("standby:" in log.read_text() for log in logs)
                ),
                WORKER_TIMEOUT,
            )
            assert len(fake_discord.identifies) == 1
            assert fake_discord.identifies[0]["token"] == TOKEN
            holder = 0 if "acquired by" in logs[0].read_text() else 1
            standby = 1 - holder
            # The standby runs its scheduled deliveries all the same (over REST).
            await eventually(
                lambda: "discord: 0 scheduled slot(s)" in logs[standby].read_text(), WORKER_TIMEOUT
            )
            await answered_once(fake_discord, timeout=WORKER_TIMEOUT)

            workers[holder].kill()  # SIGKILL: no release, the lease has to expire
            await workers[holder].wait()
            await fake_discord.wait_until(
                lambda: len(fake_discord.identifies) == 2, timeout=WORKER_TIMEOUT
            )
            assert "acquired by" in logs[standby].read_text()
            await answered_once(fake_discord, timeout=WORKER_TIMEOUT)

            # SIGTERM (a process manager stopping it): the survivor disconnects and releases
            # the lease on its way out.
            workers[standby].send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(workers[standby].wait(), WORKER_TIMEOUT) == 143
            store = await Store.open(url, migrate=False)
            try:
                assert await lease(store) is None
            finally:
                await store.close()
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                    await worker.wait()
    assert fake_discord.max_live_sessions == 1
    for log in logs:
        assert TOKEN not in log.read_text() and "Traceback" not in log.read_text()
    assert "released by" in logs[standby].read_text()
