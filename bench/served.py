"""`paperboy serve` as operators run it (a subprocess, Slack over HTTP), wired to local fakes
of Slack and Hugging Face on 127.0.0.1, and a client that times `/papers` commands from the
signed request going in to the answer arriving: in the acknowledgement, or at the fake's
response_url when the answer was slow.

The client is aiohttp's: it plays Slack, so its own cost is not the bot's. httpx spent about
2.5 ms more per request on this path (p50 of `help`: 4.0 ms against 1.6 ms, 2 cores)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.corpus import ARCHIVE, ROOT
from tests.fakes.http import free_port
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import BOT_TOKEN, FakeSlack, sign, slash_command_body

SIGNING_SECRET = "bench-signing-secret"
ANSWER_TIMEOUT = 10.0
HF_SEARCH_DAYS = 10  # the archive's newest days answer the fake's searches


def fake_huggingface() -> FakeHuggingFace:
    """A fake Hugging Face whose search knows the archive's newest days (when present)."""
    fake = FakeHuggingFace().start()
    for path in sorted(ARCHIVE.glob("*.json"))[-HF_SEARCH_DAYS:]:
        fake.days[path.stem] = json.loads(path.read_text())
    return fake


@dataclass
class Timed:
    """One command's outcome: seconds from sending it to its answer, or what went wrong."""

    seconds: float
    error: str | None = None
    answer: Any = None


@dataclass
class SlackClient:
    """Sends signed slash commands and takes their answers from the acknowledgement, or waits
    for them at the fake's response_url."""

    http: aiohttp.ClientSession
    base_url: str
    fake: FakeSlack
    _waiting: dict[str, asyncio.Future[tuple[float, Any]]] = field(default_factory=dict)
    _names: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        loop = asyncio.get_running_loop()

        def arrived(name: str, body: Any) -> None:  # on the fake's server thread
            at = time.perf_counter()
            loop.call_soon_threadsafe(self._resolve, name, at, body)

        self.fake.on_response = arrived

    def _resolve(self, name: str, at: float, body: Any) -> None:
        future = self._waiting.pop(name, None)
        if future is not None and not future.done():
            future.set_result((at, body))

    async def command(self, text: str, *, user: str = "U1", channel: str = "C1") -> Timed:
        name = f"r{next(self._names)}"
        body = slash_command_body(
            text, user_id=user, channel_id=channel, response_url=self.fake.response_url(name)
        )
        answer: asyncio.Future[tuple[float, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[name] = answer
        start = time.perf_counter()
        try:
            async with self.http.post(
                f"{self.base_url}/slack/events",
                data=body.encode(),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    **sign(SIGNING_SECRET, body),
                },
            ) as response:
                if response.status != 200:
                    return Timed(time.perf_counter() - start, f"HTTP {response.status}")
                acknowledgement = await response.read()
            if acknowledgement:
                at, payload = time.perf_counter(), json.loads(acknowledgement)
            else:
                at, payload = await asyncio.wait_for(answer, ANSWER_TIMEOUT)
        except (aiohttp.ClientError, TimeoutError) as error:
            return Timed(time.perf_counter() - start, type(error).__name__)
        finally:
            self._waiting.pop(name, None)
        if "went wrong" in json.dumps(payload):
            return Timed(at - start, "apology", payload)
        return Timed(at - start, None, payload)


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    client: SlackClient
    fake_slack: FakeSlack
    fake_hf: FakeHuggingFace
    started_in: float


@asynccontextmanager
async def served(database: Path, *, connections: int = 100) -> AsyncIterator[Served]:
    """`paperboy serve` on `database` (a SQLite file) until the block ends."""
    fake_slack = FakeSlack().start()
    fake_slack.admins.add("U1")
    fake_hf = fake_huggingface()
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if "proxy" not in k.lower()},
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "PAPERBOY_SLACK_API_URL": fake_slack.api_url,
        "PAPERBOY_HF_BASE_URL": fake_hf.base_url,
        "PAPERBOY_HOST": "127.0.0.1",
        "PORT": str(port),
        "PAPERBOY_LOG_LEVEL": "WARNING",
    }
    start = time.perf_counter()
    log = open(database.with_suffix(".log"), "wb")  # noqa: SIM115 (closed below)
    # BENCH_PROFILE=<file>: the server runs under cProfile, its stats written there at exit.
    profile = (
        ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]]
        if "BENCH_PROFILE" in os.environ
        else []
    )
    process = subprocess.Popen(
        [sys.executable, *profile, "-m", "adapters.cli", "serve"],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections),
            timeout=aiohttp.ClientTimeout(total=ANSWER_TIMEOUT),
        ) as http:
            await _until_healthy(http, base_url, process)
            started_in = time.perf_counter() - start
            client = SlackClient(http, base_url, fake_slack)
            yield Served(process, client, fake_slack, fake_hf, started_in)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        fake_slack.stop()
        fake_hf.stop()


async def _until_healthy(
    http: aiohttp.ClientSession, base_url: str, process: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            async with http.get(f"{base_url}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"paperboy serve exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("paperboy serve did not start in 60 s")
        await asyncio.sleep(0.05)
