"""Papers, their daily listings and full-text search (SQLite FTS5 or PostgreSQL tsvector)."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import aiosqlite
from sqlalchemy import (
    BindParameter,
    Case,
    ColumnClause,
    ColumnElement,
    Integer,
    Select,
    bindparam,
    case,
    cast,
    column,
    delete,
    func,
    literal,
    literal_column,
    select,
    table,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import UnboundExecutionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlalchemy.sql.compiler import SQLCompiler

from storage.models import Base, DailyListing, Paper

# How many of a query's newest matches are scored, and how many of the most relevant of those
# are ordered for display (see `_build_search`). Scoring every match of a word found in most
# papers ("model") takes FTS5 over 100 ms at 100k papers (bench/RESULTS.md), and for such a
# word the newest papers are the ones a reader is after.
RANK_POOL = 1000
CANDIDATES = 50
# Term sets matched per statement by `matching_ids` (a UNION ALL of one SELECT each): a round
# trip through aiosqlite costs more than SQLite's own work for one. Also bounded by the bound
# values a statement may carry: SQLite's oldest limit is 999, PostgreSQL's 32767.
TERM_SETS_PER_STATEMENT = 100
SQLITE_VALUES, POSTGRES_VALUES = 900, 30_000


@dataclass(frozen=True)
class PaperData:
    """A paper as a source describes it, ready to upsert. `arxiv_id` carries no version."""

    arxiv_id: str
    title: str
    abstract: str = ""
    authors: tuple[str, ...] = ()
    ai_summary: str | None = None
    ai_keywords: tuple[str, ...] = ()
    published_at: datetime | None = None
    upvotes: int | None = None
    github_repo: str | None = None
    github_stars: int | None = None
    project_page: str | None = None
    thumbnail: str | None = None
    organization: str | None = None
    is_demo: bool = False


# `insert` of PostgreSQL or of SQLite: each makes an Insert with ON CONFLICT support.
DialectInsert = Callable[[type[Base]], postgresql.Insert] | Callable[[type[Base]], sqlite.Insert]


def dialect_insert(session: AsyncSession) -> DialectInsert:
    """`insert` of the session's dialect, which has ON CONFLICT support."""
    return postgresql.insert if _dialect_name(session) == "postgresql" else sqlite.insert


def _dialect_name(session: AsyncSession) -> str:
    bind = session.bind
    if bind is None:  # a Store's sessions are all bound to its engine
        raise UnboundExecutionError("the session is bound to no engine")
    return bind.dialect.name


class PaperRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def dialect(self) -> str:
        return _dialect_name(self.session)

    async def upsert(self, papers: Sequence[PaperData], now: datetime) -> dict[str, int]:
        """Insert or refresh papers by arXiv id; returns arxiv_id -> paper row id.

        Fields a source left empty (None) never erase what an earlier, richer source stored,
        so a search result without an AI summary does not wipe the daily list's one.
        """
        if not papers:
            return {}
        rows = {p.arxiv_id: _row(p, now) for p in papers}  # last one of a duplicated id wins
        insert = dialect_insert(self.session)
        statement = insert(Paper).values(list(rows.values()))
        excluded = statement.excluded
        keep_if_null = (
            "ai_summary", "published_at", "upvotes", "github_repo", "github_stars",
            "project_page", "thumbnail", "organization",
        )  # fmt: skip
        updates: dict[str, ColumnElement[Any]] = {
            "title": func.coalesce(func.nullif(excluded.title, ""), Paper.title),
            "abstract": func.coalesce(func.nullif(excluded.abstract, ""), Paper.abstract),
            "fetched_at": excluded.fetched_at,
            "is_demo": excluded.is_demo,
            **{name: func.coalesce(getattr(excluded, name), getattr(Paper, name))
               for name in keep_if_null},
        }  # fmt: skip
        # Lists: keep the stored list when the new source has none.
        for name in ("authors", "ai_keywords"):
            updates[name] = _nonempty_list(
                self.dialect, getattr(excluded, name), getattr(Paper, name)
            )
        statement = statement.on_conflict_do_update(index_elements=["arxiv_id"], set_=updates)
        await self.session.execute(statement)
        result = await self.session.execute(
            select(Paper.arxiv_id, Paper.id).where(Paper.arxiv_id.in_(rows))
        )
        return {arxiv_id: paper_id for arxiv_id, paper_id in result}

    async def record_listing(self, day: date, ranked: Sequence[tuple[int, int | None]]) -> None:
        """Replace `day`'s listing with `ranked` (paper id, upvotes), rank 1 first."""
        await self.session.execute(delete(DailyListing).where(DailyListing.day == day))
        if ranked:
            await self.session.execute(
                DailyListing.__table__.insert(),
                [
                    {"day": day, "paper_id": paper_id, "rank": rank, "upvotes": upvotes}
                    for rank, (paper_id, upvotes) in enumerate(ranked, start=1)
                ],
            )

    async def by_arxiv_id(self, arxiv_id: str) -> Paper | None:
        return await self.session.scalar(select(Paper).where(Paper.arxiv_id == arxiv_id))

    async def by_arxiv_ids(self, arxiv_ids: Iterable[str]) -> dict[str, Paper]:
        """The stored papers among `arxiv_ids`, by arXiv id (at most a few dozen ids)."""
        wanted = list(dict.fromkeys(arxiv_ids))
        if not wanted:
            return {}
        result = await self.session.scalars(select(Paper).where(Paper.arxiv_id.in_(wanted)))
        return {paper.arxiv_id: paper for paper in result}

    async def by_ids(self, ids: Iterable[int]) -> dict[int, Paper]:
        ids = list(ids)
        if not ids:
            return {}
        result = await self.session.scalars(select(Paper).where(Paper.id.in_(ids)))
        return {paper.id: paper for paper in result}

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count(Paper.id))) or 0)

    async def latest_listing_day(
        self, *, demo: bool | None = None, on_or_before: date | None = None
    ) -> date | None:
        query = select(func.max(DailyListing.day))
        if on_or_before is not None:
            query = query.where(DailyListing.day <= on_or_before)
        if demo is not None:
            query = query.join(Paper, Paper.id == DailyListing.paper_id).where(
                Paper.is_demo == demo
            )
        return await self.session.scalar(query)

    async def last_fetched(self) -> datetime | None:
        """When papers were last written from Hugging Face (the demo sample aside)."""
        return await self.session.scalar(
            select(func.max(Paper.fetched_at)).where(Paper.is_demo.is_(False))
        )

    async def listing(self, day: date) -> list[Paper]:
        """`day`'s papers in rank order."""
        result = await self.session.scalars(
            select(Paper)
            .join(DailyListing, DailyListing.paper_id == Paper.id)
            .where(DailyListing.day == day)
            .order_by(DailyListing.rank)
        )
        return list(result)

    async def listed_between(self, first: date, last: date) -> list[int]:
        """Ids of papers listed on any day from `first` to `last`, inclusive."""
        result = await self.session.scalars(
            select(DailyListing.paper_id).where(DailyListing.day.between(first, last)).distinct()
        )
        return list(result)

    async def most_upvoted_between(
        self, first: date, last: date, limit: int
    ) -> list[tuple[Paper, int | None]]:
        """The most upvoted papers listed on any day from `first` to `last` (inclusive), each
        once with its highest upvotes of those days: most upvoted first, then the latest
        listed, then the better ranked on its lists. Real lists win over the demo sample: when
        both are in the window, only real papers are given."""
        upvotes = func.max(DailyListing.upvotes)
        listed = (
            select(
                DailyListing.paper_id,
                upvotes.label("upvotes"),
                func.max(DailyListing.day).label("latest"),
                func.min(DailyListing.rank).label("rank"),
            )
            .where(DailyListing.day.between(first, last))
            .group_by(DailyListing.paper_id)
            .subquery()
        )
        result = await self.session.execute(
            select(Paper, listed.c.upvotes)
            .join(listed, listed.c.paper_id == Paper.id)
            .order_by(
                Paper.is_demo,  # real papers first, so the first row says which kind to keep
                listed.c.upvotes.desc().nulls_last(),
                listed.c.latest.desc(),
                listed.c.rank,
                Paper.id.desc(),
            )
            .limit(limit)
        )
        rows = [(paper, count) for paper, count in result]
        return [(paper, count) for paper, count in rows if paper.is_demo == rows[0][0].is_demo]

    async def search(
        self,
        terms: Sequence[str],
        *,
        limit: int,
        match_all: bool = True,
        within: Sequence[int] | None = None,
    ) -> list[Paper]:
        """Full-text search over title, abstract, authors and AI keywords, best first, in one
        statement that ranks and loads the papers (`search_statement`).

        `terms` are plain words (no query syntax); `within` restricts to those paper ids.
        """
        # A term without a letter or digit (say "*" or "-") holds no word: FTS5 would read it
        # as an empty phrase that matches nothing, PostgreSQL as an empty query. Drop it.
        terms = [t for t in terms if any(ch.isalnum() for ch in t)]
        if not terms or (within is not None and not within):
            return []
        if self.dialect == "sqlite":
            return await self._sqlite_search(terms, limit, match_all, within)
        query, params = search_statement(
            self.dialect, terms, limit, match_all=match_all, within=within
        )
        return list(await self.session.scalars(query, params))

    async def _sqlite_search(
        self, terms: Sequence[str], limit: int, match_all: bool, within: Sequence[int] | None
    ) -> list[Paper]:
        """The search statement's papers from one call into aiosqlite's thread, detached (as
        after a transaction). Through the session the same statement makes four calls there,
        with SQLAlchemy's cursor and ORM work besides: about 1 ms more per search, measured in
        `paperboy serve` at 100k papers, where SQLite takes 2-3 ms for a rare word."""
        bind = self.session.bind
        if isinstance(bind, AsyncEngine) and not self.session.in_transaction():
            # Nothing uncommitted to see (`Store.reading`): the statement takes a pooled
            # connection of its own, which goes back with no transaction to end. Joining the
            # session would begin one, and ending it costs another call into the thread.
            async with bind.connect() as connection:
                dialect, rows = await _search_rows(connection, terms, limit, match_all, within)
        else:
            await self.session.flush()  # as the session does before a query
            connection = await self.session.connection()
            dialect, rows = await _search_rows(connection, terms, limit, match_all, within)
        return _detached_papers(dialect, rows)

    async def matching_ids(
        self, term_sets: Sequence[tuple[str, ...]], within: Sequence[int]
    ) -> dict[tuple[str, ...], frozenset[int]]:
        """For each set of terms, which of `within` match all of them (unranked): what
        `search(terms, within=within)` finds, for many term sets at once.

        Why not `search`: on SQLite it restricts FTS5 with `rowid IN (...)`, which FTS5
        runs as one lookup per id, and scores every hit: ~60 ms per term set at 100k papers,
        30 s for a digest run's 500 topics. A rowid range over `within` is one scan and no
        scoring (~0.2 ms per term set), filtered here; UNION ALL sends up to 100 term sets
        per statement. PostgreSQL checks `@@` on the `within` rows, found by primary key.
        """
        found: dict[tuple[str, ...], set[int]] = {terms: set() for terms in term_sets}
        if not within:
            return {terms: frozenset() for terms in term_sets}
        arms: list[Select[int, int]] = []
        for index, terms in enumerate(term_sets):
            words = [t for t in terms if any(ch.isalnum() for ch in t)]  # as search does
            if words:
                arms.append(_match_arm(self.dialect, index, words, within))
        # Each arm binds its words, its index, and the range (SQLite) or the ids (PostgreSQL).
        per_arm = max(map(len, term_sets), default=0) + 1
        per_arm += len(within) if self.dialect == "postgresql" else 2
        budget = POSTGRES_VALUES if self.dialect == "postgresql" else SQLITE_VALUES
        per_statement = max(1, min(TERM_SETS_PER_STATEMENT, budget // per_arm))
        wanted = set(within)
        for first in range(0, len(arms), per_statement):
            statement = union_all(*arms[first : first + per_statement])
            for index, paper_id in await self.session.execute(statement):
                if paper_id in wanted:  # SQLite's range may hold papers of no list
                    found[term_sets[index]].add(paper_id)
        return {terms: frozenset(ids) for terms, ids in found.items()}


def _row(paper: PaperData, now: datetime) -> dict[str, object]:
    return {
        "arxiv_id": paper.arxiv_id,
        "title": paper.title,
        "abstract": paper.abstract,
        "authors": list(paper.authors),
        "ai_summary": paper.ai_summary,
        "ai_keywords": list(paper.ai_keywords),
        "published_at": paper.published_at,
        "upvotes": paper.upvotes,
        "github_repo": paper.github_repo,
        "github_stars": paper.github_stars,
        "project_page": paper.project_page,
        "thumbnail": paper.thumbnail,
        "organization": paper.organization,
        "is_demo": paper.is_demo,
        "fetched_at": now,
    }


def _nonempty_list(
    dialect: str, new: ColumnElement[list[str]], old: InstrumentedAttribute[list[str]]
) -> Case[list[str]]:
    if dialect == "postgresql":
        length = func.jsonb_array_length(new)
    else:
        length = func.json_array_length(new)
    return case((length > 0, new), else_=old)


_papers_fts = table("papers_fts", column("rowid"), column("papers_fts"))


def search_statement(
    dialect: str,
    terms: Sequence[str],
    limit: int,
    *,
    match_all: bool = True,
    within: Sequence[int] | None = None,
) -> tuple[Select[Paper], dict[str, object]]:
    """The one statement `search` runs (the best `limit` papers, loaded) and its parameters.
    Without `within` the statement is built once per shape and reused: a statement this size
    costs SQLAlchemy more to build than SQLite to run for a rare word."""
    params: dict[str, object] = {
        "limit": limit,
        "candidates": max(limit, CANDIDATES),
        "pool": RANK_POOL,
    }
    if dialect == "postgresql":
        params |= {f"term_{n}": term for n, term in enumerate(terms)}
        shape = (dialect, len(terms), match_all)
    else:
        params["expression"] = _fts5_expression(terms, match_all)
        shape = (dialect, 0, True)  # AND or OR is inside the expression
    if within is None:
        return _reused_search(*shape), params
    return _build_search(*shape, within), params


def _build_search(
    dialect: str, term_count: int, match_all: bool, within: Sequence[int] | None = None
) -> Select[Paper]:
    """Ranking, as SQL: the newest RANK_POOL matches are scored; of those, the CANDIDATES
    most relevant fall into tiers of a tenth of the best score each, so papers within about
    10% of each other count as equally relevant; within a tier, newer first, then more
    upvoted, then more relevant."""
    paper_id: InstrumentedAttribute[int] | ColumnClause[Any]
    if dialect == "postgresql":
        terms: list[BindParameter[str]] = [bindparam(f"term_{n}") for n in range(term_count)]
        pool, paper_id = _postgres_pool(terms, match_all), Paper.id
    else:
        pool, paper_id = _sqlite_pool(bindparam("expression")), _papers_fts.c.rowid
    if within is not None:
        pool = pool.where(paper_id.in_(list(within)))
    newest = pool.limit(bindparam("pool", type_=Integer)).subquery()
    best = (
        select(newest.c.id, newest.c.score)
        .order_by(newest.c.score.desc(), newest.c.id.desc())
        .limit(bindparam("candidates", type_=Integer))
        .subquery()
    )
    top = func.max(best.c.score).over()
    share = 10 * best.c.score / top
    # SQLite's CAST truncates (scores are positive, so that is floor); PostgreSQL's rounds.
    tier = func.floor(share) if dialect == "postgresql" else cast(share, Integer)
    tiered = select(
        best.c.id, best.c.score, case((top > 0, tier), else_=0).label("tier")
    ).subquery()
    return (
        select(Paper)
        .join(tiered, tiered.c.id == Paper.id)
        .order_by(
            tiered.c.tier.desc(),
            Paper.published_at.desc().nulls_last(),
            func.coalesce(Paper.upvotes, 0).desc(),
            tiered.c.score.desc(),
            Paper.id.desc(),
        )
        .limit(bindparam("limit", type_=Integer))
    )


_reused_search = functools.cache(_build_search)


def sqlite_search(
    dialect: Dialect,
    terms: Sequence[str],
    limit: int,
    *,
    match_all: bool = True,
    within: Sequence[int] | None = None,
) -> tuple[str, list[object]]:
    """`search_statement` on SQLite as SQL text and its positional (`?`) parameters: what
    `search` hands to SQLite, and what the benchmark times alone. The parameters are words
    and numbers, which SQLite takes as they are (no type needs converting them)."""
    query, params = search_statement("sqlite", terms, limit, match_all=match_all, within=within)
    # Without `within` the statement is the same each time; with it, the id list is new.
    compiled = _compiled(dialect, query) if within is None else query.compile(dialect=dialect)
    expanded = compiled.construct_expanded_state(params)  # an IN list becomes one `?` per id
    return expanded.statement, list(expanded.positional_parameters)


# One dialect per engine (a few in a process, more in the test suite), one reused statement.
@functools.lru_cache(maxsize=8)
def _compiled(dialect: Dialect, query: Select[Paper]) -> SQLCompiler:
    return query.compile(dialect=dialect)


async def _search_rows(
    connection: AsyncConnection,
    terms: Sequence[str],
    limit: int,
    match_all: bool,
    within: Sequence[int] | None,
) -> tuple[Dialect, list[sqlite3.Row]]:
    """The rows of `sqlite_search` on `connection`, fetched by aiosqlite in one call."""
    dialect = connection.dialect
    sql, values = sqlite_search(dialect, terms, limit, match_all=match_all, within=within)
    driver = (await connection.get_raw_connection()).driver_connection
    if not isinstance(driver, aiosqlite.Connection):
        raise TypeError(f"expected an aiosqlite connection, not {type(driver).__name__}")
    return dialect, list(await driver.execute_fetchall(sql, values))


def _detached_papers(dialect: Dialect, rows: Iterable[Sequence[Any]]) -> list[Paper]:
    """Papers from rows of the search statement, detached (as after a transaction) and loaded
    as a query loads them: each value converted by its column's type (`_paper_columns`) and
    set with `set_committed_value`, so that none reads as changed.

    SQLAlchemy has no public way to load rows fetched elsewhere: `merge_frozen_result` and
    `Session.merge(load=False)` take papers, not rows. Measured for 5 papers: writing each row
    into the instance's `__dict__` took 0.06 ms, `set_committed_value` 0.06 ms more, the
    constructor (`Paper(**values)`) 0.07 ms more, and that plus `Session.merge(load=False)`
    0.15 ms more. The statement run through the session instead cost ~0.25 ms more at 5,000
    papers (four calls into aiosqlite's thread, not one)."""
    columns = _paper_columns(dialect)
    new_paper = manager_of_class(Paper).new_instance
    papers = []
    for row in rows:
        paper = new_paper()
        for (key, load), value in zip(columns, row, strict=True):
            set_committed_value(paper, key, load(value) if load else value)
        make_transient_to_detached(paper)
        papers.append(paper)
    return papers


@functools.lru_cache(maxsize=8)
def _paper_columns(dialect: Dialect) -> list[tuple[str, Callable[[Any], Any] | None]]:
    """For each column the search statement selects, in order: the `Paper` attribute the
    mapper maps it to, and how `dialect` turns its stored value into Python's (JSON text to
    lists, timestamps to UTC datetimes, 0/1 to booleans)."""
    mapper = Paper.__mapper__
    return [
        (
            mapper.get_property_by_column(column).key,
            column.type.dialect_impl(dialect).result_processor(dialect, None),
        )
        for column in _reused_search("sqlite", 0, True).selected_columns
    ]


def _fts5_expression(terms: Sequence[str], match_all: bool) -> str:
    # Each term becomes a quoted FTS5 string, so no user text is read as query syntax.
    quoted = ['"' + term.replace('"', '""') + '"' for term in terms]
    return (" AND " if match_all else " OR ").join(quoted)


def _sqlite_pool(expression: str | BindParameter[str]) -> Select[int, float]:
    """The newest matches (rowid is the paper id) with their relevance, newest first."""
    # bm25 is smaller for better matches; weights: title, abstract, authors, keywords.
    score: ColumnClause[float] = literal_column("-bm25(papers_fts, 10.0, 1.0, 3.0, 5.0)")
    rowid = _papers_fts.c.rowid
    return (
        select(rowid.label("id"), score.label("score"))
        .where(_papers_fts.c.papers_fts.op("MATCH")(expression))
        .order_by(rowid.desc())
    )


def _postgres_pool(
    terms: Sequence[str | BindParameter[str]], match_all: bool
) -> Select[int, float]:
    parts = [func.plainto_tsquery(literal_column("'english'::regconfig"), term) for term in terms]
    query: ColumnElement[Any] = parts[0]
    for part in parts[1:]:
        query = query.op("&&" if match_all else "||")(part)
    vector: ColumnClause[Any] = literal_column("papers.search_vector")
    return (
        select(Paper.id.label("id"), func.ts_rank(vector, query).label("score"))
        .where(vector.op("@@")(query))
        .order_by(Paper.id.desc())
    )


def _match_arm(
    dialect: str, index: int, words: list[str], within: Sequence[int]
) -> Select[int, int]:
    """(index, paper id) of the papers matching every word, among or around `within`."""
    if dialect == "postgresql":
        return (
            _postgres_pool(words, match_all=True)
            .with_only_columns(literal(index).label("topic"), Paper.id)
            .order_by(None)
            .where(Paper.id.in_(list(within)))
        )
    rowid = _papers_fts.c.rowid
    return (
        _sqlite_pool(_fts5_expression(words, match_all=True))
        .with_only_columns(literal(index).label("topic"), rowid)
        .order_by(None)
        .where(rowid.between(min(within), max(within)))
    )
