"""Per-user state: saved papers, followed topics, digest settings and digest history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, exists, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.db import chunks, rowcount
from storage.deliveries import DIGEST
from storage.models import (
    DailyListing,
    Delivery,
    DigestItem,
    DigestSetting,
    Follow,
    Paper,
    PendingReaction,
    PendingSave,
    Save,
    SavedLater,
)
from storage.papers import dialect_insert


class UserRepository:
    """Every method is scoped by (platform, workspace, user): nobody sees another's rows."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Saves
    async def save(
        self, platform: str, workspace: str, user: str, paper_id: int, now: datetime
    ) -> bool:
        """Save a paper; False when it was already saved (saving twice keeps one save)."""
        key = (platform, workspace, user, paper_id)
        if await self.session.get(Save, key) is not None:
            return False
        self.session.add(
            Save(platform=platform, workspace=workspace, user=user, paper_id=paper_id, saved_at=now)
        )
        await self.session.flush()
        return True

    async def unsave(self, platform: str, workspace: str, user: str, paper_id: int) -> bool:
        result = await self.session.execute(
            delete(Save).where(
                Save.platform == platform,
                Save.workspace == workspace,
                Save.user == user,
                Save.paper_id == paper_id,
            )
        )
        return bool(rowcount(result))

    async def saved(self, platform: str, workspace: str, user: str) -> list[Paper]:
        """Saved papers, most recently saved first."""
        result = await self.session.scalars(
            select(Paper)
            .join(Save, Save.paper_id == Paper.id)
            .where(Save.platform == platform, Save.workspace == workspace, Save.user == user)
            .order_by(Save.saved_at.desc(), Paper.id.desc())
        )
        return list(result)

    async def saves_with_dates(
        self, platform: str, workspace: str, user: str
    ) -> list[tuple[Paper, datetime]]:
        """Saved papers with when each was saved, most recently saved first."""
        result = await self.session.execute(
            select(Paper, Save.saved_at)
            .join(Save, Save.paper_id == Paper.id)
            .where(Save.platform == platform, Save.workspace == workspace, Save.user == user)
            .order_by(Save.saved_at.desc(), Paper.id.desc())
        )
        return [(paper, saved_at) for paper, saved_at in result]

    async def team_saves(
        self,
        platform: str,
        workspace: str,
        since: datetime | None,
        limit: int,
        *,
        until: datetime | None = None,
    ) -> list[tuple[Paper, int]]:
        """The papers members of (platform, workspace) saved since `since` (ever, when None)
        and up to `until` (when given), each with how many members saved it: the most
        members first, then the latest save. Counts only: no user is read out
        (`team_saves_statement`)."""
        statement = team_saves_statement(platform, workspace, since, limit, until=until)
        result = await self.session.execute(statement)
        return [(paper, int(count)) for paper, count in result]

    async def recent_saves_many(
        self, platform: str, workspace: str, users: Sequence[str], per_user: int
    ) -> dict[str, list[tuple[int, list[str]]]]:
        """(paper id, AI keywords) of each user's `per_user` latest saves, latest first;
        users who saved nothing are absent."""
        saves: dict[str, list[tuple[int, list[str]]]] = {}
        latest_first = (Save.saved_at.desc(), Save.paper_id.desc())
        connection = await self.session.connection()  # plain rows, as in following_many
        for some in chunks(list(dict.fromkeys(users))):
            numbered = (
                select(
                    Save.user,
                    Save.paper_id,
                    Paper.ai_keywords,
                    func.row_number()
                    .over(partition_by=Save.user, order_by=latest_first)
                    .label("n"),
                )
                .join(Paper, Paper.id == Save.paper_id)
                .where(Save.platform == platform, Save.workspace == workspace, Save.user.in_(some))
                .subquery()
            )
            result = await connection.execute(
                select(numbered.c.user, numbered.c.paper_id, numbered.c.ai_keywords)
                .where(numbered.c.n <= per_user)
                .order_by(numbered.c.user, numbered.c.n)
            )
            for user, paper_id, keywords in result:
                saves.setdefault(user, []).append((paper_id, list(keywords or [])))
        return saves

    # Follows
    async def follow(
        self, platform: str, workspace: str, user: str, topic: str, now: datetime
    ) -> bool:
        if await self.session.get(Follow, (platform, workspace, user, topic)) is not None:
            return False
        self.session.add(
            Follow(platform=platform, workspace=workspace, user=user, topic=topic, created_at=now)
        )
        await self.session.flush()
        return True

    async def unfollow(self, platform: str, workspace: str, user: str, topic: str) -> bool:
        result = await self.session.execute(
            delete(Follow).where(
                Follow.platform == platform,
                Follow.workspace == workspace,
                Follow.user == user,
                Follow.topic == topic,
            )
        )
        return bool(rowcount(result))

    async def following(self, platform: str, workspace: str, user: str) -> list[str]:
        result = await self.session.scalars(
            select(Follow.topic)
            .where(Follow.platform == platform, Follow.workspace == workspace, Follow.user == user)
            .order_by(Follow.topic)
        )
        return list(result)

    async def following_many(
        self, platform: str, workspace: str, users: Sequence[str]
    ) -> dict[str, list[str]]:
        """`following` for many users of one scope at once; users who follow nothing are
        absent. Each list is in the same (database collation) order `following` gives."""
        follows: dict[str, list[str]] = {}
        # Plain rows, not ORM results: ORM row processing is most of the time for 30,000.
        connection = await self.session.connection()
        for some in chunks(list(dict.fromkeys(users))):
            result = await connection.execute(
                select(Follow.user, Follow.topic)
                .where(
                    Follow.platform == platform,
                    Follow.workspace == workspace,
                    Follow.user.in_(some),
                )
                .order_by(Follow.user, Follow.topic)
            )
            for user, topic in result:
                follows.setdefault(user, []).append(topic)
        return follows

    # Digests
    async def digest_setting(
        self, platform: str, workspace: str, user: str
    ) -> DigestSetting | None:
        return await self.session.get(DigestSetting, (platform, workspace, user))

    async def set_digest(
        self,
        platform: str,
        workspace: str,
        user: str,
        *,
        cadence: str,
        weekday: int | None,
        send_time: str,
        timezone: str,
        now: datetime,
    ) -> DigestSetting:
        setting = await self.digest_setting(platform, workspace, user)
        if setting is None:
            setting = DigestSetting(platform=platform, workspace=workspace, user=user)
            self.session.add(setting)
        setting.cadence = cadence
        setting.weekday = weekday
        setting.send_time = send_time
        setting.timezone = timezone
        setting.updated_at = now
        setting.disabled_reason = None
        await self.session.flush()
        return setting

    async def with_digest(self, platform: str, workspace: str, users: Sequence[str]) -> set[str]:
        """Which of `users` (of one scope) have a digest set (paused or not)."""
        found: set[str] = set()
        for some in chunks(list(dict.fromkeys(users))):
            found.update(
                await self.session.scalars(
                    select(DigestSetting.user).where(
                        DigestSetting.platform == platform,
                        DigestSetting.workspace == workspace,
                        DigestSetting.user.in_(some),
                    )
                )
            )
        return found

    async def digest_off(self, platform: str, workspace: str, user: str) -> bool:
        result = await self.session.execute(
            delete(DigestSetting).where(
                DigestSetting.platform == platform,
                DigestSetting.workspace == workspace,
                DigestSetting.user == user,
            )
        )
        return bool(rowcount(result))

    async def already_sent_many(
        self,
        platform: str,
        workspace: str,
        users: Sequence[str],
        candidates: Sequence[int],
        *,
        before: datetime | None = None,
    ) -> dict[str, set[int]]:
        """Which of `candidates` each of `users` (of one scope) already got in a digest (sent
        `before` that moment, when given); users sent none of them are absent.

        Each user's rows are read over the candidates' id range (one index seek per user,
        the primary key being (platform, workspace, user, paper_id)) and filtered here. An
        IN list of papers as well would make the database seek once per (user, paper) pair:
        870,000 seeks for 10,000 users and a window of 87 papers. The candidates of a window
        are papers listed in the same few days, so their ids are close together.
        """
        query = select(DigestItem.user, DigestItem.paper_id).where(
            DigestItem.platform == platform, DigestItem.workspace == workspace
        )
        if before is not None:
            query = query.where(DigestItem.sent_at < before)
        return await self._among(query, DigestItem, users, candidates)

    async def saved_among_many(
        self, platform: str, workspace: str, users: Sequence[str], candidates: Sequence[int]
    ) -> dict[str, set[int]]:
        """Which of `candidates` each of `users` (of one scope) saved, however long ago;
        users who saved none of them are absent. Read as `already_sent_many` reads (the
        primary key being (platform, workspace, user, paper_id) too)."""
        query = select(Save.user, Save.paper_id).where(
            Save.platform == platform, Save.workspace == workspace
        )
        return await self._among(query, Save, users, candidates)

    async def _among(
        self,
        query: Select[str, int],
        model: type[DigestItem] | type[Save],
        users: Sequence[str],
        candidates: Sequence[int],
    ) -> dict[str, set[int]]:
        """`query`'s (user, paper id) rows of `users` over the `candidates`' id range, kept
        when the paper is one of them."""
        found: dict[str, set[int]] = {}
        if not candidates:
            return found
        wanted = set(candidates)
        connection = await self.session.connection()  # plain rows, as in following_many
        for some in chunks(list(dict.fromkeys(users))):
            result = await connection.execute(
                query.where(model.user.in_(some), model.paper_id.between(min(wanted), max(wanted)))
            )
            for user, paper_id in result:
                if paper_id in wanted:
                    found.setdefault(user, set()).add(paper_id)
        return found

    async def record_sent(
        self, platform: str, workspace: str, user: str, paper_ids: Sequence[int], now: datetime
    ) -> None:
        """Remember papers as sent; recording one twice is harmless."""
        if not paper_ids:
            return
        rows = [
            {"platform": platform, "workspace": workspace, "user": user, "paper_id": pid,
             "sent_at": now}
            for pid in paper_ids
        ]  # fmt: skip
        insert = dialect_insert(self.session)
        await self.session.execute(insert(DigestItem).values(rows).on_conflict_do_nothing())

    async def prune_sent(self, before: datetime, listed_since: date, most: int) -> int:
        """Forget up to `most` papers sent in digests before `before` that no list from
        `listed_since` on holds, the oldest sent first; how many rows went. The caller
        answers for such papers being no digest's candidates any more (`bot.housekeeping`)."""
        item = aliased(DigestItem)
        listed = exists().where(
            DailyListing.paper_id == item.paper_id, DailyListing.day >= listed_since
        )
        oldest = (
            select(item.platform, item.workspace, item.user, item.paper_id)
            .where(item.sent_at < before, ~listed)
            .order_by(item.sent_at)
            .limit(most)
        )
        key = tuple_(DigestItem.platform, DigestItem.workspace, DigestItem.user,
                     DigestItem.paper_id)  # fmt: skip
        result = await self.session.execute(
            delete(DigestItem).where(key.in_(oldest)).execution_options(synchronize_session=False)
        )
        return rowcount(result)

    # A member's own data
    async def forget(self, platform: str, workspace: str, user: str) -> dict[str, int]:
        """Delete everything stored about `user` in this workspace (saves, follows, digest
        setting, pending saves, papers sent in digests and their digests' delivery records);
        how many rows of each went. Channels and other members' rows are untouched."""
        mine: dict[str, tuple[Any, ColumnElement[bool]]] = {
            "saves": (Save, Save.user == user),
            "follows": (Follow, Follow.user == user),
            "digest settings": (DigestSetting, DigestSetting.user == user),
            "pending saves": (PendingSave, PendingSave.user == user),
            "reactions not yet acted on": (PendingReaction, PendingReaction.user == user),
            "saves not yet told of": (SavedLater, SavedLater.user == user),
            "papers sent in digests": (DigestItem, DigestItem.user == user),
            # A digest's ledger rows name its reader as their target.
            "delivery records": (Delivery, and_(Delivery.kind == DIGEST, Delivery.target == user)),
        }
        deleted = {}
        for what, (model, whose) in mine.items():
            result = await self.session.execute(
                delete(model).where(model.platform == platform, model.workspace == workspace, whose)
            )
            deleted[what] = rowcount(result)
        return deleted


def team_saves_statement(
    platform: str,
    workspace: str,
    since: datetime | None,
    limit: int,
    *,
    until: datetime | None = None,
) -> Select[Paper, int]:
    """`team_saves` in one statement. A member holds one save of a paper (the key is
    (platform, workspace, user, paper)), so saves counted per paper are members. The saves of
    a time window are one range of the index on (platform, workspace, saved_at, paper_id),
    counted from the index alone."""
    counted = select(
        Save.paper_id,
        func.count().label("savers"),
        func.max(Save.saved_at).label("latest"),
    ).where(Save.platform == platform, Save.workspace == workspace)
    if since is not None:
        counted = counted.where(Save.saved_at >= since)
    if until is not None:
        counted = counted.where(Save.saved_at <= until)
    ranked = counted.group_by(Save.paper_id).subquery()
    return (
        select(Paper, ranked.c.savers)
        .join(ranked, ranked.c.paper_id == Paper.id)
        .order_by(ranked.c.savers.desc(), ranked.c.latest.desc(), Paper.id.desc())
        .limit(limit)
    )
