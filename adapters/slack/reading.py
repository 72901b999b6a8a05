"""Reading a Slack message people act on (a save reaction, the "Save paper" shortcut): its
text as the core's link parser reads it. The core decides what to save from it."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.ports import DeliveryError

log = logging.getLogger(__name__)

# Where messages keep text and links besides `text`: block and attachment texts, rich-text
# and button URLs, an unfurl's source.
_TEXT_KEYS = frozenset({"text", "url", "from_url", "title_link"})


def message_text(message: Mapping[str, Any]) -> str:
    """A message's text (links as `<url|label>`), then its blocks' and attachments' texts
    and URLs, one a line (so a link at the start of one is a link's start)."""
    parts = [str(message.get("text") or "")]
    parts += _texts(message.get("blocks"))
    parts += _texts(message.get("attachments"))
    return "\n".join(parts)


def _texts(value: object) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in _TEXT_KEYS and isinstance(item, str):
                yield item
            else:
                yield from _texts(item)


@dataclass(frozen=True)
class ReadMessage:
    text: str  # `message_text`
    thread_ts: str | None  # the thread it is in (its own ts for a thread's first message)
    bot_id: str | None = None  # the bot that posted it, if one did


async def read_message(client: AsyncWebClient, channel: str, ts: str) -> ReadMessage | None:
    """Message `ts` in `channel`; None, with one log line, when it cannot be read: deleted,
    or in a channel the bot may not read. Raises DeliveryError when Slack cannot be reached,
    so that the read is tried again."""
    try:
        message = await _message(client, channel, ts)
    except SlackApiError as error:
        log.info("cannot read message %s in %s: %s", ts, channel, error.response.get("error"))
        return None
    except (aiohttp.ClientError, TimeoutError) as error:
        raise DeliveryError(type(error).__name__, permanent=False, unreachable=True) from None
    if message is None:
        log.info("cannot read message %s in %s: not found", ts, channel)
        return None
    thread, bot = message.get("thread_ts"), message.get("bot_id")
    return ReadMessage(
        message_text(message),
        thread if isinstance(thread, str) else None,
        bot if isinstance(bot, str) and bot else None,
    )


async def own_bot_id(client: AsyncWebClient) -> str | None:
    """The bot id the client's token posts as (`auth.test`); None when Slack does not say.
    Raises DeliveryError when Slack cannot be reached."""
    try:
        identity = await client.auth_test()
    except SlackApiError as error:
        log.info("auth.test refused: %s", error.response.get("error"))
        return None
    except (aiohttp.ClientError, TimeoutError) as error:
        raise DeliveryError(type(error).__name__, permanent=False, unreachable=True) from None
    bot = identity.get("bot_id")
    return bot if isinstance(bot, str) and bot else None


async def _message(client: AsyncWebClient, channel: str, ts: str) -> Mapping[str, Any] | None:
    """Message `ts`: from the channel's history or, as a reply inside a thread is not there,
    from its thread."""
    window: dict[str, Any] = {"channel": channel, "latest": ts, "inclusive": True, "limit": 1}
    found = _with_ts(await client.conversations_history(**window), ts)
    if found is None:
        # The thread's parent comes first whatever the window, and counts toward the limit.
        window |= {"oldest": ts, "limit": 2}
        found = _with_ts(await client.conversations_replies(ts=ts, **window), ts)
    return found


def _with_ts(answer: AsyncSlackResponse, ts: str) -> Mapping[str, Any] | None:
    messages = answer.get("messages")
    if not isinstance(messages, list):
        return None
    return next((m for m in messages if isinstance(m, dict) and m.get("ts") == ts), None)
