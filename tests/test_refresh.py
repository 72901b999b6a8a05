"""Papers at start and in the worker: live lists when Hugging Face answers, the store or the
demo sample when it does not."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from bot.sources.huggingface import HuggingFaceClient
from bot.sources.refresh import (
    PUBLISHING_INTERVAL,
    RETRY_BASE,
    WEEKEND_INTERVAL,
    ensure_papers,
    keep_papers_fresh,
    refresh_interval,
)
from storage import search_index
from storage.papers import PaperData
from storage.store import Store
from tests.fakes.huggingface import FakeHuggingFace

TODAY = datetime(2026, 5, 5, 9, 0, tzinfo=UTC)  # a Tuesday
SATURDAY = datetime(2026, 5, 9, 12, 0, tzinfo=UTC)


async def test_falls_back_to_the_demo_sample_only_when_the_store_is_empty(
    store: Store, fake_hf: FakeHuggingFace
) -> None:
    fake_hf.faults["daily"] = ["503"] * 10
    async with HuggingFaceClient(fake_hf.base_url, max_retries=0) as source:
        first = await ensure_papers(store, source, TODAY, deadline=5)
        second = await ensure_papers(store, source, TODAY, deadline=5)
    assert "loaded 264 demo papers" in first
    assert "serving the 264 papers already stored" in second


async def test_live_lists_are_fetched_for_the_recent_days(
    store: Store, fake_hf: FakeHuggingFace
) -> None:
    fake_hf.load_day("2026-05-05")
    fake_hf.load_day("2026-05-04")
    async with HuggingFaceClient(fake_hf.base_url, max_retries=0) as source:
        status = await ensure_papers(store, source, TODAY, deadline=5)
    assert status == "Fetched 9 papers from Hugging Face Daily Papers."
    dates = sorted({r.query["date"] for r in fake_hf.requests_to("daily")})
    assert dates == ["2026-05-03", "2026-05-04", "2026-05-05"]


async def test_on_monday_the_refresh_reaches_back_to_fridays_list(
    store: Store, fake_hf: FakeHuggingFace
) -> None:
    # Before 08:00 UTC, and at noon for a post missed at midnight, Monday's posts carry Friday's.
    fake_hf.load_day("2026-05-08", "2026-05-05.json")
    monday_noon = datetime(2026, 5, 11, 12, 0, tzinfo=UTC)
    async with HuggingFaceClient(fake_hf.base_url, max_retries=0) as source:
        status = await ensure_papers(store, source, monday_noon, deadline=5)
    assert status == "Fetched 4 papers from Hugging Face Daily Papers."
    dates = sorted({r.query["date"] for r in fake_hf.requests_to("daily")})
    assert dates == ["2026-05-08", "2026-05-09", "2026-05-10", "2026-05-11"]


async def test_a_refresh_merges_a_full_text_index_left_in_pieces(
    store: Store, fake_hf: FakeHuggingFace
) -> None:
    for n in range(6):  # papers learnt one search at a time: a segment each on SQLite
        async with store.transaction() as repos:
            await repos.papers.upsert([PaperData(f"2401.{n:05d}", f"Learnt paper {n}")], TODAY)
    sqlite = store.engine.dialect.name == "sqlite"
    assert len(await search_index.segment_sizes(store.engine)) == (6 if sqlite else 0)
    fake_hf.load_day("2026-05-05")
    async with HuggingFaceClient(fake_hf.base_url, max_retries=0) as source:
        status = await ensure_papers(store, source, TODAY, deadline=5)
    assert status.startswith("Fetched")
    assert len(await search_index.segment_sizes(store.engine)) == (1 if sqlite else 0)


async def test_the_worker_keeps_refreshing(store: Store, fake_hf: FakeHuggingFace) -> None:
    fake_hf.load_day("2026-05-05")
    async with HuggingFaceClient(fake_hf.base_url, max_retries=0) as source:
        task = asyncio.create_task(keep_papers_fresh(store, source, lambda: TODAY, interval=0.05))
        for _ in range(200):  # bounded wait for a few refresh rounds
            if len(fake_hf.requests_to("daily")) >= 9:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert len(fake_hf.requests_to("daily")) >= 9  # three rounds of three days
    # Read as a search does: a loop cancelled inside a write transaction may hold SQLite's
    # write lock until its connection is closed (as at a worker's exit); reads never wait.
    async with store.reading() as repos:
        assert await repos.papers.count() == 4


# Refresh cadence


def test_refresh_interval_on_publishing_days_and_weekends() -> None:
    monday = datetime(2026, 5, 4, 0, 0, tzinfo=UTC)
    week = [refresh_interval(monday + timedelta(days=n)) for n in range(7)]
    assert week == [PUBLISHING_INTERVAL] * 5 + [WEEKEND_INTERVAL] * 2
    assert PUBLISHING_INTERVAL == 30 * 60 and WEEKEND_INTERVAL == 3 * 60 * 60


def test_refresh_interval_judges_the_day_in_utc() -> None:
    # Saturday 01:30 in Berlin is still Friday in UTC; Sunday 20:00 in New York is Monday in UTC.
    berlin = timezone(timedelta(hours=2))
    new_york = timezone(timedelta(hours=-4))
    assert refresh_interval(datetime(2026, 5, 9, 1, 30, tzinfo=berlin)) == PUBLISHING_INTERVAL
    assert refresh_interval(datetime(2026, 5, 10, 20, 0, tzinfo=new_york)) == PUBLISHING_INTERVAL
    assert refresh_interval(datetime(2026, 5, 8, 21, 0, tzinfo=new_york)) == WEEKEND_INTERVAL
    assert refresh_interval(datetime(2026, 5, 9, 12, 0)) == WEEKEND_INTERVAL  # naive: UTC


def test_refresh_interval_backs_off_after_failures() -> None:
    weekday = [refresh_interval(TODAY, failures) for failures in range(8)]
    assert weekday == [PUBLISHING_INTERVAL, 60, 120, 240, 480, 960, PUBLISHING_INTERVAL,
                       PUBLISHING_INTERVAL]  # fmt: skip
    assert RETRY_BASE == 60
    # At weekends the backoff keeps doubling up to the longer interval.
    assert refresh_interval(SATURDAY, 8) == 60 * 128
    assert refresh_interval(SATURDAY, 9) == WEEKEND_INTERVAL
    assert refresh_interval(TODAY, 10_000) == PUBLISHING_INTERVAL  # no overflow
    custom = [refresh_interval(TODAY, n, weekday=1.0, retry_base=0.25) for n in range(5)]
    assert custom == [1.0, 0.25, 0.5, 1.0, 1.0]


async def listed(store: Store, day: date) -> list[str]:
    async with store.reading() as repos:
        return [p.arxiv_id for p in await repos.papers.listing(day)]


def logged(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bot.sources.refresh" and r.levelno == level]


async def test_the_worker_survives_an_outage_and_catches_up(
    store: Store, fake_hf: FakeHuggingFace, caplog: pytest.LogCaptureFixture
) -> None:
    fake_hf.load_day("2026-05-04")
    fake_hf.etags = True
    async with HuggingFaceClient(fake_hf.base_url, max_retries=0) as source:
        await ensure_papers(store, source, TODAY, deadline=5)  # Monday's five papers are stored
        fake_hf.load_day("2026-05-05")
        fake_hf.faults["daily"] = ["503", "badjson", "429", "500"]  # four failed refreshes

        with caplog.at_level(logging.INFO, logger="bot.sources.refresh"):
            task = asyncio.create_task(
                keep_papers_fresh(
                    store, source, lambda: TODAY, interval=0.05, retry_base=0.01, deadline=5
                )
            )
            try:
                for _ in range(200):  # bounded wait: Tuesday listed and a round of only 304s
                    refreshed = [r.getMessage() for r in logged(caplog, logging.INFO)]
                    if await listed(store, TODAY.date()) and any(
                        "3 pages not modified" in m for m in refreshed
                    ):
                        break
                    await asyncio.sleep(0.05)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    assert sorted(await listed(store, TODAY.date())) == [
        "2605.00101", "2605.00102", "2605.00103", "2605.00104",
    ]  # fmt: skip
    warnings = logged(caplog, logging.WARNING)
    messages = [r.getMessage() for r in warnings]
    assert len(warnings) == 4  # one line per failed refresh, and none once it recovered
    assert all("\n" not in m for m in messages)
    assert all("serving the 5 papers already stored" in m for m in messages)  # no demo sample
    assert "HTTP 503" in messages[0] and "malformed JSON" in messages[1]
    assert "429" in messages[2] and "HTTP 500" in messages[3]
    # Capped exponential backoff: 0.01, 0.02, 0.04, then the 0.05 s interval.
    delays = [r.args[-1] for r in warnings if isinstance(r.args, tuple)]
    assert delays == pytest.approx([0.01, 0.02, 0.04, 0.05])
    infos = [r.getMessage() for r in logged(caplog, logging.INFO)]
    # Sunday's and Monday's validators, from before the outage, still answered 304.
    assert infos[0].startswith("Refreshed Daily Papers: 9 papers over 3 days, 2 pages not")
    assert any("3 pages not modified" in m for m in infos)
    async with store.transaction() as repos:
        assert await repos.papers.count() == 9
