"""`paperboy`: the command line that starts the bot, fetches papers and migrates the database."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import functools
import gc
import logging
import re
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from adapters.console import ConsoleOutbound, run_console
from adapters.http import ASGIApp, http_server
from adapters.logs import configure_logging
from adapters.metrics import PrometheusObserver
from adapters.ops import Operations
from bot.app import Paperboy
from bot.config import BotConfig
from bot.delivery.outage import Outage
from bot.delivery.runner import DeliveryPolicy
from bot.delivery.status import collect_status, render_status
from bot.housekeeping import keep_pruning
from bot.lifecycle import keep_deleting_left_workspaces
from bot.observe import install as install_observer
from bot.semantic import load_semantic
from bot.semantic.model import SemanticUnavailable
from bot.sources.arxiv import ArxivClient
from bot.sources.huggingface import HuggingFaceClient, SourceUnavailable
from bot.sources.ingest import ingest_days
from bot.sources.lookup import PaperLookup
from bot.sources.refresh import (
    embed_new_papers,
    ensure_papers,
    keep_papers_fresh,
    retry_pending_saves,
)
from config import ConfigError, Settings, Unavailable, load_settings
from config.redact import Redactor, install_redaction, settings_secrets
from storage import search_index
from storage.db import DB_ERRORS
from storage.store import Store

# A platform's adapter (and its library: discord.py, slack-bolt, each about 10 MB a process) is
# imported where a command runs that platform, not here: a worker runs only the platforms it
# is configured for, and the console none.
if TYPE_CHECKING:
    from adapters.slack.app import SlackBot
    from bot.semantic.meaning import Semantic

log = logging.getLogger("paperboy")

START_DEADLINE = 8.0  # seconds to reach Hugging Face at start before using what is stored
REFRESH_INTERVAL = 30 * 60.0  # seconds between Daily Papers refreshes in the worker


def _parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a date as YYYY-MM-DD") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paperboy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "run", help="start the bot: Discord and Slack Socket Mode when configured (the "
        "Procfile's worker), or the console when no platform is"
    )  # fmt: skip
    commands.add_parser("serve", help="serve Slack over HTTP on $PORT (the Procfile's web process)")
    commands.add_parser(
        "worker", help="the Procfile's worker: Discord, Slack Socket Mode, scheduled daily "
        "posts and digests, Daily Papers refresh"
    )  # fmt: skip
    commands.add_parser("console", help="start the bot in this terminal")
    status = commands.add_parser(
        "status", help="next scheduled slots, recent deliveries and the store's freshness"
    )
    status.add_argument(
        "--limit", type=_positive, default=15, help="deliveries and slots to list (1 or more)"
    )
    fetch = commands.add_parser("fetch", help="fetch Daily Papers lists into the store")
    when = fetch.add_mutually_exclusive_group()
    when.add_argument("--date", type=_parse_day, help="one day, YYYY-MM-DD (default: today)")
    when.add_argument("--since", type=_parse_day, help="every day from YYYY-MM-DD to today")
    discord = commands.add_parser("discord", help="Discord set-up")
    discord.add_argument(
        "action", choices=["invite-url"], help="print the link that adds the bot to a server"
    )
    discord.add_argument("--application-id", type=int, help="default: read from DISCORD_TOKEN")
    embed = commands.add_parser(
        "embed", help="store search-by-meaning vectors for papers that have none (after "
        "installing the `semantic` extra on a store that already holds papers)"
    )  # fmt: skip
    embed.add_argument(
        "--most", type=_positive, help="embed at most this many papers, newest first"
    )
    db = commands.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"], help="apply pending migrations")
    return parser


def _positive(value: str) -> int:
    """A whole number of 1 or more, for argparse (which prints the message and exits 2)."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, not {value!r}")
    return int(value)


def _semantic(settings: Settings, store: Store) -> Semantic | None:
    """Search by meaning as PAPERBOY_SEMANTIC says; one line saying whether it is on."""
    if settings.semantic == "off":
        log.info("Search by meaning: off (PAPERBOY_SEMANTIC=off)")
        return None
    try:
        semantic = load_semantic(store)
    except SemanticUnavailable as exc:
        if settings.semantic == "on":
            raise ConfigError(f"PAPERBOY_SEMANTIC=on, but {exc}") from None
        log.info("Search by meaning: off, by words and Hugging Face search only: %s", exc)
        return None
    log.info("Search by meaning: on")
    return semantic


def _lookup(settings: Settings, source: HuggingFaceClient) -> tuple[PaperLookup, ArxivClient]:
    """Papers by id for saves by link: Hugging Face, then arXiv. One arXiv client per
    process, so its spacing of requests is the process's."""
    arxiv = ArxivClient(settings.arxiv_api_url)
    return PaperLookup(source, arxiv), arxiv


async def _console(settings: Settings) -> int:
    store = await _open(settings)
    # At start, fail fast to the store (or the demo sample) rather than keep the user waiting.
    source = HuggingFaceClient(settings.hf_base_url, timeout=5.0, max_retries=1)
    lookup, arxiv = _lookup(settings, source)
    try:
        semantic = _semantic(settings, store)
        status = await ensure_papers(store, source, datetime.now(UTC), deadline=START_DEADLINE)
        print(status, flush=True)
        # The sample takes ~15 s to embed: search answers by its words meanwhile.
        embedding = asyncio.create_task(_embed_and_prepare(semantic))
        pending = asyncio.create_task(retry_pending_saves(store, lookup, datetime.now(UTC)))
        outbound = ConsoleOutbound(sys.stdout)
        bot = Paperboy(
            store, outbound, config=BotConfig.from_settings(settings), source=source,
            semantic=semantic, lookup=lookup,
        )  # fmt: skip
        try:
            await run_console(bot, outbound)
        finally:
            embedding.cancel()
            pending.cancel()
    finally:
        await arxiv.aclose()
        await source.aclose()
        await store.close()
    return 0


def settled() -> None:
    """The process has built what it keeps for life (modules, the app, its engine): collect
    what start-up left behind, then leave the rest out of the garbage collector's scans, which
    otherwise walk it all in each full collection. In the benchmark's thousand-channel
    morning one took 148 ms, 0.2 s in, before the first post; frozen, about 70 ms."""
    gc.collect()
    gc.freeze()


async def _serve(settings: Settings) -> int:
    """Slack over HTTP: the Procfile's web process."""
    from adapters.slack.app import create_slack_bot
    from adapters.slack.outbound import PLATFORM as SLACK
    from adapters.slack.startup import check_bot_token

    store = await _open(settings)
    source = HuggingFaceClient(settings.hf_base_url)
    lookup, arxiv = _lookup(settings, source)
    try:
        semantic = _semantic(settings, store)
        slack = create_slack_bot(settings, store, source=source, semantic=semantic, lookup=lookup)
        try:
            who = await check_bot_token(settings, slack.bot)
            # Serve at once; papers arrive in the background (the store answers meanwhile).
            refresh = asyncio.create_task(_start_papers(store, source, semantic))
            refresh.add_done_callback(_log_outcome)
            log.info("Slack ready %s over HTTP on %s:%d", who, settings.host, settings.port)
            settled()
            web = web_app(slack, store)
            waiting = asyncio.create_task(slack.bot.keep_working(SLACK))
            try:
                await http_server(web, host=settings.host, port=settings.port).serve()
            finally:
                waiting.cancel()
        finally:
            await slack.close()
    finally:
        await arxiv.aclose()
        await source.aclose()
        await store.close()
    return 0


def web_app(slack: SlackBot, store: Store) -> ASGIApp:
    """What `paperboy serve` serves: the operations endpoints (`adapters.ops`), then Slack's."""
    from adapters.slack.server import asgi_app

    return Operations(store).asgi(asgi_app(slack.app))


async def _start_papers(store: Store, source: HuggingFaceClient, semantic: Semantic | None) -> str:
    """What `paperboy serve` does in the background at start: the recent lists, then search
    by meaning made ready."""
    status = await ensure_papers(store, source, datetime.now(UTC), deadline=START_DEADLINE)
    await _embed_and_prepare(semantic)
    return status


async def _embed_and_prepare(semantic: Semantic | None) -> None:
    if semantic is not None:
        await embed_new_papers(_embed_apart)
        await _prepare_search(semantic)


async def _prepare_search(semantic: Semantic) -> None:
    """For a process that answers searches: the model and the stored vectors read now, so
    the first search need not."""
    try:
        held = await semantic.prepare_search()
    except Exception as exc:  # searches answer by words meanwhile, and try again
        log.warning("Search by meaning not ready: %s", exc)
        return
    log.info("Search by meaning ready: %s", held)


async def _embed_apart(most: int) -> int:
    """`paperboy embed --most N` in a child process, so the model's working memory while it
    embeds (hundreds of MB at its peak, kept by the allocator after) goes back to the system
    when it ends: only a process that answers searches holds the model."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", "embed", "--most", str(most),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await child.communicate()
    finally:
        if child.returncode is None:  # this process is stopping
            child.terminate()
            await child.wait()
    said = re.search(rb"Embedded (\d+) papers", out)
    if child.returncode != 0 or said is None:
        lines = err.decode(errors="replace").strip().splitlines() or [f"exit {child.returncode}"]
        raise RuntimeError(f"`paperboy embed` failed: {lines[-1]}")
    return int(said[1])


def _log_outcome(task: asyncio.Task[str]) -> None:
    if not task.cancelled():
        log.info(task.result())


async def _worker(settings: Settings) -> int:
    """The Procfile's worker: the Discord gateway and Slack Socket Mode when configured, the
    scheduled daily posts and digests of each platform, the Daily Papers refresh, and the
    housekeeping (left workspaces' data, old history), all in one process until one of them
    stops."""
    store = await _open(settings)
    source = HuggingFaceClient(settings.hf_base_url)
    lookup, arxiv = _lookup(settings, source)
    config = BotConfig.from_settings(settings)
    policy = DeliveryPolicy(lease=timedelta(seconds=settings.delivery_lease_seconds))
    outage = Outage()  # one database, one outage: logged once by every platform's scheduler
    jobs: list[Coroutine[None, None, None]] = []
    closing: list[Callable[[], Awaitable[None]]] = []  # HTTP sessions, at the end
    try:
        semantic = _semantic(settings, store)
        if settings.slack_app_token is not None or settings.slack_configured:
            from adapters.slack.app import create_slack_bot, create_slack_outbound
            from adapters.slack.outbound import PLATFORM as SLACK
            from adapters.slack.server import SocketMode
            from adapters.slack.startup import check_bot_token
        if settings.discord_token is not None:
            from adapters.discord.client import PLATFORM as DISCORD
            from adapters.discord.client import create_discord_bot
            from adapters.discord.gateway import LeasedGateway
        if settings.slack_app_token is not None:
            slack = create_slack_bot(
                settings, store, source=source, semantic=semantic, lookup=lookup,
                socket_mode=True,
            )  # fmt: skip
            socket = SocketMode(slack.app, settings.slack_app_token.get_secret_value())
            closing += [socket.close, slack.close]  # stop receiving first
            who = await check_bot_token(settings, slack.bot)
            await socket.connect()
            log.info("Slack ready %s over Socket Mode", who)
            jobs.append(_deliver(slack.bot, SLACK, policy, outage))
        elif settings.slack_configured:
            outbound = create_slack_outbound(settings, store)
            closing.append(outbound.close)
            bot = Paperboy(
                store, outbound, config=config, source=source, semantic=semantic, lookup=lookup
            )
            _log_slack_over_http(settings, await check_bot_token(settings, bot))
            jobs.append(_deliver(bot, SLACK, policy, outage))
        if settings.discord_token is not None:
            discord = create_discord_bot(
                settings, store, source=source, semantic=semantic, lookup=lookup
            )
            # Workers sharing the token take turns on the gateway; every one of them sends
            # its share of scheduled posts and DMs over REST, gateway or not.
            gateway = LeasedGateway(discord, store, ttl=settings.gateway_lease_seconds)
            jobs.append(gateway.run())
            jobs.append(
                _deliver(discord.bot, DISCORD, policy, outage, ready=gateway.logged_in.wait)
            )
        if semantic is not None and (
            settings.slack_app_token is not None or settings.discord_token is not None
        ):
            jobs.append(_prepare_search(semantic))  # this worker answers searches too
        if settings.metrics_port is not None:
            jobs.append(_serve_operations(store, settings.host, settings.metrics_port))
        clock = functools.partial(datetime.now, UTC)
        refresh = keep_papers_fresh(
            store, source, clock, interval=REFRESH_INTERVAL, lookup=lookup,
            embed_new=None if semantic is None else _embed_apart,
        )  # fmt: skip
        jobs.append(refresh)
        grace = timedelta(days=settings.data_grace_days)
        jobs.append(keep_deleting_left_workspaces(store, clock, grace))
        jobs.append(keep_pruning(store, clock))
        settled()
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(job)
    except* (ConfigError, Unavailable) as errors:
        first = errors.exceptions[0]
        raise first from first.__cause__  # its own cause, not the group
    finally:
        for job in jobs:
            job.close()  # those never started (a set-up error came first)
        for close in closing:
            await close()
        await arxiv.aclose()
        await source.aclose()
        await store.close()
    return 0


def _log_slack_over_http(settings: Settings, who: str) -> None:
    """The worker's readiness line for Slack without Socket Mode: where Slack's requests go,
    or that nothing receives them."""
    if settings.slack_signing_secret is not None:
        log.info(
            "Slack ready %s: this worker sends scheduled posts and digests; commands and "
            "events come over HTTP to `paperboy serve`", who,
        )  # fmt: skip
    else:
        log.warning(
            "Slack ready %s for scheduled posts and digests only: neither SLACK_APP_TOKEN "
            "(Socket Mode) nor SLACK_SIGNING_SECRET (HTTP, `paperboy serve`) is set, so no "
            "command, reaction or event reaches the bot", who,
        )  # fmt: skip


async def _serve_operations(store: Store, host: str, port: int) -> None:
    """The worker's operations endpoints (/healthz, /readyz, /metrics) on their own port."""
    log.info("Operations endpoints (/healthz, /readyz, /metrics) on %s:%d", host, port)
    await http_server(Operations(store).asgi(), host=host, port=port).serve()


async def _deliver(
    bot: Paperboy,
    platform: str,
    policy: DeliveryPolicy,
    outage: Outage,
    *,
    ready: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Run `platform`'s scheduled deliveries (once `ready` says it can send) until cancelled,
    and its waiting work (`Paperboy.keep_working`): reactions to try again, those another
    process (say `paperboy serve`) took in and left when it stopped included, and members to
    tell of late saves."""
    if ready is not None:
        await ready()
    scheduler = bot.scheduler(platform=platform, policy=policy, outage=outage)
    try:
        await scheduler.start()
        log.info("%s: %d scheduled slot(s)", platform, len(scheduler.slots))
        await bot.keep_working(platform)
    finally:
        await scheduler.stop()


async def _invite_url(settings: Settings, application_id: int | None) -> int:
    from adapters.discord.client import application_id as ask_discord
    from adapters.discord.client import invite_url

    if application_id is None:
        if settings.discord_token is None:
            print(
                "paperboy: give --application-id (from the Discord developer portal) or set "
                "DISCORD_TOKEN",
                file=sys.stderr,
            )
            return 2
        application_id = await ask_discord(settings, settings.discord_token.get_secret_value())
    print(invite_url(application_id))
    return 0


async def _fetch(settings: Settings, first: date, last: date) -> int:
    store = await _open(settings)
    try:
        async with HuggingFaceClient(settings.hf_base_url) as source:
            counts = await ingest_days(store, source, first, last, datetime.now(UTC))
        await search_index.compact(store.engine)
    except SourceUnavailable as exc:
        print(f"paperboy fetch: Hugging Face unavailable: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    for day, count in counts.items():
        print(f"{day}: {count} papers" + ("" if count else " (no list: weekend or not out yet)"))
    return 0


async def _embed(settings: Settings, most: int | None) -> int:
    """Backfill: a vector for every stored paper without one (or the newest `most`)."""
    store = await _open(settings)
    try:
        try:
            semantic = load_semantic(store)
        except SemanticUnavailable as exc:
            print(f"paperboy embed: search by meaning is unavailable: {exc}", file=sys.stderr)
            return 1
        embedded = await semantic.embed_missing(most=most)
    finally:
        await store.close()
    if most is not None and embedded == most:
        print(f"Embedded {embedded} papers; others may have none yet.")
    else:
        print(f"Embedded {embedded} papers; every stored paper has a vector.")
    return 0


async def _status(settings: Settings, limit: int) -> int:
    store = await _open(settings, migrate=False)
    try:
        report = await collect_status(store, datetime.now(UTC), upcoming=limit, recent=limit)
    except (SQLAlchemyError, OSError) as error:  # OSError: asyncpg's refused connection
        print(f"paperboy status: database unavailable or not migrated ({type(error).__name__}); "
              "run `paperboy db upgrade`", file=sys.stderr)  # fmt: skip
        return 1
    finally:
        await store.close()
    print(render_status(report))
    return 0


async def _db_upgrade(settings: Settings) -> int:
    store = await _open(settings)  # which migrates it
    await store.close()
    print("Database is up to date.")
    return 0


async def _open(settings: Settings, *, migrate: bool = True) -> Store:
    """The store, migrated; a database that cannot be reached stops the process with one line
    naming DATABASE_URL."""
    try:
        return await Store.open(settings.database_url, migrate=migrate)
    except DB_ERRORS as error:  # OSError too: refused, unknown host, timed out
        raise _database_unavailable(error) from error


def _database_unavailable(error: BaseException) -> Unavailable:
    return Unavailable.because("database", error, "DATABASE_URL")


# glibc's mallopt parameter for the number of malloc arenas (malloc.h's M_ARENA_MAX).
_M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def _few_malloc_arenas() -> None:
    """Cap glibc's malloc arenas at MALLOC_ARENAS, as MALLOC_ARENA_MAX would, before any
    thread starts. glibc gives threads that allocate at once arenas of their own (up to 8 per
    core), and each keeps what was freed in it: with aiosqlite's thread and asyncio's
    executor beside the loop, the worker's morning peaked at 159 MB, with 2 arenas at 140 MB
    (bench/RESULTS.md, worker memory). Elsewhere (macOS, musl) nothing to do."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
    except (OSError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    _few_malloc_arenas()
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"paperboy: configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    secrets = settings_secrets(settings)
    install_redaction(secrets)  # libraries log tokens at DEBUG
    install_observer(PrometheusObserver())
    redact = Redactor(secrets)
    try:
        return asyncio.run(_stoppable(_dispatch(args, settings)))
    except ConfigError as error:
        return _stopped(redact(f"configuration error: {error}"), error, 2)
    except Unavailable as error:
        return _stopped(redact(str(error)), error, 1)
    except (SQLAlchemyError, ConnectionError, socket.gaierror) as error:
        # The database went away while a command ran (at start, `_open` said so already).
        return _stopped(redact(str(_database_unavailable(error))), error, 1)
    except KeyboardInterrupt:
        return 130


def _stopped(line: str, error: BaseException, code: int) -> int:
    """Why the process stops, as one line on standard error; its traceback only at DEBUG."""
    log.debug("stopping: %s", line, exc_info=error)
    print(f"paperboy: {line}", file=sys.stderr)
    return code


async def _stoppable(command: Coroutine[None, None, int]) -> int:
    """Run `command`; SIGTERM (how process managers stop a dyno or a unit) cancels it so its
    clean-up runs, as Ctrl-C does: leases are released, connections closed."""
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    try:
        return await command
    except asyncio.CancelledError:
        return 128 + signal.SIGTERM


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        return await _serve(settings)
    if args.command == "worker":
        return await _worker(settings)
    if args.command == "run":
        # A Slack setting alone goes to the worker too, which says what else it needs.
        if (
            settings.discord_token is not None
            or settings.slack_configured
            or settings.slack_app_token is not None
        ):
            return await _worker(settings)
        log.info(
            "Console mode: no platform configured (DISCORD_TOKEN, SLACK_BOT_TOKEN, or "
            "SLACK_CLIENT_ID with SLACK_CLIENT_SECRET)"
        )
        return await _console(settings)
    if args.command == "discord":
        return await _invite_url(settings, args.application_id)
    if args.command == "status":
        return await _status(settings, args.limit)
    if args.command == "console":
        return await _console(settings)
    if args.command == "embed":
        return await _embed(settings, args.most)
    if args.command == "fetch":
        today = datetime.now(UTC).date()
        first = args.since or args.date or today
        last = today if args.since else first
        return await _fetch(settings, first, last)
    return await _db_upgrade(settings)


if __name__ == "__main__":
    sys.exit(main())
