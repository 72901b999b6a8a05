"""Daily channel posts: compose the top papers of the latest list, post them, record them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from bot.cards import demo_note, paper_card
from bot.events import ChannelRef
from bot.messages import DailyPost, Message, PaperCard, Visibility
from bot.ports import Delivered, Outbound, SendKey
from bot.post_recorder import PostRecorder
from bot.resume import already_sent, send_once
from bot.search import search_terms
from storage.channels import PostRecord
from storage.models import Paper
from storage.store import Repositories, Store

PUBLISHING_DAYS = "mon-fri"  # Hugging Face publishes Daily Papers on weekdays
# A day's list fills up from 00:00 UTC; by 08:00 UTC it holds most of its papers (the
# archived responses fetched at 07:45 UTC carry full lists), so a post from then on gets it.
LIST_OUT_UTC = time(8, 0)


class ListMissing(Exception):
    """The Daily Papers list a scheduled post is due to carry is not in the store yet."""

    def __init__(self, day: date) -> None:
        super().__init__(f"Daily Papers list for {day} not in yet")
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
    header = Message(
        text=list_title(day, cards, f"Trending papers{topics}"),
        lines=(f"Top {len(chosen)}. React with {save_emoji} to save one to `/papers saved`.",),
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


async def deliver_daily_post(
    store: Store,
    recorder: PostRecorder,
    outbound: Outbound,
    channel: ChannelRef,
    post: DailyPost,
    now: datetime,
    key: SendKey | None = None,
) -> Delivered:
    """Send the header and each paper, recording every paper message as soon as it is out so
    a reaction on it names the paper and the paper is never posted here again. A retry of a
    scheduled post (`key`) skips the messages the platform shows already went out."""
    sent = await already_sent(outbound, channel, key)
    header = await send_once(outbound.post, channel, post.header, key, "header", sent)
    scope = channel.scope
    recorded: set[int] = set()
    if key is not None and key.retry_since is not None:
        # A retry: papers out and recorded by an earlier attempt are done, whether or not the
        # platform can list what went out (Discord cannot).
        async with store.transaction() as repos:
            recorded = await repos.channels.posted_papers(
                scope.platform, scope.workspace, channel.channel, [p for p, _ in post.papers]
            )
    for paper_id, message in post.papers:
        if paper_id in recorded:
            continue
        ref = await send_once(outbound.post, channel, message, key, f"paper:{paper_id}", sent)
        await recorder.record(
            PostRecord(scope.platform, scope.workspace, channel.channel, ref.message_id,
                       paper_id, now)
        )  # fmt: skip
    return Delivered(len(post.papers), header)
