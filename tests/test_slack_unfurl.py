"""Slack unfurls paper links: `link_shared` events over signed HTTP into the real bolt app,
answered with `chat.unfurl` on the fake Slack Web API; unknown papers fetched from the fake
Hugging Face."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.slack.app import create_slack_bot
from bot.sources.lookup import PaperLookup
from storage.store import Store
from tests.core_fixtures import NOW, stocked
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import FakeSlack
from tests.slack_fixtures import SlackHarness, all_text, serve, slack_settings

STORED = "https://arxiv.org/abs/2605.00101v2"  # Self-Speculative Decoding, stored
HOSTILE = "https://huggingface.co/papers/2605.00003"  # its title pings <!channel> @everyone
FETCHED = "https://alphaxiv.org/abs/2405.90001"  # only on Hugging Face (a day not ingested)
UNKNOWN = "https://arxiv.org/abs/2501.99999"  # nobody knows it
NOT_A_PAPER = "https://huggingface.co/papers/trending"


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


def link_shared(*urls: str, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "link_shared",
        "channel": "C1",
        "user": "U1",
        "message_ts": "1700000000.000100",
        "links": [{"domain": url.split("/")[2], "url": url} for url in urls],
        "event_ts": "1700000000.000200",
    }
    return event | fields


async def share_links(harness: SlackHarness, event: dict[str, Any], event_id: str) -> None:
    """Post the event; returns once the app has done all it does about it."""
    response = await harness.event(event, event_id=event_id)
    assert response.status_code == 200, response.text
    await harness.slack.background.close()  # waits for the work started in the background


def unfurls(harness: SlackHarness) -> list[dict[str, Any]]:
    return [call.args for call in harness.fake.calls("chat.unfurl")]


async def test_a_link_to_a_stored_paper_is_unfurled_as_its_card(harness: SlackHarness) -> None:
    await share_links(harness, link_shared(STORED), "EvU1")
    [call] = unfurls(harness)
    assert call["channel"] == "C1" and call["ts"] == "1700000000.000100"
    assert list(call["unfurls"]) == [STORED]
    text = all_text(call["unfurls"][STORED]["blocks"])
    assert "<https://huggingface.co/papers/2605.00101|Self-Speculative Decoding" in text
    assert "Anika Bose" in text and "https://arxiv.org/pdf/2605.00101" in text


async def test_the_unfurl_id_and_source_address_the_answer_when_given(
    harness: SlackHarness,
) -> None:
    event = link_shared(STORED, unfurl_id="Uxyz", source="composer", channel="COMPOSER")
    await share_links(harness, event, "EvU2")
    [call] = unfurls(harness)
    assert call["unfurl_id"] == "Uxyz" and call["source"] == "composer"
    assert "channel" not in call and "ts" not in call


async def test_a_paper_not_stored_is_fetched_stored_and_unfurled(harness: SlackHarness) -> None:
    event = link_shared(FETCHED, NOT_A_PAPER, UNKNOWN, STORED)
    await share_links(harness, event, "EvU3")
    [call] = unfurls(harness)
    assert list(call["unfurls"]) == [FETCHED, STORED]  # the others are left alone
    assert "Speculative Retrieval" in all_text(call["unfurls"][FETCHED]["blocks"])
    async with harness.store.reading() as repos:
        assert list(await repos.papers.by_arxiv_ids(["2405.90001"])) == ["2405.90001"]


async def test_nothing_to_unfurl_posts_nothing(harness: SlackHarness) -> None:
    await share_links(harness, link_shared(NOT_A_PAPER, UNKNOWN), "EvU4")
    assert unfurls(harness) == []


async def test_a_hostile_title_pings_nobody(harness: SlackHarness) -> None:
    await share_links(harness, link_shared(HOSTILE), "EvU5")
    [call] = unfurls(harness)
    text = all_text(call["unfurls"][HOSTILE]["blocks"])
    assert "Secretly" in text and "&lt;!channel&gt;" in text
    assert "<!channel>" not in text and "<!everyone>" not in text and "<!here>" not in text


@pytest.mark.parametrize(
    "event",
    [
        link_shared(),
        {k: v for k, v in link_shared(STORED).items() if k != "links"},
        link_shared(STORED) | {"links": "https://arxiv.org/abs/2605.00101"},
        link_shared(STORED) | {"links": [{"domain": "arxiv.org"}, "x", None]},
        {k: v for k, v in link_shared(STORED).items() if k not in ("channel", "message_ts")},
    ],
    ids=["no-links", "links-missing", "links-not-a-list", "links-without-urls", "no-message"],
)
async def test_a_malformed_event_is_acknowledged_and_nothing_posted(
    harness: SlackHarness, event: dict[str, Any]
) -> None:
    await share_links(harness, event, "EvU6")
    assert unfurls(harness) == []


async def test_a_refused_unfurl_is_one_log_line(
    harness: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.fake.replies["chat.unfurl"] = {"ok": False, "error": "cannot_unfurl_url"}
    with caplog.at_level(logging.WARNING):
        await share_links(harness, link_shared(STORED), "EvU7")
    assert len(unfurls(harness)) == 1
    [record] = [r for r in caplog.records if "chat.unfurl" in r.getMessage()]
    assert "cannot_unfurl_url" in record.getMessage() and record.exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
