"""SlackOutbound's own chat.postMessage call against the fake Slack over HTTP: what a post
sends, and how each failure Slack (or the network) can answer with becomes a DeliveryError
the scheduler acts on: permanent ones stop the channel, transient ones are retried."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.slack.outbound import RATE_LIMIT_RETRIES, SlackOutbound
from adapters.slack.pacing import SlackPacer
from bot.events import ChannelRef, Scope
from bot.messages import Message
from bot.ports import DeliveryError
from tests.fakes.http import free_port
from tests.fakes.slack import BOT_TOKEN, FakeSlack

CHANNEL = ChannelRef(Scope("slack", "T1"), "C1")


async def _token(team: str) -> str | None:
    return BOT_TOKEN


@pytest.fixture
async def outbound(fake_slack: FakeSlack) -> AsyncIterator[SlackOutbound]:
    unpaced = SlackPacer(channel_interval=0, workspace_rate=100, workspace_burst=100)
    sender = SlackOutbound(fake_slack.api_url, _token, unpaced)
    yield sender
    await sender.close()


async def test_a_post_carries_text_blocks_and_its_delivery_key(
    fake_slack: FakeSlack, outbound: SlackOutbound
) -> None:
    ref = await outbound.post(CHANNEL, Message(text="Hello *team*", delivery_key="channel:k"))
    (posted,) = fake_slack.delivered
    assert (posted.team, posted.channel) == ("T1", "C1")
    assert posted.text and posted.blocks
    assert ref.channel == CHANNEL and ref.message_id
    (message,) = fake_slack.history["C1"]
    assert message["metadata"]["event_payload"] == {"key": "channel:k"}


@pytest.mark.parametrize(
    ("fault", "reason", "permanent"),
    [
        ("channel_not_found", "channel_not_found", True),
        ("token_revoked", "token_revoked", True),
        ("500", "http_500", False),
        ("503", "http_503", False),
    ],
)
async def test_slack_errors_become_delivery_errors(
    fake_slack: FakeSlack, outbound: SlackOutbound, fault: str, reason: str, permanent: bool
) -> None:
    fake_slack.faults["chat.postMessage"] = [fault]
    with pytest.raises(DeliveryError) as caught:
        await outbound.post(CHANNEL, Message(text="hi"))
    assert (caught.value.reason.split(":")[0], caught.value.permanent) == (reason, permanent)
    assert fake_slack.delivered == []


async def test_429s_are_waited_out_then_left_to_the_delivery_retries(
    fake_slack: FakeSlack, outbound: SlackOutbound
) -> None:
    fake_slack.retry_after = "0"
    fake_slack.faults["chat.postMessage"] = ["429"] * RATE_LIMIT_RETRIES
    await outbound.post(CHANNEL, Message(text="after three 429s"))
    assert [p.text for p in fake_slack.delivered] == ["after three 429s"]

    fake_slack.faults["chat.postMessage"] = ["429"] * (RATE_LIMIT_RETRIES + 1)
    with pytest.raises(DeliveryError) as caught:
        await outbound.post(CHANNEL, Message(text="never"))
    assert (caught.value.reason, caught.value.permanent) == ("ratelimited", False)
    assert len(fake_slack.delivered) == 1


async def test_an_unreachable_slack_is_a_transient_error() -> None:
    nowhere = SlackOutbound(f"http://127.0.0.1:{free_port()}/api/", _token)
    try:
        with pytest.raises(DeliveryError) as caught:
            await nowhere.post(CHANNEL, Message(text="hi"))
    finally:
        await nowhere.close()
    assert caught.value.reason.startswith("network_error") and not caught.value.permanent
