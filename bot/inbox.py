"""The reaction inbox: a save reaction is recorded in the database before its platform is
answered, then acted on, and tried again until it succeeds.

Slack gives an event 3 seconds and then sends it again; Discord never sends one again. So
taking a reaction in is one short write (`take_in`, which waits at most ANSWER_WAIT for
SQLite's lock): once it is recorded, nothing is lost, even if this process stops the next
moment, and the platform is answered at once. When it cannot be recorded, the adapter asks
Slack to send it again, or tells the Discord member to react again.

Acting on it (`work_through`) reads the message where needed, saves or unsaves, deletes the
record and then tells the member privately. Saving and unsaving are idempotent, so a record
acted on but not yet deleted (a crash in between) is safe to act on again: the member reads
"Already saved". A failure leaves the record to be tried again after a backoff; after
MAX_ATTEMPTS the member is told the reaction did not take. Each process that receives
reactions works its platform's records through as they arrive, and `Paperboy.keep_working`
picks up retries and records a stopped process left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.delivery.outage import describe
from bot.events import ChannelRef, MessageRef, ReactionChanged, Scope, UserRef
from bot.messages import Message
from bot.ports import DeliveryError, Outbound
from bot.reactions import SaveReactions
from storage.db import DB_ERRORS
from storage.models import PendingReaction
from storage.store import Store

log = logging.getLogger(__name__)

# Waits before each next attempt: the first retries catch a lock or a blip, the later ones a
# restart of the database (about 45 minutes in all).
RETRY_AFTER = tuple(
    timedelta(seconds=seconds) for seconds in (5, 15, 30, 60, 120, 300, 600, 1200)
)  # fmt: skip
MAX_ATTEMPTS = len(RETRY_AFTER) + 1
HOLD = timedelta(minutes=2)  # how long a process holds a record it took to act on
BATCH = 50  # records taken at a time


def not_taken(added: bool) -> Message:
    """What a member is told when their reaction could not be acted on."""
    what = "save that paper" if added else "remove that paper from your saved papers"
    return Message(
        text=f"Sorry, I couldn't {what} just now.",
        lines=("Please remove your reaction and add it again in a minute.",),
    )


class ReactionInbox:
    def __init__(
        self,
        store: Store,
        reactions: SaveReactions,
        outbound: Outbound,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.answering = store.answering()  # the platform waits on `take_in`
        self.reactions = reactions
        self.outbound = outbound
        self.clock = clock

    async def take_in(self, event: ReactionChanged, *, event_id: str | None = None) -> bool:
        """Record `event` to act on; True when there is something to act on (a save emoji,
        not a delivery of `event_id` seen before). Raises what the database raises when it
        cannot be recorded (`storage.db.DB_ERRORS`): nothing was recorded then."""
        if not self.reactions.is_save(event.emoji):
            return False
        scope, now = event.message.channel.scope, self.clock()
        pending = PendingReaction(
            platform=scope.platform, workspace=scope.workspace,
            channel=event.message.channel.channel, message_id=event.message.message_id,
            user=event.user, emoji=event.emoji, added=event.added, received_at=now,
            attempts=0, due_at=now,
        )  # fmt: skip
        async with self.answering.transaction() as repos:
            if event_id is not None and not await repos.inbox.first_delivery(
                scope.platform, event_id, now
            ):
                log.info("skipping a redelivered reaction (%s)", event_id)
                return False
            await repos.inbox.keep_reaction(pending)
        return True

    async def work_through(self, platform: str) -> int:
        """Act on the platform's reactions that are due; how many were acted on. Raises
        what the database raises when it cannot take them.

        A member's reactions on one message are taken one at a time, in order
        (`take_due`): one that waited for an earlier one, taken in by another process or
        call meanwhile, is taken on the next round, so this goes on until none is left."""
        acted = 0
        while True:
            async with self.store.transaction() as repos:
                due = await repos.inbox.take_due(platform, self.clock(), hold=HOLD, most=BATCH)
            for pending in due:
                acted += await self._act(pending)
            if not due:
                return acted

    async def act_now(self, platform: str) -> None:
        """`work_through` right after a reaction was taken in. Never raises: what the
        database does not let it do now, `Paperboy.keep_working` does later."""
        try:
            await self.work_through(platform)
        except DB_ERRORS as error:
            log.warning("reactions wait for the database: %s", describe(error))
        except Exception:
            log.exception("acting on reactions failed")

    async def _act(self, pending: PendingReaction) -> int:
        """Act on one record: 1 when it was acted on, 0 when it waits for another try."""
        event = ReactionChanged(_message(pending), pending.user, pending.emoji, pending.added)
        try:
            answer = await self.reactions.handle(event, self.clock())
        except Exception as error:
            await self._try_later(pending, error)
            return 0
        async with self.store.transaction() as repos:
            await repos.inbox.drop_reaction(pending.id)
        if answer is not None:
            await self._tell(pending, answer)
        return 1

    async def _try_later(self, pending: PendingReaction, error: Exception) -> None:
        attempts = pending.attempts + 1
        who = f"{pending.user} on {pending.message_id}"
        hopeless = isinstance(error, DeliveryError) and error.permanent  # e.g. uninstalled
        if attempts >= MAX_ATTEMPTS or hopeless:
            log.warning("gave up on a reaction by %s: %s", who, describe(error))
            async with self.store.transaction() as repos:
                await repos.inbox.drop_reaction(pending.id)
            await self._tell(pending, not_taken(pending.added))
            return
        wait = RETRY_AFTER[attempts - 1]
        log.warning(
            "a reaction by %s failed (%s); trying again in %ds", who, describe(error),
            wait.total_seconds(),
        )  # fmt: skip
        async with self.store.transaction() as repos:
            await repos.inbox.try_reaction_again(pending.id, attempts, self.clock() + wait)

    async def _tell(self, pending: PendingReaction, message: Message) -> None:
        user = UserRef(Scope(pending.platform, pending.workspace), pending.user)
        try:
            await self.outbound.tell(user, _message(pending), message)
        except DeliveryError as error:
            log.info("reaction answer not shown to %s: %s", user.user, error.reason)


def _message(pending: PendingReaction) -> MessageRef:
    """The message reacted to."""
    channel = ChannelRef(Scope(pending.platform, pending.workspace), pending.channel)
    return MessageRef(channel, pending.message_id)
