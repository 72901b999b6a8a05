"""The Discord adapter end to end: the real discord.py client on the fake Discord gateway and
REST API, answering interactions and reactions from a real store."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import select

from adapters.discord.client import intents
from bot.delivery.runner import DeliveryPolicy
from storage.deliveries import DeliveryKey, Status
from storage.models import ChannelSubscription, Post
from tests.core_fixtures import NOW
from tests.discord_fixtures import DiscordHarness
from tests.fakes.discord import (
    BOT_USER_ID,
    CHANNEL_ID,
    GUILD_ID,
    USER_ID,
    Call,
    FakeDiscord,
    component,
    reaction_add,
    reaction_remove,
)

EPHEMERAL = 1 << 6
CHANNEL_MESSAGES = rf"/channels/{CHANNEL_ID}/messages"
OTHER_USER = USER_ID + 7


def data(call: Call) -> dict[str, Any]:
    """The message a call sends: an interaction callback's `data`, or the body itself."""
    body = call.json if isinstance(call.json, dict) else {}
    return body.get("data") or {} if "callback" in call.path else body


def text_of(call: Call, *, raw: bool = False) -> str:
    """Content and every embed's text as people read it (markdown escapes undone), or `raw`."""
    message = data(call)
    parts = [message.get("content") or ""]
    for embed in message.get("embeds") or []:
        parts += [embed.get("title", ""), embed.get("description", "")]
        parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields", [])]
        parts.append((embed.get("footer") or {}).get("text", ""))
    text = "\n".join(parts)
    return text if raw else re.sub(r"\\(.)", r"\1", text)


def share_buttons(call: Call) -> list[dict[str, Any]]:
    return [
        item
        for row in data(call).get("components") or []
        for item in row.get("components", [])
        if str(item.get("custom_id", "")).startswith("share:")
    ]


def sent_messages(fake: FakeDiscord) -> list[Call]:
    """Every call that puts a message on Discord: posts, DMs, interaction answers, follow-ups."""
    return [
        call
        for call in fake.calls
        if call.method in ("POST", "PATCH")
        and re.search(r"/messages$|/messages/[^/]+$|/callback$|^/webhooks/\d+/[^/]+$", call.path)
        and call.status < 400
    ]


COMMANDS: list[tuple[str, dict[str, Any], str]] = [
    ("today", {}, "Trending papers"),
    ("topic", {"words": "speculative decoding"}, "Papers on"),
    ("follow", {"topic": "diffusion"}, "now follow"),
    ("unfollow", {"topic": "diffusion"}, "don't follow"),
    ("following", {}, "follow no topics"),
    ("saved", {}, "no saved papers"),
    ("unsave", {"paper": "2605.00001"}, "not in your saved papers"),
    ("save", {"papers": "https://arxiv.org/abs/2605.00001 arXiv:2605.00101"}, "saved 2 papers"),
    ("export", {"format": "bibtex"}, "no saved papers to export"),
    ("help", {}, "paperboy"),
    ("week", {}, "Most upvoted papers of the last 7 days"),
    ("month", {}, "Most upvoted papers of the last 30 days"),
    ("team", {"period": "all"}, "Nobody here has saved a paper yet"),
    ("digest daily", {"time": "08:00", "timezone": "Asia/Tokyo"}, "daily at 08:00 Asia/Tokyo"),
    ("digest weekly", {"day": "fri", "time": "07:30"}, "weekly on Friday at 07:30"),
    ("digest status", {}, "off"),
    ("digest now", {}, "follow no topics"),
    ("digest off", {}, "already off"),
    ("channel status", {}, "No daily post"),
    (
        "channel on",
        {"time": "09:15", "timezone": "Europe/Berlin", "count": 3, "days": "mon, wed"},
        "09:15 Europe/Berlin on Mon, Wed",
    ),
    ("channel off", {}, "already off"),
    ("channel post-now", {}, "Posted"),
    ("channel topics", {"action": "add", "topic": "agents"}, "on first"),
]


@pytest.mark.parametrize(("words", "values", "expected"), COMMANDS, ids=[c[0] for c in COMMANDS])
async def test_every_subcommand_answers_privately(
    discord_harness: DiscordHarness, words: str, values: dict[str, Any], expected: str
) -> None:
    answer = await discord_harness.command(words, admin=True, **values)
    assert answer.json["type"] == 4, answer.json
    assert data(answer)["flags"] & EPHEMERAL
    assert data(answer)["allowed_mentions"] == {"parse": []}
    assert expected.lower() in text_of(answer).lower(), text_of(answer)
    assert "went wrong" not in text_of(answer)


async def test_start_up_identifies_with_minimal_intents_and_syncs_papers(
    discord_harness: DiscordHarness,
) -> None:
    fake = discord_harness.fake
    identify = fake.identifies[0]
    assert identify["token"] == "fake-token"
    assert identify["intents"] == intents().value
    chosen = intents()
    assert chosen.guilds and chosen.guild_reactions and chosen.dm_reactions
    assert not (chosen.message_content or chosen.members or chosen.presences)
    synced = {(command["name"], command["type"]): command for command in fake.commands[None]}
    assert set(synced) == {("papers", 1), ("Save paper", 3)}  # a message context menu
    assert synced[("Save paper", 3)].get("contexts") == [0]  # servers only
    papers = synced[("papers", 1)]
    assert papers.get("contexts") == [0] or papers.get("dm_permission") is False  # servers only
    children = {option["name"]: option for option in papers["options"]}
    assert set(children) == {
        "today", "topic", "follow", "unfollow", "following", "saved", "unsave", "save",
        "export", "forget", "help", "digest", "channel", "week", "month", "team",
    }  # fmt: skip
    [export_format] = children["export"]["options"]
    assert [choice["value"] for choice in export_format["choices"]] == ["bibtex", "mine"]
    [period] = children["team"]["options"]
    assert period["name"] == "period" and not period.get("required")
    assert [choice["value"] for choice in period["choices"]] == ["week", "month", "all"]
    digest = {o["name"] for o in children["digest"]["options"]}
    channel = {o["name"]: o for o in children["channel"]["options"]}
    assert digest == {"daily", "weekly", "off", "now", "status"}
    assert set(channel) == {"on", "off", "status", "post-now", "topics", "weekly"}
    weekly = {o["name"]: o for o in channel["weekly"]["options"]}
    assert [c["value"] for c in weekly["action"]["choices"]] == ["on", "off"]
    assert [c["value"] for c in weekly["day"]["choices"]][::6] == ["mon", "sun"]
    assert weekly["action"].get("required") and not weekly["day"].get("required")
    on = {o["name"]: o for o in channel["on"]["options"]}
    assert on["count"]["type"] == 4 and (on["count"]["min_value"], on["count"]["max_value"]) == (
        1,
        10,
    )
    assert on["timezone"]["autocomplete"] is True
    assert on["time"]["max_length"] == 5


async def test_timezone_autocomplete_offers_iana_names(discord_harness: DiscordHarness) -> None:
    choices = await discord_harness.autocomplete("digest daily", time="08:00", timezone="berl")
    assert choices[0] == {"name": "Europe/Berlin", "value": "Europe/Berlin"}
    many = await discord_harness.autocomplete("channel on", timezone="america")
    assert len(many) == 25


async def test_unfollow_autocomplete_offers_the_users_topics(
    discord_harness: DiscordHarness,
) -> None:
    await discord_harness.command("follow", topic="diffusion")
    await discord_harness.command("follow", topic="speculative decoding")
    choices = await discord_harness.autocomplete("unfollow", topic="spec")
    assert choices == [{"name": "speculative decoding", "value": "speculative decoding"}]
    assert await discord_harness.autocomplete("unfollow", topic="") != []


async def test_today_answers_with_paper_embeds_and_a_share_button(
    discord_harness: DiscordHarness,
) -> None:
    answer = await discord_harness.command("today")
    embeds = data(answer)["embeds"]
    first = next(e for e in embeds if "Self-Speculative Decoding" in e["title"])
    assert first["url"] == "https://huggingface.co/papers/2605.00101"
    fields = {f["name"]: f["value"] for f in first["fields"]}
    assert "Anika Bose" in fields["Authors"]
    assert "[PDF](https://arxiv.org/pdf/2605.00101)" in fields["Links"]
    [button] = share_buttons(answer)
    assert button["custom_id"] == "share:today" and button["label"] == "Share to channel"


async def test_share_button_posts_the_answer_publicly(discord_harness: DiscordHarness) -> None:
    fake = discord_harness.fake
    answer = await discord_harness.command("topic", words="speculative decoding")
    assert share_buttons(answer)
    ephemeral = next(m for m in fake.messages[CHANNEL_ID] if m.get("components"))
    click = component("share:topic speculative decoding", message=ephemeral, user_id=OTHER_USER)
    start = len(fake.calls)
    await fake.interact(click)
    update = await fake.wait_for_response(click)
    assert update.json["type"] == 7  # the private answer becomes "Shared to the channel."
    assert data(update)["content"] == "Shared to the channel." and data(update)["components"] == []
    shared = await fake.wait_for_call(
        lambda c: c.method == "POST" and c.path.startswith("/webhooks/"), start=start
    )
    assert not (data(shared).get("flags") or 0) & EPHEMERAL
    assert data(shared)["content"].startswith(f"Shared by <@{OTHER_USER}>")
    assert data(shared)["allowed_mentions"] == {"parse": []}
    assert "Self-Speculative Decoding" in text_of(shared)


async def test_share_of_a_tampered_button_shares_nothing(discord_harness: DiscordHarness) -> None:
    fake = discord_harness.fake
    message = fake.add_message(
        CHANNEL_ID,
        "old answer",
        flags=EPHEMERAL,
        components=(
            {
                "type": 1,
                "components": [
                    {"type": 2, "style": 1, "label": "x", "custom_id": "share:channel off"}
                ],
            },
        ),
    )
    click = component("share:channel off", message=message, permissions=0)
    start = len(fake.calls)
    await fake.interact(click)
    answer = await fake.wait_for_response(click)
    assert "Nothing to share" in text_of(answer)
    assert data(answer)["flags"] & EPHEMERAL
    assert not [c for c in fake.calls[start:] if c.path.startswith("/webhooks/")]


async def test_non_admins_are_refused_and_nothing_changes(discord_harness: DiscordHarness) -> None:
    refused = await discord_harness.command("channel on", time="09:00", count=3)
    assert "Only members with the Manage Server permission" in text_of(refused)
    refused = await discord_harness.command("channel post-now")
    assert "Manage Server" in text_of(refused)
    assert not discord_harness.fake.calls_to("POST", CHANNEL_MESSAGES)
    async with discord_harness.store.transaction() as repos:
        assert (await repos.session.scalars(select(ChannelSubscription))).all() == []
    accepted = await discord_harness.command("channel on", admin=True, time="09:00", count=3)
    assert "top 3 papers at 09:00" in text_of(accepted)


async def test_daily_post_then_reactions_save_and_unsave(discord_harness: DiscordHarness) -> None:
    fake = discord_harness.fake
    answer = await discord_harness.command("channel post-now", admin=True)
    assert "Posted 4" in text_of(answer)
    posts = fake.messages[CHANNEL_ID]
    public = [m for m in posts if not (m.get("flags") or 0) & EPHEMERAL]
    assert len(public) == 5  # a header, then one message per paper
    assert all(len(m["embeds"]) == 1 for m in public[1:])
    # The bot adds the save emoji under every paper so people can click it.
    paper_ids = {m["id"] for m in public[1:]}
    assert {(str(m), e) for c, m, e, u in fake.reactions if u == BOT_USER_ID} == {
        (m, "🔖") for m in paper_ids
    }
    async with discord_harness.store.transaction() as repos:
        recorded = (await repos.session.scalars(select(Post.message_id))).all()
    assert set(recorded) == paper_ids

    second = int(public[2]["id"])
    start = len(fake.calls)
    await fake.dispatch("MESSAGE_REACTION_ADD", reaction_add(message_id=second))
    dm = await fake.wait_for_call(
        lambda c: c.method == "POST" and c.path.endswith("/messages") and "Saved" in text_of(c),
        start=start,
    )
    assert dm.path == f"/channels/{fake.dm_channel_for(USER_ID)['id']}/messages"
    assert "Dense Retrieval" in text_of(await discord_harness.command("saved"))
    assert "no saved papers" in text_of(await discord_harness.command("saved", user_id=OTHER_USER))

    start = len(fake.calls)
    await fake.dispatch("MESSAGE_REACTION_REMOVE", reaction_remove(message_id=second))
    await fake.wait_for_call(lambda c: "Removed" in text_of(c), start=start)
    assert "no saved papers" in text_of(await discord_harness.command("saved"))


async def test_the_bots_own_and_other_reactions_are_ignored(
    discord_harness: DiscordHarness,
) -> None:
    fake = discord_harness.fake
    await discord_harness.command("channel post-now", admin=True)
    paper = int(fake.messages[CHANNEL_ID][1]["id"])
    await fake.dispatch("MESSAGE_REACTION_ADD", reaction_add(message_id=paper, user_id=BOT_USER_ID))
    await fake.dispatch("MESSAGE_REACTION_ADD", reaction_add("👍", message_id=paper))
    await fake.dispatch("MESSAGE_REACTION_ADD", reaction_add(message_id=paper, guild_id=None))
    # A later save by a person goes through, so the ignored events had their turn before it.
    await fake.dispatch("MESSAGE_REACTION_ADD", reaction_add(message_id=paper, user_id=OTHER_USER))
    await fake.wait_for_call(lambda c: "Saved" in text_of(c))
    assert "no saved papers" in text_of(await discord_harness.command("saved"))
    async with discord_harness.store.transaction() as repos:
        assert await repos.users.saved("discord", str(GUILD_ID), str(BOT_USER_ID)) == []
    assert len([c for c in fake.calls if "Saved" in text_of(c)]) == 1


async def test_closed_dms_pause_the_digest(discord_harness: DiscordHarness) -> None:
    fake = discord_harness.fake
    await discord_harness.command("follow", topic="retrieval")
    await discord_harness.command("digest daily", time="08:00")
    fake.block_dms(USER_ID)
    answer = await discord_harness.command("digest now")
    assert "can't send you direct messages (dms_closed)" in text_of(answer)
    assert "paused" in text_of(await discord_harness.command("digest status"))
    async with discord_harness.store.transaction() as repos:
        setting = await repos.users.digest_setting("discord", str(GUILD_ID), str(USER_ID))
    assert setting is not None and setting.disabled_reason == "dms_closed"


async def test_digest_now_arrives_in_the_users_dm_channel(discord_harness: DiscordHarness) -> None:
    fake = discord_harness.fake
    await discord_harness.command("follow", topic="retrieval")
    answer = await discord_harness.command("digest now")
    assert "Sent you a digest" in text_of(answer)
    dm_channel = fake.dm_channel_for(USER_ID)["id"]
    [digest] = fake.calls_to("POST", rf"/channels/{dm_channel}/messages")
    assert "Your paperboy digest" in text_of(digest) and data(digest)["embeds"]
    assert data(digest)["allowed_mentions"] == {"parse": []}


async def test_a_rate_limited_post_is_retried_then_sent_once(
    discord_harness: DiscordHarness,
) -> None:
    fake = discord_harness.fake
    fake.fail_next("POST", CHANNEL_MESSAGES, 429, {"retry_after": 0.05})
    answer = await discord_harness.command("channel post-now", admin=True)
    assert "Posted 4" in text_of(answer)
    statuses = [c.status for c in fake.calls_to("POST", CHANNEL_MESSAGES)]
    assert statuses == [429, 200, 200, 200, 200, 200]
    titles = [m["embeds"][0]["title"] for m in fake.messages[CHANNEL_ID][1:] if m["embeds"]]
    assert len(titles) == len(set(titles)) == 4


async def test_a_lost_channel_stops_the_daily_post_and_tells_the_admin(
    discord_harness: DiscordHarness,
) -> None:
    fake = discord_harness.fake
    await discord_harness.command("channel on", admin=True, time="09:00")
    fake.block_channel(CHANNEL_ID)
    answer = await discord_harness.command("channel post-now", admin=True)
    assert "I was removed from this channel: its daily post is now off." in text_of(answer)
    status = await discord_harness.command("channel status")
    assert "stopped: I was removed from the channel" in text_of(status)
    dm_channel = fake.dm_channel_for(USER_ID)["id"]
    [notice] = fake.calls_to("POST", rf"/channels/{dm_channel}/messages")
    assert f"I was removed from <#{CHANNEL_ID}>, so I stopped its daily post." in text_of(notice)
    assert "missing_access" not in text_of(notice) and "50001" not in text_of(notice)


async def test_hostile_paper_text_cannot_ping_or_inject(discord_harness: DiscordHarness) -> None:
    answer = await discord_harness.command("topic", words="diffusion")
    text = text_of(answer, raw=True)
    assert "Secretly" in text  # the hostile fixture paper is in the answer
    assert "@everyone" not in text.replace("@\u200beveryone", "")
    assert "*Bold*" not in text and r"\*Bold\*" in text


async def test_every_outgoing_message_disables_mentions(discord_harness: DiscordHarness) -> None:
    fake = discord_harness.fake
    await discord_harness.command("channel post-now", admin=True)
    await discord_harness.command("follow", topic="retrieval")
    await discord_harness.command("digest now")
    answer = await discord_harness.command("today")
    ephemeral = next(m for m in fake.messages[CHANNEL_ID] if m.get("components"))
    click = component("share:today", message=ephemeral)
    await fake.interact(click)
    await fake.wait_for_call(lambda c: c.method == "POST" and c.path.startswith("/webhooks/"))
    sent = sent_messages(fake)
    kinds = {("callback" if "callback" in c.path else c.path.split("/")[1]) for c in sent}
    assert kinds == {"channels", "callback", "webhooks"}, kinds
    assert len(sent) >= 10
    for call in sent:
        if call.path.endswith("/callback") and call.json["type"] in (5, 6, 8):
            continue  # "thinking...", a silent acknowledgement, autocomplete choices
        assert data(call)["allowed_mentions"] == {"parse": []}, (call.path, call.json)
    assert answer.json["type"] == 4


async def test_channel_topics_filter_the_daily_post(discord_harness: DiscordHarness) -> None:
    await discord_harness.command("channel on", admin=True)
    added = await discord_harness.command(
        "channel topics", admin=True, action="add", topic="diffusion"
    )
    assert text_of(added).startswith("Added “diffusion”.")
    await discord_harness.command("channel post-now", admin=True)
    titles = [m["embeds"][0]["title"] for m in discord_harness.fake.messages[CHANNEL_ID] if
              m["embeds"] and not (m.get("flags") or 0) & EPHEMERAL]  # fmt: skip
    assert titles and all("Diffusion" in title for title in titles), titles
    removed = await discord_harness.command(
        "channel topics", admin=True, action="remove", topic="diffusion"
    )
    assert text_of(removed).startswith("Removed “diffusion”.")
    refused = await discord_harness.command("channel topics", action="add", topic="agents")
    assert "Manage Server" in text_of(refused)


async def test_an_expired_interaction_or_lost_channel_never_stops_the_client(
    discord_harness: DiscordHarness,
) -> None:
    fake = discord_harness.fake
    fake.fail_next("POST", r"/interactions/\d+/[^/]+/callback", 404,
                   {"message": "Unknown interaction", "code": 10062})  # fmt: skip
    failed = await discord_harness.command("today")
    assert failed.status == 404
    fake.fail_next("POST", CHANNEL_MESSAGES, 404, {"message": "Unknown Channel", "code": 10003})
    answer = await discord_harness.command("channel post-now", admin=True)
    assert "This channel was deleted: its daily post is now off." in text_of(answer)
    assert not discord_harness.discord.client.is_closed()
    assert "Trending papers" in text_of(await discord_harness.command("today"))


async def test_export_uploads_a_bibtex_file(discord_harness: DiscordHarness) -> None:
    fake = discord_harness.fake
    await discord_harness.command("channel post-now", admin=True)
    paper = int(fake.messages[CHANNEL_ID][1]["id"])
    await fake.dispatch("MESSAGE_REACTION_ADD", reaction_add(message_id=paper))
    await fake.wait_for_call(lambda c: "Saved" in text_of(c))
    answer = await discord_harness.command("export", format="bibtex")
    assert "BibTeX for your 1 saved paper" in text_of(answer)
    [(filename, content)] = answer.files
    assert filename == "paperboy-saved.bib"
    assert content.decode().startswith("@misc{") and "Self-Speculative Decoding" in content.decode()
    assert data(answer)["flags"] & EPHEMERAL


async def test_a_scheduled_post_whose_answers_were_lost_is_posted_once(
    discord_harness: DiscordHarness,
) -> None:
    await discord_harness.command("channel on", admin=True, time="09:00", count=2)
    fake = discord_harness.fake
    fake.lose_answers = 2  # the header and the first paper go out, their answers are lost
    runner = discord_harness.discord.bot.scheduler(
        worker="w1", policy=DeliveryPolicy(), clock=lambda: NOW
    ).runner
    key = DeliveryKey("channel", "discord", str(GUILD_ID), str(CHANNEL_ID), "2026-05-05")
    assert await runner.run(key) is Status.SENT
    sends = [c for c in fake.calls if c.method == "POST" and re.fullmatch(CHANNEL_MESSAGES, c.path)]
    posted = [m for m in fake.messages[CHANNEL_ID] if "interaction_metadata" not in m]
    assert len(sends) == 5  # discord.py sent the two lost ones again, with the same nonce
    assert len(posted) == 3 and len({m["nonce"] for m in posted}) == 3  # header + 2 papers


async def test_team_counts_members_in_footers_and_names_none_even_when_shared(
    discord_harness: DiscordHarness,
) -> None:
    fake = discord_harness.fake
    await discord_harness.command("channel post-now", admin=True)
    public = [m for m in fake.messages[CHANNEL_ID] if not (m.get("flags") or 0) & EPHEMERAL]
    first, second = int(public[1]["id"]), int(public[2]["id"])
    savers = (USER_ID + 11, USER_ID + 12)
    for message_id, user in ((first, savers[0]), (first, savers[1]), (second, savers[1])):
        start = len(fake.calls)
        await fake.dispatch(
            "MESSAGE_REACTION_ADD", reaction_add(message_id=message_id, user_id=user)
        )
        await fake.wait_for_call(lambda c: "Saved" in text_of(c), start=start)

    def named(call: Call) -> list[str]:
        raw = json.dumps(call.json)
        return [n for user in savers for n in (str(user), f"user{user % 10_000}") if n in raw]

    answer = await discord_harness.command("team", user_id=savers[0])
    embeds = data(answer)["embeds"]
    assert [e["footer"]["text"] for e in embeds] == ["saved by 2", "saved by 1"]
    assert "Self-Speculative" in embeds[0]["title"] and "Dense Retrieval" in embeds[1]["title"]
    assert text_of(answer).startswith("What the team saved in the last 7 days")
    assert named(answer) == []
    [button] = share_buttons(answer)
    assert button["custom_id"] == "share:team week"

    ephemeral = next(m for m in fake.messages[CHANNEL_ID] if m.get("components"))
    click = component("share:team week", message=ephemeral, user_id=OTHER_USER)
    start = len(fake.calls)
    await fake.interact(click)
    shared = await fake.wait_for_call(
        lambda c: c.method == "POST" and c.path.startswith("/webhooks/"), start=start
    )
    assert data(shared)["content"].startswith(f"Shared by <@{OTHER_USER}>")
    assert [e["footer"]["text"] for e in data(shared)["embeds"]] == ["saved by 2", "saved by 1"]
    assert named(shared) == []
