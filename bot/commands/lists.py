"""Lists over a period: `team [week|month|all]` (what this workspace saved) and `week` /
`month` (the most upvoted papers of the recent Daily Papers lists)."""

from __future__ import annotations

from datetime import timedelta

from bot.cards import demo_note
from bot.commands.context import CommandContext
from bot.commands.parser import MostUpvoted, Team
from bot.messages import Message
from bot.rankings import listing_days, most_saved, most_upvoted
from bot.reactions import emoji_in_text

PERIOD_DAYS = {"week": 7, "month": 30}
PERIOD_WORDS = {"week": "in the last 7 days", "month": "in the last 30 days", "all": "so far"}


async def team(ctx: CommandContext, command: Team) -> Message:
    """The papers members of this workspace saved in the period, by how many saved each.
    Counts only: never who saved what, whoever asks (and so whoever shares it)."""
    days = PERIOD_DAYS.get(command.period)
    since = ctx.now - timedelta(days=days) if days is not None else None
    async with ctx.store.reading() as repos:
        ranked = await most_saved(repos, ctx.event.channel.scope, since, ctx.config.today_count)
    when = PERIOD_WORDS[command.period]
    if not ranked:
        emoji = emoji_in_text(ctx.config.save_emoji)
        return Message(
            text=f"Nobody here has saved a paper {'yet' if since is None else when}.",
            lines=(f"React with {emoji} on a posted paper to save it.",),
        )
    cards = tuple(entry.card for entry in ranked)
    return Message(
        text=f"What the team saved {when}",
        cards=cards,
        note=demo_note(cards),
        shareable=True,
    )


async def upvoted(ctx: CommandContext, command: MostUpvoted) -> Message:
    """The most upvoted papers of the Daily Papers lists of the last 7 or 30 days (today
    included), each paper once, from the store: it answers offline, and on the demo sample."""
    days = PERIOD_DAYS[command.period]
    first, last = listing_days(ctx.now, days)
    async with ctx.store.reading() as repos:
        ranked = await most_upvoted(repos, first, last, ctx.config.today_count)
    if not ranked:
        return Message(
            text=f"No Daily Papers lists from the last {days} days yet.",
            lines=("`/papers today` shows the latest one there is.",),
        )
    cards = tuple(entry.card for entry in ranked)
    if any(card.is_demo for card in cards):
        title = f"Papers of the last {days} days from the offline demo sample"
    else:
        title = (
            f"Most upvoted papers of the last {days} days from Hugging Face Daily Papers, "
            f"{first:%d %b} to {last:%d %b %Y}"
        )
    return Message(text=title, cards=cards, note=demo_note(cards), shareable=True)
