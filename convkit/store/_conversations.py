"""Operations on conversations as a whole: create, get, list, delete, and read their messages.

Also :func:`lock_conversation`, with which every other operation starts.

Invariants: every query of a conversation's rows is scoped by a conversation
whose namespace was checked in the same transaction (:func:`lock_conversation`
raises :class:`~convkit._errors.ConversationNotFoundError` for an id of another
namespace, exactly as for an unknown one); ``for_update`` takes the
conversation row's write lock, under which seqs are allocated and counts
rewritten; a conversation is deleted with every row that belongs to it;
titles and metadata are checked (JSON, no NUL, valid Unicode) before anything
is written.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from .._errors import ConversationExistsError, ConversationNotFoundError, InvalidMessageError, ValidationError
from .._messages import Message, check_json_value
from .._results import Conversation
from . import _schema as t
from ._ops_core import Exec, Op, body, decode_body, insert_for, utc_now

__all__ = [
    "check_key",
    "conversation_of",
    "create_keyed",
    "create_conversation",
    "delete_conversation",
    "find_conversation",
    "get_conversation",
    "list_conversations",
    "lock_conversation",
    "read_messages",
]


def conversation_of(row: Any) -> Conversation:
    """The :class:`~convkit.Conversation` of a ``convkit_conversations`` row."""
    m = row._mapping
    return Conversation(
        id=m["id"],
        namespace=m["namespace"],
        title=m["title"],
        metadata=json.loads(m["metadata"] or "{}"),
        message_count=m["last_seq"],
        created_at=_aware(m["created_at"]),
        updated_at=_aware(m["updated_at"]),
        forked_from=m["forked_from"],
        forked_at_seq=m["forked_at_seq"],
        key=m["app_key"],
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _metadata_json(metadata: Mapping[str, Any] | None) -> str:
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ValidationError(f"conversation metadata must be a dict, got {type(metadata).__name__}")
    try:  # what would not come back equal (non-str keys, tuples, NaN...) is refused by its key path
        check_json_value(metadata or {}, "conversation metadata")
    except InvalidMessageError as exc:
        raise ValidationError(str(exc)) from None
    return json.dumps(dict(metadata or {}), ensure_ascii=False)


def lock_conversation(ns: str, cid: str, *, for_update: bool = False) -> Op[Any]:
    c = t.conversations
    stmt = sa.select(c).where(c.c.id == cid, c.c.namespace == ns)
    if for_update:
        stmt = stmt.with_for_update()
    row = (yield Exec(stmt)).first()
    if row is None:
        raise ConversationNotFoundError(cid, ns)
    return row


def check_key(key: object) -> str:
    """``key`` if it can name a conversation: non-empty, at most 255 characters, no NUL, valid Unicode."""
    if not isinstance(key, str) or not key or len(key) > 255 or "\x00" in key:
        raise ValidationError(
            "a conversation key is the application's own id of a conversation: a non-empty string of at most "
            f"255 characters without NUL, got {key!r}"
        )
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"conversation key {key!r} holds a lone surrogate, which is not valid Unicode"
        ) from None
    return key


def _new_row(
    ns: str, title: str | None, metadata: Mapping[str, Any] | None, key: str | None
) -> dict[str, Any]:
    """The values of a new, empty conversation's row (title and metadata checked)."""
    if title is not None and not isinstance(title, str):
        raise ValidationError(f"title must be a string, got {type(title).__name__}")
    meta = _metadata_json(metadata)
    if title is not None and "\x00" in title:
        raise ValidationError(
            "conversation title holds a NUL character (U+0000), which PostgreSQL text cannot store; "
            "remove it from the title"
        )
    for what, text in (("title", title), ("metadata", meta)):
        try:
            (text or "").encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValidationError(
                f"conversation {what} holds {exc.object[exc.start : exc.end]!r}, a lone surrogate that is "
                "not valid Unicode; decode the text correctly (or replace the surrogate) before storing it"
            ) from None
    now = utc_now()
    return {
        "id": uuid.uuid4().hex,
        "namespace": ns,
        "title": title,
        "metadata": meta,
        "last_seq": 0,
        "prefix_len": 0,
        "image_count": 0,
        "created_at": now,
        "updated_at": now,
        "app_key": key,
    }


def _keyed(ns: str, key: str) -> Op[Any]:
    c = t.conversations
    return (yield Exec(sa.select(c).where(c.c.namespace == ns, c.c.app_key == key))).first()


def create_conversation(
    ns: str,
    title: str | None,
    metadata: Mapping[str, Any] | None,
    key: str | None = None,
    dialect: str = "sqlite",
) -> Op[Conversation]:
    """A new, empty conversation (with ``key``: :class:`ConversationExistsError` if the key is taken).

    With a key, run it at READ COMMITTED on PostgreSQL (``Txn.read_committed``): see :func:`create_keyed`.
    """
    if key is None:
        values = _new_row(ns, title, metadata, None)
        yield Exec(sa.insert(t.conversations).values(**values))
        return conversation_of((yield from lock_conversation(ns, values["id"])))
    row, made = yield from create_keyed(ns, key, title, metadata, dialect)
    if not made:
        raise ConversationExistsError(key, ns)
    return conversation_of(row)


def find_conversation(ns: str, key: str) -> Op[Conversation | None]:
    """The namespace's conversation with ``key``, or None (a read)."""
    row = yield from _keyed(ns, check_key(key))
    return None if row is None else conversation_of(row)


def create_keyed(
    ns: str, key: str, title: str | None, metadata: Mapping[str, Any] | None, dialect: str
) -> Op[tuple[Any, bool]]:
    """The row of the conversation with ``key``, created now unless it exists; and whether it was.

    Race-free: the INSERT does nothing when another transaction created the key first (on
    PostgreSQL it waits for that one to commit), and the SELECT after it then finds that row.
    That SELECT must see rows committed after the transaction began, so on PostgreSQL this
    runs at READ COMMITTED whatever the engine's isolation level (at REPEATABLE READ the
    INSERT would fail with a serialization error instead).
    """
    values = _new_row(ns, title, metadata, check_key(key))
    ins = insert_for(dialect, t.conversations).values(**values)
    yield Exec(ins.on_conflict_do_nothing(index_elements=["namespace", "app_key"]))
    row = yield from _keyed(ns, key)
    assert row is not None, "the key's row exists after INSERT .. ON CONFLICT DO NOTHING"
    return row, row.id == values["id"]  # (rowcount is not reliable across drivers here)


def get_conversation(ns: str, cid: str) -> Op[Conversation]:
    return conversation_of((yield from lock_conversation(ns, cid)))


def list_conversations(ns: str, limit: int, after: str | None) -> Op[list[Conversation]]:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
        raise ValidationError(f"limit must be an integer from 1 to 10000, got {limit!r}")
    if after is not None and (not isinstance(after, str) or not after or "\x00" in after):
        raise ValidationError(f"after is a conversation id (a non-empty string without NUL), got {after!r}")
    c = t.conversations
    stmt = sa.select(c).where(c.c.namespace == ns)
    if after is not None:
        anchor = (
            yield Exec(sa.select(c.c.created_at, c.c.id).where(c.c.id == after, c.c.namespace == ns))
        ).first()
        if anchor is None:
            raise ConversationNotFoundError(after, ns)
        stmt = stmt.where(
            sa.or_(
                c.c.created_at > anchor.created_at,
                sa.and_(c.c.created_at == anchor.created_at, c.c.id > anchor.id),
            )
        )
    rows = (yield Exec(stmt.order_by(c.c.created_at, c.c.id).limit(limit))).all()
    return [conversation_of(r) for r in rows]


def delete_conversation(ns: str, cid: str) -> Op[None]:
    yield from lock_conversation(ns, cid, for_update=True)
    for table in (t.token_counts, t.window_starts, t.tool_calls, t.summaries, t.usage, t.messages):
        yield Exec(sa.delete(table).where(table.c.conversation_id == cid))
    yield Exec(sa.delete(t.conversations).where(t.conversations.c.id == cid))
    return None


def read_messages(ns: str, cid: str, start: int | None, stop: int | None) -> Op[list[tuple[int, Message]]]:
    """Messages with ``start <= seq < stop`` (1-based seqs), as (seq, Message) pairs."""
    yield from lock_conversation(ns, cid)
    m = t.messages
    stmt = sa.select(*body()).where(m.c.conversation_id == cid)
    if start is not None:
        stmt = stmt.where(m.c.seq >= start)
    if stop is not None:
        stmt = stmt.where(m.c.seq < stop)
    rows = (yield Exec(stmt.order_by(m.c.seq))).all()
    msgs = yield from decode_body(rows)
    return list(zip([r[0] for r in rows], msgs, strict=True))
