"""Storage against real databases: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import delete, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import normalise_database_url
from storage import search_index
from storage.channels import PostRecord
from storage.db import alembic_config, create_engine, upgrade
from storage.models import ChannelSubscription, DailyListing, Paper
from storage.papers import PaperData
from storage.store import Repositories, Store
from storage.users import UserRepository

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DAY = date(2026, 11, 20)
APP_TABLES = {
    "papers",
    "daily_listings",
    "channel_subscriptions",
    "channel_topics",
    "posts",
    "saves",
    "follows",
    "digest_settings",
    "digest_items",
    "pending_saves",
    "weekly_posts",
    "weekly_items",
    "pending_reactions",
    "saved_later",
}


# Helpers


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def current_revision(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
        return [row[0] for row in rows]


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    def run(sync: Connection) -> None:
        command.downgrade(alembic_config(sync), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def add_papers(store: Store, *papers: PaperData) -> dict[str, int]:
    async with store.transaction() as repos:
        return await repos.papers.upsert(list(papers), NOW)


async def search_ids(store: Store, terms: list[str], **kwargs: object) -> list[str]:
    """arXiv ids of what `search` finds, best first."""
    kwargs.setdefault("limit", 20)
    async with store.transaction() as repos:
        papers = await repos.papers.search(terms, **kwargs)  # type: ignore[arg-type]
    return [paper.arxiv_id for paper in papers]


async def fts_integrity_check(store: Store) -> None:
    """SQLite: FTS5 raises if its index disagrees with the `papers` content table."""
    if store.engine.dialect.name == "sqlite":
        async with store.transaction() as repos:
            await repos.session.execute(
                text("INSERT INTO papers_fts(papers_fts) VALUES ('integrity-check')")
            )


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes, PostgreSQL aware ones."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def paper(arxiv_id: str, title: str, **fields: object) -> PaperData:
    return PaperData(arxiv_id=arxiv_id, title=title, **fields)  # type: ignore[arg-type]


# Migrations

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


async def test_migrations_upgrade_from_empty_and_again_is_a_no_op(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert not (await table_names(engine)) & APP_TABLES
        await upgrade(engine)
        assert await table_names(engine) >= APP_TABLES
        assert await current_revision(engine) == [HEAD]

        store = Store(engine)
        ids = await add_papers(store, paper("2401.00001", "Sparse attention at scale"))
        await upgrade(engine)  # second run: nothing to do, nothing lost
        assert await current_revision(engine) == [HEAD]
        async with store.transaction() as repos:
            assert await repos.papers.count() == 1
            assert (await repos.papers.by_arxiv_id("2401.00001")).id == ids["2401.00001"]
        assert await search_ids(store, ["sparse"]) == ["2401.00001"]
    finally:
        await engine.dispose()


async def test_migrations_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        await add_papers(Store(engine), paper("2401.00001", "Sparse attention at scale"))
        await downgrade(engine, "base")
        remaining = await table_names(engine)
        assert not remaining & APP_TABLES
        assert not {name for name in remaining if name.startswith("papers_fts")}
        assert await current_revision(engine) == []

        await upgrade(engine)
        assert await table_names(engine) >= APP_TABLES
        assert await current_revision(engine) == [HEAD]
        store = Store(engine)
        async with store.transaction() as repos:
            assert await repos.papers.count() == 0
        # The full-text machinery (FTS5 table + triggers, or the generated tsvector) is back.
        await add_papers(store, paper("2401.00002", "Dense retrieval for code"))
        assert await search_ids(store, ["retrieval"]) == ["2401.00002"]
        await fts_integrity_check(store)
    finally:
        await engine.dispose()


async def test_store_open_migrates(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        assert await table_names(store.engine) >= APP_TABLES
    finally:
        await store.close()


async def test_a_postgresql_url_with_libpq_sslmode_connects(postgres_server: Any) -> None:
    """Hosted PostgreSQL URLs end in `?sslmode=...`; asyncpg takes it as `ssl` (the test
    server has no TLS, so the modes that may go without it)."""
    with postgres_server.database() as url:
        for mode in ("disable", "prefer"):
            plain = url.replace("postgresql+asyncpg://", "postgres://")
            store = await Store.open(normalise_database_url(f"{plain}?sslmode={mode}"))
            try:
                assert await table_names(store.engine) >= APP_TABLES
            finally:
                await store.close()


async def test_transaction_rolls_back_on_error(store: Store) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with store.transaction() as repos:
            await repos.papers.upsert([paper("2401.00001", "Lost")], NOW)
            raise RuntimeError("boom")
    async with store.transaction() as repos:
        assert await repos.papers.count() == 0


# Papers: upsert


async def test_upsert_inserts_then_updates_by_arxiv_id(store: Store) -> None:
    first = await add_papers(
        store,
        paper("2401.00001", "First title", abstract="One.", upvotes=3),
        paper("2401.00002", "Other", abstract="Two."),
    )
    assert set(first) == {"2401.00001", "2401.00002"}
    assert first["2401.00001"] != first["2401.00002"]

    later = NOW + timedelta(hours=1)
    async with store.transaction() as repos:
        again = await repos.papers.upsert(
            [paper("2401.00001", "Revised title", abstract="One, revised.", upvotes=9)], later
        )
    assert again == {"2401.00001": first["2401.00001"]}
    async with store.transaction() as repos:
        assert await repos.papers.count() == 2
        row = await repos.papers.by_arxiv_id("2401.00001")
        assert row is not None
        assert (row.title, row.abstract, row.upvotes) == ("Revised title", "One, revised.", 9)
        assert as_utc(row.fetched_at) == later
        assert (await repos.papers.by_arxiv_id("2401.00002")).title == "Other"
        assert await repos.papers.by_arxiv_id("2401.99999") is None


async def test_upsert_never_erases_richer_fields(store: Store) -> None:
    published = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)
    rich = PaperData(
        arxiv_id="2401.00001",
        title="Rich title",
        abstract="A full abstract.",
        authors=("Ada Lovelace", "Alan Turing"),
        ai_summary="An AI summary.",
        ai_keywords=("analytical engine",),
        published_at=published,
        upvotes=42,
        github_repo="https://github.com/example/repo",
        github_stars=7,
        project_page="https://example.org",
        thumbnail="https://example.org/thumb.png",
        organization="Example Lab",
    )
    await add_papers(store, rich)
    sparse = PaperData(arxiv_id="2401.00001", title="")  # e.g. a thin search result
    await add_papers(store, sparse)

    async with store.transaction() as repos:
        row = await repos.papers.by_arxiv_id("2401.00001")
    assert row is not None
    assert row.title == "Rich title"
    assert row.abstract == "A full abstract."
    assert row.authors == ["Ada Lovelace", "Alan Turing"]
    assert row.ai_summary == "An AI summary."
    assert row.ai_keywords == ["analytical engine"]
    assert as_utc(row.published_at) == published
    assert row.upvotes == 42
    assert row.github_repo == "https://github.com/example/repo"
    assert row.github_stars == 7
    assert row.project_page == "https://example.org"
    assert row.thumbnail == "https://example.org/thumb.png"
    assert row.organization == "Example Lab"

    # New non-empty values do replace the old ones.
    await add_papers(
        store,
        PaperData(
            arxiv_id="2401.00001",
            title="Rich title v2",
            authors=("Grace Hopper",),
            ai_keywords=("compilers", "cobol"),
            upvotes=50,
        ),
    )
    async with store.transaction() as repos:
        row = await repos.papers.by_arxiv_id("2401.00001")
    assert row is not None
    assert (row.title, row.upvotes) == ("Rich title v2", 50)
    assert row.authors == ["Grace Hopper"]
    assert row.ai_keywords == ["compilers", "cobol"]
    assert row.abstract == "A full abstract."


async def test_upsert_duplicate_ids_in_one_batch_last_wins(store: Store) -> None:
    ids = await add_papers(
        store, paper("2401.00001", "Early version"), paper("2401.00001", "Late version")
    )
    assert list(ids) == ["2401.00001"]
    async with store.transaction() as repos:
        assert await repos.papers.count() == 1
        assert (await repos.papers.by_arxiv_id("2401.00001")).title == "Late version"
        assert await repos.papers.upsert([], NOW) == {}
        by_ids = await repos.papers.by_ids([ids["2401.00001"], 999_999])
        assert {p.arxiv_id for p in by_ids.values()} == {"2401.00001"}
        assert await repos.papers.by_ids([]) == {}


async def test_upsert_keeps_non_ascii_text(store: Store) -> None:
    await add_papers(
        store,
        paper(
            "2401.00001",
            "Über-efficient décodage",
            authors=("Jürgen Schmidhuber", "Łukasz Kaiser", "王小明"),
            ai_keywords=("décodage spéculatif",),
        ),
    )
    async with store.transaction() as repos:
        row = await repos.papers.by_arxiv_id("2401.00001")
    assert row is not None
    assert row.authors == ["Jürgen Schmidhuber", "Łukasz Kaiser", "王小明"]
    assert row.ai_keywords == ["décodage spéculatif"]


# Papers: daily listings


async def test_record_listing_replaces_the_day_and_keeps_ranks(store: Store) -> None:
    ids = await add_papers(store, *(paper(f"2401.0000{n}", f"Paper {n}") for n in range(1, 5)))
    a, b, c, d = (ids[f"2401.0000{n}"] for n in range(1, 5))
    other_day = DAY + timedelta(days=1)
    async with store.transaction() as repos:
        await repos.papers.record_listing(DAY, [(b, 10), (a, 5), (c, None)])
        await repos.papers.record_listing(other_day, [(d, 1)])
    async with store.transaction() as repos:
        assert [p.id for p in await repos.papers.listing(DAY)] == [b, a, c]
        rows = await repos.session.execute(
            select(DailyListing.paper_id, DailyListing.rank, DailyListing.upvotes)
            .where(DailyListing.day == DAY)
            .order_by(DailyListing.rank)
        )
        assert rows.all() == [(b, 1, 10), (a, 2, 5), (c, 3, None)]

    async with store.transaction() as repos:  # a refetch of the day replaces it whole
        await repos.papers.record_listing(DAY, [(c, 30), (b, 11)])
    async with store.transaction() as repos:
        assert [p.id for p in await repos.papers.listing(DAY)] == [c, b]
        assert [p.id for p in await repos.papers.listing(other_day)] == [d]

    async with store.transaction() as repos:
        await repos.papers.record_listing(DAY, [])
    async with store.transaction() as repos:
        assert await repos.papers.listing(DAY) == []
        assert [p.id for p in await repos.papers.listing(other_day)] == [d]


async def test_latest_listing_day_and_demo_filter(store: Store) -> None:
    async with store.transaction() as repos:
        assert await repos.papers.latest_listing_day() is None
    ids = await add_papers(
        store,
        paper("2401.00001", "Real"),
        paper("2401.00002", "Demo", is_demo=True),
    )
    async with store.transaction() as repos:
        await repos.papers.record_listing(DAY, [(ids["2401.00001"], 1)])
        await repos.papers.record_listing(DAY - timedelta(days=3), [(ids["2401.00001"], 1)])
        await repos.papers.record_listing(DAY + timedelta(days=2), [(ids["2401.00002"], 1)])
    async with store.transaction() as repos:
        assert await repos.papers.latest_listing_day() == DAY + timedelta(days=2)
        assert await repos.papers.latest_listing_day(demo=True) == DAY + timedelta(days=2)
        assert await repos.papers.latest_listing_day(demo=False) == DAY


async def test_listed_between_is_inclusive_and_distinct(store: Store) -> None:
    ids = await add_papers(store, *(paper(f"2401.0000{n}", f"Paper {n}") for n in range(1, 5)))
    a, b, c, d = (ids[f"2401.0000{n}"] for n in range(1, 5))
    async with store.transaction() as repos:
        await repos.papers.record_listing(DAY - timedelta(days=1), [(d, 1)])
        await repos.papers.record_listing(DAY, [(a, 1), (b, 2)])
        await repos.papers.record_listing(DAY + timedelta(days=1), [(a, 1), (c, 2)])
        await repos.papers.record_listing(DAY + timedelta(days=2), [(d, 1)])
    async with store.transaction() as repos:
        between = await repos.papers.listed_between(DAY, DAY + timedelta(days=1))
        assert sorted(between) == sorted([a, b, c])
        assert await repos.papers.listed_between(DAY, DAY) in ([a, b], [b, a])
        assert await repos.papers.listed_between(DAY + timedelta(days=5), DAY + timedelta(9)) == []


async def test_deleting_a_paper_removes_its_listings(store: Store) -> None:
    ids = await add_papers(store, paper("2401.00001", "Gone"), paper("2401.00002", "Stays"))
    async with store.transaction() as repos:
        await repos.papers.record_listing(DAY, [(ids["2401.00001"], 1), (ids["2401.00002"], 2)])
    async with store.transaction() as repos:
        await repos.session.execute(delete(Paper).where(Paper.arxiv_id == "2401.00001"))
    async with store.transaction() as repos:
        assert [p.arxiv_id for p in await repos.papers.listing(DAY)] == ["2401.00002"]


# Papers: full-text search

CORPUS = (
    paper(
        "2401.00001",
        "Reducing inference latency in large language models",
        abstract="We make decoding faster with a draft model and careful batching.",
        authors=("Ada Lovelace",),
        ai_keywords=("speculative decoding",),
    ),
    paper(
        "2401.00002",
        "Graph neural networks for molecules",
        abstract=(
            "We predict molecular properties with message passing. As a side result we "
            "also measure the latency of the model on commodity hardware, which is low."
        ),
        authors=("Alan Turing", "Jürgen Schmidhuber"),
        ai_keywords=("molecular graphs",),
    ),
    paper(
        "2401.00003",
        "Scaling laws for vision transformers",
        abstract="Bigger images, bigger models, better accuracy.",
        authors=("Grace Hopper", "Łukasz Kaiser"),
        ai_keywords=("diffusion transformer", "holography"),
    ),
)


async def test_search_finds_title_abstract_author_and_keyword(store: Store) -> None:
    await add_papers(store, *CORPUS)
    assert await search_ids(store, ["molecules"]) == ["2401.00002"]  # title
    assert await search_ids(store, ["batching"]) == ["2401.00001"]  # abstract
    assert await search_ids(store, ["Lovelace"]) == ["2401.00001"]  # author
    assert await search_ids(store, ["Schmidhuber"]) == ["2401.00002"]  # author, stemmable
    assert await search_ids(store, ["Turing"]) == ["2401.00002"]
    assert await search_ids(store, ["Kaiser"]) == ["2401.00003"]
    assert await search_ids(store, ["Łukasz"]) == ["2401.00003"]  # non-ASCII author
    assert await search_ids(store, ["Jürgen"]) == ["2401.00002"]
    assert await search_ids(store, ["holography"]) == ["2401.00003"]  # AI keyword only
    assert await search_ids(store, ["speculative"]) == ["2401.00001"]
    assert await search_ids(store, ["MOLECULES"]) == ["2401.00002"]  # case-insensitive
    assert await search_ids(store, ["quantum"]) == []


async def test_search_ranks_title_match_above_abstract_only_match(store: Store) -> None:
    await add_papers(store, *CORPUS)
    assert await search_ids(store, ["latency"], limit=10) == ["2401.00001", "2401.00002"]


async def test_search_orders_equally_relevant_papers_by_recency_then_upvotes(
    store: Store,
) -> None:
    # Columns of the same lengths holding the word the same number of times: equal scores.
    def on_retrieval(arxiv_id: str, day: int | None, upvotes: int | None, title: str) -> PaperData:
        return paper(
            arxiv_id,
            title,
            abstract="We study how agents plan with tools.",
            published_at=datetime(2024, 1, day, tzinfo=UTC) if day else None,
            upvotes=upvotes,
        )

    await add_papers(
        store,
        on_retrieval("2401.00010", 1, 0, "Retrieval for planning agents"),  # oldest
        on_retrieval("2401.00011", 9, 5, "Retrieval for coding agents"),
        on_retrieval("2401.00012", 9, 50, "Retrieval for robotic agents"),  # same day, more votes
        on_retrieval("2401.00013", 5, 0, "Retrieval for driving agents"),
        # Newest of all, but the word is only in its abstract: a lower tier.
        paper(
            "2401.00014",
            "Planning agents with tools",
            abstract="Agents plan with tools and a retrieval step.",
            published_at=datetime(2024, 1, 20, tzinfo=UTC),
            upvotes=100,
        ),
        on_retrieval("2401.00015", None, None, "Retrieval for undated agents"),
    )
    assert await search_ids(store, ["retrieval"]) == [
        "2401.00012", "2401.00011", "2401.00013", "2401.00010", "2401.00015", "2401.00014",
    ]  # fmt: skip
    assert await search_ids(store, ["retrieval"], limit=2) == ["2401.00012", "2401.00011"]


async def test_search_results_hold_what_was_stored(store: Store) -> None:
    full = paper(
        "2401.00020",
        "Sparse attention for tiny devices",
        abstract="Attention at the edge.",
        authors=("Łukasz Kaiser", "李飞飞"),
        ai_summary="Sparse attention fits on phones.",
        ai_keywords=("sparse attention", "edge"),
        published_at=datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        upvotes=7,
        github_repo="https://github.com/example/sparse",
        github_stars=12,
        project_page="https://example.org/sparse",
        thumbnail="https://example.org/sparse.png",
        organization="Example Lab",
    )
    bare = paper("demo-1", "Sparse attention, the demo", is_demo=True)
    ids = await add_papers(store, full, bare)

    def fields(found: Paper) -> dict[str, Any]:
        return {column.key: getattr(found, column.key) for column in Paper.__table__.columns}

    async with store.transaction() as repos:
        stored = {p.arxiv_id: fields(p) for p in (await repos.papers.by_ids(ids.values())).values()}
    async with store.transaction() as repos:
        found = await repos.papers.search(["sparse", "attention"], limit=5)
    assert {p.arxiv_id: fields(p) for p in found} == stored
    async with store.reading() as repos:  # on SQLite, outside the session's transaction
        found = await repos.papers.search(["sparse", "attention"], limit=5)
        assert not repos.session.dirty
    assert {p.arxiv_id: fields(p) for p in found} == stored
    assert stored["2401.00020"]["published_at"] == full.published_at  # tz-aware, microseconds
    assert stored["demo-1"]["is_demo"] is True and stored["demo-1"]["authors"] == []

    # Inside a transaction, the search sees what that transaction wrote and has not committed.
    class RolledBack(Exception):
        pass

    with pytest.raises(RolledBack):
        async with store.transaction() as repos:
            await repos.papers.upsert([paper("2401.00021", "Sparse attention again")], NOW)
            found = await repos.papers.search(["sparse"], limit=5)
            assert "2401.00021" in {p.arxiv_id for p in found}
            raise RolledBack
    assert "2401.00021" not in await search_ids(store, ["sparse"])


async def test_a_sqlite_connection_comes_back_to_the_pool_with_no_transaction_open(
    tmp_path: Path,
) -> None:
    """The pool's reset on SQLite (`create_engine`): a transaction SQLAlchemy did not begin
    (here, one begun on the driver) is rolled back when its connection is returned, so the
    write is lost and the next user of that connection starts clean."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reset.db'}", pool_size=1)
    try:
        await upgrade(engine)
        async with engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            await driver.execute("BEGIN")
            await driver.execute(
                "INSERT INTO papers (arxiv_id, title, abstract, authors, ai_keywords, is_demo,"
                " fetched_at) VALUES ('2401.00099', 'Left open', '', '[]', '[]', 0, '2026-11-23')"
            )
            assert driver.in_transaction
        async with engine.connect() as connection:
            again = (await connection.get_raw_connection()).driver_connection
            assert again is driver  # the pool's one connection
            assert not again.in_transaction
        async with Store(engine).reading() as repos:
            assert await repos.papers.count() == 0
    finally:
        await engine.dispose()


async def test_search_matches_word_stems(store: Store) -> None:
    await add_papers(store, *CORPUS)
    assert await search_ids(store, ["latencies"]) == ["2401.00001", "2401.00002"]
    assert await search_ids(store, ["molecule"]) == ["2401.00002"]
    assert await search_ids(store, ["scaling"]) == await search_ids(store, ["scaled"])
    assert await search_ids(store, ["scaled"]) == ["2401.00003"]


async def test_search_match_all_versus_any(store: Store) -> None:
    await add_papers(store, *CORPUS)
    assert await search_ids(store, ["latency", "molecules"]) == ["2401.00002"]
    assert await search_ids(store, ["latency", "transformers"]) == []
    either = await search_ids(store, ["latency", "transformers"], match_all=False)
    assert sorted(either) == ["2401.00001", "2401.00002", "2401.00003"]
    assert await search_ids(store, ["latency", "   "]) == ["2401.00001", "2401.00002"]
    assert await search_ids(store, []) == []
    assert await search_ids(store, ["", "  "]) == []


async def test_search_within_and_limit(store: Store) -> None:
    ids = await add_papers(store, *CORPUS)
    second = ids["2401.00002"]
    assert await search_ids(store, ["latency"], within=[second]) == ["2401.00002"]
    assert await search_ids(store, ["latency"], within=[ids["2401.00003"]]) == []
    assert await search_ids(store, ["latency"], within=[]) == []
    assert await search_ids(store, ["latency"], limit=1) == ["2401.00001"]


QUERY_SYNTAX = [
    '"latency"',
    '"latency',
    "latency*",
    "late*",
    "*",
    "NEAR",
    "NEAR(latency models, 2)",
    "-latency",
    "latency -models",
    "title:latency",
    "title : latency",
    ":",
    "'; DROP TABLE papers; --",
    "(latency",
    "latency)",
    "()",
    "AND",
    "OR",
    "NOT",
    "latency OR NOT",
    "^latency",
    "latency & !models | x",
    "\\",
    "'",
    "%_",
    "{latency}",
    "latency:*",
]


@pytest.mark.parametrize("query", QUERY_SYNTAX)
async def test_search_treats_query_syntax_as_plain_text(store: Store, query: str) -> None:
    await add_papers(store, *CORPUS)
    words = query.replace("'", " ").split()
    for terms, match_all in (([query], True), (words, True), (words, False)):
        found = await search_ids(store, terms, match_all=match_all)
        assert set(found) <= {"2401.00001", "2401.00002", "2401.00003"}
    async with store.transaction() as repos:
        assert await repos.papers.count() == len(CORPUS)  # nothing was dropped


async def test_search_operators_are_not_operators(store: Store) -> None:
    await add_papers(store, *CORPUS)
    # Quotes, a leading minus, a prefix star or a column filter around a word leave the word.
    for term in ('"latency"', "-latency", "latency*", "(latency)", "latency:"):
        assert await search_ids(store, [term]) == ["2401.00001", "2401.00002"], term
    # "late*" is no prefix query: no paper has the word "late".
    assert await search_ids(store, ["late*"]) == []
    # A word-less term is no term at all: it neither matches everything nor blocks a match.
    assert await search_ids(store, ["latency", "*"]) == ["2401.00001", "2401.00002"]
    assert await search_ids(store, ["*"]) == []
    assert await search_ids(store, ["-"]) == []
    assert await search_ids(store, ["NOT", "latency"], match_all=False) == [
        "2401.00001",
        "2401.00002",
    ]
    assert await search_ids(store, ["'; DROP TABLE papers; --"]) == []
    async with store.transaction() as repos:
        assert await repos.papers.count() == len(CORPUS)


async def test_search_index_follows_updates_and_deletes(store: Store) -> None:
    await add_papers(store, *CORPUS)
    # Update through upsert.
    await add_papers(store, paper("2401.00003", "Holographic memory for robots"))
    assert await search_ids(store, ["robots"]) == ["2401.00003"]
    assert await search_ids(store, ["vision"]) == []
    assert await search_ids(store, ["accuracy"]) == ["2401.00003"]  # kept abstract
    # Update through the ORM.
    async with store.transaction() as repos:
        row = await repos.papers.by_arxiv_id("2401.00002")
        assert row is not None
        row.title = "Message passing chemistry"
        row.authors = ["Marie Curie"]
    assert await search_ids(store, ["chemistry"]) == ["2401.00002"]
    assert await search_ids(store, ["Curie"]) == ["2401.00002"]
    assert await search_ids(store, ["Turing"]) == []
    assert await search_ids(store, ["molecules"]) == []
    # Delete.
    async with store.transaction() as repos:
        await repos.session.execute(delete(Paper).where(Paper.arxiv_id == "2401.00001"))
    assert await search_ids(store, ["batching"]) == []
    assert await search_ids(store, ["latency"]) == ["2401.00002"]
    await fts_integrity_check(store)
    # A new paper that reuses nothing of the old one is found, the deleted one never is.
    await add_papers(store, paper("2401.00004", "Batching requests for serving"))
    assert await search_ids(store, ["batching"]) == ["2401.00004"]
    await fts_integrity_check(store)


# Full-text index upkeep


async def test_a_full_text_index_in_pieces_is_merged_into_one(store: Store) -> None:
    # A transaction per paper, as refreshes and searches that learn papers write: on SQLite,
    # each leaves FTS5 a segment.
    for n in range(6):
        await add_papers(store, paper(f"2401.{n:05d}", f"Paper {n} on serving latency"))
    found = await search_ids(store, ["serving", "latency"])
    assert len(found) == 6
    if store.engine.dialect.name == "sqlite":
        assert len(await search_index.segment_sizes(store.engine)) == 6
        assert await search_index.compact(store.engine) >= 1
        assert len(await search_index.segment_sizes(store.engine)) == 1
    else:  # PostgreSQL's GIN index is left to PostgreSQL
        assert await search_index.segment_sizes(store.engine) == []
    assert await search_index.compact(store.engine) == 0
    assert await search_ids(store, ["serving", "latency"]) == found
    await fts_integrity_check(store)


async def test_small_writes_beside_a_merged_index_wait_and_unchanged_ones_write_nothing(
    tmp_path: Path,
) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'papers.db'}")
    try:
        papers = [
            paper(f"2401.{n:05d}", f"Paper {n}", abstract=" ".join(f"w{n}x{k}" for k in range(40)))
            for n in range(300)
        ]
        await add_papers(store, *papers)
        (largest,) = await search_index.segment_sizes(store.engine)
        assert largest >= 20
        # Re-upserting unchanged papers, as each refresh does, leaves the index as it was.
        await add_papers(store, *papers)
        assert await search_index.segment_sizes(store.engine) == [largest]
        # One new paper is a small segment: a merge would rewrite the index to fold it in.
        await add_papers(store, paper("2401.99999", "Speculative decoding"))
        assert await search_index.segment_sizes(store.engine) == [largest, 1]
        assert await search_index.compact(store.engine) == 0
        assert len(await search_index.segment_sizes(store.engine)) == 2
        assert await search_ids(store, ["speculative"]) == ["2401.99999"]
        # A changed title is re-indexed: found by its new words only.
        await add_papers(store, paper("2401.00007", "Holographic memory"))
        assert await search_ids(store, ["holographic"]) == ["2401.00007"]
        assert await search_ids(store, ["paper", "7"]) == []
        await fts_integrity_check(store)
    finally:
        await store.close()


# Channels

SLACK = ("slack", "T1")


async def subscribe(
    repos: Repositories, *, workspace: str = "T1", **changes: Any
) -> ChannelSubscription:
    """Channel C1's daily post, 09:00 UTC, 5 papers on weekdays unless `changes` say else."""
    settings: dict[str, Any] = dict(
        post_time="09:00", timezone="UTC", count=5, days="mon-fri", by="U1", now=NOW
    )
    return await repos.channels.subscribe("slack", workspace, "C1", **(settings | changes))


async def test_subscribe_creates_then_updates_keeping_topics(store: Store) -> None:
    async with store.transaction() as repos:
        assert await repos.channels.subscription(*SLACK, "C1") is None
        sub = await subscribe(repos, timezone="Europe/Berlin")
        assert await repos.channels.add_topic(sub.id, "latency")
        first_id = sub.id
    async with store.transaction() as repos:
        sub = await subscribe(
            repos, post_time="07:30", timezone="Asia/Tokyo", count=3, days="mon,wed", by="U2"
        )
        assert sub.id == first_id
    async with store.transaction() as repos:
        sub = await repos.channels.subscription(*SLACK, "C1")
        assert sub is not None
        assert (sub.enabled, sub.post_time, sub.timezone, sub.count, sub.created_by) == (
            True,
            "07:30",
            "Asia/Tokyo",
            3,
            "U2",
        )
        assert sub.days == "mon,wed"
        assert await repos.channels.topics(sub.id) == ["latency"]
        count = await repos.session.scalar(text("SELECT count(*) FROM channel_subscriptions"))
        assert count == 1


async def test_channel_topics_add_and_remove(store: Store) -> None:
    async with store.transaction() as repos:
        sub = await subscribe(repos)
        assert await repos.channels.add_topic(sub.id, "robotics") is True
        assert await repos.channels.add_topic(sub.id, "latency") is True
        assert await repos.channels.add_topic(sub.id, "latency") is False
        sub_id = sub.id
    async with store.transaction() as repos:
        assert await repos.channels.topics(sub_id) == ["latency", "robotics"]
        assert await repos.channels.remove_topic(sub_id, "latency") is True
        assert await repos.channels.remove_topic(sub_id, "latency") is False
    async with store.transaction() as repos:
        assert await repos.channels.topics(sub_id) == ["robotics"]


async def test_record_post_and_paper_for_message(store: Store) -> None:
    ids = await add_papers(store, *CORPUS)
    a, b = ids["2401.00001"], ids["2401.00002"]
    async with store.transaction() as repos:
        await repos.channels.record_posts([PostRecord(*SLACK, "C1", "1700000000.000100", a, NOW)])
        await repos.channels.record_posts([PostRecord(*SLACK, "C1", "1700000000.000200", b, NOW)])
    async with store.transaction() as repos:
        channels = repos.channels
        assert await channels.paper_for_message(*SLACK, "C1", "1700000000.000100") == a
        assert await channels.paper_for_message(*SLACK, "C1", "1700000000.000200") == b
        assert await channels.paper_for_message(*SLACK, "C1", "1700000000.999999") is None
        assert await channels.paper_for_message(*SLACK, "C2", "1700000000.000100") is None
        assert await channels.paper_for_message("slack", "T2", "C1", "1700000000.000100") is None
        assert await channels.paper_for_message("discord", "T1", "C1", "1700000000.000100") is None


async def test_posted_papers(store: Store) -> None:
    ids = await add_papers(store, *CORPUS)
    a, b, c = (ids[k] for k in ("2401.00001", "2401.00002", "2401.00003"))
    async with store.transaction() as repos:
        await repos.channels.record_posts([PostRecord(*SLACK, "C1", "m1", a, NOW)])
        await repos.channels.record_posts([PostRecord(*SLACK, "C1", "m2", b, NOW)])
        await repos.channels.record_posts([PostRecord(*SLACK, "C2", "m3", c, NOW)])
    async with store.transaction() as repos:
        assert await repos.channels.posted_papers(*SLACK, "C1", [a, b, c]) == {a, b}
        assert await repos.channels.posted_papers(*SLACK, "C1", [c]) == set()
        assert await repos.channels.posted_papers(*SLACK, "C2", [a, b, c]) == {c}
        assert await repos.channels.posted_papers(*SLACK, "C1", []) == set()
        assert await repos.channels.posted_papers("slack", "T2", "C1", [a, b, c]) == set()


# Users

USER = ("slack", "T1", "U1")


async def test_save_twice_keeps_one_and_unsave(store: Store) -> None:
    ids = await add_papers(store, *CORPUS)
    a = ids["2401.00001"]
    async with store.transaction() as repos:
        assert await repos.users.save(*USER, a, NOW) is True
    async with store.transaction() as repos:
        assert await repos.users.save(*USER, a, NOW + timedelta(minutes=1)) is False
    async with store.transaction() as repos:
        assert [p.id for p in await repos.users.saved(*USER)] == [a]
        assert await repos.users.unsave(*USER, a) is True
        assert await repos.users.unsave(*USER, a) is False
    async with store.transaction() as repos:
        assert await repos.users.saved(*USER) == []


async def test_saved_is_most_recent_first(store: Store) -> None:
    ids = await add_papers(store, *CORPUS)
    a, b, c = (ids[k] for k in ("2401.00001", "2401.00002", "2401.00003"))
    async with store.transaction() as repos:
        await repos.users.save(*USER, b, NOW)
        await repos.users.save(*USER, a, NOW + timedelta(minutes=5))
        await repos.users.save(*USER, c, NOW + timedelta(minutes=1))
    async with store.transaction() as repos:
        assert [p.id for p in await repos.users.saved(*USER)] == [a, c, b]
        platform, workspace, user = USER
        await repos.users.save(platform, workspace, "other", b, NOW)
        recent = await repos.users.recent_saves_many(
            platform, workspace, [user, "other", "nobody"], 2
        )
    assert recent == {
        user: [(a, ["speculative decoding"]), (c, ["diffusion transformer", "holography"])],
        "other": [(b, ["molecular graphs"])],
    }


async def test_follow_unfollow_following(store: Store) -> None:
    async with store.transaction() as repos:
        assert await repos.users.follow(*USER, "robotics", NOW) is True
        assert await repos.users.follow(*USER, "latency", NOW) is True
    async with store.transaction() as repos:
        assert await repos.users.follow(*USER, "latency", NOW) is False
        assert await repos.users.following(*USER) == ["latency", "robotics"]
        assert await repos.users.unfollow(*USER, "latency") is True
        assert await repos.users.unfollow(*USER, "latency") is False
    async with store.transaction() as repos:
        assert await repos.users.following(*USER) == ["robotics"]


async def test_digest_settings_set_update_and_off(store: Store) -> None:
    async with store.transaction() as repos:
        assert await repos.users.digest_setting(*USER) is None
        await repos.users.set_digest(
            *USER, cadence="daily", weekday=None, send_time="08:00", timezone="UTC", now=NOW
        )
    async with store.transaction() as repos:
        await repos.users.set_digest(
            *USER, cadence="weekly", weekday=0, send_time="07:15", timezone="Asia/Tokyo", now=NOW
        )
    async with store.transaction() as repos:
        setting = await repos.users.digest_setting(*USER)
        assert setting is not None
        assert (setting.cadence, setting.weekday, setting.send_time, setting.timezone) == (
            "weekly",
            0,
            "07:15",
            "Asia/Tokyo",
        )
        count = await repos.session.scalar(text("SELECT count(*) FROM digest_settings"))
        assert count == 1
        assert await repos.users.digest_off(*USER) is True
        assert await repos.users.digest_off(*USER) is False
    async with store.transaction() as repos:
        assert await repos.users.digest_setting(*USER) is None


async def already_sent(
    users: UserRepository, platform: str, workspace: str, user: str, candidates: list[int]
) -> set[int]:
    """Which of `candidates` `user` already got in a digest."""
    sent = await users.already_sent_many(platform, workspace, [user], candidates)
    return sent.get(user, set())


async def test_record_sent_and_already_sent(store: Store) -> None:
    ids = await add_papers(store, *CORPUS)
    a, b, c = (ids[k] for k in ("2401.00001", "2401.00002", "2401.00003"))
    async with store.transaction() as repos:
        assert await already_sent(repos.users, *USER, [a, b, c]) == set()
        await repos.users.record_sent(*USER, [a, b], NOW)
    async with store.transaction() as repos:
        assert await already_sent(repos.users, *USER, [a, b, c]) == {a, b}
        assert await already_sent(repos.users, *USER, [c]) == set()
        assert await already_sent(repos.users, *USER, []) == set()
        await repos.users.record_sent(*USER, [c, a], NOW)  # a again: harmless
    async with store.transaction() as repos:
        assert await already_sent(repos.users, *USER, [a, b, c]) == {a, b, c}


OTHERS = [
    ("slack", "T1", "U2"),  # another user, same workspace
    ("slack", "T2", "U1"),  # same user id, another workspace
    ("discord", "T1", "U1"),  # same ids, another platform
]


async def test_user_rows_never_leak_across_platform_workspace_or_user(store: Store) -> None:
    ids = await add_papers(store, *CORPUS)
    a, b = ids["2401.00001"], ids["2401.00002"]
    async with store.transaction() as repos:
        await repos.users.save(*USER, a, NOW)
        await repos.users.follow(*USER, "latency", NOW)
        await repos.users.set_digest(
            *USER, cadence="daily", weekday=None, send_time="08:00", timezone="UTC", now=NOW
        )
        await repos.users.record_sent(*USER, [a], NOW)
    async with store.transaction() as repos:
        users = repos.users
        for other in OTHERS:
            assert await users.saved(*other) == [], other
            assert await users.following(*other) == [], other
            assert await users.digest_setting(*other) is None, other
            assert await already_sent(users, *other, [a, b]) == set(), other
            assert await users.unsave(*other, a) is False, other
            assert await users.unfollow(*other, "latency") is False, other
            assert await users.digest_off(*other) is False, other
            # Each of them can hold the same rows independently.
            assert await users.save(*other, a, NOW) is True, other
            assert await users.follow(*other, "latency", NOW) is True, other
    async with store.transaction() as repos:
        assert [p.id for p in await repos.users.saved(*USER)] == [a]
        assert await repos.users.following(*USER) == ["latency"]
        assert await repos.users.digest_setting(*USER) is not None
        assert await already_sent(repos.users, *USER, [a, b]) == {a}
        assert await repos.users.unsave(*OTHERS[0], a) is True
    async with store.transaction() as repos:
        assert [p.id for p in await repos.users.saved(*USER)] == [a]  # untouched by U2's unsave


async def test_channel_rows_never_leak_across_workspaces(store: Store) -> None:
    async with store.transaction() as repos:
        sub = await subscribe(repos)
        other = await subscribe(repos, workspace="T2", post_time="10:00", count=2, by="U9")
        assert other.id != sub.id
        await repos.channels.add_topic(sub.id, "latency")
    async with store.transaction() as repos:
        assert (await repos.channels.subscription("slack", "T2", "C1")).post_time == "10:00"
        assert (await repos.channels.subscription(*SLACK, "C1")).post_time == "09:00"
        assert await repos.channels.subscription("discord", "T1", "C1") is None
        assert await repos.channels.topics(other.id) == []


async def test_inbox_recognises_redeliveries_and_forgets_old_events(store: Store) -> None:
    async with store.transaction() as repos:
        assert await repos.inbox.first_delivery("slack", "Ev1", NOW) is True
        assert await repos.inbox.first_delivery("slack", "Ev1", NOW) is False
        assert await repos.inbox.first_delivery("discord", "Ev1", NOW) is True  # per platform
    later = NOW + timedelta(days=2)
    async with store.transaction() as repos:
        assert await repos.inbox.first_delivery("slack", "Ev2", later) is True
        # Ev1 was older than a day and is gone: the table does not grow without bound.
        count = await repos.session.scalar(text("SELECT count(*) FROM processed_events"))
        assert count == 1
