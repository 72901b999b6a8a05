"""`paperboy run` as an operator starts it: a service it cannot reach, or a token refused, stops
it with one line naming the variable to check (the traceback only at DEBUG); a start that works
says in one line how each platform reaches it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.settings import normalise_database_url
from storage.store import Store
from tests.fakes.discord import FakeDiscord
from tests.fakes.http import free_port
from tests.fakes.slack import BOT_TOKEN, FakeSlack

PLATFORM_VARIABLES = (
    "DISCORD_TOKEN", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET",
    "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "PAPERBOY_LOG_LEVEL",
)  # fmt: skip


def environment(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in PLATFORM_VARIABLES}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'p.db'}",
        PAPERBOY_HF_BASE_URL="http://127.0.0.1:9",  # unreachable: the demo sample is used
        PAPERBOY_SEMANTIC="off",
        **values,
    )
    return env


async def run(env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """`paperboy run` to its end: exit code and standard error."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", "run",
        env=env, cwd=cwd, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def run_until(env: dict[str, str], cwd: Path, line: str) -> str:
    """`paperboy run` until standard error has a line containing `line`; all it said."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", "run",
        env=env, cwd=cwd, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    said = []
    try:
        async with asyncio.timeout(90):
            while line not in (said or [""])[-1]:
                said.append((await process.stderr.readline()).decode())
                assert said[-1], "".join(said)  # it stopped
    finally:
        process.terminate()
        await process.wait()
    return "".join(said)


def one_line(stderr: str, expected: str) -> None:
    """The last line is `expected`, the only one saying why, with no traceback."""
    lines = stderr.strip().splitlines()
    assert lines[-1] == expected, stderr
    assert [line for line in lines if line.startswith("paperboy:")] == [expected]
    assert "Traceback" not in stderr


def unavailable(stderr: str, what: str, variable: str) -> str:
    """The last line says `what` could not be reached and which `variable` to check, alone
    and with no traceback; that line."""
    last = stderr.strip().splitlines()[-1]
    one_line(stderr, last)
    assert last.startswith(f"paperboy: {what} unavailable (ClientConnectorError: ")
    assert last.endswith(f"; check the network and {variable}")
    return last


async def test_an_unreachable_discord_is_one_line(tmp_path: Path) -> None:
    env = environment(
        tmp_path, DISCORD_TOKEN="worker-token",
        PAPERBOY_DISCORD_API_URL=f"http://127.0.0.1:{free_port()}/api/v10",
    )  # fmt: skip
    code, stderr = await run(env, tmp_path)
    assert code == 1
    last = unavailable(stderr, "Discord", "PAPERBOY_DISCORD_API_URL")

    code, stderr = await run({**env, "PAPERBOY_LOG_LEVEL": "DEBUG"}, tmp_path)
    assert code == 1 and "Traceback" in stderr
    assert stderr.strip().splitlines()[-1] == last
    assert "worker-token" not in stderr


async def test_an_unreachable_discord_gateway_is_one_line(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        env = environment(
            tmp_path, DISCORD_TOKEN="worker-token", PAPERBOY_DISCORD_API_URL=fake.api_url,
            PAPERBOY_DISCORD_GATEWAY_URL=f"ws://127.0.0.1:{free_port()}/",
        )  # fmt: skip
        code, stderr = await run(env, tmp_path)
    assert code == 1
    unavailable(stderr, "Discord gateway", "PAPERBOY_DISCORD_GATEWAY_URL")
    assert "Attempting a reconnect" not in stderr


@pytest.fixture
def slack_env(tmp_path: Path, fake_slack: FakeSlack) -> dict[str, str]:
    return environment(tmp_path, PAPERBOY_SLACK_API_URL=fake_slack.api_url)


async def test_a_rejected_slack_token_is_one_line(
    tmp_path: Path, slack_env: dict[str, str]
) -> None:
    code, stderr = await run({**slack_env, "SLACK_BOT_TOKEN": "xoxb-not-known"}, tmp_path)
    assert code == 2
    one_line(
        stderr,
        "paperboy: configuration error: SLACK_BOT_TOKEN: Slack rejected this token (invalid_auth)",
    )


async def test_an_unreachable_slack_is_one_line(tmp_path: Path) -> None:
    env = environment(
        tmp_path, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_APP_TOKEN="xapp-1-A1-fake",
        PAPERBOY_SLACK_API_URL=f"http://127.0.0.1:{free_port()}/api/",
    )  # fmt: skip
    code, stderr = await run(env, tmp_path)
    assert code == 1
    last = unavailable(stderr, "Slack", "PAPERBOY_SLACK_API_URL")

    code, stderr = await run({**env, "PAPERBOY_LOG_LEVEL": "DEBUG"}, tmp_path)
    assert code == 1 and "Traceback" in stderr
    assert stderr.strip().splitlines()[-1] == last


async def test_an_app_token_alone_says_what_else_slack_needs(
    tmp_path: Path, slack_env: dict[str, str]
) -> None:
    code, stderr = await run({**slack_env, "SLACK_APP_TOKEN": "xapp-1-A1-fake"}, tmp_path)
    assert code == 2
    one_line(
        stderr,
        "paperboy: configuration error: SLACK_BOT_TOKEN: required (or SLACK_CLIENT_ID and "
        "SLACK_CLIENT_SECRET)",
    )


async def test_a_bot_token_alone_says_nothing_reaches_the_bot(
    tmp_path: Path, slack_env: dict[str, str]
) -> None:
    said = await run_until({**slack_env, "SLACK_BOT_TOKEN": BOT_TOKEN}, tmp_path, "Slack ready")
    ready = said.strip().splitlines()[-1]
    assert " WARNING paperboy: Slack ready as paperboy in Team (T1) " in ready
    assert "SLACK_APP_TOKEN (Socket Mode)" in ready
    assert "SLACK_SIGNING_SECRET (HTTP, `paperboy serve`)" in ready


async def test_a_bot_token_with_a_signing_secret_says_where_requests_go(
    tmp_path: Path, slack_env: dict[str, str]
) -> None:
    env = {**slack_env, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": "s3cret-signing"}
    ready = (await run_until(env, tmp_path, "Slack ready")).strip().splitlines()[-1]
    assert " INFO paperboy: Slack ready as paperboy in Team (T1): " in ready
    assert "over HTTP to `paperboy serve`" in ready


async def test_no_platform_says_it_runs_the_console(tmp_path: Path) -> None:
    said = await run_until(environment(tmp_path), tmp_path, "Console mode")
    assert "no platform configured (DISCORD_TOKEN, SLACK_BOT_TOKEN" in said


async def test_a_start_with_a_working_token_brings_its_workspace_back(
    tmp_path: Path, slack_env: dict[str, str]
) -> None:
    """With one SLACK_BOT_TOKEN, a reinstall comes with a new token: starting with it is how
    the workspace comes back."""
    store = await Store.open(normalise_database_url(slack_env["DATABASE_URL"]))
    try:
        async with store.transaction() as repos:
            await repos.workspaces.mark_left("slack", "T1", datetime.now(UTC))
    finally:
        await store.close()
    said = await run_until({**slack_env, "SLACK_BOT_TOKEN": BOT_TOKEN}, tmp_path, "Slack ready")
    assert "workspace installed the app again: platform=slack workspace=T1" in said
    store = await Store.open(normalise_database_url(slack_env["DATABASE_URL"]))
    try:
        async with store.reading() as repos:
            assert not await repos.workspaces.has_left("slack", "T1")
    finally:
        await store.close()
