"""Calibration per namespace: each tenant's replies widen only its own margins.

Revision ID: 0006_calibration_namespace
Revises: 0005_window_starts
Create Date: 2026-12-02

``convkit_calibration`` was keyed by (model, counter) alone, so one tenant's odd
reply widened every tenant's safety margin, for good. It gains ``namespace``
(part of the primary key). Rows learned before are kept under namespace ``""``,
which no store handle reads (a namespace is a non-empty name): every namespace
starts learning afresh under the new bounded, decaying rule. ``ratio_max`` now
holds that rule's estimate (a bounded, decaying one).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_calibration_namespace"
down_revision: str | None = "0005_window_starts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("convkit_calibration") as batch:
        batch.add_column(sa.Column("namespace", sa.String(length=255), nullable=True))
    op.execute(sa.text("UPDATE convkit_calibration SET namespace = ''"))
    with op.batch_alter_table("convkit_calibration", recreate="always") as batch:
        batch.alter_column("namespace", existing_type=sa.String(length=255), nullable=False)
        batch.drop_constraint("pk_convkit_calibration", type_="primary")
        batch.create_primary_key("pk_convkit_calibration", ["namespace", "model", "counter_id"])


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM convkit_calibration WHERE namespace <> ''"))
    with op.batch_alter_table("convkit_calibration", recreate="always") as batch:
        batch.drop_constraint("pk_convkit_calibration", type_="primary")
        batch.drop_column("namespace")
        batch.create_primary_key("pk_convkit_calibration", ["model", "counter_id"])
