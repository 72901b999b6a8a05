"""Saving papers by link: `/papers save`, the core path for any message's links, unknown papers
fetched from Hugging Face and arXiv, and pending saves completed (or given up) later. Real
store (SQLite and PostgreSQL), the fake Hugging Face and the fake arXiv over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot import saving
from bot.app import Paperboy
from bot.config import BotConfig
from bot.events import MessageRef, UserRef
from bot.links import MAX_IDS
from bot.messages import Message, Visibility
from bot.ports import DeliveryError
from bot.saving import RETRY_AFTER, LateSaves, RetryOutcome, complete_pending_saves
from bot.sources.arxiv import ArxivClient, RequestSpacing
from bot.sources.huggingface import HuggingFaceClient
from bot.sources.lookup import PaperLookup
from bot.sources.refresh import keep_papers_fresh
from storage.models import Base, PendingSave, SavedLater
from storage.papers import PaperData
from tests.core_fixtures import Harness, RecordingPlatform
from tests.fakes.arxiv import FakeArxiv
from tests.fakes.huggingface import load_fixture


@dataclass
class Links:
    harness: Harness
    arxiv: FakeArxiv
    lookup: PaperLookup

    async def say(self, text: str, *, user: str = "alice") -> Message:
        return await self.harness.say(text, user=user)

    def later(self, delta: timedelta) -> None:
        self.harness.clock[0] += delta

    async def retry(self) -> RetryOutcome:
        return await complete_pending_saves(self.harness.store, self.lookup, self.harness.clock[0])

    async def pending(self) -> list[tuple[str, str, int, bool]]:
        async with self.harness.store.reading() as repos:
            rows = await repos.session.scalars(
                select(PendingSave).order_by(PendingSave.user, PendingSave.arxiv_id)
            )
            return [(r.user, r.arxiv_id, r.attempts, r.given_up_at is not None) for r in rows]

    async def saved_ids(self, user: str = "alice") -> list[str]:
        return [card.paper_id for card in (await self.say("saved", user=user)).cards]

    def hf_paper_requests(self) -> int:
        return len(self.harness.hf.requests_to("paper"))


@pytest.fixture
async def links(harness: Harness, fake_arxiv: FakeArxiv) -> AsyncIterator[Links]:
    source = harness.bot.source
    assert isinstance(source, HuggingFaceClient)
    # No spacing here: the client's spacing has tests of its own (test_arxiv_client.py).
    async with ArxivClient(
        fake_arxiv.base_url, timeout=1.0, max_retries=1, spacing=RequestSpacing(0)
    ) as arxiv:
        lookup = PaperLookup(source, arxiv)
        harness.bot = Paperboy(
            harness.store, harness.platform, config=BotConfig(search_budget=1.0), source=source,
            lookup=lookup, clock=lambda: harness.clock[0],
        )  # fmt: skip
        yield Links(harness, fake_arxiv, lookup)


async def table_counts(harness: Harness) -> dict[str, int]:
    async with harness.store.transaction() as repos:
        return {
            name: int(await repos.session.scalar(select(func.count()).select_from(table)) or 0)
            for name, table in Base.metadata.tables.items()
        }


async def test_stored_papers_are_saved_by_link_and_listed_privately(links: Links) -> None:
    answer = await links.say(
        "save https://huggingface.co/papers/2605.00101 <https://arxiv.org/abs/2605.00001v2|Fast>"
    )
    assert answer.text == "Saved 2 papers"
    assert [card.paper_id for card in answer.cards] == ["2605.00101", "2605.00001"]
    assert answer.visibility is Visibility.CALLER and not answer.is_usage_hint
    assert set(await links.saved_ids()) == {"2605.00101", "2605.00001"}
    # Stored papers need nobody outside.
    assert links.hf_paper_requests() == 0 and links.arxiv.requests == []

    again = await links.say("save arXiv:2605.00001 2605.00002")
    assert again.text == "Saved 1 paper"
    assert [card.paper_id for card in again.cards] == ["2605.00002", "2605.00001"]
    assert any("Already saved before: 2605.00001" in line for line in again.lines)
    assert (await links.say("save 2605.00001")).text.startswith("Already in your saved papers")


async def test_unknown_papers_come_from_hugging_face_then_arxiv(links: Links) -> None:
    links.harness.hf.days["2024-05-27"] = load_fixture("legacy-2024-05-27.json")
    links.arxiv.add(
        "2501.12345", "Tokenizer-Free Models Read Bytes", summary="We read bytes.\n  Directly.",
        authors=("Ada Lovelace",), published="2025-01-21T18:59:59Z",
    )  # fmt: skip
    answer = await links.say(
        "save https://alphaxiv.org/abs/2405.90002v2 <https://arxiv.org/pdf/2501.12345v1.pdf|pdf>"
    )
    assert answer.text == "Saved 2 papers"
    hf_card, arxiv_card = answer.cards
    assert hf_card.paper_id == "2405.90002" and hf_card.title.startswith("Denoising Diffusion")
    assert arxiv_card.paper_id == "2501.12345"
    assert arxiv_card.title == "Tokenizer-Free Models Read Bytes"
    assert arxiv_card.authors == ("Ada Lovelace",) and arxiv_card.upvotes is None
    assert arxiv_card.summary == "We read bytes. Directly."
    # Hugging Face was asked for both, arXiv only for what Hugging Face lacked, once.
    assert links.hf_paper_requests() == 2
    assert links.arxiv.asked() == [["2501.12345"]]
    # Both are stored papers now: searchable, and saved without asking anyone again.
    topic = await links.say("topic tokenizer free bytes")
    assert "2501.12345" in [card.paper_id for card in topic.cards]
    assert (await links.say("save 2501.12345", user="bob")).text == "Saved 1 paper"
    assert links.arxiv.asked() == [["2501.12345"]]


async def test_a_paper_nobody_knows_is_kept_pending_then_saved_when_it_appears(
    links: Links,
) -> None:
    answer = await links.say("save https://arxiv.org/abs/2501.99999 2605.00001")
    assert answer.text == "Saved 1 paper"
    assert any("Not found yet on Hugging Face or arXiv: 2501.99999" in ln for ln in answer.lines)
    assert await links.pending() == [("alice", "2501.99999", 1, False)]
    saved = await links.say("saved")
    assert [card.paper_id for card in saved.cards] == ["2605.00001"]
    assert any(line.startswith("Pending (1)") and "2501.99999" in line for line in saved.lines)

    # Not due yet: nobody is asked again within the hour.
    assert await links.retry() == RetryOutcome()
    assert links.arxiv.asked() == [["2501.99999"]]

    links.arxiv.add("2501.99999", "Announced At Last", summary="Late.")
    links.later(RETRY_AFTER + timedelta(minutes=1))
    assert await links.retry() == RetryOutcome(saved=1)
    assert await links.pending() == []
    assert await links.saved_ids() == ["2501.99999", "2605.00001"]
    assert (await links.say("saved")).lines == ()

    # Alice is told by DM, once.
    platform, late = links.harness.platform, links.harness.bot.late_saves
    assert await late.tell("test") == 1
    [(to, told, _)] = platform.dms
    assert to.user == "alice" and told.text == "Saved now: 1 paper you asked for earlier"
    assert [card.title for card in told.cards] == ["Announced At Last"]
    assert await late.tell("test") == 0 and len(platform.dms) == 1


@dataclass
class ClosedDMs(RecordingPlatform):
    """DMs fail `failures` times: Slack or Discord could not be reached."""

    failures: int = 0

    async def send_dm(self, user: UserRef, message: Message) -> MessageRef:
        if self.failures:
            self.failures -= 1
            raise DeliveryError("network_error", permanent=False, unreachable=True)
        return await super().send_dm(user, message)


async def test_a_late_save_whose_dm_fails_is_told_later_and_at_most_so_often(
    links: Links,
) -> None:
    platform = ClosedDMs(failures=1)
    late = LateSaves(links.harness.store, platform, lambda: links.harness.clock[0])
    await links.say("save 2501.99999 2501.99998")
    links.arxiv.add("2501.99999", "Announced At Last", summary="Late.")
    links.arxiv.add("2501.99998", "Also Late", summary="Late too.")
    links.later(RETRY_AFTER + timedelta(minutes=1))
    assert await links.retry() == RetryOutcome(saved=2)
    assert await late.tell("test") == 0  # the DM failed: kept for later
    assert await late.tell("test") == 0  # not due yet
    links.later(saving.TELL_AGAIN)
    assert await late.tell("test") == 1
    [(_, told, _)] = platform.dms
    assert told.text == "Saved now: 2 papers you asked for earlier"  # one DM for both

    platform.failures = saving.TELL_TRIES  # another, never told: given up after TELL_TRIES
    await links.say("save 2501.99997")
    links.arxiv.add("2501.99997", "Third", summary="Late as well.")
    links.later(RETRY_AFTER + timedelta(minutes=1))
    assert await links.retry() == RetryOutcome(saved=1)
    for _ in range(saving.TELL_TRIES):
        assert await late.tell("test") == 0
        links.later(saving.TELL_AGAIN)
    assert platform.failures == 0 and len(platform.dms) == 1
    async with links.harness.store.reading() as repos:
        assert await repos.session.scalar(select(func.count()).select_from(SavedLater)) == 0


async def test_only_papers_only_links_and_nothing_at_all(links: Links) -> None:
    pending_only = await links.say("save 2501.99999")
    assert pending_only.text == "Nothing saved yet: 1 paper kept as pending"
    assert pending_only.cards == ()
    saved = await links.say("saved")
    assert saved.text == "You have no saved papers yet." and saved.cards == ()
    assert "2501.99999" in saved.lines[0]
    demo = await links.say("save demo-001")  # a demo id names no stored paper here
    assert demo.text == "Nothing saved" and demo.lines == ("No such paper here: demo-001.",)
    assert await links.pending() == [("alice", "2501.99999", 1, False)]


async def test_pending_saves_are_given_up_after_bounded_attempts(
    links: Links, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(saving, "MAX_ATTEMPTS", 3)
    await links.say("save 2501.99999")
    for _ in range(5):
        links.later(RETRY_AFTER)
        await links.retry()
    # The save itself was the first attempt; two retries made three; then nothing is asked.
    assert links.arxiv.asked() == [["2501.99999"]] * 3
    assert await links.pending() == [("alice", "2501.99999", 3, True)]
    saved = await links.say("saved")
    assert any(line.startswith("Not found after trying") for line in saved.lines)

    # Asking again starts anew; unsave drops it.
    await links.say("save arXiv:2501.99999")
    assert await links.pending() == [("alice", "2501.99999", 1, False)]
    dropped = await links.say("unsave 2501.99999")
    assert dropped.text == "Dropped 2501.99999 from your pending saves."
    assert await links.pending() == []


async def test_unreachable_sources_keep_the_save_pending_for_a_bounded_time(
    links: Links,
) -> None:
    links.harness.hf.faults["paper"] = ["503"]
    links.arxiv.faults = ["503", "503"]
    answer = await links.say("save 2501.12345")
    assert answer.text == "Nothing saved yet: 1 paper kept as pending"
    assert any("could not be reached for 2501.12345" in line for line in answer.lines)
    assert await links.pending() == [("alice", "2501.12345", 0, False)]  # no answer: no attempt

    # Still down a week later: given up however few answers came.
    links.harness.hf.faults["paper"] = ["503"] * 3
    links.arxiv.faults = ["503"] * 10
    links.later(saving.MAX_AGE + timedelta(minutes=1))
    assert await links.retry() == RetryOutcome(waiting=1, given_up=1)
    assert await links.pending() == [("alice", "2501.12345", 0, True)]


async def test_a_stored_paper_completes_pending_saves_of_every_user_without_fetching(
    links: Links,
) -> None:
    await links.say("save 2501.77777", user="alice")
    await links.say("save 2501.77777", user="bob")
    asked = len(links.arxiv.requests)
    assert [row[:2] for row in await links.pending()] == [
        ("alice", "2501.77777"), ("bob", "2501.77777")
    ]  # fmt: skip
    assert await links.saved_ids("carol") == []
    # A Daily Papers list (or a search) brings the paper into the store.
    async with links.harness.store.transaction() as repos:
        await repos.papers.upsert([PaperData("2501.77777", "Listed Later")], links.harness.clock[0])
    links.later(RETRY_AFTER)
    assert await links.retry() == RetryOutcome(saved=2)
    assert len(links.arxiv.requests) == asked  # nothing fetched
    assert await links.saved_ids("alice") == ["2501.77777"]
    assert await links.saved_ids("bob") == ["2501.77777"]
    assert await links.saved_ids("carol") == []


async def test_the_refresh_loop_completes_pending_saves(links: Links) -> None:
    await links.say("save 2501.55555")
    links.arxiv.add("2501.55555", "Found On Retry", summary="")
    store, hf = links.harness.store, links.harness.hf
    hf.load_day("2026-05-05")
    later = links.harness.clock[0] + RETRY_AFTER
    source = links.harness.bot.source
    assert isinstance(source, HuggingFaceClient)
    task = asyncio.create_task(
        keep_papers_fresh(store, source, lambda: later, interval=0.05, lookup=links.lookup)
    )
    try:
        for _ in range(200):
            if not await links.pending():
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert await links.pending() == []
    assert await links.saved_ids() == ["2501.55555"]


@pytest.mark.parametrize(
    "typed",
    [
        "save",
        "save 2501.1234",
        "save 2501.12345 2599.00001",
        "save https://arxiv.org/list/cs.LG/recent",
        "save https://arxiv.org.evil.com/abs/2501.12345",
        "save 2605.00001 https://example.com/paper",
        "save attention is all you need",
        "save <!channel> 2605.00001",
        "save 2605.00001 " + "2605.00002 " * 400,
    ],
)
async def test_bad_input_gets_a_clear_answer_and_changes_nothing(links: Links, typed: str) -> None:
    before = await table_counts(links.harness)
    answer = await links.say(typed)
    assert answer.is_usage_hint and answer.cards == ()
    assert "/papers save" in answer.text or "characters at most" in answer.text
    assert "<!channel>" not in answer.text and "evil" not in answer.text
    assert await table_counts(links.harness) == before
    assert links.hf_paper_requests() == 0 and links.arxiv.requests == []


async def test_more_links_than_the_cap_saves_the_first_and_says_so(links: Links) -> None:
    ids = [f"2501.{n:05d}" for n in range(1, MAX_IDS + 6)]
    for arxiv_id in ids:
        links.arxiv.add(arxiv_id, f"Paper {arxiv_id}", summary="")
    answer = await links.say("save " + " ".join(f"https://arxiv.org/abs/{i}" for i in ids))
    assert answer.text == f"Saved {MAX_IDS} papers"
    assert [card.paper_id for card in answer.cards] == ids[:MAX_IDS]
    assert any(f"more than {MAX_IDS} papers" in line for line in answer.lines)
    assert links.arxiv.asked() == [ids[:MAX_IDS]]  # one request for all of them
    assert links.hf_paper_requests() == MAX_IDS


async def test_paper_text_stays_in_cards_where_renderers_escape_it(links: Links) -> None:
    links.arxiv.add("2501.66666", "<!channel> `code` @everyone", summary="<@U123> hi")
    answer = await links.say("save 2501.66666")
    assert answer.cards[0].title == "<!channel> `code` @everyone"
    shown = " ".join((answer.text, *answer.lines))
    assert "<!channel>" not in shown and "@everyone" not in shown


async def test_help_shows_save(links: Links) -> None:
    body = "\n".join((await links.say("help")).lines)
    assert "/papers save <link or arXiv id>" in body


async def test_a_member_keeps_at_most_max_pending_saves(
    links: Links, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(saving, "MAX_PENDING", 2)
    answer = await links.say("save 2501.99991 2501.99992 2501.99993")
    assert answer.text == "Nothing saved yet: 2 papers kept as pending"
    assert any(line.startswith("Not kept: 2501.99993. You already have 2 papers") for line
               in answer.lines)  # fmt: skip
    again = await links.say("save 2501.99992")  # one already kept is asked for again
    assert again.text == "Nothing saved yet: 1 paper kept as pending"
    assert (await links.say("save 2501.99994")).text == "Nothing saved"
    assert (await links.say("save 2501.99994", user="bob")).text.startswith("Nothing saved yet")
    assert [(user, arxiv_id) for user, arxiv_id, _, _ in await links.pending()] == [
        ("alice", "2501.99991"), ("alice", "2501.99992"), ("bob", "2501.99994")
    ]  # fmt: skip
