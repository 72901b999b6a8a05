"""`paperboy fetch` and `paperboy db upgrade` as an operator runs them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory

from storage.db import alembic_config
from tests.fakes.http import free_port
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import FakeSlack


def paperboy(*args: str, database: Path, hf_url: str = "http://127.0.0.1:9"):  # type: ignore[no-untyped-def]
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "PAPERBOY_HF_BASE_URL": hf_url}
    return subprocess.run(
        [sys.executable, "-m", "adapters.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
        cwd=database.parent,
    )


def listed_days(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT day, count(*) FROM daily_listings GROUP BY day")
        return dict(rows.fetchall())


def test_fetch_one_date(tmp_path: Path, fake_hf: FakeHuggingFace) -> None:
    fake_hf.load_day("2026-05-04")
    database = tmp_path / "p.db"
    result = paperboy("fetch", "--date", "2026-05-04", database=database, hf_url=fake_hf.base_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2026-05-04: 5 papers"
    assert listed_days(database) == {"2026-05-04": 5}


def test_fetch_since_covers_weekends_without_error(
    tmp_path: Path, fake_hf: FakeHuggingFace
) -> None:
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).date()
    first = today - timedelta(days=3)
    fake_hf.load_day(first.isoformat(), "2026-05-04.json")
    database = tmp_path / "p.db"
    result = paperboy("fetch", "--since", first.isoformat(), database=database,
                      hf_url=fake_hf.base_url)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4
    assert lines[0] == f"{first}: 5 papers"
    assert all("no list" in line for line in lines[1:])
    assert listed_days(database) == {first.isoformat(): 5}


def test_fetch_reports_an_unreachable_source(tmp_path: Path, fake_hf: FakeHuggingFace) -> None:
    fake_hf.faults["daily"] = ["503"] * 10
    fake_hf.retry_after = "0"
    result = paperboy("fetch", "--date", "2026-05-04", database=tmp_path / "p.db",
                      hf_url=fake_hf.base_url)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("paperboy fetch: Hugging Face unavailable")
    assert "Traceback" not in result.stderr


def test_fetch_rejects_a_bad_date(tmp_path: Path) -> None:
    result = paperboy("fetch", "--date", "yesterday", database=tmp_path / "p.db")
    assert result.returncode == 2
    assert "expected a date as YYYY-MM-DD" in result.stderr


@pytest.mark.parametrize(("args"), [("status", "--limit", "0"), ("embed", "--most", "-3")])
def test_counts_below_one_are_refused_with_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = paperboy(*args, database=tmp_path / "p.db")
    assert result.returncode == 2
    assert "expected a whole number of 1 or more" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_creates_the_schema_once(tmp_path: Path) -> None:
    database = tmp_path / "p.db"
    for _ in range(2):
        result = paperboy("db", "upgrade", database=database)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "Database is up to date."
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        version = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    assert {"papers", "papers_fts", "saves", "follows", "posts"} <= tables
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert version == [(head,)]
    assert head != "0001"  # the later migrations ran too


def test_serve_answers_health_checks_and_rejects_unsigned_requests(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    port = free_port()
    fake_slack.tokens["xoxb-serve-test-token"] = "T1"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
        "PAPERBOY_HF_BASE_URL": "http://127.0.0.1:9",
        "PAPERBOY_SLACK_API_URL": fake_slack.api_url,
        "SLACK_BOT_TOKEN": "xoxb-serve-test-token",
        "SLACK_SIGNING_SECRET": "serve-test-secret",
        "PAPERBOY_HOST": "127.0.0.1",
        "PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "adapters.cli", "serve"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert health.status_code == 200 and health.text == "ok"
        unsigned = httpx.post(f"http://127.0.0.1:{port}/slack/events", content=b"command=/papers")
        assert unsigned.status_code == 401
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "xoxb-serve-test-token" not in stderr and "serve-test-secret" not in stderr
    assert f"Slack ready as paperboy in Team (T1) over HTTP on 127.0.0.1:{port}" in stderr


def test_serve_without_a_signing_secret_stops_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-x", "DATABASE_URL": f"sqlite:///{tmp_path}/p.db"}
    env.pop("SLACK_SIGNING_SECRET", None)
    result = subprocess.run(
        [sys.executable, "-m", "adapters.cli", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("paperboy: configuration error: SLACK_SIGNING_SECRET")
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["db", "upgrade"], ["fetch"], ["worker"], ["run"]])
def test_an_unreachable_database_is_one_line_without_the_password(
    tmp_path: Path, command: list[str]
) -> None:
    url = f"postgresql://paperboy:pw-never-shown@127.0.0.1:{free_port()}/paperboy"
    result = subprocess.run(
        [sys.executable, "-m", "adapters.cli", *command],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": url, "PAPERBOY_HF_BASE_URL": "http://127.0.0.1:9"},
        timeout=120,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "paperboy: database unavailable (ConnectionRefusedError" in result.stderr
    assert "Traceback" not in result.stderr and "pw-never-shown" not in result.stderr


def test_an_unreachable_database_shows_its_traceback_at_debug(tmp_path: Path) -> None:
    url = f"postgresql://paperboy:pw-never-shown@127.0.0.1:{free_port()}/paperboy"
    env = {**os.environ, "DATABASE_URL": url, "PAPERBOY_LOG_LEVEL": "DEBUG"}
    result = subprocess.run(
        [sys.executable, "-m", "adapters.cli", "run"],
        capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("paperboy: database unavailable (ConnectionRefusedError")
    assert last.endswith("; check DATABASE_URL")
    assert "Traceback" in result.stderr and "pw-never-shown" not in result.stderr
