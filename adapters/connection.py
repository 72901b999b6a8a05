"""One log line per change of a long-lived connection (Slack's Socket Mode, Discord's
gateway), whatever its library logs on the way."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from config import Unavailable

log = logging.getLogger(__name__)


class ConnectionChanges(logging.Filter):
    """Client libraries log each attempt to reconnect, a failed one with a traceback: on a
    network outage, one every few seconds. Attached to the library's loggers, this turns
    their records into one line when the connection is lost (and why) and one when it is
    back; the records themselves show at DEBUG only.

    Records are told apart by parts of their messages: `connected` (a connection was made),
    `lost` (mapped to why, for a record without an exception) and `churn` (the rest of the
    library's reconnecting). Failures before the first connection are start's to report:
    `last_failure` says why the latest attempt failed."""

    def __init__(
        self,
        name: str,
        *,
        connected: tuple[str, ...],
        lost: Mapping[str, str],
        churn: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.name = name
        self.connected, self.lost, self.churn = connected, lost, churn
        self.ever_connected = False
        self.lost_at: float | None = None
        self.last_failure = ""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(part in message for part in self.connected):
            if self.lost_at is not None:
                away = time.monotonic() - self.lost_at
                log.info("%s connection back after %.0f s", self.name, away)
            self.ever_connected, self.lost_at = True, None
        elif why := next((why for part, why in self.lost.items() if part in message), None):
            error = record.exc_info[1] if record.exc_info else None
            self.last_failure = Unavailable.why(error) if error is not None else why
            if self.ever_connected and self.lost_at is None:
                self.lost_at = time.monotonic()
                log.warning("%s connection lost (%s); reconnecting", self.name, self.last_failure)
        elif not any(part in message for part in self.churn):
            return True
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
