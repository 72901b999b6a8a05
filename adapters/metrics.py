"""Prometheus metrics: the process's `bot.observe.Observer`, and what `/metrics` serves.

Every metric is defined here, once, in prometheus_client's default registry, beside the
process, platform and garbage-collector metrics the library collects by itself.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

COMMANDS = Counter(
    "paperboy_commands",
    "Commands answered, by command and outcome (ok, usage, denied, error)",
    ["command", "outcome"],
)
# Slack wants an answer within 3 s; a slower one goes to the response_url.
COMMAND_SECONDS = Histogram(
    "paperboy_command_seconds",
    "Time the bot took to answer a command",
    ["command"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0),
)
DELIVERIES = Counter(
    "paperboy_deliveries",
    "Scheduled delivery attempts, by kind (channel, digest, weekly) and the state they left",
    ["kind", "state"],
)
SOURCE_ERRORS = Counter(
    "paperboy_source_errors",
    "Failed requests to a paper source (Hugging Face), by reason",
    ["source", "reason"],
)
RATE_LIMIT_WAITS = Counter(
    "paperboy_rate_limit_waits",
    "429 answers from a platform, each waited out before trying again",
    ["platform"],
)
RATE_LIMIT_SECONDS = Counter(
    "paperboy_rate_limit_wait_seconds",
    "Seconds of Retry-After waited out after 429 answers",
    ["platform"],
)


class PrometheusObserver:
    """What the bot reports, counted in the metrics above."""

    def command_finished(self, command: str, outcome: str, seconds: float) -> None:
        COMMANDS.labels(command, outcome).inc()
        COMMAND_SECONDS.labels(command).observe(seconds)

    def delivery_finished(self, kind: str, state: str) -> None:
        DELIVERIES.labels(kind, state).inc()

    def source_failed(self, source: str, reason: str) -> None:
        SOURCE_ERRORS.labels(source, reason).inc()

    def rate_limited(self, platform: str, seconds: float) -> None:
        RATE_LIMIT_WAITS.labels(platform).inc()
        RATE_LIMIT_SECONDS.labels(platform).inc(seconds)


def exposition() -> tuple[bytes, str]:
    """Every metric in Prometheus' text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
