"""Posting to Slack: the core's Outbound port over the Web API.

chat.postMessage goes straight over one shared aiohttp session (it is the hot path of a
busy morning); the other calls go through slack_sdk, one client per workspace. Every
chat.postMessage waits for its turn in a `SlackPacer` (per channel and per workspace),
and so does each retry after a 429, whose `Retry-After` pauses the whole workspace's pacing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack.pacing import SlackPacer
from adapters.slack.reading import own_bot_id, read_message
from adapters.slack.render import blocks, escape, fallback_text
from bot.events import ChannelRef, GoneWhy, MessageRef, UserRef
from bot.messages import Message
from bot.observe import observer
from bot.ports import DeliveryError, FileToSend

log = logging.getLogger(__name__)

PLATFORM = "slack"

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
# Errors that say Slack could not be reached or answer now (besides HTTP 5xx): the send waits
# it out through the slot's day.
UNREACHABLE_ERRORS = frozenset({"service_unavailable", "request_timeout"})
# The errors that say why a channel (or a DM) cannot be posted to.
CHANNEL_GONE = {
    "channel_not_found": GoneWhy.DELETED,
    "not_in_channel": GoneWhy.REMOVED,
    "is_archived": GoneWhy.ARCHIVED,
    # The bot token of a workspace that uninstalled the app.
    "token_revoked": GoneWhy.APP_REMOVED,
    "account_inactive": GoneWhy.APP_REMOVED,
}
RATE_LIMIT_RETRIES = 3
MAX_RETRY_AFTER = 120.0  # seconds; a longer wait fails the send instead of hanging a worker

POST_TIMEOUT = aiohttp.ClientTimeout(total=30)  # slack_sdk's default for every call
THREADS_KEPT = 1024  # replies whose thread is remembered, the latest read
# Scheduled messages carry their delivery key as message metadata, so a retry can read back
# (conversations.history) what already went out.
DELIVERY_EVENT = "paperboy_delivery"
HISTORY_PAGES = 5  # a retry looks back this many pages of 200: far more than one post sends

TokenLookup = Callable[[str], Awaitable[str | None]]


def retry_after(headers: Mapping[str, Any]) -> float:
    """Seconds to wait from a 429's `Retry-After` (1 s when missing or unreadable), capped."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if isinstance(value, list):  # slack_sdk's retry handlers see header values as lists
        value = value[0] if value else None
    try:
        delay = float(value) if value is not None else 1.0
    except (TypeError, ValueError):
        delay = 1.0
    return min(max(delay, 0.0), MAX_RETRY_AFTER) if math.isfinite(delay) else 1.0


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
        if response is None:  # only 429 answers are retried here, and they have a response
            raise error if error is not None else RuntimeError("no response to retry")
        delay = retry_after(response.headers)
        log.warning(
            "Slack %s rate limited; retrying in %.1fs", request.url.rsplit("/", 1)[-1], delay
        )
        observer().rate_limited(PLATFORM, delay)
        state.next_attempt_requested = True
        await asyncio.sleep(delay + random.random() / 4)
        state.increment_current_attempt()


def web_client(
    base_url: str, token: str | None = None, *, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """A Web API client that waits out 429s (`Retry-After`) instead of failing. With a
    `session`, its connections are kept alive between calls (else each call opens one)."""
    client = AsyncWebClient(token=token, base_url=base_url, session=session)
    client.retry_handlers.append(RetryAfterHandler(RATE_LIMIT_RETRIES))
    return client


def delivery_error(error: SlackApiError) -> DeliveryError:
    return _failure(str(error.response.get("error", "unknown_error")))


def _failure(code: str) -> DeliveryError:
    unreachable = code in UNREACHABLE_ERRORS or code.startswith("http_5")
    return DeliveryError(
        code, permanent=code in PERMANENT_ERRORS, unreachable=unreachable,
        gone=CHANNEL_GONE.get(code),
    )  # fmt: skip


def _network_failure(error: Exception) -> DeliveryError:
    return DeliveryError(
        f"network_error: {type(error).__name__}", permanent=False, unreachable=True
    )


class SlackOutbound:
    """Implements `bot.ports.Outbound`. `token_for(team_id)` finds the workspace's bot token;
    `pacer` spaces the posts (one per process, shared by all workspaces)."""

    def __init__(
        self, base_url: str, token_for: TokenLookup, pacer: SlackPacer | None = None
    ) -> None:
        self.base_url = base_url
        self.token_for = token_for
        self.pacer = pacer or SlackPacer()
        self._clients: dict[str, AsyncWebClient] = {}
        # (channel, ts) -> its thread, for replies read lately (`tell` answers there).
        self._threads: dict[tuple[str, str], str] = {}
        self._bot_ids: dict[str, str | None] = {}  # workspace -> the bot id we post as
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """One connection pool for every call: a new connection (and against Slack a TLS
        handshake) per message would cost more CPU than the post itself. Created in the
        running event loop at first use."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._clients.clear()  # they hold the closed session
        return self._session

    async def _token(self, workspace: str) -> str:
        token = await self.token_for(workspace)
        if token is None:
            raise DeliveryError("app_not_installed", permanent=True)
        return token

    async def client(self, workspace: str) -> AsyncWebClient:
        token = await self._token(workspace)
        session = self.session()
        client = self._clients.get(workspace)
        if client is None or client.token != token:
            client = self._clients[workspace] = web_client(self.base_url, token, session=session)
        return client

    async def answer(self, response_url: str, **message: Any) -> None:
        """Post to a slash command's response_url over the shared session (bolt's `respond`
        opens a new connection per answer)."""
        webhook = AsyncWebhookClient(response_url, session=self.session())
        response = await webhook.send_dict(message)
        if response.status_code != 200:
            log.warning("response_url answered %s", response.status_code)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, channel: ChannelRef, message: Message) -> MessageRef:
        workspace = channel.scope.workspace
        token = await self._token(workspace)
        body = json.dumps(
            {
                "channel": channel.channel,
                "text": fallback_text(message),
                "blocks": blocks(message),
                "unfurl_links": False,  # one compact message per paper, no link previews
                "unfurl_media": False,
                **_metadata(message.delivery_key),
            }
        ).encode()
        attempts = 0
        while True:
            attempts += 1
            async with self.pacer.turn(workspace, channel.channel):
                status, headers, answer = await self._post_message(token, body)
            if status == 429:
                if attempts > RATE_LIMIT_RETRIES:
                    raise DeliveryError("ratelimited", permanent=False)
                delay = retry_after(headers)
                log.warning("Slack rate limited posts in %s; pausing %.1fs", workspace, delay)
                observer().rate_limited(PLATFORM, delay)
                self.pacer.back_off(workspace, delay)  # this send and the queued ones wait
                continue
            if not answer.get("ok"):
                raise _failure(str(answer.get("error") or f"http_{status}"))
            ref = ChannelRef(channel.scope, str(answer["channel"]))
            return MessageRef(ref, str(answer["ts"]))

    async def _post_message(
        self, token: str, body: bytes
    ) -> tuple[int, Mapping[str, str], dict[str, Any]]:
        """chat.postMessage over the shared session: (HTTP status, headers, JSON answer).
        The Web API's JSON contract, without slack_sdk's client around it: on a busy morning
        that client cost a third of each post's CPU (bench/RESULTS.md, fan-out)."""
        try:
            async with self.session().post(
                f"{self.base_url}chat.postMessage",
                data=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json; charset=utf-8",
                },
                timeout=POST_TIMEOUT,
            ) as response:
                raw = await response.read()
                status, headers = response.status, response.headers
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _network_failure(error) from None
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            answer = {"ok": False, "error": f"http_{status}"}
        return status, headers, answer

    async def send_dm(self, user: UserRef, message: Message) -> MessageRef:
        return await self.post(await self._dm_channel(user), message)

    async def send_file(self, user: UserRef, file: FileToSend) -> MessageRef:
        """Upload the file into the user's DM with `files_upload_v2`: an upload URL
        (files.getUploadURLExternal), the bytes POSTed to it, then the upload completed
        into the DM channel (files.completeUploadExternal) with the caption. Scope
        `files:write`."""
        channel = await self._dm_channel(user)
        client = await self.client(user.scope.workspace)
        try:
            done = await client.files_upload_v2(
                channel=channel.channel, filename=file.name, title=file.name,
                content=file.content, initial_comment=escape(file.caption),
            )  # fmt: skip
        except SlackApiError as error:
            raise delivery_error(error) from None
        except (SlackRequestError, aiohttp.ClientError, TimeoutError) as error:
            raise DeliveryError(f"upload_failed: {type(error).__name__}", permanent=False) from None
        return MessageRef(channel, str((done.get("file") or {}).get("id", "")))

    def spread(self, message: Message) -> list[Message]:
        """One message: 50 blocks hold a digest's 10 cards (two blocks each), whole."""
        return [message]

    async def sent_keys(
        self, target: ChannelRef | UserRef, since: datetime
    ) -> dict[str, MessageRef]:
        """Delivery keys in the metadata of the messages in `target` since `since`. Where it
        cannot look (an install from before the history scopes) the answer is {}: a rare
        repeat beats a lost post. A transient failure is raised; the retry comes later."""
        channel = target if isinstance(target, ChannelRef) else await self._dm_channel(target)
        client = await self.client(channel.scope.workspace)
        found: dict[str, MessageRef] = {}
        cursor = None
        for _ in range(HISTORY_PAGES):
            try:
                page = await client.conversations_history(
                    channel=channel.channel, oldest=f"{since.timestamp():.6f}", limit=200,
                    include_all_metadata=True, cursor=cursor,
                )  # fmt: skip
            except (aiohttp.ClientError, TimeoutError) as error:
                raise _network_failure(error) from None
            except SlackApiError as error:
                failure = delivery_error(error)
                if not failure.permanent:
                    raise failure from None
                # Not readable (an install without the history scopes, a channel gone): the
                # send itself then succeeds or reports the permanent error.
                log.warning("cannot read %s to resume a delivery: %s", channel, failure.reason)
                return found
            for item in page.get("messages") or []:
                metadata = item.get("metadata") or {}
                key = (metadata.get("event_payload") or {}).get("key")
                if metadata.get("event_type") == DELIVERY_EVENT and isinstance(key, str):
                    found[key] = MessageRef(channel, str(item["ts"]))
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not page.get("has_more") or not cursor:
                break
        return found

    async def tell(self, user: UserRef, about: MessageRef, message: Message) -> None:
        """An ephemeral message: shown to `user` only, in `about`'s channel, and in its thread
        when it is a reply this process read (`read_text`)."""
        client = await self.client(user.scope.workspace)
        thread = self._threads.get((about.channel.channel, about.message_id))
        try:
            await client.chat_postEphemeral(
                channel=about.channel.channel, user=user.user, text=fallback_text(message),
                blocks=blocks(message), thread_ts=thread,
            )  # fmt: skip
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _network_failure(error) from None
        except SlackApiError as error:
            raise delivery_error(error) from None

    async def read_text(self, message: MessageRef) -> str | None:
        """A member's message; None for the bot's own (a shared list, a weekly post): one
        reaction saves the one paper of a paper post, never every paper of a list."""
        workspace = message.channel.scope.workspace
        client = await self.client(workspace)
        channel, ts = message.channel.channel, message.message_id
        read = await read_message(client, channel, ts)
        if read is None:
            return None
        if read.bot_id is not None and read.bot_id == await self._bot_id(workspace, client):
            log.info("not saving from our own message %s in %s", ts, channel)
            return None
        if read.thread_ts is not None and read.thread_ts != ts:
            self._threads[(channel, ts)] = read.thread_ts
            while len(self._threads) > THREADS_KEPT:
                self._threads.pop(next(iter(self._threads)))  # the oldest
        return read.text

    async def _bot_id(self, workspace: str, client: AsyncWebClient) -> str | None:
        if workspace not in self._bot_ids:
            self._bot_ids[workspace] = await own_bot_id(client)
        return self._bot_ids[workspace]

    async def _dm_channel(self, user: UserRef) -> ChannelRef:
        client = await self.client(user.scope.workspace)
        try:
            opened = await client.conversations_open(users=user.user)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _network_failure(error) from None
        except SlackApiError as error:
            raise delivery_error(error) from None
        return ChannelRef(user.scope, str(opened["channel"]["id"]))


def _metadata(delivery_key: str | None) -> dict[str, Any]:
    if delivery_key is None:
        return {}
    return {"metadata": {"event_type": DELIVERY_EVENT, "event_payload": {"key": delivery_key}}}
