"""The Slack app: slack-bolt listeners that turn Slack payloads into neutral events and render
the core's answers as Block Kit. No business rules live here."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeGuard

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_bolt.logger import get_bolt_logger
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.background import Background
from adapters.slack.outbound import PLATFORM, SlackOutbound, TokenLookup, web_client
from adapters.slack.pacing import SlackPacer
from adapters.slack.reading import message_text
from adapters.slack.render import (
    LINK_ACTION_PREFIX,
    SHARE_ACTION,
    blocks,
    fallback_text,
    unfurl_blocks,
)
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
from bot.search import SearchSource
from bot.sources.lookup import PaperLookup
from config import ConfigError, Settings
from storage.db import DB_ERRORS
from storage.store import Store

if TYPE_CHECKING:
    from bot.semantic.meaning import Semantic

log = logging.getLogger(__name__)

COMMAND = "/papers"
SAVE_SHORTCUT = "save_paper"  # the "Save paper" message shortcut's callback_id
# The history scopes let a retried delivery read back what already went out (its metadata),
# and a save reaction read the message it was added to (its paper links).
# `files:write` uploads `/papers export mine` into the member's DM.
BOT_SCOPES = [
    "commands", "chat:write", "im:write", "reactions:read", "users:read",
    "channels:history", "groups:history", "im:history", "links:read", "links:write",
    "files:write",
]  # fmt: skip
# Events that say the bot can no longer post in a channel, and why.
CHANNEL_GONE_EVENTS = {
    "channel_left": GoneWhy.REMOVED,
    "channel_archive": GoneWhy.ARCHIVED,
    "channel_deleted": GoneWhy.DELETED,
    "group_left": GoneWhy.REMOVED,  # a private channel
    "group_archive": GoneWhy.ARCHIVED,
}
REACTION_EVENTS = ("reaction_added", "reaction_removed")
# Events that say the app was removed from the workspace (for tokens_revoked, when the bot's
# token is among the revoked).
WORKSPACE_GONE_EVENTS = ("app_uninstalled", "tokens_revoked")
UNFURL_DOMAINS = ["arxiv.org", "huggingface.co", "alphaxiv.org"]
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
ADMIN_CACHE_SECONDS = 300
# An answer ready within this long rides in the command's acknowledgement, which Slack shows at
# once; a slower one is acknowledged empty (Slack gives up on an acknowledgement after 3 s) and
# goes to the response_url when it is ready.
ANSWER_IN_ACK_WITHIN = 2.0
SHARE_UNREACHABLE = "Couldn't share to this channel: Slack could not be reached. Try again soon."


@dataclass
class SlackBot:
    app: AsyncApp
    bot: Paperboy
    outbound: SlackOutbound
    background: Background

    async def close(self) -> None:
        await self.background.close()
        await self.outbound.close()


class AdminCheck:
    """Whether a user is a workspace admin or owner, per `users.info`, cached for a while."""

    def __init__(self, ttl: float = ADMIN_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._seen: dict[tuple[str, str], tuple[float, bool]] = {}

    async def __call__(self, client: AsyncWebClient, team: str, user: str) -> bool:
        key = (team, user)
        cached = self._seen.get(key)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        try:
            info = (await client.users_info(user=user))["user"]
        except SlackApiError as error:
            log.warning("users.info failed for an admin check: %s", error.response.get("error"))
            return False  # refusing is the safe answer
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("users.info unreachable for an admin check: %s", type(error).__name__)
            return False
        is_admin = bool(info.get("is_admin") or info.get("is_owner"))
        self._seen[key] = (time.monotonic(), is_admin)
        return is_admin


def _event_id(body: dict[str, Any]) -> str | None:
    event_id = body.get("event_id") if body.get("type") == "event_callback" else None
    return str(event_id) if event_id else None


def _event_type(body: dict[str, Any]) -> str:
    event = body.get("event")
    return str(event.get("type", "")) if isinstance(event, dict) else ""


def _send_again(body: dict[str, Any], error: BaseException) -> BoltResponse:
    """The answer to an event that could not be recorded: Slack sends what it does not see
    answered with a 2xx again (three times, over about 5 minutes), so nothing is lost."""
    log.warning(
        "Slack %s event not taken in, asking Slack to send it again: %s",
        _event_type(body) or "an", describe(error),
    )  # fmt: skip
    return BoltResponse(status=503, body="")


def _share_refused(reason: str) -> str:
    """What a member is told when Slack refuses a share: what to do, never Slack's code. A
    private channel (or a conversation) the bot is not in is `channel_not_found` to it."""
    if reason in ("not_in_channel", "channel_not_found"):
        return (
            "Couldn't share to this channel: I'm not in it. Invite me first with "
            "`/invite @paperboy` (in a direct message between people I can't post)."
        )
    if reason == "is_archived":
        return "Couldn't share to this channel: it is archived."
    return "Couldn't share to this channel: Slack refused the message."


def _team(context: AsyncBoltContext, body: dict[str, Any]) -> str:
    team = context.team_id or body.get("team_id") or (body.get("team") or {}).get("id")
    return str(team or context.enterprise_id or "")


def _nonempty_str(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value)


class InstallationStore(AsyncSQLAlchemyInstallationStore):
    """slack_sdk's store of OAuth installs, which also tells the core of each install: a
    workspace that had removed the app is back (`welcome`, set once the bot exists)."""

    welcome: Callable[[str], Awaitable[None]] | None = None

    async def async_save(self, installation: Installation) -> None:
        await super().async_save(installation)
        if self.welcome is not None and installation.team_id:
            await self.welcome(installation.team_id)


def _token_lookup(
    settings: Settings, store: Store
) -> tuple[TokenLookup, AsyncOAuthSettings | None]:
    if settings.slack_oauth:
        assert settings.slack_client_id and settings.slack_client_secret  # what that says
        installations = InstallationStore(client_id=settings.slack_client_id, engine=store.engine)
        oauth = AsyncOAuthSettings(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value(),
            scopes=BOT_SCOPES,
            installation_store=installations,
            state_store=AsyncSQLAlchemyOAuthStateStore(expiration_seconds=600, engine=store.engine),
            install_path=INSTALL_PATH,
            redirect_uri_path=REDIRECT_PATH,
        )

        async def installed_token(team: str) -> str | None:
            bot = await installations.async_find_bot(enterprise_id=None, team_id=team)
            return bot.bot_token if bot else None

        return installed_token, oauth
    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN: required (or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET)")
    token = settings.slack_bot_token.get_secret_value()

    async def single_token(team: str) -> str | None:
        return token

    return single_token, None


def create_slack_outbound(settings: Settings, store: Store) -> SlackOutbound:
    """Posting only (for the worker's scheduled deliveries when Slack comes in over HTTP)."""
    token_for, _ = _token_lookup(settings, store)
    return SlackOutbound(settings.slack_api_url, token_for, slack_pacer(settings))


def slack_pacer(settings: Settings) -> SlackPacer:
    return SlackPacer(
        workspace_rate=settings.slack_messages_per_second, workspace_burst=settings.slack_burst
    )


def _same_token_warning(record: logging.LogRecord) -> bool:
    """Drop bolt's start-up warning that SLACK_BOT_TOKEN (which bolt also reads from the
    environment) is unused because the client has a token: it is the same token."""
    return record.getMessage() != warning_client_prioritized_and_token_skipped()


def create_slack_bot(
    settings: Settings,
    store: Store,
    *,
    source: SearchSource | None,
    semantic: Semantic | None = None,
    lookup: PaperLookup | None = None,
    socket_mode: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    answer_in_ack_within: float = ANSWER_IN_ACK_WITHIN,
) -> SlackBot:
    """Wire the core to a bolt AsyncApp. Raises ConfigError for missing Slack settings."""
    if not socket_mode and settings.slack_signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET: required to receive Slack requests over HTTP")
    token_for, oauth = _token_lookup(settings, store)
    outbound = SlackOutbound(settings.slack_api_url, token_for, slack_pacer(settings))
    bot = Paperboy(
        store, outbound, config=BotConfig.from_settings(settings), source=source,
        semantic=semantic, lookup=lookup, clock=clock,
    )  # fmt: skip
    signing_secret = settings.slack_signing_secret
    # One workspace: bolt's client carries its token (`_token_lookup` made sure there is one).
    bot_token = settings.slack_bot_token if oauth is None else None
    token = bot_token.get_secret_value() if bot_token is not None else None
    bolt_log = get_bolt_logger(AsyncApp)
    if _same_token_warning not in bolt_log.filters:
        bolt_log.addFilter(_same_token_warning)
    app = AsyncApp(
        client=web_client(settings.slack_api_url, token),  # bolt takes the token from here
        signing_secret=signing_secret.get_secret_value() if signing_secret else None,
        request_verification_enabled=signing_secret is not None,
        oauth_settings=oauth,
        # Acknowledge when the listener returns, so that a command's answer can ride in it.
        process_before_response=True,
    )
    if oauth is not None and isinstance(oauth.installation_store, InstallationStore):

        async def welcome(team: str) -> None:
            await bot.workspace_back(WorkspaceBack(Scope(PLATFORM, team)))

        oauth.installation_store.welcome = welcome
    background = Background()
    listeners = Listeners(bot, store, outbound, background, clock, answer_in_ack_within)
    listeners.register(app)
    return SlackBot(app, bot, outbound, background)


@dataclass
class Listeners:
    """The bolt listeners, one method per kind of Slack request. Each returns promptly, for
    it holds up the acknowledgement: work that may take longer than an answer goes to
    `background`."""

    bot: Paperboy
    store: Store
    outbound: SlackOutbound
    background: Background
    clock: Callable[[], datetime]
    answer_in_ack_within: float
    admin_check: AdminCheck = field(default_factory=AdminCheck)

    def register(self, app: AsyncApp) -> None:
        app.middleware(self.process_each_event_once)
        app.command(COMMAND)(self.on_command)
        app.action(SHARE_ACTION)(self.on_share)
        app.event(re.compile(f"^({'|'.join(REACTION_EVENTS)})$"))(self.on_reaction)
        app.event("link_shared")(self.on_link_shared)
        app.shortcut(SAVE_SHORTCUT)(self.on_save_shortcut)
        app.event(re.compile(f"^({'|'.join(CHANNEL_GONE_EVENTS)})$"))(self.on_channel_gone)
        app.event(re.compile(f"^({'|'.join(WORKSPACE_GONE_EVENTS)})$"))(self.on_workspace_gone)
        app.action(re.compile(f"^{LINK_ACTION_PREFIX}"))(self.on_link_click)
        app.error(self.on_error)

    async def process_each_event_once(
        self, body: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Slack redelivers events it thinks were missed (`X-Slack-Retry-Num`); the inbox
        table makes every process agree on which delivery is the first. Reactions are
        recorded with their event id by the core's inbox (`on_reaction`). An event that
        cannot be recorded within Slack's 3 s is answered 503, and Slack sends it again."""
        event_id = _event_id(body)
        if event_id and _event_type(body) not in REACTION_EVENTS:
            try:
                async with self.bot.answering.transaction() as repos:
                    first = await repos.inbox.first_delivery(PLATFORM, event_id, self.clock())
            except DB_ERRORS as error:
                return _send_again(body, error)
            if not first:
                log.info("skipping redelivered Slack event %s", event_id)
                return BoltResponse(status=200, body="")
        await next()
        return None

    async def on_command(
        self,
        ack: AsyncAck,
        command: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        """`/papers ...`: answered in the acknowledgement when the answer is ready in time,
        else on the command's response_url."""
        team = _team(context, command)
        user, channel, response_url = (
            command.get(name) for name in ("user_id", "channel_id", "response_url")
        )
        if not (team and _nonempty_str(user) and _nonempty_str(channel)
                and _nonempty_str(response_url) and response_url.startswith("http")):  # fmt: skip
            log.warning("ignoring a Slack command without team, user, channel or response_url")
            await ack()
            return
        text = str(command.get("text") or "")

        async def is_admin() -> bool:  # asked by the core only for admin commands
            return await self.admin_check(client, team, user)

        async def reply() -> dict[str, Any]:
            event = CommandInvoked(
                ChannelRef(Scope(PLATFORM, team), channel), user, text, is_admin,
                files_in_answer=False,  # a command's answer carries no file: files go by DM
            )  # fmt: skip
            answer = await self.bot.handle_command(event)
            share = share_command(text, answer)
            return {
                "response_type": "ephemeral",
                "text": fallback_text(answer),
                "blocks": blocks(answer, share_value=share),
            }

        replying = asyncio.ensure_future(reply())
        done, _ = await asyncio.wait({replying}, timeout=self.answer_in_ack_within)
        if done:
            await ack(**replying.result())
            return
        await ack()

        async def answer_later() -> None:
            await self.outbound.answer(response_url, **await replying)

        self.background.start(answer_later(), name="late answer")

    async def on_share(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        """ "Share to channel": the button carries the command; its answer is posted."""
        await ack()
        team, user = _team(context, body), str(body.get("user", {}).get("id", ""))
        channel = str((body.get("channel") or {}).get("id", ""))
        text = str(action.get("value", ""))
        event = CommandInvoked(ChannelRef(Scope(PLATFORM, team), channel), user, text, False)
        self.background.start(self._share(event, respond, client), name="share")

    async def _share(
        self, event: CommandInvoked, respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        shared = await self.bot.share(event)
        if shared is None:
            await respond(response_type="ephemeral", replace_original=False, text=NOTHING_TO_SHARE)
            return
        channel = event.channel.channel
        try:
            await client.chat_postMessage(
                channel=channel,
                text=fallback_text(shared),
                blocks=blocks(shared),
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as error:
            reason = str(error.response.get("error"))
            log.info("share to %s failed: %s", channel, reason)
            await respond(
                response_type="ephemeral", replace_original=False, text=_share_refused(reason)
            )
            return
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("share to %s: Slack unreachable: %s", channel, type(error).__name__)
            await respond(response_type="ephemeral", replace_original=False, text=SHARE_UNREACHABLE)
            return
        await respond(
            response_type="ephemeral", replace_original=True, text="Shared to the channel."
        )

    async def on_reaction(
        self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> BoltResponse | None:
        """`reaction_added` / `reaction_removed`: maybe a save. Recorded by the core's inbox
        before Slack is answered, then acted on and confirmed privately (`bot.inbox`)."""
        added = event.get("type") == "reaction_added"
        item = event.get("item")
        if not isinstance(item, dict) or not event.get("user"):
            log.warning("ignoring a Slack %s event without an item or user", event.get("type"))
            return None
        if item.get("type") != "message" or not item.get("channel") or not item.get("ts"):
            return None  # a reaction to a file or file comment
        team, user = _team(context, body), str(event["user"])
        channel = ChannelRef(Scope(PLATFORM, team), str(item["channel"]))
        emoji = str(event.get("reaction", "")).split("::")[0]  # drop a skin-tone suffix
        reaction = ReactionChanged(MessageRef(channel, str(item["ts"])), user, emoji, added)
        try:
            taken = await self.bot.inbox.take_in(reaction, event_id=_event_id(body))
        except DB_ERRORS as error:
            return _send_again(body, error)
        if taken:
            self.background.start(self.bot.inbox.act_now(PLATFORM), name="reaction")
        return None

    async def on_save_shortcut(
        self, ack: AsyncAck, shortcut: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """The "Save paper" message shortcut: the papers the message links to are saved for
        the user, who is answered privately on the shortcut's response_url."""
        await ack()
        team, user = _team(context, shortcut), shortcut.get("user")
        user = user.get("id") if isinstance(user, dict) else None
        message, response_url = shortcut.get("message"), shortcut.get("response_url")
        if not (team and _nonempty_str(user) and isinstance(message, dict)
                and _nonempty_str(response_url) and response_url.startswith("http")):  # fmt: skip
            log.warning("ignoring a Slack shortcut without team, user, message or response_url")
            return
        event = SaveFromMessage(UserRef(Scope(PLATFORM, team), user), message_text(message))
        self.background.start(self._save_from_message(event, response_url), name="shortcut")

    async def _save_from_message(self, event: SaveFromMessage, response_url: str) -> None:
        answer = await self.bot.save_from_message(event)
        await self.outbound.answer(
            response_url, response_type="ephemeral", text=fallback_text(answer),
            blocks=blocks(answer),
        )  # fmt: skip

    async def on_link_shared(self, event: dict[str, Any], client: AsyncWebClient) -> None:
        """`link_shared`: links to one of our unfurl domains were posted; each that names a
        paper gets its card under the message (`chat.unfurl`)."""
        links = event.get("links")
        urls = [
            str(item["url"])
            for item in (links if isinstance(links, list) else [])
            if isinstance(item, dict) and _nonempty_str(item.get("url"))
        ]
        unfurl_id, source = event.get("unfurl_id"), event.get("source")
        channel, ts = event.get("channel"), event.get("message_ts")
        if _nonempty_str(unfurl_id) and _nonempty_str(source):
            address = {"unfurl_id": unfurl_id, "source": source}
        elif _nonempty_str(channel) and _nonempty_str(ts):
            address = {"channel": channel, "ts": ts}
        else:
            log.warning("ignoring a Slack link_shared event without a message to unfurl in")
            return
        if urls:
            self.background.start(self._unfurl(urls, address, client), name="unfurl")

    async def _unfurl(
        self, urls: list[str], address: dict[str, str], client: AsyncWebClient
    ) -> None:
        cards = await self.bot.unfurl(urls)
        if not cards:
            return
        unfurls = {url: {"blocks": unfurl_blocks(card)} for url, card in cards.items()}
        try:
            await client.chat_unfurl(
                unfurls=unfurls, channel=address.get("channel"), ts=address.get("ts"),
                unfurl_id=address.get("unfurl_id"), source=address.get("source"),
            )  # fmt: skip
        except SlackApiError as error:
            log.warning("chat.unfurl failed: %s", error.response.get("error"))
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("chat.unfurl unreachable: %s", type(error).__name__)

    async def on_channel_gone(
        self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """The bot left, or lost, a channel: its posts stop and their admins are told."""
        team, channel = _team(context, body), event.get("channel")
        if not (team and _nonempty_str(channel)):
            log.warning("ignoring a Slack %s event without team or channel", event.get("type"))
            return
        gone = ChannelGone(
            ChannelRef(Scope(PLATFORM, team), channel), CHANNEL_GONE_EVENTS[str(event["type"])]
        )
        self.background.start(self.bot.channel_gone(gone), name="channel gone")

    async def on_workspace_gone(
        self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """The app was uninstalled, or the bot's token revoked: everything there stops."""
        team = _team(context, body)
        if not team:
            log.warning("ignoring a Slack %s event without team", event.get("type"))
            return
        tokens = event.get("tokens")
        if event.get("type") == "tokens_revoked" and not (
            isinstance(tokens, dict) and tokens.get("bot")
        ):
            return  # only users' tokens went; the bot still works
        await self.bot.workspace_gone(WorkspaceGone(Scope(PLATFORM, team)))

    async def on_link_click(self, ack: AsyncAck) -> None:
        await ack()  # the browser opens the link; Slack still wants the click acknowledged

    async def on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("Slack listener failed: %s", type(error).__name__, exc_info=error)
