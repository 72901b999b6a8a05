"""Daily channel posts: which papers a channel gets (the top of the newest list it has not
had), as a header and one message per paper; and the daily post as a kind of scheduled
delivery (`DailyPosts`), whose sending `bot.delivery` does once."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.cards import demo_note, paper_card
from bot.delivery.batching import Batcher
from bot.delivery.manual import manual_send
from bot.delivery.resumable import Part, ResumableSend, SendKey
from bot.delivery.runner import Claim, NotReady, Send
from bot.events import ChannelGone, ChannelRef, MessageRef
from bot.lifecycle import lost_channel
from bot.messages import DailyPost, Message, PaperCard, Visibility, counted
from bot.ports import Delivered, DeliveryError, Outbound
from bot.reactions import emoji_in_text
from bot.words import search_terms
from storage.channels import ChannelPlanRow, PostRecord
from storage.deliveries import CHANNEL, DeliveryKey
from storage.models import LEASE_NAME_LENGTH, Paper
from storage.store import Repositories, Store

PUBLISHING_DAYS = "mon-fri"  # Hugging Face publishes Daily Papers on weekdays
# A day's list fills up from 00:00 UTC; by 08:00 UTC it holds most of its papers (the
# archived responses fetched at 07:45 UTC carry full lists), so a post from then on gets it.
LIST_OUT_UTC = time(8, 0)


class ListMissing(NotReady):
    """The Daily Papers list a scheduled post is due to carry is not in the store yet."""

    def __init__(self, day: date) -> None:
        super().__init__(f"the {day} list")
        self.day = day


def due_list_day(at: datetime) -> date:
    """The list a post at `at` should carry: today's (UTC) once it is out, else the one
    before; a post on a day without a list (weekends) carries Friday's."""
    at = at.astimezone(UTC)
    day = at.date() if at.time() >= LIST_OUT_UTC else at.date() - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


@dataclass(frozen=True)
class ChannelPlan:
    """What a channel wants in its daily post."""

    count: int
    topics: tuple[str, ...] = ()


async def latest_list(
    repos: Repositories, as_of: date | None = None
) -> tuple[date, list[Paper]] | None:
    """The newest Daily Papers list in the store (up to `as_of`); real lists win over the
    demo sample."""
    day = await repos.papers.latest_listing_day(demo=False, on_or_before=as_of)
    if day is None:
        day = await repos.papers.latest_listing_day(demo=True, on_or_before=as_of)
    if day is None:
        return None
    return day, await repos.papers.listing(day)


async def matching_any(
    repos: Repositories, topics: tuple[str, ...], candidates: list[Paper]
) -> list[Paper]:
    """`candidates` (kept in their order) that match at least one topic."""
    term_sets = [tuple(search_terms(topic)) for topic in topics]
    matches = await repos.papers.matching_ids(term_sets, [paper.id for paper in candidates])
    matched = set().union(*matches.values())
    return [paper for paper in candidates if paper.id in matched]


async def due_list(repos: Repositories, day: date) -> tuple[date, list[Paper]] | None:
    """`day`'s list; raises ListMissing when real lists are stored but not that one. A store
    holding only the demo sample (offline) serves the sample."""
    papers = await repos.papers.listing(day)
    if papers:
        return day, papers
    if await repos.papers.latest_listing_day(demo=False) is not None:
        raise ListMissing(day)
    return await latest_list(repos, day)


@dataclass(frozen=True)
class DailyRequest:
    """One channel's post to compose: from `day`'s list (None: the newest). A retry counts
    only papers `posted_before` its first attempt as old, so it completes the post that
    attempt chose rather than choosing anew."""

    channel: ChannelRef
    plan: ChannelPlan
    day: date | None = None
    posted_before: datetime | None = None


async def compose_daily_posts(
    repos: Repositories, requests: Sequence[DailyRequest], save_emoji: str, now: datetime
) -> list[DailyPost | ListMissing | None]:
    """The posts these channels would get at `now`, in order: each answer a post, None
    (nothing new for it) or ListMissing (its day's list is not in). A morning's posts share
    the few lists they carry, and which of those papers each channel already had is one
    query per list."""
    lists: dict[date | None, tuple[date, list[Paper]] | ListMissing | None] = {}
    for request in requests:
        if request.day not in lists:
            try:
                lists[request.day] = await (
                    due_list(repos, request.day) if request.day else latest_list(repos, now.date())
                )
            except ListMissing as missing:
                lists[request.day] = missing
    posted = await _posted(repos, requests, lists)
    # Channels filtering the same list by the same topics share one match.
    filtered: dict[tuple[date | None, tuple[str, ...]], list[Paper]] = {}
    composed: list[DailyPost | ListMissing | None] = []
    for request, old in zip(requests, posted, strict=True):
        listed = lists[request.day]
        if listed is None or isinstance(listed, ListMissing):
            composed.append(listed)
            continue
        day, papers = listed
        if request.plan.topics:
            shared = (request.day, request.plan.topics)
            if shared not in filtered:
                filtered[shared] = await matching_any(repos, request.plan.topics, papers)
            papers = filtered[shared]
        composed.append(daily_post(day, papers, old, request.plan, save_emoji))
    return composed


async def _posted(
    repos: Repositories,
    requests: Sequence[DailyRequest],
    lists: dict[date | None, tuple[date, list[Paper]] | ListMissing | None],
) -> list[set[int]]:
    """For each request, which papers of its list its channel already had: one query per
    platform and list for first attempts, one per retry (each has its own `posted_before`)."""
    groups: dict[tuple[str, date | None], list[tuple[str, str]]] = {}
    for request in requests:
        if request.posted_before is None:
            scope = request.channel.scope
            pair = (scope.workspace, request.channel.channel)
            groups.setdefault((scope.platform, request.day), []).append(pair)
    found: dict[tuple[str, date | None, str, str], set[int]] = {}
    for (platform, day), pairs in groups.items():
        ids = _ids(lists[day])
        for (workspace, channel), paper_ids in (
            await repos.channels.posted_papers_many(platform, pairs, ids)
        ).items():
            found[(platform, day, workspace, channel)] = paper_ids
    posted = []
    for request in requests:
        scope, channel = request.channel.scope, request.channel.channel
        if request.posted_before is None:
            posted.append(found.get((scope.platform, request.day, scope.workspace, channel), set()))
        else:
            old = await repos.channels.posted_papers(
                scope.platform, scope.workspace, channel, _ids(lists[request.day]),
                before=request.posted_before,
            )  # fmt: skip
            posted.append(old)
    return posted


def _ids(listed: tuple[date, list[Paper]] | ListMissing | None) -> list[int]:
    return [paper.id for paper in listed[1]] if isinstance(listed, tuple) else []


def daily_post(
    day: date, papers: Sequence[Paper], posted: set[int], plan: ChannelPlan, save_emoji: str
) -> DailyPost | None:
    """The post of the plan's count of `papers` (in order) not `posted` yet; None if none."""
    chosen = [paper for paper in papers if paper.id not in posted][: plan.count]
    if not chosen:
        return None
    cards = [paper_card(paper) for paper in chosen]
    topics = f" on {', '.join(plan.topics)}" if plan.topics else ""
    # The list's top papers, or the next ones when the top were posted here already.
    which = (
        f"{counted(len(chosen), 'more paper')} from the list"
        if any(paper.id in posted for paper in papers)
        else f"Top {len(chosen)}"
    )
    header = Message(
        text=list_title(day, cards, f"Trending papers{topics}"),
        lines=(f"{which}. React with {emoji_in_text(save_emoji)} to save one to `/papers saved`.",),
        note=demo_note(cards),
        visibility=Visibility.PUBLIC,
    )
    return DailyPost(
        header=header,
        papers=tuple(
            (
                paper.id,
                Message(
                    text="",
                    cards=(card,),
                    note=demo_note([card]),
                    visibility=Visibility.PUBLIC,
                    reaction=save_emoji,
                ),
            )
            for paper, card in zip(chosen, cards, strict=True)
        ),
    )


def list_title(day: date, cards: Sequence[PaperCard], what: str) -> str:
    """`what` from Hugging Face Daily Papers on `day`; the demo sample has no real day."""
    if any(card.is_demo for card in cards):
        return f"{what} from the offline demo sample"
    return f"{what} from Hugging Face Daily Papers, {day:%A %d %B %Y}"


class PostUnderway(Exception):
    """A post run now in this channel is being sent already; this one would repeat it."""


# Longer than a post run now takes (11 messages at 1 a second, and rate limits waited out);
# a process that died sending one holds the channel's next post-now up that long at most.
MANUAL_POST_LEASE = timedelta(minutes=5)


def _post_lease(channel: ChannelRef) -> str:
    """The lease a channel's post run now holds while it is sent (within the column's size)."""
    where = f"{channel.scope.platform}:{channel.scope.workspace}:{channel.channel}"
    if len(where) > LEASE_NAME_LENGTH - len("post:"):
        where = hashlib.sha256(where.encode()).hexdigest()[:40]
    return f"post:{where}"


@dataclass(frozen=True)
class DuePost:
    """A channel's daily post to send now: from `day`'s list (None: the newest); with
    `give_up`, a missing list is said instead of waited for; `key` marks a scheduled one."""

    channel: ChannelRef
    day: date | None = None
    give_up: bool = False
    key: SendKey | None = None


@dataclass
class DailyPosts:
    """The daily post as a kind of delivery (`bot.delivery.runner.DeliveryKind`), and
    `/papers channel post-now`. A permanent delivery error (channel gone, bot removed) is
    the channel gone (`bot.lifecycle`): its posts stop and the admin who set them up is told."""

    store: Store
    outbound: Outbound
    default_count: int  # papers in a post whose channel has no count of its own
    save_emoji: str  # the name of the emoji that saves, offered under each paper
    clock: Callable[[], datetime]
    channel_gone: Callable[[ChannelGone], Awaitable[None]]  # `Lifecycle.channel_gone`
    # Each paper message is recorded before the next one is sent; on a busy morning hundreds
    # of posts are in flight, and the rows that arrive while one transaction commits share
    # the next (a transaction each costs more CPU than the send).
    _records: Batcher[PostRecord, None] = field(init=False)

    def __post_init__(self) -> None:
        self._records = Batcher(self._commit_posts)

    async def post(self, channel: ChannelRef) -> Delivered:
        """Post the newest list's papers the channel has not had, now: a person asked, so
        the ledger records it as manual. Raises PostUnderway while another such post to the
        channel is being sent."""

        async def send() -> Delivered:
            async with self.store.transaction() as repos:
                (step,) = await self._prepare(repos, [DuePost(channel)])
            return await step()

        async with self._alone(channel):
            return await manual_send(self.store, CHANNEL, channel, self.clock, send)

    @contextlib.asynccontextmanager
    async def _alone(self, channel: ChannelRef) -> AsyncIterator[None]:
        """Hold the channel's post lease, a row every process shares, while sending: two
        posts composed at once would both pick the papers neither has recorded yet."""
        name, holder = _post_lease(channel), secrets.token_hex(8)
        async with self.store.transaction() as repos:
            held = await repos.leases.acquire(name, holder, self.clock(), MANUAL_POST_LEASE)
        if not held:
            raise PostUnderway()
        try:
            yield
        finally:
            async with self.store.transaction() as repos:
                await repos.leases.release(name, holder)

    async def post_if_on(self, channel: ChannelRef) -> Delivered | None:
        """What the channel's daily post does at its time, run now; None while it is off."""
        scope = channel.scope
        async with self.store.reading() as repos:
            subscription = await repos.channels.subscription(
                scope.platform, scope.workspace, channel.channel
            )
        if subscription is None or not subscription.enabled:
            return None
        return await self.post(channel)

    async def prepare(self, repos: Repositories, claims: Sequence[Claim]) -> list[Send]:
        """The claimed posts, composed in the claims' transaction: a morning's posts share
        the lists they carry and a few queries. Each carries the list due at its slot's
        time, however late it first ran (caught up after no worker ran) or a retry runs."""
        plans = await self._plans(repos, [ChannelRef(c.scope, c.key.target) for c in claims])
        due = [
            DuePost(
                ChannelRef(claim.scope, claim.key.target),
                day=due_list_day(_slot_time(claim, plans.get(_where(claim.key)))),
                give_up=claim.give_up,
                key=claim.send_key,
            )
            for claim in claims
        ]
        return await self._prepare(repos, due, plans)

    async def record_post(self, post: PostRecord) -> None:
        """Record which message holds which paper (so a reaction names it and the paper is
        never posted there again); return once it is committed."""
        await self._records.submit(post)

    async def _commit_posts(self, posts: Sequence[PostRecord]) -> list[None]:
        async with self.store.transaction() as repos:
            await repos.channels.record_posts(posts)
        return [None] * len(posts)

    async def _plans(
        self, repos: Repositories, channels: Sequence[ChannelRef]
    ) -> dict[tuple[str, str, str], ChannelPlanRow]:
        """The channels' subscriptions' plans, one query per platform (and IN list)."""
        plans: dict[tuple[str, str, str], ChannelPlanRow] = {}
        for platform in {channel.scope.platform for channel in channels}:
            pairs = [
                (channel.scope.workspace, channel.channel)
                for channel in channels
                if channel.scope.platform == platform
            ]
            for (workspace, channel), plan in (await repos.channels.plans(platform, pairs)).items():
                plans[(platform, workspace, channel)] = plan
        return plans

    async def _prepare(
        self,
        repos: Repositories,
        due: Sequence[DuePost],
        plans: dict[tuple[str, str, str], ChannelPlanRow] | None = None,
    ) -> list[Send]:
        if plans is None:
            plans = await self._plans(repos, [post.channel for post in due])
        now = self.clock()
        requests = [
            DailyRequest(
                post.channel,
                self._plan(plans.get(_where(post.channel))),
                post.day,
                post.key.retry_since if post.key else None,
            )
            for post in due
        ]
        composed = await compose_daily_posts(repos, requests, self.save_emoji, now)
        return [
            self._step(post, await self._resumable(repos, post, answer, now))
            for post, answer in zip(due, composed, strict=True)
        ]

    def _plan(self, row: ChannelPlanRow | None) -> ChannelPlan:
        if row is None:  # no subscription: a post-now in a channel that never turned it on
            return ChannelPlan(self.default_count)
        return ChannelPlan(row.count, row.topics)

    async def _resumable(
        self,
        repos: Repositories,
        due: DuePost,
        composed: DailyPost | ListMissing | None,
        now: datetime,
    ) -> ResumableSend | ListMissing:
        """What sending `composed` takes: its messages (a notice when the list is missing and
        the post gives up waiting), or the ListMissing to wait on."""
        channel = due.channel
        if isinstance(composed, ListMissing):
            if not due.give_up:
                return composed
            notice = Message(
                text="No trending papers today: Hugging Face has not published its Daily "
                f"Papers list for {composed.day:%A %d %B} yet.",
                lines=("I'll post the next list at the usual time.",),
                visibility=Visibility.PUBLIC,
            )
            return ResumableSend(channel, "notice", (Part("notice", notice),), note="list missing")
        if composed is None:
            return ResumableSend(channel, "header")
        recorded: set[int] = set()
        if due.key is not None and due.key.retry_since is not None:
            # A retry: papers out and recorded by an earlier attempt are done, whether or not
            # the platform can list what went out (Discord cannot).
            scope = channel.scope
            recorded = await repos.channels.posted_papers(
                scope.platform, scope.workspace, channel.channel, [p for p, _ in composed.papers]
            )
        papers = [
            Part(f"paper:{paper_id}", message, functools.partial(self._record, due, paper_id, now))
            for paper_id, message in composed.papers
            if paper_id not in recorded
        ]
        return ResumableSend(
            channel, "header", (Part("header", composed.header), *papers), len(composed.papers)
        )

    async def _record(self, due: DuePost, paper_id: int, now: datetime, ref: MessageRef) -> None:
        platform, workspace, channel = _where(due.channel)
        await self.record_post(
            PostRecord(platform, workspace, channel, ref.message_id, paper_id, now)
        )

    def _step(self, due: DuePost, send: ResumableSend | ListMissing) -> Send:
        async def step() -> Delivered:
            if isinstance(send, ListMissing):
                raise send
            try:
                return await send.run(self.outbound, due.key)
            except DeliveryError as error:
                if error.permanent:
                    await self.channel_gone(lost_channel(due.channel, error))
                raise

        return step


def _where(at: ChannelRef | DeliveryKey) -> tuple[str, str, str]:
    if isinstance(at, DeliveryKey):
        return at.platform, at.workspace, at.target
    return at.scope.platform, at.scope.workspace, at.channel


def _slot_time(claim: Claim, plan: ChannelPlanRow | None) -> datetime:
    """When the claim's slot was due: its local time on its local day (the period). A slot
    fired late (no worker ran at its time, APScheduler's misfire grace) is due no later than
    that; when the subscription is gone, or its time now falls after the first run (changed
    since), the first run stands."""
    if plan is None:
        return claim.first_run
    hour, minute = (int(part) for part in plan.post_time.split(":"))
    at = datetime.combine(
        date.fromisoformat(claim.key.period), time(hour, minute), tzinfo=ZoneInfo(plan.timezone)
    )
    return min(at, claim.first_run)
