"""Workspaces that removed the app: when they left, so their data is deleted after a grace
period unless the app is installed again.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "left_workspaces",
        sa.Column("platform", sa.String(16), primary_key=True),
        sa.Column("workspace", sa.String(64), primary_key=True),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_left_workspaces_left_at", "left_workspaces", ["left_at"])


def downgrade() -> None:
    op.drop_index("ix_left_workspaces_left_at", "left_workspaces")
    op.drop_table("left_workspaces")
