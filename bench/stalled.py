"""Stalled uploads: 300 connections that start a large Slack request and stop sending.

What is measured: the real `paperboy serve` (bench/served.py: a subprocess on 127.0.0.1, an
empty SQLite file in a temporary directory, a made-up bot token and signing secret, the fake
Slack and Hugging Face), a fresh one per case. At rest (once idle), its RSS; then N
connections opened STAGGER s apart, each sending the headers of a POST to /slack/events and
then body bytes short of what it declares, then nothing: each is held open until the server
closes it or HOLD seconds pass. Cases:

- signed, 1 MiB: signature headers of the right form with a wrong signature, Content-Length
  1,048,576, 1,000,000 bytes sent;
- unsigned, 1 MiB: no signature headers, the same length and bytes;
- signed, at the cap: signature headers of the right form, Content-Length MAX_BODY_BYTES, all
  but 16 KiB of it sent (the most a request can make the server hold);
- headers unfinished: the request line only.

Meanwhile a correctly signed `/papers help` goes in on a new connection every LEGIT_EVERY
seconds (and one after the attack ends): answered = HTTP 200 within Slack's 3 s. RSS is
sampled every SAMPLE_EVERY s with psutil when it is installed (else /proc/<pid>/status);
the peak is the larger of the samples and the kernel's VmHWM during the attack. "After" is
the RSS 2 s after the last connection closed.
"""

from __future__ import annotations

import asyncio
import math
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from adapters.slack.server import MAX_BODY_BYTES
from bench.common import Section, percentile
from bench.memory import mb, status_kb
from bench.served import SIGNING_SECRET, HttpConnection, http_request, served, until_idle
from tests.fakes.slack import sign, slash_command_body

try:
    import psutil
except ImportError:  # an optional test dependency: /proc instead
    psutil = None

N = 300
STAGGER = 0.005  # seconds between connections opening: each one's headers are in before the next
HOLD = 30.0  # seconds a stalled connection is kept open at most, then closed by the client
LEGIT_EVERY = 2.0
SLACK_WAITS = 3.0  # Slack's own timeout for an acknowledgement
SAMPLE_EVERY = 0.05
CHUNK = 64 * 1024
WELL_FORMED = {"X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": "v0=" + "0" * 64}
CASES = {  # name: (signature headers, Content-Length, body bytes sent: None, not the headers)
    "signed, 1 MiB": (WELL_FORMED, 1_048_576, 1_000_000),
    "unsigned, 1 MiB": ({}, 1_048_576, 1_000_000),
    "signed, at the cap": (WELL_FORMED, MAX_BODY_BYTES, MAX_BODY_BYTES - 16 * 1024),
    "headers unfinished": (WELL_FORMED, 1_048_576, None),
}
STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")


@dataclass
class Held:
    """One stalled connection: seconds from connecting to the server's answer and to its
    closing the connection (None: not by the end of the hold)."""

    status: int | None = None
    answered: float | None = None
    closed: float | None = None
    refused: str | None = None  # connecting failed


@dataclass
class Case:
    name: str
    rest: float  # kB
    peak: float
    after: float
    held: list[Held]
    legit: list[tuple[float, str, float]] = field(default_factory=list)  # at, outcome, seconds


def rss_kb(pid: int) -> float:
    if psutil is not None:
        try:
            return psutil.Process(pid).memory_info().rss / 1024
        except psutil.Error:
            return math.nan
    return float(status_kb(pid).get("VmRSS", math.nan))


async def hold(
    port: int, headers: dict[str, str], length: int, sent: int | None, end: float, delay: float
) -> Held:
    """Send a request's headers and `sent` of its `length` body bytes (None: the request line
    only), then stall until the server closes the connection or `end` (monotonic) passes."""
    held = Held()
    await asyncio.sleep(delay)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except (OSError, TimeoutError) as error:
        held.refused = type(error).__name__
        return held
    start = time.monotonic()
    lines = ["POST /slack/events HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {length}",
             "Content-Type: application/x-www-form-urlencoded",
             *(f"{name}: {value}" for name, value in headers.items())]  # fmt: skip
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def send() -> None:
        if sent is None:
            writer.write(head[: head.index(b"\r\n") + 2])
            return
        writer.write(head)
        for offset in range(0, sent, CHUNK):
            writer.write(b"a" * min(CHUNK, sent - offset))
            await writer.drain()

    async def read() -> None:
        response = b""
        while data := await reader.read(65536):
            response += data[:64]
            if held.status is None and (match := STATUS.match(response)):
                held.status, held.answered = int(match[1]), time.monotonic() - start

    sender = asyncio.create_task(send())
    try:
        await asyncio.wait_for(read(), max(0.0, end - time.monotonic()))
        held.closed = time.monotonic() - start
    except TimeoutError:
        pass  # still open when the hold ended
    except OSError:  # reset by the server
        held.closed = time.monotonic() - start
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()
    return held


async def legit(port: int, response_url: str) -> tuple[str, float]:
    """A correctly signed `/papers help` on a new connection: its outcome and seconds."""
    body = slash_command_body("help", response_url=response_url)
    request = http_request("POST", "/slack/events", f"127.0.0.1:{port}", {
        "Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, body)},
        body.encode())  # fmt: skip
    start = time.monotonic()
    connection: HttpConnection | None = None
    try:
        connection = await asyncio.wait_for(HttpConnection.open("127.0.0.1", port), 10)
        status, _ = await asyncio.wait_for(connection.exchange(request), 10)
        outcome = f"HTTP {status}"
    except (OSError, TimeoutError) as error:
        outcome = type(error).__name__
    finally:
        if connection is not None:
            connection.close()
    return outcome, time.monotonic() - start


async def attack(name: str, database: Path) -> Case:
    headers, length, sent = CASES[name]
    async with served(database) as bot:
        pid, port = bot.process.pid, bot.client.port
        await until_idle(bot.process)
        rest = rss_kb(pid)
        samples: list[float] = []
        done = asyncio.Event()

        async def sample() -> None:
            while not done.is_set():
                samples.append(rss_kb(pid))
                await asyncio.sleep(SAMPLE_EVERY)

        sampler = asyncio.create_task(sample())
        began = time.monotonic()
        end = began + HOLD
        stalled = asyncio.gather(
            *(hold(port, headers, length, sent, end, n * STAGGER) for n in range(N))
        )
        case = Case(name, rest, math.nan, math.nan, [])
        url = bot.fake_slack.response_url("legit")
        while time.monotonic() + LEGIT_EVERY < end:
            await asyncio.sleep(LEGIT_EVERY)
            case.legit.append((time.monotonic() - began, *await legit(port, url)))
        case.held = await stalled
        done.set()
        await sampler
        case.legit.append((time.monotonic() - began, *await legit(port, url)))
        await asyncio.sleep(2.0)
        case.after = rss_kb(pid)
        case.peak = max([*samples, float(status_kb(pid).get("VmHWM", math.nan))])
    return case


def seconds(values: list[float]) -> str:
    if not values:
        return ""
    return f"{percentile(values, 50):.1f} / {max(values):.1f} s"


def run(quick: bool = False) -> Section:
    with tempfile.TemporaryDirectory(prefix="bench-stalled-") as tmp:
        cases = [asyncio.run(attack(name, Path(tmp) / f"{n}.db")) for n, name in enumerate(CASES)]
    out = Section(f"Stalled uploads: {N} connections to `paperboy serve`")
    for case in cases:
        answered = [at for at, outcome, took in case.legit if outcome == "HTTP 200"
                    and took <= SLACK_WAITS]  # fmt: skip
        out.target(
            f"{case.name}: every signed request answered within {SLACK_WAITS:.0f} s during "
            f"the attack ({len(answered)} of {len(case.legit)})",
            len(answered) == len(case.legit),
        )
        out.target(
            f"{case.name}: RSS after the connections closed within 20 MB of rest "
            f"(+{mb(case.after - case.rest)} MB)",
            case.after - case.rest <= 20 * 1024,
        )
    out.add(__doc__.split("\n\n", 1)[1].strip() if __doc__ else "")
    out.add()
    rows = []
    for case in cases:
        statuses: dict[int, list[float]] = {}
        for held in case.held:
            if held.status is not None and held.answered is not None:
                statuses.setdefault(held.status, []).append(held.answered)
        closed = [held.closed for held in case.held if held.closed is not None]
        rows.append([
            case.name, mb(case.rest), mb(case.peak), mb(case.after),
            ", ".join(f"{status} x{len(took)} ({seconds(took)})"
                      for status, took in sorted(statuses.items())) or "none",
            f"{len(closed)} ({seconds(closed)})" if closed else "0",
            sum(held.closed is None and held.refused is None for held in case.held),
            sum(held.refused is not None for held in case.held),
            legit_summary(case),
        ])  # fmt: skip
    out.table(
        ["case", "RSS at rest MB", "peak MB", "after MB", "answers (median / max after "
         "connecting)", "closed by the server (median / max)", f"open at {HOLD:.0f} s",
         "refused", "signed `help` during / after"],
        rows,
    )  # fmt: skip
    out.add(
        "The limits, in the order a request meets them: MAX_CONNECTIONS "
        "(adapters/http.py, uvicorn's limit_concurrency, 1000): a request arriving while 1000 "
        "connections are open gets 503 and its connection closed; REQUEST_SECONDS (15 s): a "
        "connection has that long to deliver each request whole, from its opening or the "
        "previous answer, else it is closed (headers that never end); the signature headers: "
        "without Slack's of the right form, 401 before the body is read; MAX_BODY_BYTES "
        "(512 KiB): a longer declared body gets 413 unread; BODIES_AT_ONCE (8 MiB): a body "
        "over SHORT_BODY_BYTES (16 KiB) that would take the bodies being read past it gets "
        "503 unread; BODY_SECONDS (10 s): a body not "
        "in by then gets 408. A request answered before it arrived whole (401, 413, 408) gets "
        "its answer with the connection's write side shut (the client reads the end of the "
        "connection: counted as closed above), has the rest of its body dropped for at most "
        "LINGER_SECONDS (2 s) and is then closed. A body is held whole in memory until its "
        "signature is checked, so long ones at most BODIES_AT_ONCE together: the case at the "
        "cap shows that peak, and what the allocator keeps of it afterwards."
    )
    out.add()
    return out


def legit_summary(case: Case) -> str:
    *during, (_, last, last_took) = case.legit
    ok = [took for _, outcome, took in during if outcome == "HTTP 200"]
    other = sorted({outcome for _, outcome, _ in during if outcome != "HTTP 200"})
    text = f"{len(ok)}/{len(during)} answered"
    if ok:
        text += f" (median {percentile(ok, 50) * 1000:.0f} ms, max {max(ok) * 1000:.0f} ms)"
    if other:
        text += f", else {', '.join(other)}"
    return f"{text}; after: {last} in {last_took * 1000:.0f} ms"
