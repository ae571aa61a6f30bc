"""Token counts without holes; the counted watermark is the newest count (no progress table).

Revision ID: 0004_counts_contiguous
Revises: 0003_running_totals
Create Date: 2026-12-02

From this revision a counter's counts in a conversation always cover seqs
``1..k`` without a hole: an append writes its count only when the count
before it exists (computing the running totals from it in the same
statement), and the back-fill counts on from the newest count. So the
watermark that ``convkit_counter_progress`` kept is the newest count itself,
and every append saves the statement that moved it. Counts that earlier
versions wrote past a counter's watermark (appends while it was behind) are
deleted here, so the invariant holds for stored data too; the next window
back-fills them.

Also indexes summaries by ``(conversation_id, id)``: a summarize window reads
the latest summary every turn, and found it by scanning all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_counts_contiguous"
down_revision: str | None = "0003_running_totals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM convkit_token_counts WHERE seq > COALESCE(("
        "SELECT p.counted_seq FROM convkit_counter_progress p "
        "WHERE p.conversation_id = convkit_token_counts.conversation_id "
        "AND p.counter_id = convkit_token_counts.counter_id), 0)"
    )
    op.drop_table("convkit_counter_progress")
    op.create_index("ix_convkit_summaries_conv_id", "convkit_summaries", ["conversation_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_convkit_summaries_conv_id", table_name="convkit_summaries")
    op.create_table(
        "convkit_counter_progress",
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("counter_id", sa.String(length=128), nullable=False),
        sa.Column("counted_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["convkit_conversations.id"],
            name=op.f("fk_convkit_counter_progress_conversation_id_convkit_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", "counter_id", name=op.f("pk_convkit_counter_progress")),
    )
    op.execute(
        "INSERT INTO convkit_counter_progress (conversation_id, counter_id, counted_seq) "
        "SELECT conversation_id, counter_id, MAX(seq) FROM convkit_token_counts "
        "GROUP BY conversation_id, counter_id"
    )
