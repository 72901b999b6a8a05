"""The Slack app manifest asks for exactly what the adapter uses."""

from __future__ import annotations

import re
from pathlib import Path

from adapters.slack.app import (
    BOT_SCOPES,
    CHANNEL_GONE_EVENTS,
    COMMAND,
    INSTALL_PATH,
    REDIRECT_PATH,
    SAVE_SHORTCUT,
    UNFURL_DOMAINS,
    WORKSPACE_GONE_EVENTS,
)
from adapters.slack.server import EVENTS_PATH

MANIFEST = Path(__file__).resolve().parents[1] / "slack" / "manifest.yml"


def test_manifest_matches_the_adapter() -> None:
    text = MANIFEST.read_text(encoding="utf-8")
    scopes = re.search(r"bot:\n((?:\s+- .+\n)+)", text)
    assert scopes is not None
    assert re.findall(r"- (\S+)", scopes.group(1)) == BOT_SCOPES
    assert f"- command: {COMMAND}\n" in text
    assert text.count(f"/{EVENTS_PATH.strip('/')}\n") == 3  # commands, events, interactivity
    assert REDIRECT_PATH in text and INSTALL_PATH.startswith("/slack/")
    assert f"type: message\n      callback_id: {SAVE_SHORTCUT}\n" in text
    events = re.search(r"bot_events:\n((?:\s+- .+\n)+)", text)
    assert events is not None
    assert re.findall(r"- (\S+)", events.group(1)) == [
        "reaction_added", "reaction_removed", "link_shared",
        *CHANNEL_GONE_EVENTS, *WORKSPACE_GONE_EVENTS,
    ]  # fmt: skip
    domains = re.search(r"unfurl_domains:\n((?:\s+- .+\n)+)", text)
    assert domains is not None
    assert re.findall(r"- (\S+)", domains.group(1)) == UNFURL_DOMAINS
