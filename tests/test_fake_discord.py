"""The Discord fake against the real, unmodified discord.py client.

These tests are the fake's contract: if discord.py (or the fake) changes so that the client no
longer logs in, caches guilds, parses interaction callbacks, retries rate limits or raises the
right errors, the Discord adapter's tests would silently test nothing; here it fails loudly.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fakes.discord import (
    APPLICATION_ID,
    BOT_USER_ID,
    CHANNEL_ID,
    GUILD_ID,
    MANAGE_GUILD,
    USER_ID,
    FakeDiscord,
    autocomplete,
    component,
    option,
    reaction_add,
    reaction_remove,
    slash_command,
    subcommand,
    subcommand_group,
)

TOKEN = "fake-token"
TIMEOUT = 5.0
CALLBACK = r"/interactions/\d+/[^/]+/callback"
CHANNEL_MESSAGES = rf"/channels/{CHANNEL_ID}/messages"
COMMAND_NAMES = {"paper", "find", "slow", "steps"}


class Bookmark(discord.ui.DynamicItem[discord.ui.Button], template=r"bookmark:(?P<paper>[\d.]+)"):
    """A persistent button: discord.py has to rebuild it from the custom_id alone."""

    def __init__(self, paper: str) -> None:
        button = discord.ui.Button(label="Save", custom_id=f"bookmark:{paper}")
        super().__init__(button)
        self.paper = paper

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> Bookmark:
        return cls(match["paper"])

    async def callback(self, interaction: discord.Interaction[Bot]) -> None:
        interaction.client.seen.append(("bookmark", self.paper))
        await interaction.response.edit_message(content="saved", view=None)
        followup = await interaction.followup.send("done", ephemeral=True, wait=True)
        interaction.client.seen.append(("followup", followup.id))


def paper_commands() -> list[app_commands.Command[Any, ..., Any] | app_commands.Group]:
    """/paper admin ping, /find (autocompleted), /slow (deferred) and /steps (deferred, then
    several followups): fresh per client."""
    paper = app_commands.Group(name="paper", description="Daily papers")
    admin = app_commands.Group(name="admin", description="Admin tools", parent=paper)

    @admin.command(name="ping", description="Answer privately")
    async def ping(interaction: discord.Interaction[Bot], word: str) -> None:
        seen = interaction.client.seen
        seen.append(("ping", word))
        seen.append(("user", (interaction.user.id, interaction.guild_id, interaction.channel_id)))
        seen.append(("manage_guild", interaction.permissions.manage_guild))
        response = await interaction.response.send_message(
            "hi", ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )
        seen.append(("response", response.message_id if response else None))

    @app_commands.command(name="find", description="Find a paper")
    async def find(interaction: discord.Interaction[Bot], query: str) -> None:
        await interaction.response.send_message(query)

    @find.autocomplete("query")
    async def find_query(
        interaction: discord.Interaction[Bot], current: str
    ) -> list[app_commands.Choice[str]]:
        interaction.client.seen.append(("autocomplete", current))
        return [app_commands.Choice(name=f"Attention ({current})", value="1706.03762")]

    @app_commands.command(name="slow", description="Think, then answer")
    async def slow(interaction: discord.Interaction[Bot]) -> None:
        await interaction.response.defer(thinking=True)
        message = await interaction.edit_original_response(content="done thinking")
        interaction.client.seen.append(("edited", message.id))

    @app_commands.command(name="steps", description="Think, then answer in several messages")
    async def steps(interaction: discord.Interaction[Bot]) -> None:
        seen = interaction.client.seen
        await interaction.response.defer(ephemeral=True, thinking=True)
        for content, ephemeral in (("first", False), ("second", True), ("third", False)):
            message = await interaction.followup.send(content, ephemeral=ephemeral, wait=True)
            seen.append(("sent", message.id))
        too_long = [discord.Embed(description="d" * 3100), discord.Embed(description="e" * 3100)]
        for refused in ({"content": "x" * 2001}, {"embeds": too_long}, {}):
            try:
                await interaction.followup.send(**refused)
            except discord.HTTPException as error:
                seen.append(("refused", error.code))

    return [paper, find, slow, steps]


class Bot(discord.Client):
    """The real client as the adapter will configure it, plus a log of what handlers saw."""

    def __init__(self) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_reactions = True
        intents.dm_reactions = True
        # guild_ready_timeout: discord.py waits this long after the last GUILD_CREATE before
        # on_ready (2 s by default); the fake sends them all at once.
        super().__init__(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        for command in paper_commands():
            self.tree.add_command(command)
        self.add_dynamic_items(Bookmark)
        self.seen: list[tuple[str, Any]] = []


async def settled(bot: Bot, count: int) -> list[tuple[str, Any]]:
    """`bot.seen` once it holds `count` entries: a handler goes on after the fake answered."""
    async with asyncio.timeout(TIMEOUT):
        while len(bot.seen) < count:
            await asyncio.sleep(0.005)
    return bot.seen


async def start(client: discord.Client) -> asyncio.Task[None]:
    """Start `client` against the fake and wait for on_ready (or its crash)."""
    task = asyncio.create_task(client.start(TOKEN))
    ready = asyncio.create_task(client.wait_until_ready())
    await asyncio.wait({task, ready}, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()  # raises what killed the client
        raise AssertionError("client stopped before it was ready")
    if not ready.done():
        ready.cancel()
        raise AssertionError(f"client not ready after {TIMEOUT}s")
    return task


@pytest.fixture
async def bot(fake_discord: FakeDiscord) -> AsyncIterator[Bot]:
    client = Bot()
    task = await start(client)
    try:
        yield client
    finally:
        await client.close()
        await asyncio.wait_for(task, TIMEOUT)


async def test_json_answers_have_the_exact_content_type(fake_discord: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fake_discord.api_url}/users/@me") as response:
            assert response.headers["Content-Type"] == "application/json"
            assert (await response.json())["id"] == str(BOT_USER_ID)
        async with session.get(f"{fake_discord.api_url}/no/such/route") as response:
            assert response.status == 404
            assert await response.json() == {"message": "404: Not Found", "code": 0}
    assert [(c.method, c.path, c.status) for c in fake_discord.calls] == [
        ("GET", "/users/@me", 200),
        ("GET", "/no/such/route", 404),
    ]


async def test_login_identifies_with_token_and_intents(fake_discord: FakeDiscord, bot: Bot) -> None:
    assert [c.path for c in fake_discord.calls[:2]] == ["/users/@me", "/oauth2/applications/@me"]
    assert fake_discord.calls[0].headers["authorization"] == f"Bot {TOKEN}"
    (identify,) = fake_discord.identifies
    assert identify["token"] == TOKEN
    assert identify["intents"] == bot.intents.value == 1 | 1 << 10 | 1 << 13
    assert fake_discord.gateway_sessions[0].query["v"] == "10"
    assert bot.user is not None and bot.user.id == BOT_USER_ID
    assert bot.application_id == APPLICATION_ID
    guild = bot.get_guild(GUILD_ID)
    assert guild is not None and guild.name == "Paper Club" and not guild.unavailable
    assert guild.default_role.id == GUILD_ID
    assert isinstance(bot.get_channel(CHANNEL_ID), discord.TextChannel)


async def test_wrong_token_is_a_login_failure() -> None:
    async with FakeDiscord(token="right-token") as fake:
        client = discord.Client(intents=discord.Intents.none())
        with pytest.raises(discord.LoginFailure):
            await client.login("wrong-token")
        await client.close()
    assert fake.calls[0].status == 401


async def test_sync_puts_global_and_guild_commands(fake_discord: FakeDiscord, bot: Bot) -> None:
    synced = await bot.tree.sync()
    put = fake_discord.calls_to("PUT", rf"/applications/{APPLICATION_ID}/commands")
    assert len(put) == 1
    assert {c["name"] for c in put[0].json} == COMMAND_NAMES
    assert {c.name: c.id for c in synced} == {
        c["name"]: int(c["id"]) for c in fake_discord.commands[None]
    }
    paper = next(c for c in synced if c.name == "paper")
    assert paper.options[0].name == "admin"  # the nested group survived the round trip

    again = await bot.tree.sync()  # Discord keeps ids of overwritten commands
    assert {c.id for c in again} == {c.id for c in synced}

    guild = discord.Object(id=GUILD_ID)
    bot.tree.copy_global_to(guild=guild)
    in_guild = await bot.tree.sync(guild=guild)
    route = rf"/applications/{APPLICATION_ID}/guilds/{GUILD_ID}/commands"
    assert len(fake_discord.calls_to("PUT", route)) == 1
    assert {c["name"] for c in fake_discord.commands[GUILD_ID]} == COMMAND_NAMES
    assert {c.guild_id for c in in_guild} == {GUILD_ID}
    fetched = await bot.tree.fetch_commands(guild=guild)
    assert {c.id for c in fetched} == {c.id for c in in_guild}


async def test_slash_command_in_a_subcommand_group(fake_discord: FakeDiscord, bot: Bot) -> None:
    payload = slash_command(
        "paper",
        [subcommand_group("admin", subcommand("ping", option("word", "hello")))],
        permissions=MANAGE_GUILD,
    )
    await fake_discord.interact(payload)
    call = await fake_discord.wait_for_response(payload)

    assert call.status == 200
    assert call.query == {"with_response": "1"}
    assert call.json["type"] == 4
    assert call.json["data"]["content"] == "hi"
    assert call.json["data"]["flags"] == 64
    assert call.json["data"]["allowed_mentions"] == {"parse": []}
    stored = fake_discord.messages[CHANNEL_ID][-1]
    assert stored["flags"] == 64 and stored["interaction_metadata"]["id"] == payload["id"]
    assert await settled(bot, 4) == [
        ("ping", "hello"),
        ("user", (USER_ID, GUILD_ID, CHANNEL_ID)),
        ("manage_guild", True),
        ("response", int(stored["id"])),
    ]


async def test_autocomplete_answers_with_choices(fake_discord: FakeDiscord, bot: Bot) -> None:
    payload = autocomplete("find", [option("query", "att")])
    assert payload["data"]["options"][0]["focused"] is True
    await fake_discord.interact(payload)
    call = await fake_discord.wait_for_response(payload)

    assert call.json == {
        "type": 8,
        "data": {"choices": [{"name": "Attention (att)", "value": "1706.03762"}]},
    }
    assert bot.seen == [("autocomplete", "att")]
    assert fake_discord.interactions[payload["id"]].response_type == 8


async def test_deferred_answer_is_edited_through_the_webhook(
    fake_discord: FakeDiscord,
    bot: Bot,
) -> None:
    payload = slash_command("slow")
    await fake_discord.interact(payload)
    edit = await fake_discord.wait_for_call(lambda c: c.matches("PATCH", r"/webhooks/.+/@original"))

    assert (await fake_discord.wait_for_response(payload)).json["type"] == 5
    assert edit.json["content"] == "done thinking"
    (stored,) = fake_discord.messages[CHANNEL_ID]
    assert stored["content"] == "done thinking" and stored["flags"] == 0  # no longer loading
    assert await settled(bot, 1) == [("edited", int(stored["id"]))]


async def test_followups_after_a_deferral_edit_it_first_then_stand_alone(
    fake_discord: FakeDiscord, bot: Bot
) -> None:
    payload = slash_command("steps")
    await fake_discord.interact(payload)
    assert (await fake_discord.wait_for_response(payload)).json["type"] == 5
    seen = await settled(bot, 6)

    record = fake_discord.interactions[payload["id"]]
    first, second, third = fake_discord.messages[CHANNEL_ID]
    assert first["id"] == record.original_message_id  # "thinking..." became the answer
    assert (first["content"], first["flags"]) == ("first", 64)  # the deferral's flag stays
    assert (second["content"], second["flags"]) == ("second", 64)
    assert (third["content"], third["flags"]) == ("third", 0)  # each followup its own
    assert record.followup_ids == [second["id"], third["id"]]
    assert seen == [
        ("sent", int(first["id"])),
        ("sent", int(second["id"])),
        ("sent", int(third["id"])),
        ("refused", 50035),  # content over 2000
        ("refused", 50035),  # embeds over 6000 in all
        ("refused", 50006),  # empty
    ]


async def test_an_answer_beyond_discords_limits_is_refused(
    fake_discord: FakeDiscord, bot: Bot
) -> None:
    payload = slash_command("find", [option("query", "q" * 2001)])
    await fake_discord.interact(payload)
    call = await fake_discord.wait_for_response(payload)
    assert call.status == 400 and fake_discord.interactions[payload["id"]].response_type is None
    assert fake_discord.messages[CHANNEL_ID] == []


async def test_button_click_reaches_a_dynamic_item(fake_discord: FakeDiscord, bot: Bot) -> None:
    view = discord.ui.View(timeout=None)
    view.add_item(Bookmark("2401.00001"))
    # Posted by an earlier run: only add_dynamic_items can route the click.
    posted = fake_discord.add_message(CHANNEL_ID, "A paper", components=view.to_components())

    payload = component("bookmark:2401.00001", message=posted)
    start = len(fake_discord.calls)
    await fake_discord.interact(payload)
    followup = await fake_discord.wait_for_call(
        lambda c: c.matches("POST", rf"/webhooks/{APPLICATION_ID}/[^/]+"), start=start
    )

    callback = await fake_discord.wait_for_response(payload)
    assert callback.json["type"] == 7
    assert callback.json["data"]["content"] == "saved"
    assert callback.json["data"]["components"] == []
    assert followup.json["content"] == "done" and followup.json["flags"] == 64
    assert followup.query["wait"] == "1"
    message = fake_discord.message(posted["id"])
    assert message is not None and message["content"] == "saved" and message["components"] == []
    followup_message = fake_discord.messages[CHANNEL_ID][-1]
    assert await settled(bot, 2) == [
        ("bookmark", "2401.00001"),
        ("followup", int(followup_message["id"])),
    ]


async def test_send_embed_and_react(fake_discord: FakeDiscord, bot: Bot) -> None:
    channel = bot.get_partial_messageable(CHANNEL_ID)
    embed = discord.Embed(title="Attention Is All You Need", url="https://hf.co/papers/1706.03762")
    message = await channel.send(embed=embed, allowed_mentions=discord.AllowedMentions.none())

    (stored,) = fake_discord.messages[CHANNEL_ID]
    assert message.id == int(stored["id"])
    assert message.embeds[0].title == "Attention Is All You Need"
    assert message.author.id == BOT_USER_ID
    (call,) = fake_discord.calls_to("POST", CHANNEL_MESSAGES)
    assert call.json["allowed_mentions"] == {"parse": []}

    await message.add_reaction("🔖")
    assert fake_discord.reactions == {(CHANNEL_ID, message.id, "🔖", BOT_USER_ID)}
    assert bot.user is not None
    await message.remove_reaction("🔖", bot.user)
    assert fake_discord.reactions == set()


async def test_reaction_events_fire_raw_handlers(fake_discord: FakeDiscord, bot: Bot) -> None:
    added = bot.wait_for("raw_reaction_add", timeout=TIMEOUT)
    await fake_discord.dispatch("MESSAGE_REACTION_ADD", reaction_add("🔖", message_id=42))
    event = await added
    assert (event.message_id, event.channel_id, event.guild_id) == (42, CHANNEL_ID, GUILD_ID)
    assert event.user_id == USER_ID and event.emoji.name == "🔖"
    assert event.member is not None and event.member.id == USER_ID

    removed = bot.wait_for("raw_reaction_remove", timeout=TIMEOUT)
    await fake_discord.dispatch(
        "MESSAGE_REACTION_REMOVE", reaction_remove("🔖", message_id=42, guild_id=None)
    )
    event = await removed
    assert (event.message_id, event.user_id, event.guild_id) == (42, USER_ID, None)
    assert event.emoji.name == "🔖" and event.event_type == "REACTION_REMOVE"


async def test_rate_limited_send_is_retried(fake_discord: FakeDiscord, bot: Bot) -> None:
    fake_discord.fail_next("POST", CHANNEL_MESSAGES, 429, {"retry_after": 0.05})
    message = await bot.get_partial_messageable(CHANNEL_ID).send("again")

    assert [c.status for c in fake_discord.calls_to("POST", CHANNEL_MESSAGES)] == [429, 200]
    (stored,) = fake_discord.messages[CHANNEL_ID]
    assert message.id == int(stored["id"])


async def test_forbidden_dm_raises_with_the_discord_code(
    fake_discord: FakeDiscord,
    bot: Bot,
) -> None:
    channel = await bot.create_dm(discord.Object(id=USER_ID))
    body = {"message": "Cannot send messages to this user", "code": 50007}
    fake_discord.fail_next("POST", rf"/channels/{channel.id}/messages", 403, body)

    with pytest.raises(discord.Forbidden) as raised:
        await channel.send("hello")
    assert raised.value.status == 403 and raised.value.code == 50007
    await channel.send("the fault was used up")
    assert len(fake_discord.messages[channel.id]) == 1


async def test_blocked_channel_fails_every_send(fake_discord: FakeDiscord, bot: Bot) -> None:
    fake_discord.block_channel(CHANNEL_ID)
    channel = bot.get_partial_messageable(CHANNEL_ID)
    for _ in range(2):
        with pytest.raises(discord.Forbidden) as raised:
            await channel.send("nope")
        assert raised.value.code == 50001
    assert not fake_discord.messages[CHANNEL_ID]


async def test_create_dm_then_send(fake_discord: FakeDiscord, bot: Bot) -> None:
    channel = await bot.create_dm(discord.Object(id=USER_ID))
    assert isinstance(channel, discord.DMChannel)
    assert channel.recipient is not None and channel.recipient.id == USER_ID
    assert channel.id == int(fake_discord.dm_channel_for(USER_ID)["id"])
    (opened,) = fake_discord.calls_to("POST", "/users/@me/channels")
    assert int(opened.json["recipient_id"]) == USER_ID

    message = await channel.send("your digest")
    (stored,) = fake_discord.messages[channel.id]
    assert message.id == int(stored["id"]) and stored["content"] == "your digest"
    assert await bot.create_dm(discord.Object(id=USER_ID)) is channel  # cached, no new call


async def test_multipart_send_records_payload_and_file(fake_discord: FakeDiscord, bot: Bot) -> None:
    content = b"%PDF-1.7 not really"
    file = discord.File(io.BytesIO(content), filename="paper.pdf")
    message = await bot.get_partial_messageable(CHANNEL_ID).send("the PDF", file=file)

    (call,) = fake_discord.calls_to("POST", CHANNEL_MESSAGES)
    assert call.files == (("paper.pdf", content),)
    assert call.json["content"] == "the PDF"
    assert call.json["attachments"] == [{"id": 0, "filename": "paper.pdf"}]
    (attachment,) = message.attachments
    assert (attachment.filename, attachment.size) == ("paper.pdf", len(content))
    assert await attachment.read() == content
