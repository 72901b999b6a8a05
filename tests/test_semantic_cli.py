"""Search by meaning as an operator meets it: `paperboy embed`, PAPERBOY_SEMANTIC, and the
`semantic` extra missing (onnxruntime that fails to import), each in a subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.semantic.meaning import Semantic
from bot.semantic.model import MODEL_ID, SentenceModel
from storage.store import Store
from tests.semantic_fixtures import CORPUS, PHONES, PHONES_QUESTION, add_papers

PAPERBOY = [sys.executable, "-m", "adapters.cli"]
CLOSED = "http://127.0.0.1:9"  # nothing listens: Hugging Face is unreachable


def paperboy(
    *args: str,
    database_url: str,
    cwd: Path,
    stdin: str = "",
    env: dict[str, str] | None = None,
    pythonpath: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `paperboy args` on `database_url`; `pythonpath` comes first on the import path."""
    values = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PAPERBOY_HF_BASE_URL": CLOSED,
        "PAPERBOY_SEARCH_BUDGET": "0.5",
        **(env or {}),
    }
    if pythonpath is not None:
        values["PYTHONPATH"] = os.pathsep.join(
            part for part in (str(pythonpath), os.environ.get("PYTHONPATH")) if part
        )
    return subprocess.run(
        [*PAPERBOY, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=values,
        timeout=300,
        cwd=cwd,
    )


@pytest.fixture
def without_onnxruntime(tmp_path: Path) -> Path:
    """A directory that, first on the import path, makes onnxruntime absent as it is where
    the `semantic` extra is not installed: neither found nor importable."""
    directory = tmp_path / "no-onnxruntime"
    directory.mkdir()
    (directory / "sitecustomize.py").write_text(
        "import sys\n"
        "class Absent:\n"
        "    @staticmethod\n"
        "    def find_spec(name, path=None, target=None):\n"
        "        if name.partition('.')[0] == 'onnxruntime':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Absent)\n"
    )
    return directory


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'paperboy.db'}"


async def vector_count(url: str) -> int:
    store = await Store.open(url, migrate=False)
    try:
        async with store.reading() as repos:
            return await repos.vectors.count(MODEL_ID)
    finally:
        await store.close()


async def fill(url: str, model: SentenceModel | None = None) -> None:
    """Store the corpus at `url`, embedded by `model` if given."""
    store = await Store.open(url)
    try:
        await add_papers(store, CORPUS)
        if model is not None:
            await Semantic(store, model).embed_missing()
    finally:
        await store.close()


async def test_embed_stores_a_vector_for_every_paper_once(
    database_url: str, tmp_path: Path
) -> None:
    await fill(database_url)
    assert await vector_count(database_url) == 0
    first = await asyncio.to_thread(paperboy, "embed", database_url=database_url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (
        first.stdout.strip() == f"Embedded {len(CORPUS)} papers; every stored paper has a vector."
    )
    assert await vector_count(database_url) == len(CORPUS)
    again = await asyncio.to_thread(paperboy, "embed", database_url=database_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "Embedded 0 papers; every stored paper has a vector."
    assert await vector_count(database_url) == len(CORPUS)


async def test_the_console_searches_by_meaning_when_on(
    tmp_path: Path, sentence_model: SentenceModel
) -> None:
    url = sqlite_url(tmp_path)
    await fill(url, sentence_model)  # as `paperboy embed` leaves it
    result = await asyncio.to_thread(
        paperboy, "console", database_url=url, cwd=tmp_path,
        stdin=f"/papers topic {PHONES_QUESTION}\n", env={"PAPERBOY_SEMANTIC": "on"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Search by meaning: on" in result.stderr
    assert f"Papers on “{PHONES_QUESTION}”" in result.stdout
    assert PHONES.title in result.stdout  # it shares no word with the question
    assert "Traceback" not in result.stdout + result.stderr
    # faiss's loader logs each CPU-specific build it tries at INFO: not the user's concern.
    assert "faiss" not in result.stderr


async def test_the_console_searches_by_words_when_off(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    await fill(url)
    result = await asyncio.to_thread(
        paperboy, "console", database_url=url, cwd=tmp_path,
        stdin=f"/papers topic {PHONES_QUESTION}\n", env={"PAPERBOY_SEMANTIC": "off"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Search by meaning: off" in result.stderr
    assert f"Papers on “{PHONES_QUESTION}”" in result.stdout  # papers holding its words
    assert PHONES.title not in result.stdout
    assert await vector_count(url) == 0


def test_an_unknown_semantic_mode_is_a_configuration_error(tmp_path: Path) -> None:
    result = paperboy("console", database_url=sqlite_url(tmp_path), cwd=tmp_path,
                      env={"PAPERBOY_SEMANTIC": "maybe"})  # fmt: skip
    assert result.returncode == 2
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("paperboy: configuration error:") and "PAPERBOY_SEMANTIC" in line
    assert "Traceback" not in result.stderr


# The extra missing ----------------------------------------------------------------------------


def test_auto_without_the_extra_searches_by_words_and_says_so(
    tmp_path: Path, without_onnxruntime: Path
) -> None:
    url = sqlite_url(tmp_path)
    result = paperboy(
        "console", database_url=url, cwd=tmp_path, pythonpath=without_onnxruntime,
        stdin="/papers topic inference time\n", env={"PAPERBOY_SEMANTIC": "auto"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "loaded 264 demo papers" in result.stdout
    assert "(only you) Papers on “inference time”" in result.stdout
    assert (
        "Search by meaning: off, by words and Hugging Face search only: onnxruntime not "
        "installed; pip install 'paperboy[semantic]' adds it" in result.stderr
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert asyncio.run(vector_count(url)) == 0


@pytest.mark.parametrize("command", ["console", "serve"])
def test_on_without_the_extra_stops_with_one_line(
    tmp_path: Path, without_onnxruntime: Path, command: str
) -> None:
    env = {
        "PAPERBOY_SEMANTIC": "on",
        "SLACK_BOT_TOKEN": "xoxb-semantic-test",
        "SLACK_SIGNING_SECRET": "semantic-test-secret",
        "PAPERBOY_SLACK_API_URL": "http://127.0.0.1:9/api/",
        "PAPERBOY_HOST": "127.0.0.1",
        "PORT": "0",
    }
    result = paperboy(command, database_url=sqlite_url(tmp_path), cwd=tmp_path,
                      pythonpath=without_onnxruntime, env=env)  # fmt: skip
    assert result.returncode == 2, result.stderr
    named = [line for line in result.stderr.splitlines() if "PAPERBOY_SEMANTIC" in line]
    assert named == [
        "paperboy: configuration error: PAPERBOY_SEMANTIC=on, but onnxruntime not installed; "
        "pip install 'paperboy[semantic]' adds it"
    ]
    assert result.stderr.strip().splitlines()[-1] == named[0]
    assert "Traceback" not in result.stderr
    assert "Papers on" not in result.stdout and "paperboy console:" not in result.stdout


def test_embed_without_the_extra_stops_with_one_line(
    tmp_path: Path, without_onnxruntime: Path
) -> None:
    url = sqlite_url(tmp_path)
    asyncio.run(fill(url))
    result = paperboy("embed", database_url=url, cwd=tmp_path, pythonpath=without_onnxruntime)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "paperboy embed: search by meaning is unavailable: onnxruntime not installed; "
        "pip install 'paperboy[semantic]' adds it"
    ]
    assert asyncio.run(vector_count(url)) == 0
