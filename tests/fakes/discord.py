"""Fake Discord for tests: the REST API and the gateway in one aiohttp app on 127.0.0.1.

The real, unmodified discord.py client runs against it in the test's own event loop. Point it
there with `async with FakeDiscord() as fake:` (or the `fake_discord` fixture), which sets
`discord.http.Route.BASE = fake.api_url` and
`discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)` and restores
both afterwards; the production adapter is pointed at a fake the same way (`point_discord_at`).

What the fake does, and why it looks the way it does:

* Gateway (`/gateway`): HELLO, then READY (guilds unavailable, `resume_gateway_url` = our own
  url so a resume stays local) and one full GUILD_CREATE per configured guild, so that
  discord.py caches the guilds and fires `on_ready`. Heartbeats are acknowledged. Frames are
  plain JSON text: discord.py asks for `compress=zlib-stream` but also accepts text frames.
  `await fake.dispatch(event, data)` pushes any dispatch event; the builders below
  (`slash_command`, `message_command`, `autocomplete`, `component`, `reaction_add`,
  `reaction_remove`) make realistic API v10 payloads for the common ones.
* REST (`/api/v10/...`): every request is recorded as a `Call` in `fake.calls`, answered or
  not. JSON answers carry exactly `Content-Type: application/json`: discord.py compares the
  header verbatim, so aiohttp's `json_response` (which appends `; charset=utf-8`) would make it
  treat every body as text. Unknown routes answer 404 `{"message": "404: Not Found", ...}`.
* Interactions: `POST /interactions/{id}/{token}/callback?with_response=1` answers the
  callback object discord.py 2.5+ parses (`{"interaction": {...}, "resource": {...}}`); a bare
  204 would make `interaction.response.send_message` fail. The response message is stored so
  `@original` and followups (`/webhooks/{app}/{token}...`) work afterwards. As on Discord, the
  first followup right after a deferral ("thinking...") edits that message, keeping its
  ephemeral flag, and every later one is a message of its own.
* Messages: a channel send, an interaction response or update, a followup and an edit are
  refused as Discord refuses them: 400 code 50006 when empty, 50035 beyond its limits
  (`within_limits`).
* Faults: `fake.fail_next(...)` queues failures by method and path regex, `block_channel(...)`
  makes every send to a channel fail. A 429 gets the `Via` header (without it discord.py
  assumes a Cloudflare ban and raises instead of sleeping `retry_after` and retrying).

Snowflakes are increasing integers (as strings on the wire, as Discord sends them); the ids
the tests know in advance (`APPLICATION_ID`, `GUILD_ID`, `CHANNEL_ID`, `USER_ID`, ...) are
module constants below every generated one.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import mimetypes
import re
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import discord.gateway
import discord.http
import pytest
import yarl
from aiohttp import WSCloseCode, WSMsgType, web

DISCORD_EPOCH_MS = 1_420_070_400_000
BOT_TOKEN = "fake-token"
APPLICATION_ID = 1_100_000_000_000_000_001  # also the bot user's id, as for every modern app
BOT_USER_ID = APPLICATION_ID
GUILD_ID = 1_100_000_000_000_000_100
CHANNEL_ID = 1_100_000_000_000_000_200  # a text channel in GUILD_ID
USER_ID = 1_100_000_000_000_000_300  # a human member of GUILD_ID
OWNER_ID = 1_100_000_000_000_000_301  # GUILD_ID's owner
BOT_NAME = "paperboy"
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024  # interactions must carry it: discord.py reads it

# Permission bits (https://discord.com/developers/docs/topics/permissions).
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_APPLICATION_COMMANDS = 1 << 31
MANAGE_GUILD = 1 << 5
ADMINISTRATOR = 1 << 3
MEMBER_PERMISSIONS = (
    ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_APPLICATION_COMMANDS
)
ADMIN_PERMISSIONS = (1 << 41) - 1  # everything, ADMINISTRATOR included
BOT_PERMISSIONS = MEMBER_PERMISSIONS

# Privileged gateway intents: members, presences, message content.
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)

# Message flags the fake interprets.
EPHEMERAL = 1 << 6
LOADING = 1 << 7

_JSON = "application/json"
_snowflakes = itertools.count((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22)


def snowflake() -> str:
    """A fresh id, larger than every earlier one (and than the module's fixed ids)."""
    return str(next(_snowflakes))


def _now() -> str:
    return datetime.now(UTC).isoformat()


# Wire objects. Each builds the full v10 shape, because discord.py indexes some keys directly
# (a missing `discriminator`, `flags` on a member or `attachment_size_limit` on an
# interaction is a KeyError inside the client, i.e. a silently dropped event).


def user_object(user_id: int, username: str | None = None, *, bot: bool = False) -> dict[str, Any]:
    """A user as Discord serialises it (`discriminator` "0": the post-2023 username system)."""
    name = username or (BOT_NAME if user_id == BOT_USER_ID else f"user{user_id % 10_000}")
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": None if bot else name.title(),
        "avatar": None,
        "avatar_decoration_data": None,
        "banner": None,
        "accent_color": None,
        "public_flags": 0,
        "bot": bot or user_id == BOT_USER_ID,
        "system": False,
        "primary_guild": None,
        "collectibles": None,
    }


def member_object(
    user: dict[str, Any] | int,
    *,
    roles: Iterable[int] = (),
    permissions: int | None = None,
    joined_at: str = "2024-01-01T00:00:00+00:00",
) -> dict[str, Any]:
    """A guild member. `permissions` (the member's total in the channel, as a string) is only
    present in interaction payloads, as on Discord."""
    member: dict[str, Any] = {
        "user": user_object(user) if isinstance(user, int) else user,
        "roles": [str(r) for r in roles],
        "nick": None,
        "avatar": None,
        "banner": None,
        "joined_at": joined_at,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
        "unusual_dm_activity_until": None,
    }
    if permissions is not None:
        member["permissions"] = str(permissions)
    return member


def text_channel_object(
    channel_id: int, *, guild_id: int = GUILD_ID, name: str = "general", position: int = 0
) -> dict[str, Any]:
    """A guild text channel (type 0) as in GUILD_CREATE and `GET /channels/{id}`."""
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": name,
        "position": position,
        "permission_overwrites": [],
        "nsfw": False,
        "topic": None,
        "rate_limit_per_user": 0,
        "parent_id": None,
        "last_message_id": None,
        "last_pin_timestamp": None,
        "flags": 0,
    }


def role_object(
    role_id: int, *, name: str = "@everyone", permissions: int = 0, position: int = 0
) -> dict[str, Any]:
    """A role; the @everyone role has the guild's id."""
    return {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(permissions),
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def guild_object(
    guild_id: int = GUILD_ID,
    *,
    name: str = "Paper Club",
    owner_id: int = OWNER_ID,
    channels: Sequence[dict[str, Any]] | None = None,
    roles: Sequence[dict[str, Any]] = (),
    members: Sequence[dict[str, Any]] | None = None,
    everyone_permissions: int = 0,
    member_count: int = 2,
) -> dict[str, Any]:
    """A full guild as GUILD_CREATE carries it. By default: one text channel (`CHANNEL_ID` for
    `GUILD_ID`), two members (the bot and `USER_ID`) of which, as on Discord without the
    members intent, only the bot's own member is in `members`."""
    if channels is None:
        channels = [
            text_channel_object(
                CHANNEL_ID if guild_id == GUILD_ID else int(snowflake()), guild_id=guild_id
            )
        ]
    if members is None:
        members = [member_object(BOT_USER_ID)]
    return {
        "id": str(guild_id),
        "name": name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "premium_progress_bar_enabled": False,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "widget_enabled": False,
        "widget_channel_id": None,
        "vanity_url_code": None,
        "preferred_locale": "en-US",
        "features": [],
        "emojis": [],
        "stickers": [],
        "roles": [role_object(guild_id, permissions=everyone_permissions), *roles],
        "channels": list(channels),
        "threads": [],
        "members": list(members),
        "presences": [],
        "voice_states": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "member_count": member_count,
        "max_members": 500_000,
        "max_video_channel_users": 25,
        "large": False,
        "lazy": True,
        "unavailable": False,
        "joined_at": "2024-01-01T00:00:00+00:00",
        "application_id": None,
        "incidents_data": None,
    }


# Interaction option helpers: `slash_command("paper", [subcommand_group("admin",
# subcommand("ping", option("word", "hi")))])`.


def option(name: str, value: Any, *, type: int | None = None, focused: bool = False) -> dict:
    """A value option; `type` is inferred from `value` (str 3, bool 5, int 4, float 10) unless
    given (6 user, 7 channel, 8 role, 9 mentionable, 11 attachment take snowflake strings)."""
    if type is None:
        type = {str: 3, bool: 5, int: 4, float: 10}[value.__class__]
    result: dict[str, Any] = {"type": type, "name": name, "value": value}
    if focused:
        result["focused"] = True
    return result


def subcommand(name: str, *options: dict[str, Any]) -> dict[str, Any]:
    """A subcommand (option type 1) holding value options."""
    return {"type": 1, "name": name, "options": list(options)}


def subcommand_group(name: str, *subcommands: dict[str, Any]) -> dict[str, Any]:
    """A subcommand group (option type 2) holding subcommands."""
    return {"type": 2, "name": name, "options": list(subcommands)}


def _interaction(
    type: int,
    *,
    user_id: int,
    guild_id: int | None,
    channel_id: int,
    permissions: int,
    roles: Iterable[int],
    application_id: int,
    app_permissions: int,
    locale: str,
    guild_locale: str,
) -> dict[str, Any]:
    """The fields every interaction shares; in a guild `member`, in a DM `user`."""
    interaction_id = snowflake()
    payload: dict[str, Any] = {
        "id": interaction_id,
        "application_id": str(application_id),
        "type": type,
        "token": f"aW50ZXJhY3Rpb246{interaction_id}:{secrets.token_urlsafe(24)}",
        "version": 1,
        "channel_id": str(channel_id),
        "app_permissions": str(app_permissions),
        "locale": locale,
        "entitlements": [],
        "entitlement_sku_ids": [],
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
    }
    user = user_object(user_id)
    if guild_id is not None:
        channel = text_channel_object(channel_id, guild_id=guild_id)
        channel["permissions"] = str(permissions)
        payload |= {
            "guild_id": str(guild_id),
            "guild": {"id": str(guild_id), "locale": guild_locale, "features": []},
            "guild_locale": guild_locale,
            "channel": channel,
            "member": member_object(user, roles=roles, permissions=permissions),
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0,
        }
    else:
        payload |= {
            "channel": {
                "id": str(channel_id),
                "type": 1,
                "last_message_id": None,
                "flags": 0,
                "recipients": [user],
            },
            "user": user,
            "authorizing_integration_owners": {"0": "0"},
            "context": 1,
        }
    return payload


def slash_command(
    name: str,
    options: Sequence[dict[str, Any]] = (),
    *,
    user_id: int = USER_ID,
    guild_id: int | None = GUILD_ID,
    channel_id: int = CHANNEL_ID,
    permissions: int = MEMBER_PERMISSIONS,
    roles: Iterable[int] = (),
    command_id: int | None = None,
    command_guild_id: int | None = None,
    resolved: dict[str, Any] | None = None,
    application_id: int = APPLICATION_ID,
    app_permissions: int = BOT_PERMISSIONS,
    locale: str = "en-US",
    guild_locale: str = "en-US",
) -> dict[str, Any]:
    """An INTERACTION_CREATE payload for a chat-input command (type 2).

    `options` is the nested list Discord sends (see `subcommand_group`, `subcommand`,
    `option`). `command_guild_id` marks a guild-scoped command: discord.py's CommandTree then
    looks the command up among that guild's commands instead of the global ones. With
    `guild_id=None` the command comes from the user's DM with the bot: pass that channel's id
    (`fake.dm_channel_for(user_id)["id"]`) as `channel_id`.
    """
    payload = _interaction(
        2,
        user_id=user_id,
        guild_id=guild_id,
        channel_id=channel_id,
        permissions=permissions,
        roles=roles,
        application_id=application_id,
        app_permissions=app_permissions,
        locale=locale,
        guild_locale=guild_locale,
    )
    data: dict[str, Any] = {
        "id": str(command_id) if command_id is not None else snowflake(),
        "name": name,
        "type": 1,
        "options": copy.deepcopy(list(options)),
    }
    if command_guild_id is not None:
        data["guild_id"] = str(command_guild_id)
    if resolved is not None:
        data["resolved"] = resolved
    payload["data"] = data
    return payload


def message_command(name: str, message: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """An INTERACTION_CREATE payload for a message context-menu command (type 2, command type
    3) picked on `message` (a message object, as `FakeDiscord.add_message` returns it), in
    its channel unless `channel_id` is given; other `slash_command` arguments apply. Discord
    resolves the message, content included, whatever the bot's intents."""
    kwargs.setdefault("channel_id", int(message["channel_id"]))
    resolved = {"messages": {message["id"]: copy.deepcopy(message)}}
    payload = slash_command(name, resolved=resolved, **kwargs)
    del payload["data"]["options"]  # a context-menu command has none
    payload["data"] |= {"type": 3, "target_id": message["id"]}
    return payload


def _focus_last(options: list[dict[str, Any]]) -> bool:
    """Mark the last value option (depth first) focused unless one already is."""
    for opt in reversed(options):
        if opt.get("type") in (1, 2):
            if _focus_last(opt.setdefault("options", [])):
                return True
        elif "value" in opt:
            opt["focused"] = True
            return True
    return False


def _has_focus(options: Iterable[dict[str, Any]]) -> bool:
    return any(o.get("focused") or _has_focus(o.get("options", [])) for o in options)


def autocomplete(
    name: str, options: Sequence[dict[str, Any]] = (), **kwargs: Any
) -> dict[str, Any]:
    """An autocomplete interaction (type 4): `slash_command` arguments; if no option is marked
    `"focused": true` the last value option is (what the user is typing in)."""
    payload = slash_command(name, options, **kwargs)
    payload["type"] = 4
    if not _has_focus(payload["data"]["options"]):
        _focus_last(payload["data"]["options"])
    return payload


def component(
    custom_id: str,
    *,
    message: dict[str, Any],
    user_id: int = USER_ID,
    guild_id: int | None = GUILD_ID,
    channel_id: int | None = None,
    component_type: int = 2,
    values: Sequence[str] | None = None,
    permissions: int = MEMBER_PERMISSIONS,
    roles: Iterable[int] = (),
    application_id: int = APPLICATION_ID,
    app_permissions: int = BOT_PERMISSIONS,
    locale: str = "en-US",
    guild_locale: str = "en-US",
) -> dict[str, Any]:
    """A message-component interaction (type 3): a button click (component_type 2) or a select
    (3, 5-8, with `values`) on `message`, the message object it is attached to (as the fake
    stored it: an ephemeral one keeps its flags 64). discord.py rebuilds the view from the
    message's components, so the clicked `custom_id` must be among them for dynamic items."""
    if channel_id is None:
        channel_id = int(message["channel_id"])
    payload = _interaction(
        3,
        user_id=user_id,
        guild_id=guild_id,
        channel_id=channel_id,
        permissions=permissions,
        roles=roles,
        application_id=application_id,
        app_permissions=app_permissions,
        locale=locale,
        guild_locale=guild_locale,
    )
    data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
    if values is not None:
        data["values"] = list(values)
    payload["data"] = data
    payload["message"] = copy.deepcopy(message)
    return payload


def _emoji(emoji: str, emoji_id: int | None) -> dict[str, Any]:
    if emoji_id is None:
        return {"id": None, "name": emoji}
    return {"id": str(emoji_id), "name": emoji, "animated": False}


def reaction_add(
    emoji: str = "🔖",
    *,
    message_id: int,
    user_id: int = USER_ID,
    channel_id: int = CHANNEL_ID,
    guild_id: int | None = GUILD_ID,
    emoji_id: int | None = None,
    message_author_id: int | None = BOT_USER_ID,
    roles: Iterable[int] = (),
) -> dict[str, Any]:
    """A MESSAGE_REACTION_ADD payload; in a guild it carries the reacting `member`."""
    payload: dict[str, Any] = {
        "user_id": str(user_id),
        "type": 0,
        "message_id": str(message_id),
        "channel_id": str(channel_id),
        "emoji": _emoji(emoji, emoji_id),
        "burst": False,
        "burst_colors": [],
    }
    if message_author_id is not None:
        payload["message_author_id"] = str(message_author_id)
    if guild_id is not None:
        payload["guild_id"] = str(guild_id)
        payload["member"] = member_object(user_id, roles=roles)
    return payload


def reaction_remove(
    emoji: str = "🔖",
    *,
    message_id: int,
    user_id: int = USER_ID,
    channel_id: int = CHANNEL_ID,
    guild_id: int | None = GUILD_ID,
    emoji_id: int | None = None,
) -> dict[str, Any]:
    """A MESSAGE_REACTION_REMOVE payload (no member, as on Discord)."""
    payload: dict[str, Any] = {
        "user_id": str(user_id),
        "type": 0,
        "message_id": str(message_id),
        "channel_id": str(channel_id),
        "emoji": _emoji(emoji, emoji_id),
        "burst": False,
    }
    if guild_id is not None:
        payload["guild_id"] = str(guild_id)
    return payload


# The server.


@dataclass(frozen=True)
class Call:
    """One REST request as the fake received it, and the status it answered.

    `path` is relative to `/api/v10` and percent-decoded (a reaction's emoji reads "🔖").
    `json` is the parsed JSON body, or for multipart the parsed `payload_json` part, with the
    uploaded files in `files` as `(filename, bytes)` in form order; None without a body.
    `headers` has lower-cased names (`authorization` is "Bot <token>" on bot routes).
    """

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: tuple[tuple[str, bytes], ...] = ()
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, method: str, path_pattern: str) -> bool:
        """Same method and `re.fullmatch(path_pattern, path)`."""
        return self.method == method and re.fullmatch(path_pattern, self.path) is not None


@dataclass
class Fault:
    """A queued failure: the next `times` requests matching answer `status` with `body`,
    once `after` matching requests went through."""

    method: str
    pattern: re.Pattern[str]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int
    after: int = 0


@dataclass
class InteractionRecord:
    """An interaction the fake dispatched and what the bot answered to it."""

    payload: dict[str, Any]
    response_type: int | None = None  # the callback type, once acknowledged
    response_data: dict[str, Any] | None = None
    original_message_id: str | None = None
    followup_ids: list[str] = field(default_factory=list)


@dataclass
class GatewaySession:
    """One gateway websocket connection."""

    ws: web.WebSocketResponse
    query: dict[str, str]
    session_id: str = field(default_factory=lambda: secrets.token_hex(16))
    seq: int = 0
    identified: bool = False
    ended: bool = False  # the connection closed, from either side or by a dead process

    @property
    def live(self) -> bool:
        """Identified (or resumed) and still connected: it receives dispatched events."""
        return self.identified and not self.ended and not self.ws.closed


@dataclass
class _Request:
    method: str
    query: dict[str, str]
    json: Any
    files: list[tuple[str, bytes]]


_Handler = Callable[..., Awaitable[web.Response]]


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON with `Content-Type: application/json` exactly (see the module docstring)."""
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": _JSON, **(headers or {})},
    )


def embed_length(embed: dict[str, Any]) -> int:
    """The characters of an embed that count towards a message's 6000, as Discord counts."""
    fields = embed.get("fields") or []
    return sum(
        len(text or "")
        for text in (
            embed.get("title"),
            embed.get("description"),
            (embed.get("footer") or {}).get("text"),
            (embed.get("author") or {}).get("name"),
            *(f.get("name") for f in fields),
            *(f.get("value") for f in fields),
        )
    )


def within_limits(payload: dict[str, Any]) -> bool:
    """Whether a message keeps Discord's documented limits (its API answers 400 otherwise):
    content 2000; 10 embeds; per embed title 256, description 4096, 25 fields (name 256,
    value 1024), footer 2048, author 256; 6000 characters over all embeds."""
    embeds = payload.get("embeds") or []
    limits = (
        len(payload.get("content") or "") <= 2000,
        len(embeds) <= 10,
        sum(embed_length(embed) for embed in embeds) <= 6000,
        *(
            len(embed.get("title") or "") <= 256
            and len(embed.get("description") or "") <= 4096
            and len((embed.get("footer") or {}).get("text") or "") <= 2048
            and len((embed.get("author") or {}).get("name") or "") <= 256
            and len(embed.get("fields") or []) <= 25
            and all(
                len(f.get("name") or "") <= 256 and len(f.get("value") or "") <= 1024
                for f in embed.get("fields") or []
            )
            for embed in embeds
        ),
    )
    return all(limits)


def _error(status: int, message: str, code: int = 0) -> web.Response:
    return json_response({"message": message, "code": code}, status)


def _not_found() -> web.Response:
    return _error(404, "404: Not Found")


def _no_content() -> web.Response:
    return web.Response(status=204)


def _refused(
    payload: dict[str, Any], files: Sequence[tuple[str, bytes]], *, new: bool = True
) -> web.Response | None:
    """Discord's 400 for a message it will not create (`new`) or store: empty (50006), or
    beyond its limits (50035); None when it is fine."""
    shown = any(payload.get(k) for k in ("content", "embeds", "components", "poll", "sticker_ids"))
    if new and not (shown or files):
        return _error(400, "Cannot send an empty message", 50006)
    if not within_limits(payload):
        return _error(400, "Invalid Form Body", 50035)
    return None


class FakeDiscord:
    """The fake Discord REST API and gateway. See the module docstring.

    State tests read (and may mutate): `calls`, `identifies` (IDENTIFY `d` payloads),
    `gateway_received` (every frame the clients sent), `commands` (last synced commands per
    scope: `commands[None]` global, `commands[guild_id]`), `messages` (channel id -> message
    objects in send order, interaction responses and followups included, ephemeral ones with
    flags 64), `reactions` (`(channel_id, message_id, emoji, user_id)` the bot added),
    `interactions` (id -> `InteractionRecord`), `dm_channels` (recipient id -> channel),
    `users` (id -> user object served by `GET /users/{id}` and used as DM recipients),
    `guilds` (sent on IDENTIFY), `blocked_channels`.

    `identified` is set once a client has IDENTIFYed and got READY plus its GUILD_CREATEs.
    `live_sessions()` are the gateway sessions dispatches reach now; `max_live_sessions` is the
    most there ever were at once (several processes sharing one bot token should keep it 1).
    `token`, if not None, is the only bot token accepted (REST 401, gateway close 4004).
    `privileged_intents_allowed` (by default every intent) is what the Developer Portal
    allows: an IDENTIFY asking for a privileged intent outside it gets close 4014.
    """

    def __init__(
        self,
        *,
        guilds: Sequence[dict[str, Any]] | None = None,
        token: str | None = None,
        application_id: int = APPLICATION_ID,
        bot_user: dict[str, Any] | None = None,
        application_flags: int = 0,
        heartbeat_interval_ms: int = 45_000,
    ) -> None:
        self.token = token
        self.privileged_intents_allowed = PRIVILEGED_INTENTS
        self.application_id = application_id
        self.bot_user = bot_user or user_object(application_id, BOT_NAME, bot=True)
        self.application_flags = application_flags
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.guilds: dict[int, dict[str, Any]] = {
            int(g["id"]): g for g in (guilds if guilds is not None else [guild_object()])
        }
        self.calls: list[Call] = []
        self.identifies: list[dict[str, Any]] = []
        self.gateway_received: list[dict[str, Any]] = []
        self.gateway_sessions: list[GatewaySession] = []
        self.identified = asyncio.Event()
        self.max_live_sessions = 0
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.messages: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.reactions: set[tuple[int, int, str, int]] = set()
        self.interactions: dict[str, InteractionRecord] = {}
        self.dm_channels: dict[int, dict[str, Any]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.blocked_channels: dict[int, tuple[int, dict[str, Any]]] = {}
        self.faults: list[Fault] = []
        self.attachments: dict[str, bytes] = {}  # attachment id -> content, served on /cdn
        self._by_token: dict[str, InteractionRecord] = {}
        self._by_message: dict[str, dict[str, Any]] = {}
        # Like Discord's `enforce_nonce`: a repeated (channel, nonce) answers the first message.
        self._nonces: dict[tuple[str, str], dict[str, Any]] = {}
        self.lose_answers = 0  # the next N message sends are stored, then answered 500
        self._exit_stack = contextlib.ExitStack()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._routes: list[tuple[str, re.Pattern[str], _Handler]] = [
            (method, re.compile(pattern), handler)
            for method, pattern, handler in [
                ("GET", r"/users/@me", self._get_me),
                ("GET", r"/users/(?P<user_id>\d+)", self._get_user),
                ("POST", r"/users/@me/channels", self._create_dm),
                ("GET", r"/oauth2/applications/@me", self._get_application),
                ("GET", r"/applications/@me", self._get_application),
                ("GET", r"/gateway", self._get_gateway),
                ("GET", r"/gateway/bot", self._get_gateway),
                ("GET", r"/applications/(?P<app>\d+)/commands", self._get_commands),
                ("PUT", r"/applications/(?P<app>\d+)/commands", self._put_commands),
                (
                    "GET",
                    r"/applications/(?P<app>\d+)/guilds/(?P<guild>\d+)/commands",
                    self._get_commands,
                ),
                (
                    "PUT",
                    r"/applications/(?P<app>\d+)/guilds/(?P<guild>\d+)/commands",
                    self._put_commands,
                ),
                (
                    "POST",
                    r"/interactions/(?P<iid>\d+)/(?P<token>[^/]+)/callback",
                    self._interaction_callback,
                ),
                ("POST", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)", self._followup),
                *[
                    (
                        method,
                        r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)",
                        self._webhook_message,
                    )
                    for method in ("GET", "PATCH", "DELETE")
                ],
                ("GET", r"/channels/(?P<cid>\d+)", self._get_channel),
                ("POST", r"/channels/(?P<cid>\d+)/messages", self._send_message),
                *[
                    (method, r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", self._message)
                    for method in ("GET", "PATCH", "DELETE")
                ],
                *[
                    (
                        method,
                        r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)/reactions/"
                        r"(?P<emoji>[^/]+)/(?P<user>@me|\d+)",
                        self._reaction,
                    )
                    for method in ("PUT", "DELETE")
                ],
            ]
        ]

    # Lifecycle.

    async def start(self) -> FakeDiscord:
        """Listen on a random port of 127.0.0.1 (in the running event loop)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/cdn/attachments/{cid}/{aid}/{filename}", self._cdn)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._api)
        # A short shutdown_timeout: aiohttp otherwise waits up to 60 s for open websockets.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        """Close gateway sockets (clients should have been closed first) and stop serving."""
        for session in self.gateway_sessions:
            if not session.ws.closed:
                await session.ws.close(code=WSCloseCode.GOING_AWAY)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        """Start, and point discord.py at the fake until exit."""
        await self.start()
        self._exit_stack.enter_context(point_discord_at(self))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            self._exit_stack.close()
        finally:
            await self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        """For `discord.http.Route.BASE`."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """For `DiscordWebSocket.DEFAULT_GATEWAY` (and sent as `resume_gateway_url`)."""
        return f"ws://127.0.0.1:{self._port}/gateway"

    # Test controls.

    def fail_next(
        self,
        method: str,
        path_pattern: str,
        status: int,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        after: int = 0,
    ) -> None:
        """Make the next `times` requests with `method` whose path (relative to /api/v10)
        `re.fullmatch`es `path_pattern` answer `status` with JSON `body`, before any routing,
        once `after` of them went through.

        For 429 the body defaults to Discord's rate-limit body (`retry_after` 0.05 unless
        given, `global` false) and `Via`/`Retry-After` headers are added: discord.py then
        sleeps `retry_after` and retries the same request. Typical bodies: 403
        `{"message": "Missing Access", "code": 50001}`, DMs 403
        `{"message": "Cannot send messages to this user", "code": 50007}`.
        """
        headers = dict(headers or {})
        if status == 429:
            body = {
                "message": "You are being rate limited.",
                "retry_after": 0.05,
                "global": False,
                **(body or {}),
            }
            headers.setdefault("Via", "1.1 google")
            headers.setdefault("Retry-After", str(max(1, round(body["retry_after"]))))
            headers.setdefault("X-RateLimit-Scope", "user")
        elif body is None:
            body = {"message": f"{status}: Injected failure", "code": 0}
        self.faults.append(
            Fault(method.upper(), re.compile(path_pattern), status, body, headers, times, after)
        )

    def forget_nonces(self) -> None:
        """Discord remembers a message's nonce for a few minutes only: after that, a repeat
        is a new message."""
        self._nonces.clear()

    def block_channel(
        self, channel_id: int, status: int = 403, body: dict[str, Any] | None = None
    ) -> None:
        """Make every message send to `channel_id` fail (default 403 Missing Access)."""
        self.blocked_channels[channel_id] = (
            status,
            body or {"message": "Missing Access", "code": 50001},
        )

    def block_dms(self, user_id: int) -> None:
        """Make DMs to `user_id` fail as when the user disallows them (403, code 50007)."""
        channel_id = int(self.dm_channel_for(user_id)["id"])
        self.block_channel(
            channel_id, 403, {"message": "Cannot send messages to this user", "code": 50007}
        )

    def unblock_channel(self, channel_id: int) -> None:
        self.blocked_channels.pop(channel_id, None)

    def user(self, user_id: int) -> dict[str, Any]:
        """The user object the fake knows for `user_id` (a generated one by default)."""
        if user_id == int(self.bot_user["id"]):
            return self.bot_user
        return self.users.setdefault(user_id, user_object(user_id))

    def dm_channel_for(self, user_id: int) -> dict[str, Any]:
        """The DM channel with `user_id` (stable id, created on first use)."""
        if user_id not in self.dm_channels:
            self.dm_channels[user_id] = {
                "id": snowflake(),
                "type": 1,
                "last_message_id": None,
                "flags": 0,
                "recipients": [self.user(user_id)],
            }
        return self.dm_channels[user_id]

    def message(self, message_id: int | str) -> dict[str, Any] | None:
        """A message the fake stored (sent, interaction response, followup), by id."""
        return self._by_message.get(str(message_id))

    def add_message(
        self,
        channel_id: int,
        content: str = "",
        *,
        author: dict[str, Any] | None = None,
        components: Sequence[dict[str, Any]] = (),
        embeds: Sequence[dict[str, Any]] = (),
        flags: int = 0,
    ) -> dict[str, Any]:
        """Store a message as if it had been posted earlier (by the bot unless `author` is
        given, e.g. a previous run's post whose buttons are clicked now) and return it."""
        payload = {
            "content": content,
            "components": list(components),
            "embeds": list(embeds),
            "flags": flags,
        }
        message = self._new_message(str(channel_id), payload, [])
        if author is not None:
            message["author"] = author
        return message

    def calls_to(self, method: str, path_pattern: str) -> list[Call]:
        """Recorded calls with `method` whose path `re.fullmatch`es `path_pattern`."""
        return [c for c in self.calls if c.matches(method, path_pattern)]

    async def wait_for_call(
        self, predicate: Callable[[Call], bool], *, timeout: float = 5.0, start: int = 0
    ) -> Call:
        """The first call in `calls[start:]` matching `predicate`, waiting for it if needed
        (pass `start=len(fake.calls)` to ignore earlier ones)."""

        def found() -> Call | None:
            return next((c for c in self.calls[start:] if predicate(c)), None)

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(found), timeout)
            except TimeoutError:
                seen = [f"{c.method} {c.path} -> {c.status}" for c in self.calls[start:]]
                raise TimeoutError(f"no matching call after {timeout}s; got {seen}") from None
        call = found()
        assert call is not None
        return call

    async def wait_until(self, predicate: Callable[[], bool], *, timeout: float = 5.0) -> None:
        """Wait until `predicate()` holds, checked whenever a REST call arrives and whenever a
        gateway session identifies, resumes or ends (e.g. `lambda: len(fake.identifies) == 2`)."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            except TimeoutError:
                raise TimeoutError(f"condition not met after {timeout}s") from None

    def live_sessions(self) -> list[GatewaySession]:
        return [s for s in self.gateway_sessions if s.live]

    async def _gateway_changed(self) -> None:
        self.max_live_sessions = max(self.max_live_sessions, len(self.live_sessions()))
        async with self._changed:
            self._changed.notify_all()

    async def wait_for_response(self, interaction: dict[str, Any], *, timeout: float = 5.0) -> Call:
        """The callback call answering `interaction` (a payload the fake dispatched)."""
        path = f"/interactions/{interaction['id']}/{interaction['token']}/callback"
        return await self.wait_for_call(lambda c: c.path == path, timeout=timeout)

    # Gateway.

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send `{"op": 0, "t": event, "s": n, "d": data}` to every identified connection.
        INTERACTION_CREATE payloads are remembered so the bot's answers to them work."""
        if event == "INTERACTION_CREATE":
            record = InteractionRecord(payload=data)
            self.interactions[data["id"]] = record
            self._by_token[data["token"]] = record
            if "message" in data:
                self._adopt(data["message"])
        sessions = self.live_sessions()
        if not sessions:
            raise RuntimeError(f"no identified gateway connection to dispatch {event} to")
        for session in sessions:
            await self._send_dispatch(session, event, data)

    async def interact(self, payload: dict[str, Any]) -> None:
        """Dispatch an interaction payload (`slash_command`, `autocomplete`, `component`)."""
        await self.dispatch("INTERACTION_CREATE", payload)

    async def _send(self, session: GatewaySession, payload: dict[str, Any]) -> None:
        await session.ws.send_str(json.dumps(payload))

    async def _send_dispatch(self, session: GatewaySession, event: str, data: Any) -> None:
        session.seq += 1
        await self._send(session, {"op": 0, "t": event, "s": session.seq, "d": data})

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        session = GatewaySession(ws=ws, query=dict(request.query))
        self.gateway_sessions.append(session)
        hello = {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fake-gateway"]}
        try:
            await self._send(session, {"op": 10, "d": hello, "s": None, "t": None})
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                self.gateway_received.append(frame)
                await self._on_frame(session, frame)
        finally:
            session.ended = True
            await self._gateway_changed()
        return ws

    async def _on_frame(self, session: GatewaySession, frame: dict[str, Any]) -> None:
        op, data = frame.get("op"), frame.get("d")
        if op == 1:  # heartbeat
            await self._send(session, {"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:  # identify
            self.identifies.append(data)
            if self.token is not None and data.get("token") != self.token:
                await session.ws.close(code=4004, message=b"Authentication failed.")
                return
            if (
                int(data.get("intents") or 0)
                & PRIVILEGED_INTENTS
                & ~self.privileged_intents_allowed
            ):
                await session.ws.close(code=4014, message=b"Disallowed intent(s).")
                return
            await self._ready(session, data)
        elif op == 6:  # resume: nothing was missed, the fake never drops events
            if self.token is not None and data.get("token") != self.token:
                await session.ws.close(code=4004, message=b"Authentication failed.")
                return
            session.seq = int(data.get("seq") or 0)
            await self._send_dispatch(session, "RESUMED", {"_trace": ["fake-gateway"]})
            session.identified = True
            self.identified.set()
            await self._gateway_changed()
        elif op == 8:  # request guild members: none beyond those in GUILD_CREATE
            guild_ids = data.get("guild_id")
            for guild_id in guild_ids if isinstance(guild_ids, list) else [guild_ids]:
                chunk = {
                    "guild_id": str(guild_id),
                    "members": [],
                    "chunk_index": 0,
                    "chunk_count": 1,
                    "not_found": [],
                    "nonce": data.get("nonce"),
                }
                await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

    async def _ready(self, session: GatewaySession, identify: dict[str, Any]) -> None:
        ready: dict[str, Any] = {
            "v": 10,
            "user": self.bot_user,
            "user_settings": {},
            "guilds": [{"id": str(gid), "unavailable": True} for gid in self.guilds],
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": self.application_flags},
            "auth": {},
            "_trace": ["fake-gateway"],
        }
        if "shard" in identify:
            ready["shard"] = identify["shard"]
        await self._send_dispatch(session, "READY", ready)
        for guild in self.guilds.values():
            await self._send_dispatch(session, "GUILD_CREATE", guild)
        session.identified = True
        self.identified.set()
        await self._gateway_changed()

    # REST plumbing.

    async def _api(self, request: web.Request) -> web.Response:
        path = request.path.removeprefix("/api/v10")
        method = request.method
        parsed = await self._read(request)
        response = self._fault(method, path) or self._unauthorized(request, path)
        if response is None:
            response = _not_found()
            for route_method, pattern, handler in self._routes:
                match = pattern.fullmatch(path)
                if route_method == method and match:
                    response = await handler(parsed, **match.groupdict())
                    break
        call = Call(
            method=method,
            path=path,
            query=dict(request.query),
            json=parsed.json,
            files=tuple(parsed.files),
            status=response.status,
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        return response

    async def _read(self, request: web.Request) -> _Request:
        files: list[tuple[str, bytes]] = []
        body: Any = None
        if request.content_type == "multipart/form-data":
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    files.append((value.filename, value.file.read()))
                elif name == "payload_json":
                    body = json.loads(value)
        elif request.can_read_body:
            text = await request.text()
            if text:
                try:
                    body = json.loads(text)
                except ValueError:
                    body = text
        return _Request(request.method, dict(request.query), body, files)

    def _fault(self, method: str, path: str) -> web.Response | None:
        for fault in self.faults:
            if fault.method == method and fault.pattern.fullmatch(path):
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return json_response(fault.body, fault.status, fault.headers)
        return None

    def _unauthorized(self, request: web.Request, path: str) -> web.Response | None:
        # Interaction callbacks and webhooks authenticate with the token in the URL.
        if self.token is None or path.startswith(("/interactions/", "/webhooks/")):
            return None
        if request.headers.get("Authorization") != f"Bot {self.token}":
            return _error(401, "401: Unauthorized")
        return None

    # REST routes.

    async def _get_me(self, rq: _Request) -> web.Response:
        return json_response(self.bot_user)

    async def _get_user(self, rq: _Request, user_id: str) -> web.Response:
        return json_response(self.user(int(user_id)))

    async def _get_application(self, rq: _Request) -> web.Response:
        # The keys discord.py's AppInfo indexes directly: id, name, description, icon,
        # bot_public, bot_require_code_grant, owner, verify_key.
        return json_response(
            {
                "id": str(self.application_id),
                "name": self.bot_user["username"],
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "hook": True,
                "bot_public": True,
                "bot_require_code_grant": False,
                "bot": self.bot_user,
                "owner": self.user(OWNER_ID),
                "team": None,
                "verify_key": "0" * 64,
                "flags": self.application_flags,
                "redirect_uris": [],
                "interactions_endpoint_url": None,  # else discord.py warns: no gateway events
                "role_connections_verification_url": None,
                "tags": [],
                "integration_types_config": {"0": {}},
                "approximate_guild_count": len(self.guilds),
            }
        )

    async def _get_gateway(self, rq: _Request) -> web.Response:
        return json_response(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    async def _get_commands(self, rq: _Request, app: str, guild: str | None = None) -> web.Response:
        return json_response(self.commands.get(int(guild) if guild else None, []))

    async def _put_commands(self, rq: _Request, app: str, guild: str | None = None) -> web.Response:
        scope = int(guild) if guild else None
        # Discord keeps a command's id when one with the same name and type is overwritten.
        old = {(c["name"], c.get("type", 1)): c["id"] for c in self.commands.get(scope, [])}
        stored = []
        for command in rq.json or []:
            kind = command.get("type", 1)
            echoed = {
                "id": old.get((command["name"], kind)) or snowflake(),
                "application_id": app,
                "version": snowflake(),
                "default_member_permissions": None,
                "type": kind,
                "name": command["name"],
                "description": command.get("description", ""),
                "options": command.get("options", []),
                "nsfw": False,
                **{k: v for k, v in command.items() if k not in ("name", "type")},
            }
            if scope is not None:
                echoed["guild_id"] = str(scope)
            stored.append(echoed)
        self.commands[scope] = stored
        return json_response(stored)

    async def _create_dm(self, rq: _Request) -> web.Response:
        recipient = (rq.json or {}).get("recipient_id")
        if recipient is None:
            return _error(400, "Invalid Form Body", 50035)
        return json_response(self.dm_channel_for(int(recipient)))

    async def _get_channel(self, rq: _Request, cid: str) -> web.Response:
        for guild in self.guilds.values():
            for channel in guild.get("channels", []):
                if channel["id"] == cid:
                    return json_response(channel)
        for channel in self.dm_channels.values():
            if channel["id"] == cid:
                return json_response(channel)
        return _error(404, "Unknown Channel", 10003)

    async def _send_message(self, rq: _Request, cid: str) -> web.Response:
        if int(cid) in self.blocked_channels:
            status, body = self.blocked_channels[int(cid)]
            return json_response(body, status)
        payload = rq.json or {}
        refused = _refused(payload, rq.files)
        if refused is not None:
            return refused
        nonce = (cid, str(payload.get("nonce")))
        if payload.get("enforce_nonce") and nonce in self._nonces:
            return json_response(self._nonces[nonce])
        message = self._new_message(cid, payload, rq.files)
        if payload.get("enforce_nonce"):
            self._nonces[nonce] = message
        if "message_reference" in payload:
            reference = {"type": 0, "channel_id": cid, **payload["message_reference"]}
            message["message_reference"] = reference
            message["type"] = 19
        if self.lose_answers:  # the message is out, but its answer never arrives intact
            self.lose_answers -= 1
            return _error(500, "Internal Server Error", 0)
        return json_response(message)

    async def _message(self, rq: _Request, cid: str, mid: str) -> web.Response:
        message = self._by_message.get(mid)
        if message is None or message["channel_id"] != cid:
            return _error(404, "Unknown Message", 10008)
        return self._on_stored_message(rq, message)

    async def _reaction(
        self, rq: _Request, cid: str, mid: str, emoji: str, user: str
    ) -> web.Response:
        user_id = int(self.bot_user["id"]) if user == "@me" else int(user)
        key = (int(cid), int(mid), emoji, user_id)
        if rq.method == "PUT":
            self.reactions.add(key)
        else:
            self.reactions.discard(key)
        return _no_content()

    # Interactions.

    async def _interaction_callback(self, rq: _Request, iid: str, token: str) -> web.Response:
        record = self.interactions.get(iid)
        if record is None or record.payload["token"] != token:
            return _error(404, "Unknown interaction", 10062)
        if record.response_type is not None:
            return _error(400, "Interaction has already been acknowledged.", 40060)
        body = rq.json or {}
        kind, data = body.get("type"), body.get("data") or {}
        if kind in (4, 7):  # a message, or the update of one: Discord's limits hold
            refused = _refused(data, rq.files, new=kind == 4)
            if refused is not None:
                return refused
        record.response_type, record.response_data = kind, data
        interaction = record.payload
        info: dict[str, Any] = {"id": iid, "type": interaction["type"]}
        resource: dict[str, Any] | None = None
        if kind in (4, 5):  # channel message / deferred ("thinking") channel message
            flags = int(data.get("flags") or 0)
            if kind == 5:
                flags |= LOADING
                data = {"content": "", "flags": flags}
            message = self._new_message(
                interaction["channel_id"],
                {**data, "flags": flags},
                rq.files,
                interaction=interaction,
            )
            record.original_message_id = message["id"]
            info |= {
                "response_message_id": message["id"],
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(flags & EPHEMERAL),
            }
            resource = {"type": kind, "message": message}
        elif kind in (6, 7) and "message" in interaction:  # (deferred) update of the message
            message = self._adopt(interaction["message"])
            if kind == 7:
                self._edit(message, data, rq.files)
            record.original_message_id = message["id"]
            info |= {
                "response_message_id": message["id"],
                "response_message_loading": False,
                "response_message_ephemeral": bool(message["flags"] & EPHEMERAL),
            }
            resource = {"type": kind, "message": message}
        elif kind not in (1, 6, 8, 9, 10, 12):
            record.response_type = None
            return _error(400, "Invalid Form Body", 50035)
        answer: dict[str, Any] = {"interaction": info}
        if resource is not None:
            answer["resource"] = resource
        return json_response(answer)

    def _record_for_token(self, app: str, token: str) -> InteractionRecord | None:
        record = self._by_token.get(token)
        if record is None or record.payload["application_id"] != app:
            return None
        return record

    async def _followup(self, rq: _Request, app: str, token: str) -> web.Response:
        record = self._record_for_token(app, token)
        if record is None:
            return _error(404, "Unknown Webhook", 10015)
        if record.response_type is None:
            return _error(404, "Unknown Webhook", 10015)  # Discord: no followups before the ack
        payload = rq.json or {}
        refused = _refused(payload, rq.files)
        if refused is not None:
            return refused
        interaction = record.payload
        original = self._by_message.get(record.original_message_id or "")
        if record.response_type == 5 and original is not None and original["flags"] & LOADING:
            # Right after a deferral the follow-up edits the "thinking" message instead of
            # making one; its ephemeral flag is ignored (the deferral's stays).
            replaced: dict[str, Any] = {"content": "", "embeds": [], "components": [], "flags": 0}
            self._edit(original, replaced | payload, rq.files)
            message = original
        else:
            message = self._new_message(
                interaction["channel_id"], payload, rq.files, interaction=interaction
            )
            record.followup_ids.append(message["id"])
        if rq.query.get("wait") in ("true", "True", "1"):
            return json_response(message)
        return _no_content()

    async def _webhook_message(self, rq: _Request, app: str, token: str, mid: str) -> web.Response:
        record = self._record_for_token(app, token)
        if record is None:
            return _error(404, "Unknown Webhook", 10015)
        if mid == "@original":
            mid = record.original_message_id or ""
        elif mid not in record.followup_ids and mid != record.original_message_id:
            return _error(404, "Unknown Message", 10008)
        message = self._by_message.get(mid)
        if message is None:
            return _error(404, "Unknown Message", 10008)
        return self._on_stored_message(rq, message)

    # Message store.

    def _on_stored_message(self, rq: _Request, message: dict[str, Any]) -> web.Response:
        """GET, PATCH or DELETE a stored message (the method is the current request's)."""
        if rq.method == "GET":
            return json_response(message)
        if rq.method == "PATCH":
            refused = _refused(rq.json or {}, rq.files, new=False)
            if refused is not None:
                return refused
            self._edit(message, rq.json or {}, rq.files)
            return json_response(message)
        self._by_message.pop(message["id"], None)
        channel = self.messages.get(int(message["channel_id"]), [])
        if message in channel:
            channel.remove(message)
        return _no_content()

    def _new_message(
        self,
        channel_id: str,
        payload: dict[str, Any],
        files: Sequence[tuple[str, bytes]],
        *,
        interaction: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        message_id = snowflake()
        message: dict[str, Any] = {
            "id": message_id,
            "type": 0,
            "channel_id": channel_id,
            "author": self.bot_user,
            "content": payload.get("content") or "",
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": bool(payload.get("tts")),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": self._attachments(channel_id, payload.get("attachments"), files, []),
            "embeds": payload.get("embeds") or [],
            "pinned": False,
            "flags": int(payload.get("flags") or 0),
            "components": payload.get("components") or [],
        }
        if payload.get("nonce") is not None:
            message["nonce"] = payload["nonce"]
        if payload.get("poll"):
            message["poll"] = payload["poll"]
        if interaction is not None:
            user = interaction.get("member", {}).get("user") or interaction.get("user")
            metadata: dict[str, Any] = {
                "id": interaction["id"],
                "type": interaction["type"],
                "user": user,
                "authorizing_integration_owners": interaction["authorizing_integration_owners"],
            }
            if "message" in interaction:
                metadata["interacted_message_id"] = interaction["message"]["id"]
            message |= {
                "webhook_id": interaction["application_id"],
                "application_id": interaction["application_id"],
                "interaction_metadata": metadata,
                "type": 20
                if interaction["type"] == 2 and not self._has_original(interaction)
                else 0,
            }
        self._store(message)
        return message

    def _has_original(self, interaction: dict[str, Any]) -> bool:
        record = self.interactions.get(interaction["id"])
        return record is not None and record.original_message_id is not None

    def _store(self, message: dict[str, Any]) -> None:
        self._by_message[message["id"]] = message
        self.messages[int(message["channel_id"])].append(message)

    def _adopt(self, message: dict[str, Any]) -> dict[str, Any]:
        """The stored message with this id; a copy of `message` stored if the fake never saw
        it (a message built by a test, attached to a component interaction)."""
        stored = self._by_message.get(str(message["id"]))
        if stored is None:
            stored = copy.deepcopy(message)
            self._store(stored)
        return stored

    def _edit(
        self, message: dict[str, Any], payload: dict[str, Any], files: Sequence[tuple[str, bytes]]
    ) -> None:
        defaults: dict[str, Any] = {"content": "", "embeds": [], "components": []}
        for key, default in defaults.items():
            if key in payload:
                message[key] = payload[key] if payload[key] is not None else default
        # Editing a deferred response ends "thinking"; ephemerality cannot change.
        flags = int(payload["flags"] or 0) if "flags" in payload else message["flags"]
        message["flags"] = (message["flags"] & EPHEMERAL) | (flags & ~(LOADING | EPHEMERAL))
        if "attachments" in payload or files:
            message["attachments"] = self._attachments(
                message["channel_id"], payload.get("attachments"), files, message["attachments"]
            )
        message["edited_timestamp"] = _now()

    def _attachments(
        self,
        channel_id: str,
        specs: list[dict[str, Any]] | None,
        files: Sequence[tuple[str, bytes]],
        existing: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """Attachment objects for a message: `specs` entries name either an existing
        attachment (its snowflake id) or an uploaded file (`files[index]` by index), which is
        what discord.py sends; without `specs` every uploaded file is attached."""
        if specs is None:
            specs = [{"id": index, "filename": name} for index, (name, _) in enumerate(files)]
        kept = {a["id"]: a for a in existing}
        result = []
        for spec in specs:
            ident = str(spec.get("id"))
            if ident in kept:
                result.append(kept[ident])
                continue
            index = int(ident)
            if not 0 <= index < len(files):
                continue
            filename, content = files[index]
            attachment_id = snowflake()
            name = spec.get("filename") or filename
            url = f"{self.base_url}/cdn/attachments/{channel_id}/{attachment_id}/{name}"
            self.attachments[attachment_id] = content
            attachment: dict[str, Any] = {
                "id": attachment_id,
                "filename": name,
                "size": len(content),
                "url": url,
                "proxy_url": url,
                "content_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
            }
            if spec.get("description"):
                attachment["description"] = spec["description"]
            result.append(attachment)
        return result

    async def _cdn(self, request: web.Request) -> web.Response:
        content = self.attachments.get(request.match_info["aid"])
        if content is None:
            return web.Response(status=404)
        return web.Response(body=content, content_type="application/octet-stream")


# Pointing discord.py at a fake.


@contextlib.contextmanager
def point_discord_at(fake: FakeDiscord) -> Iterator[None]:
    """Set discord.py's REST base and default gateway to the fake's; restore them on exit.

    These are class attributes, so this affects every client in the process: one fake at a
    time. A plain `Client.connect` uses DEFAULT_GATEWAY directly (no `GET /gateway/bot`)."""
    route = discord.http.Route
    websocket = discord.gateway.DiscordWebSocket
    saved = route.BASE, websocket.DEFAULT_GATEWAY
    route.BASE = fake.api_url
    websocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        route.BASE, websocket.DEFAULT_GATEWAY = saved


@pytest.fixture(name="fake_discord")
async def fake_discord_fixture() -> AsyncIterator[FakeDiscord]:
    """The `fake_discord` fixture: a running `FakeDiscord` with discord.py pointed at it. Close
    your clients before the test ends (the fake then closes its sockets and stops serving).

    Named apart from the fixture so that importing it (`from tests.fakes.discord import
    fake_discord_fixture`) does not clash with test parameters called `fake_discord`."""
    async with FakeDiscord() as fake:
        yield fake
