"""Keep secrets out of log output, whichever library writes the record.

The product never logs a secret itself, but at DEBUG libraries log what they send and receive:
slack_sdk logs every Web API response body (oauth.v2.access answers with the new workspace's
bot token), SQLAlchemy and aiosqlite log SQL parameters (the installation store saves that
token). `install_redaction` wraps the log record factory, so every record, from any logger and
for any handler (uvicorn has its own), has the configured secrets, anything shaped like a Slack
token and the password of any URL replaced before it is formatted.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.engine import make_url

from config.settings import Settings

MASK = "[redacted]"
MIN_SECRET = 6  # shorter values would mask ordinary words; no real secret is that short
# Bot, user, app-level, refresh and configuration tokens: xoxb-, xoxp-, xapp-, xoxe-, ...
_SLACK_TOKEN = re.compile(r"\b(?:xox[a-z]|xapp)-[0-9A-Za-z-]+")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^@/\s]+@", re.IGNORECASE)
# Whoever holds one can answer as the bot for a while: a Discord interaction token (base64 of
# "interaction:<id>:..."; in webhook and callback URLs too) for 15 minutes, a Slack
# response_url for 30; an incoming webhook (hooks.slack.com/services/..., which an OAuth
# install may bring) posts as the app for good.
_INTERACTION_TOKEN = re.compile(r"\baW50ZXJhY3Rpb246[0-9A-Za-z_\-.:=+]+")
_SLACK_HOOK_URL = re.compile(
    r"(hooks\.slack\.com/(?:commands|actions|services|workflows|triggers)/)[^\s\"'<>,]+"
)
# The one-time code of an OAuth install (and its state) in the redirect's query, in the query
# as bolt logs it parsed ({'code': ['...']}) and in the body slack_sdk logs when it exchanges
# the code for a token.
_OAUTH_CODE = re.compile(
    r"""((?:[?&]|\b)(?:code|state)=|['"](?:code|state)['"]:\s*\[?\s*['"])[^&\s'"]+"""
)


def settings_secrets(settings: Settings) -> list[str]:
    """The secret values in `settings`: tokens, signing and client secrets, the DB password."""
    secrets = [
        value.get_secret_value()
        for value in (
            settings.slack_bot_token,
            settings.slack_signing_secret,
            settings.slack_app_token,
            settings.slack_client_secret,
            settings.discord_token,
        )
        if value is not None
    ]
    try:
        password = make_url(settings.database_url).password
    except Exception:  # an unparseable URL fails later, with its own message
        password = None
    if password:
        secrets.append(str(password))
    return secrets


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        text = _SLACK_TOKEN.sub(MASK, text)
        text = _INTERACTION_TOKEN.sub(MASK, text)
        text = _SLACK_HOOK_URL.sub(rf"\g<1>{MASK}", text)
        text = _OAUTH_CODE.sub(rf"\g<1>{MASK}", text)
        return _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)

    def scrub(self, record: logging.LogRecord) -> None:
        """Redact the record's message, exception and stack in place."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it when the record is emitted
            return
        clean = self(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self(record.exc_text)
        if record.stack_info:
            record.stack_info = self(record.stack_info)


def install_redaction(secrets: Iterable[str]) -> Callable[[], None]:
    """Redact `secrets` (and Slack tokens, URL passwords) from every log record from now on;
    returns a function that undoes it."""
    redact = Redactor(secrets)
    previous = logging.getLogRecordFactory()

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact.scrub(record)
        return record

    logging.setLogRecordFactory(make_record)

    def uninstall() -> None:
        if logging.getLogRecordFactory() is make_record:
            logging.setLogRecordFactory(previous)

    return uninstall
