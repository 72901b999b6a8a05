"""`paperboy serve` as operators run it (a subprocess, Slack over HTTP), wired to local fakes
of Slack and Hugging Face on 127.0.0.1, and a client that times `/papers` commands from the
signed request going in to the answer arriving: in the acknowledgement, or at the fake's
response_url when the answer was slow.

The client plays Slack, so its own cost is not the bot's: each request is signed and encoded
before its clock starts, written whole to a kept-alive connection, and its response parsed by
httptools (uvicorn's parser). aiohttp's client added 0.5-0.8 ms per request on this path (p50
of `help`: 1.56 ms against 1.04 ms; `topic watermark` at 100,000 papers: 9.07 against
8.25 ms; 2 cores), httpx's 2.5 ms."""

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

import httptools

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


class _Response:
    """One response's body as httptools parses it (it calls these methods)."""

    def __init__(self) -> None:
        self.body = bytearray()
        self.complete = False

    def on_body(self, chunk: bytes) -> None:
        self.body.extend(chunk)

    def on_message_complete(self) -> None:
        self.complete = True


class HttpConnection:
    """One kept-alive HTTP/1.1 connection: a request out, its whole response back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.reusable = True  # until a response says the server closes the connection

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        return cls(*await asyncio.open_connection(host, port))

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send `request` (complete, headers and body) and read its response: status, body."""
        response = _Response()
        parser = httptools.HttpResponseParser(response)
        self.writer.write(request)
        while not response.complete:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("connection closed before the response ended")
            parser.feed_data(data)
        self.reusable = parser.should_keep_alive()
        return parser.get_status_code(), bytes(response.body)

    def close(self) -> None:
        self.writer.close()


def http_request(method: str, path: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class SlackClient:
    """Sends signed slash commands and takes their answers from the acknowledgement, or waits
    for them at the fake's response_url. Concurrent commands take connections of their own."""

    host: str
    port: int
    fake: FakeSlack
    _idle: list[HttpConnection] = field(default_factory=list)
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
        request = http_request(
            "POST",
            "/slack/events",
            f"{self.host}:{self.port}",
            {"Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, body)},
            body.encode(),
        )
        answer: asyncio.Future[tuple[float, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[name] = answer
        connection = self._idle.pop() if self._idle else None
        start = time.perf_counter()
        try:
            if connection is None:
                connection = await HttpConnection.open(self.host, self.port)
                start = time.perf_counter()  # connecting is not the command's time
            status, acknowledgement = await asyncio.wait_for(
                connection.exchange(request), ANSWER_TIMEOUT
            )
            if connection.reusable:
                self._idle.append(connection)
            else:
                connection.close()
            if status != 200:
                return Timed(time.perf_counter() - start, f"HTTP {status}")
            if acknowledgement:
                at, payload = time.perf_counter(), json.loads(acknowledgement)
            else:
                at, payload = await asyncio.wait_for(answer, ANSWER_TIMEOUT)
        except (OSError, TimeoutError, httptools.HttpParserError) as error:
            if connection is not None:
                connection.close()  # its state is unknown: not reused
            return Timed(time.perf_counter() - start, type(error).__name__)
        finally:
            self._waiting.pop(name, None)
        if "went wrong" in json.dumps(payload):
            return Timed(at - start, "apology", payload)
        return Timed(at - start, None, payload)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    client: SlackClient
    fake_slack: FakeSlack
    fake_hf: FakeHuggingFace
    started_in: float


@asynccontextmanager
async def served(database: Path, *, semantic: bool = False) -> AsyncIterator[Served]:
    """`paperboy serve` on `database` (a SQLite file) until the block ends; search by meaning
    on only when `semantic` (PAPERBOY_SEMANTIC=on: the database should hold the papers'
    vectors, or the server embeds up to 500 of them at start), else off whatever the
    environment says."""
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
        "PAPERBOY_SEMANTIC": "on" if semantic else "off",
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
    client: SlackClient | None = None
    try:
        await _until_healthy(port, process)
        started_in = time.perf_counter() - start
        client = SlackClient("127.0.0.1", port, fake_slack)
        yield Served(process, client, fake_slack, fake_hf, started_in)
    finally:
        if client is not None:
            client.close()
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        fake_slack.stop()
        fake_hf.stop()


async def _until_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    request = http_request("GET", "/healthz", f"127.0.0.1:{port}", {}, b"")
    while True:
        try:
            connection = await HttpConnection.open("127.0.0.1", port)
            try:
                status, _ = await asyncio.wait_for(connection.exchange(request), 5)
            finally:
                connection.close()
            if status == 200:
                return
        except (OSError, TimeoutError, httptools.HttpParserError):
            pass
        if process.poll() is not None:
            raise RuntimeError(f"paperboy serve exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("paperboy serve did not start in 60 s")
        await asyncio.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time `pid` has used (nan once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def until_idle(
    process: subprocess.Popen[bytes],
    *,
    window: float = 0.5,
    most: float = 0.02,
    timeout: float = 120.0,
) -> float:
    """Wait until `process` uses less than `most` CPU seconds in `window` seconds (its work
    in the background at start, such as reading the stored vectors, is done); the seconds
    waited."""
    start = time.monotonic()
    before = cpu_seconds(process.pid)
    while True:
        await asyncio.sleep(window)
        now = cpu_seconds(process.pid)
        if now - before < most:
            return time.monotonic() - start
        if process.poll() is not None:
            raise RuntimeError(f"paperboy serve exited with {process.returncode}")
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"paperboy serve still busy after {timeout:.0f} s")
        before = now
