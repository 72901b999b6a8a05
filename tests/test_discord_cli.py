"""The Procfile's worker on Discord, and `paperboy discord invite-url`, as an operator runs them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.fakes.discord import (
    ADD_REACTIONS,
    APPLICATION_ID,
    EMBED_LINKS,
    GUILD_ID,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    FakeDiscord,
    slash_command,
    subcommand,
)

TOKEN = "worker-test-token"


def worker_env(fake: FakeDiscord, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
        "PAPERBOY_HF_BASE_URL": "http://127.0.0.1:9",  # unreachable: the demo sample is used
        "DISCORD_TOKEN": TOKEN,
        "PAPERBOY_DISCORD_API_URL": fake.api_url,
        "PAPERBOY_DISCORD_GATEWAY_URL": fake.gateway_url,
        **extra,
    }
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"):
        env.pop(name, None)
    return env


async def start_worker(
    env: dict[str, str], cwd: Path, command: str = "worker"
) -> asyncio.subprocess.Process:
    """`paperboy worker` (the Procfile's) or `paperboy run`, which is the same with a platform."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", command,
        env=env, cwd=cwd, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


async def test_the_worker_runs_the_discord_bot(fake_discord: FakeDiscord, tmp_path: Path) -> None:
    env = worker_env(fake_discord, tmp_path, PAPERBOY_DISCORD_GUILD_IDS=str(GUILD_ID))
    process = await start_worker(env, tmp_path)
    try:
        await asyncio.wait_for(fake_discord.identified.wait(), 60)
        assert fake_discord.identifies[0]["token"] == TOKEN
        await fake_discord.wait_for_call(
            lambda c: c.method == "PUT" and c.path.endswith(f"/guilds/{GUILD_ID}/commands"),
            timeout=30,
        )
        assert None not in fake_discord.commands  # development servers only, not global
        payload = slash_command("papers", [subcommand("help")])
        await fake_discord.interact(payload)
        answer = await fake_discord.wait_for_response(payload, timeout=30)
        assert answer.json["type"] == 4
        assert "/papers" in answer.json["data"]["content"]
    finally:
        process.terminate()
        _, stderr = await process.communicate()
    assert TOKEN not in stderr.decode()
    assert "Traceback" not in stderr.decode()


async def test_a_rejected_token_stops_the_worker_with_one_line(tmp_path: Path) -> None:
    async with FakeDiscord(token="the-real-token") as fake:
        process = await start_worker(worker_env(fake, tmp_path), tmp_path, "run")
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    lines = stderr.decode().strip().splitlines()
    assert lines[-1] == "paperboy: configuration error: DISCORD_TOKEN: Discord rejected this token"
    assert TOKEN not in stderr.decode() and "Traceback" not in stderr.decode()


def invite(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {name: value for name, value in os.environ.items() if name != "DISCORD_TOKEN"}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "adapters.cli", "discord", "invite-url", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_invite_url_asks_for_exactly_what_the_bot_needs() -> None:
    result = invite("--application-id", "123456789012345678")
    assert result.returncode == 0, result.stderr
    url = urlsplit(result.stdout.strip())
    assert (url.scheme, url.netloc, url.path) == ("https", "discord.com", "/oauth2/authorize")
    query = parse_qs(url.query)
    assert query["client_id"] == ["123456789012345678"]
    assert query["scope"] == ["bot applications.commands"]
    needed = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ADD_REACTIONS | READ_MESSAGE_HISTORY
    assert query["permissions"] == [str(needed)]


async def invite_with(fake: FakeDiscord, token: str) -> tuple[int, str, str]:
    """`paperboy discord invite-url` with DISCORD_TOKEN, asking `fake` (the test's loop
    answers it meanwhile): exit code, standard output and error."""
    env = {name: value for name, value in os.environ.items() if name != "PAPERBOY_LOG_LEVEL"}
    env.update(DISCORD_TOKEN=token, PAPERBOY_DISCORD_API_URL=fake.api_url)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", "discord", "invite-url",
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_invite_url_asks_discord_for_the_application_id() -> None:
    async with FakeDiscord(token="the-real-token") as fake:
        code, out, err = await invite_with(fake, "the-real-token")
    assert code == 0, err
    assert parse_qs(urlsplit(out.strip()).query)["client_id"] == [str(APPLICATION_ID)]
    assert "the-real-token" not in out + err


async def test_invite_url_with_a_rejected_token_says_so() -> None:
    async with FakeDiscord(token="the-real-token") as fake:
        code, out, err = await invite_with(fake, "a-revoked-token")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert lines[-1] == "paperboy: configuration error: DISCORD_TOKEN: Discord rejected this token"
    assert "Traceback" not in err


def test_invite_url_without_an_id_says_what_to_give() -> None:
    result = invite()
    assert result.returncode == 2
    assert "--application-id" in result.stderr and "Traceback" not in result.stderr
