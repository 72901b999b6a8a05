"""An index on saves by workspace and time: `/papers team week` reads a workspace's saves of
the last days as one range of it, and counts them per paper without reading the table.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_saves_workspace_saved_at", "saves", ["platform", "workspace", "saved_at", "paper_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_saves_workspace_saved_at", "saves")
