"""Where each conversation's cache-stable window starts, per model and counter.

Revision ID: 0005_window_starts
Revises: 0004_counts_contiguous
Create Date: 2026-12-02

A window with ``policy="stable"`` keeps its start while the newer messages
fit, so consecutive prompts share their prefix and xAI serves it from its
prompt cache. The store remembers that start in ``convkit_window_starts``
(one row per conversation, model and counter), so a new process keeps it too.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_window_starts"
down_revision: str | None = "0004_counts_contiguous"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "convkit_window_starts",
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("counter_id", sa.String(length=128), nullable=False),
        sa.Column("start_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["convkit_conversations.id"],
            name=op.f("fk_convkit_window_starts_conversation_id_convkit_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "conversation_id", "model", "counter_id", name=op.f("pk_convkit_window_starts")
        ),
    )


def downgrade() -> None:
    op.drop_table("convkit_window_starts")
