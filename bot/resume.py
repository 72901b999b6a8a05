"""Resuming a scheduled delivery: a retry sends only what its earlier attempts did not.

A worker that died mid-way, or a send whose answer was lost, leaves unknown what reached the
platform. Each scheduled message is marked with a delivery key (`SendKey.of(part)`); a retry
asks the platform which keys are already there (`Outbound.sent_keys`) and skips those.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from bot.events import ChannelRef, MessageRef, UserRef
from bot.messages import Message
from bot.ports import Delivered, Outbound, SendKey


async def already_sent(
    outbound: Outbound, target: ChannelRef | UserRef, key: SendKey | None
) -> dict[str, MessageRef]:
    if key is None or key.retry_since is None:
        return {}
    return await outbound.sent_keys(target, key.retry_since)


async def sent_earlier(
    outbound: Outbound, target: ChannelRef | UserRef, key: SendKey | None, part: str
) -> Delivered:
    """Nothing is left to send. On a retry that is because an earlier attempt sent and
    recorded everything, then died before noting its outcome: its first message says so."""
    ref = (await already_sent(outbound, target, key)).get(key.of(part)) if key else None
    return Delivered(0, ref, "sent by an earlier attempt" if ref else "")


async def send_once(
    send: Callable[[Any, Message], Awaitable[MessageRef]],
    target: ChannelRef | UserRef,
    message: Message,
    key: SendKey | None,
    part: str,
    sent: dict[str, MessageRef],
) -> MessageRef:
    """Send `message` marked as `part` of the delivery `key`, unless it is already out."""
    if key is None:
        return await send(target, message)
    delivery_key = key.of(part)
    if delivery_key in sent:
        return sent[delivery_key]
    return await send(target, replace(message, delivery_key=delivery_key))
