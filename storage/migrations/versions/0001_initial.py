"""Initial schema: papers with full-text search, daily listings, channels, posts, saves,
follows and digests.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONList = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)

# SQLite: an external-content FTS5 index kept in step with `papers` by triggers. JSON
# columns are stored as text there, and the tokenizer reads names and keywords out of it.
SQLITE_FTS = [
    """CREATE VIRTUAL TABLE papers_fts USING fts5(
        title, abstract, authors, ai_keywords,
        content='papers', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER papers_fts_insert AFTER INSERT ON papers BEGIN
        INSERT INTO papers_fts(rowid, title, abstract, authors, ai_keywords)
        VALUES (new.id, new.title, new.abstract, new.authors, new.ai_keywords);
    END""",
    """CREATE TRIGGER papers_fts_delete AFTER DELETE ON papers BEGIN
        INSERT INTO papers_fts(papers_fts, rowid, title, abstract, authors, ai_keywords)
        VALUES ('delete', old.id, old.title, old.abstract, old.authors, old.ai_keywords);
    END""",
    """CREATE TRIGGER papers_fts_update AFTER UPDATE OF title, abstract, authors, ai_keywords
    ON papers BEGIN
        INSERT INTO papers_fts(papers_fts, rowid, title, abstract, authors, ai_keywords)
        VALUES ('delete', old.id, old.title, old.abstract, old.authors, old.ai_keywords);
        INSERT INTO papers_fts(rowid, title, abstract, authors, ai_keywords)
        VALUES (new.id, new.title, new.abstract, new.authors, new.ai_keywords);
    END""",
]

# PostgreSQL: a stored, weighted tsvector (title A, AI keywords B, authors C, abstract D).
POSTGRES_FTS = [
    """ALTER TABLE papers ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, title), 'A') ||
        setweight(jsonb_to_tsvector('english'::regconfig, ai_keywords, '["string"]'), 'B') ||
        setweight(jsonb_to_tsvector('english'::regconfig, authors, '["string"]'), 'C') ||
        setweight(to_tsvector('english'::regconfig, abstract), 'D')
    ) STORED""",
    "CREATE INDEX ix_papers_search_vector ON papers USING GIN (search_vector)",
]


def _scoped(*columns: sa.Column[Any]) -> list[sa.Column[Any]]:
    return [
        sa.Column("platform", sa.String(16), primary_key=True),
        sa.Column("workspace", sa.String(64), primary_key=True),
        sa.Column("user", sa.String(64), primary_key=True),
        *columns,
    ]


def _paper_key() -> sa.Column[int]:
    return sa.Column(
        "paper_id", sa.Integer, sa.ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )


def upgrade() -> None:
    op.create_table(
        "papers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("arxiv_id", sa.String(32), nullable=False, unique=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("abstract", sa.Text, nullable=False),
        sa.Column("authors", JSONList, nullable=False),
        sa.Column("ai_summary", sa.Text),
        sa.Column("ai_keywords", JSONList, nullable=False),
        sa.Column("published_at", TS),
        sa.Column("upvotes", sa.Integer),
        sa.Column("github_repo", sa.Text),
        sa.Column("github_stars", sa.Integer),
        sa.Column("project_page", sa.Text),
        sa.Column("thumbnail", sa.Text),
        sa.Column("organization", sa.Text),
        sa.Column("is_demo", sa.Boolean, nullable=False),
        sa.Column("fetched_at", TS, nullable=False),
    )
    op.create_table(
        "daily_listings",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column(
            "paper_id",
            sa.Integer,
            sa.ForeignKey("papers.id", ondelete="CASCADE"),
            primary_key=True,
            index=True,
        ),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("upvotes", sa.Integer),
    )
    op.create_table(
        "channel_subscriptions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("post_time", sa.String(5), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("platform", "workspace", "channel"),
    )
    op.create_table(
        "channel_topics",
        sa.Column(
            "subscription_id",
            sa.Integer,
            sa.ForeignKey("channel_subscriptions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("topic", sa.String(100), primary_key=True),
    )
    op.create_table(
        "posts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(128), nullable=False),
        sa.Column(
            "paper_id", sa.Integer, sa.ForeignKey("papers.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("posted_at", TS, nullable=False),
        sa.UniqueConstraint("platform", "workspace", "channel", "message_id"),
    )
    op.create_index(
        "ix_posts_channel_paper", "posts", ["platform", "workspace", "channel", "paper_id"]
    )
    op.create_table("saves", *_scoped(_paper_key(), sa.Column("saved_at", TS, nullable=False)))
    op.create_table(
        "follows",
        *_scoped(
            sa.Column("topic", sa.String(100), primary_key=True),
            sa.Column("created_at", TS, nullable=False),
        ),
    )
    op.create_table(
        "digest_settings",
        *_scoped(
            sa.Column("cadence", sa.String(8), nullable=False),
            sa.Column("weekday", sa.Integer),
            sa.Column("send_time", sa.String(5), nullable=False),
            sa.Column("timezone", sa.String(64), nullable=False),
            sa.Column("updated_at", TS, nullable=False),
        ),
    )
    op.create_table(
        "digest_items",
        *_scoped(_paper_key(), sa.Column("sent_at", TS, nullable=False)),
    )

    statements = {"sqlite": SQLITE_FTS, "postgresql": POSTGRES_FTS}[op.get_bind().dialect.name]
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE papers_fts")
    for table in (
        "digest_items",
        "digest_settings",
        "follows",
        "saves",
        "posts",
        "channel_topics",
        "channel_subscriptions",
        "daily_listings",
        "papers",
    ):
        op.drop_table(table)
