"""Save papers by link or id: the one path for `/papers save`, and for the messages a user
will ask to save papers from (a reaction on a pasted link, a message shortcut, a context
menu), whose ids `bot.links.find_paper_ids` reads.

`save_papers` saves them for the user (`save_linked_papers` those a message's text links to):
papers in the store at once; papers not in it are fetched (`PaperLookup`: Hugging Face, then
arXiv), stored and saved; a paper nobody can give yet is kept by id as a pending save, which
`complete_pending_saves` (run after each Daily Papers refresh) completes when the paper can be
fetched, giving up after MAX_ATTEMPTS answers that it is unknown or MAX_AGE; `LateSaves` then
tells the member by DM.
`outcome_message` says what happened, for the user alone. `unsave_papers` undoes saves (and
drops pending ones), and `unsave_message` says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.cards import demo_note, paper_cards, title_text
from bot.events import Scope, UserRef
from bot.links import MAX_IDS, find_paper_ids, reference_id
from bot.messages import Message, counted
from bot.ports import DeliveryError, Outbound
from bot.sources.lookup import Lookup, PaperLookup
from storage.models import Paper, SavedLater
from storage.store import Store

log = logging.getLogger(__name__)

SAVE_BUDGET = 20.0  # seconds a save waits for Hugging Face and arXiv before keeping the rest
RETRY_BUDGET = 120.0  # seconds one retry of pending saves may take
RETRY_AFTER = timedelta(hours=1)  # a pending save is asked for again at most this often
MAX_ATTEMPTS = 48  # answers "not known" before a pending save is given up
MAX_AGE = timedelta(days=7)  # and, however the sources answered, after this long
RETRY_MOST = 50  # ids asked for in one retry (one arXiv request)
TELL_HOLD = timedelta(minutes=2)  # a process telling of late saves holds them this long
TELL_AGAIN = timedelta(minutes=10)  # after a DM that failed
TELL_TRIES = 5
# Pending saves one member may have at once: each is retried for up to MAX_AGE, so ids that
# never resolve would otherwise pile up for as long as someone keeps pasting them.
MAX_PENDING = 100


@dataclass(frozen=True)
class SaveOutcome:
    """What saving a list of papers did, each id in the order asked.

    `saved`: newly saved; `already`: were saved before; `pending`: kept by id, to be saved
    once fetched (`unreachable` the subset that could not be asked for right now, the rest
    are unknown to Hugging Face and arXiv); `unknown`: not arXiv ids nor stored papers (a
    demo id no longer stored), not kept; `not_kept`: would be pending, but the member
    already has MAX_PENDING; `capped`: the text named more than MAX_IDS papers.
    """

    saved: tuple[Paper, ...] = ()
    already: tuple[Paper, ...] = ()
    pending: tuple[str, ...] = ()
    unreachable: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    capped: bool = False
    not_kept: tuple[str, ...] = ()

    @property
    def named(self) -> int:
        counts = (self.saved, self.already, self.pending, self.unknown, self.not_kept)
        return sum(len(ids) for ids in counts)


async def save_papers(
    store: Store,
    lookup: PaperLookup | None,
    user: UserRef,
    arxiv_ids: Sequence[str],
    now: datetime,
    *,
    capped: bool = False,
    budget: float = SAVE_BUDGET,
) -> SaveOutcome:
    """Save the papers `arxiv_ids` for `user`, fetching those not stored (see the module)."""
    unique = list(dict.fromkeys(arxiv_ids))
    ids, capped = unique[:MAX_IDS], capped or len(unique) > MAX_IDS
    platform, workspace = user.scope.platform, user.scope.workspace
    fetchable, answer = await _fetch_unstored(store, lookup, ids, budget)
    saved: list[Paper] = []
    already: list[Paper] = []
    pending: list[str] = []
    unknown: list[str] = []
    not_kept: list[str] = []
    async with store.transaction() as repos:
        if answer.found:
            await repos.papers.upsert(list(answer.found.values()), now)
        papers = await repos.papers.by_arxiv_ids(ids)
        # The member's pending saves, read only when one may be added (the cap).
        keeping = any(i not in papers and i in fetchable for i in ids)
        pending_now = await repos.pending.of_user(platform, workspace, user.user) if keeping else []
        held = {row.arxiv_id for row in pending_now}
        for arxiv_id in ids:
            paper = papers.get(arxiv_id)
            if paper is not None:
                added = await repos.users.save(platform, workspace, user.user, paper.id, now)
                (saved if added else already).append(paper)
            elif arxiv_id not in fetchable:
                unknown.append(arxiv_id)
            elif arxiv_id not in held and len(held) >= MAX_PENDING:
                not_kept.append(arxiv_id)
            else:
                missing = arxiv_id in answer.missing
                await repos.pending.keep(
                    platform, workspace, user.user, arxiv_id, now, missing=missing
                )
                held.add(arxiv_id)
                pending.append(arxiv_id)
        if saved or already:
            await repos.pending.drop(
                platform, workspace, user.user, [p.arxiv_id for p in saved + already]
            )
    unreachable = tuple(i for i in pending if i not in answer.missing)
    return SaveOutcome(
        tuple(saved), tuple(already), tuple(pending), unreachable, tuple(unknown), capped,
        tuple(not_kept),
    )  # fmt: skip


async def save_linked_papers(
    store: Store,
    lookup: PaperLookup | None,
    user: UserRef,
    text: str,
    now: datetime,
) -> SaveOutcome:
    """Save for `user` the papers `text` links to (`bot.links`); an empty outcome (nothing
    `named`) when it links to none."""
    found = find_paper_ids(text)
    if not found.ids:
        return SaveOutcome()
    return await save_papers(store, lookup, user, found.ids, now, capped=found.capped)


@dataclass(frozen=True)
class UnsaveOutcome:
    """What unsaving `asked` did: `removed` from the saved papers, `dropped` pending saves."""

    asked: tuple[str, ...]
    removed: tuple[Paper, ...] = ()
    dropped: int = 0


async def unsave_papers(store: Store, user: UserRef, arxiv_ids: Sequence[str]) -> UnsaveOutcome:
    """Remove the papers `arxiv_ids` from `user`'s saved papers and pending saves."""
    ids = tuple(dict.fromkeys(arxiv_ids))
    platform, workspace = user.scope.platform, user.scope.workspace
    removed: list[Paper] = []
    async with store.transaction() as repos:
        papers = await repos.papers.by_arxiv_ids(ids)
        for arxiv_id in ids:
            paper = papers.get(arxiv_id)
            if paper and await repos.users.unsave(platform, workspace, user.user, paper.id):
                removed.append(paper)
        dropped = await repos.pending.drop(platform, workspace, user.user, ids)
    return UnsaveOutcome(ids, tuple(removed), dropped)


async def unsave_linked_papers(store: Store, user: UserRef, text: str) -> UnsaveOutcome:
    """Unsave for `user` the papers `text` links to: what undoes `save_linked_papers`."""
    return await unsave_papers(store, user, find_paper_ids(text).ids)


async def papers_by_id(
    store: Store,
    lookup: PaperLookup | None,
    arxiv_ids: Sequence[str],
    now: datetime,
    *,
    budget: float = SAVE_BUDGET,
) -> dict[str, Paper]:
    """The papers `arxiv_ids` name, by id: those stored, and those not stored that `lookup`
    fetches (stored then, as a save would). Ids nobody knows are left out."""
    ids = list(dict.fromkeys(arxiv_ids))
    _, answer = await _fetch_unstored(store, lookup, ids, budget)
    async with store.transaction() as repos:
        if answer.found:
            await repos.papers.upsert(list(answer.found.values()), now)
        return dict(await repos.papers.by_arxiv_ids(ids))


async def _fetch_unstored(
    store: Store, lookup: PaperLookup | None, ids: list[str], budget: float
) -> tuple[list[str], Lookup]:
    """The ids of `ids` that are arXiv ids of papers not stored, and what `lookup` (if any)
    answered for them within `budget` seconds."""
    async with store.reading() as repos:
        stored = set(await repos.papers.by_arxiv_ids(ids))
    fetchable = [i for i in ids if i not in stored and _is_arxiv_id(i)]
    answer = Lookup(unreachable=tuple(fetchable))
    if fetchable and lookup is not None:
        answer = await lookup.fetch(fetchable, within=budget)
    return fetchable, answer


def outcome_message(outcome: SaveOutcome) -> Message:
    """What a save did, for the user alone: the papers saved as cards, then a line for each
    kind of paper that was not."""
    papers = outcome.saved + outcome.already
    lines: list[str] = []
    if outcome.already and outcome.saved:
        lines.append(f"Already saved before: {_ids(p.arxiv_id for p in outcome.already)}.")
    waiting = [i for i in outcome.pending if i not in outcome.unreachable]
    if waiting:
        lines.append(
            f"Not found yet on Hugging Face or arXiv: {_ids(waiting)}. Kept as pending: "
            "it is saved as soon as it can be fetched (see `/papers saved`)."
        )
    if outcome.unreachable:
        lines.append(
            f"Hugging Face and arXiv could not be reached for {_ids(outcome.unreachable)}. "
            "Kept as pending: it is saved as soon as it can be fetched (see `/papers saved`)."
        )
    if outcome.unknown:
        lines.append(f"No such paper here: {_ids(outcome.unknown)}.")
    if outcome.not_kept:
        lines.append(
            f"Not kept: {_ids(outcome.not_kept)}. You already have {MAX_PENDING} papers "
            "waiting to be fetched; drop some with `/papers unsave <arXiv id>` (see "
            "`/papers saved`), or try again once they are saved."
        )
    if outcome.capped:
        lines.append(
            f"That names more than {MAX_IDS} papers: only the first {MAX_IDS} were looked at. "
            "Save the rest with `/papers save <link or arXiv id>`."
        )
    if outcome.saved:
        text = f"Saved {counted(len(outcome.saved), 'paper')}"
    elif outcome.already:
        text = f"Already in your saved papers: {counted(len(outcome.already), 'paper')}"
    elif outcome.pending:
        text = f"Nothing saved yet: {counted(len(outcome.pending), 'paper')} kept as pending"
    elif outcome.unknown or outcome.not_kept:
        text = "Nothing saved"
    else:
        text = (
            "That message has no paper link: links to arxiv.org, huggingface.co/papers or "
            "alphaxiv.org name papers, and so does arXiv:2501.12345."
        )
    if papers:
        lines.append("See them all with `/papers saved`.")
    cards = paper_cards(papers)
    return Message(text=text, cards=cards, lines=tuple(lines), note=demo_note(cards))


def unsave_message(outcome: UnsaveOutcome) -> Message:
    """What an unsave did, for the user alone: the titles removed, the pending saves dropped,
    or that none of them was saved."""
    if not (outcome.removed or outcome.dropped):
        return Message(text=f"Not in your saved papers: {_ids(outcome.asked)}")
    dropped = f"Dropped from your pending saves: {counted(outcome.dropped, 'paper')}"
    if not outcome.removed:
        return Message(text=dropped)
    lines = [title_text(paper) for paper in outcome.removed]
    if outcome.dropped:
        lines.append(f"{dropped}.")
    text = f"Removed from your saved papers: {counted(len(outcome.removed), 'paper')}"
    return Message(text=text, lines=tuple(lines))


@dataclass(frozen=True)
class RetryOutcome:
    saved: int = 0  # pending saves completed
    waiting: int = 0  # ids still not found
    given_up: int = 0  # pending saves given up in this run


async def complete_pending_saves(
    store: Store,
    lookup: PaperLookup | None,
    now: datetime,
    *,
    most: int = RETRY_MOST,
    budget: float = RETRY_BUDGET,
) -> RetryOutcome:
    """Try the pending saves that are due once more: those whose paper is stored now (a Daily
    Papers list or a search brought it) or can be fetched are saved; the rest wait, or are
    given up after MAX_ATTEMPTS or MAX_AGE."""
    async with store.reading() as repos:
        due = await repos.pending.due(now, retry_after=RETRY_AFTER, most=most)
    if not due:
        return RetryOutcome()
    _, answer = await _fetch_unstored(store, lookup, due, budget)
    async with store.transaction() as repos:
        if answer.found:
            await repos.papers.upsert(list(answer.found.values()), now)
        papers = await repos.papers.by_arxiv_ids(due)
        completed = 0
        for row in await repos.pending.take(list(papers)):
            paper = papers[row.arxiv_id]
            await repos.users.save(row.platform, row.workspace, row.user, paper.id, now)
            await repos.pending.saved_later(row.platform, row.workspace, row.user, paper.id, now)
            completed += 1
        given_up = 0
        for ids, missing in ((answer.missing, True), (answer.unreachable, False)):
            given_up += await repos.pending.record_attempt(
                [i for i in ids if i not in papers], now, missing=missing,
                max_attempts=MAX_ATTEMPTS, max_age=MAX_AGE,
            )  # fmt: skip
    waiting = len([i for i in due if i not in papers])
    if completed or given_up:
        log.info(
            "Pending saves: %d completed, %d papers still not found, %d given up",
            completed, waiting, given_up,
        )  # fmt: skip
    return RetryOutcome(completed, waiting, given_up)


def saved_later_message(papers: Sequence[Paper]) -> Message:
    """What a member is told of papers their pending saves brought in."""
    cards = paper_cards(papers)
    return Message(
        text=f"Saved now: {counted(len(papers), 'paper')} you asked for earlier",
        cards=cards,
        lines=("They could not be fetched when you asked. See them all with `/papers saved`.",),
        note=demo_note(cards),
    )


class LateSaves:
    """Pending saves completed later (`complete_pending_saves`, after a refresh): their
    member is told by DM, once, of the papers saved for them since. Each process delivering
    to a platform tells its members (`Paperboy.keep_working`); a DM that fails is tried again
    after TELL_AGAIN, TELL_TRIES times at most."""

    def __init__(self, store: Store, outbound: Outbound, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.outbound = outbound
        self.clock = clock

    async def tell(self, platform: str) -> int:
        """DM each member of `platform` with papers saved for them since; how many were
        told. Raises what the database raises."""
        now = self.clock()
        async with self.store.transaction() as repos:
            due = await repos.pending.take_saved_later(platform, now, hold=TELL_HOLD, most=100)
            papers = await repos.papers.by_ids({row.paper_id for row in due})
        by_member: dict[UserRef, list[SavedLater]] = {}
        for row in due:
            member = UserRef(Scope(platform, row.workspace), row.user)
            by_member.setdefault(member, []).append(row)
        told = 0
        for member, rows in by_member.items():
            ids = [row.id for row in rows]
            saved = [papers[row.paper_id] for row in rows if row.paper_id in papers]
            try:
                await self.outbound.send_dm(member, saved_later_message(saved))
            except DeliveryError as error:
                attempts = max(row.attempts for row in rows) + 1
                async with self.store.transaction() as repos:
                    if error.permanent or attempts >= TELL_TRIES:
                        log.info("not told of late saves: %s (%s)", member.user, error.reason)
                        await repos.pending.told(ids)
                    else:
                        await repos.pending.tell_later(ids, attempts, now + TELL_AGAIN)
                continue
            async with self.store.transaction() as repos:
                await repos.pending.told(ids)
            told += 1
        return told


def _is_arxiv_id(value: str) -> bool:
    return reference_id(value) == value


def _ids(ids: Iterable[str]) -> str:
    return ", ".join(ids)
