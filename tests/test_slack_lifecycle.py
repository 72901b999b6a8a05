"""The real slack-bolt app, fed signed events, against the fake Slack Web API: every channel
event that means the bot can no longer post stops that channel's posts and DMs the admin
once, in words; an uninstall (or the bot's token revoked) stops the whole workspace until an
OAuth install brings it back; a member's own data (`export mine` uploaded into their DM with
files_upload_v2, `forget me`)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from adapters.slack.app import create_slack_bot
from bot.delivery.runner import DeliveryPolicy, DeliveryRunner
from bot.delivery.slots import load_slots
from storage.deliveries import DeliveryKey, Status
from storage.papers import PaperData
from storage.store import Store
from tests.core_fixtures import NOW, stocked
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import FakeSlack
from tests.slack_fixtures import SlackHarness, all_text, serve, slack_settings
from tests.test_slack_install_and_socket import install

_ids = itertools.count(1)


def event_id() -> str:
    return f"EvLife{next(_ids)}"


async def job_ids(store: Store) -> list[str]:
    return sorted(slot.job_id for slot in await load_slots(store, "slack"))


async def turn_on(harness: SlackHarness, channel: str = "C1", team: str = "T1") -> None:
    """U1 (an admin) turns on the daily and weekly posts in `channel`; U2 gets a digest."""
    harness.fake.admins.add("U1")
    for text in ("channel on 09:00 UTC 3", "channel weekly on fri 16:00 UTC"):
        answer = all_text(await harness.command(text, channel=channel, team=team))
        assert "on" in answer and "Only" not in answer
    await harness.command("digest daily 08:00 UTC", user="U2", team=team)


async def settle(harness: SlackHarness) -> None:
    """Let the work the listeners started after acknowledging finish."""
    await harness.slack.background.close()


def assert_in_words(text: str, channel: str) -> None:
    """The channel only as a mention (Slack shows its name), and no error code."""
    bare = text.replace(f"<#{channel}>", "")
    assert channel not in bare, text
    for code in ("not_in_channel", "is_archived", "channel_not_found", "channel_", "group_"):
        assert code not in bare, text


CHANNEL_EVENTS = [
    ("channel_left", "C1", "I was removed from <#C1>", "add me to the channel again"),
    ("channel_archive", "C1", "<#C1> was archived", "unarchive the channel"),
    ("channel_deleted", "C1", "<#C1> was deleted", "in another channel"),
    ("group_left", "G1", "I was removed from <#G1>", "add me to the channel again"),
    ("group_archive", "G1", "<#G1> was archived", "unarchive the channel"),
]


@pytest.mark.parametrize(("kind", "channel", "happened", "how"), CHANNEL_EVENTS)
async def test_a_channel_event_stops_its_posts_and_tells_the_admin_once(
    slack_harness: SlackHarness, kind: str, channel: str, happened: str, how: str
) -> None:
    await turn_on(slack_harness, channel)
    event = {"type": kind, "channel": channel, "actor_id": "U9", "event_ts": "1.000001"}
    response = await slack_harness.event(event, event_id=event_id())
    assert response.status_code == 200  # answered, not "unhandled"
    await settle(slack_harness)
    again = {"type": "channel_left", "channel": channel, "event_ts": "1.000002"}
    assert (await slack_harness.event(again, event_id=event_id())).status_code == 200
    await settle(slack_harness)
    assert await job_ids(slack_harness.store) == ["digest:slack:T1:U2"]
    [notice] = slack_harness.posted("DU1")
    assert notice["text"] == f"{happened}, so I stopped its daily post and its weekly post."
    assert how in all_text(notice["blocks"])
    assert_in_words(notice["text"], channel)
    status = all_text(await slack_harness.command("channel status", channel=channel))
    assert "It was stopped" in status


async def test_a_channel_event_for_a_channel_without_posts_tells_no_one(
    slack_harness: SlackHarness,
) -> None:
    await turn_on(slack_harness, "C1")
    event = {"type": "channel_archive", "channel": "C7", "user": "U9"}
    assert (await slack_harness.event(event, event_id=event_id())).status_code == 200
    await settle(slack_harness)
    assert slack_harness.posted("DU1") == []
    assert len(await job_ids(slack_harness.store)) == 3


async def test_uninstall_stops_everything_and_keeps_the_data(slack_harness: SlackHarness) -> None:
    await turn_on(slack_harness)
    await slack_harness.command("follow diffusion", user="U2")
    event = {"type": "app_uninstalled", "event_ts": "1.000001"}
    assert (await slack_harness.event(event, event_id=event_id())).status_code == 200
    assert await job_ids(slack_harness.store) == []
    async with slack_harness.store.reading() as repos:
        assert await repos.workspaces.has_left("slack", "T1")
        assert await repos.users.following("slack", "T1", "U2") == ["diffusion"]
        assert await repos.channels.subscription("slack", "T1", "C1") is not None
    assert slack_harness.posted() == []  # nobody is told: the app is gone


@pytest.mark.parametrize(
    ("tokens", "stops"),
    [({"oauth": ["U5"], "bot": []}, False), ({"oauth": [], "bot": ["UBOT"]}, True)],
)
async def test_tokens_revoked_stops_the_workspace_only_for_the_bots_token(
    slack_harness: SlackHarness, tokens: dict[str, list[str]], stops: bool
) -> None:
    await turn_on(slack_harness)
    event = {"type": "tokens_revoked", "tokens": tokens, "event_ts": "1.000001"}
    assert (await slack_harness.event(event, event_id=event_id())).status_code == 200
    assert (await job_ids(slack_harness.store) == []) is stops


@pytest.fixture
async def oauth_harness(store: Store, fake_slack: FakeSlack, fake_hf: FakeHuggingFace) -> Any:
    settings = slack_settings(
        fake_slack, fake_hf, SLACK_CLIENT_ID="111.222", SLACK_CLIENT_SECRET="oauth-secret"
    )
    async with stocked(store, fake_hf) as source:
        slack = create_slack_bot(settings, store, source=source, clock=lambda: NOW)
        async for http in serve(slack):
            yield SlackHarness(slack, fake_slack, http, store)


async def test_installing_again_within_the_grace_period_brings_everything_back(
    oauth_harness: SlackHarness,
) -> None:
    await install(oauth_harness, "T1")
    await install(oauth_harness, "T2")
    await turn_on(oauth_harness, team="T1")
    await turn_on(oauth_harness, team="T2")
    before = await job_ids(oauth_harness.store)
    assert len(before) == 6
    event = {"type": "app_uninstalled", "event_ts": "1.000001"}
    response = await oauth_harness.event(event, event_id=event_id(), team="T1")
    assert response.status_code == 200
    assert all(":T2:" in job for job in await job_ids(oauth_harness.store))
    assert len(await job_ids(oauth_harness.store)) == 3
    await install(oauth_harness, "T1")
    assert await job_ids(oauth_harness.store) == before


async def test_export_mine_is_uploaded_into_the_members_dm(slack_harness: SlackHarness) -> None:
    fake = slack_harness.fake
    await slack_harness.command("follow diffusion", user="U2")
    await slack_harness.command("save 2605.00101", user="U2")
    answer = all_text(await slack_harness.command("export mine", user="U2"))
    assert "I sent you a file of everything stored about you" in answer
    steps = [
        call.method for call in fake.calls()
        if call.method.startswith("files.") or call.method == "upload"
    ]  # fmt: skip
    assert steps == ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    [shared] = fake.shared_files
    assert shared["channel"] == "DU2" and shared["name"] == "paperboy-my-data.json"
    assert "1 saved paper, 1 followed topic" in shared["initial_comment"]
    exported = json.loads(fake.uploads[shared["id"]])
    assert exported["user"] == "U2" and exported["follows"] == ["diffusion"]
    assert [p["arxiv_id"] for p in exported["saved_papers"]] == ["2605.00101"]
    [asked] = fake.calls("files.getUploadURLExternal")
    assert int(asked.args["length"]) == len(fake.uploads[shared["id"]])


async def test_forget_me_on_slack(slack_harness: SlackHarness) -> None:
    await slack_harness.command("follow diffusion", user="U2")
    await slack_harness.command("follow diffusion", user="U3")
    asked = all_text(await slack_harness.command("forget me", user="U2"))
    assert "/papers forget me confirm" in asked and "1 followed topic" in asked
    done = all_text(await slack_harness.command("forget me confirm", user="U2"))
    assert "Deleted everything stored about you in this workspace" in done
    assert "follow no topics" in all_text(await slack_harness.command("following", user="U2"))
    assert "diffusion" in all_text(await slack_harness.command("following", user="U3"))
    usage = all_text(await slack_harness.command("forget you", user="U2"))
    assert "Usage: `/papers forget me`, then `/papers forget me confirm`" in usage


async def test_export_mine_says_so_when_the_upload_fails(slack_harness: SlackHarness) -> None:
    slack_harness.fake.faults["files.completeUploadExternal"] = ["not_allowed_token_type"]
    answer = all_text(await slack_harness.command("export mine", user="U2"))
    assert "I couldn't send you the file just now" in answer
    assert slack_harness.fake.shared_files == []


async def test_export_bibtex_uploads_a_bib_file_and_shows_whole_entries(
    slack_harness: SlackHarness,
) -> None:
    """BibTeX copied from the answer must stay valid: the whole file goes to the member's DM
    as a .bib file, and the answer shows only whole entries; when the upload fails, the
    answer says so and still cuts only between entries."""
    papers = [
        PaperData(f"2612.{n:05d}", f"Saved paper number {n} on long-horizon planning",
                  authors=tuple(f"Author {n}-{k}" for k in range(12)))
        for n in range(40)
    ]  # fmt: skip
    async with slack_harness.store.transaction() as repos:
        ids = await repos.papers.upsert(papers, NOW)
        for paper_id in ids.values():
            await repos.users.save("slack", "T1", "U2", paper_id, NOW)
    fake = slack_harness.fake

    def preview(answer: dict[str, Any]) -> str:
        sections = [b["text"]["text"] for b in answer["blocks"] if b["type"] == "section"]
        return next(text for text in sections if "```" in text).split("```")[1]

    answered = await slack_harness.command("export bibtex", user="U2")
    answer = all_text(answered)
    assert "The whole file, paperboy-saved.bib, is in your direct messages with me." in answer
    shown = preview(answered).count("@misc{")
    assert 0 < shown < 40 and f"Below, the first {shown}; {40 - shown} more in the file." in answer
    assert preview(answered).strip().endswith("}")  # the last entry shown is whole
    [shared] = fake.shared_files
    assert shared["channel"] == "DU2" and shared["name"] == "paperboy-saved.bib"
    assert fake.uploads[shared["id"]].decode().count("@misc{") == 40

    fake.faults["files.completeUploadExternal"] = ["not_allowed_token_type"]
    failed = await slack_harness.command("export bibtex", user="U2")
    assert "I couldn't send you the file just now; try again in a minute for all of it." in (
        all_text(failed)
    )
    assert preview(failed).count("@misc{") == shown and preview(failed).strip().endswith("}")


def runner(harness: SlackHarness) -> DeliveryRunner:
    return harness.slack.bot.scheduler(
        worker="w1", policy=DeliveryPolicy(), clock=lambda: NOW
    ).runner


@pytest.mark.parametrize("refusal", ["token_revoked", "account_inactive"])
async def test_a_post_refused_as_the_app_was_removed_stops_the_workspace_not_the_channel(
    oauth_harness: SlackHarness, refusal: str
) -> None:
    """The uninstall event can come after a post already met the revoked token (or never,
    while no process was listening): the app is gone from the workspace, not the bot from
    that channel, so installing again brings the posts back."""
    await install(oauth_harness, "T1")
    await turn_on(oauth_harness)
    before = await job_ids(oauth_harness.store)
    oauth_harness.fake.faults["chat.postMessage"] = [refusal]
    key = DeliveryKey("channel", "slack", "T1", "C1", "2026-05-05")
    assert await runner(oauth_harness).run(key) is Status.FAILED
    assert await job_ids(oauth_harness.store) == []
    async with oauth_harness.store.reading() as repos:
        assert await repos.workspaces.has_left("slack", "T1")
    assert [c.args["users"] for c in oauth_harness.fake.calls("conversations.open")] == []
    await install(oauth_harness, "T1")
    assert await job_ids(oauth_harness.store) == before
    status = all_text(await oauth_harness.command("channel status"))
    assert "stopped" not in status


async def test_a_digest_refused_as_the_app_was_removed_is_not_paused(
    oauth_harness: SlackHarness,
) -> None:
    await install(oauth_harness, "T1")
    await turn_on(oauth_harness)
    before = await job_ids(oauth_harness.store)
    await oauth_harness.command("follow diffusion", user="U2")
    oauth_harness.fake.faults["conversations.open"] = ["account_inactive"]
    key = DeliveryKey("digest", "slack", "T1", "U2", "2026-05-05")
    assert await runner(oauth_harness).run(key) is Status.FAILED
    async with oauth_harness.store.reading() as repos:
        assert await repos.workspaces.has_left("slack", "T1")
    await install(oauth_harness, "T1")
    assert await job_ids(oauth_harness.store) == before
    digest = all_text(await oauth_harness.command("digest", user="U2"))
    assert "paused" not in digest.lower()
