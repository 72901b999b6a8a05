"""`channel weekly on <day> HH:MM [tz] | off`: a channel's weekly team post (admins only,
as every channel change), and the lines `channel status` shows about it."""

from __future__ import annotations

from bot.commands.context import CommandContext
from bot.commands.parser import ChannelWeeklyOff, ChannelWeeklyOn
from bot.delivery.status import describe_weekly, last_delivery_line
from bot.messages import Message
from bot.weekly import MAX_SAVED, MAX_TRENDING
from storage.deliveries import WEEKLY
from storage.store import Repositories

WHAT_IT_HOLDS = (
    f"It holds the {MAX_SAVED} papers members here saved most that week (how many saved each, "
    f"never who), then the week's {MAX_TRENDING} most upvoted papers not posted here yet."
)
START_ONE = "An admin can start one: `/papers channel weekly on fri 16:00 Europe/Berlin`."


async def weekly_on(ctx: CommandContext, command: ChannelWeeklyOn) -> Message:
    async with ctx.store.transaction() as repos:
        current = await repos.weekly.get(ctx.platform, ctx.workspace, ctx.event.channel.channel)
        post = await repos.weekly.turn_on(
            ctx.platform,
            ctx.workspace,
            ctx.event.channel.channel,
            weekday=command.weekday,
            post_time=command.time,
            timezone=command.timezone or (current.timezone if current else ctx.config.default_tz),
            by=ctx.user,
            now=ctx.now,
        )
    return Message(text=f"Weekly post on: {describe_weekly(post)}.", lines=(WHAT_IT_HOLDS,))


async def weekly_off(ctx: CommandContext, command: ChannelWeeklyOff) -> Message:
    async with ctx.store.transaction() as repos:
        stopped = await repos.weekly.turn_off(
            ctx.platform, ctx.workspace, ctx.event.channel.channel, ctx.now
        )
    if stopped is None:
        return Message(text="The weekly post was already off in this channel.")
    return Message(
        text="Weekly post off for this channel. "
        "`/papers channel weekly on <day> HH:MM` turns it back on."
    )


async def weekly_status_lines(ctx: CommandContext, repos: Repositories) -> tuple[str, ...]:
    """The channel's weekly post for `channel status`: its schedule (or how to start one) and
    how its last scheduled run went."""
    where = (ctx.platform, ctx.workspace, ctx.event.channel.channel)
    post = await repos.weekly.get(*where)
    last = last_delivery_line(await repos.deliveries.latest(WEEKLY, *where), "Last weekly post")
    if post is not None and post.enabled:
        schedule = f"Weekly post: {describe_weekly(post)}."
    elif post is not None and post.disabled_reason:
        schedule = f"No weekly post: it was stopped: {post.disabled_reason}. {START_ONE}"
    else:
        schedule = f"No weekly post. {START_ONE}"
    return (schedule, last) if last else (schedule,)
