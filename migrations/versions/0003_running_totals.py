"""Running totals on token counts (a window finds its cut without reading every kept count), epochs.

Revision ID: 0003_running_totals
Revises: 0002_calibration
Create Date: 2026-11-28

Adds ``run_tokens`` and ``run_msgs`` to ``convkit_token_counts`` (see
convkit/store/schema.py) and fills them for the counts already stored, one
conversation and counter at a time; adds ``epoch`` to ``convkit_conversations``
(bumped when messages are removed, so decoded copies can be kept safely).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_running_totals"
down_revision: str | None = "0002_calibration"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 2000


def upgrade() -> None:
    with op.batch_alter_table("convkit_conversations") as batch:
        batch.add_column(sa.Column("epoch", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("convkit_token_counts") as batch:
        batch.add_column(sa.Column("run_tokens", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("run_msgs", sa.Integer(), server_default="0", nullable=False))
    _fill()


def _fill() -> None:
    """Compute the running totals of every stored (conversation, counter), in seq order."""
    conn = op.get_bind()
    c = sa.table(
        "convkit_token_counts",
        sa.column("conversation_id", sa.String()),
        sa.column("counter_id", sa.String()),
        sa.column("seq", sa.Integer()),
        sa.column("tokens", sa.Integer()),
        sa.column("run_tokens", sa.BigInteger()),
        sa.column("run_msgs", sa.Integer()),
    )
    m = sa.table(
        "convkit_messages",
        sa.column("conversation_id", sa.String()),
        sa.column("seq", sa.Integer()),
        sa.column("keep", sa.Boolean()),
    )
    pairs = conn.execute(sa.select(c.c.conversation_id, c.c.counter_id).distinct()).all()
    update = (
        sa.update(c)
        .where(
            c.c.conversation_id == sa.bindparam("cid"),
            c.c.counter_id == sa.bindparam("cnt"),
            c.c.seq == sa.bindparam("s"),
        )
        .values(run_tokens=sa.bindparam("rt"), run_msgs=sa.bindparam("rm"))
    )
    for cid, counter_id in pairs:
        rows = conn.execute(
            sa.select(c.c.seq, c.c.tokens, m.c.keep)
            .select_from(c.join(m, sa.and_(m.c.conversation_id == c.c.conversation_id, m.c.seq == c.c.seq)))
            .where(c.c.conversation_id == cid, c.c.counter_id == counter_id)
            .order_by(c.c.seq)
        ).all()
        run_tokens = run_msgs = 0
        params = []
        for seq, tokens, keep in rows:
            if not keep:
                run_tokens += tokens
                run_msgs += 1
            params.append({"cid": cid, "cnt": counter_id, "s": seq, "rt": run_tokens, "rm": run_msgs})
        for i in range(0, len(params), _BATCH):
            conn.execute(update, params[i : i + _BATCH])


def downgrade() -> None:
    with op.batch_alter_table("convkit_token_counts") as batch:
        batch.drop_column("run_msgs")
        batch.drop_column("run_tokens")
    with op.batch_alter_table("convkit_conversations") as batch:
        batch.drop_column("epoch")
