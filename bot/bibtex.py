"""BibTeX export of saved papers."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from storage.models import Paper

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def escape(text: str) -> str:
    """Field text safe inside `{...}`: LaTeX specials escaped, whitespace collapsed."""
    text = " ".join(text.split())
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def _ascii_word(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", folded.lower())


def _year(paper: Paper) -> str | None:
    if paper.published_at is not None:
        return str(paper.published_at.year)
    match = re.match(r"^(\d{2})\d{2}\.", paper.arxiv_id)
    return f"20{match.group(1)}" if match else None


def citation_key(paper: Paper) -> str:
    surname = _ascii_word(paper.authors[0].split()[-1]) if paper.authors else ""
    first_word = next(
        (w for w in (_ascii_word(word) for word in paper.title.split()) if len(w) > 2), "paper"
    )
    return f"{surname or 'anon'}{_year(paper) or ''}{first_word}"


def entry(paper: Paper, key: str) -> str:
    fields = [("title", "{" + escape(paper.title) + "}")]
    if paper.authors:
        fields.append(("author", " and ".join(escape(name) for name in paper.authors)))
    year = _year(paper)
    if year:
        fields.append(("year", year))
    if paper.is_demo:
        fields.append(("note", "paperboy demo sample, no arXiv id"))
    else:
        fields += [
            ("eprint", paper.arxiv_id),
            ("archivePrefix", "arXiv"),
            ("url", f"https://arxiv.org/abs/{paper.arxiv_id}"),
        ]
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@misc{{{key},\n{body}\n}}\n"


def bibtex_entries(papers: Sequence[Paper]) -> list[str]:
    """One @misc entry per paper, with unique citation keys; joined by newlines, they are a
    .bib file, and so is any part of them."""
    seen: dict[str, int] = {}
    entries = []
    for paper in papers:
        key = citation_key(paper)
        count = seen.get(key, 0)
        seen[key] = count + 1
        entries.append(entry(paper, f"{key}_{count + 1}" if count else key))
    return entries
