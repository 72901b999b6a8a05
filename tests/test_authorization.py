"""Authorization, in the core and through both adapters: who may change a channel's daily
post, whose saves, follows and digest a command or a reaction reaches, which workspace's data
a request sees, and that Slack requests without a valid signature reach no handler at all.

Complements test_commands.py (admin-only channel commands, basic isolation), test_slack.py
(admin check via users.info, unsigned slash commands) and test_discord.py (Manage Server):
here every state-changing `channel` subcommand is refused with a channel post already in
place and the whole database compared, and signatures are checked for every request kind.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from adapters.slack.app import create_slack_bot
from adapters.slack.render import SHARE_ACTION
from bot.events import ChannelRef, MessageRef, Scope
from storage.channels import PostRecord
from storage.models import ChannelSubscription, Save
from storage.store import Store
from tests.core_fixtures import CHANNEL, SCOPE, Harness, stocked
from tests.discord_fixtures import TIMEOUT, DiscordHarness, papers_options
from tests.fakes.discord import (
    ADMIN_PERMISSIONS,
    ADMINISTRATOR,
    CHANNEL_ID,
    GUILD_ID,
    MANAGE_GUILD,
    MEMBER_PERMISSIONS,
    USER_ID,
    Call,
    component,
    reaction_add,
    reaction_remove,
    slash_command,
)
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import (
    FakeSlack,
    block_action_body,
    event_body,
    reaction_event,
    sign,
    slash_command_body,
)
from tests.slack_fixtures import (
    SIGNING_SECRET,
    SlackHarness,
    all_text,
    answer_to,
    serve,
    slack_settings,
)
from tests.test_hostile_commands import Snapshot, snapshot

# The `channel` subcommands that change something, as typed and as Discord options.
CHANNEL_CHANGES = (
    "channel on 10:00 Europe/Berlin 5 daily",
    "channel off",
    "channel topics add agents",
    "channel topics remove diffusion",
    "channel post-now",
)
DISCORD_CHANNEL_CHANGES: tuple[tuple[str, dict[str, str | int]], ...] = (
    ("channel on", {"time": "10:00", "timezone": "Europe/Berlin", "count": 5, "days": "daily"}),
    ("channel off", {}),
    ("channel topics", {"action": "add", "topic": "agents"}),
    ("channel topics", {"action": "remove", "topic": "diffusion"}),
    ("channel post-now", {}),
)
PER_USER_TABLES = ("follows", "saves", "digest_settings", "digest_items")


def rows_of(tables: Snapshot, platform: str, workspace: str, user: str) -> dict[str, Any]:
    """One user's rows in every per-user table of a snapshot."""
    return {
        table: sorted(
            repr(row)
            for row in tables[table].elements()
            if (dict(row)["platform"], dict(row)["workspace"], dict(row)["user"])
            == (platform, workspace, user)
        )
        for table in PER_USER_TABLES
    }


async def saves(store: Store) -> set[tuple[str, str, str, int]]:
    """(platform, workspace, user, paper row id) of every save."""
    async with store.transaction() as repos:
        found = await repos.session.execute(
            select(Save.platform, Save.workspace, Save.user, Save.paper_id)
        )
        return {(row.platform, row.workspace, row.user, row.paper_id) for row in found}


# The core: one user's data is out of another's reach -------------------------------------


async def alice_and_bob(harness: Harness) -> list[tuple[str, MessageRef]]:
    """alice follows two topics, saved two papers and has a weekly digest; bob follows another
    topic and saved another paper. Returns the paper posts (arXiv id, message)."""
    await harness.say("channel post-now", user="admin", admin=True)
    posts = harness.paper_posts()
    await harness.say("follow diffusion", user="alice")
    await harness.say("follow speculative decoding", user="alice")
    await harness.say("digest weekly fri 07:30 Asia/Tokyo", user="alice")
    for _, ref in posts[:2]:
        await harness.react(ref, user="alice")
    await harness.say("follow latency", user="bob")
    await harness.react(posts[2][1], user="bob")
    return posts


async def test_a_user_sees_only_their_own_saves_follows_and_digest(harness: Harness) -> None:
    posts = await alice_and_bob(harness)
    alices = {paper for paper, _ in posts[:2]}
    bobs = posts[2][0]

    saved = await harness.say("saved", user="bob")
    assert [card.paper_id for card in saved.cards] == [bobs]
    export = await harness.say("export bibtex", user="bob")
    assert export.attachment is not None and bobs in export.attachment.content
    assert not any(paper in export.attachment.content for paper in alices)
    assert (await harness.say("following", user="bob")).lines == ("latency",)
    for text in ("digest", "digest status"):
        digest = await harness.say(text, user="bob")
        shown = " ".join((digest.text, *digest.lines))
        assert "is off" in digest.text and "Topics: latency." in shown, shown
        assert "Friday" not in shown and "Asia/Tokyo" not in shown and "diffusion" not in shown

    # ...while alice's own answers do show her data (so the above could have failed).
    assert {card.paper_id for card in (await harness.say("saved", user="alice")).cards} == alices
    assert (await harness.say("following", user="alice")).lines == (
        "diffusion",
        "speculative decoding",
    )
    digest = await harness.say("digest", user="alice")
    assert "weekly on Friday at 07:30 Asia/Tokyo" in digest.text


async def test_a_user_cannot_change_another_users_saves_follows_or_digest(
    harness: Harness,
) -> None:
    posts = await alice_and_bob(harness)
    (first, first_ref), (second, second_ref) = posts[:2]
    alice = rows_of(await snapshot(harness.store), SCOPE.platform, SCOPE.workspace, "alice")
    assert all(alice[table] for table in ("follows", "saves", "digest_settings"))

    assert "not in your saved" in (await harness.say(f"unsave {first}", user="bob")).text
    assert "don't follow" in (await harness.say("unfollow diffusion", user="bob")).text
    assert "already off" in (await harness.say("digest off", user="bob")).text
    assert "daily at 06:00 UTC" in (await harness.say("digest daily 06:00", user="bob")).text
    await harness.say("digest now", user="bob")
    assert {user.user for user, _, _ in harness.platform.dms} <= {"bob"}
    # bob's reactions on alice's saved papers: his own save comes and goes, hers stays.
    saved = await harness.react(first_ref, user="bob")
    assert saved is not None and saved.text.startswith("Saved")
    removed = await harness.react(first_ref, user="bob", added=False)
    assert removed is not None and removed.text.startswith("Removed")
    never = await harness.react(second_ref, user="bob", added=False)
    assert never is not None and never.text.startswith("Not in your saved papers")

    assert rows_of(await snapshot(harness.store), SCOPE.platform, SCOPE.workspace, "alice") == alice
    assert {card.paper_id for card in (await harness.say("saved", user="alice")).cards} == {
        first,
        second,
    }
    assert [c.paper_id for c in (await harness.say("saved", user="bob")).cards] == [posts[2][0]]


async def test_workspaces_and_platforms_keep_everything_apart(harness: Harness) -> None:
    """The same user and channel ids in another workspace, or on another platform, are other
    people and other channels."""
    await harness.say("channel on 09:00 UTC 4", user="admin", admin=True)
    await harness.say("channel topics add diffusion", user="admin", admin=True)
    await harness.say("channel post-now", user="admin", admin=True)
    [(paper, ref), *_] = harness.paper_posts()
    await harness.react(ref, user="alice")
    await harness.say("follow diffusion", user="alice")
    await harness.say("digest daily 08:00 Asia/Tokyo", user="alice")
    before = await snapshot(harness.store)

    for scope in (Scope(SCOPE.platform, "T2"), Scope("other-platform", SCOPE.workspace)):
        elsewhere = ChannelRef(scope, CHANNEL.channel)

        async def say(text: str, admin: bool = False, channel: ChannelRef = elsewhere) -> str:
            answer = await harness.say(text, user="alice", admin=admin, channel=channel)
            return " ".join((answer.text, *answer.lines))

        assert "follow no topics" in await say("following")
        assert "no saved papers" in await say("saved")
        assert "no saved papers to export" in await say("export bibtex")
        assert "is off" in await say("digest")
        assert "No daily post" in await say("channel status")
        assert "already off" in await say("channel off", admin=True)
        assert "on first" in await say("channel topics remove diffusion", admin=True)
        assert "don't follow" in await say("unfollow diffusion")
        assert "not in your saved" in await say(f"unsave {paper}")
        # The same message id under another workspace names no post of ours.
        other_ref = MessageRef(elsewhere, ref.message_id)
        for added in (True, False):
            assert await harness.react(other_ref, added=added) is None
    assert await snapshot(harness.store) == before

    # Settings made elsewhere stay there.
    t2 = ChannelRef(Scope(SCOPE.platform, "T2"), CHANNEL.channel)
    await harness.say("follow latency", user="alice", channel=t2)
    await harness.say("digest weekly mon 06:00", user="alice", channel=t2)
    await harness.say("channel on 07:00 UTC 2", user="alice", admin=True, channel=t2)
    assert (await harness.say("following", user="alice")).lines == ("diffusion",)
    assert "daily at 08:00 Asia/Tokyo" in (await harness.say("digest", user="alice")).text
    status = await harness.say("channel status")
    assert "top 4 papers at 09:00 UTC" in status.text and "Topics: diffusion." in status.lines
    assert [card.paper_id for card in (await harness.say("saved", user="alice")).cards] == [paper]


# Slack -----------------------------------------------------------------------------------


async def test_slack_non_admins_cannot_change_the_channel_post(
    slack_harness: SlackHarness,
) -> None:
    fake, store = slack_harness.fake, slack_harness.store
    fake.admins.add("U9")
    await slack_harness.command("channel on 09:00 UTC 3", user="U9")
    assert "Added" in all_text(await slack_harness.command("channel topics add diffusion",
                                                          user="U9"))  # fmt: skip
    before = await snapshot(store)

    for text in CHANNEL_CHANGES:
        answer = all_text(await slack_harness.command(text, user="U2"))
        assert "Only workspace admins" in answer, (text, answer)
    # A forged "Share to channel" value runs as a plain member, even for an admin.
    name = await slack_harness.click(SHARE_ACTION, "channel off", user="U9")
    await fake.wait_for_responses(name, timeout=10)
    assert "Nothing to share" in all_text(fake.responses_to(name))
    # users.info failing means "not an admin", even for one.
    fake.admins.add("U3")
    fake.faults["users.info"] = ["user_not_found"]
    assert "Only workspace admins" in all_text(await slack_harness.command("channel off",
                                                                          user="U3"))  # fmt: skip

    assert await snapshot(store) == before
    assert fake.calls("chat.postMessage") == []
    # Admin status came from Slack's users.info (each user once; U3's failure is not cached).
    assert [call.args["user"] for call in fake.calls("users.info")] == ["U9", "U2", "U3"]
    assert "Daily post off" in all_text(await slack_harness.command("channel off", user="U3"))
    assert await snapshot(store) != before


@pytest.fixture
async def two_workspaces(
    store: Store, fake_slack: FakeSlack, fake_hf: FakeHuggingFace
) -> AsyncIterator[SlackHarness]:
    """The Slack app installed by OAuth in workspaces T1 and T2 (each with its own token)."""
    settings = slack_settings(
        fake_slack, fake_hf, SLACK_CLIENT_ID="111.222", SLACK_CLIENT_SECRET="oauth-secret"
    )
    async with stocked(store, fake_hf) as source:
        slack = create_slack_bot(settings, store, source=source)
        async for http in serve(slack):
            await install(http, fake_slack, "T1")
            await install(http, fake_slack, "T2")
            yield SlackHarness(slack, fake_slack, http, store)


async def install(http: httpx.AsyncClient, fake: FakeSlack, team: str) -> None:
    """Install the app in `team` through the OAuth flow, as a workspace admin would."""
    fake.oauth_grants[f"code-{team}"] = team
    page = await http.get("/slack/install")
    state = re.search(r"state=([\w-]+)", page.text)
    assert state, page.text
    done = await http.get(
        "/slack/oauth_redirect",
        params={"code": f"code-{team}", "state": state.group(1)},
        headers={"Cookie": page.headers["set-cookie"].split(";")[0]},
    )
    assert done.status_code == 200, done.text


async def test_slack_workspaces_see_only_their_own_data(two_workspaces: SlackHarness) -> None:
    slack, fake, store = two_workspaces, two_workspaces.fake, two_workspaces.store
    fake.admins.add("U9")

    async def answer(text: str, team: str, user: str = "U1") -> str:
        return all_text(await slack.command(text, user=user, team=team))

    await answer("channel on 09:00 UTC 3", "T1", user="U9")
    await answer("follow diffusion", "T1")
    await answer("digest weekly fri 07:30 Asia/Tokyo", "T1")
    assert "already off" in await answer("channel off", "T2", user="U9")
    assert "No daily post" in await answer("channel status", "T2")
    assert "follow no topics" in await answer("following", "T2")
    assert "is off" in await answer("digest", "T2")
    assert "daily at 06:00 UTC" in await answer("digest daily 06:00", "T2")
    assert "top 3 papers at 09:00 UTC" in await answer("channel status", "T1")
    assert "weekly on Friday at 07:30 Asia/Tokyo" in await answer("digest", "T1")

    # A paper the bot posted in T1's channel C1; a reaction from T2 (same channel and message
    # ids) saves nothing, in T1 or in T2.
    async with store.transaction() as repos:
        paper = await repos.papers.by_arxiv_id("2605.00101")
        assert paper is not None
        await repos.channels.record_posts(
            [PostRecord("slack", "T1", "C1", "1700000000.000100", paper.id, paper.fetched_at)]
        )
    stranger = reaction_event("reaction_added", user="U1", reaction="bookmark", channel="C1",
                              ts="1700000000.000100")  # fmt: skip
    response = await slack.event(stranger, event_id="EvFromT2", team="T2")
    assert response.status_code == 200
    await slack.event(stranger, event_id="EvFromT1", team="T1")  # the same event in T1 saves
    [confirmation] = await fake.wait_for_calls("chat.postEphemeral", 1)
    assert confirmation.token == "xoxb-T1" and confirmation.args["user"] == "U1"
    assert await saves(store) == {("slack", "T1", "U1", paper.id)}
    assert "no saved papers" in await answer("saved", "T2")


KINDS = ("slash-command", "reaction", "block-action")


def slack_request(kind: str, fake: FakeSlack, ts: str) -> tuple[str, str]:
    """A body Slack could send for `kind` (answers go to response_url `kind`), and its content
    type."""
    form = "application/x-www-form-urlencoded"
    if kind == "slash-command":
        return slash_command_body("follow diffusion", response_url=fake.response_url(kind)), form
    if kind == "reaction":
        event = reaction_event("reaction_added", user="U1", reaction="bookmark", channel="C1",
                               ts=ts)  # fmt: skip
        return event_body(event, event_id="EvSigned"), "application/json"
    return block_action_body(SHARE_ACTION, "today", response_url=fake.response_url(kind)), form


def tampered(body: str) -> str:
    """The body with its user changed after signing."""
    changed = body.replace("U1", "U2")
    assert changed != body
    return changed


def bad_signatures(body: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Ways to send `body` without a valid signature: problem -> (body sent, headers)."""
    now = int(time.time())
    good = sign(SIGNING_SECRET, body)
    return {
        "wrong secret": (body, sign("not-the-secret", body)),
        "no signature": (body, {}),
        "timestamp only": (body, {"X-Slack-Request-Timestamp": str(now)}),
        "signature only": (body, {"X-Slack-Signature": good["X-Slack-Signature"]}),
        "garbage signature": (body, {**good, "X-Slack-Signature": "v0=" + "0" * 64}),
        "timestamp not a number": (body, {**good, "X-Slack-Request-Timestamp": "abc"}),
        "stale timestamp": (body, sign(SIGNING_SECRET, body, now - 600)),
        "future timestamp": (body, sign(SIGNING_SECRET, body, now + 600)),
        "body changed after signing": (tampered(body), good),
    }


async def test_slack_requests_without_a_valid_signature_reach_no_handler(
    slack_harness: SlackHarness,
) -> None:
    """Slash commands, events and button clicks with a wrong, missing, stale or replayed
    signature get 401 before any listener runs; signed correctly, the same requests work."""
    fake, store, http = slack_harness.fake, slack_harness.store, slack_harness.http
    ts = "1700000000.000200"
    async with store.transaction() as repos:  # a posted paper, so the reaction would save
        paper = await repos.papers.by_arxiv_id("2605.00101")
        assert paper is not None
        await repos.channels.record_posts(
            [PostRecord("slack", "T1", "C1", ts, paper.id, paper.fetched_at)]
        )
    requests = {kind: slack_request(kind, fake, ts) for kind in KINDS}
    before = await snapshot(store)

    for kind, (body, content_type) in requests.items():
        for problem, (sent, headers) in bad_signatures(body).items():
            response = await http.post(
                "/slack/events",
                content=sent.encode(),
                headers={"Content-Type": content_type, **headers},
            )
            assert response.status_code == 401, (kind, problem)
            assert "follow" not in response.text, "a listener ran: it answered in the ack"
    assert fake.calls() == [], "a listener ran: it called Slack (users.info, chat.*)"
    assert fake.responses == [], "a listener ran: it answered on a response_url"
    assert await snapshot(store) == before  # no inbox row, no follow, no save

    # The very same requests, correctly signed, reach their listeners.
    for kind, (body, content_type) in requests.items():
        response = await http.post(
            "/slack/events",
            content=body.encode(),
            headers={"Content-Type": content_type, **sign(SIGNING_SECRET, body)},
        )
        assert response.status_code == 200
        if kind == "slash-command":
            assert "now follow" in all_text(await answer_to(response, fake, kind))
    await fake.wait_for_responses("block-action", timeout=10)
    await fake.wait_for_calls("chat.postEphemeral", 1)  # "Saved: ..."
    after = await snapshot(store)
    assert fake.calls("users.info") == []  # only a channel change asks who is an admin
    assert len(fake.calls("chat.postMessage")) == 1  # the shared answer
    for table in ("follows", "saves", "processed_events"):
        assert sum(after[table].values()) == sum(before[table].values()) + 1, table


# Discord ---------------------------------------------------------------------------------

OTHER_USER = USER_ID + 7
ALL_BUT_MANAGE_SERVER = ADMIN_PERMISSIONS & ~MANAGE_GUILD & ~ADMINISTRATOR
CHANNEL_MESSAGES = rf"/channels/{CHANNEL_ID}/messages"


def discord_text(call: Call) -> str:
    body = call.json if isinstance(call.json, dict) else {}
    message = body.get("data") or {} if "callback" in call.path else body
    return json.dumps(message, ensure_ascii=False)


async def discord_command(
    harness: DiscordHarness, words: str, permissions: int, **values: str | int
) -> str:
    """Run `/papers <words>` as a member with `permissions`; the answer's text."""
    payload = slash_command(
        "papers", papers_options(words, **values), user_id=OTHER_USER, permissions=permissions
    )
    await harness.fake.interact(payload)
    response = await harness.fake.wait_for_response(payload, timeout=TIMEOUT)
    if response.json["type"] != 5:
        return discord_text(response)
    token = payload["token"]
    followup = await harness.fake.wait_for_call(
        lambda c: c.method in ("POST", "PATCH") and f"/{token}" in c.path
        and "callback" not in c.path,
        timeout=TIMEOUT,
    )  # fmt: skip
    return discord_text(followup)


async def test_discord_members_without_manage_server_cannot_change_the_channel_post(
    discord_harness: DiscordHarness,
) -> None:
    fake, store = discord_harness.fake, discord_harness.store
    await discord_harness.command("channel on", admin=True, time="09:00", count=3)
    await discord_harness.command("channel topics", admin=True, action="add", topic="diffusion")
    before, posted = await snapshot(store), len(fake.calls_to("POST", CHANNEL_MESSAGES))

    for permissions in (MEMBER_PERMISSIONS, ALL_BUT_MANAGE_SERVER):
        for words, values in DISCORD_CHANNEL_CHANGES:
            answer = await discord_command(discord_harness, words, permissions, **values)
            assert "Only members with the Manage Server permission" in answer, (words, answer)
    # A forged "Share to channel" button runs as a plain member, even for an admin.
    forged = fake.add_message(CHANNEL_ID, "old answer", flags=1 << 6, components=({
        "type": 1,
        "components": [{"type": 2, "style": 1, "label": "x", "custom_id": "share:channel off"}],
    },))  # fmt: skip
    click = component("share:channel off", message=forged, permissions=ADMIN_PERMISSIONS)
    await fake.interact(click)
    assert "Nothing to share" in discord_text(await fake.wait_for_response(click))

    assert await snapshot(store) == before
    assert len(fake.calls_to("POST", CHANNEL_MESSAGES)) == posted
    # Manage Server alone, or Administrator alone, is enough.
    assert "Daily post off" in await discord_command(discord_harness, "channel off", MANAGE_GUILD)
    assert "Daily post on" in await discord_command(discord_harness, "channel on", ADMINISTRATOR)
    async with store.transaction() as repos:
        [subscription] = (await repos.session.scalars(select(ChannelSubscription))).all()
    assert subscription.enabled and subscription.workspace == str(GUILD_ID)


async def test_discord_reactions_save_and_unsave_for_the_reacting_member_only(
    discord_harness: DiscordHarness,
) -> None:
    fake, store = discord_harness.fake, discord_harness.store
    await discord_harness.command("channel post-now", admin=True)
    first, second = (int(m["id"]) for m in fake.messages[CHANNEL_ID][1:3])
    dms = {user: rf"/channels/{fake.dm_channel_for(user)['id']}/messages"
           for user in (USER_ID, OTHER_USER)}  # fmt: skip

    async def react(event: str, payload: dict[str, Any], user: int, confirmed: str) -> None:
        start = len(fake.calls)
        await fake.dispatch(event, payload)
        call = await fake.wait_for_call(lambda c: c.matches("POST", dms[user]), start=start)
        assert confirmed in discord_text(call)

    await react("MESSAGE_REACTION_ADD", reaction_add(message_id=first), USER_ID, "Saved")
    await react("MESSAGE_REACTION_ADD", reaction_add(message_id=second), USER_ID, "Saved")
    other_add = reaction_add(message_id=first, user_id=OTHER_USER)
    await react("MESSAGE_REACTION_ADD", other_add, OTHER_USER, "Saved")
    other_remove = reaction_remove(message_id=first, user_id=OTHER_USER)
    await react("MESSAGE_REACTION_REMOVE", other_remove, OTHER_USER, "Removed")
    other_never = reaction_remove(message_id=second, user_id=OTHER_USER)
    await react("MESSAGE_REACTION_REMOVE", other_never, OTHER_USER, "Not in your saved papers")

    guild = str(GUILD_ID)
    mine = {(p, w, u) for p, w, u, _ in await saves(store)}
    assert mine == {("discord", guild, str(USER_ID))} and len(await saves(store)) == 2
    assert "no saved papers" in await discord_command(discord_harness, "saved", MEMBER_PERMISSIONS)
    exported = await discord_command(discord_harness, "export", MEMBER_PERMISSIONS,
                                     format="bibtex")  # fmt: skip
    assert "no saved papers to export" in exported
    answer = await discord_harness.command("export", format="bibtex")
    assert "BibTeX for your 2 saved papers" in discord_text(answer)
