"""Paperboy: the platform-neutral bot's front door. Adapters hand it neutral events and render
what it returns: commands and saves from a message come in here, reactions through its inbox
(`bot.inbox`), which records them before acting on them; scheduled
delivery is handed to `bot.delivery`, with the daily post, the weekly post and the digest as
its kinds. It reaches platforms only through the Outbound port."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.cards import paper_card
from bot.commands import HANDLERS, CommandContext
from bot.commands.channels import not_admin
from bot.commands.parser import (
    ADMIN_COMMANDS,
    ChannelOff,
    ChannelOn,
    ChannelWeeklyOff,
    ChannelWeeklyOn,
    DigestOff,
    DigestSet,
    ForgetMe,
    UsageError,
    parse,
)
from bot.config import BotConfig
from bot.daily import DailyPosts
from bot.delivery.outage import Outage, describe
from bot.delivery.runner import DeliveryKind, DeliveryPolicy
from bot.delivery.scheduler import DeliveryScheduler
from bot.digest import Digests
from bot.events import (
    ChannelGone,
    CommandInvoked,
    SaveFromMessage,
    Scope,
    UserRef,
    WorkspaceBack,
    WorkspaceGone,
)
from bot.inbox import ReactionInbox
from bot.lifecycle import Lifecycle
from bot.links import MAX_IDS, find_paper_ids
from bot.messages import Message, PaperCard, Visibility
from bot.observe import command_name, observer
from bot.ports import Outbound
from bot.reactions import SaveReactions
from bot.saving import LateSaves, outcome_message, papers_by_id, save_linked_papers
from bot.search import SearchSource
from bot.sources.lookup import PaperLookup
from bot.weekly import WeeklyPosts
from storage.db import DB_ERRORS, unreachable
from storage.deliveries import CHANNEL, DIGEST, WEEKLY
from storage.store import Store

if TYPE_CHECKING:
    from bot.semantic.meaning import Semantic

log = logging.getLogger(__name__)

SCHEDULE_COMMANDS = (
    ChannelOn, ChannelOff, ChannelWeeklyOn, ChannelWeeklyOff, DigestSet, DigestOff, ForgetMe
)  # fmt: skip
SOMETHING_WENT_WRONG = "Sorry, something went wrong on our side. Please try again in a minute."
DATABASE_BUSY = "Sorry, I couldn't reach my database just now. Please try again in a minute."
NOTHING_TO_SHARE = "Nothing to share: that answer has changed or is no longer available."
UNPARSED = "unparsed"  # what a command that does not parse is reported as
UNFURL_BUDGET = 10.0  # seconds an unfurl waits for Hugging Face and arXiv
CHECK_EVERY = 15.0  # seconds between looks for waiting work (`keep_working`)


def share_command(text: str, answer: Message) -> str | None:
    """What a "Share to channel" button under `answer` carries: the command that made it, to
    run again (`today` for the bare `/papers`: a button's value may not be empty); None when
    the answer is not one to share."""
    if answer.is_usage_hint or not answer.shareable:
        return None
    return " ".join(text.split()) or "today"


class Paperboy:
    def __init__(
        self,
        store: Store,
        outbound: Outbound,
        *,
        config: BotConfig,
        source: SearchSource | None = None,
        semantic: Semantic | None = None,
        lookup: PaperLookup | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.config = config
        self.source = source
        self.semantic = semantic
        self.lookup = lookup  # papers by id from Hugging Face and arXiv, for saves by link
        self.clock = clock
        self.outbound = outbound
        # Called after a command, a failed send or a lifecycle event changes when something
        # is delivered.
        self._schedule_listeners: list[Callable[[], None]] = []
        # Commands, saves and reactions taken in are waited on: their writes wait briefly
        # for SQLite's lock (`Store.answering`).
        self.answering = store.answering()
        self.reactions = SaveReactions(store, config.save_emojis, outbound.read_text, lookup)
        self.inbox = ReactionInbox(store, self.reactions, outbound, clock)
        self.late_saves = LateSaves(store, outbound, clock)
        self.lifecycle = Lifecycle(store, outbound, clock, self._schedule_changed)
        self.daily = DailyPosts(
            store, outbound, default_count=config.default_post_count,
            save_emoji=config.save_emoji, clock=clock, channel_gone=self.lifecycle.channel_gone,
        )  # fmt: skip
        self.weekly = WeeklyPosts(store, outbound, clock, self.lifecycle.channel_gone)
        self.digests = Digests(
            store, outbound, clock=clock, schedule_changed=self._schedule_changed,
            workspace_gone=self.lifecycle.workspace_gone, semantic=semantic,
        )  # fmt: skip

    async def handle_command(self, event: CommandInvoked) -> Message:
        """The answer to `/papers <text>`: a result, a usage hint, or an apology; never raises."""
        started = time.monotonic()
        name, outcome, answer = await self._run_command(event)
        observer().command_finished(name, outcome, time.monotonic() - started)
        return answer

    async def _run_command(self, event: CommandInvoked) -> tuple[str, str, Message]:
        """The command's name (UNPARSED when it has none), how it ended, and its answer."""
        try:
            command = parse(event.text)
        except UsageError as error:
            return UNPARSED, "usage", Message(text=str(error), is_usage_hint=True)
        name = command_name(command)
        if isinstance(command, ADMIN_COMMANDS) and not await event.by_admin():
            return name, "denied", Message(text=not_admin(self.config.admins))
        context = CommandContext(
            event=event, now=self.clock(), store=self.answering, config=self.config,
            source=self.source, semantic=self.semantic, daily=self.daily, digests=self.digests,
            outbound=self.outbound, lookup=self.lookup,
        )  # fmt: skip
        try:
            answer = await HANDLERS[type(command)](context, command)
        except Exception as error:
            if isinstance(error, DB_ERRORS) and unreachable(error):
                log.warning("command %s: database busy or unreachable: %s", name, describe(error))
                return name, "error", Message(text=DATABASE_BUSY)
            log.exception("command %s failed", type(command).__name__)
            return name, "error", Message(text=SOMETHING_WENT_WRONG)
        if isinstance(command, SCHEDULE_COMMANDS):
            self._schedule_changed()
        return name, "usage" if answer.is_usage_hint else "ok", answer

    async def share(self, event: CommandInvoked) -> Message | None:
        """What "Share to channel" posts: the command run again for a fresh answer, public and
        marked as shared by the caller; None when that answer is not one to share. It runs
        as a plain member's: the command comes back from a button, which anyone can forge."""
        answer = await self.handle_command(replace(event, is_admin=False))
        if answer.is_usage_hint or not answer.shareable:
            return None
        return replace(answer, visibility=Visibility.PUBLIC, shareable=False, shared_by=event.user)

    async def save_from_message(self, event: SaveFromMessage) -> Message:
        """The papers a message links to, saved for the user who asked: what was saved, or
        that the message links to no paper. Never raises."""
        try:
            outcome = await save_linked_papers(
                self.answering, self.lookup, event.user, event.text, self.clock()
            )
        except Exception:
            log.exception("saving from a message failed")
            return Message(text=SOMETHING_WENT_WRONG)
        return outcome_message(outcome)

    async def unfurl(self, urls: Sequence[str]) -> dict[str, PaperCard]:
        """The paper card to show under each link people pasted, by URL: the paper its
        link names (`bot.links`), stored or fetched (then stored). A URL that names no
        paper, or one that cannot be found, is left out; at most MAX_IDS URLs are looked
        at. Never raises."""
        try:
            wanted: dict[str, str] = {}
            for url in list(dict.fromkeys(urls))[:MAX_IDS]:
                ids = find_paper_ids(url, limit=1).ids
                if ids:
                    wanted[url] = ids[0]
            if not wanted:
                return {}
            papers = await papers_by_id(
                self.store, self.lookup, list(wanted.values()), self.clock(),
                budget=UNFURL_BUDGET,
            )  # fmt: skip
        except Exception:
            log.exception("unfurling links failed")
            return {}
        return {
            url: paper_card(papers[arxiv_id])
            for url, arxiv_id in wanted.items()
            if arxiv_id in papers and not papers[arxiv_id].is_demo
        }

    async def channel_gone(self, event: ChannelGone) -> None:
        """The bot can no longer post in a channel: its posts stop, their admins are told
        (`bot.lifecycle`). Never raises."""
        await _never_raising("handling a channel that is gone", self.lifecycle.channel_gone(event))

    async def workspace_gone(self, event: WorkspaceGone) -> None:
        """A workspace removed the app: everything there stops. Never raises."""
        await _never_raising(
            "handling a workspace that removed the app", self.lifecycle.workspace_gone(event)
        )

    async def workspace_back(self, event: WorkspaceBack) -> None:
        """The app was installed in a workspace: what it left resumes. Never raises."""
        await _never_raising(
            "handling a workspace that installed the app", self.lifecycle.workspace_back(event)
        )

    async def workspaces_present(self, platform: str, present: Collection[str]) -> None:
        """Every workspace the app is in on `platform`, as the platform lists them when a
        process connects (Discord's READY): one with sends scheduled that is not among them
        removed the app while no process was connected to hear it, and stops as if it had
        been heard (adding the app again brings everything back). Never raises."""
        try:
            async with self.store.reading() as repos:
                scheduled = await repos.workspaces.scheduled(platform)
        except DB_ERRORS as error:
            log.warning("workspaces the app left unchecked: %s", describe(error))
            return
        for workspace in sorted(scheduled - set(present)):
            await self.workspace_gone(WorkspaceGone(Scope(platform, workspace)))

    async def followed_topics(self, user: UserRef) -> list[str]:
        """The topics `user` follows (for pickers such as Discord's autocomplete)."""
        scope = user.scope
        async with self.store.reading() as repos:
            return list(await repos.users.following(scope.platform, scope.workspace, user.user))

    async def keep_working(self, platform: str, every: float = CHECK_EVERY) -> None:
        """What waits to be done for people on `platform`, every `every` seconds until
        cancelled: reactions to act on (`bot.inbox`: retries that came due, and records a
        stopped process left) and members to tell of late saves (`bot.saving.LateSaves`).
        A database that cannot be reached is logged once until it is back."""
        failing = False
        while True:
            try:
                await self.inbox.work_through(platform)
                await self.late_saves.tell(platform)
            except DB_ERRORS as error:
                if not failing:
                    log.warning("waiting work waits for the database: %s", describe(error))
                failing = True
            except Exception:  # a bug must not stop the process's deliveries with it
                log.exception("waiting work failed")
            else:
                if failing:
                    log.info("the database is back; waiting work goes on")
                failing = False
            await asyncio.sleep(every)

    def scheduler(
        self,
        *,
        platform: str | None = None,
        worker: str | None = None,
        policy: DeliveryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
        outage: Outage | None = None,
    ) -> DeliveryScheduler:
        """Scheduled delivery of this bot's daily and weekly posts and digests (on `platform`,
        the one its outbound reaches), told at once when a command here changes a schedule.
        Schedulers of one process share an `outage`, so a database outage is logged once."""
        kinds: dict[str, DeliveryKind] = {
            CHANNEL: self.daily, WEEKLY: self.weekly, DIGEST: self.digests
        }  # fmt: skip
        scheduler = DeliveryScheduler(
            self.store, kinds, platform=platform,
            worker=worker, policy=policy, clock=clock or self.clock, outage=outage,
        )  # fmt: skip
        self._schedule_listeners.append(scheduler.schedule_changed)
        return scheduler

    def _schedule_changed(self) -> None:
        for listener in self._schedule_listeners:
            listener()


async def _never_raising(what: str, handling: Awaitable[None]) -> None:
    """Await a platform event's handling; a failure is logged, never raised to the adapter.
    A database that cannot be reached (down, or SQLite's file locked past the busy timeout)
    is one line: the platform tells again (a reconnect, the next event). Anything else is a
    bug, logged with its traceback."""
    try:
        await handling
    except Exception as error:
        if not unreachable(error):
            log.exception("%s failed", what)
            return
        log.warning("%s failed: the database could not be reached: %s", what, describe(error))
