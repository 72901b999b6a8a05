"""What the bot reports as it works, for whoever watches it (metrics): a neutral hook.

The core and the adapters call `observer()` at the few points worth counting; the command
line installs an implementation at start (`adapters.metrics`, Prometheus), and until then
every report goes nowhere. One observer per process, as there is one log configuration per
process: what it counts is the process's, whichever bot, client or worker did it. Labels are
from small fixed sets (command and delivery kinds, outcomes, platforms), never user text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol


class Observer(Protocol):
    def command_finished(self, command: str, outcome: str, seconds: float) -> None:
        """A `/papers` command was answered: its name (`command_name`), how it ended ("ok",
        "usage", "denied", "error") and how long the core took."""
        ...

    def delivery_finished(self, kind: str, state: str) -> None:
        """A scheduled delivery's attempt ended: its kind ("channel", "digest", "weekly")
        and the ledger state it left ("sent", "empty", "retry", "waiting", "failed")."""
        ...

    def source_failed(self, source: str, reason: str) -> None:
        """A request to a paper source ("huggingface") failed: "timeout", "connection",
        "rate_limited", "server_error", "client_error" or "malformed"."""
        ...

    def rate_limited(self, platform: str, seconds: float) -> None:
        """A platform answered 429: a send waits `seconds` (its Retry-After) before trying
        again."""
        ...


class _Silent:
    def command_finished(self, command: str, outcome: str, seconds: float) -> None:
        pass

    def delivery_finished(self, kind: str, state: str) -> None:
        pass

    def source_failed(self, source: str, reason: str) -> None:
        pass

    def rate_limited(self, platform: str, seconds: float) -> None:
        pass


_SILENT = _Silent()
_current: Observer = _SILENT


def observer() -> Observer:
    """The process's observer (a silent one until `install`)."""
    return _current


def install(new: Observer) -> Callable[[], None]:
    """Report to `new` from now on; returns a function that puts back the previous one."""
    global _current
    previous, _current = _current, new

    def uninstall() -> None:
        global _current
        if _current is new:
            _current = previous

    return uninstall


_WORD_START = re.compile(r"(?<!^)(?=[A-Z])")


def command_name(command: object) -> str:
    """A parsed command's name for reports: `ChannelOn` -> "channel_on"."""
    return _WORD_START.sub("_", type(command).__name__).lower()
