#!/usr/bin/env python3
"""Build the offline demo corpus (`bot/demo/corpus.json.gz`) from a scraped papers page.

The seed is text copied from a Hugging Face papers page: header lines ("Get trending
papers in your email inbox..."), then "Subscribe" glued to the first title, then one
title line and one abstract line per paper. It carries no arXiv ids, authors, dates or
upvotes, and none are invented here: papers get `demo-NNN` ids in page order.

The output is deterministic (sorted keys, gzip with mtime 0 and no file name), so
rebuilding from the same seed gives identical bytes.

    python scripts/build_demo_corpus.py [SEED] [--output PATH]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SEED = REPO_ROOT.parent / "shared" / "seeds" / "daily-papers-inference-time.txt"
DEFAULT_OUTPUT = REPO_ROOT / "bot" / "demo" / "corpus.json.gz"

HEADER_PREFIX = "Get trending papers"
SUBSCRIBE = "Subscribe"
# Titles on the page are short (at most ~130 characters); abstracts are paragraphs.
MAX_TITLE_CHARS = 300
# LaTeX size commands leaked into scraped titles: "Inference Scaling scriptsizeFLaws".
LATEX_SCRAPS = re.compile(r"\\?\b(?:scriptsize|footnotesize) ?")
WHITESPACE = re.compile(r"\s+")


@dataclass
class ParseResult:
    papers: list[tuple[str, str]] = field(default_factory=list)
    header_lines: int = 0
    duplicate_titles: list[str] = field(default_factory=list)
    titles_without_abstract: list[str] = field(default_factory=list)
    abstracts_without_title: list[str] = field(default_factory=list)
    cleaned_titles: list[str] = field(default_factory=list)  # titles LaTeX scraps were cut from


def collapse(text: str) -> str:
    return WHITESPACE.sub(" ", text).strip()


def clean_title(title: str) -> str:
    return collapse(LATEX_SCRAPS.sub("", title))


def parse_seed(text: str) -> ParseResult:
    """Pair each title line with the abstract line after it, in page order.

    Empty lines and page chrome are skipped; a title followed by another title, or an
    abstract with no title before it, is reported and left out rather than mispaired.
    """
    result = ParseResult()
    seen: set[str] = set()
    pending: str | None = None
    for raw in text.splitlines():
        line = collapse(raw)
        if not line:
            continue
        if line.startswith(HEADER_PREFIX):
            result.header_lines += 1
            continue
        if line.startswith(SUBSCRIBE):
            line = line.removeprefix(SUBSCRIBE).strip()
            if not line:  # a bare "Subscribe" button
                result.header_lines += 1
                continue
        if len(line) <= MAX_TITLE_CHARS:
            if pending is not None:
                result.titles_without_abstract.append(pending)
            pending = line
            continue
        if pending is None:
            result.abstracts_without_title.append(line[:80])
            continue
        title = clean_title(pending)
        if title != pending:
            result.cleaned_titles.append(title)
        pending = None
        if title in seen:
            result.duplicate_titles.append(title)
            continue
        seen.add(title)
        result.papers.append((title, line))
    if pending is not None:
        result.titles_without_abstract.append(pending)
    return result


def corpus_bytes(papers: list[tuple[str, str]], source: str) -> bytes:
    """The gzipped JSON corpus; identical input gives identical bytes."""
    document = {
        "source": source,
        "papers": [
            {"id": f"demo-{number:03d}", "title": title, "abstract": abstract}
            for number, (title, abstract) in enumerate(papers, start=1)
        ],
    }
    payload = json.dumps(document, sort_keys=True, ensure_ascii=False, indent=1) + "\n"
    buffer = io.BytesIO()
    # GzipFile writes the header itself: no file name, mtime 0, fixed OS byte.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as out:
        out.write(payload.encode("utf-8"))
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "seed", nargs="?", type=Path, default=DEFAULT_SEED, help="scraped papers page (text)"
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=DEFAULT_OUTPUT, help="corpus file to write"
    )
    args = parser.parse_args(argv)

    result = parse_seed(args.seed.read_text(encoding="utf-8"))
    if not result.papers:
        print(f"error: no title/abstract pairs found in {args.seed}", file=sys.stderr)
        return 1
    for title in result.titles_without_abstract:
        print(f"warning: title without abstract skipped: {title!r}", file=sys.stderr)
    for start in result.abstracts_without_title:
        print(f"warning: abstract without title skipped: {start!r}...", file=sys.stderr)
    for title in result.duplicate_titles:
        print(f"warning: duplicate title dropped: {title!r}", file=sys.stderr)
    for title in result.cleaned_titles:
        print(f"note: LaTeX scraps removed from title: {title!r}", file=sys.stderr)

    data = corpus_bytes(result.papers, args.seed.name)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    print(
        f"{args.output}: {len(result.papers)} papers from {args.seed.name} "
        f"({result.header_lines} header lines, {len(result.duplicate_titles)} duplicates, "
        f"{len(result.titles_without_abstract)} titles without abstract, "
        f"{len(result.abstracts_without_title)} orphan abstracts, "
        f"{len(result.cleaned_titles)} titles cleaned; {len(data)} bytes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
