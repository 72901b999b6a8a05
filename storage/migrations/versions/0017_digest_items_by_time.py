"""An index on the papers sent in digests by when: the worker forgets those no digest can
offer again, the oldest first, reading only the old rows instead of the whole table.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_digest_items_sent_at", "digest_items", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_digest_items_sent_at", "digest_items")
