"""ArxivClient against the fake arXiv API over real HTTP, its request spacing, and the lookup
that asks Hugging Face first and arXiv for the rest."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.sources.arxiv import (
    MAX_IDS_PER_REQUEST,
    MIN_INTERVAL,
    ArxivClient,
    ArxivParseError,
    ArxivUnavailable,
    RequestSpacing,
    parse_feed,
)
from bot.sources.huggingface import HuggingFaceClient, SourceUnavailable
from bot.sources.lookup import Lookup, PaperLookup
from tests.fakes.arxiv import BOMB, FakeArxiv
from tests.fakes.huggingface import FakeHuggingFace

ABSTRACT = (
    "We study how models\n  reason over long inputs.\n\n  A second paragraph,\n  wrapped as"
    " arXiv wraps it."
)


class FakeClock:
    """A monotonic clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(fake_arxiv: FakeArxiv, clock: FakeClock) -> AsyncIterator[ArxivClient]:
    """A client whose spacing runs on a fake clock: no test waits three real seconds."""
    spacing = RequestSpacing(MIN_INTERVAL, clock=clock, sleep=clock.sleep)
    async with ArxivClient(fake_arxiv.base_url, timeout=1.0, max_retries=2, spacing=spacing) as c:
        yield c


def stock(fake: FakeArxiv) -> None:
    fake.add(
        "2501.12345", "Long-Context Reasoning,\n  Revisited", summary=ABSTRACT,
        authors=("Ada Lovelace", "Alan Turing"), published="2025-01-21T18:59:59Z", version=3,
    )  # fmt: skip
    fake.add("hep-th/9901001", "Strings & <Branes>", summary="Old style.", authors=("E. W.",),
             published="1999-01-04T00:00:00Z")  # fmt: skip


async def test_papers_are_parsed_from_the_atom_feed(
    fake_arxiv: FakeArxiv, client: ArxivClient
) -> None:
    stock(fake_arxiv)
    found = await client.papers(["2501.12345", "hep-th/9901001"])

    paper = found["2501.12345"]
    assert paper.title == "Long-Context Reasoning, Revisited"
    assert paper.abstract == (
        "We study how models reason over long inputs.\n\n"
        "A second paragraph, wrapped as arXiv wraps it."
    )
    assert paper.authors == ("Ada Lovelace", "Alan Turing")
    assert paper.published_at == datetime(2025, 1, 21, 18, 59, 59, tzinfo=UTC)
    assert paper.upvotes is None and paper.ai_summary is None
    old = found["hep-th/9901001"]
    assert old.title == "Strings & <Branes>"  # entities decoded once, text kept as text
    # One request for both, asking for as many results as ids.
    [request] = fake_arxiv.requests
    assert request.path == "/api/query"
    assert request.query == {"id_list": "2501.12345,hep-th/9901001", "max_results": "2"}
    assert request.user_agent is not None and request.user_agent.startswith("paperboy/")


@pytest.mark.parametrize("unknown", ["none", "error"])
async def test_unknown_ids_are_absent_however_arxiv_says_so(
    fake_arxiv: FakeArxiv, client: ArxivClient, unknown: str
) -> None:
    stock(fake_arxiv)
    fake_arxiv.unknown = unknown
    found = await client.papers(["2501.99999", "2501.12345"])
    assert set(found) == {"2501.12345"}
    assert "Error" not in [paper.title for paper in found.values()]


async def test_many_ids_go_in_batches(fake_arxiv: FakeArxiv, client: ArxivClient) -> None:
    ids = [f"2501.{n:05d}" for n in range(1, MAX_IDS_PER_REQUEST + 6)]
    for arxiv_id in ids:
        fake_arxiv.add(arxiv_id, f"Paper {arxiv_id}", summary="")
    found = await client.papers([*ids, ids[0]])
    assert set(found) == set(ids)
    assert [len(asked) for asked in fake_arxiv.asked()] == [MAX_IDS_PER_REQUEST, 5]


async def test_requests_are_spaced_three_seconds_apart(fake_arxiv: FakeArxiv) -> None:
    clock = FakeClock()
    spacing = RequestSpacing(clock=clock, sleep=clock.sleep)
    assert spacing.interval == MIN_INTERVAL == 3.0
    async with ArxivClient(fake_arxiv.base_url, spacing=spacing) as client:
        await client.papers(["2501.00001"])
        clock.now += 1.0  # a second later
        await asyncio.gather(client.papers(["2501.00002"]), client.papers(["2501.00003"]))
        clock.now += 10.0  # long after: no wait
        await client.papers(["2501.00004"])
    assert clock.sleeps == [2.0, 3.0]
    assert len(fake_arxiv.requests) == 4


async def test_the_default_spacing_keeps_real_time(fake_arxiv: FakeArxiv) -> None:
    spacing = RequestSpacing(0.3)  # the real clock and sleep, a shorter interval
    async with ArxivClient(fake_arxiv.base_url, spacing=spacing) as client:
        for n in range(3):
            await client.papers([f"2501.0000{n + 1}"])
    arrivals = [request.arrived for request in fake_arxiv.requests]
    assert all(later - earlier >= 0.25 for earlier, later in itertools.pairwise(arrivals))
    async with ArxivClient() as default:  # no request made
        assert default.spacing.interval == 3.0 and default.base_url == "https://export.arxiv.org"


@pytest.mark.parametrize("fault", ["500", "503", "429", "timeout", "badxml", "html", "bomb"])
async def test_a_fault_is_retried_within_the_spacing(
    fake_arxiv: FakeArxiv, client: ArxivClient, clock: FakeClock, fault: str
) -> None:
    stock(fake_arxiv)
    fake_arxiv.timeout_delay = 1.5
    fake_arxiv.faults = [fault]
    found = await client.papers(["2501.12345"])
    assert list(found) == ["2501.12345"]
    assert len(fake_arxiv.requests) == 2
    assert clock.sleeps == [MIN_INTERVAL]  # the retry waited its turn


async def test_faults_exhaust_retries(fake_arxiv: FakeArxiv, client: ArxivClient) -> None:
    fake_arxiv.faults = ["503", "badxml", "500", "500"]
    with pytest.raises(ArxivUnavailable, match="3 attempts"):
        await client.papers(["2501.12345"])
    assert len(fake_arxiv.requests) == 3
    assert fake_arxiv.faults == ["500"]


async def test_a_client_error_is_not_retried(fake_arxiv: FakeArxiv, client: ArxivClient) -> None:
    fake_arxiv.faults = ["400"]
    with pytest.raises(SourceUnavailable, match="400"):  # ArxivUnavailable is one
        await client.papers(["2501.12345"])
    assert len(fake_arxiv.requests) == 1


async def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with ArxivClient(
        f"http://127.0.0.1:{port}", max_retries=1, spacing=RequestSpacing(0)
    ) as client:
        with pytest.raises(ArxivUnavailable, match="connection error"):
            await client.papers(["2501.12345"])


# The feed parser


def test_entity_expansion_and_dtds_are_refused() -> None:
    with pytest.raises(ArxivParseError):
        parse_feed(BOMB.encode())
    external = (
        b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>&x;</title></entry></feed>'
    )
    with pytest.raises(ArxivParseError):
        parse_feed(external)


@pytest.mark.parametrize(
    "body",
    [b"", b"not xml", b"<html><body>hi</body></html>", b"<feed><entry/></feed>", b"\xff\xfe<"],
)
def test_anything_but_an_atom_feed_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(ArxivParseError):
        parse_feed(body)


def test_unusable_entries_are_left_out() -> None:
    feed = (
        b'<feed xmlns="http://www.w3.org/2005/Atom">'
        b"<entry><id>http://arxiv.org/abs/2501.00001v1</id><title>  </title></entry>"
        b"<entry><id>https://evil.example/abs/2501.00002</id><title>Elsewhere</title></entry>"
        b"<entry><title>No id</title></entry>"
        b"<entry><id>http://arxiv.org/abs/2501.00003v2</id><title>Kept</title>"
        b"<published>not a date</published><author><name> </name></author></entry>"
        b"</feed>"
    )
    [paper] = parse_feed(feed)
    assert (paper.arxiv_id, paper.title, paper.published_at, paper.authors) == (
        "2501.00003", "Kept", None, ()
    )  # fmt: skip


# Hugging Face first, then arXiv


@pytest.fixture
async def lookup(fake_hf: FakeHuggingFace, client: ArxivClient) -> AsyncIterator[PaperLookup]:
    async with HuggingFaceClient(fake_hf.base_url, timeout=1.0, max_retries=0) as hf:
        yield PaperLookup(hf, client)


async def test_lookup_asks_hugging_face_first_then_arxiv_for_the_rest_at_once(
    fake_hf: FakeHuggingFace, fake_arxiv: FakeArxiv, lookup: PaperLookup
) -> None:
    fake_hf.load_day("2026-05-04")
    stock(fake_arxiv)
    fake_arxiv.add("2605.00001", "arXiv's copy", summary="")  # Hugging Face's answer wins
    result = await lookup.fetch(["2605.00001", "2501.12345", "2501.99999", "hep-th/9901001"])

    assert set(result.found) == {"2605.00001", "2501.12345", "hep-th/9901001"}
    assert result.found["2605.00001"].ai_keywords  # Hugging Face's, with its AI fields
    assert result.found["2605.00001"].title.startswith("FastDraft")
    assert result.missing == ("2501.99999",) and result.unreachable == ()
    assert len(fake_hf.requests_to("paper")) == 4
    assert fake_arxiv.asked() == [["2501.12345", "2501.99999", "hep-th/9901001"]]


async def test_lookup_with_hugging_face_down_still_asks_arxiv(
    fake_hf: FakeHuggingFace, fake_arxiv: FakeArxiv, lookup: PaperLookup
) -> None:
    stock(fake_arxiv)
    fake_hf.faults["paper"] = ["503", "503"]
    result = await lookup.fetch(["2501.12345", "2501.99999"])
    assert list(result.found) == ["2501.12345"]
    assert result.missing == ("2501.99999",)  # arXiv answered for it


async def test_lookup_with_arxiv_down_keeps_the_rest_unreachable(
    fake_hf: FakeHuggingFace, fake_arxiv: FakeArxiv, lookup: PaperLookup
) -> None:
    fake_hf.load_day("2026-05-04")
    fake_arxiv.faults = ["503"] * 3
    result = await lookup.fetch(["2605.00001", "2501.12345"])
    assert list(result.found) == ["2605.00001"]
    assert result.unreachable == ("2501.12345",) and result.missing == ()


async def test_lookup_gives_up_at_its_deadline(
    fake_hf: FakeHuggingFace, fake_arxiv: FakeArxiv, lookup: PaperLookup
) -> None:
    stock(fake_arxiv)
    fake_arxiv.faults = ["timeout"]
    fake_arxiv.timeout_delay = 3.0
    result = await lookup.fetch(["2501.12345"], within=0.3)
    assert result == Lookup(unreachable=("2501.12345",))


async def test_a_lookup_without_arxiv_judges_by_hugging_face(fake_hf: FakeHuggingFace) -> None:
    fake_hf.load_day("2026-05-04")
    async with HuggingFaceClient(fake_hf.base_url, max_retries=0) as hf:
        result = await PaperLookup(hf).fetch(["2605.00001", "2501.99999"])
        fake_hf.faults["paper"] = ["500"]
        down = await PaperLookup(hf).fetch(["2501.99998"])
    assert list(result.found) == ["2605.00001"] and result.missing == ("2501.99999",)
    assert down.unreachable == ("2501.99998",)
    assert await PaperLookup().fetch([]) == Lookup()
