"""Sends a person asked for: a channel's post run now (`/papers channel post-now`, the
console's /post-daily and /post-weekly) and a digest asked for (`/papers digest now`, the
console's /digest). They go out at once, outside the schedule and its exactly-once claim,
and are recorded in the deliveries ledger once they ended, marked manual, so `paperboy
status` lists them among the recent deliveries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from bot.delivery.runner import settled
from bot.events import ChannelRef, UserRef
from bot.ports import Delivered, DeliveryError
from storage.deliveries import Status
from storage.store import Store


async def manual_send(
    store: Store,
    kind: str,
    target: ChannelRef | UserRef,
    clock: Callable[[], datetime],
    send: Callable[[], Awaitable[Delivered]],
) -> Delivered:
    """Run `send` (a `kind` of delivery to `target`) and record how it ended; a failure is
    recorded, then raised to the caller, who tells the person."""
    try:
        delivered = await send()
    except DeliveryError as error:
        await _record(store, kind, target, clock(), Status.FAILED, None, error.reason)
        raise
    status, ref, detail = settled(delivered)
    await _record(store, kind, target, clock(), status, ref, detail)
    return delivered


async def _record(
    store: Store,
    kind: str,
    target: ChannelRef | UserRef,
    now: datetime,
    status: Status,
    ref: str | None,
    detail: str,
) -> None:
    name = target.channel if isinstance(target, ChannelRef) else target.user
    async with store.transaction() as repos:
        await repos.deliveries.record_manual(
            kind, target.scope.platform, target.scope.workspace, name, now, status,
            message_ref=ref, detail=detail,
        )  # fmt: skip
