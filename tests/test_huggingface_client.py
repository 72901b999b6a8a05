"""HuggingFaceClient and item parsing, against the fake Hugging Face API over real HTTP."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.sources.hf_items import HFParseError, parse_item, parse_items, strip_version
from bot.sources.huggingface import HuggingFaceClient, SourceUnavailable
from tests.fakes.huggingface import FakeHuggingFace, load_fixture

SHARED_DATA = Path(
    os.environ.get("PAPERBOY_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
MONDAY = date(2026, 5, 4)


def make_items(count: int, start: int = 1) -> list[dict[str, Any]]:
    """`count` current-shape daily items with distinct ids and upvotes."""
    return [
        {
            "paper": {
                "id": f"2607.{n:05d}",
                "authors": [{"_id": f"a{n}", "name": f"Author {n}", "hidden": False}],
                "publishedAt": "2026-07-01T00:00:00.000Z",
                "title": f"Generated paper {n}",
                "summary": f"Abstract {n}.",
                "upvotes": n % 17,
            },
            "publishedAt": "2026-07-01T20:00:00.000Z",
            "title": f"Generated paper {n}",
            "thumbnail": f"https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/2607.{n:05d}.png",
            "numComments": 0,
        }
        for n in range(start, start + count)
    ]


@pytest.fixture
async def client(fake_hf: FakeHuggingFace) -> AsyncIterator[HuggingFaceClient]:
    async with HuggingFaceClient(
        fake_hf.base_url, timeout=2.0, max_retries=3, backoff_base=0.01
    ) as client:
        yield client


@pytest.fixture
async def impatient(fake_hf: FakeHuggingFace) -> AsyncIterator[HuggingFaceClient]:
    """A client with a short timeout, for the "timeout" fault."""
    async with HuggingFaceClient(
        fake_hf.base_url, timeout=0.2, max_retries=2, backoff_base=0.01
    ) as client:
        yield client


# Daily lists


async def test_daily_parses_current_schema(
    fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.load_day("2026-05-04")

    papers = await client.daily(MONDAY)

    assert [p.arxiv_id for p in papers] == [
        "2605.00001", "2605.00002", "2605.00003", "2605.00004", "2605.00005",
    ]  # fmt: skip
    rich, versioned, markup, no_upvotes, _ = papers
    assert rich.upvotes == 87
    assert rich.ai_summary is not None and rich.ai_summary.startswith("FastDraft speeds up")
    assert "speculative decoding" in rich.ai_keywords
    assert rich.github_repo == "https://github.com/latencylab/fastdraft"
    assert rich.github_stars == 412
    assert rich.project_page == "https://fastdraft.example.org/"
    assert rich.organization == "Latency Lab"
    assert rich.thumbnail == (
        "https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/2605.00001.png"
    )
    assert rich.authors == ("Mira Okafor", "Jonas Lindqvist", "Priya Raman")
    assert rich.published_at == datetime(2026, 5, 1, tzinfo=UTC)
    assert "\n" not in rich.abstract and rich.abstract.startswith("Autoregressive decoding")
    # Missing optional fields stay empty; the empty author name is dropped, the hidden one kept.
    assert versioned.ai_summary is None and versioned.ai_keywords == ()
    assert versioned.github_repo is None and versioned.organization is None
    assert versioned.authors == ("Hiroshi Tanaka", "Elena Petrova")
    # Untrusted markup is kept verbatim here; escaping is the renderers' job.
    assert markup.title.startswith("<!channel> *Bold* Claims @everyone")
    assert no_upvotes.upvotes is None

    [request] = fake_hf.requests_to("daily")
    assert request.query == {"date": "2026-05-04", "limit": "100", "p": "0"}
    assert request.user_agent is not None and request.user_agent.startswith("paperboy/")


async def test_daily_pages_through_more_than_100_items(
    fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    items = make_items(250)
    fake_hf.days["2026-05-04"] = items

    papers = await client.daily(MONDAY)

    assert [p.arxiv_id for p in papers] == [i["paper"]["id"] for i in items]
    assert [(r.query["p"], r.query["limit"]) for r in fake_hf.requests_to("daily")] == [
        ("0", "100"), ("1", "100"), ("2", "100"),
    ]  # fmt: skip


async def test_daily_full_last_page_needs_an_empty_page_to_stop(
    fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.days["2026-05-04"] = make_items(200)

    papers = await client.daily(MONDAY)

    assert len(papers) == 200
    assert [r.query["p"] for r in fake_hf.requests_to("daily")] == ["0", "1", "2"]


async def test_daily_weekend_is_empty(fake_hf: FakeHuggingFace, client: HuggingFaceClient) -> None:
    fake_hf.load_day("2026-05-04")

    assert await client.daily(date(2026, 5, 3)) == []
    assert len(fake_hf.requests_to("daily")) == 1


async def test_daily_stops_when_server_ignores_paging(
    fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.days["2026-05-04"] = make_items(100)
    fake_hf.ignore_paging = True

    papers = await client.daily(MONDAY)

    assert len(papers) == 100
    assert len(fake_hf.requests_to("daily")) == 2


async def test_daily_page_count_is_bounded(
    fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.days["2026-05-04"] = make_items(2150)

    papers = await client.daily(MONDAY)

    assert len(fake_hf.requests_to("daily")) == 20
    assert len(papers) == 2000


async def test_daily_deduplicates_versions_and_skips_broken_items(
    fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    first, second = make_items(2)
    again = json.loads(json.dumps(first))
    again["paper"]["id"] += "v2"
    fake_hf.days["2026-05-04"] = [first, "junk", {"paper": {"title": "no id"}}, again, second]

    papers = await client.daily(MONDAY)

    assert [p.arxiv_id for p in papers] == ["2607.00001", "2607.00002"]


async def test_legacy_schema(fake_hf: FakeHuggingFace, client: HuggingFaceClient) -> None:
    fake_hf.load_day("2024-05-27", "legacy-2024-05-27.json")

    papers = await client.daily(date(2024, 5, 27))

    assert [p.arxiv_id for p in papers] == ["2405.90001", "2405.90002"]
    first = papers[0]
    assert first.title == (
        "Speculative Retrieval: Prefetching Documents for Low-Latency Question Answering"
    )
    assert first.upvotes == 32
    assert first.authors == ("Ines Duarte", "Pavel Novak")
    assert first.thumbnail is None and first.ai_summary is None and first.ai_keywords == ()
    assert first.published_at == datetime(2024, 5, 24, 17, 34, 15, tzinfo=UTC)
    assert "\n" not in first.abstract
    assert papers[1].title == "Denoising Diffusion Policies for Robot Manipulation"


# Conditional requests (ETag / Last-Modified)


def conditional_headers(fake_hf: FakeHuggingFace) -> list[tuple[str | None, str | None]]:
    """(If-None-Match, If-Modified-Since) of each daily request, in order."""
    return [
        (r.header("If-None-Match"), r.header("If-Modified-Since"))
        for r in fake_hf.requests_to("daily")
    ]


async def test_unchanged_day_is_revalidated_with_if_none_match(
    fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.load_day("2026-05-04")
    fake_hf.etags = True

    first = await client.daily(MONDAY)
    second = await client.daily(MONDAY)

    assert second == first and len(first) == 5
    (sent_first, _), (sent_second, _) = conditional_headers(fake_hf)
    assert sent_first is None
    assert sent_second is not None and sent_second.startswith('"')
    assert fake_hf.not_modified_served == 1
    assert client.not_modified == 1


async def test_changed_day_is_fetched_fresh(
    fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    items = fake_hf.load_day("2026-05-04")
    fake_hf.etags = True
    first = await client.daily(MONDAY)

    changed = json.loads(json.dumps(items))
    changed[0]["paper"]["upvotes"] = 99  # the list moves during the day
    fake_hf.days["2026-05-04"] = [*changed, *make_items(1)]
    second = await client.daily(MONDAY)
    third = await client.daily(MONDAY)

    assert first[0].upvotes == 87
    assert second[0].upvotes == 99 and second[-1].arxiv_id == "2607.00001"
    assert third == second
    tags = [inm for inm, _ in conditional_headers(fake_hf)]
    assert tags[0] is None
    assert tags[1] is not None and tags[2] is not None
    assert tags[1] != tags[2]  # the third request validated the changed list's new tag
    assert fake_hf.not_modified_served == 1
    assert client.not_modified == 1


async def test_without_validators_no_conditional_headers_are_sent(
    fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.load_day("2026-05-04")

    first = await client.daily(MONDAY)
    fake_hf.days["2026-05-04"] = fake_hf.days["2026-05-04"][:2]  # today's list can change
    second = await client.daily(MONDAY)

    assert len(first) == 5 and len(second) == 2
    assert conditional_headers(fake_hf) == [(None, None), (None, None)]
    assert client.not_modified == 0


async def test_last_modified_is_revalidated_with_if_modified_since(
    fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.load_day("2026-05-04")
    fake_hf.last_modified = "Mon, 04 May 2026 18:00:00 GMT"

    first = await client.daily(MONDAY)
    second = await client.daily(MONDAY)

    assert second == first and len(first) == 5
    assert conditional_headers(fake_hf) == [
        (None, None), (None, "Mon, 04 May 2026 18:00:00 GMT"),
    ]  # fmt: skip
    assert client.not_modified == 1


async def test_every_page_is_revalidated(
    fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.days["2026-05-04"] = make_items(250)
    fake_hf.etags = True

    first = await client.daily(MONDAY)
    second = await client.daily(MONDAY)

    assert len(first) == 250 and second == first
    pages = [
        (r.query["p"], r.header("If-None-Match") is not None) for r in fake_hf.requests_to("daily")
    ]
    assert pages == [
        ("0", False), ("1", False), ("2", False), ("0", True), ("1", True), ("2", True),
    ]  # fmt: skip
    assert client.not_modified == 3


async def test_revalidation_retries_faults_then_uses_304(
    fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.load_day("2026-05-04")
    fake_hf.etags = True
    fake_hf.retry_after = "0"
    first = await client.daily(MONDAY)
    fake_hf.faults["daily"] = ["503", "429", "badjson"]

    second = await client.daily(MONDAY)

    assert second == first
    # Every retry repeated the conditional request; the last one got the 304.
    assert [inm is not None for inm, _ in conditional_headers(fake_hf)] == [
        False, True, True, True, True,
    ]  # fmt: skip
    assert fake_hf.not_modified_served == 1 and client.not_modified == 1


async def test_validators_are_remembered_for_a_bounded_number_of_pages(
    fake_hf: FakeHuggingFace,
) -> None:
    fake_hf.load_day("2026-05-04")
    fake_hf.load_day("2026-05-05")
    fake_hf.etags = True
    tuesday = date(2026, 5, 5)

    async with HuggingFaceClient(fake_hf.base_url, backoff_base=0.01, cache_size=1) as client:
        await client.daily(MONDAY)
        await client.daily(tuesday)  # evicts Monday's validators
        await client.daily(MONDAY)  # so this one is unconditional
        await client.daily(MONDAY)

    sent = [(r.query["date"], r.header("If-None-Match") is not None)
            for r in fake_hf.requests_to("daily")]  # fmt: skip
    assert sent == [
        ("2026-05-04", False), ("2026-05-05", False), ("2026-05-04", False),
        ("2026-05-04", True),
    ]  # fmt: skip
    assert client.not_modified == 1


async def test_search_and_paper_are_never_conditional(
    fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.load_day("2026-05-04")
    fake_hf.etags = True
    await client.daily(MONDAY)

    await client.search("latency")
    await client.search("latency")
    await client.paper("2605.00001")

    others = fake_hf.requests_to("search") + fake_hf.requests_to("paper")
    assert len(others) == 3
    assert all(r.header("If-None-Match") is None for r in others)


# Search and single papers


async def test_search(fake_hf: FakeHuggingFace, client: HuggingFaceClient) -> None:
    fake_hf.load_day("2026-05-04")
    fake_hf.load_day("2026-05-05")

    found = await client.search("SPECULATIVE decoding", limit=10)

    assert [p.arxiv_id for p in found] == ["2605.00001", "2605.00101"]
    assert found[0].upvotes == 87 and found[0].ai_keywords
    [request] = fake_hf.requests_to("search")
    assert request.query == {"q": "SPECULATIVE decoding", "limit": "10"}


async def test_search_limit_and_blank_query(
    fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.load_day("2026-05-04")
    fake_hf.load_day("2026-05-05")

    assert len(await client.search("latency", limit=2)) == 2
    assert await client.search("no such topic anywhere") == []
    assert await client.search("   ") == []
    assert len(fake_hf.requests_to("search")) == 2  # the blank query never went out


async def test_single_paper_and_404(fake_hf: FakeHuggingFace, client: HuggingFaceClient) -> None:
    fake_hf.load_day("2026-05-05")

    paper = await client.paper("2605.00103v3")
    missing = await client.paper("2605.99999")

    assert paper is not None
    assert paper.arxiv_id == "2605.00103"
    assert paper.title == "Latent Diffusion Transformers Scale Predictably"
    assert paper.ai_keywords == ("scaling laws", "diffusion transformers")
    assert missing is None
    # The version suffix was not sent and the 404 was not retried.
    assert [r.path for r in fake_hf.requests_to("paper")] == [
        "/api/papers/2605.00103", "/api/papers/2605.99999",
    ]  # fmt: skip


# Faults


@pytest.mark.parametrize("fault", ["500", "503", "429", "badjson"])
async def test_fault_then_success(
    fault: str,
    fake_hf: FakeHuggingFace,
    client: HuggingFaceClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_hf.load_day("2026-05-04")
    fake_hf.retry_after = "0"
    fake_hf.faults["daily"] = [fault]

    with caplog.at_level(logging.WARNING, logger="bot.sources.huggingface"):
        papers = await client.daily(MONDAY)

    assert len(papers) == 5
    assert len(fake_hf.requests_to("daily")) == 2
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


async def test_timeout_then_success(fake_hf: FakeHuggingFace, impatient: HuggingFaceClient) -> None:
    fake_hf.load_day("2026-05-05")
    fake_hf.faults["paper"] = ["timeout"]

    paper = await impatient.paper("2605.00101")

    assert paper is not None and paper.arxiv_id == "2605.00101"
    assert len(fake_hf.requests_to("paper")) == 2


async def test_timeouts_exhaust_retries(
    fake_hf: FakeHuggingFace, impatient: HuggingFaceClient
) -> None:
    fake_hf.faults["search"] = ["timeout"] * 3

    with pytest.raises(SourceUnavailable, match="timeout"):
        await impatient.search("latency")
    assert len(fake_hf.requests_to("search")) == 3  # max_retries=2: three attempts


async def test_retries_exhausted(fake_hf: FakeHuggingFace, client: HuggingFaceClient) -> None:
    fake_hf.load_day("2026-05-04")
    fake_hf.faults["daily"] = ["503", "500", "503", "503", "503"]

    with pytest.raises(SourceUnavailable, match="4 attempts"):
        await client.daily(MONDAY)
    assert len(fake_hf.requests_to("daily")) == 4
    assert fake_hf.faults["daily"] == ["503"]  # the fifth fault was never requested


async def test_malformed_json_exhausts_retries(
    fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.faults["search"] = ["badjson"] * 4

    with pytest.raises(SourceUnavailable, match="malformed JSON"):
        await client.search("diffusion")
    assert len(fake_hf.requests_to("search")) == 4


async def test_client_error_is_not_retried(
    fake_hf: FakeHuggingFace, client: HuggingFaceClient
) -> None:
    fake_hf.faults["daily"] = ["400"]

    with pytest.raises(SourceUnavailable, match="400"):
        await client.daily(MONDAY)
    assert len(fake_hf.requests_to("daily")) == 1


async def test_retry_after_is_honoured(fake_hf: FakeHuggingFace, client: HuggingFaceClient) -> None:
    fake_hf.load_day("2026-05-04")
    fake_hf.retry_after = "1"
    fake_hf.faults["daily"] = ["429"]

    started = time.monotonic()
    papers = await client.daily(MONDAY)
    elapsed = time.monotonic() - started

    assert len(papers) == 5
    assert elapsed >= 1.0


async def test_retry_after_is_capped(
    fake_hf: FakeHuggingFace, caplog: pytest.LogCaptureFixture
) -> None:
    fake_hf.load_day("2026-05-04")
    fake_hf.retry_after = "3600"
    fake_hf.faults["daily"] = ["429"]

    async with HuggingFaceClient(
        fake_hf.base_url, backoff_base=0.01, max_retry_after=0.05
    ) as client:
        with caplog.at_level(logging.WARNING, logger="bot.sources.huggingface"):
            papers = await client.daily(MONDAY)

    assert len(papers) == 5
    [record] = caplog.records
    assert "429" in record.getMessage()
    assert record.args is not None and record.args[-1] == pytest.approx(0.05)  # the delay


async def test_connection_refused_raises_source_unavailable() -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async with HuggingFaceClient(
        f"http://127.0.0.1:{port}", max_retries=1, backoff_base=0.01
    ) as client:
        with pytest.raises(SourceUnavailable, match="connection error"):
            await client.daily(MONDAY)


# Parsing


def test_parse_items_rejects_non_list() -> None:
    with pytest.raises(HFParseError):
        parse_items({"error": "nope"})
    assert parse_items([None, 3, "x", []]) == []


def test_strip_version() -> None:
    assert strip_version("2405.15738v2") == "2405.15738"
    assert strip_version(" 2405.15738 ") == "2405.15738"


def test_parse_bare_paper_object() -> None:
    paper = parse_item(
        {
            "id": "2605.00042v1",
            "title": "  Retrieval\n  at Scale ",
            "summary": "First line\nwraps.\n\nSecond paragraph.",
            "upvotes": 3,
            "organization": "Plain Org",
        }
    )

    assert paper is not None
    assert paper.arxiv_id == "2605.00042"
    assert paper.title == "Retrieval at Scale"
    assert paper.abstract == "First line wraps.\n\nSecond paragraph."
    assert paper.upvotes == 3 and paper.organization == "Plain Org"


@pytest.mark.parametrize(
    "obj",
    [
        None,
        "2605.00001",
        {"paper": "2605.00001", "title": "x"},
        {"paper": {"title": "no id"}},
        {"paper": {"id": 2605.00001, "title": "numeric id"}},
        {"paper": {"id": "2605.00001"}},
        {"paper": {"id": "2605.00001", "title": "  \n "}},
        {"paper": {"id": "../../etc/passwd", "title": "path"}},
        {"paper": {"id": "", "title": "empty"}},
    ],
)
def test_unusable_items_are_skipped(obj: object) -> None:
    assert parse_item(obj) is None


def test_wrong_field_types_are_dropped() -> None:
    paper = parse_item(
        {
            "paper": {
                "id": "2605.00007",
                "title": ["not", "a", "string"],
                "authors": [{"name": 7}, "Plain Name", {"user": {"fullname": "From User"}}, None],
                "summary": 42,
                "upvotes": "12",
                "githubStars": True,
                "githubRepo": "javascript:alert(1)",
                "projectPage": {"url": "https://example.org"},
                "ai_summary": ["x"],
                "ai_keywords": "not a list",
                "publishedAt": "yesterday",
                "organization": {"_id": "x"},
            },
            "title": "Item-level title",
            "thumbnail": 5,
            "upvotes": -3,
        }
    )

    assert paper is not None
    assert paper.title == "Item-level title"
    assert paper.authors == ("Plain Name", "From User")
    assert paper.abstract == ""
    assert paper.upvotes is None and paper.github_stars is None
    assert paper.github_repo is None and paper.project_page is None
    assert paper.ai_summary is None and paper.ai_keywords == ()
    assert paper.published_at is None and paper.organization is None
    assert paper.thumbnail is None


def test_item_level_fallbacks() -> None:
    paper = parse_item(
        {
            "paper": {"id": "2605.00008", "title": "T", "publishedAt": "2026-05-01T02:00:00"},
            "ai_summary": "From the item",
            "organization": {"name": "orgname"},
            "upvotes": 4,
        }
    )

    assert paper is not None
    assert paper.ai_summary == "From the item"
    assert paper.organization == "orgname"
    assert paper.upvotes == 4
    assert paper.published_at == datetime(2026, 5, 1, 2, tzinfo=UTC)  # naive read as UTC


_KEYS = (
    "paper", "id", "title", "summary", "authors", "name", "user", "fullname", "upvotes",
    "ai_keywords", "ai_summary", "organization", "publishedAt", "thumbnail", "githubRepo",
    "githubStars", "projectPage",
)  # fmt: skip
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_KEYS), children, max_size=6)
    ),
    max_leaves=20,
)


@given(_json)
def test_parse_item_never_raises(obj: object) -> None:
    paper = parse_item(obj)
    assert paper is None or (paper.arxiv_id and paper.title)


def test_hand_written_fixtures_parse_completely() -> None:
    for name in ("2026-05-04.json", "2026-05-05.json", "legacy-2024-05-27.json"):
        raw = load_fixture(name)
        papers = parse_items(raw)
        assert len(papers) == len(raw), name
        assert len({p.arxiv_id for p in papers}) == len(papers), name


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not present")
def test_shared_archive_parses_completely() -> None:
    files = sorted(SHARED_DATA.glob("hf-daily-papers*/*.json"))
    assert files
    for file in files:
        raw = json.loads(file.read_text(encoding="utf-8"))
        papers = parse_items(raw)
        assert len(papers) == len(raw), file.name
        ids = [p.arxiv_id for p in papers]
        assert len(set(ids)) == len(ids), file.name
        for paper, item in zip(papers, raw, strict=True):
            assert isinstance(paper.upvotes, int), (file.name, paper.arxiv_id)
            assert paper.upvotes == item["paper"]["upvotes"]
            assert paper.title and "\n" not in paper.title
            assert paper.published_at is not None and paper.published_at.tzinfo is not None
