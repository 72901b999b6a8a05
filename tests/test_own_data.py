"""A member's own data, in the core: `forget me` (asked, then confirmed) deletes only theirs,
and `export mine` is a JSON file of everything stored about them in the workspace."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bot.commands.parser import ExportBibtex, ExportMine, ForgetMe, UsageError, parse
from storage.models import Delivery, DigestItem
from tests.core_fixtures import NOW, Harness


async def set_up(harness: Harness) -> None:
    """alice and bob each save, follow and get a digest; alice has a pending save, a paper
    sent in a digest and its ledger row; the channel has a daily post."""
    await harness.say("channel on 09:00 UTC 3", user="alice", admin=True)
    for user in ("alice", "bob"):
        await harness.say("save 2605.00101", user=user)
        await harness.say("follow diffusion", user=user)
        await harness.say("digest weekly fri 08:00 Europe/Berlin", user=user)
    async with harness.store.transaction() as repos:
        await repos.pending.keep("test", "T1", "alice", "2605.99999", NOW, missing=False)
        paper = (await repos.papers.by_arxiv_ids(["2605.00102"]))["2605.00102"]
        for user in ("alice", "bob"):
            await repos.users.record_sent("test", "T1", user, [paper.id], NOW)
            repos.session.add(
                Delivery(kind="digest", platform="test", workspace="T1", target=user,
                         period="2026-05-05", status="sent", attempts=1, created_at=NOW,
                         updated_at=NOW)
            )  # fmt: skip


async def targets(harness: Harness, model: type) -> list[str]:
    async with harness.store.reading() as repos:
        column = model.target if model is Delivery else model.user  # type: ignore[attr-defined]
        return sorted(await repos.session.scalars(select(column)))


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("forget me", ForgetMe(confirmed=False)),
        ("FORGET me Confirm", ForgetMe(confirmed=True)),
        ("export mine", ExportMine()),
        ("export bibtex", ExportBibtex()),
    ],
)
def test_own_data_commands_parse(text: str, command: object) -> None:
    assert parse(text) == command


@pytest.mark.parametrize(
    ("text", "usage"),
    [
        ("forget", "`/papers forget me`, then `/papers forget me confirm`"),
        ("forget you", "`/papers forget me`, then `/papers forget me confirm`"),
        ("forget me now", "`/papers forget me`, then `/papers forget me confirm`"),
        ("export everything", "`/papers export bibtex` or `/papers export mine`"),
        ("export mine bibtex", "`/papers export bibtex` or `/papers export mine`"),
    ],
)
def test_bad_own_data_commands_get_a_usage_line(text: str, usage: str) -> None:
    with pytest.raises(UsageError) as error:
        parse(text)
    assert str(error.value) == f"Usage: {usage}"


async def test_help_names_both(harness: Harness) -> None:
    lines = (await harness.say("help")).lines
    assert any("`/papers export mine`" in line for line in lines)
    assert any("`/papers forget me confirm`" in line for line in lines)


async def test_forget_me_asks_first_then_deletes_only_the_members_data(harness: Harness) -> None:
    await set_up(harness)
    asked = await harness.say("forget me", user="alice")
    assert asked.text == "This deletes everything stored about you in this workspace:"
    assert asked.lines[:4] == (
        "1 saved paper", "1 followed topic", "your digest setting", "1 pending save"
    )  # fmt: skip
    assert "`/papers forget me confirm`" in asked.lines[-1]
    assert (await harness.say("following", user="alice")).lines == ("diffusion",)  # not yet

    done = await harness.say("forget me confirm", user="alice")
    assert done.text == (
        "Deleted everything stored about you in this workspace: 1 saved paper, "
        "1 followed topic, 1 digest setting, 1 pending save."
    )
    assert "no saved papers" in (await harness.say("saved", user="alice")).text
    assert "follow no topics" in (await harness.say("following", user="alice")).text
    assert "off" in (await harness.say("digest", user="alice")).text.lower()
    assert await targets(harness, DigestItem) == ["bob"]
    assert await targets(harness, Delivery) == ["bob"]
    # bob's data and the channel's post stay.
    assert (await harness.say("following", user="bob")).lines == ("diffusion",)
    assert "(1)" in (await harness.say("saved", user="bob")).text
    assert (await harness.say("channel status")).text.startswith("Daily post:")


async def test_export_mine_is_a_json_file_of_the_members_data(harness: Harness) -> None:
    await set_up(harness)
    answer = await harness.say("export mine", user="alice")
    assert answer.attachment is not None
    assert answer.attachment.filename == "paperboy-my-data.json"
    assert answer.attachment.mime_type == "application/json"
    data = json.loads(answer.attachment.content)
    assert data["user"] == "alice" and data["workspace"] == "T1"
    [saved] = data["saved_papers"]
    assert saved["arxiv_id"] == "2605.00101" and saved["title"]
    assert saved["saved_at"].startswith("2026-05-05T12:00")
    assert data["follows"] == ["diffusion"]
    assert data["digest"] == {
        "cadence": "weekly", "weekday": 4, "time": "08:00", "timezone": "Europe/Berlin",
        "paused": False,
    }  # fmt: skip
    assert [p["arxiv_id"] for p in data["pending_saves"]] == ["2605.99999"]
    assert "bob" not in answer.attachment.content
    assert "1 saved paper, 1 followed topic, your digest setting, 1 pending save" in answer.text
