"""The console adapter, run as `paperboy console` in a subprocess with lines piped in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.huggingface import FakeHuggingFace

PAPERBOY = [sys.executable, "-m", "adapters.cli"]


def run_console(
    lines: list[str], *, database: Path, hf_url: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "PAPERBOY_HF_BASE_URL": hf_url,
        "PAPERBOY_SEARCH_BUDGET": "0.5",
        **(extra_env or {}),
    }
    return subprocess.run(
        [*PAPERBOY, "console"],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=database.parent,
    )


def numbered(stdout: str) -> dict[int, str]:
    """Message number -> its first line."""
    return {
        int(match.group(1)): match.group(2)
        for match in re.finditer(r"^\[(\d+)\] (.*)$", stdout, flags=re.MULTILINE)
    }


@pytest.fixture
def closed_port_url() -> str:
    return "http://127.0.0.1:9"  # discard port: nothing listens, connections are refused


def test_offline_console_runs_every_flow_on_the_demo_corpus(
    tmp_path: Path, closed_port_url: str
) -> None:
    result = run_console(
        [
            "/papers",
            "/papers topic inference time",
            "/papers channel on 09:00 Europe/Berlin 2",
            "/post-daily",
            "/react 5 bookmark",
            "/papers saved",
            "/papers follow alignment",
            "/digest",
            "/papers export bibtex",
        ],
        database=tmp_path / "paperboy.db",
        hf_url=closed_port_url,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "loaded 264 demo papers" in out
    banner = out.splitlines()[1:4]
    assert banner[0].startswith("paperboy console:") and len(banner) == 3
    messages = numbered(out)
    assert messages[1].startswith("(only you) Trending papers from the offline demo sample")
    assert messages[2].startswith("(only you) Papers on “inference time”")
    assert messages[4].startswith("#general: Trending papers from the offline demo sample")
    assert messages[5].startswith("#general: Keyformer")
    assert messages[6].startswith("#general: Sequential Monte Carlo")
    assert messages[7].startswith("(only you) Saved: Keyformer")
    assert messages[8].startswith("(only you) Your saved papers (1)")
    assert any(line.startswith("DM to you: Your paperboy digest") for line in messages.values())
    assert "@misc{anonkeyformer," in out
    assert out.count("Demo data:") == 1  # said once, with the first demo papers shown
    assert "Traceback" not in out + result.stderr


def test_state_persists_between_runs(tmp_path: Path, closed_port_url: str) -> None:
    database = tmp_path / "paperboy.db"
    first = run_console(
        ["/papers follow diffusion", "/papers channel on", "/post-daily", "/react 4 bookmark"],
        database=database,
        hf_url=closed_port_url,
    )
    assert first.returncode == 0, first.stderr
    second = run_console(
        ["/papers following", "/papers saved", "/post-daily"],
        database=database,
        hf_url=closed_port_url,
    )
    assert second.returncode == 0, second.stderr
    assert "serving the 264 papers already stored" in second.stdout
    messages = numbered(second.stdout)
    assert messages[1].startswith("(only you) You follow 1 topic")
    assert "  diffusion" in second.stdout
    assert messages[2].startswith("(only you) Your saved papers (1)")
    # Yesterday's papers were posted already: today's post moves on to the next ones.
    assert "Keyformer" not in second.stdout.split("[3]")[1]
    assert "5 more papers from the list." in second.stdout.split("[3]")[1]


def test_a_pasted_link_shows_its_paper_and_a_reaction_saves_it(
    tmp_path: Path, fake_hf: FakeHuggingFace, closed_port_url: str
) -> None:
    """A line that is not a command is a message in #general: its paper links get the
    paper's card under it, fetched from Hugging Face (as Slack unfurls them), and the save
    reaction on it saves them for whoever reacts; removing it unsaves them."""
    fake_hf.load_day("2026-05-05", "2026-05-05.json")  # not a recent list: found by id
    result = run_console(
        [
            "have you seen https://arxiv.org/abs/2605.00101v2 ?",
            "no links here",
            "/as bob",
            "/react 1 bookmark",
            "/react 2 bookmark",
            "/papers saved",
            "/unreact 1 bookmark",
        ],
        database=tmp_path / "paperboy.db",
        hf_url=fake_hf.base_url,
        extra_env={"PAPERBOY_ARXIV_API_URL": closed_port_url},
    )
    assert result.returncode == 0, result.stderr
    messages = numbered(result.stdout)
    assert messages[1] == "#general you: have you seen https://arxiv.org/abs/2605.00101v2 ?"
    card = result.stdout.split("[1] ")[1].split("[2] ")[0]
    assert "1. Self-Speculative Decoding Without a Draft Model" in card
    assert messages[2] == "#general you: no links here"
    assert any(r.path == "/api/papers/2605.00101" for r in fake_hf.requests_to("paper"))
    # Reacting to the message without links says nothing: the next numbered message is the
    # confirmation of the first reaction.
    assert messages[3].startswith("(only you) Saved")
    assert "Self-Speculative Decoding Without a Draft Model" in result.stdout.split("[3] ")[1]
    assert messages[4].startswith("(only you) Your saved papers (1)")
    assert messages[5].startswith("(only you) Removed from your saved papers")
    assert 6 not in messages


def test_console_uses_live_papers_when_hugging_face_answers(
    tmp_path: Path, fake_hf: FakeHuggingFace
) -> None:
    from datetime import UTC, datetime

    today = datetime.now(UTC).date().isoformat()
    fake_hf.load_day(today, "2026-05-05.json")
    result = run_console(["/papers today"], database=tmp_path / "p.db", hf_url=fake_hf.base_url)
    assert result.returncode == 0, result.stderr
    assert "Fetched 4 papers" in result.stdout
    assert "Self-Speculative Decoding Without a Draft Model" in result.stdout
    assert "Demo data" not in result.stdout
    assert any(r.query.get("date") == today for r in fake_hf.requests_to("daily"))


def test_users_admins_and_bad_lines(tmp_path: Path, closed_port_url: str) -> None:
    result = run_console(
        [
            "/papers channel off",
            "/post-daily",
            "/papers channel on",
            "/post-daily",
            "/as bob",
            "/papers channel on",
            "/post-daily",
            "/react 4 bookmark",
            "/react 99 bookmark",
            "/react two bookmark",
            "/unreact 4 bookmark",
            "hello",
            "/as <!channel>",
            "/papers topic \x1b[31mred",
            "/papers " + "x" * 10_000,
            "/quit",
            "/papers today",
        ],
        database=tmp_path / "paperboy.db",
        hf_url=closed_port_url,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "You are now `bob` (not an admin)." in out
    assert "The daily post is off in #general: turn it on with `/papers channel on`." in out
    assert "Only admins can run #general's daily post (you are not one)." in out
    assert "Only workspace admins can change" in out
    assert "Saved: Keyformer" in out
    assert "There is no message [99]." in out
    assert "Usage: /react N EMOJI" in out
    assert "Removed from your saved papers: Keyformer" in out
    assert out.count("Commands are /papers") == 1  # the bad /as; "hello" is a message
    assert "#general bob: hello" in out
    assert "control characters" in out
    assert "too long" in out
    assert "\x1b" not in out
    assert "Trending papers" not in out.split("too long")[1]  # nothing runs after /quit


def test_team_and_week_on_the_demo_sample(tmp_path: Path, closed_port_url: str) -> None:
    result = run_console(
        [
            "/papers week",
            "/papers channel on",
            "/post-daily",
            "/react 4 bookmark",
            "/as bob",
            "/react 4 bookmark",
            "/react 5 bookmark",
            "/papers team",
            "/papers team year",
        ],
        database=tmp_path / "paperboy.db",
        hf_url=closed_port_url,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    messages = numbered(out)
    assert messages[1] == "(only you) Papers of the last 7 days from the offline demo sample"
    assert messages[4].startswith("#general: Keyformer")
    assert messages[5].startswith("#general: Sequential Monte Carlo")
    assert messages[12] == "(only you) What the team saved in the last 7 days"
    team = out.split("[12] ")[1].split("[13] ")[0]
    assert (
        team.index("1. Keyformer")
        < team.index("saved by 2 · demo")
        < team.index("2. Sequential Monte Carlo")
        < team.index("saved by 1 · demo")
    )
    assert "bob" not in team  # who saved is never shown
    assert "demo paper demo-001" in team  # the id `/papers unsave` takes
    assert out.count("Demo data:") == 1
    assert messages[13] == "(only you) Usage: `/papers team [week|month|all]`"
    assert "Traceback" not in out + result.stderr


def test_malformed_configuration_stops_with_one_line(tmp_path: Path, closed_port_url: str) -> None:
    for name, value in (
        ("DATABASE_URL", "mysql://nope"),
        ("PAPERBOY_DEFAULT_TZ", "Mars/Olympus"),
        ("PAPERBOY_DEFAULT_POST_TIME", "9h"),
    ):
        result = run_console(
            ["/papers today"],
            database=tmp_path / "p.db",
            hf_url=closed_port_url,
            extra_env={name: value},
        )
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1, result.stderr
        assert name in result.stderr and "Traceback" not in result.stderr
        assert result.stdout == ""
    assert not (tmp_path / "p.db").exists()  # stopped before touching the database


def test_export_mine_prints_the_file_and_forget_me_deletes(
    tmp_path: Path, closed_port_url: str
) -> None:
    result = run_console(
        [
            "/papers follow diffusion",
            "/papers export mine",
            "/papers forget me confirm",
            "/papers following",
        ],
        database=tmp_path / "paperboy.db",
        hf_url=closed_port_url,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    exported = out.split("--- paperboy-my-data.json ---\n")[1].split("\n  ---")[0]
    assert json.loads(exported)["follows"] == ["diffusion"]
    assert "Deleted everything stored about you in this workspace: 0 saved papers" in out
    assert "You follow no topics yet." in out


def test_repeated_posts_say_what_they_are_and_status_lists_them_as_manual(
    tmp_path: Path, closed_port_url: str
) -> None:
    database = tmp_path / "paperboy.db"
    result = run_console(
        [
            "/papers channel on",
            "/post-daily",
            "/post-daily",
            "/papers follow alignment",
            "/digest",
            "/post-weekly",
        ],
        database=database,
        hf_url=closed_port_url,
    )
    assert result.returncode == 0, result.stderr
    headers = [line for line in numbered(result.stdout).values() if "Trending papers" in line]
    assert len(headers) == 2
    posts = result.stdout.split("Trending papers")
    assert "Top 5." in posts[1] and "Top" not in posts[2]  # the next 5 are not called the top
    assert "5 more papers from the list." in posts[2]
    status = subprocess.run(
        [*PAPERBOY, "status"],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{database}"},
        timeout=120,
        cwd=tmp_path,
    )
    assert status.returncode == 0, status.stderr
    recent = status.stdout.split("Recent deliveries (4):\n")[1].split("\n\n")[0].splitlines()
    kinds = [line.split()[3:8] for line in recent]
    assert kinds == [
        ["weekly", "console", "local/general", "manual", "sent"],
        ["digest", "console", "local/you", "manual", "sent"],
        ["channel", "console", "local/general", "manual", "sent"],
        ["channel", "console", "local/general", "manual", "sent"],
    ]
