"""Slack beyond one workspace over HTTP: OAuth installs into many workspaces, kept apart, and
Socket Mode for teams without a public URL."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from adapters.slack.app import create_slack_bot
from adapters.slack.server import SocketMode
from bot.events import ChannelRef, Scope
from bot.messages import Message
from bot.ports import DeliveryError
from config import ConfigError, Unavailable
from storage.store import Store
from tests.fakes.http import free_port
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import (
    APP_TOKEN,
    FakeSlack,
    FakeSocketMode,
    slash_command_payload,
    socket_envelope,
)
from tests.slack_fixtures import SlackHarness, all_text, serve, slack_settings


@pytest.fixture
async def oauth_harness(
    store: Store, fake_slack: FakeSlack, fake_hf: FakeHuggingFace
) -> AsyncIterator[SlackHarness]:
    settings = slack_settings(
        fake_slack, fake_hf, SLACK_CLIENT_ID="111.222", SLACK_CLIENT_SECRET="oauth-secret"
    )
    slack = create_slack_bot(settings, store, source=None)
    async for http in serve(slack):
        yield SlackHarness(slack, fake_slack, http, store)


async def install(harness: SlackHarness, team: str) -> None:
    harness.fake.oauth_grants[f"code-{team}"] = team
    page = await harness.http.get("/slack/install")
    assert page.status_code == 200
    state = re.search(r"state=([\w-]+)", page.text)
    assert state, page.text
    # The state cookie is `Secure`; a browser on the real https URL sends it back.
    cookie = page.headers["set-cookie"].split(";")[0]
    done = await harness.http.get(
        "/slack/oauth_redirect",
        params={"code": f"code-{team}", "state": state.group(1)},
        headers={"Cookie": cookie},
    )
    assert done.status_code == 200, done.text


async def test_oauth_installs_keep_workspaces_apart(oauth_harness: SlackHarness) -> None:
    await install(oauth_harness, "T1")
    await install(oauth_harness, "T2")
    exchanges = oauth_harness.fake.calls("oauth.v2.access")
    assert [c.args["code"] for c in exchanges] == ["code-T1", "code-T2"]
    assert exchanges[0].args["client_secret"] == "oauth-secret"
    async with oauth_harness.store.transaction() as repos:
        teams = await repos.session.scalars(text("SELECT team_id FROM slack_bots ORDER BY id"))
        assert list(teams) == ["T1", "T2"]

    assert "now follow" in all_text(await oauth_harness.command("follow diffusion", team="T1"))
    in_t2 = all_text(await oauth_harness.command("following", team="T2"))
    assert "follow no topics" in in_t2
    assert "diffusion" in all_text(await oauth_harness.command("following", team="T1"))
    # Each workspace's calls carry its own bot token: a channel change asks who is an admin.
    for team in ("T1", "T2"):
        answer = all_text(await oauth_harness.command("channel off", team=team))
        assert "Only workspace admins" in answer
    tokens = [call.token for call in oauth_harness.fake.calls("users.info")]
    assert tokens == ["xoxb-T1", "xoxb-T2"]


async def test_oauth_outbound_posts_with_the_installed_token(oauth_harness: SlackHarness) -> None:
    await install(oauth_harness, "T2")
    ref = await oauth_harness.slack.outbound.post(
        ChannelRef(Scope("slack", "T2"), "C9"), Message(text="hello")
    )
    assert ref.message_id
    assert oauth_harness.fake.calls("chat.postMessage")[-1].token == "xoxb-T2"
    with pytest.raises(DeliveryError) as caught:  # a workspace that never installed the app
        await oauth_harness.slack.outbound.post(
            ChannelRef(Scope("slack", "T3"), "C9"), Message("x")
        )
    assert caught.value.permanent and caught.value.reason == "app_not_installed"


async def test_socket_mode_round_trip(
    store: Store, fake_slack: FakeSlack, fake_hf: FakeHuggingFace, fake_socket_mode: FakeSocketMode
) -> None:
    fake_slack.socket_url = fake_socket_mode.url
    settings = slack_settings(fake_slack, fake_hf, SLACK_APP_TOKEN=APP_TOKEN)
    settings = settings.model_copy(update={"slack_signing_secret": None})
    slack = create_slack_bot(settings, store, source=None, socket_mode=True)
    socket = SocketMode(slack.app, APP_TOKEN)
    try:
        await socket.connect()
        await fake_socket_mode.wait_connected(timeout=10)
        assert fake_slack.calls("apps.connections.open")[0].token == APP_TOKEN
        payload = slash_command_payload("help", response_url=fake_slack.response_url("sm"))
        fake_socket_mode.send_envelope(socket_envelope("slash_commands", payload))
        ack = await fake_socket_mode.wait_for_ack("e1", timeout=10)
        assert ack["envelope_id"] == "e1"
        answer = ack["payload"]  # a quick answer rides in the acknowledgement
        assert answer["response_type"] == "ephemeral" and "paperboy" in all_text(answer)
        assert fake_slack.responses_to("sm") == []
    finally:
        await socket.close()


async def socket_mode(
    store: Store, fake_slack: FakeSlack, fake_hf: FakeHuggingFace, **kwargs: float
) -> SocketMode:
    settings = slack_settings(fake_slack, fake_hf, SLACK_APP_TOKEN=APP_TOKEN)
    slack = create_slack_bot(settings, store, source=None, socket_mode=True)
    return SocketMode(slack.app, APP_TOKEN, **kwargs)


async def test_socket_mode_logs_one_line_when_lost_and_one_when_back(
    store: Store,
    fake_slack: FakeSlack,
    fake_hf: FakeHuggingFace,
    fake_socket_mode: FakeSocketMode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_slack.socket_url = fake_socket_mode.url
    socket = await socket_mode(store, fake_slack, fake_hf, ping_interval=0.2)
    caplog.set_level(logging.INFO)
    try:
        await socket.connect()
        # Slack's end goes away, and stays out of reach for three attempts (and their retries).
        fake_slack.faults["apps.connections.open"] += ["disconnect"] * 6
        fake_socket_mode.drop()
        await fake_socket_mode.wait_connected(count=2, timeout=20)
        for _ in range(100):
            if "connection back" in caplog.text:
                break
            await asyncio.sleep(0.05)
    finally:
        await socket.close()
    assert len(fake_slack.calls("apps.connections.open")) == 8  # several attempts...
    changes = [r.getMessage() for r in caplog.records if r.name == "adapters.connection"]
    assert len(changes) == 2, changes  # ...two lines
    assert changes[0].startswith("Slack Socket Mode connection lost (")
    assert re.fullmatch(r"Slack Socket Mode connection back after \d+ s", changes[1])
    assert "Traceback" not in caplog.text and all(not r.exc_info for r in caplog.records)


async def test_a_rejected_app_token_is_one_line_naming_it(
    store: Store, fake_slack: FakeSlack, fake_hf: FakeHuggingFace
) -> None:
    fake_slack.faults["apps.connections.open"].append("invalid_auth")
    socket = await socket_mode(store, fake_slack, fake_hf)
    try:
        with pytest.raises(ConfigError) as caught:
            await socket.connect()
    finally:
        await socket.close()
    assert str(caught.value) == "SLACK_APP_TOKEN: Slack rejected this token (invalid_auth)"
    assert len(fake_slack.calls("apps.connections.open")) == 1  # not retried forever


async def test_a_socket_that_never_opens_is_one_line(
    store: Store, fake_slack: FakeSlack, fake_hf: FakeHuggingFace, caplog: pytest.LogCaptureFixture
) -> None:
    fake_slack.socket_url = f"ws://127.0.0.1:{free_port()}/link"
    socket = await socket_mode(store, fake_slack, fake_hf, ping_interval=0.2)
    try:
        with pytest.raises(Unavailable) as caught:
            await socket.connect(within=1.5)
    finally:
        await socket.close()
    assert str(caught.value).startswith("Slack Socket Mode unavailable (ClientConnectorError: ")
    assert str(caught.value).endswith("; check the network")
    assert "Traceback" not in caplog.text and "Failed to connect" not in caplog.text
