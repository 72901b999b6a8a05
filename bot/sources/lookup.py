"""Papers by arXiv id from outside the store: Hugging Face first (its pages carry AI summaries,
keywords and upvotes), then arXiv for the ids Hugging Face does not know, in one request."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.sources.huggingface import SourceUnavailable
from storage.papers import PaperData

HF_CONCURRENCY = 4  # Hugging Face requests in flight at once for one lookup


class SinglePaperSource(Protocol):
    """One paper by id, None when the source has none (e.g. `HuggingFaceClient`)."""

    async def paper(self, arxiv_id: str) -> PaperData | None: ...


class BatchPaperSource(Protocol):
    """The papers a source knows among some ids (e.g. `ArxivClient`)."""

    async def papers(self, arxiv_ids: Sequence[str]) -> dict[str, PaperData]: ...


@dataclass(frozen=True)
class Lookup:
    """What a lookup learnt of each id asked for: `found`, `missing` (arXiv answered and does
    not know it, or no arXiv is asked and Hugging Face does not know it) or `unreachable`
    (a source that might know it could not be asked, or the time ran out)."""

    found: dict[str, PaperData] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    unreachable: tuple[str, ...] = ()


class PaperLookup:
    def __init__(
        self,
        huggingface: SinglePaperSource | None = None,
        arxiv: BatchPaperSource | None = None,
    ) -> None:
        self.huggingface = huggingface
        self.arxiv = arxiv

    async def fetch(self, arxiv_ids: Sequence[str], *, within: float | None = None) -> Lookup:
        """Look `arxiv_ids` up, giving up on what is not answered within `within` seconds."""
        ids = list(dict.fromkeys(arxiv_ids))
        if not ids:
            return Lookup()
        deadline = None if within is None else asyncio.get_running_loop().time() + within
        found: dict[str, PaperData] = {}
        hf_missing: set[str] = set()
        if self.huggingface is not None:
            answers = await self._from_huggingface(self.huggingface, ids, deadline)
            for arxiv_id, answer in zip(ids, answers, strict=True):
                if isinstance(answer, PaperData):
                    found[arxiv_id] = answer
                elif answer is None:
                    hf_missing.add(arxiv_id)
        rest = [arxiv_id for arxiv_id in ids if arxiv_id not in found]
        if not rest:
            return Lookup(found)
        if self.arxiv is None:
            missing = tuple(i for i in rest if i in hf_missing)
            return Lookup(found, missing, tuple(i for i in rest if i not in hf_missing))
        try:
            async with asyncio.timeout_at(deadline):
                from_arxiv = await self.arxiv.papers(rest)
        except (SourceUnavailable, TimeoutError):
            return Lookup(found, (), tuple(rest))
        found.update((i, paper) for i, paper in from_arxiv.items() if i in rest)
        # arXiv is where the ids come from: what it does not know does not exist (yet).
        return Lookup(found, tuple(i for i in rest if i not in from_arxiv))

    async def _from_huggingface(
        self, source: SinglePaperSource, ids: list[str], deadline: float | None
    ) -> list[PaperData | Exception | None]:
        limit = asyncio.Semaphore(HF_CONCURRENCY)

        async def one(arxiv_id: str) -> PaperData | Exception | None:
            try:
                async with limit, asyncio.timeout_at(deadline):
                    paper = await source.paper(arxiv_id)
            except (SourceUnavailable, TimeoutError) as error:
                return error
            # The page of another id (a server that redirects) is not this paper's.
            return paper if paper is None or paper.arxiv_id == arxiv_id else None

        return list(await asyncio.gather(*(one(arxiv_id) for arxiv_id in ids)))
