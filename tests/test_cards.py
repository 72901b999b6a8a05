"""Paper cards: how a stored paper's text and links read on every platform."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.cards import SUMMARY_LIMIT, paper_card, plain_math
from storage.models import Paper

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def stored(**fields: object) -> Paper:
    values: dict[str, object] = {
        "arxiv_id": "2612.00001", "title": "A paper", "abstract": "", "authors": [],
        "ai_keywords": [], "fetched_at": NOW, "is_demo": False,
    }  # fmt: skip
    return Paper(**(values | fields))


@pytest.mark.parametrize(
    ("written", "read"),
    [
        (r"Linear attention in $\mathcal{O}(n)$ time", "Linear attention in \U0001d4aa(n) time"),
        (r"$\alpha$-divergence for $\mathbb{R}^{n}$", "\u03b1-divergence for \u211d^n"),
        (r"$\frac{a}{b}$ scaling", "a/b scaling"),
        # Not math: money, per cent, ampersands, a tilde, half a formula, a lone variable.
        ("A 50% drop & a ~2x win for $5 and $10", "A 50% drop & a ~2x win for $5 and $10"),
        (r"Broken $\frac{$ math", r"Broken $\frac{$ math"),
        ("The $x$ factor", "The $x$ factor"),
    ],
)
def test_inline_math_reads_as_plain_text(written: str, read: str) -> None:
    assert plain_math(written) == read
    card = paper_card(stored(title=written, ai_summary=f"We show {written}."))
    assert card.title == read
    assert card.summary == f"We show {read}."


def test_the_same_page_for_code_and_project_is_linked_once() -> None:
    repo = "https://github.com/lab/model"
    same = paper_card(stored(github_repo=repo, project_page=repo + "/"))
    assert [link.label for link in same.links] == ["arXiv", "PDF", "Code"]
    other = paper_card(stored(github_repo=repo, project_page="https://lab.github.io/model"))
    assert [link.label for link in other.links] == ["arXiv", "PDF", "Code", "Project page"]


def test_an_abstract_without_summary_is_cut_between_words() -> None:
    words = " ".join(f"word{n}" for n in range(200))
    summary = paper_card(stored(abstract=words)).summary
    assert summary is not None and summary.endswith("…") and len(summary) <= SUMMARY_LIMIT
    assert summary[:-1].split()[-1] in words.split()  # the last word shown is whole
