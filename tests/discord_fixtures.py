"""The real discord.py client, logged in to the fake Discord REST API and gateway on 127.0.0.1,
with papers from the fake Hugging Face, on a real store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.discord.client import DiscordBot, create_discord_bot
from adapters.discord.gateway import LeasedGateway
from config import Settings
from storage.store import Store
from tests.core_fixtures import NOW, stocked
from tests.fakes.discord import (
    ADMIN_PERMISSIONS,
    BOT_TOKEN,
    CHANNEL_ID,
    MEMBER_PERMISSIONS,
    USER_ID,
    Call,
    FakeDiscord,
    autocomplete,
    option,
    slash_command,
    subcommand,
    subcommand_group,
)
from tests.fakes.huggingface import FakeHuggingFace

TIMEOUT = 5.0


def discord_settings(fake: FakeDiscord, fake_hf: FakeHuggingFace, **extra: Any) -> Settings:
    values = {
        "DISCORD_TOKEN": BOT_TOKEN,
        "PAPERBOY_DISCORD_API_URL": fake.api_url,
        "PAPERBOY_DISCORD_GATEWAY_URL": fake.gateway_url,
        "PAPERBOY_HF_BASE_URL": fake_hf.base_url,
        "PAPERBOY_SEARCH_BUDGET": 1.0,
        **extra,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def papers_options(words: str, /, **values: str | int) -> list[dict[str, Any]]:
    """The option tree Discord sends for `/papers <words>` with `values` as typed options:
    `papers_options("channel on", time="08:30")` is the `on` subcommand of the `channel` group."""
    names = words.split()
    leaf = subcommand(names[-1], *(option(name, value) for name, value in values.items()))
    return [subcommand_group(names[0], leaf)] if len(names) == 2 else [leaf]


@dataclass
class DiscordHarness:
    discord: DiscordBot
    fake: FakeDiscord
    store: Store

    async def command(
        self,
        words: str,
        /,
        *,
        user_id: int = USER_ID,
        admin: bool = False,
        channel_id: int = CHANNEL_ID,
        **values: str | int,
    ) -> Call:
        """Run `/papers <words>` as `user_id`; returns the first answer the bot sent to it:
        the interaction callback, or the follow-up after a "thinking..." deferral."""
        payload = slash_command(
            "papers",
            papers_options(words, **values),
            user_id=user_id,
            channel_id=channel_id,
            permissions=ADMIN_PERMISSIONS if admin else MEMBER_PERMISSIONS,
        )
        return await self.interact(payload)

    async def interact(self, payload: dict[str, Any]) -> Call:
        """Send an interaction (a command, a context menu); returns the first answer the bot
        sent to it: the interaction callback, or the follow-up after a "thinking..."
        deferral."""
        await self.fake.interact(payload)
        response = await self.fake.wait_for_response(payload, timeout=TIMEOUT)
        if response.json["type"] != 5:
            return response
        token = payload["token"]
        return await self.fake.wait_for_call(
            lambda call: call.method in ("POST", "PATCH") and f"/{token}" in call.path
            and "callback" not in call.path,
            timeout=TIMEOUT,
        )  # fmt: skip

    async def autocomplete(self, words: str, /, **values: str | int) -> list[dict[str, Any]]:
        """The choices offered while typing the last of `values` into `/papers <words>`."""
        payload = autocomplete("papers", papers_options(words, **values))
        await self.fake.interact(payload)
        response = await self.fake.wait_for_response(payload, timeout=TIMEOUT)
        assert response.json["type"] == 8
        return response.json["data"]["choices"]


@contextlib.asynccontextmanager
async def running(discord_bot: DiscordBot, store: Store) -> AsyncIterator[None]:
    """Log the client in and keep it on the gateway for the block, as a worker does (the
    gateway lease is free: this is the only worker)."""
    task = asyncio.create_task(LeasedGateway(discord_bot, store, ttl=60).run())
    ready = asyncio.create_task(discord_bot.client.wait_until_ready())
    done, _ = await asyncio.wait({task, ready}, timeout=TIMEOUT, return_when="FIRST_COMPLETED")
    if ready not in done:
        ready.cancel()
        if task in done:
            task.result()  # raises the start-up error
        raise TimeoutError("the Discord client did not become ready")
    try:
        yield
    finally:
        await discord_bot.client.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def discord_harness(
    store: Store, fake_hf: FakeHuggingFace, fake_discord: FakeDiscord
) -> AsyncIterator[DiscordHarness]:
    async with stocked(store, fake_hf) as source:
        settings = discord_settings(fake_discord, fake_hf)
        discord_bot = create_discord_bot(
            settings, store, source=source, clock=lambda: NOW, guild_ready_timeout=0.05
        )
        async with running(discord_bot, store):
            yield DiscordHarness(discord_bot, fake_discord, store)
