"""`today`, `topic` and `help`."""

from __future__ import annotations

from bot.cards import demo_note, paper_cards
from bot.commands.context import CommandContext
from bot.commands.parser import USAGE, Help, Today, Topic
from bot.daily import latest_list, list_title
from bot.messages import Message
from bot.search import find_papers


async def today(ctx: CommandContext, command: Today) -> Message:
    async with ctx.store.reading() as repos:
        latest = await latest_list(repos, ctx.now.date())
    if latest is None or not latest[1]:
        return Message(
            text="No Daily Papers list yet: Hugging Face has not been reached. "
            "Try again in a few minutes."
        )
    day, papers = latest
    cards = paper_cards(papers[: ctx.config.today_count])
    return Message(
        text=list_title(day, cards, "Trending papers"),
        cards=cards,
        note=demo_note(cards),
        shareable=True,
    )


async def topic(ctx: CommandContext, command: Topic) -> Message:
    papers = await find_papers(
        ctx.store,
        command.topic,
        limit=ctx.config.topic_count,
        source=ctx.source,
        budget=ctx.config.search_budget,
        semantic=ctx.semantic,
    )
    follow_hint = f"Follow it for a DM digest: `/papers follow {command.topic}`"
    if not papers:
        return Message(
            text=f"No papers found for “{command.topic}” yet.",
            lines=("Try fewer or broader words.", follow_hint),
        )
    cards = paper_cards(papers)
    return Message(
        text=f"Papers on “{command.topic}”",
        cards=cards,
        lines=(follow_hint,),
        note=demo_note(cards),
        shareable=True,
    )


HELP_LINES = (
    f"{USAGE['today']}: today's trending papers (also just `/papers`)",
    f"{USAGE['topic']}: search every paper seen so far",
    f"{USAGE['week']} · {USAGE['month']}: the most upvoted papers of the last 7 or 30 days",
    f"{USAGE['team']}: what this team saved lately, and how many saved each",
    f"{USAGE['follow']} · {USAGE['unfollow']} · {USAGE['following']}",
    f"{USAGE['saved']} · {USAGE['unsave']} · {USAGE['export']}",
    f"{USAGE['save']}: save papers by link (arXiv, Hugging Face, alphaXiv) or arXiv id",
    f"{USAGE['digest']}: your DM digest of followed topics",
    "`/papers export mine`: a file of everything stored about you here",
    f"{USAGE['forget']}: delete everything stored about you here",
    f"{USAGE['channel']}: this channel's daily post and weekly team post (admins)",
    "React with the save emoji on a posted paper to save it; remove the reaction to unsave.",
)


async def help_(ctx: CommandContext, command: Help) -> Message:
    return Message(text="paperboy: Hugging Face Daily Papers in your chat", lines=HELP_LINES)
