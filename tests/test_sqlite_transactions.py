"""SQLite shared by processes (`paperboy serve` and `paperboy worker` on one file): every
connection in WAL mode with a busy timeout; a write transaction takes the write lock when it
begins, before its first read, so a writer that read first never fails with "database is
locked"; reads take no lock and never wait for a writer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.db import BUSY_TIMEOUT
from storage.store import Store
from tests.core_fixtures import NOW


@pytest.fixture
async def two_stores(tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    """Two engines on one SQLite file, as two processes have."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    first = await Store.open(url)
    second = await Store.open(url, migrate=False)
    yield first, second
    await first.close()
    await second.close()


async def follow(store: Store, user: str, topic: str) -> None:
    async with store.transaction() as repos:
        await repos.users.follow("slack", "T1", user, topic, NOW)


async def following(store: Store, user: str) -> list[str]:
    async with store.reading() as repos:
        return await repos.users.following("slack", "T1", user)


async def test_every_connection_is_in_wal_mode_with_a_busy_timeout(
    two_stores: tuple[Store, Store],
) -> None:
    store, _ = two_stores
    async with store.engine.connect() as connection:
        mode = await connection.exec_driver_sql("PRAGMA journal_mode")
        timeout = await connection.exec_driver_sql("PRAGMA busy_timeout")
        assert (mode.scalar(), timeout.scalar()) == ("wal", BUSY_TIMEOUT * 1000)


async def test_a_write_transaction_holds_the_lock_from_its_first_read(
    two_stores: tuple[Store, Store],
) -> None:
    first, second = two_stores
    async with first.transaction() as repos:
        assert await repos.users.following("slack", "T1", "U1") == []  # a read first
        other = asyncio.create_task(follow(second, "U2", "agents"))
        await asyncio.sleep(0.3)
        assert not other.done()  # the other process's writer waits for the lock...
        await repos.users.follow("slack", "T1", "U1", "latency", NOW)  # ...so this write can't fail
    async with asyncio.timeout(BUSY_TIMEOUT):
        await other  # and goes on once this commits
    assert await following(first, "U1") == ["latency"]
    assert await following(first, "U2") == ["agents"]


async def test_reads_never_wait_for_a_writer(two_stores: tuple[Store, Store]) -> None:
    first, second = two_stores
    await follow(first, "U1", "agents")
    async with first.transaction() as repos:
        await repos.users.follow("slack", "T1", "U1", "latency", NOW)  # holds the write lock
        async with asyncio.timeout(5):  # far less than the busy timeout a lock would take
            assert await following(second, "U1") == ["agents"]  # the last commit's
    assert await following(second, "U1") == ["agents", "latency"]
