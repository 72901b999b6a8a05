"""Posting to Discord: the core's Outbound port over discord.py's REST client.

discord.py already waits out 429s (per-route buckets, the global limit, `retry_after`) and
retries 5xx a few times; what reaches us is a failure to classify. Permanent means the
target itself is unreachable (bot removed, channel deleted, DMs closed), so the core stops
using it; anything else is transient and may be retried later.
"""

from __future__ import annotations

import hashlib
import io
import logging
from datetime import datetime

import aiohttp
import discord

from adapters.discord.reading import read_message_text
from adapters.discord.render import escape, render, spread
from bot.events import ChannelRef, GoneWhy, MessageRef, UserRef
from bot.messages import Message
from bot.ports import DeliveryError, FileToSend
from bot.reactions import emoji_character

log = logging.getLogger(__name__)

SEND_ERRORS = (discord.DiscordException, aiohttp.ClientError, TimeoutError)

# Discord JSON error codes: https://discord.com/developers/docs/topics/opcodes-and-status-codes
PERMANENT_CODES = {
    10003: "unknown_channel",
    10013: "unknown_user",
    50001: "missing_access",
    50007: "dms_closed",
    50013: "missing_permissions",
}

# The codes that say why a channel cannot be posted to.
CHANNEL_GONE = {
    10003: GoneWhy.DELETED,
    50001: GoneWhy.REMOVED,  # missing access: the bot was removed from the channel
    50013: GoneWhy.REMOVED,  # missing permissions: it may no longer post there
}


def delivery_error(error: Exception) -> DeliveryError:
    """Classify a failed send."""
    if isinstance(error, discord.RateLimited):
        return DeliveryError("rate_limited", permanent=False)
    if isinstance(error, discord.HTTPException):
        if error.code in PERMANENT_CODES:
            gone = CHANNEL_GONE.get(error.code)
            return DeliveryError(PERMANENT_CODES[error.code], permanent=True, gone=gone)
        if isinstance(error, discord.Forbidden):
            return DeliveryError("forbidden", permanent=True)
        if isinstance(error, discord.NotFound):
            return DeliveryError("not_found", permanent=True)
        if error.status == 429:
            return DeliveryError("rate_limited", permanent=False)
        if error.status >= 500:
            return DeliveryError("discord_unavailable", permanent=False, unreachable=True)
        # A 400 is our payload's fault, not the channel's: don't switch the channel off.
        return DeliveryError(f"rejected_{error.status}_{error.code}", permanent=False)
    return DeliveryError("network_error", permanent=False, unreachable=True)


def _snowflake(value: str, reason: str) -> int:
    if not value.isascii() or not value.isdigit() or not 0 < int(value) < 2**64:
        raise DeliveryError(reason, permanent=True)
    return int(value)


def delivery_nonce(channel_id: str, delivery_key: str) -> str:
    """The same nonce for every attempt at one scheduled message (Discord allows 25
    characters): with `enforce_nonce`, which discord.py sets, Discord answers a repeat within
    a few minutes with the message it already created instead of posting it twice."""
    return hashlib.blake2b(f"{channel_id}:{delivery_key}".encode(), digest_size=12).hexdigest()


class DiscordOutbound:
    """Implements `bot.ports.Outbound` with the client's HTTP session (no gateway needed)."""

    def __init__(self, client: discord.Client, *, reads_messages: bool = False) -> None:
        self.client = client
        # Members' messages can be read only with the message-content intent: without it
        # Discord hands them over without their content.
        self.reads_messages = reads_messages

    async def post(self, channel: ChannelRef, message: Message) -> MessageRef:
        target = self.client.get_partial_messageable(
            _snowflake(channel.channel, "unknown_channel"),
            guild_id=int(channel.scope.workspace) if channel.scope.workspace.isdigit() else None,
        )
        return await self._send(channel, target, message)

    async def send_dm(self, user: UserRef, message: Message) -> MessageRef:
        user_id = _snowflake(user.user, "unknown_user")
        try:
            dm = await self.client.create_dm(discord.Object(id=user_id))
        except SEND_ERRORS as error:
            raise delivery_error(error) from None
        return await self._send(ChannelRef(user.scope, str(dm.id)), dm, message)

    async def send_file(self, user: UserRef, file: FileToSend) -> MessageRef:
        """A DM holding the file, with its caption as the message."""
        user_id = _snowflake(user.user, "unknown_user")
        try:
            dm = await self.client.create_dm(discord.Object(id=user_id))
            sent = await dm.send(
                content=escape(file.caption),
                file=discord.File(io.BytesIO(file.content), filename=file.name),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except SEND_ERRORS as error:
            raise delivery_error(error) from None
        return MessageRef(ChannelRef(user.scope, str(dm.id)), str(sent.id))

    async def tell(self, user: UserRef, about: MessageRef, message: Message) -> None:
        """A DM: Discord has no private reply in a channel outside an interaction."""
        await self.send_dm(user, message)

    async def read_text(self, message: MessageRef) -> str | None:
        channel = message.channel
        if not self.reads_messages:
            return None
        guild = int(channel.scope.workspace) if channel.scope.workspace.isdigit() else None
        channel_id = _snowflake(channel.channel, "unknown_channel")
        message_id = _snowflake(message.message_id, "unknown_message")
        return await read_message_text(self.client, guild, channel_id, message_id)

    def spread(self, message: Message) -> list[Message]:
        """Over several messages when Discord's embed limits would cut its cards' text."""
        return spread(message)

    async def sent_keys(
        self, target: ChannelRef | UserRef, since: datetime
    ) -> dict[str, MessageRef]:
        """Discord hands nonces back only when a message is created, never when history is
        read: a repeated scheduled message is caught by its nonce when it is sent again."""
        return {}

    async def _send(
        self, channel: ChannelRef, target: discord.abc.Messageable, message: Message
    ) -> MessageRef:
        kwargs = render(message).send_kwargs()
        if message.delivery_key is not None:
            kwargs["nonce"] = delivery_nonce(channel.channel, message.delivery_key)
        try:
            sent = await target.send(**kwargs)
        except SEND_ERRORS as error:
            failure = delivery_error(error)
            log.info("Discord send to %s failed: %s", channel.channel, failure.reason)
            raise failure from None
        emoji = emoji_character(message.reaction) if message.reaction else None
        if emoji:
            try:
                await sent.add_reaction(emoji)
            except SEND_ERRORS as error:
                # The post is out; without Add Reactions people can still add the emoji.
                log.info("could not add %s in %s: %s", emoji, channel.channel, error)
        return MessageRef(channel, str(sent.id))
