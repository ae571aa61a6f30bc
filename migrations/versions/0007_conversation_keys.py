"""Application keys: an application's own id names a conversation, per namespace.

Revision ID: 0007_conversation_keys
Revises: 0006_calibration_namespace
Create Date: 2026-12-02

Frameworks key histories by their own ids (a LangGraph thread, an Agents SDK
session, a LlamaIndex chat store key) and expect the history to exist on first
use. ``convkit_conversations`` gains ``app_key`` (nullable: conversations made
before, or without a key, have none) and a unique index on
``(namespace, app_key)``, which both finds a keyed conversation and makes
creating it on first use race-free (``INSERT .. ON CONFLICT DO NOTHING``).
NULL keys never collide, in SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_conversation_keys"
down_revision: str | None = "0006_calibration_namespace"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("convkit_conversations", sa.Column("app_key", sa.String(length=255), nullable=True))
    op.create_index(
        "ix_convkit_conversations_ns_key", "convkit_conversations", ["namespace", "app_key"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_convkit_conversations_ns_key", table_name="convkit_conversations")
    with op.batch_alter_table("convkit_conversations") as batch:
        batch.drop_column("app_key")
