"""Saving papers from anyone's Slack message: the save reaction on a message the bot did not
post (read with conversations.history, or conversations.replies for a thread reply) and the
"Save paper" message shortcut, through the real bolt app over signed HTTP, the fake Slack
Web API and papers not stored fetched from the fake Hugging Face."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.slack.app import SAVE_SHORTCUT, SHARE_ACTION, create_slack_bot
from bot.links import MAX_IDS
from bot.sources.lookup import PaperLookup
from storage.store import Store
from tests.core_fixtures import NOW, stocked
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import FakeSlack, message_shortcut_body
from tests.slack_fixtures import SlackHarness, all_text, serve, slack_settings

STORED = "2605.00101"  # Self-Speculative Decoding Without a Draft Model, stored
OTHER_STORED = "2605.00102"  # Dense Retrieval for Scientific Papers..., stored
FETCHED = "2405.90001"  # Speculative Retrieval: only on Hugging Face, a day never ingested
LINKS = (
    f"Worth a read: <https://alphaxiv.org/abs/{FETCHED}|this one> and "
    f"<https://arxiv.org/abs/{STORED}v2>, also https://huggingface.co/papers/{OTHER_STORED}"
)


@pytest.fixture
async def harness(
    store: Store, fake_slack: FakeSlack, fake_hf: FakeHuggingFace
) -> AsyncIterator[SlackHarness]:
    async with stocked(store, fake_hf) as source:
        fake_hf.load_day("2024-05-27", "legacy-2024-05-27.json")  # served, never ingested
        slack = create_slack_bot(
            slack_settings(fake_slack, fake_hf), store, source=source,
            lookup=PaperLookup(source), clock=lambda: NOW,
        )  # fmt: skip
        async for http in serve(slack):
            yield SlackHarness(slack, fake_slack, http, store)


async def react(harness: SlackHarness, ts: str, event_id: str, **kwargs: Any) -> None:
    """React (as U1 in C1 unless told); returns once the app has done all it does about it."""
    response = await harness.react(ts, event_id=event_id, **kwargs)
    assert response.status_code == 200, response.text
    await harness.slack.background.close()  # waits for the work started in the background


async def saved_ids(harness: SlackHarness, user: str = "U1") -> set[str]:
    async with harness.store.reading() as repos:
        return {paper.arxiv_id for paper in await repos.users.saved("slack", "T1", user)}


def confirmations(harness: SlackHarness) -> list[dict[str, Any]]:
    return [call.args for call in harness.fake.calls("chat.postEphemeral")]


async def test_a_reaction_on_a_members_link_saves_the_paper_fetching_it(
    harness: SlackHarness,
) -> None:
    ts = harness.fake.add_message("C1", f"see <https://arxiv.org/abs/{FETCHED}v1>", user="U2")
    await react(harness, ts, "EvR1")
    [read] = harness.fake.calls("conversations.history")
    assert read.args["channel"] == "C1" and read.args["latest"] == ts
    assert read.args["inclusive"] in (True, "1", "true") and int(read.args["limit"]) == 1
    assert harness.fake.calls("conversations.replies") == []
    [confirmation] = confirmations(harness)
    assert confirmation["channel"] == "C1" and confirmation["user"] == "U1"
    assert confirmation["text"].startswith("Saved 1 paper")
    assert "Speculative Retrieval" in confirmation["text"]
    assert await saved_ids(harness) == {FETCHED}
    assert await saved_ids(harness, "U2") == set()  # the author saved nothing


async def test_a_reply_inside_a_thread_is_read_from_the_thread(harness: SlackHarness) -> None:
    parent = harness.fake.add_message("C1", "papers this week, in the thread", user="U2")
    harness.fake.add_message("C1", f"arXiv:{OTHER_STORED}", user="U3", thread_ts=parent)
    reply = harness.fake.add_message(
        "C1", f"<https://huggingface.co/papers/{STORED}>", user="U2", thread_ts=parent
    )
    await react(harness, reply, "EvR2")
    [read] = harness.fake.calls("conversations.replies")
    assert read.args["ts"] == reply
    assert read.args["oldest"] == read.args["latest"] == reply
    assert int(read.args["limit"]) == 2  # the thread's parent comes first and counts
    [confirmation] = confirmations(harness)
    assert "Self-Speculative Decoding" in confirmation["text"]
    assert confirmation["thread_ts"] == parent  # shown in the thread, beside the reply
    assert await saved_ids(harness) == {STORED}  # the reply's paper, not its neighbour's


async def test_several_links_are_all_saved_and_named(harness: SlackHarness) -> None:
    ts = harness.fake.add_message("C1", LINKS, user="U2")
    await react(harness, ts, "EvR3")
    [confirmation] = confirmations(harness)
    assert confirmation["text"].startswith("Saved 3 papers")
    assert "thread_ts" not in confirmation  # a message in the channel: answered there
    blocks = all_text(confirmation["blocks"])
    for title in ("Speculative Retrieval", "Self-Speculative Decoding", "Dense Retrieval"):
        assert title in blocks
    assert await saved_ids(harness) == {FETCHED, STORED, OTHER_STORED}


async def test_links_in_blocks_count_too(harness: SlackHarness) -> None:
    rich_text = {
        "type": "rich_text",
        "elements": [
            {
                "type": "rich_text_section",
                "elements": [{"type": "link", "url": f"https://arxiv.org/pdf/{STORED}"}],
            }
        ],
    }
    ts = harness.fake.add_message("C1", "a paper", user="U2", blocks=[rich_text])
    await react(harness, ts, "EvR4")
    assert await saved_ids(harness) == {STORED}


async def test_removing_the_reaction_unsaves_for_that_user_only(harness: SlackHarness) -> None:
    ts = harness.fake.add_message("C1", LINKS, user="U2")
    await react(harness, ts, "EvR5")
    await react(harness, ts, "EvR6", user="U9")
    await react(harness, ts, "EvR7", added=False)
    removed = confirmations(harness)[-1]
    assert removed["user"] == "U1"
    assert removed["text"].startswith("Removed from your saved papers: 3 papers")
    assert await saved_ids(harness) == set()
    assert await saved_ids(harness, "U9") == {FETCHED, STORED, OTHER_STORED}


async def test_a_message_without_paper_links_gets_nothing(harness: SlackHarness) -> None:
    ts = harness.fake.add_message("C1", "see https://huggingface.co/papers/trending", user="U2")
    await react(harness, ts, "EvR8")
    assert len(harness.fake.calls("conversations.history")) == 1  # it was read
    assert confirmations(harness) == []
    assert await saved_ids(harness) == set()


async def test_other_emojis_never_read_the_message(harness: SlackHarness) -> None:
    ts = harness.fake.add_message("C1", LINKS, user="U2")
    await react(harness, ts, "EvR9", emoji="thumbsup")
    assert harness.fake.calls("conversations.history") == []
    assert confirmations(harness) == [] and await saved_ids(harness) == set()


@pytest.mark.parametrize("fault", [None, "not_in_channel", "channel_not_found"])
async def test_a_deleted_or_unreadable_message_saves_nothing_and_logs_one_line(
    harness: SlackHarness, caplog: pytest.LogCaptureFixture, fault: str | None
) -> None:
    harness.fake.add_message("C1", f"arXiv:{STORED}", user="U3")  # older: not the one
    ts = harness.fake.add_message("C1", LINKS, user="U2")
    harness.fake.delete_message("C1", ts)
    if fault is not None:
        harness.fake.faults["conversations.history"].append(fault)
    with caplog.at_level(logging.INFO):
        await react(harness, ts, "EvR10")
    assert confirmations(harness) == [] and await saved_ids(harness) == set()
    [line] = [r for r in caplog.records if "cannot read message" in r.getMessage()]
    assert (fault or "thread_not_found") in line.getMessage() and line.exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_the_bots_own_paper_post_is_saved_without_reading_it(
    harness: SlackHarness,
) -> None:
    harness.fake.admins.add("U1")
    await harness.command("channel post-now")
    ts = harness.fake.delivered[1].ts  # the first paper, after the header
    await react(harness, ts, "EvR11")
    assert harness.fake.calls("conversations.history") == []
    assert confirmations(harness)[-1]["text"].startswith("Saved:")


async def test_a_reaction_on_the_bots_list_of_papers_saves_none_of_them(
    harness: SlackHarness,
) -> None:
    name = await harness.click(SHARE_ACTION, "topic speculative decoding", user="U7")
    await harness.fake.wait_for_responses(name, timeout=10)
    [shared] = harness.fake.delivered  # a list of papers, shared to the channel
    assert STORED in all_text(shared.blocks)
    assert "Saved 1 paper" in all_text(await harness.command(f"save {STORED}"))
    await react(harness, shared.ts, "EvR12")
    assert await saved_ids(harness) == {STORED}  # one reaction never saves a whole list
    await react(harness, shared.ts, "EvR13", added=False)
    assert await saved_ids(harness) == {STORED}  # nor takes the member's saves away
    assert confirmations(harness) == []


async def shortcut(harness: SlackHarness, message: dict[str, Any], name: str) -> dict[str, Any]:
    """Pick "Save paper" on `message` as U1; the private answer on the response_url."""
    body = message_shortcut_body(
        SAVE_SHORTCUT, message, response_url=harness.fake.response_url(name)
    )
    response = await harness.post(body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200, response.text
    [answer] = await harness.fake.wait_for_responses(name, timeout=10)
    assert answer["response_type"] == "ephemeral"
    return answer  # type: ignore[no-any-return]


async def test_the_shortcut_saves_the_messages_papers(harness: SlackHarness) -> None:
    message = {"type": "message", "user": "U2", "ts": "1700000000.000300", "text": LINKS}
    answer = await shortcut(harness, message, "short1")
    assert answer["text"].startswith("Saved 3 papers")
    assert "Speculative Retrieval" in all_text(answer["blocks"])
    assert await saved_ids(harness) == {FETCHED, STORED, OTHER_STORED}
    assert harness.fake.calls("conversations.history") == []  # the payload carries the text


async def test_the_shortcut_on_a_message_without_links_says_so(harness: SlackHarness) -> None:
    message = {"type": "message", "user": "U2", "ts": "1700000000.000400", "text": "lunch?"}
    answer = await shortcut(harness, message, "short2")
    assert "no paper link" in answer["text"] and "arxiv.org" in answer["text"]
    assert await saved_ids(harness) == set()


async def test_a_message_naming_too_many_papers_saves_the_first_and_says_so(
    harness: SlackHarness,
) -> None:
    ids = [f"2605.{n:05d}" for n in range(1, MAX_IDS + 6)]
    text = " ".join(f"arXiv:{arxiv_id}" for arxiv_id in ids)
    answer = await shortcut(harness, {"type": "message", "ts": "1.000500", "text": text}, "s3")
    assert f"more than {MAX_IDS} papers" in all_text(answer)
    async with harness.store.reading() as repos:
        pending = {row.arxiv_id for row in await repos.pending.of_user("slack", "T1", "U1")}
    assert (await saved_ids(harness)) | pending == set(ids[:MAX_IDS])
