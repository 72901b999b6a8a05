"""The deliveries ledger: who sends what, once.

A scheduled send is keyed by (kind, platform, workspace, target, period). A worker may send
only after winning `claim`: an INSERT that only one process can win (the unique key), or an
UPDATE that takes over a row whose lease expired (its worker died) or whose retry is due.
Both are single statements, so on PostgreSQL (row locks, READ COMMITTED re-check) and on
SQLite (one writer at a time) exactly one contender sees a changed row.

A send a person asked for (`manual`) is recorded once it ended, in a row of its own that
nothing claims: its period is the moment it was sent, in UTC to the microsecond, which a
scheduled period (a date) never is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.db import chunks, rowcount
from storage.models import Delivery
from storage.papers import dialect_insert
from storage.workspaces import installed

CHANNEL = "channel"  # a channel's daily post
DIGEST = "digest"  # a user's DM digest
WEEKLY = "weekly"  # a channel's weekly team post


class Status(StrEnum):
    CLAIMED = "claimed"  # a worker holds the lease and is sending
    SENT = "sent"
    EMPTY = "empty"  # nothing to send this period (no new papers)
    RETRY = "retry"  # a transient failure; due again at retry_at
    WAITING = "waiting"  # what it needs (today's list) is not out yet; due again at retry_at
    FAILED = "failed"  # permanent, or out of attempts
    SKIPPED = "skipped"  # deliberately not sent (a missed slot from an earlier day)


# Outcomes nothing claims again (`_claimable` takes only claimed, retry and waiting rows).
FINISHED = (Status.SENT, Status.EMPTY, Status.FAILED, Status.SKIPPED)


@dataclass(frozen=True)
class DeliveryKey:
    kind: str  # CHANNEL | DIGEST | WEEKLY
    platform: str
    workspace: str
    target: str
    period: str  # the slot's local date, YYYY-MM-DD (a manual send's: its moment)


def _row(key: DeliveryKey, now: datetime, **values: object) -> dict[str, object]:
    return {**asdict(key), "created_at": now, "updated_at": now, **values}


def _key(row: Delivery) -> DeliveryKey:
    return DeliveryKey(row.kind, row.platform, row.workspace, row.target, row.period)


def _is(key: DeliveryKey) -> ColumnElement[bool]:
    """The row of `key` (the unique constraint's columns)."""
    return and_(*(getattr(Delivery, column) == value for column, value in asdict(key).items()))


def _claimable(now: datetime, max_attempts: int) -> ColumnElement[bool]:
    """A row another worker may take: its lease ran out (the worker died) or its retry (or
    wait) is due, and it has attempts left."""
    return and_(
        Delivery.attempts < max_attempts,
        or_(
            and_(Delivery.status == Status.CLAIMED, Delivery.lease_until < now),
            and_(Delivery.status.in_((Status.RETRY, Status.WAITING)), Delivery.retry_at <= now),
        ),
    )


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim_many(
        self,
        keys: Sequence[DeliveryKey],
        worker: str,
        now: datetime,
        *,
        lease: timedelta,
        max_attempts: int,
    ) -> dict[DeliveryKey, Delivery]:
        """`claim` of many keys: the rows `worker` may send now. Slots without a row (a
        morning's posts) are claimed by one INSERT for all of them; existing rows (retries,
        a dead worker's lease, or a morning another worker already sent) by one UPDATE per
        workspace and period, its targets in an IN list (on the unique index's columns)."""
        values = dict(status=Status.CLAIMED, worker=worker, lease_until=now + lease)
        distinct = list(dict.fromkeys(keys))
        insert = dialect_insert(self.session)
        created = await self.session.scalars(
            insert(Delivery).on_conflict_do_nothing().returning(Delivery),
            [_row(key, now, attempts=1, **values) for key in distinct],
        )
        claimed = {_key(row): row for row in created}
        existing: dict[tuple[str, str, str, str], list[str]] = {}
        for key in distinct:
            if key not in claimed:
                group = (key.kind, key.platform, key.workspace, key.period)
                existing.setdefault(group, []).append(key.target)
        for (kind, platform, workspace, period), targets in existing.items():
            for chunk in chunks(targets):
                taken = await self.session.scalars(
                    update(Delivery)
                    .where(
                        Delivery.kind == kind,
                        Delivery.platform == platform,
                        Delivery.workspace == workspace,
                        Delivery.target.in_(chunk),
                        Delivery.period == period,
                        _claimable(now, max_attempts),
                    )
                    .values(attempts=Delivery.attempts + 1, updated_at=now, **values)
                    .returning(Delivery)
                    .execution_options(synchronize_session=False, populate_existing=True)
                )
                claimed.update((_key(row), row) for row in taken)
        return claimed

    async def finish(
        self,
        delivery_id: int,
        status: Status,
        now: datetime,
        *,
        message_ref: str | None = None,
        detail: str | None = None,
        retry_at: datetime | None = None,
        spent: bool = True,
    ) -> None:
        """Record the outcome of the claimed attempt. An attempt not `spent` (waiting for a
        late list, a platform that could not be reached) gives its claim's attempt back, so
        it never uses up the retries."""
        attempts = Delivery.attempts if spent else Delivery.attempts - 1
        await self.session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(
                status=status,
                attempts=attempts,
                lease_until=None,
                retry_at=retry_at,
                message_ref=message_ref,
                detail=detail[:200] if detail else None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )

    async def record_manual(
        self,
        kind: str,
        platform: str,
        workspace: str,
        target: str,
        now: datetime,
        status: Status,
        *,
        message_ref: str | None,
        detail: str | None,
    ) -> None:
        """Record a manual send's outcome in a row of its own (one sent to the same target at
        the same microsecond takes the row, its attempts counting them)."""
        moment = f"{now.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}"
        key = DeliveryKey(kind, platform, workspace, target, moment)
        outcome = {"status": status, "message_ref": message_ref,
                   "detail": detail[:200] if detail else None, "updated_at": now}  # fmt: skip
        insert = dialect_insert(self.session)(Delivery).values(
            **_row(key, now, manual=True, attempts=1, **outcome)
        )
        await self.session.execute(
            insert.on_conflict_do_update(
                index_elements=list(asdict(key)),
                set_={**outcome, "attempts": Delivery.attempts + 1},
            )
        )

    async def skip(self, key: DeliveryKey, now: datetime, reason: str) -> bool:
        """Record a slot deliberately not sent; False when the slot already has a row."""
        return await self._insert(key, now, status=Status.SKIPPED, attempts=0, detail=reason[:200])

    async def skip_due(
        self, keys: Sequence[DeliveryKey], now: datetime, max_attempts: int, reason: str
    ) -> list[DeliveryKey]:
        """Record the rows of `keys` that are still claimable (`due_retries`) as deliberately
        not sent; the keys recorded so. A row another worker claimed meanwhile is left alone."""
        skipped = []
        for key in keys:
            result = await self.session.execute(
                update(Delivery)
                .where(_is(key), _claimable(now, max_attempts))
                .values(
                    status=Status.SKIPPED,
                    lease_until=None,
                    retry_at=None,
                    detail=reason[:200],
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if rowcount(result):
                skipped.append(key)
        return skipped

    async def drop(self, keys: Sequence[DeliveryKey]) -> None:
        """Delete the rows of `keys`: slots whose target no longer wants them, claimed before
        the worker heard (a digest turned off, a member forgotten), leave no record."""
        for key in keys:
            await self.session.execute(
                delete(Delivery).where(_is(key)).execution_options(synchronize_session=False)
            )

    async def _insert(self, key: DeliveryKey, now: datetime, **values: object) -> bool:
        """Insert the slot's row unless it exists; True when this call created it."""
        insert = dialect_insert(self.session)
        result = await self.session.execute(
            insert(Delivery).values(**_row(key, now, **values)).on_conflict_do_nothing()
        )
        return bool(rowcount(result))

    async def latest(
        self, kind: str, platform: str, workspace: str, target: str
    ) -> Delivery | None:
        """The target's most recent scheduled period's delivery."""
        return await self.session.scalar(
            select(Delivery)
            .where(
                Delivery.kind == kind,
                Delivery.platform == platform,
                Delivery.workspace == workspace,
                Delivery.target == target,
                Delivery.manual.is_(False),
            )
            .order_by(Delivery.period.desc())
            .limit(1)
        )

    async def last_sent_before(
        self, kind: str, platform: str, workspace: str, target: str, before: datetime
    ) -> datetime | None:
        """When the target's latest delivery sent before `before` (scheduled or asked for)
        first ran: a scheduled one's first run is its row's creation."""
        return await self.session.scalar(
            select(func.max(Delivery.created_at)).where(
                Delivery.kind == kind,
                Delivery.platform == platform,
                Delivery.workspace == workspace,
                Delivery.target == target,
                Delivery.status == Status.SENT,
                Delivery.created_at < before,
            )
        )

    async def counts(self, since: datetime) -> dict[str, int]:
        """How many deliveries updated since `since` are in each status."""
        result = await self.session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.updated_at >= since)
            .group_by(Delivery.status)
        )
        return {status: count for status, count in result.all()}

    async def recent(self, limit: int = 20) -> Sequence[Delivery]:
        result = await self.session.scalars(
            select(Delivery).order_by(Delivery.updated_at.desc(), Delivery.id.desc()).limit(limit)
        )
        return result.all()

    async def due_retries(
        self, now: datetime, max_attempts: int, *, platform: str | None = None
    ) -> Sequence[Delivery]:
        """Rows (of `platform`, when given) whose retry is due or whose lease expired (their
        worker died), still allowed another attempt, in workspaces that have the app."""
        query = select(Delivery).where(
            _claimable(now, max_attempts), installed(Delivery.platform, Delivery.workspace)
        )
        if platform is not None:
            query = query.where(Delivery.platform == platform)
        result = await self.session.scalars(query)
        return result.all()

    async def prune(self, before: datetime, most: int) -> int:
        """Delete up to `most` finished rows last changed before `before`, the oldest first;
        how many went. Each target's latest scheduled row stays, however old, for its "last
        post" line (`latest`). Rows still to be claimed or retried are never finished."""
        old, newer = aliased(Delivery), aliased(Delivery)
        superseded = exists().where(
            newer.kind == old.kind,
            newer.platform == old.platform,
            newer.workspace == old.workspace,
            newer.target == old.target,
            newer.manual.is_(False),
            newer.period > old.period,
        )
        oldest = (
            select(old.id)
            .where(
                old.status.in_(FINISHED),
                old.updated_at < before,
                or_(old.manual.is_(True), superseded),
            )
            .order_by(old.updated_at)
            .limit(most)
        )
        result = await self.session.execute(
            delete(Delivery)
            .where(Delivery.id.in_(oldest))
            .execution_options(synchronize_session=False)
        )
        return rowcount(result)
