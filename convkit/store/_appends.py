"""Appends: a batch prepared outside the transaction, then written in one.

:func:`prepare` encodes and counts messages (CPU work, no I/O) before the write
transaction; :func:`append` allocates their seqs and writes them with their
tool links, unit and ``keep`` flags, images, counts and the conversation's new
length; :func:`create_filled` is a new conversation with a batch (an import).

Invariants: ``seq`` is allocated under the conversation row's write lock,
contiguous from 1; a batch is validated (tool links included) before anything
is written, and written whole or not at all; tool units and pinned flags are
maintained exactly as :class:`~convkit._history.History` builds them (a tool
result joins its call's unit, however far back), so a stored window equals
:func:`convkit.fit` over the same messages; images are stored once per content
hash; counts go in with their running totals (see :mod:`convkit.store._totals`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import attrs
import sqlalchemy as sa

from .._counting import TokenCounter
from .._engine.units import Units, link_owners
from .._errors import ConversationNotFoundError, InvalidMessageError
from .._messages import ImagePart, Message
from .._results import Conversation
from . import _schema as t
from ._codec import encode_message, image_row
from ._conversations import create_conversation, get_conversation, lock_conversation
from ._ops_core import CHUNK, Exec, Op, insert_for, utc_now
from ._totals import recompute_runs, store_counts

__all__ = ["Prepared", "append", "create_filled", "prepare"]


def _returning(dialect: str) -> bool:
    """Whether the database returns rows from an UPDATE (SQLite from 3.35, PostgreSQL always)."""
    return dialect == "postgresql" or (dialect == "sqlite" and sqlite3.sqlite_version_info >= (3, 35))


@attrs.frozen
class Prepared:
    """A batch made ready outside the transaction: messages and their counts per counter."""

    messages: tuple[Message, ...]
    encoded: tuple[dict[str, Any], ...]
    counts: Mapping[str, Sequence[int]]  # counter identity -> content tokens
    images: tuple[dict[str, Any], ...]


def prepare(messages: Sequence[Message], counters: Sequence[TokenCounter]) -> Prepared:
    """Encode and count (CPU work, no I/O) before the write transaction."""
    imgs: dict[str, dict[str, Any]] = {}
    for m in messages:
        for p in m.content:
            if isinstance(p, ImagePart) and p.data is not None and p.sha256 not in imgs:
                imgs[p.sha256] = image_row(p)
    encoded: list[dict[str, Any]] = []
    for k, m in enumerate(messages):
        try:
            encoded.append(encode_message(m))
        except InvalidMessageError as exc:
            raise InvalidMessageError(f"message {k}: {exc}") from None
    return Prepared(
        messages=tuple(messages),
        encoded=tuple(encoded),
        counts={c.identity: list(c.content_tokens(list(messages))) for c in counters},
        images=tuple(imgs.values()),
    )


def append(ns: str, cid: str, batch: Prepared, dialect: str, locked: Any = None) -> Op[range]:
    """Append a prepared batch; returns the seqs given to it.

    ``locked``: the conversation's row, when this transaction has locked it already.
    """
    n = len(batch.messages)
    if n == 0:
        if locked is None:
            yield from lock_conversation(ns, cid)
        return range(0)
    if n == 1 and locked is None and batch.messages[0].role != "tool" and _returning(dialect):
        return (yield from _append_one(ns, cid, batch, dialect))
    conv = locked if locked is not None else (yield from lock_conversation(ns, cid, for_update=True))
    last, prefix = conv.last_seq, conv.prefix_len
    first = last + 1
    m_t, tc = t.messages, t.tool_calls

    # tool links: calls made earlier in the conversation, then within the batch
    wanted = {m.tool_call_id for m in batch.messages if m.role == "tool"}
    owners_db: dict[str, int] = {}
    if wanted:
        rows = (
            yield Exec(
                sa.select(tc.c.call_id, tc.c.seq).where(tc.c.conversation_id == cid, tc.c.call_id.in_(wanted))
            )
        ).all()
        owners_db = {r.call_id: r.seq for r in rows}
    owner_of = link_owners(batch.messages, owners_db, first, describe=lambda k: f"message {k} of the batch")
    # the leading system run may continue into the batch
    new_prefix = prefix
    for k, m in enumerate(batch.messages):
        if m.role == "system" and new_prefix == first + k - 1:
            new_prefix = first + k

    # the engine's units over the existing tail that tool results fold into, then the batch
    units = Units()
    earliest = min((o for o in owner_of if o is not None and o < first), default=0)
    old: dict[int, tuple[int, bool]] = {}
    if earliest:
        u0 = (
            yield Exec(sa.select(m_t.c.unit_seq).where(m_t.c.conversation_id == cid, m_t.c.seq == earliest))
        ).scalar_one()
        rows = (
            yield Exec(
                sa.select(m_t.c.seq, m_t.c.unit_seq, m_t.c.keep, m_t.c.pinned)
                .where(m_t.c.conversation_id == cid, m_t.c.seq >= u0)
                .order_by(m_t.c.seq)
            )
        ).all()
        for r in rows:  # replayed as stored: a row inside a unit folds into it
            owner = None if r.seq == r.unit_seq else r.unit_seq
            units.add(r.seq, owner=owner, pin=bool(r.pinned) or r.seq <= new_prefix)
            old[r.seq] = (r.unit_seq, bool(r.keep))
    for k, m in enumerate(batch.messages):
        units.add(first + k, owner=owner_of[k], pin=m.pinned or first + k <= new_prefix)
    unit_of: dict[int, tuple[int, bool]] = {}
    bounds = [*units.starts, first + n]
    for u, (a, b) in enumerate(pairwise(bounds)):
        keep = units.is_pinned(u)
        for s in range(a, b):
            unit_of[s] = (a, keep)

    # writes
    now = utc_now()
    keep_changed = [seq for seq, before in old.items() if unit_of[seq][1] != before[1]]
    for seq, before in old.items():
        if unit_of[seq] != before:
            unit, keep = unit_of[seq]
            yield Exec(
                sa.update(m_t)
                .where(m_t.c.conversation_id == cid, m_t.c.seq == seq)
                .values(unit_seq=unit, keep=keep)
            )
    if keep_changed:
        yield from recompute_runs(cid, min(keep_changed))
    yield from _write(cid, batch, first, [unit_of[first + k] for k in range(n)], dialect, now)
    yield Exec(
        sa.update(t.conversations)
        .where(t.conversations.c.id == cid)
        .values(
            last_seq=last + n,
            prefix_len=new_prefix,
            image_count=conv.image_count + _images(batch),
            updated_at=now,
        )
    )
    return range(first, first + n)


def create_filled(ns: str, title: str | None, batch: Prepared, dialect: str) -> Op[Conversation]:
    """A new conversation holding a prepared batch (all of it or, on any error, nothing)."""
    conv = yield from create_conversation(ns, title, None)
    yield from append(ns, conv.id, batch, dialect)
    return (yield from get_conversation(ns, conv.id))


def _images(batch: Prepared) -> int:
    return sum(1 for m in batch.messages for p in m.content if isinstance(p, ImagePart))


def _append_one(ns: str, cid: str, batch: Prepared, dialect: str) -> Op[range]:
    """One message that answers no call (most appends: a user message, a reply).

    The new seq and leading-system run come back from the conversation row's UPDATE (which
    takes its write lock), so nothing is read first; a message that answers no call joins no
    older unit, so there is no unit work.
    """
    (m,) = batch.messages
    c = t.conversations
    now = utc_now()
    values: dict[str, Any] = {
        "last_seq": c.c.last_seq + 1,
        "image_count": c.c.image_count + _images(batch),
        "updated_at": now,
    }
    if m.role == "system":  # the leading system run goes on when it reaches the last message
        values["prefix_len"] = sa.case(
            (c.c.prefix_len == c.c.last_seq, c.c.last_seq + 1), else_=c.c.prefix_len
        )
    stmt = (
        sa.update(c)
        .where(c.c.id == cid, c.c.namespace == ns)
        .values(**values)
        .returning(c.c.last_seq, c.c.prefix_len)
    )
    row = (yield Exec(stmt)).first()
    if row is None:
        raise ConversationNotFoundError(cid, ns)
    seq, prefix = int(row[0]), int(row[1])
    yield from _write(cid, batch, seq, [(seq, m.pinned or seq <= prefix)], dialect, now)
    return range(seq, seq + 1)


def _write(
    cid: str, batch: Prepared, first: int, units: Sequence[tuple[int, bool]], dialect: str, now: Any
) -> Op[None]:
    """Write a batch's images, rows (``units``: each one's unit seq and keep flag), calls, counts."""
    n = len(batch.messages)
    m_t, tc = t.messages, t.tool_calls
    if batch.images:
        ins = insert_for(dialect, t.images)
        if dialect == "postgresql":  # lock a reused image's row against drop_unreferenced_images
            ins = ins.on_conflict_do_update(index_elements=["sha256"], set_={"sha256": ins.excluded.sha256})
        else:
            ins = ins.on_conflict_do_nothing(index_elements=["sha256"])
        # in hash order, as drop_unreferenced_images locks them: two writers never wait on each other
        # in opposite orders (a deadlock on PostgreSQL)
        rows_i = sorted(({**r, "created_at": now} for r in batch.images), key=lambda r: str(r["sha256"]))
        for i in range(0, len(rows_i), 100):
            yield Exec(ins, rows_i[i : i + 100])
    rows_m = [
        {
            **enc,
            "conversation_id": cid,
            "seq": first + k,
            "unit_seq": units[k][0],
            "keep": units[k][1],
            "created_at": now,
        }
        for k, enc in enumerate(batch.encoded)
    ]
    for i in range(0, n, CHUNK):
        yield Exec(sa.insert(m_t), rows_m[i : i + CHUNK])
    calls = [
        {"conversation_id": cid, "call_id": c.id, "seq": first + k}
        for k, m in enumerate(batch.messages)
        for c in m.tool_calls
    ]
    if calls:
        # a later call reusing an id takes it over (tool results answer the newest call with that id)
        dedup = list({c["call_id"]: c for c in calls}.values())
        ins = insert_for(dialect, tc)
        ins = ins.on_conflict_do_update(
            index_elements=["conversation_id", "call_id"], set_={"seq": ins.excluded.seq}
        )
        for i in range(0, len(dedup), CHUNK):
            yield Exec(ins, dedup[i : i + CHUNK])
    keeps = [units[k][1] for k in range(n)]
    for counter_id, counts in batch.counts.items():
        yield from store_counts(cid, counter_id, first, list(counts), keeps, dialect)
