"""Paperboy: the platform-neutral bot. Adapters hand it neutral events and render what it
returns; it reaches platforms only through the Outbound port."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from bot.commands import HANDLERS, CommandContext
from bot.commands.channels import not_admin
from bot.commands.parser import (
    ADMIN_COMMANDS,
    ChannelOff,
    ChannelOn,
    DigestOff,
    DigestSet,
    UsageError,
    parse,
)
from bot.daily import (
    ChannelPlan,
    DailyRequest,
    ListMissing,
    compose_daily_posts,
    deliver_daily_post,
)
from bot.digest import send_digest
from bot.events import ChannelRef, CommandInvoked, ReactionChanged, UserRef
from bot.messages import DailyPost, Message, Visibility
from bot.ports import Delivered, DeliveryError, Outbound, SendKey
from bot.post_recorder import PostRecorder
from bot.reactions import SaveReactions, display_emoji
from bot.resume import already_sent, send_once, sent_earlier
from bot.search import SearchSource
from config import Settings
from storage.store import Repositories, Store

log = logging.getLogger(__name__)

SCHEDULE_COMMANDS = (ChannelOn, ChannelOff, DigestSet, DigestOff)
SOMETHING_WENT_WRONG = "Sorry, something went wrong on our side. Please try again in a minute."


@dataclass(frozen=True)
class BotConfig:
    save_emojis: tuple[str, ...] = ("bookmark",)
    default_tz: str = "UTC"
    default_post_time: str = "09:00"
    default_post_count: int = 5
    search_budget: float = 1.5
    today_count: int = 5
    topic_count: int = 5
    admins: str = "workspace admins"  # who may change channel settings, in the platform's words

    @classmethod
    def from_settings(cls, settings: Settings) -> BotConfig:
        return cls(
            save_emojis=settings.save_emojis,
            default_tz=settings.default_tz,
            default_post_time=settings.default_post_time,
            default_post_count=settings.default_post_count,
            search_budget=settings.search_budget_seconds,
        )

    @property
    def save_emoji(self) -> str:
        """How to show the save emoji in a message."""
        return display_emoji(self.save_emojis[0])


@dataclass(frozen=True)
class DuePost:
    """A channel's daily post to send now: from `day`'s list (None: the newest); with
    `give_up`, a missing list is said instead of waited for; `key` marks a scheduled one."""

    channel: ChannelRef
    day: date | None = None
    give_up: bool = False
    key: SendKey | None = None


def _where(channel: ChannelRef) -> tuple[str, str, str]:
    return channel.scope.platform, channel.scope.workspace, channel.channel


class Paperboy:
    def __init__(
        self,
        store: Store,
        outbound: Outbound,
        *,
        config: BotConfig,
        source: SearchSource | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.outbound = outbound
        self.config = config
        self.source = source
        self.clock = clock
        self.reactions = SaveReactions(store, config.save_emojis)
        self.posts = PostRecorder(store)
        # Called after a command changes when something is delivered (the scheduler listens).
        self.schedule_listeners: list[Callable[[], None]] = []

    async def handle_command(self, event: CommandInvoked) -> Message:
        """The answer to `/papers <text>`: a result, a usage hint, or an apology; never raises."""
        try:
            command = parse(event.text)
        except UsageError as error:
            return Message(text=str(error), is_usage_hint=True)
        if isinstance(command, ADMIN_COMMANDS) and not event.is_admin:
            return Message(text=not_admin(self.config.admins))
        context = CommandContext(bot=self, event=event, now=self.clock())
        try:
            answer = await HANDLERS[type(command)](context, command)
        except Exception:
            log.exception("command %s failed", type(command).__name__)
            return Message(text=SOMETHING_WENT_WRONG)
        if isinstance(command, SCHEDULE_COMMANDS):
            self._schedule_changed()
        return answer

    def _schedule_changed(self) -> None:
        for listener in self.schedule_listeners:
            listener()

    async def handle_reaction(self, event: ReactionChanged) -> Message | None:
        """A confirmation for the reacting user, or None when the reaction is not a save."""
        try:
            return await self.reactions.handle(event, self.clock())
        except Exception:
            log.exception("reaction handling failed")
            return None

    async def followed_topics(self, user: UserRef) -> list[str]:
        """The topics `user` follows (for pickers such as Discord's autocomplete)."""
        scope = user.scope
        async with self.store.transaction() as repos:
            return list(await repos.users.following(scope.platform, scope.workspace, user.user))

    async def post_daily(
        self,
        channel: ChannelRef,
        *,
        day: date | None = None,
        give_up: bool = False,
        key: SendKey | None = None,
    ) -> Delivered:
        """Run a channel's daily post now, from `day`'s list (default: the newest).

        When `day`'s list is not in the store, raises ListMissing for the caller to wait, or
        with `give_up` posts a short notice saying so (never older papers in its place).
        A permanent delivery error (channel gone, bot removed) turns the channel's daily post
        off, tells the admin who set it up, and is raised again for the caller to report.
        """
        async with self.store.transaction() as repos:
            (send,) = await self.prepare_daily(repos, [DuePost(channel, day, give_up, key)])
        return await send()

    async def prepare_daily(
        self, repos: Repositories, due: Sequence[DuePost]
    ) -> list[Callable[[], Awaitable[Delivered]]]:
        """`post_daily` in two steps, for many channels at once: this one composes the posts
        in the caller's transaction; each step it returns sends one (and raises ListMissing
        there). The scheduler composes a morning's posts in the transaction that claims them:
        a few queries for all of them instead of a transaction each."""
        plans: dict[tuple[str, str, str], tuple[int, tuple[str, ...]]] = {}
        for platform in {post.channel.scope.platform for post in due}:
            pairs = [
                (post.channel.scope.workspace, post.channel.channel)
                for post in due
                if post.channel.scope.platform == platform
            ]
            for where, plan in (await repos.channels.plans(platform, pairs)).items():
                plans[(platform, *where)] = plan
        now = self.clock()
        requests = [
            DailyRequest(
                post.channel,
                ChannelPlan(*plans.get(_where(post.channel), (self.config.default_post_count, ()))),
                post.day,
                post.key.retry_since if post.key else None,
            )
            for post in due
        ]
        composed = await compose_daily_posts(repos, requests, self.config.save_emoji, now)
        return [self._sender(post, answer, now) for post, answer in zip(due, composed, strict=True)]

    def _sender(
        self, due: DuePost, composed: DailyPost | ListMissing | None, now: datetime
    ) -> Callable[[], Awaitable[Delivered]]:
        """The step that sends `composed`. A permanent delivery error turns the channel's
        daily post off first."""

        async def send() -> Delivered:
            try:
                return await self._send_daily(due, composed, now)
            except DeliveryError as error:
                if error.permanent:
                    await self._stop_channel(due.channel, error.reason)
                raise

        return send

    async def _send_daily(
        self, due: DuePost, composed: DailyPost | ListMissing | None, now: datetime
    ) -> Delivered:
        channel, key = due.channel, due.key
        if isinstance(composed, ListMissing):
            if not due.give_up:
                raise composed
            notice = Message(
                text="No trending papers today: Hugging Face has not published its Daily "
                f"Papers list for {composed.day:%A %d %B} yet.",
                lines=("I'll post the next list at the usual time.",),
                visibility=Visibility.PUBLIC,
            )
            sent = await already_sent(self.outbound, channel, key)
            ref = await send_once(self.outbound.post, channel, notice, key, "notice", sent)
            return Delivered(0, ref, "list missing")
        if composed is None:
            return await sent_earlier(self.outbound, channel, key, "header")
        return await deliver_daily_post(
            self.store, self.posts, self.outbound, channel, composed, now, key
        )

    async def _stop_channel(self, channel: ChannelRef, reason: str) -> None:
        scope = channel.scope
        async with self.store.transaction() as repos:
            subscription = await repos.channels.subscription(
                scope.platform, scope.workspace, channel.channel
            )
            if subscription is None:
                return
            subscription.enabled = False
            subscription.disabled_reason = reason[:200]
            subscription.updated_at = self.clock()
            admin = UserRef(scope, subscription.created_by)
        self._schedule_changed()
        log.warning(
            "daily post stopped: platform=%s workspace=%s channel=%s reason=%s",
            scope.platform, scope.workspace, channel.channel, reason,
        )  # fmt: skip
        notice = Message(
            text=f"I stopped the daily post in channel {channel.channel}: {reason}.",
            lines=("Fix that (e.g. invite me back), then run `/papers channel on` there.",),
            visibility=Visibility.PUBLIC,
        )
        try:
            await self.outbound.send_dm(admin, notice)
        except DeliveryError as error:
            log.warning("could not tell %s about it: %s", admin.user, error.reason)

    async def send_digest(
        self, user: UserRef, *, scheduled: bool = False, key: SendKey | None = None
    ) -> Delivered:
        """Send `user`'s digest now.

        A permanent delivery error (DMs closed, user gone) pauses the user's digest with the
        reason and is raised again; `scheduled` runs skip a paused digest instead of retrying
        forever. A later successful send (the user asking for one) lifts the pause.
        """
        scope = user.scope
        async with self.store.transaction() as repos:
            setting = await repos.users.digest_setting(scope.platform, scope.workspace, user.user)
        if scheduled and setting is not None and setting.disabled_reason:
            log.info("digest paused, skipped: user=%s", user.user)
            return Delivered(0)
        cadence = setting.cadence if setting else "daily"
        try:
            sent = await send_digest(self.store, self.outbound, user, cadence, self.clock(), key)
        except DeliveryError as error:
            if error.permanent:
                await self._mark_digest(user, error.reason)
            raise
        if sent.papers and setting is not None and setting.disabled_reason:
            await self._mark_digest(user, None)
        return sent

    async def _mark_digest(self, user: UserRef, reason: str | None) -> None:
        scope = user.scope
        async with self.store.transaction() as repos:
            setting = await repos.users.digest_setting(scope.platform, scope.workspace, user.user)
            if setting is not None:
                setting.disabled_reason = reason[:200] if reason else None
        self._schedule_changed()
        if reason:
            log.warning(
                "digest paused: platform=%s workspace=%s user=%s reason=%s",
                scope.platform, scope.workspace, user.user, reason,
            )  # fmt: skip
