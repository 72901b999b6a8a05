"""A user's own papers and topics: follow, unfollow, following, save, saved, unsave, export."""

from __future__ import annotations

from bot.bibtex import bibtex_entries
from bot.cards import demo_note, paper_cards
from bot.commands.context import CommandContext
from bot.commands.parser import (
    ExportBibtex,
    Follow,
    Following,
    Saved,
    SavePapers,
    Unfollow,
    Unsave,
)
from bot.messages import Attachment, Message, counted
from bot.ports import DeliveryError, FileToSend
from bot.saving import outcome_message, save_papers, unsave_papers
from storage.models import PendingSave

BIB_NAME, BIB_TYPE = "paperboy-saved.bib", "application/x-bibtex"
# The entries shown beside a .bib file sent by DM: what one Slack section holds as code.
PREVIEW_CHARACTERS = 2500
# Saved papers shown as cards: as many as every platform shows in one message (Discord: 10
# embeds), so no renderer drops any and one line says how many more there are.
MAX_LISTED = 10
# Each followed topic is one more full-text match in every digest run; a few dozen cover any
# reader's interests.
MAX_FOLLOWED = 25


async def follow(ctx: CommandContext, command: Follow) -> Message:
    async with ctx.store.transaction() as repos:
        topics = await repos.users.following(ctx.platform, ctx.workspace, ctx.user)
        if command.topic not in topics and len(topics) >= MAX_FOLLOWED:
            return Message(
                text=f"You already follow {len(topics)} topics, the most there can be.",
                lines=("Unfollow one first: `/papers unfollow <topic>`.",),
            )
        added = await repos.users.follow(
            ctx.platform, ctx.workspace, ctx.user, command.topic, ctx.now
        )
        digest = await repos.users.digest_setting(ctx.platform, ctx.workspace, ctx.user)
    text = (
        f"You now follow “{command.topic}”." if added else f"You already follow “{command.topic}”."
    )
    hint = (
        "New papers on it will be in your digest."
        if digest
        else "Turn on your DM digest with `/papers digest daily 08:00`."
    )
    return Message(text=text, lines=(hint,))


async def unfollow(ctx: CommandContext, command: Unfollow) -> Message:
    async with ctx.store.transaction() as repos:
        removed = await repos.users.unfollow(ctx.platform, ctx.workspace, ctx.user, command.topic)
    if removed:
        return Message(text=f"You no longer follow “{command.topic}”.")
    return Message(text=f"You don't follow “{command.topic}”. See `/papers following`.")


async def following(ctx: CommandContext, command: Following) -> Message:
    async with ctx.store.reading() as repos:
        topics = await repos.users.following(ctx.platform, ctx.workspace, ctx.user)
    if not topics:
        return Message(text="You follow no topics yet. Try `/papers follow latency`.")
    return Message(text=f"You follow {counted(len(topics), 'topic')}:", lines=tuple(topics))


async def save(ctx: CommandContext, command: SavePapers) -> Message:
    outcome = await save_papers(
        ctx.store, ctx.lookup, ctx.actor, command.paper_ids, ctx.now, capped=command.capped
    )
    return outcome_message(outcome)


async def saved(ctx: CommandContext, command: Saved) -> Message:
    async with ctx.store.reading() as repos:
        papers = await repos.users.saved(ctx.platform, ctx.workspace, ctx.user)
        pending = await repos.pending.of_user(ctx.platform, ctx.workspace, ctx.user)
    if not papers and not pending:
        return Message(
            text="You have no saved papers. React with the save emoji on a posted paper to save "
            "it, or save one by link: `/papers save <link or arXiv id>`."
        )
    cards = paper_cards(papers[:MAX_LISTED])
    more = len(papers) - len(cards)
    lines = [f"…and {more} more: `/papers export bibtex` lists them all."] if more > 0 else []
    lines += pending_lines(pending)
    text = f"Your saved papers ({len(papers)})" if papers else "You have no saved papers yet."
    return Message(text=text, cards=cards, lines=tuple(lines), note=demo_note(cards))


MAX_PENDING_LISTED = 20


def pending_lines(pending: list[PendingSave]) -> list[str]:
    """`saved`'s lines for pending saves: those still tried, then those given up."""
    waiting = [row.arxiv_id for row in pending if row.given_up_at is None]
    given_up = [row.arxiv_id for row in pending if row.given_up_at is not None]
    lines = []
    if waiting:
        lines.append(
            f"Pending ({len(waiting)}), saved as soon as Hugging Face or arXiv has them: "
            + _listed(waiting)
        )
    if given_up:
        lines.append(
            f"Not found after trying for a while ({len(given_up)}): {_listed(given_up)}. "
            "`/papers save <id>` tries again, `/papers unsave <id>` drops one."
        )
    return lines


def _listed(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_PENDING_LISTED])
    more = len(ids) - MAX_PENDING_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


async def unsave(ctx: CommandContext, command: Unsave) -> Message:
    outcome = await unsave_papers(ctx.store, ctx.actor, [command.paper_id])
    if outcome.dropped and not outcome.removed:
        return Message(text=f"Dropped {command.paper_id} from your pending saves.")
    if not outcome.removed:
        return Message(text=f"{command.paper_id} is not in your saved papers.")
    return Message(text=f"Removed {command.paper_id} from your saved papers.")


async def export_bibtex(ctx: CommandContext, command: ExportBibtex) -> Message:
    """The saved papers as a .bib file: in the answer where it can carry one to the caller
    alone, else in their DMs, with the first entries (whole ones) shown in the answer."""
    async with ctx.store.reading() as repos:
        papers = await repos.users.saved(ctx.platform, ctx.workspace, ctx.user)
    if not papers:
        return Message(text="You have no saved papers to export.")
    entries = bibtex_entries(papers)
    title = f"BibTeX for your {counted(len(papers), 'saved paper')}"
    if ctx.event.files_in_answer:
        return Message(text=title, attachment=Attachment(BIB_NAME, "\n".join(entries), BIB_TYPE))
    try:
        whole = "\n".join(entries).encode("utf-8")
        await ctx.outbound.send_file(ctx.actor, FileToSend(BIB_NAME, whole, title))
        where = f"The whole file, {BIB_NAME}, is in your direct messages with me."
    except DeliveryError:
        where = "I couldn't send you the file just now; try again in a minute for all of it."
    shown = _first_entries(entries, PREVIEW_CHARACTERS)
    left = len(entries) - len(shown)
    lines = [where] + ([f"Below, the first {len(shown)}; {left} more in the file."] if left else [])
    return Message(
        text=title,
        lines=tuple(lines),
        attachment=Attachment(BIB_NAME, "\n".join(shown), BIB_TYPE),
    )


def _first_entries(entries: list[str], limit: int) -> list[str]:
    """The first entries that fit in `limit` characters (the first one at least): cut only
    between entries, so what is shown stays valid BibTeX."""
    shown, size = entries[:1], len(entries[0]) if entries else 0
    for entry in entries[1:]:
        size += len(entry) + 1
        if size > limit:
            break
        shown.append(entry)
    return shown
