"""Pacing Slack posts so a busy morning stays under Slack's limits instead of finding them.

Slack's limits for chat.postMessage (docs.slack.dev: the method's page and "Rate limits"):
about one message per second per channel, short bursts tolerated, and a workspace-wide limit
of "several hundred messages per minute"; beyond them HTTP 429 with `Retry-After` (seconds).
A daily post is a header and N paper messages to one channel back to back, and many channels
of one workspace post in the same minute, so both limits matter.

- Per channel: a send starts at least `channel_interval` (1 s) after the previous send to that
  channel *ended*. Measured from the end, network and event-loop delays cannot squeeze two
  messages closer together at Slack than the interval. DMs are paced by their IM channel id.
- Per workspace: GCRA (a token bucket kept as one timestamp) at `workspace_rate` messages per
  second with bursts of `workspace_burst`. The default, 4/s with a burst of 4, allows at most
  244 messages in any minute: under "several hundred" with room for the app's other posts
  (shares, reaction confirmations) and for a second worker sharing the workspace.
- A 429 (`back_off`) pushes the workspace's next slot past its `Retry-After`; sends already
  waiting for a slot inside that pause claim a new one, so they don't pile into 429s too.
  Then it resumes without a burst at half the rate (someone else posts there too, e.g.
  another worker: the pacer is per process), winning the rate back a little with each send.

Slots are handed out in claim order (fair) under a lock that is never held while sleeping.
Idle state is forgotten: a channel whose next slot is past (exactly like one never seen), a
workspace after FORGET_EVERY seconds without sends; memory stays bounded by what was active
in the last few seconds.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import NamedTuple

FORGET_EVERY = 10.0  # seconds between sweeps of idle state; a workspace idle this long resets
RECOVERY = 0.95  # each send after a slowdown wins back 5% of the gap between slots
MAX_SLOWDOWN = 8.0  # 429s slow a workspace down to an eighth of its rate at most


class Claim(NamedTuple):
    at: float  # clock time to wake up at
    granted: bool  # True: a send slot at `at` is yours; False: the channel is busy until `at`


@dataclass
class _Workspace:
    tat: float  # GCRA's "theoretical arrival time": where the steady-rate schedule has got to
    spacing: float  # the gap between slots now: 429s widen it, later sends narrow it back
    paused_until: float = -math.inf  # a 429's Retry-After: no send before this


class SlackPacer:
    def __init__(
        self,
        *,
        channel_interval: float = 1.0,
        workspace_rate: float = 4.0,
        workspace_burst: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if channel_interval < 0 or workspace_rate <= 0 or workspace_burst < 1:
            raise ValueError("channel_interval >= 0, workspace_rate > 0, workspace_burst >= 1")
        self.channel_interval = channel_interval
        self.spacing = 1.0 / workspace_rate  # between two workspace slots at the steady rate
        self.tolerance = (workspace_burst - 1) * self.spacing  # how far a burst runs ahead
        self.clock = clock
        # A threading lock, not an asyncio one: the critical sections never await, and the
        # arithmetic stays right if one pacer serves several event loops.
        self._lock = threading.Lock()
        self._channels: dict[tuple[str, str], float] = {}  # -> earliest start of the next send
        self._workspaces: dict[str, _Workspace] = {}
        self._next_sweep = -math.inf

    @asynccontextmanager
    async def turn(self, workspace: str, channel: str) -> AsyncIterator[None]:
        """`async with pacer.turn(team, channel): <send>`: waits for a slot; the channel's
        interval starts when the block ends (sent, failed or rate limited)."""
        await self.wait(workspace, channel)
        try:
            yield
        finally:
            self.finished(workspace, channel)

    async def wait(self, workspace: str, channel: str) -> None:
        """Sleep until a send to `channel` fits both limits; call `finished` after it."""
        while True:
            claim = self.claim(workspace, channel)
            await asyncio.sleep(max(claim.at - self.clock(), 0.0))
            # A 429 may have paused the workspace while we slept: claim again, after it.
            if claim.granted and not self.paused(workspace):
                return

    def claim(self, workspace: str, channel: str) -> Claim:
        """A workspace slot if the channel is free now; else when to ask again. A channel
        that must wait takes no workspace slot meanwhile, so it holds up no other channel."""
        with self._lock:
            now = self.clock()
            self._forget_idle(now)
            free_at = self._channels.get((workspace, channel), now)
            if free_at > now:
                return Claim(free_at, granted=False)
            state = self._workspace(workspace, now)
            at = max(now, state.tat - self.tolerance)
            state.tat = max(state.tat, at) + state.spacing
            state.spacing = max(self.spacing, state.spacing * RECOVERY)
            # Held until `finished` says when the send ended; a send to the same channel
            # claimed meanwhile waits at least this long.
            self._channels[(workspace, channel)] = at + self.channel_interval
            return Claim(at, granted=True)

    def finished(self, workspace: str, channel: str) -> None:
        """The send to `channel` ended: the next one may start `channel_interval` from now."""
        with self._lock:
            key, now = (workspace, channel), self.clock()
            self._channels[key] = max(self._channels.get(key, now), now + self.channel_interval)

    def back_off(self, workspace: str, seconds: float) -> None:
        """Slack answered 429 with `Retry-After: seconds`: no send to the workspace before
        then, and no burst after it. The first 429 of a pause also halves the workspace's
        rate: something else (another worker) posts there too, or the limit is lower."""
        with self._lock:
            now = self.clock()
            until = now + max(seconds, 0.0)
            state = self._workspace(workspace, now)
            if state.paused_until <= now:  # the 429s of sends already in flight count once
                state.spacing = min(state.spacing * 2, self.spacing * MAX_SLOWDOWN)
            state.paused_until = max(state.paused_until, until)
            state.tat = max(state.tat, until + self.tolerance)  # the next slot is `until`

    def paused(self, workspace: str) -> bool:
        with self._lock:
            state = self._workspaces.get(workspace)
            return state is not None and state.paused_until > self.clock()

    def _workspace(self, workspace: str, now: float) -> _Workspace:
        return self._workspaces.setdefault(workspace, _Workspace(tat=now, spacing=self.spacing))

    def _forget_idle(self, now: float) -> None:
        """Drop channels whose next slot is past (exactly like never seen) and workspaces idle
        for FORGET_EVERY (they start afresh, without a slowdown)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + FORGET_EVERY
        self._channels = {key: at for key, at in self._channels.items() if at > now}
        # tat >= paused_until + tolerance after a back_off, so tat alone says "still busy".
        idle_since = now - FORGET_EVERY
        self._workspaces = {key: w for key, w in self._workspaces.items() if w.tat > idle_since}
