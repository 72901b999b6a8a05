"""The fake Slack speaks Slack's protocol to the real slack_sdk and slack_bolt clients."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack import (
    APP_TOKEN,
    BOT_TOKEN,
    FakeSlack,
    FakeSocketMode,
    block_action_body,
    event_body,
    reaction_event,
    sign,
    slash_command_body,
    slash_command_payload,
    socket_envelope,
)

SECRET = "signing-secret"


def client_for(fake: FakeSlack, token: str | None = BOT_TOKEN) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=fake.api_url)


async def test_post_message_returns_increasing_ts_and_records_json_args(
    fake_slack: FakeSlack,
) -> None:
    client = client_for(fake_slack)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    first = await client.chat_postMessage(channel="C1", text="hello", blocks=blocks)
    second = await client.chat_postMessage(channel="C1", text="again")

    assert first["channel"] == "C1"
    assert first["message"]["text"] == "hello"
    assert first["message"]["blocks"] == blocks
    assert float(first["ts"]) < float(second["ts"])
    (call, _) = fake_slack.calls("chat.postMessage")
    assert call.args == {"channel": "C1", "text": "hello", "blocks": blocks}
    assert call.token == BOT_TOKEN
    assert (call.verb, call.encoding) == ("POST", "json")
    assert call.headers["content-type"].startswith("application/json")
    assert fake_slack.calls("users.info") == []


async def test_users_info_arrives_as_get_with_query_args(fake_slack: FakeSlack) -> None:
    fake_slack.admins.add("U2")
    fake_slack.owners.add("U3")
    client = client_for(fake_slack)

    admin = await client.users_info(user="U2")
    owner = await client.users_info(user="U3")
    plain = await client.users_info(user="U4")

    assert admin["user"]["id"] == "U2" and admin["user"]["team_id"] == "T1"
    assert (admin["user"]["is_admin"], admin["user"]["is_owner"]) == (True, False)
    assert (owner["user"]["is_admin"], owner["user"]["is_owner"]) == (False, True)
    assert (plain["user"]["is_admin"], plain["user"]["is_bot"]) == (False, False)
    call = fake_slack.calls("users.info")[0]
    assert (call.verb, call.encoding, call.args) == ("GET", "query", {"user": "U2"})
    assert call.token == BOT_TOKEN


async def test_params_methods_arrive_as_post_with_query_args(fake_slack: FakeSlack) -> None:
    client = client_for(fake_slack)
    opened = await client.conversations_open(users="U7")
    await client.chat_delete(channel="C1", ts="1700000000.000101")

    assert opened["channel"]["id"] == "DU7"
    call = fake_slack.calls("conversations.open")[0]
    assert (call.verb, call.encoding, call.args) == ("POST", "query", {"users": "U7"})
    assert fake_slack.calls("chat.delete")[0].args == {"channel": "C1", "ts": "1700000000.000101"}


async def test_auth_test_maps_tokens_to_teams(fake_slack: FakeSlack) -> None:
    fake_slack.tokens["xoxb-T9"] = "T9"

    known = await client_for(fake_slack).auth_test()
    other = await client_for(fake_slack, "xoxb-T9").auth_test()
    with pytest.raises(SlackApiError) as unknown:
        await client_for(fake_slack, "xoxb-nope").auth_test()

    assert (known["team_id"], known["user_id"], known["bot_id"]) == ("T1", "UBOT", "BBOT")
    assert other["team_id"] == "T9"
    assert unknown.value.response["error"] == "invalid_auth"


async def test_oauth_v2_access_uses_basic_auth_and_form_body(fake_slack: FakeSlack) -> None:
    fake_slack.oauth_grants["code-1"] = "T2"
    client = client_for(fake_slack, token=None)

    granted = await client.oauth_v2_access(
        client_id="cid", client_secret="csecret", code="code-1", redirect_uri="https://x/cb"
    )
    with pytest.raises(SlackApiError) as bad:
        await client.oauth_v2_access(client_id="cid", client_secret="csecret", code="nope")
    installed = await client_for(fake_slack, granted["access_token"]).auth_test()

    assert granted["access_token"] == "xoxb-T2"
    assert granted["team"]["id"] == "T2" and granted["enterprise"] is None
    assert granted["token_type"] == "bot" and granted["authed_user"]["id"] == "U1"
    assert bad.value.response["error"] == "invalid_code"
    assert installed["team_id"] == "T2"
    call = fake_slack.calls("oauth.v2.access")[0]
    assert call.encoding == "form" and call.token is None
    assert call.args == {
        "code": "code-1",
        "redirect_uri": "https://x/cb",
        "client_id": "cid",
        "client_secret": "csecret",
    }


@pytest.mark.parametrize(
    "error", ["channel_not_found", "not_in_channel", "is_archived", "token_revoked"]
)
async def test_error_faults_raise_slack_api_error(fake_slack: FakeSlack, error: str) -> None:
    fake_slack.faults["chat.postMessage"] = [error]
    client = client_for(fake_slack)

    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C1", text="x")
    after = await client.chat_postMessage(channel="C1", text="x")  # the queue is used up

    assert raised.value.response["error"] == error
    assert raised.value.response.status_code == 200
    assert after["ok"] is True


async def test_server_error_fault(fake_slack: FakeSlack) -> None:
    fake_slack.faults["users.info"] = ["500"]
    with pytest.raises(SlackApiError) as raised:
        await client_for(fake_slack).users_info(user="U1")
    assert raised.value.response.status_code == 500


async def test_429_without_retry_handler_raises_ratelimited(fake_slack: FakeSlack) -> None:
    fake_slack.faults["chat.postMessage"] = ["429"]
    fake_slack.retry_after = "7"
    with pytest.raises(SlackApiError) as raised:
        await client_for(fake_slack).chat_postMessage(channel="C1", text="x")
    assert raised.value.response.status_code == 429
    assert raised.value.response["error"] == "ratelimited"
    assert raised.value.response.headers["Retry-After"] == "7"


async def test_429_then_success_with_rate_limit_retry_handler(fake_slack: FakeSlack) -> None:
    fake_slack.faults["chat.postMessage"] = ["429"]
    fake_slack.retry_after = "0"  # the handler still sleeps 0-1 s of jitter
    client = client_for(fake_slack)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))

    sent = await client.chat_postMessage(channel="C1", text="x")

    assert sent["ok"] is True
    calls = fake_slack.calls("chat.postMessage")
    assert len(calls) == 2
    assert calls[0].args == calls[1].args == {"channel": "C1", "text": "x"}


async def test_response_url_posts_are_recorded(fake_slack: FakeSlack) -> None:
    url = fake_slack.response_url("cmd1")
    answer = await AsyncWebhookClient(url).send(text="done", response_type="ephemeral")

    assert answer.status_code == 200 and answer.body == "ok"
    assert fake_slack.responses == [("cmd1", {"text": "done", "response_type": "ephemeral"})]


def test_sign_headers_verify() -> None:
    body = slash_command_body("today")
    verifier = SignatureVerifier(SECRET)

    assert verifier.is_valid_request(body, sign(SECRET, body))
    assert not verifier.is_valid_request(body + "x", sign(SECRET, body))
    assert not verifier.is_valid_request(body, sign("other-secret", body))
    assert not verifier.is_valid_request(body, sign(SECRET, body, int(time.time()) - 600))


def test_builders_have_slacks_fields() -> None:
    form = {k: v[0] for k, v in parse_qs(slash_command_body("top 3", user_id="U5")).items()}
    action = json.loads(parse_qs(block_action_body("save", "2605.00001"))["payload"][0])
    reaction = reaction_event("reaction_added", user="U1", reaction="+1", channel="C1", ts="1.2")
    event = json.loads(event_body(reaction, team_id="T2", event_id="Ev9"))

    assert form["command"] == "/papers" and form["text"] == "top 3" and form["user_id"] == "U5"
    assert {"token", "team_domain", "channel_name", "user_name", "api_app_id", "trigger_id"} <= (
        form.keys()
    )
    assert action["type"] == "block_actions" and action["container"]["is_ephemeral"] is True
    assert action["actions"][0]["action_id"] == "save"
    assert action["actions"][0]["value"] == "2605.00001"
    assert event["type"] == "event_callback" and event["event"] == reaction
    assert event["authorizations"][0]["team_id"] == "T2" and event["event_id"] == "Ev9"
    assert reaction["item"] == {"type": "message", "channel": "C1", "ts": "1.2"}


async def test_real_bolt_app_accepts_signed_bodies(fake_slack: FakeSlack) -> None:
    app = AsyncApp(
        signing_secret=SECRET,
        token=BOT_TOKEN,
        client=client_for(fake_slack),
        process_before_response=True,
    )
    seen: list[Any] = []

    @app.command("/papers")
    async def papers(ack: Any, respond: Any, command: dict[str, Any]) -> None:
        await ack()
        await respond(f"got {command['text']}")

    @app.action("save")
    async def save(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        seen.append(body["actions"][0]["value"])

    @app.event("reaction_added")
    async def reacted(event: dict[str, Any]) -> None:
        seen.append(event["reaction"])

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    command = slash_command_body("today", response_url=fake_slack.response_url("c"))
    action = block_action_body("save", "2605.00001")
    reaction = reaction_event("reaction_added", user="U1", reaction="+1", channel="C1", ts="1.2")
    event = event_body(reaction)
    forged = await app.async_dispatch(
        AsyncBoltRequest(body=command, headers=form | sign("wrong", command))
    )
    statuses = [
        (
            await app.async_dispatch(
                AsyncBoltRequest(body=body, headers=content_type | sign(SECRET, body))
            )
        ).status
        for body, content_type in [
            (command, form),
            (action, form),
            (event, {"Content-Type": "application/json"}),
        ]
    ]

    assert forged.status == 401
    assert statuses == [200, 200, 200]
    assert await fake_slack.wait_for_responses("c") == [{"text": "got today"}]
    assert seen == ["2605.00001", "+1"]
    assert fake_slack.calls("auth.test")  # bolt checked its token against the fake


async def test_socket_mode_round_trip(
    fake_slack: FakeSlack, fake_socket_mode: FakeSocketMode
) -> None:
    fake_slack.socket_url = fake_socket_mode.url
    client = SocketModeClient(app_token=APP_TOKEN, web_client=client_for(fake_slack, None))
    requests: list[SocketModeRequest] = []
    messages: list[dict[str, Any]] = []

    async def on_request(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        requests.append(request)
        await client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload={"text": "pong"})
        )

    async def on_message(_: AsyncBaseSocketModeClient, message: dict[str, Any], raw: Any) -> None:
        messages.append(message)

    client.socket_mode_request_listeners.append(on_request)
    client.message_listeners.append(on_message)
    try:
        await client.connect()
        payload = slash_command_payload("today")
        fake_socket_mode.send_envelope(socket_envelope("slash_commands", payload, envelope_id="e1"))
        ack = await fake_socket_mode.wait_for_ack("e1")

        fake_socket_mode.send_disconnect()
        await fake_socket_mode.wait_connected(2)
        fake_socket_mode.send_envelope(socket_envelope("events_api", {"x": 1}, envelope_id="e2"))
        second = await fake_socket_mode.wait_for_ack("e2")
    finally:
        await client.close()

    assert ack == {"envelope_id": "e1", "payload": {"text": "pong"}}
    assert second["envelope_id"] == "e2"
    assert requests[0].type == "slash_commands" and requests[0].payload == payload
    assert requests[0].accepts_response_payload is True
    assert messages[0]["type"] == "hello"
    opens = fake_slack.calls("apps.connections.open")
    assert len(opens) == 2  # once to connect, once after the disconnect
    assert opens[0].token == APP_TOKEN


async def test_wait_for_ack_times_out(fake_socket_mode: FakeSocketMode) -> None:
    with pytest.raises(TimeoutError):
        await fake_socket_mode.wait_for_ack("never", timeout=0.05)
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(fake_socket_mode.wait_for_ack_sync, "never", 0.05)
