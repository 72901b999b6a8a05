"""A throwaway PostgreSQL server for the test run: initdb into a temp dir, pg_ctl start/stop.

The server listens on 127.0.0.1 on a free port (and on a unix socket inside the temp dir),
trusts every local connection and runs with fsync off. initdb and postgres refuse to run as
root, so when the tests run as root the server runs as the `postgres` system user (or
`nobody`) with the temp dir handed over to it. Databases are created and dropped over asyncpg.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

REQUIRE_ENV = "PAPERBOY_REQUIRE_POSTGRES"
SUPERUSER = "postgres"
T = TypeVar("T")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries (initdb, pg_ctl, postgres) were found on this machine."""


def postgres_required() -> bool:
    """True when the environment demands PostgreSQL tests run (CI sets this)."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes"}


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None.

    Looks at `pg_config --bindir`, then /usr/lib/postgresql/*/bin (newest first), then PATH.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(Path(out))

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit()) or (0,)

    candidates += [
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    ]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a private event loop, callable from sync or async code."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(coroutine)
        except BaseException as error:  # re-raised in the caller's thread
            box["error"] = error

    thread = threading.Thread(target=target, name="postgres-admin")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]


def _world_traversable(path: Path) -> bool:
    """True when every directory from / down to `path` can be entered by any user."""
    for part in [path, *path.parents]:
        try:
            if not part.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


class PostgresServer:
    """One running server. Use `create_database()`/`drop_database()` or `database()`."""

    def __init__(self, bindir: Path, base: Path, port: int, run_as: pwd.struct_passwd | None):
        self.bindir = bindir
        self.base = base
        self.data_dir = base / "data"
        self.socket_dir = base / "sock"
        self.log_file = base / "postgres.log"
        self.host = "127.0.0.1"
        self.port = port
        self.user = SUPERUSER
        self._run_as = run_as

    # Process control
    def _pg(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self._run_as is not None:
            kwargs.update(user=self._run_as.pw_uid, group=self._run_as.pw_gid, extra_groups=[])
        env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PGTZ": "UTC", "TZ": "UTC"}
        if self._run_as is not None:
            env["HOME"] = str(self.base)
        return subprocess.run(
            [str(self.bindir / tool), *args],
            cwd=self.base,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            log = ""
            with contextlib.suppress(OSError):
                log = self.log_file.read_text(errors="replace")[-4000:]
            raise RuntimeError(
                f"{what} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                f"server log tail:\n{log}"
            )

    def init(self) -> None:
        """initdb with trust auth, UTF-8 and the C locale."""
        result = self._pg(
            "initdb",
            "-D", str(self.data_dir),
            "-U", SUPERUSER,
            "-A", "trust",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
        )  # fmt: skip
        self._check(result, "initdb")

    def start(self) -> None:
        """pg_ctl start, waiting until the server accepts connections."""
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {self.port}",
                f"-c unix_socket_directories='{self.socket_dir}'",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            ]
        )
        result = self._pg(
            "pg_ctl", "start", "-w", "-t", "60",
            "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options,
        )  # fmt: skip
        self._check(result, "pg_ctl start")

    def stop(self) -> None:
        """Stop the server (fast, then immediate) if it runs. Safe to call twice."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        result = self._pg(
            "pg_ctl", "stop", "-w", "-t", "30", "-m", "fast", "-D", str(self.data_dir)
        )
        if result.returncode != 0:
            self._pg(
                "pg_ctl", "stop", "-w", "-t", "30", "-m", "immediate", "-D", str(self.data_dir)
            )

    # Databases
    def url(self, database: str = "postgres", driver: str = "asyncpg") -> str:
        """A SQLAlchemy URL for `database` on this server."""
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{database}"

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(
            host=self.host, port=self.port, user=self.user, database="postgres"
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def create_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """Create a database (a random name unless given), empty or a copy of `template`, and
        return its URL."""
        name = name or f"test_{uuid.uuid4().hex[:16]}"
        if template is None:
            run_in_thread(self._admin(f'CREATE DATABASE "{name}"'))
            return self.url(name)
        copy = f'CREATE DATABASE "{name}" TEMPLATE "{template}"'
        try:
            # A file copy: 0.1 s where PostgreSQL 15's default (WAL_LOG) took 0.25 s.
            run_in_thread(self._admin(f"{copy} STRATEGY FILE_COPY"))
        except asyncpg.PostgresSyntaxError:  # before PostgreSQL 15, a file copy is the default
            run_in_thread(self._admin(copy))
        return self.url(name)

    def drop_database(self, name_or_url: str) -> None:
        """Drop a database by name or URL, disconnecting any session still on it."""
        name = name_or_url.rsplit("/", 1)[-1]
        try:
            run_in_thread(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except asyncpg.PostgresSyntaxError:  # before PostgreSQL 13
            run_in_thread(self._admin(f'DROP DATABASE IF EXISTS "{name}"'))

    @contextlib.contextmanager
    def database(self, *, template: str | None = None) -> Iterator[str]:
        """A fresh database (empty, or a copy of `template`) for the duration of the block;
        yields its URL."""
        url = self.create_database(template=template)
        try:
            yield url
        finally:
            self.drop_database(url)


def _service_user() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable("running as root and neither a `postgres` nor a `nobody` user exists")


def _make_base(run_as: pwd.struct_passwd | None) -> Path:
    parent = Path(tempfile.gettempdir())
    if run_as is not None and not _world_traversable(parent):
        parent = Path("/tmp")
    base = Path(tempfile.mkdtemp(prefix="paperboy-pg-", dir=parent))
    (base / "sock").mkdir()
    if run_as is not None:
        for path in (base, base / "sock"):
            os.chown(path, run_as.pw_uid, run_as.pw_gid)
    return base


@contextlib.contextmanager
def running_server(bindir: Path | None = None) -> Iterator[PostgresServer]:
    """Start a throwaway server; stop it and delete its files on exit, even on error."""
    bindir = bindir or find_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found via pg_config, "
            "/usr/lib/postgresql/*/bin or PATH; install Debian's `postgresql` package"
        )
    run_as = _service_user()
    base = _make_base(run_as)
    server: PostgresServer | None = None

    def cleanup() -> None:
        if server is not None:
            with contextlib.suppress(Exception):
                server.stop()
        shutil.rmtree(base, ignore_errors=True)

    atexit.register(cleanup)  # a safety net should the generator never be closed
    try:
        server = PostgresServer(bindir, base, _free_port(), run_as)
        server.init()
        for attempt in range(3):  # the free port can be taken between probe and bind
            try:
                server.start()
                break
            except RuntimeError:
                server.stop()
                if attempt == 2:
                    raise
                server.port = _free_port()
        yield server
    finally:
        cleanup()
        atexit.unregister(cleanup)
