"""Papers at start and in the worker: live lists when Hugging Face answers, the store or the
demo sample when it does not."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from bot.bootstrap import ensure_papers, keep_papers_fresh
from bot.sources.huggingface import HuggingFaceClient
from storage.store import Store
from tests.fakes.huggingface import FakeHuggingFace

TODAY = datetime(2026, 5, 5, 9, 0, tzinfo=UTC)


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
    async with store.transaction() as repos:
        assert await repos.papers.count() == 4
