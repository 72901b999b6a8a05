"""Operating the bot: readiness against a database that answers, refuses or hangs; /metrics
counting commands, deliveries, Hugging Face errors and rate-limit waits; JSON log lines.
Everything over real HTTP on 127.0.0.1 to the real server."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.logs import JsonFormatter
from adapters.metrics import PrometheusObserver, exposition
from adapters.ops import Operations
from adapters.slack.outbound import SlackOutbound
from adapters.slack.pacing import SlackPacer
from bot.delivery.runner import DeliveryPolicy
from bot.events import ChannelRef, Scope
from bot.messages import Message
from bot.observe import install
from bot.sources.huggingface import HuggingFaceClient, SourceUnavailable
from config.redact import MASK, install_redaction
from storage.db import create_engine
from storage.store import Store
from tests.core_fixtures import NOW, Harness
from tests.fakes.http import free_port
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.slack import BOT_TOKEN, FakeSlack
from tests.slack_fixtures import SlackHarness, all_text, serving


@pytest.fixture
def prometheus() -> Iterator[None]:
    """The Prometheus observer installed, as `paperboy` installs it at start."""
    uninstall = install(PrometheusObserver())
    yield
    uninstall()


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of sample `name` with `labels` in Prometheus' text format; 0 when absent."""
    for family in text_string_to_metric_families(metrics):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


def metrics_now() -> str:
    return exposition()[0].decode()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word, as a hung database does."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


# Readiness


async def test_ready_when_the_database_answers(store: Store) -> None:
    async with serving(Operations(store).asgi()) as http:
        ready = await http.get("/readyz")
        health = await http.get("/healthz")
        other = await http.get("/slack/events")
    assert (ready.status_code, ready.text) == (200, "ready")
    assert (health.status_code, health.text) == (200, "ok")
    assert other.status_code == 404  # the worker's port serves nothing else


async def test_not_ready_when_the_database_refuses_connections() -> None:
    url = f"postgresql+asyncpg://paperboy:pw-never-shown@127.0.0.1:{free_port()}/paperboy"
    store = Store(create_engine(url))
    try:
        async with serving(Operations(store).asgi()) as http:
            ready = await http.get("/readyz")
            health = await http.get("/healthz")
    finally:
        await store.close()
    assert ready.status_code == 503
    assert re.fullmatch(r"database unavailable \(\w+\)", ready.text), ready.text
    assert "pw-never-shown" not in ready.text
    assert (health.status_code, health.text) == (200, "ok")  # alive, just not ready


async def test_not_ready_when_the_database_does_not_answer(silent_port: int) -> None:
    store = Store(create_engine(f"postgresql+asyncpg://paperboy@127.0.0.1:{silent_port}/x"))
    try:
        async with serving(Operations(store, ready_timeout=0.3).asgi()) as http:
            ready = await http.get("/readyz")
    finally:
        await store.close()
    assert (ready.status_code, ready.text) == (503, "database did not answer within 0.3 s")


# Metrics


async def test_metrics_count_a_command_after_it_ran(
    slack_harness: SlackHarness, prometheus: None
) -> None:
    before = (await slack_harness.http.get("/metrics")).text
    answer = await slack_harness.command("follow observability")
    wrong = await slack_harness.command("flollow observability")
    response = await slack_harness.http.get("/metrics")
    after = response.text
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "observability" in all_text(answer) and "Unknown command" in all_text(wrong)
    for name, labels in [
        ("paperboy_commands_total", {"command": "follow", "outcome": "ok"}),
        ("paperboy_commands_total", {"command": "unparsed", "outcome": "usage"}),
        ("paperboy_command_seconds_count", {"command": "follow"}),
    ]:
        assert sample(after, name, **labels) == sample(before, name, **labels) + 1, (name, labels)


async def test_metrics_count_a_delivery_after_it_ran(harness: Harness, prometheus: None) -> None:
    sent = {"kind": "channel", "state": "sent"}
    async with serving(Operations(harness.store).asgi()) as http:
        before = (await http.get("/metrics")).text
        harness.clock[0] = NOW - timedelta(hours=5)
        await harness.say("channel on 09:00 UTC 3", user="admin", admin=True)
        harness.clock[0] = NOW
        worker = harness.bot.scheduler(worker="w1", policy=DeliveryPolicy(), clock=lambda: NOW)
        await worker.resync(catch_up=True)  # today's 09:00 post, missed: sent now
        worker.shutdown()
        after = (await http.get("/metrics")).text
    assert len(harness.platform.posts) == 4  # the header and 3 papers
    name = "paperboy_deliveries_total"
    assert sample(after, name, **sent) == sample(before, name, **sent) + 1


async def test_metrics_count_hugging_face_errors(
    fake_hf: FakeHuggingFace, prometheus: None
) -> None:
    labels = {"source": "huggingface", "reason": "server_error"}
    before = sample(metrics_now(), "paperboy_source_errors_total", **labels)
    fake_hf.faults["daily"] = ["503", "503"]
    async with HuggingFaceClient(fake_hf.base_url, max_retries=1, backoff_base=0) as client:
        with pytest.raises(SourceUnavailable):
            await client.daily(NOW.date())
    assert sample(metrics_now(), "paperboy_source_errors_total", **labels) == before + 2


async def test_metrics_count_rate_limit_waits(fake_slack: FakeSlack, prometheus: None) -> None:
    slack = {"platform": "slack"}
    waits, seconds = "paperboy_rate_limit_waits_total", "paperboy_rate_limit_wait_seconds_total"
    before = metrics_now()
    fake_slack.retry_after = "0"
    fake_slack.faults["chat.postMessage"] = ["429"]

    async def token(team: str) -> str:
        return BOT_TOKEN

    unpaced = SlackPacer(channel_interval=0, workspace_rate=100, workspace_burst=100)
    outbound = SlackOutbound(fake_slack.api_url, token, unpaced)
    try:
        await outbound.post(ChannelRef(Scope("slack", "T1"), "C1"), Message(text="after a 429"))
    finally:
        await outbound.close()
    after = metrics_now()
    assert [posted.text for posted in fake_slack.delivered] == ["after a 429"]
    assert sample(after, waits, **slack) == sample(before, waits, **slack) + 1
    assert f'{seconds}{{platform="slack"}}' in after


# Logs


def test_json_log_lines_parse_and_hold_no_secret() -> None:
    secret = "s3cret-signing-value"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("paperboy.test-json")
    logger.addHandler(handler)
    logger.propagate = False
    uninstall = install_redaction([secret])
    try:
        logger.warning("token %s and secret %s", "xoxb-1-2-abc", secret)
        try:
            raise RuntimeError(f"failed with {secret}\non two lines")
        except RuntimeError:
            logger.exception("request failed")
    finally:
        uninstall()
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 2  # one line each, though the exception spans several
    assert [set(entry) for entry in entries] == [
        {"time", "level", "logger", "message"},
        {"time", "level", "logger", "message", "exception"},
    ]
    first, second = entries
    assert (first["level"], first["logger"]) == ("WARNING", "paperboy.test-json")
    assert first["message"] == f"token {MASK} and secret {MASK}"
    assert first["time"].endswith("+00:00")
    assert "RuntimeError" in second["exception"] and MASK in second["exception"]
    assert secret not in stream.getvalue() and "xoxb-1-2-abc" not in stream.getvalue()


def test_the_worker_logs_json_lines_and_answers_on_its_metrics_port(
    tmp_path: Path, fake_slack: FakeSlack, fake_hf: FakeHuggingFace
) -> None:
    port = free_port()
    fake_slack.tokens["xoxb-json-logs-secret-token"] = "T1"  # checked with auth.test at start
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
        "PAPERBOY_HF_BASE_URL": fake_hf.base_url,
        "PAPERBOY_SLACK_API_URL": fake_slack.api_url,
        "SLACK_BOT_TOKEN": "xoxb-json-logs-secret-token",
        "PAPERBOY_SEMANTIC": "off",
        "PAPERBOY_LOG_FORMAT": "json",
        "PAPERBOY_LOG_LEVEL": "DEBUG",  # libraries' chatter too: every line must be JSON
        "PAPERBOY_HOST": "127.0.0.1",
        "PAPERBOY_METRICS_PORT": str(port),
    }
    output = tmp_path / "worker.log"
    with output.open("wb") as sink:
        worker = subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", "worker"], env=env, cwd=tmp_path,
            stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                break
            except httpx.TransportError:
                assert worker.poll() is None, output.read_text()
                assert time.monotonic() < deadline, "the metrics port did not open"
                time.sleep(0.1)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert metrics.status_code == 200 and "# TYPE paperboy_deliveries_total counter" in metrics.text
    assert (ready.status_code, ready.text) == (200, "ready")
    written = output.read_text()
    entries = [json.loads(line) for line in written.splitlines() if line.strip()]
    assert len(entries) > 5
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
    assert any(entry["message"].startswith("Operations endpoints") for entry in entries)
    assert "xoxb-json-logs-secret-token" not in written
