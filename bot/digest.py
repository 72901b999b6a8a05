"""DM digests: new trending papers on the topics a user follows, none sent to them before."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.cards import demo_note, paper_card
from bot.daily import matching_any
from bot.events import UserRef
from bot.messages import Message, Visibility
from bot.ports import Delivered, Outbound, SendKey
from bot.resume import already_sent, send_once, sent_earlier
from storage.store import Repositories, Store

# How far back a digest looks: a daily digest covers a weekend, a weekly one its week.
WINDOW = {"daily": timedelta(days=3), "weekly": timedelta(days=8)}
MAX_PAPERS = 10


@dataclass(frozen=True)
class Digest:
    message: Message
    paper_ids: tuple[int, ...]


async def compose_digest(
    repos: Repositories, user: UserRef, cadence: str, now: datetime
) -> Digest | None:
    """What `user`'s digest holds at `now`, or None when nothing is new for them."""
    scope = user.scope
    topics = tuple(await repos.users.following(scope.platform, scope.workspace, user.user))
    if not topics:
        return None
    last = now.date()
    candidate_ids = await repos.papers.listed_between(last - WINDOW[cadence], last)
    if not candidate_ids:
        # No list in the window (a stale store): fall back to the newest list there is.
        newest = await repos.papers.latest_listing_day()
        if newest is None:
            return None
        candidate_ids = await repos.papers.listed_between(newest, newest)
    sent = await repos.users.already_sent(scope.platform, scope.workspace, user.user, candidate_ids)
    fresh = [pid for pid in candidate_ids if pid not in sent]
    candidates = sorted(
        (await repos.papers.by_ids(fresh)).values(),
        key=lambda paper: (paper.upvotes or 0, paper.id),
        reverse=True,
    )
    papers = (await matching_any(repos, topics, candidates))[:MAX_PAPERS]
    if not papers:
        return None
    cards = tuple(paper_card(paper) for paper in papers)
    plural = "s" if len(papers) != 1 else ""
    message = Message(
        text=f"Your paperboy digest: {len(papers)} new paper{plural} on {', '.join(topics)}",
        cards=cards,
        note=demo_note(cards)
        or "Change topics with `/papers follow` / `unfollow`, timing with `/papers digest`.",
        visibility=Visibility.PUBLIC,
    )
    return Digest(message, tuple(paper.id for paper in papers))


async def send_digest(
    store: Store,
    outbound: Outbound,
    user: UserRef,
    cadence: str,
    now: datetime,
    key: SendKey | None = None,
) -> Delivered:
    """Compose and DM the digest; a retry of a scheduled one (`key`) that finds it already
    out only records it."""
    async with store.transaction() as repos:
        digest = await compose_digest(repos, user, cadence, now)
    if digest is None:
        return await sent_earlier(outbound, user, key, "dm")
    sent = await already_sent(outbound, user, key)
    ref = await send_once(outbound.send_dm, user, digest.message, key, "dm", sent)
    scope = user.scope
    async with store.transaction() as repos:
        await repos.users.record_sent(
            scope.platform, scope.workspace, user.user, digest.paper_ids, now
        )
    return Delivered(len(digest.paper_ids), ref)
