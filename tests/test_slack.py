"""The Slack adapter end to end: signed requests over HTTP into the real bolt app, Web API
calls into the fake Slack."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import select

from adapters.slack.app import create_slack_bot
from adapters.slack.render import SHARE_ACTION
from storage.models import Post
from storage.store import Store
from tests.core_fixtures import NOW, stocked
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import FakeSlack, slash_command_body
from tests.slack_fixtures import (
    SIGNING_SECRET,
    SlackHarness,
    all_text,
    serve,
    slack_settings,
)

FORM = "application/x-www-form-urlencoded"

COMMANDS = [
    ("", "Trending papers"),
    ("today", "Trending papers"),
    ("topic speculative decoding", "Papers on"),
    ("follow diffusion", "now follow"),
    ("unfollow diffusion", "don't follow"),
    ("following", "follow no topics"),
    ("saved", "no saved papers"),
    ("unsave 2605.00001", "not in your saved papers"),
    ("export bibtex", "no saved papers to export"),
    ("digest daily 08:00 Asia/Tokyo", "daily at 08:00 Asia/Tokyo"),
    ("digest", "off"),
    ("digest now", "follow no topics"),
    ("digest off", "already off"),
    ("channel status", "No daily post"),
    ("help", "paperboy"),
    ("frobnicate", "Unknown command"),
    ("week", "Most upvoted papers of the last 7 days"),
    ("month", "Most upvoted papers of the last 30 days"),
    ("team", "Nobody here has saved a paper in the last 7 days"),
    ("team year", "Usage: `/papers team [week|month|all]`"),
]


async def answer_text(slack_harness: SlackHarness, text: str, **kwargs: str) -> str:
    return all_text(await slack_harness.command(text, **kwargs))


@pytest.mark.parametrize(("text", "expected"), COMMANDS)
async def test_every_command_answers_ephemerally_with_blocks(
    slack_harness: SlackHarness, text: str, expected: str
) -> None:
    answer = await slack_harness.command(text)
    assert answer["response_type"] == "ephemeral"
    assert answer["blocks"], answer
    assert expected in all_text(answer)
    assert "went wrong" not in all_text(answer)


async def test_a_quick_answer_rides_in_the_acknowledgement(slack_harness: SlackHarness) -> None:
    fake = slack_harness.fake
    body = slash_command_body("topic speculative decoding", response_url=fake.response_url("q"))
    response = await slack_harness.post(body, content_type=FORM)
    assert response.status_code == 200
    answer = response.json()
    assert answer["response_type"] == "ephemeral"
    assert "Self-Speculative Decoding" in all_text(answer["blocks"])
    await asyncio.sleep(0.3)  # time for a second answer to arrive, were one sent
    assert fake.responses_to("q") == []


async def test_a_slow_answer_is_acknowledged_first_and_sent_to_the_response_url(
    store: Store, fake_slack: FakeSlack, fake_hf: FakeHuggingFace
) -> None:
    async with stocked(store, fake_hf) as source:
        slack = create_slack_bot(
            slack_settings(fake_slack, fake_hf), store, source=source, clock=lambda: NOW,
            answer_in_ack_within=0.1,
        )  # fmt: skip
        async for http in serve(slack):
            harness = SlackHarness(slack, fake_slack, http, store)
            # Nothing stored matches, and Hugging Face search stalls past the 1 s budget.
            fake_hf.faults["search"] = ["timeout"]
            url = fake_slack.response_url("slow")
            response = await harness.post(
                slash_command_body("topic zebra finches", response_url=url), content_type=FORM
            )
            assert response.status_code == 200 and response.content == b""
            assert fake_slack.responses_to("slow") == []  # acknowledged before the answer
            [answer] = await fake_slack.wait_for_responses("slow", timeout=10)
            assert answer["response_type"] == "ephemeral"
            assert "No papers found for “zebra finches”" in all_text(answer)


async def test_today_renders_paper_cards_with_links(slack_harness: SlackHarness) -> None:
    answer = await slack_harness.command("today")
    text = all_text(answer)
    assert "<https://huggingface.co/papers/2605.00101|Self-Speculative Decoding" in text
    assert "https://arxiv.org/pdf/2605.00101" in text
    assert "Anika Bose" in text
    assert answer["text"]  # notification fallback
    share = [
        e
        for b in answer["blocks"]
        for e in b.get("elements", [])
        if e.get("action_id") == SHARE_ACTION
    ]
    assert share and share[0]["value"] == "today"


async def test_the_bare_command_shares_as_today_and_an_unshareable_answer_offers_nothing(
    slack_harness: SlackHarness,
) -> None:
    def share_values(answer: dict[str, Any]) -> list[str]:
        return [
            e["value"]
            for b in answer["blocks"]
            for e in b.get("elements", [])
            if e.get("action_id") == SHARE_ACTION
        ]

    assert share_values(await slack_harness.command("")) == ["today"]
    assert share_values(await slack_harness.command("topic zebra finches")) == []
    assert share_values(await slack_harness.command("following")) == []


async def test_paper_text_is_escaped_for_mrkdwn(slack_harness: SlackHarness) -> None:
    text = all_text(await slack_harness.command("topic diffusion"))
    assert "Secretly" in text  # the hostile fixture paper is in the answer
    assert "<!channel>" not in text and "<!here>" not in text
    assert "&lt;!channel&gt;" in text


async def test_share_button_posts_the_answer_publicly(slack_harness: SlackHarness) -> None:
    name = await slack_harness.click(SHARE_ACTION, "topic speculative decoding", user="U7")
    await slack_harness.fake.wait_for_responses(name, timeout=10)
    posts = slack_harness.posted("C1")
    assert len(posts) == 1
    assert "Shared by <@U7>" in all_text(posts[0]["blocks"])
    assert "Self-Speculative Decoding" in all_text(posts[0]["blocks"])
    assert posts[0]["unfurl_links"] in (False, "0", 0)
    assert slack_harness.fake.responses_to(name)[0]["replace_original"] is True


async def test_share_of_a_hostile_value_shares_nothing(slack_harness: SlackHarness) -> None:
    name = await slack_harness.click(SHARE_ACTION, "channel on <!channel>")
    await slack_harness.fake.wait_for_responses(name, timeout=10)
    assert slack_harness.posted() == []
    assert "Nothing to share" in all_text(slack_harness.fake.responses_to(name))


async def test_non_admins_are_refused_and_admins_are_served(slack_harness: SlackHarness) -> None:
    refused = await answer_text(slack_harness, "channel on 09:00 Europe/Berlin 3", user="U2")
    assert "Only workspace admins" in refused
    assert [c.args["user"] for c in slack_harness.fake.calls("users.info")] == ["U2"]
    slack_harness.fake.admins.add("U3")
    accepted = await answer_text(slack_harness, "channel on 09:00 Europe/Berlin 3", user="U3")
    assert "top 3 papers at 09:00 Europe/Berlin" in accepted
    slack_harness.fake.owners.add("U4")
    assert "Posted 3" in await answer_text(slack_harness, "channel post-now", user="U4")


async def test_admin_commands_are_refused_while_users_info_is_unreachable(
    slack_harness: SlackHarness,
) -> None:
    fake = slack_harness.fake
    fake.admins.add("U5")
    fake.faults["users.info"] = ["disconnect"] * 5  # more than the client's retries
    assert "Only workspace admins" in await answer_text(slack_harness, "channel on", user="U5")
    assert "users.info" in [call.method for call in fake.calls()]
    fake.faults["users.info"] = ["disconnect"] * 5
    assert "Papers on" in await answer_text(slack_harness, "topic diffusion", user="U6")
    fake.faults["users.info"].clear()  # reachable again: the admin is served
    assert "Daily post on" in await answer_text(slack_harness, "channel on", user="U5")


async def test_daily_post_then_reaction_saves_and_unsaves(slack_harness: SlackHarness) -> None:
    slack_harness.fake.admins.add("U1")
    assert "Posted 4" in await answer_text(slack_harness, "channel post-now")
    posts = slack_harness.posted("C1")
    assert len(posts) == 5  # a header, then one message per paper
    assert all(p["unfurl_links"] in (False, "0", 0) for p in posts)
    second_paper = await paper_post_ts(slack_harness, 1)
    response = await slack_harness.react(second_paper, user="U5", event_id="EvSave")
    assert response.status_code == 200
    await slack_harness.fake.wait_for_calls("chat.postEphemeral", 1)
    confirmation = slack_harness.fake.calls("chat.postEphemeral")[-1].args
    assert confirmation["user"] == "U5" and "Saved" in confirmation["text"]
    assert "Dense Retrieval" in await answer_text(slack_harness, "saved", user="U5")
    assert "no saved papers" in await answer_text(slack_harness, "saved", user="U1")

    await slack_harness.react(second_paper, user="U5", added=False, event_id="EvUnsave")
    await slack_harness.fake.wait_for_calls("chat.postEphemeral", 2)
    assert "no saved papers" in await answer_text(slack_harness, "saved", user="U5")


async def paper_post_ts(slack_harness: SlackHarness, index: int) -> str:
    """The ts Slack gave the index-th paper message (0-based) of the daily post."""
    async with slack_harness.store.transaction() as repos:
        posts = (await repos.session.scalars(select(Post).order_by(Post.id))).all()
    return posts[index].message_id


async def test_duplicate_event_delivery_is_processed_once(slack_harness: SlackHarness) -> None:
    slack_harness.fake.admins.add("U1")
    await slack_harness.command("channel post-now")
    ts = await paper_post_ts(slack_harness, 0)
    first = await slack_harness.react(ts, event_id="EvDup")
    retry = await slack_harness.react(
        ts,
        event_id="EvDup",
        headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    assert first.status_code == retry.status_code == 200
    await slack_harness.fake.wait_for_calls("chat.postEphemeral", 1)
    await slack_harness.react(ts, event_id="EvOther", emoji="bookmark", added=False)
    await slack_harness.fake.wait_for_calls("chat.postEphemeral", 2)
    texts = [c.args["text"] for c in slack_harness.fake.calls("chat.postEphemeral")]
    assert texts[0].startswith("Saved") and texts[1].startswith("Removed")  # not "Already saved"


@pytest.mark.parametrize("problem", ["wrong secret", "stale timestamp", "missing signature"])
async def test_unsigned_or_stale_requests_get_401_and_touch_nothing(
    slack_harness: SlackHarness, problem: str
) -> None:
    body = slash_command_body("follow diffusion", response_url=slack_harness.fake.response_url("x"))
    if problem == "missing signature":
        response = await slack_harness.http.post(
            "/slack/events", content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
    else:
        response = await slack_harness.post(
            body,
            content_type="application/x-www-form-urlencoded",
            secret="not-the-secret" if problem == "wrong secret" else SIGNING_SECRET,
            timestamp=int(time.time()) - 600 if problem == "stale timestamp" else None,
        )
    assert response.status_code == 401
    assert slack_harness.fake.calls() == [] and slack_harness.fake.responses == []
    assert "no topics" in await answer_text(slack_harness, "following")


async def test_archived_channel_stops_the_daily_post_and_tells_the_admin(
    slack_harness: SlackHarness,
) -> None:
    slack_harness.fake.admins.add("U1")
    await slack_harness.command("channel on 09:00 UTC 3")
    slack_harness.fake.faults["chat.postMessage"] = ["is_archived"]
    answer = await answer_text(slack_harness, "channel post-now")
    assert "This channel was archived: its daily post is now off." in answer
    assert [c.args["users"] for c in slack_harness.fake.calls("conversations.open")] == ["U1"]
    [notice] = slack_harness.posted("DU1")
    assert notice["text"] == "<#C1> was archived, so I stopped its daily post."
    assert "is_archived" not in all_text(notice)
    status = await answer_text(slack_harness, "channel status")
    assert "stopped: the channel was archived" in status


async def test_rate_limit_is_waited_out(slack_harness: SlackHarness) -> None:
    slack_harness.fake.admins.add("U1")
    slack_harness.fake.retry_after = "1"
    slack_harness.fake.faults["chat.postMessage"] = ["429"]
    started = time.monotonic()
    assert "Posted 4" in await answer_text(slack_harness, "channel post-now")
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured
    assert len(slack_harness.posted("C1")) == 6  # the rate-limited header, then 5 that landed


async def test_healthz(slack_harness: SlackHarness) -> None:
    response = await slack_harness.http.get("/healthz")
    assert response.status_code == 200 and response.text == "ok"
    assert (await slack_harness.http.get("/nope")).status_code == 404


async def test_link_button_clicks_are_acknowledged_quietly(slack_harness: SlackHarness) -> None:
    name = await slack_harness.click("paperboy_link_1", "")
    assert slack_harness.fake.responses_to(name) == []
    assert slack_harness.posted() == []


async def test_digest_now_opens_a_dm_and_posts_there(slack_harness: SlackHarness) -> None:
    await slack_harness.command("follow diffusion", user="U8")
    answer = await answer_text(slack_harness, "digest now", user="U8")
    assert "Sent you a digest of 3" in answer
    assert [c.args["users"] for c in slack_harness.fake.calls("conversations.open")] == ["U8"]
    dm = slack_harness.posted("DU8")
    assert len(dm) == 1 and "Your paperboy digest" in dm[0]["text"]
    assert "&lt;!channel&gt;" in all_text(dm[0]["blocks"])  # the hostile title, escaped
    assert "<!channel>" not in all_text(dm[0])


async def test_team_counts_members_and_names_none_even_when_shared(
    slack_harness: SlackHarness,
) -> None:
    fake = slack_harness.fake
    fake.admins.add("U1")
    await slack_harness.command("channel post-now")
    first, second = await paper_post_ts(slack_harness, 0), await paper_post_ts(slack_harness, 1)
    savers = ("U0SAVER1", "U0SAVER2")
    saves = [(first, savers[0]), (first, savers[1]), (first, savers[0]), (second, savers[1])]
    for n, (ts, user) in enumerate(saves):
        await slack_harness.react(ts, user=user, event_id=f"EvTeam{n}")
    await fake.wait_for_calls("chat.postEphemeral", len(saves))

    answer = await slack_harness.command("team", user="U7")
    cards = [b["text"]["text"] for b in answer["blocks"] if b["type"] == "section"]
    assert "Self-Speculative Decoding" in cards[0] and "\nsaved by 2 · " in cards[0]
    assert "Dense Retrieval" in cards[1] and "\nsaved by 1 · " in cards[1]
    assert len(cards) == 2
    assert answer["blocks"][0]["text"]["text"] == "What the team saved in the last 7 days"
    share = [e for b in answer["blocks"] for e in b.get("elements", [])
             if e.get("action_id") == SHARE_ACTION]  # fmt: skip
    assert [button["value"] for button in share] == ["team"]
    assert not any(saver in all_text(answer) for saver in savers)

    name = await slack_harness.click(SHARE_ACTION, "team", user="U7")
    await fake.wait_for_responses(name, timeout=10)
    [shared] = [post for post in slack_harness.posted("C1") if "Shared by" in all_text(post)]
    assert "Shared by <@U7>" in all_text(shared["blocks"])
    assert "saved by 2" in all_text(shared["blocks"]) and "saved by 1" in all_text(shared)
    assert not any(saver in all_text(shared) for saver in savers)


async def test_week_ranks_the_stored_lists_by_upvotes(slack_harness: SlackHarness) -> None:
    answer = await slack_harness.command("week")
    text = all_text(answer["blocks"])
    assert text.index("FastDraft") < text.index("Self-Speculative") < text.index("Retrieval Heads")
    assert ":arrow_up_small: 87" in text and "saved by" not in text  # counts are team's only
    share = [e for b in answer["blocks"] for e in b.get("elements", [])
             if e.get("action_id") == SHARE_ACTION]  # fmt: skip
    assert [button["value"] for button in share] == ["week"]


@pytest.mark.parametrize("refusal", ["not_in_channel", "channel_not_found"])
async def test_a_share_the_bot_cannot_post_says_how_to_let_it_in(
    slack_harness: SlackHarness, refusal: str
) -> None:
    # A private channel the bot is not in answers channel_not_found (the bot cannot see it),
    # a public one not_in_channel: both need the bot invited, and neither is the caller's code.
    slack_harness.fake.faults["chat.postMessage"] = [refusal]
    name = await slack_harness.click(SHARE_ACTION, "today", channel="G1")
    [answer] = await slack_harness.fake.wait_for_responses(name, timeout=10)
    assert "/invite @paperboy" in all_text(answer)
    assert refusal not in all_text(answer)
    assert answer["replace_original"] is False  # the answer and its button stay


async def test_a_share_that_cannot_reach_slack_says_so(slack_harness: SlackHarness) -> None:
    slack_harness.fake.faults["chat.postMessage"] = ["disconnect"] * 5  # past the retries
    name = await slack_harness.click(SHARE_ACTION, "today")
    [answer] = await slack_harness.fake.wait_for_responses(name, timeout=15)
    assert "Couldn't share" in all_text(answer) and "try again" in all_text(answer).lower()
    assert slack_harness.fake.delivered == []


@pytest.mark.parametrize(
    ("refusal", "said"), [("is_archived", "archived"), ("restricted_action", "refused")]
)
async def test_a_refused_share_says_why_in_words(
    slack_harness: SlackHarness, refusal: str, said: str
) -> None:
    slack_harness.fake.faults["chat.postMessage"] = [refusal]
    name = await slack_harness.click(SHARE_ACTION, "today")
    [answer] = await slack_harness.fake.wait_for_responses(name, timeout=10)
    assert said in answer["text"] and refusal not in answer["text"]
