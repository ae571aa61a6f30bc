"""Initial schema: conversations, messages, tool calls, images, token counts, summaries, usage.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-25

Mirrors convkit/store/schema.py as of this revision, written out explicitly
(a migration must not change when the table definitions later do). Constraint
names follow schema.NAMING.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CONV = "convkit_conversations.id"


def _id() -> sa.Column[int]:
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
    )


def _conversation_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["conversation_id"],
        [_CONV],
        name=op.f(f"fk_{table}_conversation_id_convkit_conversations"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "convkit_conversations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("metadata", sa.Text(), server_default="{}", nullable=False),
        sa.Column("last_seq", sa.Integer(), server_default="0", nullable=False),
        sa.Column("prefix_len", sa.Integer(), server_default="0", nullable=False),
        sa.Column("image_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("forked_from", sa.String(length=64), nullable=True),
        sa.Column("forked_at_seq", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_convkit_conversations")),
    )
    op.create_index(
        "ix_convkit_conversations_ns_created",
        "convkit_conversations",
        ["namespace", "created_at", "id"],
        unique=False,
    )

    op.create_table(
        "convkit_messages",
        _id(),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("tool_calls", sa.Text(), nullable=True),
        sa.Column("tool_call_id", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("pinned", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=True),
        sa.Column("unit_seq", sa.Integer(), nullable=False),
        sa.Column("keep", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_convkit_messages_seq_positive")),
        sa.CheckConstraint(
            "role IN ('system', 'user', 'assistant', 'tool')", name=op.f("ck_convkit_messages_role_known")
        ),
        _conversation_fk("convkit_messages"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_convkit_messages")),
        sa.UniqueConstraint("conversation_id", "seq", name=op.f("uq_convkit_messages_conversation_id_seq")),
    )
    op.create_index(
        "ix_convkit_messages_keep", "convkit_messages", ["conversation_id", "keep", "seq"], unique=False
    )

    op.create_table(
        "convkit_tool_calls",
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("call_id", sa.String(length=255), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        _conversation_fk("convkit_tool_calls"),
        sa.PrimaryKeyConstraint("conversation_id", "call_id", name=op.f("pk_convkit_tool_calls")),
    )

    op.create_table(
        "convkit_images",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_convkit_images")),
    )

    op.create_table(
        "convkit_token_counts",
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("counter_id", sa.String(length=128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        _conversation_fk("convkit_token_counts"),
        sa.PrimaryKeyConstraint("conversation_id", "counter_id", "seq", name=op.f("pk_convkit_token_counts")),
    )

    op.create_table(
        "convkit_counter_progress",
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("counter_id", sa.String(length=128), nullable=False),
        sa.Column("counted_seq", sa.Integer(), nullable=False),
        _conversation_fk("convkit_counter_progress"),
        sa.PrimaryKeyConstraint("conversation_id", "counter_id", name=op.f("pk_convkit_counter_progress")),
    )

    op.create_table(
        "convkit_summaries",
        _id(),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("counter_id", sa.String(length=128), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _conversation_fk("convkit_summaries"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_convkit_summaries")),
    )
    op.create_index(
        "ix_convkit_summaries_conv_last", "convkit_summaries", ["conversation_id", "last_seq"], unique=False
    )

    op.create_table(
        "convkit_usage",
        _id(),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("counter_id", sa.String(length=128), nullable=True),
        sa.Column("local_prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("image_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cached_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reasoning_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cost_usd", sa.Float(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _conversation_fk("convkit_usage"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_convkit_usage")),
    )
    op.create_index("ix_convkit_usage_conv", "convkit_usage", ["conversation_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_convkit_usage_conv", table_name="convkit_usage")
    op.drop_table("convkit_usage")
    op.drop_index("ix_convkit_summaries_conv_last", table_name="convkit_summaries")
    op.drop_table("convkit_summaries")
    op.drop_table("convkit_counter_progress")
    op.drop_table("convkit_token_counts")
    op.drop_table("convkit_images")
    op.drop_table("convkit_tool_calls")
    op.drop_index("ix_convkit_messages_keep", table_name="convkit_messages")
    op.drop_table("convkit_messages")
    op.drop_index("ix_convkit_conversations_ns_created", table_name="convkit_conversations")
    op.drop_table("convkit_conversations")
