"""`/papers` as a Discord application command group with typed options.

Each subcommand only spells its options back into the words of the shared command surface
(`/papers channel on 08:30 Europe/Berlin 5`) and hands them to `run`: the core parses and
validates them exactly as it does for Slack and the console. Discord allows two levels under
a command, so the third word becomes a choice: `/papers channel topics action:add topic:...`,
`/papers channel weekly action:on day:Friday time:16:00`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

import discord
from discord import app_commands

from bot.commands.parser import MAX_SAVE_LENGTH, MAX_TOPIC_LENGTH, suggest_timezones
from bot.delivery.slots import WEEKDAYS
from config.settings import MAX_POST_COUNT

Run = Callable[[discord.Interaction, str], Awaitable[None]]
FollowedTopics = Callable[[discord.Interaction], Awaitable[list[str]]]

Topic = app_commands.Range[str, 1, MAX_TOPIC_LENGTH]
Time = app_commands.Range[str, 3, 5]
Count = app_commands.Range[int, 1, MAX_POST_COUNT]
Days = app_commands.Range[str, 3, 40]
MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices
TIME_HINT = "24-hour HH:MM, e.g. 08:30"
TIMEZONE_HINT = "IANA timezone, e.g. Europe/Berlin (start typing to search)"
WEEKDAY_CHOICES = [app_commands.Choice(name=day.capitalize(), value=day[:3]) for day in WEEKDAYS]


async def timezone_choices(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    return [
        app_commands.Choice(name=name, value=name)
        for name in suggest_timezones(current, MAX_CHOICES)
    ]


def _words(*parts: object) -> str:
    return " ".join(str(part) for part in parts if part is not None)


class PapersCommands(app_commands.Group):
    """The `/papers` tree. Server-only: saves, follows and digests belong to a server."""

    digest = app_commands.Group(name="digest", description="Your DM digest of new papers")
    channel = app_commands.Group(
        name="channel", description="This channel's daily post (Manage Server to change it)"
    )

    def __init__(self, run: Run, followed_topics: FollowedTopics) -> None:
        super().__init__(
            name="papers",
            description="Trending machine-learning papers from Hugging Face Daily Papers",
            guild_only=True,
        )
        self.run = run
        self.followed_topics = followed_topics

    @app_commands.command(description="Today's trending papers")
    async def today(self, interaction: discord.Interaction) -> None:
        await self.run(interaction, "today")

    @app_commands.command(description="Find papers on a topic")
    @app_commands.describe(words="What to look for, e.g. speculative decoding")
    async def topic(self, interaction: discord.Interaction, words: Topic) -> None:
        await self.run(interaction, _words("topic", words))

    @app_commands.command(description="The most upvoted papers of the last 7 days")
    async def week(self, interaction: discord.Interaction) -> None:
        await self.run(interaction, "week")

    @app_commands.command(description="The most upvoted papers of the last 30 days")
    async def month(self, interaction: discord.Interaction) -> None:
        await self.run(interaction, "month")

    @app_commands.command(description="Papers this server saved, by how many members saved each")
    @app_commands.describe(period="How far back: the last week (default), month, or all")
    async def team(
        self, interaction: discord.Interaction, period: Literal["week", "month", "all"] = "week"
    ) -> None:
        await self.run(interaction, _words("team", period))

    @app_commands.command(description="Follow a topic for your digest")
    @app_commands.describe(topic="e.g. latency")
    async def follow(self, interaction: discord.Interaction, topic: Topic) -> None:
        await self.run(interaction, _words("follow", topic))

    @app_commands.command(description="Stop following a topic")
    @app_commands.describe(topic="One of the topics you follow")
    async def unfollow(self, interaction: discord.Interaction, topic: Topic) -> None:
        await self.run(interaction, _words("unfollow", topic))

    @unfollow.autocomplete("topic")
    async def _followed(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        needle = current.lower().strip()
        topics = [t for t in await self.followed_topics(interaction) if needle in t]
        return [app_commands.Choice(name=t, value=t) for t in topics[:MAX_CHOICES]]

    @app_commands.command(description="The topics you follow")
    async def following(self, interaction: discord.Interaction) -> None:
        await self.run(interaction, "following")

    @app_commands.command(description="Your saved papers")
    async def saved(self, interaction: discord.Interaction) -> None:
        await self.run(interaction, "saved")

    @app_commands.command(description="Remove a paper from your saved papers")
    @app_commands.describe(paper="arXiv id or link, e.g. 2405.15738")
    async def unsave(
        self, interaction: discord.Interaction, paper: app_commands.Range[str, 1, 200]
    ) -> None:
        await self.run(interaction, _words("unsave", paper))

    @app_commands.command(description="Save papers by link or arXiv id")
    @app_commands.describe(papers="Links or arXiv ids, e.g. https://arxiv.org/abs/2405.15738")
    async def save(
        self,
        interaction: discord.Interaction,
        papers: app_commands.Range[str, 1, MAX_SAVE_LENGTH - len("save ")],
    ) -> None:
        await self.run(interaction, _words("save", papers))

    @app_commands.command(description="Export your saved papers, or everything stored about you")
    @app_commands.describe(format="bibtex: your saved papers; mine: everything about you (JSON)")
    async def export(
        self, interaction: discord.Interaction, format: Literal["bibtex", "mine"] = "bibtex"
    ) -> None:
        await self.run(interaction, _words("export", format))

    @app_commands.command(description="Delete everything stored about you in this server")
    @app_commands.describe(confirm="True deletes it; without it you see what would go")
    async def forget(self, interaction: discord.Interaction, confirm: bool = False) -> None:
        await self.run(interaction, _words("forget me", "confirm" if confirm else None))

    @app_commands.command(description="What paperboy can do")
    async def help(self, interaction: discord.Interaction) -> None:
        await self.run(interaction, "help")

    # /papers digest ...

    @digest.command(name="daily", description="Get a digest every day")
    @app_commands.describe(time=TIME_HINT, timezone=TIMEZONE_HINT)
    @app_commands.autocomplete(timezone=timezone_choices)
    async def digest_daily(
        self, interaction: discord.Interaction, time: Time, timezone: str | None = None
    ) -> None:
        await self.run(interaction, _words("digest daily", time, timezone))

    @digest.command(name="weekly", description="Get a digest once a week")
    @app_commands.describe(day="Which day", time=TIME_HINT, timezone=TIMEZONE_HINT)
    @app_commands.choices(day=WEEKDAY_CHOICES)
    @app_commands.autocomplete(timezone=timezone_choices)
    async def digest_weekly(
        self,
        interaction: discord.Interaction,
        day: app_commands.Choice[str],
        time: Time,
        timezone: str | None = None,
    ) -> None:
        await self.run(interaction, _words("digest weekly", day.value, time, timezone))

    @digest.command(name="off", description="Stop your digest")
    async def digest_off(self, interaction: discord.Interaction) -> None:
        await self.run(interaction, "digest off")

    @digest.command(name="now", description="Send your digest now")
    async def digest_now(self, interaction: discord.Interaction) -> None:
        await self.run(interaction, "digest now")

    @digest.command(name="status", description="When your digest comes, and on what")
    async def digest_status(self, interaction: discord.Interaction) -> None:
        await self.run(interaction, "digest status")

    # /papers channel ... (admin commands are refused by the core without Manage Server)

    @channel.command(name="on", description="Post trending papers here (weekdays by default)")
    @app_commands.describe(
        time=TIME_HINT,
        timezone=TIMEZONE_HINT,
        count=f"Papers per post, 1 to {MAX_POST_COUNT}",
        days="weekdays, daily, or days such as mon,wed,fri",
    )
    @app_commands.autocomplete(timezone=timezone_choices)
    async def channel_on(
        self,
        interaction: discord.Interaction,
        time: Time | None = None,
        timezone: str | None = None,
        count: Count | None = None,
        days: Days | None = None,
    ) -> None:
        days = days.replace(" ", "") if days else None  # "mon, wed" is one list of days
        await self.run(interaction, _words("channel on", time, timezone, count, days))

    @channel.command(name="off", description="Stop the daily post here")
    async def channel_off(self, interaction: discord.Interaction) -> None:
        await self.run(interaction, "channel off")

    @channel.command(name="status", description="This channel's daily post settings")
    async def channel_status(self, interaction: discord.Interaction) -> None:
        await self.run(interaction, "channel status")

    @channel.command(name="post-now", description="Post today's papers here now")
    async def channel_post_now(self, interaction: discord.Interaction) -> None:
        await self.run(interaction, "channel post-now")

    @channel.command(name="weekly", description="A weekly post of what this server saved")
    @app_commands.describe(
        action="Turn it on (with a day and time) or off",
        day="Which day of the week",
        time=TIME_HINT,
        timezone=TIMEZONE_HINT,
    )
    @app_commands.choices(day=WEEKDAY_CHOICES)
    @app_commands.autocomplete(timezone=timezone_choices)
    async def channel_weekly(
        self,
        interaction: discord.Interaction,
        action: Literal["on", "off"],
        day: app_commands.Choice[str] | None = None,
        time: Time | None = None,
        timezone: str | None = None,
    ) -> None:
        # `on` without a day or time gets the core's usage line, as on every platform.
        words = _words("channel weekly", action, day.value if day else None, time, timezone)
        await self.run(interaction, words)

    @channel.command(name="topics", description="Only post papers on these topics")
    @app_commands.describe(action="Add or remove a topic", topic="e.g. diffusion")
    async def channel_topics(
        self, interaction: discord.Interaction, action: Literal["add", "remove"], topic: Topic
    ) -> None:
        await self.run(interaction, _words("channel topics", action, topic))
