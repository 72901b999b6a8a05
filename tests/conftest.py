"""Shared fixtures: a migrated store on a real SQLite file and on a real PostgreSQL server.

Every test that uses `database_url` (or `store`) runs twice, with ids `sqlite` and
`postgresql`. The PostgreSQL server is started once per test run (see tests/postgres.py) and
each test gets its own fresh database, dropped afterwards. Without PostgreSQL binaries the
`postgresql` runs are skipped, unless PAPERBOY_REQUIRE_POSTGRES=1, which makes them fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from storage.store import Store
from tests.postgres import (
    REQUIRE_ENV,
    PostgresServer,
    find_bindir,
    postgres_required,
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


@pytest.fixture(
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql")]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh database on the test PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'paperboy.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.database() as url:
        yield url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = await Store.open(database_url)
    yield store
    await store.close()


from tests.core_fixtures import harness  # noqa: E402,F401
from tests.discord_fixtures import discord_harness  # noqa: E402,F401
from tests.fakes.discord import fake_discord_fixture  # noqa: E402,F401
from tests.fakes.huggingface import fake_hf  # noqa: E402,F401
from tests.fakes.slack import fake_slack, fake_socket_mode  # noqa: E402,F401
from tests.slack_fixtures import slack_harness  # noqa: E402,F401
