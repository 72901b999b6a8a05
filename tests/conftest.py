"""Shared fixtures: a migrated store on a real SQLite file and on a real PostgreSQL server.

Every test that uses `database_url` (an empty database) or `store` (a migrated one) runs twice,
with ids `sqlite` and `postgresql`. The PostgreSQL server is started once per test run (see
tests/postgres.py) and each test gets its own fresh database, dropped afterwards. Without
PostgreSQL binaries the `postgresql` runs are skipped, unless PAPERBOY_REQUIRE_POSTGRES=1,
which makes them fail.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from storage.store import Store
from tests.postgres import (
    REQUIRE_ENV,
    PostgresServer,
    find_bindir,
    postgres_required,
    run_in_thread,
    running_server,
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole run: `postgres_server.create_database()` -> URL,
    `drop_database(url)`, or `with postgres_server.database() as url:` for a scoped one."""
    bindir = find_bindir()
    if bindir is None:
        reason = "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found via pg_config, "
        reason += "/usr/lib/postgresql/*/bin or PATH; install Debian's `postgresql` package"
        if postgres_required():
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
        pytest.skip(f"{reason} (set {REQUIRE_ENV}=1 to make this an error)")
    with running_server(bindir) as server:
        yield server


DIALECTS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql")]


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    """Which database `database_url` and `store` are on; a module may override it."""
    return str(request.param)


@pytest.fixture
def database_url(dialect: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh database on the test PostgreSQL server."""
    if dialect == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'paperboy.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.database() as url:
        yield url


async def _migrate(url: str) -> None:
    store = await Store.open(url)
    await store.close()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per run, which `store` copies."""
    path = tmp_path_factory.mktemp("migrated") / "paperboy.db"
    run_in_thread(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def migrated_postgres(postgres_server: PostgresServer) -> str:
    """A PostgreSQL database migrated once per run, the template of each test's."""
    name = "paperboy_migrated"
    run_in_thread(_migrate(postgres_server.create_database(name)))
    return name


@pytest.fixture
async def store(
    dialect: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Store]:
    """A migrated store of its own: a copy of a database migrated once per run (migrating
    each test's took 0.1 s on SQLite and 0.25 s on PostgreSQL). Migrations have tests of
    their own, on `database_url`."""
    if dialect == "sqlite":
        path = tmp_path / "store.db"  # beside `database_url`'s paperboy.db
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        store = await Store.open(f"sqlite+aiosqlite:///{path}", migrate=False)
        yield store
        await store.close()
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.database(template=request.getfixturevalue("migrated_postgres")) as url:
        store = await Store.open(url, migrate=False)
        yield store
        await store.close()


from tests.core_fixtures import harness  # noqa: E402,F401
from tests.discord_fixtures import discord_harness  # noqa: E402,F401
from tests.fakes.arxiv import fake_arxiv  # noqa: E402,F401
from tests.fakes.discord import fake_discord_fixture  # noqa: E402,F401
from tests.fakes.huggingface import fake_hf  # noqa: E402,F401
from tests.fakes.slack import fake_slack, fake_socket_mode  # noqa: E402,F401
from tests.semantic_fixtures import semantic, sentence_model  # noqa: E402,F401
from tests.slack_fixtures import slack_harness  # noqa: E402,F401
