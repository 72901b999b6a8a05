"""Reading a Discord message people act on (the "Save paper" context menu, a save reaction
with the message-content intent): its text as the core's link parser reads it. The core
decides what to save from it."""

from __future__ import annotations

import logging

import aiohttp
import discord

from bot.ports import DeliveryError

log = logging.getLogger(__name__)


def message_text(message: discord.Message) -> str:
    """A message's content, then each embed's link, title, description and field values,
    one a line (so a link at the start of one is a link's start)."""
    parts = [message.content]
    for embed in message.embeds:
        parts += [embed.url or "", embed.title or "", embed.description or ""]
        parts += [str(field.value or "") for field in embed.fields]
    return "\n".join(part for part in parts if part)


async def read_message_text(
    client: discord.Client, guild_id: int | None, channel_id: int, message_id: int
) -> str | None:
    """The text (`message_text`) of a message, fetched over REST; None, with one log line,
    when it cannot be read: deleted, or in a channel the bot may not read. Raises
    DeliveryError when Discord cannot be reached, so that the read is tried again. The
    bot's own messages are not read (None): one reaction saves the one paper of a paper
    post, never every paper of a shared list."""
    channel = client.get_partial_messageable(channel_id, guild_id=guild_id)
    try:
        message = await channel.fetch_message(message_id)
    except discord.HTTPException as error:
        if error.status >= 500:
            raise DeliveryError("discord_unavailable", permanent=False, unreachable=True) from None
        reason = f"{error.status} {error.text or type(error).__name__}"  # 404 deleted, 403
        log.info("cannot read message %s in %s: %s", message_id, channel_id, reason)
        return None
    except (aiohttp.ClientError, TimeoutError) as error:
        raise DeliveryError(type(error).__name__, permanent=False, unreachable=True) from None
    if client.user is not None and message.author.id == client.user.id:
        log.info("not saving from our own message %s in %s", message_id, channel_id)
        return None
    return message_text(message)
