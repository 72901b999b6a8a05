"""Turn stored papers into neutral paper cards with their links."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from bot.messages import Link, PaperCard
from storage.models import Paper

HF_PAPERS = "https://huggingface.co/papers"
DEMO_NOTE = (
    "Demo data: Hugging Face could not be reached, so these papers come from the offline "
    "sample shipped with paperboy (no authors, dates or upvotes)."
)
SUMMARY_LIMIT = 300
# Inline math in titles and abstracts, `$\mathcal{O}(n)$`: between dollar signs that hug it,
# holding a command, a script or a group (so "$5 and $10" is money, not math).
_MATH = re.compile(r"\$(?=\S)([^$\n]{1,200}?)(?<=\S)\$")
_MATH_SIGNS = re.compile(r"[\\^_{]")

if TYPE_CHECKING:
    from pylatexenc.latex2text import LatexNodes2Text


def paper_card(paper: Paper) -> PaperCard:
    if paper.is_demo:
        # Demo papers carry no arXiv id: link to a Hugging Face search for the title instead.
        return PaperCard(
            paper_id=paper.arxiv_id,
            title=plain_math(paper.title),
            url=f"{HF_PAPERS}?{urlencode({'q': paper.title})}",
            summary=_shorten(plain_math(paper.abstract)),
            is_demo=True,
        )
    arxiv_id = quote(paper.arxiv_id, safe="./")
    links = [
        Link("arXiv", f"https://arxiv.org/abs/{arxiv_id}"),
        Link("PDF", f"https://arxiv.org/pdf/{arxiv_id}"),
    ]
    if paper.github_repo:
        links.append(Link("Code", paper.github_repo))
    if paper.project_page and not _same_url(paper.project_page, paper.github_repo):
        links.append(Link("Project page", paper.project_page))
    return PaperCard(
        paper_id=paper.arxiv_id,
        title=plain_math(paper.title),
        url=f"{HF_PAPERS}/{arxiv_id}",
        authors=tuple(paper.authors),
        upvotes=paper.upvotes,
        published=paper.published_at.date() if paper.published_at else None,
        summary=plain_math(paper.ai_summary)
        if paper.ai_summary
        else _shorten(plain_math(paper.abstract)),
        links=tuple(links),
        thumbnail=paper.thumbnail,
    )


def paper_cards(papers: Iterable[Paper]) -> tuple[PaperCard, ...]:
    return tuple(paper_card(paper) for paper in papers)


def title_text(paper: Paper) -> str:
    """A paper's title inside a Message's text or lines: backticks there mark our own code
    spans, so a title's become a typographic apostrophe."""
    return paper.title.replace("`", "\u2019")


def saved_by_text(count: int) -> str:
    """How a card's `saved_by` count reads on every platform: "saved by 3"."""
    return f"saved by {count}"


def demo_note(cards: Iterable[PaperCard]) -> str | None:
    return DEMO_NOTE if any(card.is_demo for card in cards) else None


def _shorten(text: str, limit: int = SUMMARY_LIMIT) -> str | None:
    text = " ".join(text.split())
    if not text:
        return None
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"


def plain_math(text: str) -> str:
    r"""`text` with its inline LaTeX math as plain Unicode text: `$\mathcal{O}(n)$` reads as a
    script O and (n), `$\alpha$` as the Greek letter, `$\mathbb{R}^{n}$` as a double-struck
    R and ^n. Only the math: elsewhere `%`, `&` and `~` are what they seem."""
    if "$" not in text:
        return text
    return _MATH.sub(_math_as_text, text)


def _math_as_text(match: re.Match[str]) -> str:
    math = match[1]
    if not _MATH_SIGNS.search(math) or math.count("{") != math.count("}"):
        return match[0]
    try:
        return _latex().latex_to_text(f"${math}$").strip() or match[0]
    except Exception:  # malformed LaTeX stays as written
        return match[0]


@cache
def _latex() -> LatexNodes2Text:
    from pylatexenc.latex2text import LatexNodes2Text  # 4 MB: only for papers with math

    # Its complaints about a paper's odd LaTeX are not ours to log: the text stays as written.
    logging.getLogger("pylatexenc").setLevel(logging.CRITICAL)
    return LatexNodes2Text(math_mode="text")


def _same_url(first: str | None, second: str | None) -> bool:
    return first is not None and second is not None and first.rstrip("/") == second.rstrip("/")
