"""Log output: text lines for people, or one JSON object per line for log collectors
(PAPERBOY_LOG_FORMAT=json). Either way records are redacted as they are made
(`config.redact.install_redaction`), before any formatter sees them."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A line per migration step, per job added, per HTTP request made, and (faiss's loader, at
# the first search by meaning) a line per CPU-specific build it tries before the one it loads.
CHATTY = ("alembic", "apscheduler", "httpx", "faiss")


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message"}`, plus "exception" (the traceback) when the
    record has one; the time in UTC, ISO 8601."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Redaction formats the traceback into exc_text; this formats it only without that.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_format: str) -> None:
    """Every record at `level` or above to standard error, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=level, handlers=[handler])
    for chatty in CHATTY:
        logging.getLogger(chatty).setLevel(logging.WARNING)
