"""The Discord bot: a discord.py client that turns interactions and raw reaction events into
neutral events and renders the core's answers as embeds. No business rules live here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import discord
import yarl
from discord import app_commands

from adapters.discord.commands import PapersCommands
from adapters.discord.outbound import SEND_ERRORS, DiscordOutbound, delivery_error
from adapters.discord.reading import message_text
from adapters.discord.render import render, spread
from bot.app import NOTHING_TO_SHARE, Paperboy, share_command
from bot.config import BotConfig
from bot.delivery.outage import describe
from bot.events import (
    ChannelGone,
    ChannelRef,
    CommandInvoked,
    GoneWhy,
    MessageRef,
    ReactionChanged,
    SaveFromMessage,
    Scope,
    UserRef,
    WorkspaceBack,
    WorkspaceGone,
)
from bot.inbox import not_taken
from bot.messages import Message, Visibility
from bot.ports import DeliveryError
from bot.search import SearchSource
from bot.sources.lookup import PaperLookup
from config import ConfigError, Settings, Unavailable
from storage.db import DB_ERRORS
from storage.store import Store

if TYPE_CHECKING:
    from bot.semantic.meaning import Semantic

log = logging.getLogger(__name__)

T = TypeVar("T")

PLATFORM = "discord"
SHARE_PREFIX = "share:"
SAVE_PAPER = "Save paper"  # the message context-menu command
UNKNOWN_BUTTON = "That button no longer works here. Run the command again for a fresh one."
MAX_CUSTOM_ID = 100  # Discord's limit for a component's custom_id
# Past this, answer "thinking..." first: Discord drops an interaction not answered in 3 s.
DEFER_AFTER = 2.0
MAX_RATE_LIMIT_WAIT = 60.0  # a longer `retry_after` fails the send instead of hanging
SCOPES = ("bot", "applications.commands")
# What the bot does in a channel: read it, post embeds, add and read the save reaction.
PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    add_reactions=True,
    read_message_history=True,
)
ADMINS = "members with the Manage Server permission"
# What a call raises when Discord could not be reached or answer: refused, unknown host, timed
# out, 5xx (a rejected token is LoginFailure).
UNREACHABLE = (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError)
SOMETHING_WENT_WRONG = "Sorry, something went wrong on our side. Please try again in a minute."


def intents(*, message_content: bool = False) -> discord.Intents:
    """Only what the bot uses: no privileged intents (members, presences), and message content
    only when asked for (PAPERBOY_DISCORD_MESSAGE_CONTENT), to read members' messages people
    react to with the save emoji."""
    chosen = discord.Intents.none()
    chosen.guilds = True  # server and channel metadata; interactions carry the rest
    chosen.guild_reactions = True
    chosen.dm_reactions = True
    chosen.message_content = message_content
    return chosen


def point_at(api_url: str, gateway_url: str) -> None:
    """Aim discord.py at another REST API and gateway (a proxy, a test fake). Process-wide:
    discord.py reads both from class attributes."""
    discord.http.Route.BASE = api_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def is_admin(interaction: discord.Interaction) -> bool:
    """Manage Server, from the member's resolved permissions that Discord sends along."""
    permissions = interaction.permissions
    return permissions.manage_guild or permissions.administrator


def channel_ref(interaction: discord.Interaction) -> ChannelRef:
    return ChannelRef(
        Scope(PLATFORM, str(interaction.guild_id or "")), str(interaction.channel_id or "")
    )


class ShareButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=rf"{SHARE_PREFIX}(?P<text>.+)"
):
    """ "Share to channel" under an ephemeral answer: runs the same command again and posts
    the answer publicly. The command text lives in the custom_id, so the button keeps working
    across restarts and processes."""

    def __init__(self, text: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Share to channel",
                style=discord.ButtonStyle.primary,
                custom_id=f"{SHARE_PREFIX}{text}",
            )
        )
        self.text = text

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: Any,
    ) -> ShareButton:
        return cls(match["text"])

    async def callback(self, interaction: discord.Interaction) -> None:
        client = interaction.client
        assert isinstance(client, PaperboyClient)
        await client.share(interaction, self.text)


def share_view(text: str) -> discord.ui.View | None:
    """A view with the share button, or None when the command is too long to carry."""
    if len(SHARE_PREFIX) + len(text) > MAX_CUSTOM_ID:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(ShareButton(text))
    return view


def _guard_parsers(parsers: dict[str, Callable[[Any], None]]) -> None:
    """Make each gateway event parser drop an event it cannot parse, with a log line.

    discord.py calls the parsers from its gateway loop without catching anything, so one
    malformed event (a MESSAGE_REACTION_ADD without `user_id`, say) would end `connect()` and,
    with it, the worker."""

    def guarded(event: str, parse: Callable[[Any], None]) -> Callable[[Any], None]:
        def parse_or_drop(data: Any) -> None:
            try:
                parse(data)
            except Exception as error:
                log.warning(
                    "dropped a malformed Discord %s event: %s: %s",
                    event, type(error).__name__, error,
                )  # fmt: skip

        return parse_or_drop

    for event, parse in list(parsers.items()):
        parsers[event] = guarded(event, parse)


class PaperboyClient(discord.Client):
    # The bot never joins voice: skip discord.py's start-up warnings about voice libraries.
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False

    def __init__(
        self,
        make_bot: Callable[[DiscordOutbound], Paperboy],
        *,
        guild_ids: tuple[int, ...] = (),
        guild_ready_timeout: float = 2.0,
        message_content: bool = False,
    ) -> None:
        super().__init__(
            intents=intents(message_content=message_content),
            allowed_mentions=discord.AllowedMentions.none(),
            max_ratelimit_timeout=MAX_RATE_LIMIT_WAIT,
            guild_ready_timeout=guild_ready_timeout,
        )
        self.guild_ids = guild_ids
        self.outbound = DiscordOutbound(self, reads_messages=message_content)
        self.paperboy = make_bot(self.outbound)
        self.tree = app_commands.CommandTree(self)
        self.tree.error(self.on_command_error)
        self.tree.add_command(PapersCommands(self.answer, self.followed_topics))
        in_servers = app_commands.AppCommandContext(guild=True)  # saves belong to a server
        self.tree.add_command(
            app_commands.ContextMenu(
                name=SAVE_PAPER, callback=self.save_from_message, allowed_contexts=in_servers
            )
        )
        _guard_parsers(self._connection.parsers)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(ShareButton)
        if self.guild_ids:
            for guild_id in self.guild_ids:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("synced %d command(s) to server %s", len(synced), guild_id)
        else:
            synced = await self.tree.sync()
            log.info("synced %d command(s) globally (may take a while to show)", len(synced))

    async def on_ready(self) -> None:
        log.info("Discord gateway ready as %s in %d server(s)", self.user, len(self.guilds))
        # READY lists every server the bot is in, unavailable ones included.
        present = [str(guild.id) for guild in self.guilds]
        await self.paperboy.workspaces_present(PLATFORM, present)

    # Servers and channels coming and going ---------------------------------------------------

    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.paperboy.workspace_back(WorkspaceBack(Scope(PLATFORM, str(guild.id))))

    async def on_guild_available(self, guild: discord.Guild) -> None:
        """A server the bot is in, as the gateway connects: one that added the bot back
        while no worker was connected is back too."""
        await self.paperboy.workspace_back(WorkspaceBack(Scope(PLATFORM, str(guild.id))))

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """The bot was removed from the server (kicked, banned, or the server deleted);
        discord.py does not call this for a server that is only unavailable."""
        await self.paperboy.workspace_gone(WorkspaceGone(Scope(PLATFORM, str(guild.id))))

    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        where = ChannelRef(Scope(PLATFORM, str(channel.guild.id)), str(channel.id))
        await self.paperboy.channel_gone(ChannelGone(where, GoneWhy.DELETED))

    # Commands --------------------------------------------------------------------------------

    async def answer(self, interaction: discord.Interaction, text: str) -> None:
        """Run `/papers <text>` for the caller and answer them privately."""
        event = CommandInvoked(
            channel_ref(interaction), str(interaction.user.id), text, is_admin(interaction)
        )
        answer = await self._within_deadline(interaction, self.paperboy.handle_command(event))
        share = share_command(text, answer)
        view = None if share is None else share_view(share)
        await self._reply(interaction, answer, view=view)

    async def _within_deadline(
        self, interaction: discord.Interaction, work: Awaitable[T], *, thinking: bool = True
    ) -> T:
        """Await `work`, telling Discord we're on it if it outlasts DEFER_AFTER: "thinking..."
        for a command, a silent acknowledgement for a button."""
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=DEFER_AFTER)
        if not done:
            await interaction.response.defer(ephemeral=True, thinking=thinking)
        return await task

    async def _reply(
        self,
        interaction: discord.Interaction,
        message: Message,
        *,
        view: discord.ui.View | None = None,
    ) -> None:
        """`message` as the interaction's response (or, once deferred, the follow-up that ends
        "thinking..."), then as follow-ups while it takes more Discord messages (`spread`),
        the view under the last. A failed response raises; a failed follow-up is logged."""
        first, *rest = spread(message)
        ephemeral = message.visibility is Visibility.CALLER
        kwargs = render(first).send_kwargs()
        if view is not None and not rest:
            kwargs["view"] = view
        if interaction.response.is_done():
            await interaction.followup.send(**kwargs, ephemeral=ephemeral)
        else:
            await interaction.response.send_message(**kwargs, ephemeral=ephemeral)
        await self._follow_up(interaction, rest, ephemeral=ephemeral, view=view)

    async def _follow_up(
        self,
        interaction: discord.Interaction,
        pieces: Sequence[Message],
        *,
        ephemeral: bool,
        view: discord.ui.View | None = None,
    ) -> None:
        """Send `pieces` in order as follow-ups, the view under the last. The first that fails
        ends it with one log line (the person has the answer's start; the rest would come out
        of order)."""
        for index, piece in enumerate(pieces, start=1):
            kwargs = render(piece).send_kwargs()
            if view is not None and index == len(pieces):
                kwargs["view"] = view
            try:
                await interaction.followup.send(**kwargs, ephemeral=ephemeral)
            except SEND_ERRORS as error:
                log.warning(
                    "Discord answer cut short: follow-up %d of %d failed: %s",
                    index, len(pieces), delivery_error(error).reason,
                )  # fmt: skip
                return

    async def save_from_message(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        """ "Save paper" on a message: the papers it links to, saved for the caller, who is
        answered privately. The interaction carries the message, content included, with no
        privileged intent."""
        user = UserRef(channel_ref(interaction).scope, str(interaction.user.id))
        event = SaveFromMessage(user, message_text(message))
        answer = await self._within_deadline(interaction, self.paperboy.save_from_message(event))
        await self._reply(interaction, answer)

    async def followed_topics(self, interaction: discord.Interaction) -> list[str]:
        user = UserRef(channel_ref(interaction).scope, str(interaction.user.id))
        return await self.paperboy.followed_topics(user)

    async def share(self, interaction: discord.Interaction, text: str) -> None:
        """Post the shared command's fresh answer in the channel (`Paperboy.share`)."""
        event = CommandInvoked(channel_ref(interaction), str(interaction.user.id), text, False)
        shared = await self._within_deadline(
            interaction, self.paperboy.share(event), thinking=False
        )
        if shared is None:
            await self._reply(interaction, Message(text=NOTHING_TO_SHARE))
            return
        done = "Shared to the channel."
        if interaction.response.is_done():
            await interaction.edit_original_response(
                content=done, embeds=[], attachments=[], view=None
            )
        else:
            await interaction.response.edit_message(
                content=done, embeds=[], attachments=[], view=None
            )
        await self._follow_up(interaction, spread(shared), ephemeral=False)

    async def on_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        log.error("Discord command failed: %s", type(error).__name__, exc_info=error)
        if interaction.type is discord.InteractionType.autocomplete:
            return
        with contextlib.suppress(discord.HTTPException):  # expired; the log has it
            await self._reply(interaction, Message(text=SOMETHING_WENT_WRONG))

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A button this client has no handler for (say, from an older version of the bot)
        gets a short answer instead of Discord's "This interaction failed"."""
        if interaction.type is not discord.InteractionType.component:
            return  # commands and autocomplete go to the command tree
        custom_id = str(interaction.data.get("custom_id", "")) if interaction.data else ""
        if custom_id.startswith(SHARE_PREFIX):
            return  # ShareButton's
        log.info("unknown Discord button %r", custom_id[:MAX_CUSTOM_ID])
        with contextlib.suppress(discord.HTTPException):  # expired; the log has it
            await self._reply(interaction, Message(text=UNKNOWN_BUTTON))

    # Reactions -------------------------------------------------------------------------------

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        if payload.member is not None and payload.member.bot:
            return  # other bots' reactions (and our own, below) are not saves
        await self._reaction(payload, added=True)

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        await self._reaction(payload, added=False)

    async def _reaction(self, payload: discord.RawReactionActionEvent, *, added: bool) -> None:
        """Maybe a save: recorded by the core's inbox, then acted on and confirmed by DM
        (`bot.inbox`). Discord never sends a reaction again, so one that cannot be recorded
        is the member's to repeat, and they are told so."""
        if self.user is not None and payload.user_id == self.user.id:
            return  # the bot adds the save emoji itself so people can click it
        if payload.guild_id is None or not payload.emoji.name:
            return  # saves belong to a server
        scope = Scope(PLATFORM, str(payload.guild_id))
        message = MessageRef(ChannelRef(scope, str(payload.channel_id)), str(payload.message_id))
        event = ReactionChanged(message, str(payload.user_id), payload.emoji.name, added)
        try:
            taken = await self.paperboy.inbox.take_in(event)
        except DB_ERRORS as error:
            log.warning("Discord reaction not taken in: %s", describe(error))
            user = UserRef(scope, event.user)
            with contextlib.suppress(DeliveryError):  # the log has it
                await self.outbound.tell(user, message, not_taken(added))
            return
        if taken:
            await self.paperboy.inbox.act_now(PLATFORM)


@dataclass
class DiscordBot:
    client: PaperboyClient
    bot: Paperboy
    outbound: DiscordOutbound
    token: str


def create_discord_bot(
    settings: Settings,
    store: Store,
    *,
    source: SearchSource | None,
    semantic: Semantic | None = None,
    lookup: PaperLookup | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    guild_ready_timeout: float = 2.0,
) -> DiscordBot:
    """Wire the core to a discord.py client. Raises ConfigError without DISCORD_TOKEN.
    `guild_ready_timeout`: how long to wait for servers to stream in before `on_ready`."""
    if settings.discord_token is None:
        raise ConfigError("DISCORD_TOKEN: required to run the Discord bot")
    point_at(settings.discord_api_url, settings.discord_gateway_url)
    config = replace(BotConfig.from_settings(settings), admins=ADMINS)
    client = PaperboyClient(
        lambda outbound: Paperboy(
            store,
            outbound,
            config=config,
            source=source,
            semantic=semantic,
            lookup=lookup,
            clock=clock,
        ),
        guild_ids=settings.discord_guild_ids,
        guild_ready_timeout=guild_ready_timeout,
        message_content=settings.discord_message_content,
    )
    return DiscordBot(
        client, client.paperboy, client.outbound, settings.discord_token.get_secret_value()
    )


async def log_in(discord_bot: DiscordBot) -> None:
    """Log in over REST and sync `/papers`: enough to send messages, no gateway yet."""
    await _log_in(discord_bot.client, discord_bot.token)


async def _log_in(client: discord.Client, token: str) -> None:
    """`client.login`, its failures one line each: a rejected token is a setting to change
    (ConfigError), an unreachable or failing Discord is Unavailable."""
    try:
        await client.login(token)
    except discord.LoginFailure:
        raise ConfigError("DISCORD_TOKEN: Discord rejected this token") from None
    except UNREACHABLE as error:
        raise Unavailable.because(
            "Discord", error, "the network and PAPERBOY_DISCORD_API_URL"
        ) from error


async def application_id(settings: Settings, token: str) -> int:
    """The application id of `token`'s bot, as Discord tells it at login."""
    point_at(settings.discord_api_url, settings.discord_gateway_url)
    client = discord.Client(intents=intents())
    try:
        await _log_in(client, token)
        assert client.application_id is not None  # login reads the application
        return client.application_id
    finally:
        await client.close()


def invite_url(application_id: int) -> str:
    """The OAuth2 link that adds the bot to a server with exactly what it needs."""
    return discord.utils.oauth_url(application_id, permissions=PERMISSIONS, scopes=SCOPES)
