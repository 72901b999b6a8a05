"""Ingesting Daily Papers lists into the store, fetched from the fake Hugging Face API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest

from bot.sources.huggingface import HuggingFaceClient, SourceUnavailable
from bot.sources.ingest import ingest_day, ingest_days
from storage.store import Store
from tests.fakes.huggingface import FakeHuggingFace

MONDAY = date(2026, 5, 4)
TUESDAY = date(2026, 5, 5)
NOW = datetime(2026, 5, 5, 8, 0, tzinfo=UTC)
LATER = datetime(2026, 5, 5, 18, 0, tzinfo=UTC)


@pytest.fixture
async def client(fake_hf: FakeHuggingFace) -> AsyncIterator[HuggingFaceClient]:
    async with HuggingFaceClient(fake_hf.base_url, max_retries=2, backoff_base=0.01) as client:
        yield client


async def listing(store: Store, day: date) -> list[tuple[str, int | None]]:
    async with store.transaction() as repos:
        return [(p.arxiv_id, p.upvotes) for p in await repos.papers.listing(day)]


async def paper_count(store: Store) -> int:
    async with store.transaction() as repos:
        return await repos.papers.count()


async def test_ingest_day_upserts_and_ranks_by_upvotes(
    store: Store, fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.load_day("2026-05-04")

    assert await ingest_day(store, client, MONDAY, NOW) == 5

    assert await listing(store, MONDAY) == [
        ("2605.00001", 87),
        ("2605.00002", 41),
        ("2605.00003", 23),
        ("2605.00005", 9),
        ("2605.00004", None),  # no upvotes ranks as 0
    ]
    async with store.transaction() as repos:
        versioned = await repos.papers.by_arxiv_id("2605.00002")
        assert versioned is not None and versioned.title.startswith("Retrieval Heads Revisited")
        assert await repos.papers.by_arxiv_id("2605.00002v2") is None
        rich = await repos.papers.by_arxiv_id("2605.00001")
        assert rich is not None
        assert rich.ai_keywords[0] == "speculative decoding"
        assert rich.organization == "Latency Lab"


async def test_equal_upvotes_keep_api_order(
    store: Store, fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    items = fake_hf.load_day("2026-05-05")
    assert items[0]["paper"]["upvotes"] == items[1]["paper"]["upvotes"] == 64

    await ingest_day(store, client, TUESDAY, NOW)
    items.reverse()  # the API now lists the two tied papers the other way round
    await ingest_day(store, client, TUESDAY, LATER)

    ranked = [arxiv_id for arxiv_id, _ in await listing(store, TUESDAY)]
    assert ranked[:2] == ["2605.00102", "2605.00101"]
    assert ranked[2:] == ["2605.00103", "2605.00104"]


async def test_reingest_updates_upvotes_and_ranks_without_duplicates(
    store: Store, fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    items = fake_hf.load_day("2026-05-04")
    await ingest_day(store, client, MONDAY, NOW)

    items[3]["paper"]["upvotes"] = 120  # 2605.00004 had none and now leads
    items[0]["paper"]["upvotes"] = 90
    assert await ingest_day(store, client, MONDAY, LATER) == 5

    assert await paper_count(store) == 5
    assert await listing(store, MONDAY) == [
        ("2605.00004", 120),
        ("2605.00001", 90),
        ("2605.00002", 41),
        ("2605.00003", 23),
        ("2605.00005", 9),
    ]


async def test_empty_day_keeps_stored_listing(
    store: Store, fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.load_day("2026-05-04")
    await ingest_day(store, client, MONDAY, NOW)
    before = await listing(store, MONDAY)

    fake_hf.days["2026-05-04"] = []
    assert await ingest_day(store, client, MONDAY, LATER) == 0

    assert len(before) == 5
    assert await listing(store, MONDAY) == before


async def test_ingest_days_covers_an_inclusive_range_in_any_order(
    store: Store, fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.load_day("2026-05-04")
    fake_hf.load_day("2026-05-05")

    counts = await ingest_days(store, client, TUESDAY, date(2026, 5, 2), NOW)

    assert counts == {date(2026, 5, 2): 0, date(2026, 5, 3): 0, MONDAY: 5, TUESDAY: 4}
    assert list(counts) == sorted(counts)
    assert await paper_count(store) == 9
    assert await listing(store, date(2026, 5, 3)) == []
    assert [a for a, _ in await listing(store, TUESDAY)][-1] == "2605.00104"


async def test_source_unavailable_propagates_and_keeps_listing(
    store: Store, fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.load_day("2026-05-04")
    await ingest_day(store, client, MONDAY, NOW)
    before = await listing(store, MONDAY)
    fake_hf.faults["daily"] = ["503"] * 3

    with pytest.raises(SourceUnavailable):
        await ingest_day(store, client, MONDAY, LATER)

    assert await listing(store, MONDAY) == before
    assert len(fake_hf.requests_to("daily")) == 1 + 3


async def test_fault_then_success_still_ingests(
    store: Store, fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.load_day("2026-05-05")
    fake_hf.retry_after = "0"
    fake_hf.faults["daily"] = ["429", "badjson"]

    assert await ingest_day(store, client, TUESDAY, NOW) == 4
    assert len(await listing(store, TUESDAY)) == 4


async def test_text_no_database_stores_is_replaced_and_the_day_is_stored(
    store: Store,
    fake_hf: FakeHuggingFace,
    client: HuggingFaceClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A lone surrogate (a broken `\\ud800` escape in the JSON) or a NUL in one paper's text
    cost neither that paper nor the day's others their storing."""
    items = fake_hf.load_day("2026-05-04")
    items[1]["paper"]["title"] += " \ud800broken"
    items[2]["paper"]["summary"] = "Before\x00after."
    items[2]["paper"]["authors"] = [{"name": "Ada \udfff Lovelace"}]

    assert await ingest_day(store, client, MONDAY, NOW) == 5

    async with store.transaction() as repos:
        titled = await repos.papers.by_arxiv_id("2605.00002")
        assert titled is not None and titled.title.endswith(" \ufffdbroken")
        summed = await repos.papers.by_arxiv_id("2605.00003")
        assert summed is not None and summed.abstract == "Before\ufffdafter."
        assert summed.authors == ["Ada \ufffd Lovelace"]
    replaced = [r.getMessage() for r in caplog.records if "U+FFFD" in r.getMessage()]
    assert len(replaced) == 2 and "2605.00002" in replaced[0] and "2605.00003" in replaced[1]
