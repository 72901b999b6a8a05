"""Sends a person asked for (post-now, digest now, the console's) in the deliveries ledger,
marked manual, beside the scheduled ones; their period is the moment they were sent, to the
microsecond, which takes more than a date's 16 characters.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("manual", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.alter_column(
            "period", type_=sa.String(32), existing_type=sa.String(16), existing_nullable=False
        )


def downgrade() -> None:
    op.execute("DELETE FROM deliveries WHERE manual")
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column(
            "period", type_=sa.String(16), existing_type=sa.String(32), existing_nullable=False
        )
        batch.drop_column("manual")
