"""What a workspace saved most, and what Hugging Face upvoted most, over recent days: one rule
for `/papers team`, `/papers week|month` and the weekly team post."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from bot.cards import paper_card
from bot.events import Scope
from bot.messages import PaperCard
from storage.store import Repositories


@dataclass(frozen=True)
class Ranked:
    """A paper of a ranking: its row id (to tell papers apart) and its card."""

    paper_id: int
    card: PaperCard


def listing_days(now: datetime, days: int) -> tuple[date, date]:
    """The first and last Daily Papers list day of the last `days` days, today included."""
    last = now.date()
    return last - timedelta(days=days - 1), last


async def most_saved(
    repos: Repositories,
    scope: Scope,
    since: datetime | None,
    limit: int,
    *,
    until: datetime | None = None,
) -> list[Ranked]:
    """The papers members of `scope` saved since `since` (ever, when None) and up to `until`
    (when given), the most members first, then the latest save; each card says how many
    saved it, never who."""
    ranked = await repos.users.team_saves(
        scope.platform, scope.workspace, since, limit, until=until
    )
    return [Ranked(paper.id, replace(paper_card(paper), saved_by=n)) for paper, n in ranked]


async def most_upvoted(repos: Repositories, first: date, last: date, limit: int) -> list[Ranked]:
    """The most upvoted papers listed from `first` to `last`, each with its highest upvotes
    of those days (`PaperRepository.most_upvoted_between`)."""
    ranked = await repos.papers.most_upvoted_between(first, last, limit)
    return [
        Ranked(paper.id, replace(paper_card(paper), upvotes=upvotes))
        if upvotes is not None
        else Ranked(paper.id, paper_card(paper))
        for paper, upvotes in ranked
    ]
