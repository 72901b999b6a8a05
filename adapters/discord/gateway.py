"""One Discord gateway connection per bot application, however many workers share its token.

Every worker logs in over REST, which is all that scheduled posts and DMs need, but only the
holder of the database lease `discord-gateway:<application id>` connects to the gateway, so
each slash command and reaction reaches exactly one worker. The holder renews the lease every
ttl/3; the others poll as often and take over once it has expired (the holder died) or been
released (a clean shutdown). A holder whose renewal finds another holder disconnects at once:
two gateway sessions would answer every command twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import discord

from adapters.connection import ConnectionChanges
from adapters.discord.client import UNREACHABLE, DiscordBot, log_in
from bot.delivery.runner import worker_name
from config import ConfigError, Unavailable
from storage.db import DB_ERRORS
from storage.store import Store

log = logging.getLogger(__name__)

LEASE_PREFIX = "discord-gateway:"
# Where discord.py logs its gateway's connections and attempts to reconnect.
LIBRARY_LOGS = (logging.getLogger("discord.client"), logging.getLogger("discord.gateway"))
NEVER = datetime.min.replace(tzinfo=UTC)


class LeasedGateway:
    """Runs `discord_bot`'s gateway connection only while this worker holds the lease."""

    def __init__(
        self, discord_bot: DiscordBot, store: Store, *, ttl: float, holder: str | None = None
    ) -> None:
        self.discord = discord_bot
        self.store = store
        self.ttl = timedelta(seconds=ttl)
        self.interval = ttl / 3
        self.holder = holder or worker_name()
        self.name = ""  # per application, known once logged in
        self.logged_in = asyncio.Event()  # REST works: deliveries may start
        self._expires = NEVER  # of the lease this worker holds, as of its last renewal

    async def run(self) -> None:
        """Log in, then standby -> hold the gateway -> standby ... until cancelled.
        Raises ConfigError for a rejected token, and whatever ends the gateway for good."""
        try:
            await log_in(self.discord)
            self.name = f"{LEASE_PREFIX}{self.discord.client.application_id}"
            self.logged_in.set()
            while True:
                await self._standby()
                await self._hold()
        finally:
            await self.discord.client.close()

    async def _standby(self) -> None:
        """Return once the lease is ours, polling every ttl/3."""
        announced = False
        while (holder := await self._claim()) != self.holder:
            if not announced:
                log.info(
                    "Discord gateway standby: %s waits for %s, held by %s",
                    self.holder, self.name, holder or "nobody known",
                )  # fmt: skip
                announced = True
            await asyncio.sleep(self.interval)

    async def _hold(self) -> None:
        """Stay on the gateway while renewing the lease every ttl/3; return once it is lost."""
        log.info("Discord gateway lease %s acquired by %s: connecting", self.name, self.holder)
        changes = connection_changes()
        for logger in LIBRARY_LOGS:
            logger.addFilter(changes)
        connection = asyncio.create_task(self.discord.client.connect())
        holder: str | None = self.holder
        try:
            while holder == self.holder:
                await asyncio.wait({connection}, timeout=self.interval)
                if connection.done():  # discord.py reconnects by itself unless it gave up
                    _raise_ended(connection)
                holder = await self._claim()
        finally:
            for logger in LIBRARY_LOGS:
                logger.removeFilter(changes)
            await self._disconnect(connection)
            self._expires = NEVER  # whatever the database says, this worker is not connected
            if holder == self.holder:  # shutting down: let a standby take over at once
                await self._release()
        log.warning(
            "Discord gateway lease %s lost by %s (now held by %s): disconnected",
            self.name, self.holder, holder or "nobody known",
        )  # fmt: skip

    async def _disconnect(self, connection: asyncio.Task[None]) -> None:
        if not connection.done():  # a connection that ended has had its end raised
            connection.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connection
        # Cancelling connect() leaves its websocket open; close it before any release, so
        # that a standby never connects while this session lives.
        ws = self.discord.client.ws
        if ws is not None and ws.open:
            await ws.close(code=1000)

    async def _claim(self) -> str | None:
        """Take or renew the lease; its holder now (None: unknown)."""
        now = datetime.now(UTC)
        try:
            async with self.store.transaction() as repos:
                if await repos.leases.acquire(self.name, self.holder, now, self.ttl):
                    self._expires = now + self.ttl
                    return self.holder
                lease = await repos.leases.get(self.name)
                return lease.holder if lease is not None else None
        except DB_ERRORS as error:
            log.warning(
                "Discord gateway lease %s: database error: %s", self.name, _first_line(error)
            )
            # Keep a held gateway while our last renewal outlasts the next try; no guessing.
            still_ours = now + timedelta(seconds=self.interval) < self._expires
            return self.holder if still_ours else None

    async def _release(self) -> None:
        """Give the lease up (a no-op if another worker took it) so a standby need not wait."""
        try:
            async with self.store.transaction() as repos:
                await repos.leases.release(self.name, self.holder)
        except DB_ERRORS as error:  # it expires by itself
            log.warning("Discord gateway lease %s not released: %s", self.name, _first_line(error))
        else:
            log.info("Discord gateway lease %s released by %s", self.name, self.holder)


def connection_changes() -> ConnectionChanges:
    """What discord.py (2.x) logs as its gateway connects, resumes or fails to reconnect."""
    return ConnectionChanges(
        "Discord gateway",
        connected=("has connected to Gateway", "has successfully RESUMED"),
        lost={"Attempting a reconnect": "could not connect"},
    )


def _first_line(error: Exception) -> str:
    """SQLAlchemy appends the statement and its parameters: the first line says what failed."""
    return (str(error).splitlines() or [type(error).__name__])[0]


def _raise_ended(connection: asyncio.Task[None]) -> None:
    """Why the gateway connection ended, raised: a refused intent is a setting to change, a
    gateway that never answered is Unavailable."""
    try:
        connection.result()
    except discord.PrivilegedIntentsRequired:
        raise ConfigError(
            "PAPERBOY_DISCORD_MESSAGE_CONTENT: Discord refused the message-content intent; "
            "switch on Message Content Intent (Developer Portal -> Bot) or unset it"
        ) from None
    except AttributeError as error:
        # discord.py retries a first connection that failed by reading the websocket it never
        # opened: its AttributeError stands over why that connection failed.
        if isinstance(error.__context__, UNREACHABLE):
            raise Unavailable.because(
                "Discord gateway", error.__context__,
                "the network and PAPERBOY_DISCORD_GATEWAY_URL",
            ) from error.__context__  # fmt: skip
        raise
    raise RuntimeError("the Discord gateway connection ended")
