"""Why a user's digest is paused: set when their DMs cannot be reached (closed DMs, user gone).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("digest_settings") as batch:
        batch.add_column(sa.Column("disabled_reason", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("digest_settings") as batch:
        batch.drop_column("disabled_reason")
