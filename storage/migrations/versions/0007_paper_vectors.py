"""Paper vectors for search by meaning.

Every engine stores each vector as bytes (`vector`), which the process searches in memory. On
a PostgreSQL server that has pgvector, the extension is created here, and an `embedding`
column of its type with an HNSW index lets the database answer nearest-vector queries itself.
A server without it (Debian 12's PostgreSQL 15 packages none) keeps the bytes alone.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

log = logging.getLogger("paperboy.migrations")

DIMENSIONS = 384  # bot.semantic.model.DIMENSIONS, fixed here as the schema was written


def add_pgvector(connection: Connection) -> bool:
    """Create pgvector's extension, the `embedding` column and its HNSW index when the server
    has the extension and this role may create it; whether the column now exists."""
    available = connection.scalar(
        sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
    )
    if not available:
        return False
    try:
        with connection.begin_nested():
            connection.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError as exc:  # e.g. not allowed to: the bytes serve alone
        log.warning("pgvector is installed but its extension could not be created: %s", exc.orig)
        return False
    connection.execute(
        sa.text(f"ALTER TABLE paper_vectors ADD COLUMN embedding vector({DIMENSIONS})")
    )
    connection.execute(
        sa.text(
            "CREATE INDEX ix_paper_vectors_embedding ON paper_vectors "
            "USING hnsw (embedding vector_cosine_ops)"
        )
    )
    return True


def upgrade() -> None:
    op.create_table(
        "paper_vectors",
        sa.Column(
            "paper_id",
            sa.Integer,
            sa.ForeignKey("papers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_paper_vectors_model", "paper_vectors", ["model", "paper_id"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        add_pgvector(bind)


def downgrade() -> None:
    op.drop_table("paper_vectors")
