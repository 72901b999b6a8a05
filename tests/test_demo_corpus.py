"""The packaged demo corpus, and that the build script reproduces it byte for byte."""

from __future__ import annotations

import gzip
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from bot.demo import load_demo_corpus
from storage.papers import PaperData

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "build_demo_corpus.py"
SEED = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "daily-papers-inference-time.txt"


@pytest.fixture(scope="module")
def corpus() -> list[PaperData]:
    return load_demo_corpus()


def test_corpus_is_large_enough(corpus: list[PaperData]) -> None:
    assert len(corpus) > 200


def test_ids_are_unique_demo_ids_in_order(corpus: list[PaperData]) -> None:
    ids = [paper.arxiv_id for paper in corpus]
    assert len(set(ids)) == len(ids)
    assert ids == [f"demo-{number:03d}" for number in range(1, len(ids) + 1)]


def test_every_paper_has_title_and_abstract(corpus: list[PaperData]) -> None:
    for paper in corpus:
        assert paper.title.strip(), paper.arxiv_id
        assert paper.abstract.strip(), paper.arxiv_id
        assert paper.title == " ".join(paper.title.split()), paper.arxiv_id
        assert len(paper.abstract) > len(paper.title), paper.arxiv_id


def test_page_chrome_is_gone(corpus: list[PaperData]) -> None:
    assert not [p.title for p in corpus if p.title.startswith("Subscribe")]
    assert not [p.title for p in corpus if p.title.startswith("Get trending papers")]
    assert not [p.title for p in corpus if "scriptsize" in p.title]
    assert corpus[0].title.startswith("Keyformer:")


def test_titles_are_unique(corpus: list[PaperData]) -> None:
    titles = [paper.title for paper in corpus]
    assert len(set(titles)) == len(titles)


def test_nothing_is_invented(corpus: list[PaperData]) -> None:
    for paper in corpus:
        assert paper.is_demo is True
        assert paper.authors == ()
        assert paper.upvotes is None
        assert paper.published_at is None


@pytest.mark.skipif(not SEED.exists(), reason=f"seed not available: {SEED}")
def test_script_rebuilds_the_packaged_corpus(tmp_path: Path) -> None:
    output = tmp_path / "corpus.json.gz"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(SEED), "--output", str(output)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert f"{len(load_demo_corpus())} papers" in run.stdout
    packaged = resources.files("bot.demo").joinpath("corpus.json.gz").read_bytes()
    rebuilt = output.read_bytes()
    # Compared uncompressed: another zlib build may compress the same JSON differently.
    assert gzip.decompress(rebuilt) == gzip.decompress(packaged)
