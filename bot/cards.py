"""Turn stored papers into neutral paper cards with their links."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, urlencode

from bot.messages import Link, PaperCard
from storage.models import Paper

HF_PAPERS = "https://huggingface.co/papers"
DEMO_NOTE = (
    "Demo data: Hugging Face could not be reached, so these papers come from the offline "
    "sample shipped with paperboy (no authors, dates or upvotes)."
)
SUMMARY_LIMIT = 300


def paper_card(paper: Paper) -> PaperCard:
    if paper.is_demo:
        # Demo papers carry no arXiv id: link to a Hugging Face search for the title instead.
        return PaperCard(
            paper_id=paper.arxiv_id,
            title=paper.title,
            url=f"{HF_PAPERS}?{urlencode({'q': paper.title})}",
            summary=_shorten(paper.abstract),
            is_demo=True,
        )
    arxiv_id = quote(paper.arxiv_id, safe="./")
    links = [
        Link("arXiv", f"https://arxiv.org/abs/{arxiv_id}"),
        Link("PDF", f"https://arxiv.org/pdf/{arxiv_id}"),
    ]
    if paper.github_repo:
        links.append(Link("Code", paper.github_repo))
    if paper.project_page:
        links.append(Link("Project page", paper.project_page))
    return PaperCard(
        paper_id=paper.arxiv_id,
        title=paper.title,
        url=f"{HF_PAPERS}/{arxiv_id}",
        authors=tuple(paper.authors),
        upvotes=paper.upvotes,
        published=paper.published_at.date() if paper.published_at else None,
        summary=paper.ai_summary or _shorten(paper.abstract),
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
