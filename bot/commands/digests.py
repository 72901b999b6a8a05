"""`digest daily|weekly ...`, `digest off`, `digest now` and `digest` (status)."""

from __future__ import annotations

from bot.commands.context import CommandContext
from bot.commands.parser import DigestNow, DigestOff, DigestSet, DigestStatus
from bot.delivery.slots import WEEKDAYS
from bot.delivery.status import last_delivery_line
from bot.messages import Message, counted
from bot.ports import DeliveryError
from storage.deliveries import DIGEST
from storage.models import DigestSetting

PAUSED_HINT = (
    "Allow direct messages from me (your privacy settings for this workspace or server), "
    "then run `/papers digest now`."
)


def describe(setting: DigestSetting) -> str:
    when = f"{setting.send_time} {setting.timezone}"
    if setting.cadence == "weekly" and setting.weekday is not None:
        return f"weekly on {WEEKDAYS[setting.weekday].capitalize()} at {when}"
    return f"daily at {when}"


async def digest_set(ctx: CommandContext, command: DigestSet) -> Message:
    async with ctx.store.transaction() as repos:
        current = await repos.users.digest_setting(ctx.platform, ctx.workspace, ctx.user)
        timezone = command.timezone or (current.timezone if current else ctx.config.default_tz)
        setting = await repos.users.set_digest(
            ctx.platform,
            ctx.workspace,
            ctx.user,
            cadence=command.cadence,
            weekday=command.weekday,
            send_time=command.time,
            timezone=timezone,
            now=ctx.now,
        )
        topics = await repos.users.following(ctx.platform, ctx.workspace, ctx.user)
        text = f"Your digest comes {describe(setting)}."
    hint = (
        f"It covers {', '.join(topics)}."
        if topics
        else "Follow a topic for it to have something to say: `/papers follow <topic>`."
    )
    return Message(text=text, lines=(hint,))


async def digest_off(ctx: CommandContext, command: DigestOff) -> Message:
    async with ctx.store.transaction() as repos:
        removed = await repos.users.digest_off(ctx.platform, ctx.workspace, ctx.user)
    return Message(text="Your digest is off." if removed else "Your digest was already off.")


async def digest_status(ctx: CommandContext, command: DigestStatus) -> Message:
    async with ctx.store.transaction() as repos:
        setting = await repos.users.digest_setting(ctx.platform, ctx.workspace, ctx.user)
        topics = await repos.users.following(ctx.platform, ctx.workspace, ctx.user)
        last = await repos.deliveries.latest(DIGEST, ctx.platform, ctx.workspace, ctx.user)
    following = f"Topics: {', '.join(topics)}." if topics else "You follow no topics yet."
    last_line = last_delivery_line(last, "Last scheduled digest")
    if setting is None:
        return Message(
            text="Your digest is off.",
            lines=(following, "Turn it on with `/papers digest daily 08:00 Europe/Berlin`."),
        )
    if setting.disabled_reason:
        return Message(
            text=f"Your digest is paused: I couldn't DM you ({setting.disabled_reason}).",
            lines=(following, PAUSED_HINT),
        )
    lines = (following, last_line) if last_line else (following,)
    return Message(text=f"Your digest comes {describe(setting)}.", lines=lines)


async def digest_now(ctx: CommandContext, command: DigestNow) -> Message:
    async with ctx.store.transaction() as repos:
        topics = await repos.users.following(ctx.platform, ctx.workspace, ctx.user)
        saves = await repos.users.recent_saves_many(ctx.platform, ctx.workspace, [ctx.user], 1)
    if not topics and not saves:
        return Message(
            text="You follow no topics yet: `/papers follow <topic>` first.",
            lines=("Papers you save (react with the save emoji) count too.",),
        )
    try:
        sent = (await ctx.digests.send(ctx.actor)).papers
    except DeliveryError as error:
        if not error.permanent:
            return Message(text="I couldn't send your digest just now; try again in a minute.")
        return Message(
            text=f"I can't send you direct messages ({error.reason}).",
            lines=(PAUSED_HINT,),
        )
    if not sent:
        return Message(text="Nothing new on your topics or like your saves since your last digest.")
    return Message(text=f"Sent you a digest of {counted(sent, 'paper')} by DM.")
