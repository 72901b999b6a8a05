"""`channel on|off|status|post-now|topics ...`: a channel's daily post. Changes are admin-only.
`channel status` also tells of the weekly post (`bot.commands.weekly`)."""

from __future__ import annotations

from bot.commands.context import CommandContext
from bot.commands.parser import (
    ChannelOff,
    ChannelOn,
    ChannelPostNow,
    ChannelStatus,
    ChannelTopicAdd,
    ChannelTopicRemove,
)
from bot.commands.weekly import weekly_status_lines
from bot.daily import PUBLISHING_DAYS, PostUnderway
from bot.delivery.slots import describe_days
from bot.delivery.status import last_delivery_line
from bot.lifecycle import back_on, happened, lost_channel
from bot.messages import Message, counted
from bot.ports import DeliveryError
from storage.deliveries import CHANNEL
from storage.models import ChannelSubscription

# A channel's topics filter its daily post; past a handful, the filter filters little.
MAX_CHANNEL_TOPICS = 10


def not_admin(admins: str) -> str:
    return f"Only {admins} can change this channel's daily or weekly post."


async def channel_on(ctx: CommandContext, command: ChannelOn) -> Message:
    config = ctx.config
    async with ctx.store.transaction() as repos:
        current = await repos.channels.subscription(
            ctx.platform, ctx.workspace, ctx.event.channel.channel
        )
        subscription = await repos.channels.subscribe(
            ctx.platform,
            ctx.workspace,
            ctx.event.channel.channel,
            post_time=command.time or (current.post_time if current else config.default_post_time),
            timezone=command.timezone or (current.timezone if current else config.default_tz),
            count=command.count or (current.count if current else config.default_post_count),
            days=command.days or (current.days if current else PUBLISHING_DAYS),
            by=ctx.user,
            now=ctx.now,
        )
        topics = await repos.channels.topics(subscription.id)
    return Message(
        text=f"Daily post on: {_schedule(subscription)}.",
        lines=(_topics_line(topics), "Run it now with `/papers channel post-now`."),
    )


async def channel_off(ctx: CommandContext, command: ChannelOff) -> Message:
    async with ctx.store.transaction() as repos:
        subscription = await repos.channels.subscription(
            ctx.platform, ctx.workspace, ctx.event.channel.channel
        )
        if subscription is None or not subscription.enabled:
            return Message(text="The daily post was already off in this channel.")
        subscription.enabled = False
        subscription.updated_at = ctx.now
    return Message(text="Daily post off for this channel. `/papers channel on` turns it back on.")


async def channel_status(ctx: CommandContext, command: ChannelStatus) -> Message:
    async with ctx.store.transaction() as repos:
        subscription = await repos.channels.subscription(
            ctx.platform, ctx.workspace, ctx.event.channel.channel
        )
        topics = await repos.channels.topics(subscription.id) if subscription else []
        last = await repos.deliveries.latest(
            CHANNEL, ctx.platform, ctx.workspace, ctx.event.channel.channel
        )
        weekly = await weekly_status_lines(ctx, repos)
    last_line = last_delivery_line(last, "Last scheduled post")
    if subscription is None or not subscription.enabled:
        stopped = (
            f" It was stopped: {subscription.disabled_reason}."
            if subscription and subscription.disabled_reason
            else ""
        )
        return Message(
            text=f"No daily post in this channel.{stopped}",
            lines=_present(
                "An admin can start one: `/papers channel on 09:00 Europe/Berlin 5`.",
                last_line,
                *weekly,
            ),
        )
    return Message(
        text=f"Daily post: {_schedule(subscription)}.",
        lines=_present(_topics_line(topics), last_line, *weekly),
    )


async def channel_topic_add(ctx: CommandContext, command: ChannelTopicAdd) -> Message:
    return await _change_topic(ctx, command.topic, add=True)


async def channel_topic_remove(ctx: CommandContext, command: ChannelTopicRemove) -> Message:
    return await _change_topic(ctx, command.topic, add=False)


async def _change_topic(ctx: CommandContext, topic: str, *, add: bool) -> Message:
    async with ctx.store.transaction() as repos:
        subscription = await repos.channels.subscription(
            ctx.platform, ctx.workspace, ctx.event.channel.channel
        )
        if subscription is None:
            return Message(text="Turn the daily post on first: `/papers channel on`.")
        if add:
            present = await repos.channels.topics(subscription.id)
            if topic not in present and len(present) >= MAX_CHANNEL_TOPICS:
                return Message(
                    text=f"This channel already has {len(present)} topics, the most there can be.",
                    lines=("Remove one first: `/papers channel topics remove <topic>`.",),
                )
            changed = await repos.channels.add_topic(subscription.id, topic)
        else:
            changed = await repos.channels.remove_topic(subscription.id, topic)
        topics = await repos.channels.topics(subscription.id)
    if add:
        text = f"Added “{topic}”." if changed else f"“{topic}” was already a topic here."
    else:
        text = f"Removed “{topic}”." if changed else f"“{topic}” was not a topic here."
    return Message(text=text, lines=(_topics_line(topics),))


async def channel_post_now(ctx: CommandContext, command: ChannelPostNow) -> Message:
    try:
        sent = (await ctx.daily.post(ctx.event.channel)).papers
    except PostUnderway:
        return Message(
            text="A post to this channel is being sent right now; each paper goes out once.",
            lines=("Run `/papers channel post-now` again once it is done for more.",),
        )
    except DeliveryError as error:
        if error.permanent:
            why = lost_channel(ctx.event.channel, error).why
            what = happened(why, "this channel")
            return Message(
                text=f"{what[:1].upper()}{what[1:]}: its daily post is now off.",
                lines=(back_on(why, ["daily post"]),),
            )
        return Message(text=f"Posting failed for now ({error.reason}). Please try again later.")
    if not sent:
        return await _nothing_new(ctx)
    return Message(text=f"Posted {counted(sent, 'paper')} to this channel.")


async def _nothing_new(ctx: CommandContext) -> Message:
    """Why a post run now sent nothing: with topics, the list's other papers may be far from
    all here; they are just not on the channel's topics."""
    async with ctx.store.reading() as repos:
        subscription = await repos.channels.subscription(
            ctx.platform, ctx.workspace, ctx.event.channel.channel
        )
        topics = await repos.channels.topics(subscription.id) if subscription else []
    if not topics:
        return Message(text="Nothing new to post: every paper of the latest list is already here.")
    return Message(
        text=f"Nothing new to post on this channel's topics ({', '.join(topics)}): the latest "
        "list has no paper on them that is not here already."
    )


def _schedule(subscription: ChannelSubscription) -> str:
    count = subscription.count
    top = "the top paper" if count == 1 else f"the top {count} papers"
    days = describe_days(subscription.days)
    return f"{top} at {subscription.post_time} {subscription.timezone} {days}"


def _present(*lines: str | None) -> tuple[str, ...]:
    return tuple(line for line in lines if line)


def _topics_line(topics: list[str]) -> str:
    if not topics:
        return "Topics: all papers (narrow with `/papers channel topics add <topic>`)."
    return f"Topics: {', '.join(topics)}."
