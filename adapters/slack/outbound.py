"""Posting to Slack: the core's Outbound port over the Web API, one client per workspace."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.render import blocks, fallback_text
from bot.events import ChannelRef, MessageRef, UserRef
from bot.messages import Message
from bot.ports import DeliveryError

log = logging.getLogger(__name__)

# Errors after which posting to that channel (or with that token) cannot succeed again.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "account_inactive",
        "token_revoked",
        "invalid_auth",
        "not_authed",
        "team_access_not_granted",
        "user_not_found",
        "cannot_dm_bot",
        "user_disabled",
        "restricted_action",
        "missing_scope",
    }
)
RATE_LIMIT_RETRIES = 3
MAX_RETRY_AFTER = 120.0  # seconds; a longer wait fails the send instead of hanging a worker

TokenLookup = Callable[[str], Awaitable[str | None]]


class RetryAfterHandler(AsyncRateLimitErrorRetryHandler):
    """Waits out a 429 for the whole `Retry-After`: slack_sdk's own handler reads only the
    header's first character from the async client ("30" becomes 3 s)."""

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        if response is None:
            raise error  # type: ignore[misc]
        value = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
        if isinstance(value, list):
            value = value[0] if value else None
        try:
            delay = min(max(float(value), 0.0), MAX_RETRY_AFTER) if value is not None else 1.0
        except ValueError:
            delay = 1.0
        log.warning(
            "Slack %s rate limited; retrying in %.1fs", request.url.rsplit("/", 1)[-1], delay
        )
        state.next_attempt_requested = True
        await asyncio.sleep(delay + random.random() / 4)
        state.increment_current_attempt()


def web_client(base_url: str, token: str | None = None) -> AsyncWebClient:
    """A Web API client that waits out 429s (`Retry-After`) instead of failing."""
    client = AsyncWebClient(token=token, base_url=base_url)
    client.retry_handlers.append(RetryAfterHandler(max_retry_count=RATE_LIMIT_RETRIES))
    return client


def delivery_error(error: SlackApiError) -> DeliveryError:
    code = str(error.response.get("error", "unknown_error"))
    return DeliveryError(code, permanent=code in PERMANENT_ERRORS)


class SlackOutbound:
    """Implements `bot.ports.Outbound`. `token_for(team_id)` finds the workspace's bot token."""

    def __init__(self, base_url: str, token_for: TokenLookup) -> None:
        self.base_url = base_url
        self.token_for = token_for
        self._clients: dict[str, AsyncWebClient] = {}

    async def client(self, workspace: str) -> AsyncWebClient:
        token = await self.token_for(workspace)
        if token is None:
            raise DeliveryError("app_not_installed", permanent=True)
        client = self._clients.get(workspace)
        if client is None or client.token != token:
            client = self._clients[workspace] = web_client(self.base_url, token)
        return client

    async def post(self, channel: ChannelRef, message: Message) -> MessageRef:
        client = await self.client(channel.scope.workspace)
        try:
            response = await client.chat_postMessage(
                channel=channel.channel,
                text=fallback_text(message),
                blocks=blocks(message),
                unfurl_links=False,  # one compact message per paper, no link previews
                unfurl_media=False,
            )
        except SlackApiError as error:
            raise delivery_error(error) from None
        return MessageRef(ChannelRef(channel.scope, str(response["channel"])), str(response["ts"]))

    async def send_dm(self, user: UserRef, message: Message) -> MessageRef:
        client = await self.client(user.scope.workspace)
        try:
            opened = await client.conversations_open(users=user.user)
        except SlackApiError as error:
            raise delivery_error(error) from None
        return await self.post(ChannelRef(user.scope, str(opened["channel"]["id"])), message)
