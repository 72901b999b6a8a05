"""Sending one delivery's messages once, however often it is retried.

A worker that died mid-way, or a send whose answer was lost, leaves unknown what reached the
platform. Each message of a scheduled delivery is therefore marked with a delivery key
(`SendKey.of(part)`), and a retry asks the platform which keys are already there
(`Outbound.sent_keys`) and sends only the rest. Every kind of delivery (daily post, digest,
weekly post) says what its parts are; `ResumableSend.run` is the one place that sends them.
A list of papers in one message (a digest, a weekly post) becomes its parts in `spread_papers`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bot.events import ChannelRef, MessageRef, UserRef
from bot.messages import Message
from bot.ports import Delivered, Outbound


@dataclass(frozen=True)
class SendKey:
    """Marks the messages of one scheduled delivery (`tag`: unique per target and period) so
    that a retry can tell which of them already went out. A worker that died, or a send that
    timed out, leaves that unknown: `retry_since` then asks to look on the platform first."""

    tag: str
    retry_since: datetime | None = None

    def of(self, part: str) -> str:
        return f"{self.tag}:{part}"


@dataclass(frozen=True)
class Part:
    """One message of a delivery. `name` is unique within it ("header", "paper:12", "dm");
    `sent`, when given, records the message once it is out (or found out), before the next
    part goes."""

    name: str
    message: Message
    sent: Callable[[MessageRef], Awaitable[None]] | None = None


@dataclass(frozen=True)
class ResumableSend:
    """A delivery's parts to one target, in order. `lead` names the part that stands for the
    whole (a daily post's header): its message is what the ledger records as sent. No parts
    means nothing is left to send."""

    target: ChannelRef | UserRef
    lead: str
    parts: Sequence[Part] = ()
    papers: int = 0
    note: str = ""  # what was sent instead of papers, e.g. "list missing"

    async def run(self, outbound: Outbound, key: SendKey | None = None) -> Delivered:
        """Send the parts (marked with `key`, when scheduled) that are not out yet."""
        out = await self._already_out(outbound, key)
        refs: dict[str, MessageRef] = {}
        for part in self.parts:
            ref = out.get(key.of(part.name)) if key else None
            if ref is None:
                message = part.message
                if key is not None:
                    message = replace(message, delivery_key=key.of(part.name))
                ref = await self._send(outbound, message)
            if part.sent is not None:
                await part.sent(ref)
            refs[part.name] = ref
        if self.parts:
            return Delivered(self.papers, refs.get(self.lead), self.note)
        # Nothing left: on a retry, an earlier attempt sent and recorded everything, then
        # died before noting its outcome. Its lead message says so.
        lead = out.get(key.of(self.lead)) if key else None
        return Delivered(self.papers, lead, "sent by an earlier attempt" if lead else self.note)

    async def _already_out(self, outbound: Outbound, key: SendKey | None) -> dict[str, MessageRef]:
        if key is None or key.retry_since is None:
            return {}
        return await outbound.sent_keys(self.target, key.retry_since)

    async def _send(self, outbound: Outbound, message: Message) -> MessageRef:
        if isinstance(self.target, ChannelRef):
            return await outbound.post(self.target, message)
        return await outbound.send_dm(self.target, message)


def spread_papers(
    outbound: Outbound,
    target: ChannelRef | UserRef,
    lead: str,
    message: Message,
    paper_ids: Sequence[int],
    out: Collection[int],
    record: Callable[[Sequence[int], MessageRef], Awaitable[None]],
) -> ResumableSend:
    """`message`, a card for each of `paper_ids` in order, as the messages its platform sends
    it in (`Outbound.spread`), each recording its papers (`record`) once it is out. A retry
    sends only the papers not `out` yet (those its earlier attempts recorded), without the
    heading: that went out with the first message."""
    whole = _paper_parts(outbound, lead, message, paper_ids, record)
    kept = [at for at, paper_id in enumerate(paper_ids) if paper_id not in out]
    if len(kept) == len(paper_ids):
        return ResumableSend(target, whole[0].name, whole, len(kept))
    if not kept:  # an earlier attempt sent it all; the platform may know its first message
        return ResumableSend(target, whole[0].name)
    cards = tuple(message.cards[at] for at in kept)
    rest = replace(message, text="", lines=(), cards=cards)
    ids = [paper_ids[at] for at in kept]
    parts = _paper_parts(outbound, lead, rest, ids, record, whole=False)
    return ResumableSend(target, parts[0].name, parts, len(paper_ids))


def _paper_parts(
    outbound: Outbound,
    lead: str,
    message: Message,
    paper_ids: Sequence[int],
    record: Callable[[Sequence[int], MessageRef], Awaitable[None]],
    *,
    whole: bool = True,
) -> list[Part]:
    """A part per platform message. The whole list in one message is `lead`, as ever; the
    messages of a spread one (or of its rest) are named by their papers, so a retry's message
    never shares a key with a different one an earlier attempt sent."""
    pieces = outbound.spread(message)
    ids = iter(paper_ids)
    parts = []
    for index, piece in enumerate(pieces):
        name = lead
        if len(pieces) > 1 or not whole:
            # A message holding no paper (lines only) is named by where it stands.
            held = "+".join(card.paper_id for card in piece.cards) or f"#{index}"
            name = f"{lead}:{held}"
        mine = tuple(itertools.islice(ids, len(piece.cards)))
        parts.append(Part(name, piece, functools.partial(record, mine)))
    return parts
