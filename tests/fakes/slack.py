"""Fake Slack for tests: a Web API server, a Socket Mode server and request builders.

`FakeSlack` serves the Web API on 127.0.0.1 (real sockets; point
`AsyncWebClient(base_url=fake.api_url)` at it) plus `response_url` endpoints. It records every
call whatever the transport slack_sdk picks: JSON bodies (`chat.postMessage`), form bodies
(`oauth.v2.access`), query arguments on POST (`auth.test`, `chat.delete`, `conversations.open`,
`apps.connections.open`: the SDK's `params=`) or on GET (`users.info`). Faults queue per method.
Opt-in, `enforce_limits()` makes chat.postMessage rate limited like Slack's (per channel and
per workspace), answering 429 to what exceeds them.

`FakeSocketMode` is a Socket Mode WebSocket server (aiohttp, own thread and event loop): say
hello, push envelopes, collect the client's acknowledgements.

The builders (`slash_command_body`, `event_body`, `block_action_body`,
`message_shortcut_body`, ...) make the bodies Slack would send to the app, and `sign()` the
headers that make the real bolt app accept them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aiohttp import WSMsgType, web
from slack_sdk.signature import SignatureVerifier

from tests.fakes.http import JsonHandler, QuietServer

BOT_TOKEN = "xoxb-T1"  # the token `FakeSlack.tokens` knows by default (team T1)
APP_TOKEN = "xapp-1-A1-fake"  # an app-level token for Socket Mode
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
APP_ID = "A1"
TEAM_NAMES = {"T1": "Team"}
_NOWHERE = "http://127.0.0.1:9/response/unset"  # a default response_url that never leaves the host
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


@dataclass(frozen=True)
class Limits:
    """chat.postMessage limits, as `FakeSlack.enforce_limits` applies them."""

    channel_interval: float  # seconds between two messages in one channel...
    jitter: float  # ...less this much, so a correct pacer's timer jitter is not flagged
    workspace_rate: float  # messages per second per team (token bucket)
    workspace_burst: int  # the bucket's size


@dataclass(frozen=True)
class Posted:
    """A message chat.postMessage delivered (answered ok)."""

    team: str
    channel: str
    text: str
    blocks: Any
    ts: str
    at: float  # time.monotonic() when it was accepted


@dataclass(frozen=True)
class RateLimited:
    """A chat.postMessage refused for exceeding `limits` ("channel" or "workspace")."""

    team: str
    channel: str
    limit: str
    at: float  # time.monotonic() when it was refused


@dataclass(frozen=True)
class SlackCall:
    """One Web API call as the fake received it.

    `args` merges query and body arguments, minus `token`; form and query values are strings
    (slack_sdk sends booleans in `params` as "1"/"0"), JSON values keep their types. For
    `oauth.v2.access` the HTTP Basic credentials appear as `client_id`/`client_secret`.
    `headers` has lower-cased names. `verb` is "GET" or "POST"; `encoding` is "json", "form"
    or "query" (no body: everything in the URL).
    """

    method: str
    args: dict[str, Any]
    token: str | None
    headers: dict[str, str]
    verb: str = "POST"
    encoding: str = "query"


class FakeSlack:
    """The fake Slack Web API. Mutate `tokens`, `admins`, `owners`, `oauth_grants`,
    `socket_url`, `faults`, `retry_after` and `replies` from tests.

    Faults: `faults[method]` is consumed in order before the method answers normally. "429" is
    HTTP 429 with `Retry-After: <retry_after>` and `{"ok": false, "error": "ratelimited"}`; a
    three-digit status ("500", "503") is that status with a JSON error body; "disconnect" closes
    the connection without an answer, as a network failure does; anything else
    ("channel_not_found", "not_in_channel", "token_revoked", ...) is HTTP 200 with
    `{"ok": false, "error": <it>}`. Key `"response:<name>"` queues faults for a response_url.

    Workspaces: `tokens` maps bot tokens to team ids (unknown tokens act for T1);
    `add_workspace(team)` installs one. Every delivered chat.postMessage is kept in
    `delivered`, with its team. After `enforce_limits(...)`, a post that comes too soon after
    the last one delivered in its channel, or finds its team's bucket empty, gets HTTP 429
    (`Retry-After`: whole seconds until it would pass) and is not delivered; `rate_limited`
    lists those refusals (faults are not in it).

    History: delivered messages (with their `metadata`) are kept per channel and answered by
    `conversations.history` (`oldest`, `latest`, `inclusive`, `limit`, `cursor`; metadata
    only with `include_all_metadata`, as Slack does). `add_message(...)` records a message
    someone else posted, or a reply inside a thread: replies are not in the channel's history,
    as on Slack, and `conversations.replies` (`ts` of the parent or of a reply) answers the
    parent first, whatever the window, then the replies within `oldest`/`latest`, oldest
    first: `limit` messages in all, the parent counted.
    `delete_message(...)` removes one.

    Files (`files_upload_v2`): files.getUploadURLExternal hands out a file id and an
    `upload_url` on this fake; a POST of the bytes there is kept in `uploads` (file id ->
    bytes) and logged as a call to method "upload"; files.completeUploadExternal shares
    uploaded files into `channel_id` (each kept in `shared_files` with its title and
    `initial_comment`) and refuses ids that were never uploaded.

    `stall_answers_after(n)`: once `n` messages are delivered, every further chat.postMessage
    is delivered but not answered until `release_stalled()`, as when the sender dies
    mid-request; `stalled` counts them.
    """

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {BOT_TOKEN: "T1"}  # token -> team_id, for auth.test
        self.admins: set[str] = set()
        self.owners: set[str] = set()
        self.oauth_grants: dict[str, str] = {}  # code -> team_id, for oauth.v2.access
        self.oauth_user = "U1"  # the installing user in OAuth answers
        self.oauth_scope = "chat:write,commands,reactions:read,im:write,users:read"
        self.socket_url = "ws://127.0.0.1:1/link"  # apps.connections.open; refuses by default
        self.faults: dict[str, list[str]] = defaultdict(list)
        self.retry_after = "1"
        self.replies: dict[str, dict[str, Any]] = {}  # method -> fixed answer (after faults)
        self.calls_log: list[SlackCall] = []
        self.limits: Limits | None = None
        self.delivered: list[Posted] = []
        self.rate_limited: list[RateLimited] = []
        self._last_post: dict[tuple[str, str], float] = {}  # (team, channel) -> delivered at
        self._buckets: dict[str, tuple[float, float]] = {}  # team -> (tokens, as of)
        self.uploads: dict[str, bytes] = {}  # file id -> the bytes POSTed to its upload_url
        self.shared_files: list[dict[str, Any]] = []  # completed uploads, with their channel
        self._file_names: dict[str, str] = {}  # file id -> filename, from getUploadURLExternal
        self.history: dict[str, list[dict[str, Any]]] = defaultdict(list)  # channel -> messages
        # (channel, thread_ts) -> the thread's replies
        self.threads: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self.stalled = 0
        self._stall_after: int | None = None
        self._release = threading.Event()
        self.responses: list[tuple[str, Any]] = []  # (name, JSON body) posted to response_urls
        # Called on the server thread as each response_url POST arrives (benchmarks time them).
        self.on_response: Callable[[str, Any], None] | None = None
        self._ts = 0  # the last ts handed out, in microseconds
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-slack",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        """For `AsyncWebClient(base_url=...)`; ends with `/api/` as slack_sdk expects."""
        return f"{self.base_url}/api/"

    def response_url(self, name: str) -> str:
        """A response_url whose POSTs land in `responses` as `(name, body)`."""
        return f"{self.base_url}/response/{name}"

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def add_workspace(self, team: str) -> str:
        """Install the app in `team`: its bot token (`xoxb-<team>`), known to auth.test."""
        token = f"xoxb-{team}"
        with self._lock:
            self.tokens[token] = team
        return token

    def add_message(
        self, channel: str, text: str, *, user: str = "U2", thread_ts: str | None = None,
        **fields: Any,
    ) -> str:  # fmt: skip
        """Record a message `user` posted in `channel` (a reply inside the thread of
        `thread_ts` when given) with `text` and any other `fields` (`blocks`, ...); its ts."""
        message = {"type": "message", "user": user, "text": text, "ts": self._next_ts(), **fields}
        with self._lock:
            if thread_ts is None:
                self.history[channel].append(message)
            else:
                self.threads[(channel, thread_ts)].append(message | {"thread_ts": thread_ts})
        return str(message["ts"])

    def delete_message(self, channel: str, ts: str) -> None:
        with self._lock:
            for messages in [self.history[channel], *self.threads.values()]:
                messages[:] = [m for m in messages if m["ts"] != ts]

    def enforce_limits(
        self,
        *,
        channel_interval: float = 1.0,
        jitter: float = 0.05,
        workspace_rate: float = 5.0,
        workspace_burst: int = 10,
    ) -> None:
        """Rate limit chat.postMessage from now on (Slack's defaults: 1 s per channel, and
        "several hundred messages per minute" per workspace)."""
        with self._lock:
            self.limits = Limits(channel_interval, jitter, workspace_rate, workspace_burst)

    def calls(self, method: str | None = None) -> list[SlackCall]:
        """Recorded calls, in arrival order; only those to `method` if given."""
        with self._lock:
            return [c for c in self.calls_log if method is None or c.method == method]

    def responses_to(self, name: str) -> list[Any]:
        """Bodies posted to `response_url(name)`."""
        with self._lock:
            return [body for n, body in self.responses if n == name]

    async def wait_for_calls(
        self, method: str, count: int = 1, timeout: float = 5.0
    ) -> list[SlackCall]:
        """Wait (without blocking the event loop) until `method` was called `count` times."""
        deadline = time.monotonic() + timeout
        while len(found := self.calls(method)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{method}: {len(found)} of {count} calls after {timeout}s")
            await asyncio.sleep(0.01)
        return found

    async def wait_for_responses(
        self, name: str, count: int = 1, timeout: float = 5.0
    ) -> list[Any]:
        """Wait (without blocking the event loop) for `count` posts to `response_url(name)`."""
        deadline = time.monotonic() + timeout
        while len(found := self.responses_to(name)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"response {name}: {len(found)} of {count} after {timeout}s")
            await asyncio.sleep(0.01)
        return found

    # Called from handler threads.

    def _record(self, call: SlackCall) -> None:
        with self._lock:
            self.calls_log.append(call)

    def _next_fault(self, key: str) -> str | None:
        with self._lock:
            queue = self.faults.get(key)
            return queue.pop(0) if queue else None

    def _team(self, token: str | None) -> str:
        return self.tokens.get(token or "", "T1")

    def _admit(self, call: SlackCall) -> str | None:
        """None when `call` (a chat.postMessage) is within the limits, which then count it;
        else the `Retry-After` it gets."""
        limits = self.limits
        if limits is None:
            return None
        team, channel = self._team(call.token), str(call.args.get("channel"))
        with self._lock:
            now = time.monotonic()  # under the lock: concurrent posts are judged in order
            last = self._last_post.get((team, channel))
            tokens, since = self._buckets.get(team, (float(limits.workspace_burst), now))
            tokens = min(limits.workspace_burst, tokens + (now - since) * limits.workspace_rate)
            if last is not None and now - last < limits.channel_interval - limits.jitter:
                refused, wait = "channel", limits.channel_interval - (now - last)
            elif tokens < 1:
                refused, wait = "workspace", (1 - tokens) / limits.workspace_rate
            else:
                self._last_post[(team, channel)] = now
                self._buckets[team] = (tokens - 1, now)
                return None
            self.rate_limited.append(RateLimited(team, channel, refused, now))
        return str(max(1, math.ceil(wait)))

    def _next_ts(self) -> str:
        """Like Slack's: the epoch time in microseconds, unique and increasing."""
        with self._lock:
            self._ts = max(round(time.time() * 1_000_000), self._ts + 1)
            return f"{self._ts // 1_000_000}.{self._ts % 1_000_000:06d}"

    def _answer(self, call: SlackCall) -> dict[str, Any]:
        method, args = call.method, call.args
        if method in self.replies:
            return self.replies[method]
        team = self._team(call.token)
        if method == "auth.test":
            if call.token is None:
                return {"ok": False, "error": "not_authed"}
            if call.token not in self.tokens:
                return {"ok": False, "error": "invalid_auth"}
            return {
                "ok": True,
                "url": f"https://{team.lower()}.slack.com/",
                "team": TEAM_NAMES.get(team, "Team"),
                "team_id": team,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "user": "paperboy",
                "is_enterprise_install": False,
            }
        if method == "chat.postMessage":
            ts = self._next_ts()
            message = {
                "type": "message",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "app_id": APP_ID,
                "team": team,
                "text": args.get("text", ""),
                "ts": ts,
            }
            for key in ("blocks", "attachments", "thread_ts", "metadata"):
                if key in args:
                    value = args[key]  # form-encoded bodies carry JSON as a string
                    message[key] = json.loads(value) if key != "thread_ts" and isinstance(
                        value, str) else value  # fmt: skip
            channel = str(args.get("channel"))
            at = time.monotonic()
            posted = Posted(team, channel, message["text"], args.get("blocks"), ts, at)
            with self._lock:
                self.delivered.append(posted)
                self.history[channel].append(message)
            return {"ok": True, "channel": args.get("channel"), "ts": ts, "message": message}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method == "chat.update":
            message = {"text": args.get("text", ""), "user": BOT_USER_ID, "bot_id": BOT_ID}
            answer = {"ok": True, "channel": args.get("channel"), "ts": args.get("ts")}
            return answer | {"text": message["text"], "message": message}
        if method == "chat.delete":
            return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts")}
        if method == "conversations.history":
            return self._history(args)
        if method == "conversations.replies":
            return self._replies(args)
        if method == "conversations.open":
            if "channel" in args:
                return {"ok": True, "channel": {"id": args["channel"]}}
            users = [u for u in str(args.get("users", "")).split(",") if u]
            if not users:
                return {"ok": False, "error": "users_list_not_supplied"}
            prefix = "D" if len(users) == 1 else "G"
            return {"ok": True, "channel": {"id": prefix + "".join(users)}}
        if method == "users.info":
            user = str(args.get("user", ""))
            if not user:
                return {"ok": False, "error": "user_not_found"}
            return {
                "ok": True,
                "user": {
                    "id": user,
                    "team_id": team,
                    "name": user.lower(),
                    "real_name": f"User {user}",
                    "deleted": False,
                    "is_admin": user in self.admins,
                    "is_owner": user in self.owners,
                    "is_primary_owner": False,
                    "is_bot": False,
                    "profile": {"display_name": user.lower(), "real_name": f"User {user}"},
                },
            }
        if method == "oauth.v2.access":
            return self._oauth(args)
        if method == "files.getUploadURLExternal":
            return self._upload_url(args)
        if method == "files.completeUploadExternal":
            return self._complete_upload(args)
        if method == "apps.connections.open":
            return {"ok": True, "url": self.socket_url}
        return {"ok": True}

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            found = _within(self.history.get(str(args.get("channel")), []), args)
        found.reverse()  # newest first, as Slack answers
        start = int(args.get("cursor") or 0)
        limit = int(args.get("limit") or 100)
        page = found[start : start + limit]
        if str(args.get("include_all_metadata")).lower() not in ("1", "true"):
            page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(found)
        cursor = {"next_cursor": str(start + limit) if more else ""}
        return {"ok": True, "messages": page, "has_more": more, "response_metadata": cursor}

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel")), str(args.get("ts"))
        with self._lock:
            thread_ts = next(
                (t for (c, t), replies in self.threads.items()
                 if c == channel and any(r["ts"] == ts for r in replies)),
                ts,
            )  # fmt: skip
            parent = [m for m in self.history.get(channel, []) if m["ts"] == thread_ts]
            replies = _within(self.threads.get((channel, thread_ts), []), args)
        if not parent:
            return {"ok": False, "error": "thread_not_found"}
        limit = int(args.get("limit") or 100)
        # As on Slack: the parent comes first whatever the window and counts toward `limit`.
        messages = (parent + replies)[:limit]
        return {"ok": True, "messages": messages, "has_more": len(messages) < 1 + len(replies)}

    def _upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("filename") or not str(args.get("length", "")).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        with self._lock:
            file_id = f"F{len(self._file_names) + 1:08d}"
            self._file_names[file_id] = str(args["filename"])
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        files = args.get("files")
        files = json.loads(files) if isinstance(files, str) else files
        channel = args.get("channel_id")
        with self._lock:
            if not files or any(f.get("id") not in self.uploads for f in files):
                return {"ok": False, "error": "invalid_arguments"}
            done = []
            for f in files:
                shared = {
                    "id": f["id"],
                    "name": self._file_names[f["id"]],
                    "title": f.get("title"),
                    "channel": channel,
                    "initial_comment": args.get("initial_comment"),
                }
                self.shared_files.append(shared)
                done.append({"id": f["id"], "name": shared["name"], "title": f.get("title")})
        return {"ok": True, "files": done}

    def stall_answers_after(self, delivered: int) -> None:
        self._stall_after = delivered

    def release_stalled(self) -> None:
        self._stall_after = None
        self._release.set()

    def _stalls(self, call: SlackCall) -> bool:
        """Whether this delivered post's answer is held back (see `stall_answers_after`)."""
        with self._lock:
            if self._stall_after is None or len(self.delivered) <= self._stall_after:
                return False
            self.stalled += 1
        return True

    def _oauth(self, args: dict[str, Any]) -> dict[str, Any]:
        team = self.oauth_grants.get(str(args.get("code", "")))
        if team is None:
            return {"ok": False, "error": "invalid_code"}
        token = f"xoxb-{team}"
        with self._lock:
            self.tokens.setdefault(token, team)  # the new token passes auth.test
        return {
            "ok": True,
            "app_id": APP_ID,
            "authed_user": {"id": self.oauth_user},
            "scope": self.oauth_scope,
            "token_type": "bot",
            "access_token": token,
            "bot_user_id": BOT_USER_ID,
            "team": {"id": team, "name": TEAM_NAMES.get(team, f"Team {team}")},
            "enterprise": None,
            "is_enterprise_install": False,
            # As Slack answers when the app asks for incoming-webhook: a URL that posts.
            "incoming_webhook": {
                "channel": "#general",
                "channel_id": "C1",
                "configuration_url": "https://x",
                "url": f"https://hooks.slack.com/services/{team}/B1/webhook-secret",
            },
        }


def _within(messages: list[dict[str, Any]], args: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages between `oldest` and `latest` (either included with `inclusive`)."""
    oldest, latest = Decimal(args.get("oldest") or 0), Decimal(args.get("latest") or "Infinity")
    inclusive = str(args.get("inclusive")).lower() in ("1", "true")

    def inside(ts: Decimal) -> bool:
        return oldest < ts < latest or (inclusive and ts in (oldest, latest))

    return [m for m in messages if inside(Decimal(m["ts"]))]


class _Server(QuietServer):
    fake: FakeSlack


class _Handler(JsonHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as Slack's servers do

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, verb: str) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        if url.path.startswith("/response/"):
            self._response_url(url.path[len("/response/") :], raw)
            return
        if url.path.startswith("/upload/"):
            self._upload(url.path[len("/upload/") :], raw, headers, verb)
            return
        if not url.path.startswith("/api/"):
            self._json(404, {"ok": False, "error": "unknown_method"})
            return
        method = url.path[len("/api/") :]
        args: dict[str, Any] = {k: v[0] for k, v in parse_qs(url.query).items()}
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        encoding = "query"
        if raw and content_type == "application/json":
            body = json.loads(raw)
            args.update(body if isinstance(body, dict) else {})
            encoding = "json"
        elif raw and content_type == "application/x-www-form-urlencoded":
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
            args.update({k: v[0] for k, v in form.items()})
            encoding = "form"
        token = args.pop("token", None)
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer "):
            token = auth[len("Bearer ") :]
        elif auth.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client_id, secret = "", ""
            args.setdefault("client_id", client_id)
            args.setdefault("client_secret", secret)
        call = SlackCall(method, args, token, headers, verb, encoding)
        fake._record(call)

        fault = fake._next_fault(method)
        if fault == "disconnect":
            self.close_connection = True
        elif fault == "429":
            retry = {"Retry-After": fake.retry_after}
            self._json(429, {"ok": False, "error": "ratelimited"}, retry)
        elif fault is not None and fault.isdigit():
            self._json(int(fault), {"ok": False, "error": f"http_{fault}"})
        elif fault is not None:
            self._json(200, {"ok": False, "error": fault})
        elif method == "chat.postMessage" and (wait := fake._admit(call)) is not None:
            self._json(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": wait})
        else:
            answer = fake._answer(call)
            if method == "chat.postMessage" and fake._stalls(call):
                fake._release.wait(timeout=60)  # bounded: the test releases or stops the fake
                self.close_connection = True
                return
            self._json(200, answer)

    def _upload(self, file_id: str, raw: bytes, headers: dict[str, str], verb: str) -> None:
        """The bytes of a file, POSTed to the upload_url files.getUploadURLExternal gave."""
        fake = self.server.fake
        fake._record(
            SlackCall("upload", {"file_id": file_id, "size": len(raw)}, None, headers, verb)
        )
        with fake._lock:
            known = file_id in fake._file_names
            if known:
                fake.uploads[file_id] = raw
        if verb != "POST" or not known:
            self._send(404, b"not found", "text/plain")
            return
        self._send(200, f"OK - {len(raw)}".encode(), "text/plain")

    def _response_url(self, name: str, raw: bytes) -> None:
        fake = self.server.fake
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with fake._lock:
            fake.responses.append((name, body))
        if fake.on_response is not None:
            fake.on_response(name, body)
        fault = fake._next_fault(f"response:{name}")
        if fault is not None and fault.isdigit():
            self._send(int(fault), fault.encode(), "text/plain")
        else:
            self._send(200, b"ok", "text/html")  # what hooks.slack.com answers


# Signed requests for the real bolt app.


def sign(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """`X-Slack-Request-Timestamp` and `X-Slack-Signature` for `body` (now, unless given).

    Bolt rejects timestamps more than 300 s away from its clock."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


def _now_ts() -> str:
    return f"{time.time():.6f}"


def _trigger_id() -> str:
    return f"{int(time.time())}.1.{time.monotonic_ns() % 10**12:x}"


def slash_command_payload(
    text: str,
    *,
    team_id: str = "T1",
    channel_id: str = "C1",
    user_id: str = "U1",
    command: str = "/papers",
    response_url: str = _NOWHERE,
    api_app_id: str = APP_ID,
) -> dict[str, str]:
    """A slash command's fields, as Slack form-encodes them (also Socket Mode's payload)."""
    return {
        "token": "verification-token",
        "team_id": team_id,
        "team_domain": team_id.lower(),
        "channel_id": channel_id,
        "channel_name": "directmessage" if channel_id.startswith("D") else "general",
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": _trigger_id(),
    }


def slash_command_body(
    text: str,
    *,
    team_id: str = "T1",
    channel_id: str = "C1",
    user_id: str = "U1",
    command: str = "/papers",
    response_url: str = _NOWHERE,
) -> str:
    """The form-encoded body Slack posts for a slash command."""
    return urlencode(
        slash_command_payload(
            text,
            team_id=team_id,
            channel_id=channel_id,
            user_id=user_id,
            command=command,
            response_url=response_url,
        )
    )


def event_payload(
    event: dict[str, Any], *, team_id: str = "T1", event_id: str = "Ev1", api_app_id: str = APP_ID
) -> dict[str, Any]:
    """An Events API `event_callback` envelope around `event` (also Socket Mode's payload)."""
    return {
        "token": "verification-token",
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-fake-{event_id}",
    }


def event_body(
    event: dict[str, Any], *, team_id: str = "T1", event_id: str = "Ev1", api_app_id: str = APP_ID
) -> str:
    """The JSON body Slack posts for an event (send with `Content-Type: application/json`)."""
    return json.dumps(
        event_payload(event, team_id=team_id, event_id=event_id, api_app_id=api_app_id)
    )


def reaction_event(
    kind: Literal["reaction_added", "reaction_removed"],
    *,
    user: str,
    reaction: str,
    channel: str,
    ts: str,
    item_user: str = BOT_USER_ID,
) -> dict[str, Any]:
    """A `reaction_added`/`reaction_removed` event on message `ts` in `channel`."""
    return {
        "type": kind,
        "user": user,
        "reaction": reaction,
        "item_user": item_user,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": _now_ts(),
    }


def block_action_payload(
    action_id: str,
    value: str,
    *,
    team_id: str = "T1",
    channel_id: str = "C1",
    user_id: str = "U1",
    response_url: str = _NOWHERE,
    block_id: str = "actions",
    message_ts: str = "1700000000.000001",
) -> dict[str, Any]:
    """A `block_actions` interaction: a button clicked on an ephemeral message."""
    return {
        "type": "block_actions",
        "user": {
            "id": user_id,
            "username": user_id.lower(),
            "name": user_id.lower(),
            "team_id": team_id,
        },
        "api_app_id": APP_ID,
        "token": "verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": True,
        },
        "trigger_id": _trigger_id(),
        "team": {"id": team_id, "domain": team_id.lower()},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "general"},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": action_id, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": _now_ts(),
            }
        ],
    }


def block_action_body(
    action_id: str,
    value: str,
    *,
    team_id: str = "T1",
    channel_id: str = "C1",
    user_id: str = "U1",
    response_url: str = _NOWHERE,
) -> str:
    """The form-encoded `payload=<json>` body Slack posts for a button click."""
    payload = block_action_payload(
        action_id,
        value,
        team_id=team_id,
        channel_id=channel_id,
        user_id=user_id,
        response_url=response_url,
    )
    return urlencode({"payload": json.dumps(payload)})


def message_shortcut_body(
    callback_id: str,
    message: dict[str, Any],
    *,
    team_id: str = "T1",
    channel_id: str = "C1",
    user_id: str = "U1",
    response_url: str = _NOWHERE,
) -> str:
    """The form-encoded `payload=<json>` body Slack posts when `user_id` picks a message
    shortcut on `message` (a message object as conversations.history shows it)."""
    payload = {
        "type": "message_action",
        "token": "verification-token",
        "action_ts": _now_ts(),
        "team": {"id": team_id, "domain": team_id.lower()},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": team_id},
        "channel": {"id": channel_id, "name": "general"},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": _trigger_id(),
        "response_url": response_url,
        "message_ts": message.get("ts"),
        "message": message,
    }
    return urlencode({"payload": json.dumps(payload)})


def socket_envelope(
    kind: Literal["slash_commands", "events_api", "interactive"],
    payload: Mapping[str, Any],
    *,
    envelope_id: str = "e1",
) -> dict[str, Any]:
    """A Socket Mode envelope as Slack sends it (`accepts_response_payload`, with an s)."""
    envelope: dict[str, Any] = {
        "envelope_id": envelope_id,
        "type": kind,
        "payload": dict(payload),
        "accepts_response_payload": kind != "events_api",
    }
    if kind == "events_api":
        envelope |= {"retry_attempt": 0, "retry_reason": ""}
    return envelope


# Socket Mode.


class FakeSocketMode:
    """A Socket Mode server on `url` (`ws://127.0.0.1:<port>/link`).

    Each connection gets `hello` first. `send_envelope()` pushes to the newest connection;
    every text frame a client sends is kept in `received`, those with an `envelope_id` (the
    acknowledgements: `{"envelope_id": ..., "payload"?: ...}`) also in `acks`.
    """

    def __init__(self, *, app_id: str = APP_ID) -> None:
        self.app_id = app_id
        self.acks: list[dict[str, Any]] = []
        self.received: list[Any] = []
        self.sent: list[dict[str, Any]] = []
        self.connections = 0  # connections accepted so far
        self._sockets: list[web.WebSocketResponse] = []  # touched on the server loop only
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fake-socket-mode", daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/link"

    def hello(self) -> dict[str, Any]:
        """The greeting Slack sends on every new connection."""
        return {
            "type": "hello",
            "num_connections": len(self._sockets),
            "debug_info": {
                "host": "applink-fake",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }

    def start(self) -> FakeSocketMode:
        self._thread.start()
        if not self._ready.wait(5) or self._error is not None:
            raise RuntimeError(f"fake Socket Mode server did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=5)

    def send_envelope(self, envelope: dict[str, Any], timeout: float = 5.0) -> None:
        """Send `envelope` to the newest connection (waiting up to `timeout` for one).

        Blocks only until the frame is written, so it is safe from an async test whose
        client has already connected."""
        self._call(self._send(envelope, timeout), timeout)

    def send_disconnect(self, reason: str = "refresh_requested", timeout: float = 5.0) -> None:
        """Ask the client to reconnect, as Slack does every few hours."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}
        self._call(self._send(message, timeout), timeout)

    def drop(self, timeout: float = 5.0) -> None:
        """Close every connection from the server's side, as when Slack's end goes away."""
        self._call(self._drop(), timeout)

    def acks_for(self, envelope_id: str) -> list[dict[str, Any]]:
        with self._cond:
            return [a for a in self.acks if a.get("envelope_id") == envelope_id]

    def wait_for_ack_sync(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """Block the calling thread until `envelope_id` is acknowledged; the ack.

        Not from the event loop the client runs on: use `await wait_for_ack(...)` there."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._find_ack(envelope_id), timeout):
                raise TimeoutError(f"no ack for envelope {envelope_id!r} within {timeout}s")
            found = self._find_ack(envelope_id)
            assert found is not None
            return found

    async def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """Wait (without blocking the event loop) until `envelope_id` is acknowledged."""
        deadline = time.monotonic() + timeout
        while (found := self._find_ack(envelope_id)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no ack for envelope {envelope_id!r} within {timeout}s")
            await asyncio.sleep(0.01)
        return found

    async def wait_connected(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait (without blocking the event loop) for `count` accepted connections in all."""
        deadline = time.monotonic() + timeout
        while self.connections < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.connections} of {count} connections after {timeout}s")
            await asyncio.sleep(0.01)

    def _find_ack(self, envelope_id: str) -> dict[str, Any] | None:
        return next((a for a in self.acks if a.get("envelope_id") == envelope_id), None)

    def _call(self, coro: Any, timeout: float) -> Any:
        assert self._loop is not None, "start() the server first"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout + 1)

    # On the server's own thread and loop.

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._setup())
        except BaseException as e:
            self._error = e
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _setup(self) -> None:
        app = web.Application()
        app.router.add_get("/link", self._handle)
        app.router.add_get("/link/", self._handle)  # Slack's URLs read /link/?ticket=...
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, timeout=1.0)  # answers the SDK's pings
        await ws.prepare(request)
        self._sockets.append(ws)
        with self._cond:
            self.connections += 1
        try:
            await ws.send_str(json.dumps(self.hello()))
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    data: Any = json.loads(message.data)
                except ValueError:
                    data = message.data
                with self._cond:
                    self.received.append(data)
                    if isinstance(data, dict) and "envelope_id" in data:
                        self.acks.append(data)
                    self._cond.notify_all()
        finally:
            self._sockets.remove(ws)
        return ws

    async def _send(self, message: dict[str, Any], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._sockets:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no Socket Mode client connected within {timeout}s")
            await asyncio.sleep(0.01)
        await self._sockets[-1].send_str(json.dumps(message))
        with self._cond:
            self.sent.append(message)

    async def _drop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    async def _shutdown(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server shutdown")
        if self._runner is not None:
            await self._runner.cleanup()


# Fixtures.


@pytest.fixture
def fake_slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    """A running fake Slack Web API; stopped after the test.

    Proxy variables are cleared: slack_sdk honours HTTPS_PROXY but not NO_PROXY."""
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    server = FakeSlack().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_socket_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSocketMode]:
    """A running fake Socket Mode server; stopped after the test (close clients first)."""
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    server = FakeSocketMode().start()
    try:
        yield server
    finally:
        server.stop()
