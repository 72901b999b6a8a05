"""Riding out a database outage at the hour of a slot.

A slot's run needs the database to take its workspace's sender lease and claim its ledger
row. When the database cannot be reached, the scheduler tries the run again with backoff
(`Backoff`) until it runs or the slot's local day ends, and an `Outage` says so twice: one
line when the first run fails and one when the database is back and every slot waiting on it
has run, not a traceback per attempt. Exactly-once is the ledger's as ever: an attempt either
claimed its row or did not.

One `Outage` per process and database: every scheduler of a worker shares it, so a worker
delivering to Slack and Discord logs one outage once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from storage.deliveries import DeliveryKey

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Waits between attempts through an outage: about as long as it has lasted, from `first`
    up to `most` (so each wait about doubles), with jitter (between half and all of it) so that
    workers and slots do not all come back at the same instant."""

    first: timedelta = timedelta(seconds=5)
    most: timedelta = timedelta(minutes=5)

    def next_try(self, since: datetime, now: datetime, until: datetime) -> datetime | None:
        """When to try again, the failures having lasted since `since`; None when that is
        `until` (the end of the slot's local day) or later: a slot is not sent late."""
        ceiling = min(max(now - since, self.first), self.most).total_seconds()
        at = now + timedelta(seconds=random.uniform(ceiling / 2, ceiling))
        return at if at < until else None


def describe(error: BaseException) -> str:
    """An error in one line: its type and the first line of its message."""
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first_line[:200]}" if first_line else type(error).__name__


class Outage:
    """The database's availability as this process has seen it: when it went away, which
    slots wait for it, and when it came back."""

    def __init__(self) -> None:
        self._started: float | None = None  # the first failure of this outage
        self._back_after: float | None = None  # seconds it lasted, once something succeeded
        self._waiting: set[DeliveryKey] = set()  # slots retrying through it
        self._caught_up: set[DeliveryKey] = set()
        self._given_up: set[DeliveryKey] = set()
        self._back = asyncio.Event()  # set while the database answers

    def failed(self, error: BaseException) -> None:
        """The database could not be reached: the outage's first line, when it starts."""
        self._back.clear()
        self._back_after = None  # a blip during the catch-up: it lasts on
        if self._started is None:
            self._started = time.monotonic()
            log.warning(
                "database unreachable: %s; retrying slots until it is back", describe(error)
            )

    def answered(self) -> None:
        """The database answered: slots waiting on it try again now, not after their wait."""
        self._back.set()
        if self._started is not None and self._back_after is None:
            self._back_after = time.monotonic() - self._started
        self._end_when_caught_up()

    def waiting(self, key: DeliveryKey) -> None:
        """`key`'s run failed for the outage and will be tried again."""
        self._waiting.add(key)

    def ran(self, key: DeliveryKey) -> None:
        """`key` waited for the database and has now run."""
        if key in self._waiting:
            self._waiting.discard(key)
            self._caught_up.add(key)
        self._end_when_caught_up()

    def gave_up(self, key: DeliveryKey) -> None:
        """`key`'s local day ended before the database came back: not sent late."""
        self._waiting.discard(key)
        self._given_up.add(key)
        log.warning("slot %s given up: the database was unreachable until its day ended", key)
        self._end_when_caught_up()

    async def wait(self, seconds: float) -> None:
        """Sleep `seconds`, or less when the database answers meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._back.wait(), seconds)

    def _end_when_caught_up(self) -> None:
        """The outage's last line: the database is back and no slot waits for it any more."""
        if self._back_after is None or self._waiting:
            return
        given_up = f", {len(self._given_up)} given up" if self._given_up else ""
        log.info(
            "database back after %d s; %d slots caught up%s",
            round(self._back_after), len(self._caught_up), given_up,
        )  # fmt: skip
        self._started = self._back_after = None
        self._caught_up.clear()
        self._given_up.clear()
