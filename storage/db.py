"""Engine creation and schema migration (Alembic, applied programmatically at start)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, CursorResult, Result
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).with_name("migrations")

T = TypeVar("T")

# What a database that is down or unreachable raises: SQLAlchemy's errors, and the OSError a
# driver's connect can raise before SQLAlchemy wraps anything.
DB_ERRORS = (SQLAlchemyError, OSError)

# SQLSTATEs of a server that is going away or not back yet: class 08 (connection exception),
# admin and crash shutdown, "the database system is starting up".
_UNREACHABLE_STATES = ("08", "57P01", "57P02", "57P03")


# What SQLite says when its file is held by another writer or cannot be read now. Its other
# OperationalErrors (no such table, a syntax error) say a statement was wrong.
_SQLITE_AWAY = ("locked", "busy", "unable to open", "disk i/o", "readonly")


def unreachable(error: BaseException) -> bool:
    """Whether `error` says the database cannot be reached now (stopped, restarting, the
    network, SQLite's file locked or unreadable) rather than that a statement was wrong:
    worth waiting out."""
    if isinstance(error, OperationalError) and isinstance(error.orig, sqlite3.Error):
        return any(words in str(error.orig).lower() for words in _SQLITE_AWAY)
    if isinstance(error, OperationalError | InterfaceError | OSError):
        return True  # OSError: a driver's refused or timed-out connect, before SQLAlchemy wraps
    if isinstance(error, DBAPIError):
        state: str = getattr(error.orig, "sqlstate", None) or ""
        return error.connection_invalidated or state.startswith(_UNREACHABLE_STATES)
    return False


# Values bound in one IN list. Every query that uses `chunks` binds at most one such list
# (of values or pairs) plus a few scalars, so it stays under SQLite's oldest variable limit
# (999) as well as PostgreSQL's (32767), whatever the number of users or channels.
IN_CHUNK = 400


def chunks(values: Sequence[T], size: int | None = None) -> Iterator[Sequence[T]]:
    """`values` in slices of `size` (IN_CHUNK, read at call time so tests can shrink it)."""
    size = size or IN_CHUNK
    for first in range(0, len(values), size):
        yield values[first : first + size]


def rowcount(result: Result[*tuple[Any, ...]]) -> int:
    """The rows an INSERT, UPDATE or DELETE run by `AsyncSession.execute` changed. The session
    types every result as `Result`, as an ORM statement may return rows; for these statements
    it is the `CursorResult` that carries the count."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"{type(result).__name__} carries no row count")
    return result.rowcount


# How long a SQLite connection waits for another's write lock before "database is locked":
# the web process and the worker share one file, and a morning's delivery run writes often.
BUSY_TIMEOUT = 30.0
# The execution options that make a SQLite transaction take the write lock at BEGIN, and say
# how long it waits for it (`writing`).
BEGIN_MODE = "paperboy_sqlite_begin"
LOCK_WAIT = "paperboy_sqlite_lock_wait"


def writing(engine: AsyncEngine, wait: float = BUSY_TIMEOUT) -> AsyncEngine:
    """`engine` for transactions that write: on SQLite they begin with BEGIN IMMEDIATE, so
    they wait (up to `wait` seconds) for the write lock before reading anything. A deferred
    transaction that reads first and writes later cannot wait: when another process wrote
    meanwhile, SQLite fails its write at once with "database is locked", whatever the busy
    timeout. Elsewhere the options mean nothing: PostgreSQL locks rows, not the database."""
    return engine.execution_options(**{BEGIN_MODE: "IMMEDIATE", LOCK_WAIT: wait})


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL, foreign keys and a busy timeout on every connection,
    and transactions that begin where SQLAlchemy begins them (`writing` for writers)."""
    if url.startswith("sqlite"):
        # JSON columns are plain text in SQLite and the FTS5 index tokenizes that text, so
        # non-ASCII names and keywords must be stored as themselves, not as \uXXXX escapes.
        kwargs.setdefault("json_serializer", _json_dumps)
        kwargs.setdefault("pool_reset_on_return", None)  # `_end_open_transaction` does it
        # `timeout` is sqlite3's busy timeout, set as the connection opens (before the pragmas
        # below, which may wait for a lock too). isolation_level=None stops sqlite3 from
        # beginning transactions itself (only before an INSERT, UPDATE or DELETE, so reads
        # ahead of them ran outside the transaction): `_begin` does, as SQLAlchemy's
        # documentation for pysqlite and aiosqlite recommends.
        connect_args = {"timeout": BUSY_TIMEOUT, "isolation_level": None}
        engine = create_async_engine(url, connect_args=connect_args, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL: readers never wait for the writer, nor it for them. Kept in the file, so
            # setting it again is a no-op; an in-memory database stays in "memory" mode.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(connection: Connection) -> None:
            options = connection.get_execution_options()
            wait = options.get(LOCK_WAIT)  # writers say; readers never wait for a lock
            held = connection.connection.info  # kept with the pooled connection
            if wait is not None and held.get(LOCK_WAIT, BUSY_TIMEOUT) != wait:
                # A round trip only when the wait changes from this connection's last.
                connection.exec_driver_sql(f"PRAGMA busy_timeout = {round(wait * 1000)}")
                held[LOCK_WAIT] = wait
            connection.exec_driver_sql(f"BEGIN {options.get(BEGIN_MODE, 'DEFERRED')}")

        @event.listens_for(engine.sync_engine, "reset")
        def _end_open_transaction(dbapi_connection: Any, _record: Any, reset: Any) -> None:
            """The pool's rollback of a connection coming back, when it has a transaction to
            end. SQLAlchemy ends the transactions it began itself, so there is usually none,
            and the pool's own reset would spend a round trip to aiosqlite's thread (~0.2 ms
            of the event loop's time) on a rollback that does nothing."""
            if reset.asyncio_safe and dbapi_connection.driver_connection.in_transaction:
                dbapi_connection.rollback()

        return engine
    # No pool_pre_ping: it costs a round trip per transaction, a third of a short one's CPU
    # (bench: ~0.4 ms of ~1.5 ms). A connection a database restart dropped fails the one
    # operation that finds it, and SQLAlchemy then discards every pooled connection;
    # deliveries retry and commands apologise. Recycling idle connections keeps firewalls
    # and proxies from dropping them silently.
    return create_async_engine(url, pool_recycle=1800, **kwargs)


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe to run at every start (a no-op when current)."""
    async with writing(engine).begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))
