"""Command parsing and one handler per command."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot.commands import channels, digests, library, lists, own_data, papers, weekly
from bot.commands import parser as p
from bot.commands.context import CommandContext
from bot.messages import Message

Handler = Callable[[CommandContext, Any], Awaitable[Message]]

HANDLERS: dict[type, Handler] = {
    p.Today: papers.today,
    p.Topic: papers.topic,
    p.MostUpvoted: lists.upvoted,
    p.Team: lists.team,
    p.Help: papers.help_,
    p.Follow: library.follow,
    p.Unfollow: library.unfollow,
    p.Following: library.following,
    p.Saved: library.saved,
    p.Unsave: library.unsave,
    p.SavePapers: library.save,
    p.ExportBibtex: library.export_bibtex,
    p.ExportMine: own_data.export_mine,
    p.ForgetMe: own_data.forget_me,
    p.DigestSet: digests.digest_set,
    p.DigestOff: digests.digest_off,
    p.DigestNow: digests.digest_now,
    p.DigestStatus: digests.digest_status,
    p.ChannelOn: channels.channel_on,
    p.ChannelOff: channels.channel_off,
    p.ChannelStatus: channels.channel_status,
    p.ChannelPostNow: channels.channel_post_now,
    p.ChannelTopicAdd: channels.channel_topic_add,
    p.ChannelTopicRemove: channels.channel_topic_remove,
    p.ChannelWeeklyOn: weekly.weekly_on,
    p.ChannelWeeklyOff: weekly.weekly_off,
}

__all__ = ["HANDLERS", "CommandContext"]
