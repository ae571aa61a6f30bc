"""convkit's tables (SQLAlchemy Core), the single source the migrations follow.

Every table carries the ``convkit_`` prefix so the schema can live beside a
host application's own; the Alembic version table is ``convkit_alembic_version``.

* ``convkit_conversations``: one row per conversation, owned by a namespace
  (tenant). ``app_key`` is the application's own name for it (a session or
  thread id), unique per namespace (NULL for conversations without one).
  ``last_seq`` is the highest message ``seq``; appends bump it under
  the row's write lock, which is what keeps ``seq`` contiguous and unique
  under concurrent writers. ``prefix_len`` counts the leading system messages;
  ``image_count`` the image parts (a text-only model's window checks it);
  ``epoch`` grows whenever messages are removed (truncate, pop), so the
  messages at seqs 1..``last_seq`` never change within one epoch (a store
  may keep decoded copies of them between windows).
* ``convkit_messages``: ``(conversation_id, seq)`` is unique and indexed;
  ``seq`` starts at 1 and orders the conversation (never wall-clock time).
  ``content`` is JSON of the parts, with images replaced by their sha256;
  ``tool_calls`` is JSON whose ``arguments`` strings are the exact text
  received. ``unit_seq`` is the seq of the first message of the trim unit
  (a tool call and its results share one); ``keep`` marks messages of pinned
  units (pinned messages, leading system messages).
* ``convkit_tool_calls``: call id -> seq of the assistant message that made
  it, so a tool result finds its call with an indexed lookup.
* ``convkit_images``: image bytes stored once, keyed by content hash.
* ``convkit_token_counts``: content tokens per message per counter identity,
  with running totals over the conversation's droppable messages (those not
  marked ``keep``) up to and including this one: ``run_tokens`` (their
  tokens) and ``run_msgs`` (how many). Any span's cost under a model's
  per-message overhead ``o`` is then ``Δrun_tokens + o * Δrun_msgs``, so a
  window finds where to cut by a binary search of primary-key lookups instead
  of reading every kept row's count. A counter's counts cover seqs ``1..k``
  without a hole, so its newest count is its watermark (a window back-fills
  past it in batches).
* ``convkit_summaries`` and ``convkit_usage``: summaries (summarize strategy)
  and per-turn usage and cost as xAI reported them.
* ``convkit_window_starts``: where a conversation's cache-stable window
  (``policy="stable"``) starts, per model and counter, so consecutive prompts
  share their prefix across calls and processes.
* ``convkit_calibration``: per namespace, model and counter, how xAI's
  prompt counts compare with the local counts (a bounded, decaying estimate
  of the ratio, and the latest ratio); it widens the safety margin of that
  namespace's later windows. Per namespace, so one tenant's odd replies
  never cut another tenant's budget (rows from before revision 0006 sit
  under namespace ``""``, which no store reads).
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "NAMING",
    "conversations",
    "images",
    "messages",
    "metadata",
    "summaries",
    "calibration",
    "token_counts",
    "tool_calls",
    "usage",
    "window_starts",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)

_ts = sa.DateTime(timezone=True)

conversations = sa.Table(
    "convkit_conversations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("namespace", sa.String(255), nullable=False),
    sa.Column("title", sa.Text, nullable=True),
    sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),
    sa.Column("last_seq", sa.Integer, nullable=False, server_default="0"),
    sa.Column("prefix_len", sa.Integer, nullable=False, server_default="0"),
    sa.Column("image_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("epoch", sa.Integer, nullable=False, server_default="0"),
    sa.Column("forked_from", sa.String(64), nullable=True),
    sa.Column("forked_at_seq", sa.Integer, nullable=True),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
    sa.Column("app_key", sa.String(255), nullable=True),
    sa.Index("ix_convkit_conversations_ns_created", "namespace", "created_at", "id"),
    sa.Index("ix_convkit_conversations_ns_key", "namespace", "app_key", unique=True),
)

messages = sa.Table(
    "convkit_messages",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column(
        "conversation_id",
        sa.String(64),
        sa.ForeignKey("convkit_conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("tool_calls", sa.Text, nullable=True),
    sa.Column("tool_call_id", sa.String(255), nullable=True),
    sa.Column("name", sa.String(255), nullable=True),
    sa.Column("pinned", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("metadata", sa.Text, nullable=True),
    sa.Column("unit_seq", sa.Integer, nullable=False),
    sa.Column("keep", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", _ts, nullable=False),
    sa.UniqueConstraint("conversation_id", "seq"),
    sa.CheckConstraint("seq >= 1", name="seq_positive"),
    sa.CheckConstraint("role IN ('system', 'user', 'assistant', 'tool')", name="role_known"),
)

tool_calls = sa.Table(
    "convkit_tool_calls",
    metadata,
    sa.Column(
        "conversation_id",
        sa.String(64),
        sa.ForeignKey("convkit_conversations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("call_id", sa.String(255), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
)

images = sa.Table(
    "convkit_images",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("media_type", sa.String(64), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
)

token_counts = sa.Table(
    "convkit_token_counts",
    metadata,
    sa.Column(
        "conversation_id",
        sa.String(64),
        sa.ForeignKey("convkit_conversations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("counter_id", sa.String(128), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("tokens", sa.Integer, nullable=False),
    sa.Column("run_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("run_msgs", sa.Integer, nullable=False, server_default="0"),
)


summaries = sa.Table(
    "convkit_summaries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column(
        "conversation_id",
        sa.String(64),
        sa.ForeignKey("convkit_conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("first_seq", sa.Integer, nullable=False),
    sa.Column("last_seq", sa.Integer, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("counter_id", sa.String(128), nullable=False),
    sa.Column("tokens", sa.Integer, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Index("ix_convkit_summaries_conv_last", "conversation_id", "last_seq"),
    # the latest summary (the window's, every turn) by one index lookup, however many there are
    sa.Index("ix_convkit_summaries_conv_id", "conversation_id", "id"),
)

usage = sa.Table(
    "convkit_usage",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column(
        "conversation_id",
        sa.String(64),
        sa.ForeignKey("convkit_conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("seq", sa.Integer, nullable=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("counter_id", sa.String(128), nullable=True),
    sa.Column("local_prompt_tokens", sa.Integer, nullable=True),
    sa.Column("prompt_tokens", sa.Integer, nullable=False),
    sa.Column("completion_tokens", sa.Integer, nullable=False),
    sa.Column("image_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cached_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reasoning_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
    sa.Column("created_at", _ts, nullable=False),
    sa.Index("ix_convkit_usage_conv", "conversation_id", "id"),
)

calibration = sa.Table(
    "convkit_calibration",
    metadata,
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("counter_id", sa.String(128), primary_key=True),
    sa.Column("ratio_max", sa.Float, nullable=False),
    sa.Column("ratio_last", sa.Float, nullable=False),
    sa.Column("samples", sa.Integer, nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
)

window_starts = sa.Table(
    "convkit_window_starts",
    metadata,
    sa.Column(
        "conversation_id",
        sa.String(64),
        sa.ForeignKey("convkit_conversations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("counter_id", sa.String(128), primary_key=True),
    sa.Column("start_seq", sa.Integer, nullable=False),
)

sa.Index("ix_convkit_messages_keep", messages.c.conversation_id, messages.c.keep, messages.c.seq)
