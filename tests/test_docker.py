"""The Dockerfile and compose.yaml, read as Docker would (no Docker here to build or run
them): the image's key lines, its HEALTHCHECK run against a real server, and the services'
order (PostgreSQL, the migrations once, then web and worker) with settings that load."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.ops import Operations
from config import Settings, load_settings
from storage.db import create_engine
from storage.store import Store
from tests.fakes.http import free_port
from tests.slack_fixtures import serving

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
# Compose's `${NAME:-default}`: the default when NAME is unset, as in a fresh checkout.
_DEFAULTED = re.compile(r"\$\{\w+:-([^}]*)\}")


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, arguments = line.strip().partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def test_the_image_is_python_311_slim_installs_the_package_and_runs_as_no_root() -> None:
    steps = instructions()
    keywords = [keyword for keyword, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert any(k == "RUN" and "pip install ." in a for k, a in steps)
    user = next(a for k, a in steps if k == "USER")
    assert user not in ("root", "0")
    # The user is set after everything that installs, and before the process starts.
    last_install = max(i for i, (k, a) in enumerate(steps) if k == "RUN" and "pip" in a)
    assert last_install < keywords.index("USER") < keywords.index("CMD")
    assert ("CMD", '["paperboy", "serve"]') in steps
    assert ("EXPOSE", "3000") in steps and "PORT=3000" in dict(steps)["ENV"]
    copied = {a.split()[0] for k, a in steps if k == "COPY"}
    assert {"adapters", "bot", "config", "storage"} <= copied  # every package of the project


def healthcheck_command() -> str:
    (arguments,) = [a for k, a in instructions() if k == "HEALTHCHECK"]
    assert "--timeout=" in arguments and "/readyz" in arguments
    return arguments.split(" CMD ", 1)[1]


async def run_healthcheck(port: int) -> int:
    """The image's HEALTHCHECK, run by a shell as Docker runs it, with PORT=`port` and this
    interpreter as `python`."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    check = await asyncio.create_subprocess_exec(
        "sh", "-c", healthcheck_command(), env={**os.environ, "PORT": str(port), "PATH": path},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return await asyncio.wait_for(check.wait(), timeout=60)


@pytest.mark.parametrize("dialect", ["sqlite"])
async def test_the_healthcheck_passes_only_when_ready(store: Store) -> None:
    async with serving(Operations(store).asgi()) as http:
        assert await run_healthcheck(http.base_url.port) == 0
    down = Store(create_engine(f"postgresql+asyncpg://u@127.0.0.1:{free_port()}/x"))
    try:
        async with serving(Operations(down).asgi()) as http:
            assert await run_healthcheck(http.base_url.port) != 0
    finally:
        await down.close()


def test_compose_runs_postgres_then_the_migrations_once_then_web_and_worker() -> None:
    services = compose()["services"]
    assert set(services) == {"db", "migrate", "web", "worker"}
    assert services["db"]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    migrate = services["migrate"]
    assert migrate["command"] == ["paperboy", "db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name, command in (("web", "serve"), ("worker", "worker")):
        service = services[name]
        assert service["command"] == ["paperboy", command]
        assert service["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    for name in ("migrate", "web", "worker"):
        assert services[name]["build"] == "." and services[name]["env_file"] == ".env"


def service_settings(name: str) -> Settings:
    """The settings `name` starts with: its environment as compose gives it (no .env)."""
    environment = compose()["services"][name]["environment"]
    values = {key: _DEFAULTED.sub(r"\1", str(value)) for key, value in environment.items()}
    aliases = {field.validation_alias for field in Settings.model_fields.values()}
    assert set(values) <= aliases, f"{name}: unknown settings {set(values) - aliases}"
    return load_settings(_env_file=None, **values)


def test_compose_settings_are_valid_and_point_at_the_database_service() -> None:
    for name in ("migrate", "web", "worker"):
        url = service_settings(name).database_url
        assert url.startswith("postgresql+asyncpg://paperboy:") and "@db:5432/" in url
    web, worker = service_settings("web"), service_settings("worker")
    assert compose()["services"]["web"]["ports"] == [f"{web.port}:{web.port}"]
    assert worker.metrics_port is not None
    check = shlex.join(compose()["services"]["worker"]["healthcheck"]["test"])
    assert f"127.0.0.1:{worker.metrics_port}/readyz" in check
    assert compose()["services"]["worker"]["expose"] == [str(worker.metrics_port)]
