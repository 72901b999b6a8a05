"""The real slack-bolt app behind its ASGI handler, served by uvicorn on 127.0.0.1, talking
to the fake Slack Web API, with papers from the fake Hugging Face."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from adapters.cli import web_app
from adapters.http import ASGIApp, http_server
from adapters.slack.app import SlackBot, create_slack_bot
from config import Settings
from storage.store import Store
from tests.core_fixtures import NOW, stocked
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import (
    BOT_TOKEN,
    FakeSlack,
    block_action_body,
    event_body,
    reaction_event,
    sign,
    slash_command_body,
)

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
_names = itertools.count(1)


def slack_settings(fake_slack: FakeSlack, fake_hf: FakeHuggingFace, **extra: Any) -> Settings:
    values = {
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "PAPERBOY_SLACK_API_URL": fake_slack.api_url,
        "PAPERBOY_HF_BASE_URL": fake_hf.base_url,
        "PAPERBOY_SEARCH_BUDGET": 1.0,
        **extra,
    }
    if "SLACK_CLIENT_ID" not in values:
        values.setdefault("SLACK_BOT_TOKEN", BOT_TOKEN)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class SlackHarness:
    slack: SlackBot
    fake: FakeSlack
    http: httpx.AsyncClient
    store: Store

    async def post(
        self,
        body: str,
        *,
        content_type: str,
        headers: dict[str, str] | None = None,
        secret: str = SIGNING_SECRET,
        timestamp: int | None = None,
    ) -> httpx.Response:
        signed = sign(secret, body, timestamp)
        return await self.http.post(
            "/slack/events",
            content=body.encode(),
            headers={"Content-Type": content_type, **signed, **(headers or {})},
        )

    async def command(
        self, text: str, *, user: str = "U1", channel: str = "C1", team: str = "T1"
    ) -> dict[str, Any]:
        """Run `/papers text`; returns the answer, which rides in the acknowledgement when it
        is quick and goes to the response_url when it is not."""
        name = f"cmd{next(_names)}"
        body = slash_command_body(
            text,
            user_id=user,
            channel_id=channel,
            team_id=team,
            response_url=self.fake.response_url(name),
        )
        response = await self.post(body, content_type="application/x-www-form-urlencoded")
        assert response.status_code == 200, response.text
        return await answer_to(response, self.fake, name)

    async def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str,
        team: str = "T1",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        body = event_body(event, team_id=team, event_id=event_id)
        return await self.post(body, content_type="application/json", headers=headers)

    async def react(
        self,
        ts: str,
        *,
        event_id: str,
        user: str = "U1",
        emoji: str = "bookmark",
        added: bool = True,
        channel: str = "C1",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        kind = "reaction_added" if added else "reaction_removed"
        event = reaction_event(kind, user=user, reaction=emoji, channel=channel, ts=ts)
        return await self.event(event, event_id=event_id, headers=headers)

    async def click(
        self, action_id: str, value: str, *, user: str = "U1", channel: str = "C1"
    ) -> str:
        """Click a button; returns the response_url name the app answers on."""
        name = f"click{next(_names)}"
        body = block_action_body(
            action_id,
            value,
            user_id=user,
            channel_id=channel,
            response_url=self.fake.response_url(name),
        )
        response = await self.post(body, content_type="application/x-www-form-urlencoded")
        assert response.status_code == 200, response.text
        return name

    def posted(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Arguments of every chat.postMessage, optionally in one channel."""
        return [
            call.args
            for call in self.fake.calls("chat.postMessage")
            if channel is None or call.args.get("channel") == channel
        ]


async def answer_to(response: httpx.Response, fake: FakeSlack, name: str) -> dict[str, Any]:
    """A slash command's answer: the acknowledgement's body, or else (for a slow answer) what
    the app sent to the response_url `name`."""
    if response.content:
        assert fake.responses_to(name) == []
        answer: dict[str, Any] = response.json()
        return answer
    [answer] = await fake.wait_for_responses(name, timeout=10)
    return answer  # type: ignore[no-any-return]


def all_text(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False)


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    """`app` served by uvicorn on 127.0.0.1, and a client of it."""
    server = http_server(app, host="127.0.0.1", port=0)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield http
    finally:
        server.should_exit = True
        await task


async def serve(slack: SlackBot) -> AsyncIterator[httpx.AsyncClient]:
    """What `paperboy serve` serves, for `slack`."""
    async with serving(web_app(slack, slack.bot.store)) as http:
        yield http
    await slack.close()


@pytest.fixture
async def slack_harness(
    store: Store, fake_slack: FakeSlack, fake_hf: FakeHuggingFace
) -> AsyncIterator[SlackHarness]:
    async with stocked(store, fake_hf) as source:
        slack = create_slack_bot(
            slack_settings(fake_slack, fake_hf), store, source=source, clock=lambda: NOW
        )
        async for http in serve(slack):
            yield SlackHarness(slack, fake_slack, http, store)
