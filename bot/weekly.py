"""The weekly team post: once a week, one message in a channel (on Discord, as many as keep
every card whole) with what members of its workspace saved most in the last 7 days and the
week's most upvoted papers the channel was not posted yet; and the weekly post as a kind of
scheduled delivery (`WeeklyPosts`), whose sending `bot.delivery` does once.

"Not posted yet" reads the channel's daily posts (every paper message they sent is recorded,
`storage.channels`), so a paper a daily post carried is not offered again at the week's end.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bot.cards import demo_note
from bot.daily import LIST_OUT_UTC
from bot.delivery.manual import manual_send
from bot.delivery.resumable import ResumableSend, SendKey, spread_papers
from bot.delivery.runner import Claim, Send
from bot.events import ChannelGone, ChannelRef, MessageRef
from bot.lifecycle import lost_channel
from bot.messages import Message, Visibility
from bot.ports import Delivered, DeliveryError, Outbound
from bot.rankings import Ranked, most_saved, most_upvoted
from storage.deliveries import WEEKLY
from storage.store import Repositories, Store

WEEK_DAYS = 7
MAX_SAVED = 5
MAX_TRENDING = 5  # with MAX_SAVED, within Discord's 10 embeds a message when summaries are short
# The most upvoted papers looked at for the trending part: a week of daily posts carries at
# most 70 papers (10 a day), so a pool this deep still holds MAX_TRENDING the channel lacks.
TRENDING_POOL = 100
LEAD = "weekly"  # the post in one message, and what the ledger records as sent
# How long the papers a weekly post carried are remembered (`weekly_items`). Only a retry of
# that post reads them (those sent since its slot first ran, `_resumable`), and a retry comes
# within the slot's day; a channel whose post is still to be retried (its workspace left and
# may come back to it) keeps them all whatever their age (`bot.housekeeping` forgets). Two
# weeks: the next week's post has long been sent.
ITEMS_KEPT = timedelta(days=14)


@dataclass(frozen=True)
class TeamPost:
    """A composed weekly post."""

    message: Message
    paper_ids: tuple[int, ...]  # its cards' papers, in order


async def compose_weekly_post(
    repos: Repositories, channel: ChannelRef, now: datetime
) -> TeamPost | None:
    """The weekly post `channel` gets for the week ending at `now`; None when there is
    nothing to say (nothing saved, and no trending paper it was not posted). Saves after
    `now` do not count, so a retry composes the team's part its first attempt did.

    A post moved to a later day of the week its last one went out in (or turned off and on)
    repeats nothing: the team's part counts the saves since that post, and the trending part
    leaves out the papers weekly posts carried, as those the daily posts did."""
    scope = channel.scope
    where = (scope.platform, scope.workspace, channel.channel)
    week_ago = now - timedelta(days=WEEK_DAYS)
    previous = await repos.deliveries.last_sent_before(WEEKLY, *where, now)
    since = max(week_ago, previous) if previous is not None else week_ago
    saved = await most_saved(repos, scope, since, MAX_SAVED, until=now)
    first, last = await _week_lists(repos, now)
    pool = await most_upvoted(repos, first, last, TRENDING_POOL)
    candidates = [entry.paper_id for entry in pool]
    posted = await repos.channels.posted_papers(*where, candidates)
    carried = await repos.weekly.carried(*where, candidates, before=now)
    shown = posted | carried | {entry.paper_id for entry in saved}  # a saved paper appears once
    trending = [entry for entry in pool if entry.paper_id not in shown][:MAX_TRENDING]
    if not saved and not trending:
        return None
    # A week's slot claimed a moment after last week's is no "since the last post".
    since_last = since - week_ago > timedelta(hours=1)
    message = weekly_message(first, last, saved, trending, since_last=since_last)
    return TeamPost(message, tuple(entry.paper_id for entry in (*saved, *trending)))


async def _week_lists(repos: Repositories, now: datetime) -> tuple[date, date]:
    """`week_list_days`; a store holding only the demo sample (offline) serves the sample's
    list, whatever its day and the hour, as the daily post does (`bot.daily.due_list`)."""
    first, last = week_list_days(now)
    if await repos.papers.latest_listing_day(demo=False) is not None:
        return first, last
    newest = await repos.papers.latest_listing_day()
    if newest is None:
        return first, last
    return newest - timedelta(days=WEEK_DAYS - 1), newest


def week_list_days(now: datetime) -> tuple[date, date]:
    """The first and last Daily Papers list day a post at `now` covers: the 7 days up to the
    newest list out by then (from `LIST_OUT_UTC`, as the daily post reads it). A post before
    that hour (Monday morning in Europe, Sunday evening in the Americas) would otherwise take
    today's list half filled and drop the one of 7 days ago, whose papers the previous week's
    post saw half filled too; consecutive posts at one time cover each list once, whole."""
    at = now.astimezone(UTC)
    last = at.date() if at.time() >= LIST_OUT_UTC else at.date() - timedelta(days=1)
    return last - timedelta(days=WEEK_DAYS - 1), last


def weekly_message(
    first: date,
    last: date,
    saved: Sequence[Ranked],
    trending: Sequence[Ranked],
    *,
    since_last: bool = False,
) -> Message:
    """The post: the team's most saved papers first ("saved by N", counts only), then the
    trending ones, as one list of cards every adapter renders as it renders any list.
    `since_last`: the team's part counts the saves since the last weekly post, less than a
    week ago."""
    lines = []
    if saved:
        when = "since the last weekly post" if since_last else f"in the last {WEEK_DAYS} days"
        lines.append(f"First, what this team saved most {when}.")
    if trending:
        lead = "Then the" if saved else "The"
        lines.append(f"{lead} week's most upvoted Daily Papers not posted here yet.")
    lines.append("Save one for yourself with `/papers save <arXiv id>`.")
    cards = tuple(entry.card for entry in (*saved, *trending))
    return Message(
        text=f"The week in papers, {first:%d %b} to {last:%d %b %Y}",
        lines=tuple(lines),
        cards=cards,
        note=demo_note(cards),
        visibility=Visibility.PUBLIC,
    )


@dataclass
class WeeklyPosts:
    """The weekly post as a kind of delivery (`bot.delivery.runner.DeliveryKind`), and the
    console's `/post-weekly`. A permanent delivery error (channel gone, bot removed) is the
    channel gone (`bot.lifecycle`): its posts stop and the admin who set them up is told."""

    store: Store
    outbound: Outbound
    clock: Callable[[], datetime]
    channel_gone: Callable[[ChannelGone], Awaitable[None]]  # `Lifecycle.channel_gone`

    async def post(self, channel: ChannelRef) -> Delivered:
        """Post the week's papers to `channel` now: a person asked, so the ledger records it
        as manual."""

        async def send() -> Delivered:
            async with self.store.transaction() as repos:
                resumable = await self._resumable(repos, channel, self.clock(), None)
            return await self._run(channel, resumable, None)

        return await manual_send(self.store, WEEKLY, channel, self.clock, send)

    async def prepare(self, repos: Repositories, claims: Sequence[Claim]) -> list[Send]:
        """The claimed posts, composed in the claims' transaction. The week ends when the
        slot first ran, so a retry composes the post that run chose."""
        steps: list[Send] = []
        for claim in claims:
            channel = ChannelRef(claim.scope, claim.key.target)
            key = claim.send_key
            send = await self._resumable(repos, channel, claim.first_run, key)
            steps.append(functools.partial(self._run, channel, send, key))
        return steps

    async def _resumable(
        self, repos: Repositories, channel: ChannelRef, now: datetime, key: SendKey | None
    ) -> ResumableSend:
        """The post as the messages its platform sends it in, each recording its papers once
        it is out. A retry sends only the papers not recorded since its slot first ran:
        Discord cannot list what an earlier attempt sent (Slack can, `Outbound.sent_keys`)
        and forgets a nonce within minutes. Should the trending part have moved meanwhile
        (upvotes change), a paper already out is still never posted twice."""
        post = await compose_weekly_post(repos, channel, now)
        if post is None:
            return ResumableSend(channel, LEAD)
        out: set[int] = set()
        if key is not None and key.retry_since is not None:
            scope = channel.scope
            out = await repos.weekly.carried(
                scope.platform, scope.workspace, channel.channel, post.paper_ids,
                since=key.retry_since,
            )  # fmt: skip
        record = functools.partial(self._record_sent, channel)
        return spread_papers(
            self.outbound, channel, LEAD, post.message, post.paper_ids, out, record
        )

    async def _record_sent(
        self, channel: ChannelRef, paper_ids: Sequence[int], ref: MessageRef
    ) -> None:
        scope = channel.scope
        async with self.store.transaction() as repos:
            await repos.weekly.record_sent(
                scope.platform, scope.workspace, channel.channel, paper_ids, self.clock()
            )

    async def _run(
        self, channel: ChannelRef, send: ResumableSend, key: SendKey | None
    ) -> Delivered:
        try:
            return await send.run(self.outbound, key)
        except DeliveryError as error:
            if error.permanent:
                await self.channel_gone(lost_channel(channel, error))
            raise
