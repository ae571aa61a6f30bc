"""Calibration of local token counts against xAI's usage, per model and counter.

Revision ID: 0002_calibration
Revises: 0001_initial
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_calibration"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "convkit_calibration",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("counter_id", sa.String(length=128), nullable=False),
        sa.Column("ratio_max", sa.Float(), nullable=False),
        sa.Column("ratio_last", sa.Float(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model", "counter_id", name=op.f("pk_convkit_calibration")),
    )


def downgrade() -> None:
    op.drop_table("convkit_calibration")
