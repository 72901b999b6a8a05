"""Search by meaning: the sentence model, the stored vectors on both engines, the index that
follows them, `/papers topic` through the real Slack app, digests of papers like a user's
saves, and hostile topics with search by meaning on."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import cast

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from numpy.typing import NDArray
from sqlalchemy import delete, insert

from adapters.slack.app import create_slack_bot
from bot.app import Paperboy
from bot.commands.parser import MAX_TOPIC_LENGTH, UsageError, parse
from bot.config import BotConfig
from bot.digest import LIKE_SAVED, Digest, compose_digest
from bot.events import CommandInvoked, UserRef
from bot.messages import Message
from bot.search import VECTOR_FLOOR, find_papers
from bot.semantic.index import EXACT_UP_TO, VectorIndex
from bot.semantic.meaning import Semantic, paper_text
from bot.semantic.model import BATCH, DIMENSIONS, MAX_WORD_PIECES, MODEL_ID, SentenceModel
from bot.semantic.stored import as_bytes, as_vector
from bot.sources.huggingface import HuggingFaceClient
from storage.models import Paper
from storage.papers import PaperData
from storage.store import Store
from tests.core_fixtures import CHANNEL, NOW, SCOPE, Harness, RecordingPlatform
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import FakeSlack
from tests.semantic_fixtures import (
    CORPUS,
    OVERTHINKING,
    OVERTHINKING_QUESTION,
    PHONES,
    PHONES_QUESTION,
    add_papers,
    nearest_to,
    settle,
)
from tests.slack_fixtures import SlackHarness, all_text, serve, slack_settings
from tests.test_hostile_commands import (
    HYPOTHESIS,
    any_input,
    assert_safe_answer,
    shaped,
    stored_text,
    topicish,
)


def cosine(model: SentenceModel, first: str, second: str) -> float:
    vectors = model.embed([first, second])
    return float(vectors[0] @ vectors[1])


async def say(bot: Paperboy, text: str, user: str = "alice") -> Message:
    """`/papers text` from `user`, not an admin."""
    return await bot.handle_command(CommandInvoked(CHANNEL, user, text, False))


async def save(store: Store, user: str, paper_id: int) -> None:
    async with store.transaction() as repos:
        await repos.users.save(SCOPE.platform, SCOPE.workspace, user, paper_id, NOW)


async def digest_of(store: Store, user: str, semantic: Semantic) -> Digest | None:
    """`user`'s daily digest now, composed afresh (no cached window)."""
    async with store.transaction() as repos:
        return await compose_digest(
            repos, UserRef(SCOPE, user), "daily", NOW, cache=None, semantic=semantic
        )


async def search(store: Store, topic: str, semantic: Semantic | None) -> list[Paper]:
    """A page of five papers for `topic`, from the store alone."""
    return await find_papers(store, topic, limit=5, source=None, budget=1.0, semantic=semantic)


def unit(*values: float) -> bytes:
    """A stored vector: `values` first, zeros after, scaled to length 1."""
    vector = np.zeros(DIMENSIONS, np.float32)
    vector[: len(values)] = values
    return as_bytes(vector / np.linalg.norm(vector))


# The model ---------------------------------------------------------------------------------


def test_vectors_are_unit_length_and_384_wide(sentence_model: SentenceModel) -> None:
    vectors = sentence_model.embed(["speculative decoding", "protein folding", "a"])
    assert vectors.shape == (3, DIMENSIONS) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert sentence_model.embed([]).shape == (0, DIMENSIONS)
    # Batched or alone, a text has one vector (padding to a batch's longest changes nothing).
    alone = sentence_model.embed(["protein folding"])[0]
    assert float(alone @ vectors[1]) > 0.999


def test_a_paraphrase_is_closer_than_an_unrelated_sentence(sentence_model: SentenceModel) -> None:
    question = "small language models for phones"
    paraphrase = cosine(sentence_model, question, "on-device LLM inference on smartphones")
    unrelated = cosine(sentence_model, question, "protein folding")
    assert paraphrase > unrelated + 0.2, (paraphrase, unrelated)
    synonym = cosine(sentence_model, "reasoning models that think too long", OVERTHINKING.title)
    assert synonym > cosine(sentence_model, "reasoning models that think too long", PHONES.title)


@pytest.mark.parametrize(
    "text", ["", " ", "\ud800", "a \udfff b", "\x00", "😀", "\u202e", "中文", 'NEAR("*']
)
def test_empty_broken_and_odd_text_embeds_without_error(
    sentence_model: SentenceModel, text: str
) -> None:
    [vector] = sentence_model.embed([text])
    assert vector.shape == (DIMENSIONS,)
    assert np.isfinite(vector).all() and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_a_lone_surrogate_reads_as_a_replacement_character(
    sentence_model: SentenceModel,
) -> None:
    broken, replaced = sentence_model.embed(["diffusion \ud800 sampling", "diffusion ? sampling"])
    assert float(broken @ replaced) > 0.999


def test_long_text_is_truncated_to_the_models_word_pieces(sentence_model: SentenceModel) -> None:
    words = ("diffusion sampling " * 600)[:10_000]  # over 1,000 word pieces
    long, prefix, other = sentence_model.embed(
        [words, "diffusion sampling " * (MAX_WORD_PIECES // 2 + 10), "diffusion sampling"]
    )
    # Only the first MAX_WORD_PIECES count: the 10,000 characters embed as the prefix does.
    assert float(long @ prefix) > 0.9999
    assert float(long @ other) < 0.9999
    assert sentence_model.embed(["x" * 10_000]).shape == (1, DIMENSIONS)


# Stored vectors, on both engines -------------------------------------------------------------


async def test_vector_repository(database_url: str) -> None:
    store = await Store.open(database_url)  # migrations up to paper_vectors
    try:
        ids = await add_papers(store, [PaperData(f"2612.0100{n}", f"Paper {n}") for n in range(5)])
        first, second, third, fourth, fifth = (ids[f"2612.0100{n}"] for n in range(5))
        async with store.transaction() as repos:
            assert await repos.vectors.count(MODEL_ID) == 0
            assert [p.id for p in await repos.vectors.missing(MODEL_ID, 10)] == [
                fifth, fourth, third, second, first
            ]  # fmt: skip
            await repos.vectors.put({third: unit(1), first: unit(0, 1)}, MODEL_ID)
            await repos.vectors.put({fifth: unit(1)}, "another-model")
            await repos.vectors.put({}, MODEL_ID)  # nothing to store
        async with store.reading() as repos:
            assert await repos.vectors.count(MODEL_ID) == 2
            assert await repos.vectors.count("another-model") == 1
            # Newest first; a vector by another model is as good as none.
            assert [p.id for p in await repos.vectors.missing(MODEL_ID, 10)] == [
                fifth, fourth, second
            ]  # fmt: skip
            assert [p.id for p in await repos.vectors.missing(MODEL_ID, 2)] == [fifth, fourth]
            assert await repos.vectors.of([first, second, third, fifth, 999], MODEL_ID) == {
                first: unit(0, 1), third: unit(1)
            }  # fmt: skip
            assert await repos.vectors.of([], MODEL_ID) == {}
            assert await repos.vectors.page(MODEL_ID, 0, 10) == [
                (first, unit(0, 1)), (third, unit(1))
            ]  # fmt: skip
            assert await repos.vectors.page(MODEL_ID, first, 10) == [(third, unit(1))]
            assert await repos.vectors.page(MODEL_ID, 0, 1) == [(first, unit(0, 1))]
            assert await repos.vectors.page(MODEL_ID, third, 10) == []
        async with store.transaction() as repos:  # replaced, by this model or another
            await repos.vectors.put({first: unit(1, 1), fifth: unit(0, 0, 1)}, MODEL_ID)
        async with store.reading() as repos:
            assert await repos.vectors.count(MODEL_ID) == 3
            assert await repos.vectors.count("another-model") == 0
            assert await repos.vectors.of([first, fifth], MODEL_ID) == {
                first: unit(1, 1), fifth: unit(0, 0, 1)
            }  # fmt: skip
            stored = (await repos.vectors.of([first], MODEL_ID))[first]
            assert np.array_equal(as_vector(stored), as_vector(unit(1, 1)))
        async with store.transaction() as repos:  # a paper's vector goes with it
            await repos.session.execute(delete(Paper).where(Paper.id == first))
        async with store.reading() as repos:
            assert await repos.vectors.count(MODEL_ID) == 2
            assert await repos.vectors.of([first], MODEL_ID) == {}
            assert [pid for pid, _ in await repos.vectors.page(MODEL_ID, 0, 10)] == [third, fifth]
    finally:
        await store.close()


async def test_embed_missing_embeds_each_paper_once_newest_first(
    store: Store, semantic: Semantic, sentence_model: SentenceModel
) -> None:
    ids = await add_papers(store, CORPUS)
    assert await semantic.embed_missing(most=2) == 2
    async with store.reading() as repos:
        stored = await repos.vectors.of(ids.values(), MODEL_ID)
    newest = sorted(ids.values())[-2:]
    assert sorted(stored) == newest
    assert await semantic.embed_missing() == len(CORPUS) - 2
    assert await semantic.embed_missing() == 0
    async with store.reading() as repos:
        stored = await repos.vectors.of(ids.values(), MODEL_ID)
        papers = await repos.papers.by_ids([ids[PHONES.arxiv_id]])
    assert len(stored) == len(CORPUS)
    # The vector is the model's for the paper's title and summary.
    [expected] = sentence_model.embed([paper_text(papers[ids[PHONES.arxiv_id]])])
    assert float(as_vector(stored[ids[PHONES.arxiv_id]]) @ expected) > 0.9999


class WatchedModel:
    """The real model, watched from the outside: how many texts each call embeds, and how
    many are being embedded (in a worker thread) right now."""

    def __init__(self, model: SentenceModel) -> None:
        self.model = model
        self.calls: list[int] = []
        self.running = 0
        self._lock = threading.Lock()
        self.idle = threading.Event()

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        with self._lock:
            self.calls.append(len(texts))
            self.running += len(texts)
            self.idle.clear()
        try:
            return self.model.embed(texts)
        finally:
            with self._lock:
                self.running -= len(texts)
                if not self.running:
                    self.idle.set()


async def test_a_cancelled_backfill_stops_after_the_batch_in_hand(
    store: Store, sentence_model: SentenceModel
) -> None:
    """A console closing or a worker stopping cancels the embedding of new papers; the thread
    doing it cannot be stopped, so what it still has to do is what the exit waits for: one
    batch of the model, not a page of EMBED_PAGE papers."""
    papers = [PaperData(f"2612.1{n:04}", f"Paper {n} on topic {n}") for n in range(3 * BATCH)]
    await add_papers(store, papers)
    model = WatchedModel(sentence_model)
    semantic = Semantic(store, cast(SentenceModel, model))
    backfill = asyncio.create_task(semantic.embed_missing())
    for _ in range(10_000):  # until the first texts are in the model
        if model.running:
            break
        await asyncio.sleep(0.001)
    in_hand = model.running
    backfill.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await backfill
    calls = len(model.calls)
    assert 0 < in_hand <= BATCH, model.calls
    await asyncio.to_thread(model.idle.wait, 60)
    assert len(model.calls) == calls  # nothing more was started
    # The next run embeds them all.
    assert await semantic.embed_missing() == 3 * BATCH


# The index and the service ------------------------------------------------------------------


async def test_nearest_orders_by_cosine_similarity(store: Store) -> None:
    ids = await add_papers(store, [PaperData(f"2612.0200{n}", f"Paper {n}") for n in range(4)])
    a, b, c, d = (ids[f"2612.0200{n}"] for n in range(4))
    async with store.transaction() as repos:
        await repos.vectors.put(
            {a: unit(1), b: unit(1, 1), c: unit(0, 1), d: unit(-1, 0.1)}, MODEL_ID
        )
    index = VectorIndex(MODEL_ID)
    assert index.nearest(as_vector(unit(1)), 3) == []  # nothing read yet
    await index.refresh(store)
    assert len(index) == 4
    found = index.nearest(as_vector(unit(1)), 3)
    assert [pid for pid, _ in found] == [a, b, c]
    assert [round(score, 4) for _, score in found] == [1.0, round(2**-0.5, 4), 0.0]
    assert [pid for pid, _ in index.nearest(as_vector(unit(-1)), 10)] == [d, c, b, a]
    assert index.nearest(as_vector(unit(1)), 0) == []


async def test_semantic_nearest_finds_the_paper_a_question_means(
    store: Store, semantic: Semantic, sentence_model: SentenceModel
) -> None:
    ids = await add_papers(store, CORPUS)
    await semantic.embed_missing()
    for question, paper in ((PHONES_QUESTION, PHONES), (OVERTHINKING_QUESTION, OVERTHINKING)):
        found = await nearest_to(semantic, question, 3)
        assert len(found) == 3
        scores = [score for _, score in found]
        assert scores == sorted(scores, reverse=True)
        assert ids[paper.arxiv_id] in [pid for pid, _ in found], (question, found)
        # The similarity is the cosine of the question's and the paper's vectors.
        [paper_vector] = sentence_model.embed([f"{paper.title}. {paper.abstract}"])
        [question_vector] = sentence_model.embed([question])
        score = dict(found)[ids[paper.arxiv_id]]
        assert score == pytest.approx(float(question_vector @ paper_vector), abs=1e-4)
    assert len(await nearest_to(semantic, PHONES_QUESTION, 100)) == len(CORPUS)


async def test_an_index_catches_up_with_vectors_another_process_stored(
    store: Store, sentence_model: SentenceModel
) -> None:
    clock = [0.0]
    server = Semantic(store, sentence_model, refresh_every=30.0, clock=lambda: clock[0])
    worker = Semantic(store, sentence_model)  # the worker embeds a refresh's new papers
    ids = await add_papers(store, CORPUS[2:])
    await worker.embed_missing()
    await server.prepare_search()
    assert len(server.index) == len(CORPUS) - 2
    ids |= await add_papers(store, [PHONES])
    assert await worker.embed_missing() == 1
    clock[0] = 29.0
    assert ids[PHONES.arxiv_id] not in dict(await nearest_to(server, PHONES_QUESTION, 3))
    await settle()
    assert len(server.index) == len(CORPUS) - 2  # not stale yet: not read again
    clock[0] = 30.0
    await server.nearest(
        await server.embed_query(PHONES_QUESTION), 3
    )  # stale: catches up in the background
    await settle()
    assert len(server.index) == len(CORPUS) - 1
    assert ids[PHONES.arxiv_id] in dict(await nearest_to(server, PHONES_QUESTION, 3))


async def test_an_index_reloads_after_older_papers_are_embedded_or_deleted(
    store: Store, semantic: Semantic
) -> None:
    ids = await add_papers(store, CORPUS)
    newest = sorted(ids.values())[-3:]
    await semantic.embed_missing(most=3)
    await semantic.prepare_search()
    assert sorted(pid for pid, _ in semantic.index.nearest(as_vector(unit(1)), 100)) == newest
    # A backfill stores vectors of papers older than any the index holds.
    assert await semantic.embed_missing() == len(CORPUS) - 3
    await semantic.index.refresh(store)
    assert len(semantic.index) == len(CORPUS)
    everything = semantic.index.nearest(as_vector(unit(1)), 100)
    assert sorted(pid for pid, _ in everything) == sorted(ids.values())
    # A deleted paper's vector goes with it, and so it leaves the index.
    async with store.transaction() as repos:
        await repos.session.execute(delete(Paper).where(Paper.arxiv_id == PHONES.arxiv_id))
    await semantic.index.refresh(store)
    assert len(semantic.index) == len(CORPUS) - 1
    assert ids[PHONES.arxiv_id] not in dict(semantic.index.nearest(as_vector(unit(1)), 100))
    # New papers after a reload are appended.
    ids |= await add_papers(store, [PaperData("2612.09999", "Compact LLMs for handsets")])
    assert await semantic.embed_missing() == 1
    await semantic.index.refresh(store)
    assert len(semantic.index) == len(CORPUS)
    assert ids["2612.09999"] in dict(await nearest_to(semantic, PHONES_QUESTION, 3))


async def test_load_index_reads_the_stored_vectors_once(
    store: Store, semantic: Semantic, sentence_model: SentenceModel
) -> None:
    ids = await add_papers(store, CORPUS)
    await semantic.embed_missing()
    fresh = Semantic(store, sentence_model)  # a process that starts on a filled store
    assert len(fresh.index) == 0
    await fresh.prepare_search()
    assert len(fresh.index) == len(CORPUS)
    await fresh.prepare_search()
    assert len(fresh.index) == len(CORPUS)
    [(best, _)] = await nearest_to(fresh, OVERTHINKING_QUESTION, 1)
    assert best == ids[OVERTHINKING.arxiv_id]
    # Concurrent first searches of another process load the vectors once.
    other = Semantic(store, sentence_model)
    query = await other.embed_query(PHONES_QUESTION)
    answers = await asyncio.gather(*(other.nearest(query, 5) for _ in range(3)))
    assert answers[0] == answers[1] == answers[2]
    assert len(other.index) == len(CORPUS)


# `/papers topic` by meaning, through the real Slack app ---------------------------------------


@contextlib.asynccontextmanager
async def slack_app(
    store: Store, fake_slack: FakeSlack, fake_hf: FakeHuggingFace, semantic: Semantic | None
) -> AsyncIterator[SlackHarness]:
    """The bolt app over HTTP on `store`, searching by meaning when `semantic` is given;
    Hugging Face search (the fake, which knows no papers) finds nothing."""
    async with HuggingFaceClient(fake_hf.base_url, timeout=2.0, max_retries=0) as source:
        slack = create_slack_bot(
            slack_settings(fake_slack, fake_hf), store, source=source, semantic=semantic,
            clock=lambda: NOW,
        )  # fmt: skip
        async for http in serve(slack):
            yield SlackHarness(slack, fake_slack, http, store)


@pytest.mark.parametrize(
    ("question", "paper"),
    [(PHONES_QUESTION, PHONES), (OVERTHINKING_QUESTION, OVERTHINKING)],
    ids=["phones", "overthinking"],
)
async def test_topic_finds_a_paper_that_shares_no_word_with_the_question(
    store: Store,
    semantic: Semantic,
    fake_slack: FakeSlack,
    fake_hf: FakeHuggingFace,
    question: str,
    paper: PaperData,
) -> None:
    await add_papers(store, CORPUS)
    assert await semantic.embed_missing() == len(CORPUS)
    link = f"https://huggingface.co/papers/{paper.arxiv_id}"
    async with slack_app(store, fake_slack, fake_hf, None) as words_only:
        answer = all_text(await words_only.command(f"topic {question}"))
    assert f"Papers on “{question}”" in answer  # papers holding some of its words
    assert link not in answer
    async with slack_app(store, fake_slack, fake_hf, semantic) as by_meaning:
        answer = all_text(await by_meaning.command(f"topic {question}"))
    assert f"Papers on “{question}”" in answer
    assert link in answer
    assert "went wrong" not in answer


async def test_a_question_of_no_meaning_finds_nothing_by_meaning(
    store: Store, semantic: Semantic
) -> None:
    await add_papers(store, CORPUS)
    await semantic.embed_missing()
    for typo in ("qwxz", "zzkq"):
        assert all(score < VECTOR_FLOOR for _, score in await nearest_to(semantic, typo, 5))
        assert await search(store, typo, semantic) == []


async def test_fusion_keeps_what_the_words_find(store: Store, semantic: Semantic) -> None:
    """A paper holding every word of the topic stays on the page with search by meaning on."""
    ids = await add_papers(store, CORPUS)
    await semantic.embed_missing()
    topic = "key-value stores"
    words = await search(store, topic, None)
    fused = await search(store, topic, semantic)
    tail_latency = ids["2612.00009"]
    assert [paper.id for paper in words] == [tail_latency]
    assert fused[0].id == tail_latency


async def test_past_exact_up_to_the_index_groups_vectors_and_still_finds_the_nearest(
    store: Store,
) -> None:
    """Beyond EXACT_UP_TO vectors the index is an inverted file of 8-bit codes: a question
    searches the groups nearest it, and the papers nearest it are still found, in order, with
    similarities close to the exact ones. Papers come in families of 10 alike ones (as papers
    on one subject do), and a question near one paper has its family as the nearest 10."""
    families = (EXACT_UP_TO + 500) // 10
    count = families * 10
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(families, DIMENSIONS)).astype(np.float32)
    vectors = np.repeat(centres, 10, axis=0) + rng.normal(
        scale=0.5, size=(count, DIMENSIONS)
    ).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # Paper ids need not exist for the index: vectors are stored by id, papers by the store.
    async with store.transaction() as repos:
        await repos.session.execute(
            insert(Paper),
            [
                {"id": n + 1, "arxiv_id": f"2612.{n:05d}", "title": f"P{n}", "fetched_at": NOW}
                for n in range(count)
            ],
        )
        await repos.vectors.put({n + 1: as_bytes(vectors[n]) for n in range(count)}, MODEL_ID)
    index = VectorIndex(MODEL_ID)
    await index.refresh(store)
    assert len(index) == count
    for row in (0, count // 2, count - 1):
        question = vectors[row] + rng.normal(scale=0.01, size=DIMENSIONS).astype(np.float32)
        question /= np.linalg.norm(question)
        exact = vectors @ question
        family = {row // 10 * 10 + n + 1 for n in range(10)}
        assert {int(i) + 1 for i in np.argsort(-exact)[:10]} == family
        found = index.nearest(question, 10)
        assert found[0][0] == row + 1
        assert {pid for pid, _ in found} == family
        assert [score for _, score in found] == sorted((score for _, score in found), reverse=True)
        for pid, score in found:
            assert score == pytest.approx(float(exact[pid - 1]), abs=0.02)


class CountingModel:
    """The sentence model, counting the texts it is asked to embed."""

    def __init__(self, model: SentenceModel) -> None:
        self.model = model
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.embedded += texts
        return self.model.embed(texts)

    def warm(self) -> None:
        self.model.warm()


async def test_a_page_of_papers_holding_the_topic_as_written_is_the_words_answer(
    store: Store, sentence_model: SentenceModel
) -> None:
    """When papers holding the topic as written fill the page, they are the answer, in the
    words' order: a paper that only resembles the topic stays off, and the topic is not
    embedded. Where they fall short, meaning is asked."""
    written = [
        PaperData(f"2612.0220{n}", f"Speculative decoding, study {n}", "Draft and verify.")
        for n in range(5)
    ]
    resembling = PaperData(
        "2612.02210",
        "Draft-and-verify generation: accelerating large language model inference",
        "A small model proposes tokens that the large model accepts or rejects in one pass.",
    )
    ids = await add_papers(store, [*written, resembling])
    model = CountingModel(sentence_model)
    semantic = Semantic(store, cast(SentenceModel, model))
    await semantic.embed_missing()
    model.embedded.clear()
    page = await search(store, "speculative decoding", semantic)
    assert [paper.id for paper in page] == [
        paper.id for paper in await search(store, "speculative decoding", None)
    ]
    assert {paper.id for paper in page} == {ids[paper.arxiv_id] for paper in written}
    assert model.embedded == []
    page = await search(store, "faster inference of language models", semantic)
    assert model.embedded == ["faster inference of language models"]
    assert ids[resembling.arxiv_id] in [paper.id for paper in page]


# Phrases, by words alone ------------------------------------------------------------------


async def test_the_paper_where_the_words_stand_together_ranks_first(store: Store) -> None:
    apart = PaperData(
        "2612.03001",
        "Sampling by diffusion",
        "Diffusion over torsion angles yields protein conformations; Markov chain sampling "
        "needs hours for them.",
        published_at=NOW,
        upvotes=99,
    )
    together = PaperData(
        "2612.03002",
        "Faster diffusion sampling with fewer steps for high-resolution image generation on "
        "consumer hardware",
        "An ODE solver of higher order cuts the number of network evaluations needed to draw "
        "an image from noise, from fifty to eight, at the same quality on standard benchmarks.",
        published_at=NOW - timedelta(days=30),
        upvotes=1,
    )
    ids = await add_papers(store, [together, apart])  # the apart one is newer
    async with store.reading() as repos:
        by_engine = await repos.papers.search(["diffusion", "sampling"], limit=10)
    # The engine alone ranks the short title holding both words, and newer, first.
    assert [paper.id for paper in by_engine] == [ids[apart.arxiv_id], ids[together.arxiv_id]]
    bot = Paperboy(store, RecordingPlatform(), config=BotConfig(), clock=lambda: NOW)
    answer = await say(bot, "topic diffusion sampling")
    assert [card.paper_id for card in answer.cards] == [together.arxiv_id, apart.arxiv_id]
    # Stopwords between the words do not part them; reversed words are no phrase.
    answer = await say(bot, "topic sampling of diffusion")
    assert [card.paper_id for card in answer.cards] == [apart.arxiv_id, together.arxiv_id]


# Digests of papers like a user's saves --------------------------------------------------------

SAVED = PaperData(
    "2612.04001",
    "Speculative decoding with a draft model",
    "A small draft model proposes tokens that the large model verifies in one pass, making "
    "LLM inference twice as fast.",
    ai_keywords=("speculative decoding", "draft model"),
)
ALIKE = PaperData(  # the same subject in other words: none of the saved paper's keywords
    "2612.04002",
    "Accelerating LLM inference by drafting tokens",
    "A cheap drafter guesses upcoming tokens, which the full LLM accepts or rejects in a single "
    "forward pass.",
    upvotes=3,
)
UNRELATED = PaperData(
    "2612.04003",
    "Protein folding with equivariant networks",
    "We predict the 3D structure of proteins from their amino-acid sequence.",
    upvotes=30,
)


async def test_a_digest_carries_papers_like_a_save_by_meaning(
    store: Store, semantic: Semantic, sentence_model: SentenceModel
) -> None:
    saved = await add_papers(store, [SAVED], listed_on=NOW.date() - timedelta(days=30))
    await add_papers(store, [ALIKE, UNRELATED], listed_on=NOW.date())
    await semantic.embed_missing()
    texts = [f"{paper.title}. {paper.abstract}" for paper in (SAVED, ALIKE, UNRELATED)]
    vectors = sentence_model.embed(texts)
    assert float(vectors[0] @ vectors[1]) >= LIKE_SAVED > float(vectors[0] @ vectors[2])
    await save(store, "alice", saved[SAVED.arxiv_id])
    platform = RecordingPlatform()
    config = BotConfig(search_budget=1.0)
    by_words = Paperboy(store, platform, config=config, clock=lambda: NOW)
    by_meaning = Paperboy(store, platform, config=config, semantic=semantic, clock=lambda: NOW)

    # By keywords, nothing new holds "speculative decoding" or "draft model".
    answer = await say(by_words, "digest now")
    assert answer.text.startswith("Nothing new")
    assert platform.dms == []

    answer = await say(by_meaning, "digest now")
    assert answer.text == "Sent you a digest of 1 paper by DM."
    [(user, message, _)] = platform.dms
    assert user == UserRef(SCOPE, "alice")
    assert [card.paper_id for card in message.cards] == [ALIKE.arxiv_id]
    assert message.text == "Your paperboy digest: 1 new paper like ones you saved"
    answer = await say(by_meaning, "digest now")
    assert answer.text.startswith("Nothing new")  # sent once

    # Followed topics first, then papers like the saves.
    await say(by_meaning, "follow protein", user="bob")
    await save(store, "bob", saved[SAVED.arxiv_id])
    digest = await digest_of(store, "bob", semantic)
    assert digest is not None
    assert [card.paper_id for card in digest.message.cards] == [
        UNRELATED.arxiv_id, ALIKE.arxiv_id
    ]  # fmt: skip
    assert digest.message.text.endswith("2 new papers on protein and like ones you saved")


async def test_no_saves_and_no_topics_make_no_digest(store: Store, semantic: Semantic) -> None:
    await add_papers(store, [SAVED, ALIKE, UNRELATED], listed_on=NOW.date())
    await semantic.embed_missing()
    platform = RecordingPlatform()
    bot = Paperboy(store, platform, config=BotConfig(), semantic=semantic, clock=lambda: NOW)
    answer = await say(bot, "digest now", user="carol")
    assert answer.text.startswith("You follow no topics yet")
    assert await digest_of(store, "carol", semantic) is None
    assert platform.dms == []


async def test_a_save_without_a_vector_yet_makes_no_digest(
    store: Store, semantic: Semantic
) -> None:
    """Papers stored before search by meaning was on have no vector until `paperboy embed`:
    the digest has nothing like them rather than failing."""
    saved = await add_papers(store, [SAVED], listed_on=NOW.date() - timedelta(days=30))
    await add_papers(store, [ALIKE, UNRELATED], listed_on=NOW.date())
    await save(store, "alice", saved[SAVED.arxiv_id])
    assert await digest_of(store, "alice", semantic) is None
    assert await semantic.embed_missing() == 3
    digest = await digest_of(store, "alice", semantic)
    assert digest is not None and [c.paper_id for c in digest.message.cards] == [ALIKE.arxiv_id]


# Hostile topics with search by meaning on ---------------------------------------------------

HOSTILE_TOPICS = [
    "",
    "x",
    "é",
    "x" * 10_000,
    "inference " * 1_000,
    '"',
    '"inference',
    "*",
    "infer*",
    "NEAR(",
    "NEAR(inference decoding, 2)",
    "-",
    "-inference",
    "OR",
    "inference OR decoding",
    "AND NOT",
    "😀",
    "😀😀😀",
    "\ud800",
    "inference \udfff decoding",
    "'; DROP TABLE paper_vectors;--",
]


@pytest.fixture
async def semantic_bot(harness: Harness, semantic: Semantic) -> Paperboy:
    """The core harness's bot (the fake Hugging Face's lists, stored) searching by meaning."""
    assert await semantic.embed_missing() > 0
    return Paperboy(
        harness.store, harness.platform, config=BotConfig(search_budget=1.0),
        source=harness.bot.source, semantic=semantic, clock=lambda: NOW,
    )  # fmt: skip


async def stored_vectors(store: Store) -> list[tuple[int, bytes]]:
    async with store.reading() as repos:
        return await repos.vectors.page(MODEL_ID, 0, 10_000)


async def test_hostile_topics_get_a_clear_answer_with_search_by_meaning_on(
    semantic_bot: Paperboy,
) -> None:
    before = await stored_vectors(semantic_bot.store)
    assert before
    for topic in HOSTILE_TOPICS:
        typed = f"topic {topic}"
        answer = await say(semantic_bot, typed, user="mallory")
        await settle()
        assert_safe_answer(answer, typed, topic)
        assert answer.is_usage_hint or answer.text.startswith(("Papers on", "No papers found")), (
            typed[:40], answer.text
        )  # fmt: skip
        if answer.is_usage_hint:  # refused: nothing searched, nothing shown
            assert answer.cards == ()
    assert await stored_vectors(semantic_bot.store) == before


@HYPOTHESIS
@given(typed=st.one_of(shaped("topic", topicish), any_input))
@example(typed='topic "NEAR(" AND OR - : ^ *')
@example(typed="topic inference \ud800")
@example(typed="topic " + "x" * 10_000)
async def test_no_topic_breaks_the_search_by_meaning(semantic_bot: Paperboy, typed: str) -> None:
    answer = await say(semantic_bot, typed, user="mallory")
    await settle()
    try:
        command = parse(typed)
    except UsageError:
        command = None
    assert_safe_answer(answer, typed, stored_text(command))


async def test_hostile_text_past_the_parser_embeds_and_searches_without_error(
    store: Store, semantic: Semantic
) -> None:
    """What the parser would refuse, given to search by meaning itself: an answer, never an
    error; and the search as a whole for what fits a topic's length."""
    await add_papers(store, CORPUS)
    await semantic.embed_missing()
    for topic in HOSTILE_TOPICS:
        found = await nearest_to(semantic, topic, 5)
        assert len(found) == 5 and all(-1.01 <= score <= 1.01 for _, score in found), topic
        if len(topic) > MAX_TOPIC_LENGTH:
            continue  # no command carries it to the search
        papers = await search(store, topic, semantic)
        assert len(papers) <= 5 and all(isinstance(paper, Paper) for paper in papers), topic
    # Text of no meaning finds nothing by meaning: only what its words find.
    for topic in ("😀", "\ud800", '"', "*", "-"):
        assert await search(store, topic, semantic) == [], topic
    assert len(await stored_vectors(store)) == len(CORPUS)
