"""The store's operations, written once for both the sync and the async store.

Each operation is a generator ("sans-I/O"): it yields :class:`Exec` requests
(a SQL statement and its parameters) and receives each statement's result;
its return value is the operation's result. :class:`~convkit.store.Store`
runs them on a ``Connection`` and :class:`~convkit.store.AsyncStore` on an
``AsyncConnection``, each inside one transaction per operation, so the two
twins cannot drift apart.

Invariants kept here: every query of messages is scoped by a conversation
whose namespace was checked in the same transaction; ``seq`` is allocated
under the conversation row's write lock, contiguous from 1; a batch is
validated (tool links included) before anything is written; tool units and
pinned flags are maintained exactly as :class:`~convkit.history.History`
does, so a stored window equals :func:`convkit.fit` over the same messages.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
from bisect import bisect_right
from collections.abc import Generator, Mapping, Sequence
from itertools import pairwise
from typing import Any, TypeAlias, TypeVar

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sqlite_dialect

from ..counting import TokenCounter
from ..errors import (
    ContextWindowError,
    ConversationNotFoundError,
    DatabaseError,
    InvalidConversationError,
    InvalidMessageError,
    ValidationError,
)
from ..fitting import FitResult
from ..messages import ImagePart, Message
from ..models import ModelSpec
from . import schema as t
from .codec import BODY_COLUMNS, IMAGE_MARKER, decode_rows, encode_message, image_row, image_shas
from .msgcache import MessageCache

__all__ = ["Conversation", "Exec", "Op"]

#: Rows per INSERT batch (well under SQLite's bound-parameter limit).
CHUNK = 2000


@attrs.frozen
class Exec:
    """One statement to run, with optional parameters (a list means executemany).

    ``raw``: run the statement's SQL (compiled once per dialect) on the driver's cursor, inside
    the operation's transaction; the result is :class:`Rows` of plain tuples, without
    SQLAlchemy's result and type processing (the window's statements: their parameters are
    strings and integers, and booleans may come back as 0/1).
    """

    stmt: sa.Executable
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    raw: bool = False


T = TypeVar("T")
Op: TypeAlias = Generator[Exec, Any, T]


@attrs.frozen
class Rows:
    """The rows of a ``raw`` request (tuples), with the two accessors operations use."""

    rows: list[Any]

    def all(self) -> list[Any]:
        return self.rows

    def first(self) -> Any:
        return self.rows[0] if self.rows else None


def run_raw(conn: sa.Connection, req: Exec) -> Rows:
    """Run a ``raw`` request on the connection's driver cursor (driver errors wrapped as SQLAlchemy's)."""
    sql, params = driver_sql(conn.dialect, req)
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        cur.execute(sql, params)
        rows = cur.fetchall()
    except conn.dialect.loaded_dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, params, exc, conn.dialect.loaded_dbapi.Error) from exc
    finally:
        cur.close()
    if rows and type(rows[0]) is not tuple:  # asyncpg's records
        rows = [tuple(r) for r in rows]
    return Rows(list(rows))


_DRIVER_SQL: dict[tuple[str, str, sa.Executable], tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}


def driver_sql(dialect: sa.Dialect, req: Exec) -> tuple[str, tuple[Any, ...] | dict[str, Any] | None]:
    """The SQL string and driver parameters of a ``raw`` request, for ``exec_driver_sql``.

    Compiled once per (dialect, driver, statement): raw statements are built once and kept.
    """
    key = (dialect.name, dialect.driver, req.stmt)
    got = _DRIVER_SQL.get(key)
    if got is None:
        assert isinstance(req.stmt, sa.ClauseElement)
        compiled = req.stmt.compile(dialect=dialect)
        names = tuple(getattr(compiled, "positiontup", None) or ()) if dialect.positional else None
        got = _DRIVER_SQL[key] = (compiled.string, names, dict(compiled.params))
    sql, names, defaults = got
    assert req.params is None or isinstance(req.params, Mapping), "raw requests run one parameter set"
    params = {**defaults, **req.params} if req.params else defaults
    if names is None:
        return sql, params
    return sql, tuple(params[name] for name in names)


@attrs.frozen
class Conversation:
    """A stored conversation's header (its messages are read separately)."""

    id: str
    namespace: str
    title: str | None
    metadata: dict[str, Any] = attrs.field(hash=False)
    message_count: int
    created_at: dt.datetime
    updated_at: dt.datetime
    forked_from: str | None = None
    forked_at_seq: int | None = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _conv(row: Any) -> Conversation:
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
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _insert(dialect: str, table: sa.Table) -> Any:
    return (pg.insert if dialect == "postgresql" else sqlite_dialect.insert)(table)


def _metadata_json(metadata: Mapping[str, Any] | None) -> str:
    try:
        return json.dumps(dict(metadata or {}), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"conversation metadata must be JSON-serializable ({exc})") from None


# -- conversations -------------------------------------------------------------------


def lock_conversation(ns: str, cid: str, *, for_update: bool = False) -> Op[Any]:
    c = t.conversations
    stmt = sa.select(c).where(c.c.id == cid, c.c.namespace == ns)
    if for_update:
        stmt = stmt.with_for_update()
    row = (yield Exec(stmt)).first()
    if row is None:
        raise ConversationNotFoundError(cid, ns)
    return row


def create_conversation(ns: str, title: str | None, metadata: Mapping[str, Any] | None) -> Op[Conversation]:
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
    now = _now()
    new_id = uuid.uuid4().hex
    values = {
        "id": new_id,
        "namespace": ns,
        "title": title,
        "metadata": meta,
        "last_seq": 0,
        "prefix_len": 0,
        "image_count": 0,
        "created_at": now,
        "updated_at": now,
    }
    yield Exec(sa.insert(t.conversations).values(**values))
    row = yield from lock_conversation(ns, new_id)
    return _conv(row)


def get_conversation(ns: str, cid: str) -> Op[Conversation]:
    return _conv((yield from lock_conversation(ns, cid)))


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
    return [_conv(r) for r in rows]


def delete_conversation(ns: str, cid: str) -> Op[None]:
    yield from lock_conversation(ns, cid, for_update=True)
    for table in (t.token_counts, t.counter_progress, t.tool_calls, t.summaries, t.usage, t.messages):
        yield Exec(sa.delete(table).where(table.c.conversation_id == cid))
    yield Exec(sa.delete(t.conversations).where(t.conversations.c.id == cid))
    return None


# -- appends ---------------------------------------------------------------------------


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


def append(ns: str, cid: str, batch: Prepared, dialect: str) -> Op[range]:
    """Append a prepared batch; returns the seqs given to it."""
    n = len(batch.messages)
    if n == 0:
        yield from lock_conversation(ns, cid)
        return range(0)
    conv = yield from lock_conversation(ns, cid, for_update=True)
    last, prefix = conv.last_seq, conv.prefix_len
    first = last + 1
    m_t, tc = t.messages, t.tool_calls

    # tool links: calls made earlier in the conversation, then within the batch
    wanted = {m.tool_call_id for m in batch.messages if m.role == "tool"}
    in_batch: dict[str, int] = {}
    owners_db: dict[str, int] = {}
    if wanted:
        rows = (
            yield Exec(
                sa.select(tc.c.call_id, tc.c.seq).where(tc.c.conversation_id == cid, tc.c.call_id.in_(wanted))
            )
        ).all()
        owners_db = {r.call_id: r.seq for r in rows}
    owner_of: list[int] = []
    for k, m in enumerate(batch.messages):
        o = 0
        if m.role == "tool":
            assert m.tool_call_id is not None
            o = in_batch.get(m.tool_call_id) or owners_db.get(m.tool_call_id, 0)
            if not o:
                raise InvalidConversationError(
                    f"message {k} of the batch is a tool result for call id {m.tool_call_id!r}, which no "
                    "earlier assistant message of this conversation made; append that assistant message first"
                )
        owner_of.append(o)
        for c in m.tool_calls:
            in_batch[c.id] = first + k

    # the existing tail that tool results fold into their call's unit
    earliest = min((o for o in owner_of if 0 < o < first), default=0)
    starts: list[int] = []  # unit start seqs, ascending
    pinned: dict[int, bool] = {}
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
        for r in rows:
            if r.seq == r.unit_seq:
                starts.append(r.seq)
            pinned[r.seq] = bool(r.pinned)
            old[r.seq] = (r.unit_seq, bool(r.keep))
    # units over tail + batch, exactly as History builds them
    new_prefix = prefix
    for k, m in enumerate(batch.messages):
        seq = first + k
        if m.role == "system" and new_prefix == seq - 1:
            new_prefix = seq
        pinned[seq] = m.pinned
        o = owner_of[k]
        if o:
            del starts[bisect_right(starts, o) :]
        else:
            starts.append(seq)
    unit_of: dict[int, tuple[int, bool]] = {}
    bounds = [*starts, first + n]
    for a, b in pairwise(bounds):
        keep = any(pinned[s] or s <= new_prefix for s in range(a, b))
        for s in range(a, b):
            unit_of[s] = (a, keep)

    # writes
    now = _now()
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
        yield from _recompute_runs(cid, min(keep_changed))
    if batch.images:
        ins = _insert(dialect, t.images).on_conflict_do_nothing(index_elements=["sha256"])
        rows_i = [{**r, "created_at": now} for r in batch.images]
        for i in range(0, len(rows_i), 100):
            yield Exec(ins, rows_i[i : i + 100])
    rows_m = [
        {
            **enc,
            "conversation_id": cid,
            "seq": first + k,
            "unit_seq": unit_of[first + k][0],
            "keep": unit_of[first + k][1],
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
        ins = _insert(dialect, tc)
        ins = ins.on_conflict_do_update(
            index_elements=["conversation_id", "call_id"], set_={"seq": ins.excluded.seq}
        )
        for i in range(0, len(dedup), CHUNK):
            yield Exec(ins, dedup[i : i + CHUNK])
    keeps = [unit_of[first + k][1] for k in range(n)]
    for counter_id, counts in batch.counts.items():
        yield from _store_counts(cid, counter_id, first, list(counts), keeps, dialect)
        yield from _advance_progress(cid, counter_id, first - 1, first + n - 1, dialect)
    images_added = sum(1 for m in batch.messages for p in m.content if isinstance(p, ImagePart))
    yield Exec(
        sa.update(t.conversations)
        .where(t.conversations.c.id == cid)
        .values(
            last_seq=last + n,
            prefix_len=new_prefix,
            image_count=conv.image_count + images_added,
            updated_at=now,
        )
    )
    return range(first, first + n)


def _runs_at(cid: str, counter_id: str, seq: int) -> Op[tuple[int, int] | None]:
    """The running totals (run_tokens, run_msgs) stored at ``seq``; (0, 0) before seq 1."""
    if seq < 1:
        return (0, 0)
    c = t.token_counts
    row = (
        yield Exec(
            sa.select(c.c.run_tokens, c.c.run_msgs).where(
                c.c.conversation_id == cid, c.c.counter_id == counter_id, c.c.seq == seq
            )
        )
    ).first()
    return None if row is None else (int(row[0]), int(row[1]))


def _store_counts(
    cid: str, counter_id: str, first: int, counts: list[int], keeps: Sequence[bool], dialect: str
) -> Op[None]:
    """Store the counts of seqs ``first...`` with their running totals (``keeps``: their keep flags).

    A count already stored keeps its tokens but takes the new running totals: when a counter's
    earlier messages were not counted yet, an append's totals start from nothing, and the
    back-fill that reaches them later rewrites them from the right base.
    """
    base = yield from _runs_at(cid, counter_id, first - 1)
    run_tokens, run_msgs = base or (0, 0)
    rows = []
    for k, tokens in enumerate(counts):
        if not keeps[k]:
            run_tokens += tokens
            run_msgs += 1
        rows.append(
            {
                "conversation_id": cid,
                "counter_id": counter_id,
                "seq": first + k,
                "tokens": tokens,
                "run_tokens": run_tokens,
                "run_msgs": run_msgs,
            }
        )
    ins = _insert(dialect, t.token_counts)
    ins = ins.on_conflict_do_update(
        index_elements=["conversation_id", "counter_id", "seq"],
        set_={"run_tokens": ins.excluded.run_tokens, "run_msgs": ins.excluded.run_msgs},
    )
    for i in range(0, len(rows), CHUNK):
        yield Exec(ins, rows[i : i + CHUNK])


def _recompute_runs(cid: str, start: int) -> Op[None]:
    """Rewrite the running totals of seqs >= ``start`` (after keep flags changed there), every counter.

    A counter with no count at ``start - 1`` has not reached this far yet: its back-fill writes
    the totals when it does.
    """
    c, m = t.token_counts, t.messages
    rows = (
        yield Exec(
            sa.select(c.c.counter_id, c.c.seq, c.c.tokens, c.c.run_tokens, c.c.run_msgs, m.c.keep)
            .select_from(c.join(m, sa.and_(m.c.conversation_id == c.c.conversation_id, m.c.seq == c.c.seq)))
            .where(c.c.conversation_id == cid, c.c.seq >= max(1, start - 1))
            .order_by(c.c.counter_id, c.c.seq)
        )
    ).all()
    changes: list[dict[str, Any]] = []
    state: dict[str, tuple[int, int, int] | None] = {}  # counter -> (seq, run_tokens, run_msgs) so far
    for counter_id, seq, tokens, run_tokens, run_msgs, keep in rows:
        if counter_id not in state:
            if start == 1:
                state[counter_id] = (0, 0, 0)
            elif seq == start - 1:
                state[counter_id] = (seq, int(run_tokens), int(run_msgs))
                continue
            else:
                state[counter_id] = None  # not counted up to start - 1
        now = state[counter_id]
        if now is None or seq != now[0] + 1:
            state[counter_id] = None
            continue
        rt, rm = (now[1], now[2]) if keep else (now[1] + tokens, now[2] + 1)
        state[counter_id] = (seq, rt, rm)
        if (rt, rm) != (run_tokens, run_msgs):
            changes.append({"cid": cid, "cnt": counter_id, "s": seq, "rt": rt, "rm": rm})
    if changes:
        stmt = (
            sa.update(c)
            .where(
                c.c.conversation_id == sa.bindparam("cid"),
                c.c.counter_id == sa.bindparam("cnt"),
                c.c.seq == sa.bindparam("s"),
            )
            .values(run_tokens=sa.bindparam("rt"), run_msgs=sa.bindparam("rm"))
        )
        for i in range(0, len(changes), CHUNK):
            yield Exec(stmt, changes[i : i + CHUNK])


def _advance_progress(cid: str, counter_id: str, prev: int, new: int, dialect: str) -> Op[None]:
    """Move the counted watermark from ``prev`` to ``new`` when it stood exactly at ``prev``."""
    p = t.counter_progress
    res = yield Exec(
        sa.update(p)
        .where(p.c.conversation_id == cid, p.c.counter_id == counter_id, p.c.counted_seq == prev)
        .values(counted_seq=new)
    )
    if res.rowcount == 0 and prev == 0:
        ins = _insert(dialect, p).on_conflict_do_nothing(index_elements=["conversation_id", "counter_id"])
        yield Exec(ins.values(conversation_id=cid, counter_id=counter_id, counted_seq=new))


# -- reads -------------------------------------------------------------------------------


def _load_images(shas: set[str]) -> Op[dict[str, bytes]]:
    out: dict[str, bytes] = {}
    ordered = sorted(shas)
    for i in range(0, len(ordered), 500):
        rows = (
            yield Exec(
                sa.select(t.images.c.sha256, t.images.c.data).where(
                    t.images.c.sha256.in_(ordered[i : i + 500])
                )
            )
        ).all()
        out.update({r.sha256: bytes(r.data) for r in rows})
    return out


def _decode_body(rows: Sequence[Any], images: bool = True) -> Op[list[Message]]:
    """Decode positional rows of :data:`BODY_COLUMNS` (image bytes read in the same transaction).

    ``images=False``: the conversation holds no image, so no row is searched for one.
    """
    shas = {s for r in rows for s in image_shas(r[2])} if images else None
    imgs: dict[str, bytes] = (yield from _load_images(shas)) if shas else {}
    return decode_rows(rows, imgs)


def _body() -> list[sa.Column[Any]]:
    """The columns of :data:`BODY_COLUMNS` (what decoding a message reads), in that order."""
    return [t.messages.c[name] for name in BODY_COLUMNS]


def read_messages(ns: str, cid: str, start: int | None, stop: int | None) -> Op[list[tuple[int, Message]]]:
    """Messages with ``start <= seq < stop`` (1-based seqs), as (seq, Message) pairs."""
    yield from lock_conversation(ns, cid)
    m = t.messages
    stmt = sa.select(*_body()).where(m.c.conversation_id == cid)
    if start is not None:
        stmt = stmt.where(m.c.seq >= start)
    if stop is not None:
        stmt = stmt.where(m.c.seq < stop)
    rows = (yield Exec(stmt.order_by(m.c.seq))).all()
    msgs = yield from _decode_body(rows)
    return list(zip([r[0] for r in rows], msgs, strict=True))


def backfill(ns: str, cid: str, counter: TokenCounter, limit: int, dialect: str) -> Op[bool]:
    """Count up to ``limit`` messages past the counter's watermark; returns True when none are left."""
    conv = yield from lock_conversation(ns, cid)
    p, m = t.counter_progress, t.messages
    counter_id = counter.identity
    done = (
        yield Exec(sa.select(p.c.counted_seq).where(p.c.conversation_id == cid, p.c.counter_id == counter_id))
    ).scalar_one_or_none() or 0
    if done >= conv.last_seq:
        return True
    rows = (
        yield Exec(
            sa.select(*_body(), m.c.keep)
            .where(m.c.conversation_id == cid, m.c.seq > done, m.c.seq <= conv.last_seq)
            .order_by(m.c.seq)
            .limit(limit)
        )
    ).all()
    msgs = yield from _decode_body([r[:-1] for r in rows])
    counts = counter.content_tokens(msgs)
    keeps = [bool(r[-1]) for r in rows]
    yield from _store_counts(cid, counter_id, done + 1, list(counts), keeps, dialect)
    top = rows[-1].seq if rows else conv.last_seq
    yield from _advance_progress(cid, counter_id, done, top, dialect)
    return bool(top >= conv.last_seq)


class NeedsBackfill(Exception):
    """Internal: the window found messages its counter has not counted yet."""


class NeedsFullFit(Exception):
    """Internal: a text-only model's window over a conversation holding images (fit reads it all)."""


#: The window's first look at the newest rows, per dialect: budget / divisor rows, within bounds.
#: It finds the newest turn and, when the whole window lies within it, the cut as well. PostgreSQL
#: looks further (a round trip costs more than reading rows); SQLite reads fewer rows and
#: searches the running totals sooner (reading rows costs more than another statement).
WINDOW_FIRST_ROWS: dict[str, tuple[int, int]] = {"sqlite": (8, 32), "postgresql": (16, 96)}
WINDOW_FIRST_DIVISOR: dict[str, int] = {"sqlite": 512, "postgresql": 96}

#: The binary search of a window whose cut lies before its first look, over the running totals
#: (``P(s) = run_tokens + overhead * run_msgs`` is non-decreasing in ``seq``): the first seq ``s``
#: in ``(lo, hi]`` with ``P(s) >= x``, then the cut (the first unit start after it). Each step
#: looks up ``ge = P(mid) >= x`` by primary key (a correlated lookup, so no planner can turn it
#: into a scan of the conversation's counts; SQLite allows the recursive table only once, in the
#: step's FROM). Invariant: ``P(lo) < x <= P(hi)``; a missing count ends the search early, and
#: then ``q`` is empty.
_SEARCH_SQL = """
WITH RECURSIVE bs(lo, hi, mid, ge) AS (
    SELECT CAST(:lo AS INTEGER), CAST(:hi AS INTEGER), CAST(:mid AS INTEGER), (
        SELECT CASE WHEN c.run_tokens + :ovh * c.run_msgs >= :x THEN 1 ELSE 0 END
        FROM convkit_token_counts c
        WHERE c.conversation_id = :cid AND c.counter_id = :counter_id AND c.seq = CAST(:mid AS INTEGER)
    )
    UNION ALL
    SELECT CASE WHEN bs.ge = 1 THEN bs.lo ELSE bs.mid END,
           CASE WHEN bs.ge = 1 THEN bs.mid ELSE bs.hi END,
           (CASE WHEN bs.ge = 1 THEN bs.lo + bs.mid ELSE bs.mid + bs.hi END) / 2, (
        SELECT CASE WHEN c.run_tokens + :ovh * c.run_msgs >= :x THEN 1 ELSE 0 END
        FROM convkit_token_counts c
        WHERE c.conversation_id = :cid AND c.counter_id = :counter_id
          AND c.seq = (CASE WHEN bs.ge = 1 THEN bs.lo + bs.mid ELSE bs.mid + bs.hi END) / 2
    )
    FROM bs WHERE bs.hi - bs.lo > 1 AND bs.ge IS NOT NULL
),
q AS (
    SELECT (
        SELECT m.seq FROM convkit_messages m
        WHERE m.conversation_id = :cid AND m.seq > bs.hi AND m.seq <= :last_unit AND m.unit_seq = m.seq
        ORDER BY m.seq LIMIT 1
    ) AS cut
    FROM bs WHERE bs.hi - bs.lo <= 1
)
SELECT 0, q.cut, (
    SELECT c.run_tokens + :ovh * c.run_msgs FROM convkit_token_counts c
    WHERE c.conversation_id = :cid AND c.counter_id = :counter_id AND c.seq = q.cut - 1
), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM q
"""
_BODY_SQL = (
    "SELECT 1, NULL, NULL, m.seq, m.role, m.content, m.tool_calls, m.tool_call_id, m.name, m.pinned,"
    " m.metadata"
)


@functools.cache
def _cut_sql(keep: bool) -> sa.TextClause:
    """Where the window cuts, with the bodies it keeps, in one statement.

    Rows ``(0, cut, P(cut - 1), NULL...)`` then ``(1, NULL, NULL, <BODY_COLUMNS>)``: the kept rows
    of ``[cut, r1_hi]`` and ``[max(cut, r2_lo), n]`` (the store's cache holds the rest) and, when
    ``keep``, the keep rows before the cut.
    """
    parts = [
        _SEARCH_SQL,
        f"UNION ALL {_BODY_SQL} FROM convkit_messages m WHERE m.conversation_id = :cid"
        " AND m.seq >= (SELECT cut FROM q) AND m.seq <= :r1_hi",
        f"UNION ALL {_BODY_SQL} FROM convkit_messages m WHERE m.conversation_id = :cid"
        " AND m.seq >= (SELECT cut FROM q) AND m.seq >= :r2_lo AND m.seq <= :n",
    ]
    if keep:
        parts.append(
            f"UNION ALL {_BODY_SQL} FROM convkit_messages m WHERE m.conversation_id = :cid"
            " AND m.keep = TRUE AND m.seq < (SELECT cut FROM q)"
        )
    parts.append(f"UNION ALL {_SEEN_SQL}")
    return sa.text("\n".join(parts))


@attrs.frozen
class _WindowSQL:
    first: sa.CompoundSelect[Any]
    older: sa.CompoundSelect[Any]


@functools.cache
def _window_sql() -> _WindowSQL:
    """The window's statements, built once (building SQL expressions costs more than running them).

    Rows are ``(kind, seq, role, unit_seq, keep, tokens, run_tokens, run_msgs)``; kind 0: the
    conversation (``last_seq``, -, ``image_count``, -, count watermark, ``epoch``, -); 1: a keep row
    before the range, with its count; 2: a message of the range; 3: a count of the range.
    Parameters: ``cid``, ``ns``, ``counter_id``, ``step`` (first), ``lo``, ``hi`` (older).
    """
    m, c, p, cv = t.messages, t.token_counts, t.counter_progress, t.conversations
    cid, counter_id = sa.bindparam("cid", type_=sa.String), sa.bindparam("counter_id", type_=sa.String)
    ns = sa.bindparam("ns", type_=sa.String)
    none_s, none_i, none_b = sa.null().cast(sa.String), sa.null().cast(sa.Integer), sa.null().cast(sa.Boolean)
    none_l = sa.null().cast(sa.BigInteger)

    def kind(k: int) -> Any:
        return sa.literal_column(str(k), sa.Integer)

    counted = (
        sa.select(p.c.counted_seq)
        .where(p.c.conversation_id == cv.c.id, p.c.counter_id == counter_id)
        .scalar_subquery()
    )
    head = sa.select(
        kind(0),
        cv.c.last_seq,
        none_s,
        cv.c.image_count,
        none_b,
        counted,
        sa.cast(cv.c.epoch, sa.BigInteger),
        none_i,
    ).where(cv.c.id == cid, cv.c.namespace == ns)
    # the conversation's length, looked up once (and nothing at all in another namespace)
    n = sa.select(cv.c.last_seq).where(cv.c.id == cid, cv.c.namespace == ns).scalar_subquery()
    low = n - sa.bindparam("step", type_=sa.Integer) + 1

    def light(a: Any, b: Any) -> list[sa.Select[Any]]:
        """Rows a <= seq <= b of the messages (kind 2) and of the counts (kind 3): two index ranges,
        not a join (with stale statistics PostgreSQL planned the join as a nested loop over the
        whole count range)."""
        return [
            sa.select(kind(2), m.c.seq, m.c.role, m.c.unit_seq, m.c.keep, none_i, none_l, none_i).where(
                m.c.conversation_id == cid, m.c.seq >= a, m.c.seq <= b
            ),
            sa.select(
                kind(3), c.c.seq, none_s, none_i, none_b, c.c.tokens, c.c.run_tokens, c.c.run_msgs
            ).where(c.c.conversation_id == cid, c.c.counter_id == counter_id, c.c.seq >= a, c.c.seq <= b),
        ]

    # keep rows are few and anywhere: each count looked up by primary key (a correlated lookup)
    keep_tokens = (
        sa.select(c.c.tokens)
        .where(c.c.conversation_id == m.c.conversation_id, c.c.counter_id == counter_id, c.c.seq == m.c.seq)
        .scalar_subquery()
    )
    keep_rows = sa.select(
        kind(1), m.c.seq, m.c.role, m.c.unit_seq, m.c.keep, keep_tokens, none_l, none_i
    ).where(m.c.conversation_id == cid, m.c.keep.is_(True), m.c.seq < low)
    lo, hi = sa.bindparam("lo", type_=sa.Integer), sa.bindparam("hi", type_=sa.Integer)
    return _WindowSQL(
        # the conversation, the keep rows before the first look (always in the window: leading
        # system, pinned units), then the newest rows: one statement
        first=sa.union_all(head, keep_rows, *light(low, n)),
        older=sa.union_all(head, *light(lo, hi)),
    )


#: The conversation as a window's later statements see it: ``(2, last_seq, epoch, NULL...)``.
_SEEN_SQL = (
    "SELECT 2, c.last_seq, c.epoch, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
    " FROM convkit_conversations c WHERE c.id = :cid"
)


@functools.cache
def _bodies_sql(keep: bool, ranges: int) -> sa.TextClause:
    """The bodies of the keep rows before ``cut`` (when ``keep``) and of ``ranges`` seq ranges.

    Rows ``(1, NULL, NULL, <BODY_COLUMNS>)``, then the conversation's ``(2, last_seq, epoch, ...)``
    as this statement sees it. Parameters: ``cid``, ``cut``, and ``a0``/``b0``, ``a1``/``b1``...
    (closed ranges). Each part is an index range of its own, not one OR (SQLite scanned the whole
    conversation for the OR).
    """
    parts = [_SEEN_SQL]
    if keep:
        parts.append(
            f"{_BODY_SQL} FROM convkit_messages m WHERE m.conversation_id = :cid"
            " AND m.keep = TRUE AND m.seq < :cut"
        )
    for i in range(ranges):
        parts.append(
            f"{_BODY_SQL} FROM convkit_messages m WHERE m.conversation_id = :cid"
            f" AND m.seq >= :a{i} AND m.seq <= :b{i}"
        )
    return sa.text("\nUNION ALL ".join(parts))


class WindowMoved(Exception):
    """Internal: the conversation changed between a window's statements (read without a snapshot)."""


def _check_seen(rows: Sequence[Any], seen: tuple[int, int], cid: str) -> None:
    """Raise WindowMoved unless a later statement saw the conversation as the first one did."""
    now = next(((r[1], r[2]) for r in rows if r[0] == 2), None)
    if now != seen:
        raise WindowMoved(cid)


def _kept_bodies(
    cid: str,
    kept: list[int],
    cut: int,
    n: int,
    known: Mapping[int, Message],
    images: bool,
    seen: tuple[int, int],
) -> Op[list[Message]]:
    """The messages at the ``kept`` seqs (keep rows before ``cut``, then ``cut..n``).

    Reads and decodes only those ``known`` (decoded by an earlier window of this epoch) lacks:
    the keep rows before the cut if any is missing, and the missing runs of ``cut..n`` (at
    most two ranges; more holes are read as one range).
    """
    if known:
        keep_missing = any(seq not in known for seq in kept if seq < cut)
        runs: list[list[int]] = []
        for seq in range(cut, n + 1):
            if seq not in known:
                if runs and runs[-1][1] == seq - 1:
                    runs[-1][1] = seq
                else:
                    runs.append([seq, seq])
    else:  # nothing decoded yet: every kept row
        keep_missing, runs = kept[0] < cut, [[cut, n]]
    if len(runs) > 2:
        runs = [[runs[0][0], runs[-1][1]]]
    fetched: dict[int, Message] = {}
    if keep_missing or runs:
        params: dict[str, Any] = {"cid": cid, "cut": cut}
        for i, (a, b) in enumerate(runs):
            params[f"a{i}"], params[f"b{i}"] = a, b
        rows = (yield Exec(_bodies_sql(keep_missing, len(runs)), params, raw=True)).all()
        _check_seen(rows, seen, cid)
        body = [r[3:] for r in rows if r[0] == 1]
        fetched = dict(zip([r[0] for r in body], (yield from _decode_body(body, images)), strict=True))
    try:
        return [fetched[seq] if seq in fetched else known[seq] for seq in kept]
    except KeyError as exc:
        raise DatabaseError(
            f"conversation {cid}: message seq {exc} is missing (was the database edited outside convkit?)"
        ) from None


def _search_cut(
    cid: str,
    counter_id: str,
    n: int,
    low: int,
    last_unit: int,
    x: int,
    ovh: int,
    keep_cost: Mapping[int, int],
    known: Mapping[int, Message],
    images: bool,
    seen: tuple[int, int],
) -> Op[tuple[int, int, dict[int, Message]]]:
    """The cut before seq ``low`` (see :data:`_SEARCH_SQL`), ``P(cut - 1)``, and the kept messages
    read with it: those of ``[cut, n]`` outside the newest run of seqs ``known`` holds, and the
    keep rows before the cut when ``known`` lacks any keep row."""
    if known:  # the run of seqs the cache holds that ends at its newest seq: read around it
        top = max(known)
        bottom = top
        while bottom - 1 in known:
            bottom -= 1
        r1_hi, r2_lo = bottom - 1, top + 1
    else:
        r1_hi, r2_lo = n, n + 1
    keep_part = any(seq not in known for seq in keep_cost)
    params = {
        "cid": cid,
        "counter_id": counter_id,
        "lo": 0,
        "hi": low,
        "mid": low // 2,
        "x": x,
        "ovh": ovh,
        "last_unit": last_unit,
        "r1_hi": r1_hi,
        "r2_lo": r2_lo,
        "n": n,
    }
    rows = (yield Exec(_cut_sql(keep_part), params, raw=True)).all()
    _check_seen(rows, seen, cid)
    found = [r for r in rows if r[0] == 0]
    if not found or found[0][1] is None:
        raise DatabaseError(
            f"conversation {cid}: the stored token counts of counter {counter_id!r} are missing or "
            f"inconsistent below seq {low} (was the database edited outside convkit?)"
        )
    cut = int(found[0][1])
    before_cut = 0 if cut == 1 else int(found[0][2])
    body = [r[3:] for r in rows if r[0] == 1]
    fetched = dict(zip([r[0] for r in body], (yield from _decode_body(body, images)), strict=True))
    return cut, before_cut, fetched


def window_trim(
    ns: str,
    cid: str,
    spec: ModelSpec,
    counter_id: str,
    budget: int,
    reserve: int,
    margin: float,
    tools_tokens: int,
    cache: MessageCache | None = None,
    dialect: str = "sqlite",
) -> Op[FitResult]:
    """The trim window of a stored conversation, reading only the kept bodies and a few counts.

    Usually two statements, whatever the conversation's length: the conversation with its count
    watermark, the counts of the keep rows (leading system, pinned units) and of the newest rows
    (the newest turn; older rows only when that turn reaches further back); then the kept
    bodies, except those ``cache`` holds from an earlier window of the same epoch, with, when
    the window reaches past the rows read first, the binary search of the running totals for
    the cut (logarithmic in the conversation's length, one primary-key lookup a step, run inside
    the database). Every range is closed, and nothing past the conversation's length at the
    first statement is read (a concurrent append does not leak into this window).

    The cut is the one :func:`convkit.fit` makes: units are dropped oldest first while the rest
    does not fit; costs are non-negative, so the units that fit are exactly those starting after
    the last seq ``s`` whose running cost ``P(s)`` is below ``P(before the newest turn) - room``.
    """
    sql = _window_sql()
    least, most = WINDOW_FIRST_ROWS.get(dialect, WINDOW_FIRST_ROWS["sqlite"])
    step = min(max(budget // WINDOW_FIRST_DIVISOR.get(dialect, 512), least), most)
    params = {"cid": cid, "counter_id": counter_id}
    rows = (yield Exec(sql.first, {**params, "ns": ns, "step": step}, raw=True)).all()
    head = next((r for r in rows if r[0] == 0), None)
    if head is None:
        raise ConversationNotFoundError(cid, ns)
    _, n, _, image_count, _, counted, epoch, _ = head
    seen = (n, epoch)  # later statements must see the conversation so (reads may lack a snapshot)
    if n == 0:
        raise ValidationError("nothing to fit: the conversation has no messages")
    if not spec.supports_images and image_count > 0:
        raise NeedsFullFit
    if (counted or 0) < n:
        raise NeedsBackfill
    ovh = spec.message_overhead
    # seq -> (role, unit_seq, keep, tokens, run_tokens, run_msgs) for every seq in [low, n]
    got: dict[int, tuple[str, int, bool, int, int, int]] = {}
    keep_cost: dict[int, int] = {}  # seq -> cost of every keep row
    low = max(1, n - step + 1)

    def take(rows: Sequence[Any], lo: int, hi: int) -> None:
        """Merge the rows of messages and counts with lo <= seq <= hi (and keep rows) into ``got``."""
        shape: dict[int, tuple[str, int, bool]] = {}
        counts: dict[int, tuple[int, int, int]] = {}
        for kind, seq, role, unit, keep, tokens, run_tokens, run_msgs in rows:
            if kind == 2:
                shape[seq] = (role, unit, bool(keep))
            elif kind == 3:
                counts[seq] = (tokens, run_tokens, run_msgs)
            elif kind == 1:  # a keep row before the range, with its count
                if tokens is None:
                    raise DatabaseError(
                        f"conversation {cid}: the token count of seq {seq} for counter {counter_id!r} is "
                        "missing (was the database edited outside convkit?)"
                    )
                keep_cost[seq] = tokens + ovh
        if len(shape) != hi - lo + 1 or len(counts) != hi - lo + 1:
            raise DatabaseError(
                f"conversation {cid}: stored messages or token counts of counter {counter_id!r} are "
                f"missing between seq {lo} and {hi} (was the database edited outside convkit?)"
            )
        for seq, (role, unit, keep) in shape.items():
            tokens, run_tokens, run_msgs = counts[seq]
            got[seq] = (role, unit, keep, tokens, run_tokens, run_msgs)
            if keep:
                keep_cost[seq] = tokens + ovh

    take(rows, low, n)

    def older(lo: int) -> Op[None]:
        """Read the rows lo <= seq < low into ``got``."""
        rows = (yield Exec(sql.older, {**params, "ns": ns, "lo": lo, "hi": low - 1}, raw=True)).all()
        if next(((r[1], r[6]) for r in rows if r[0] == 0), None) != seen:
            raise WindowMoved(cid)
        take(rows, lo, low - 1)

    # the newest turn (as fit keeps it): the unit of the newest non-system message and all after it
    last_unit = next((got[s][1] for s in range(n, low - 1, -1) if got[s][0] != "system"), None)
    while last_unit is None and low > 1:
        step = min(step * 4, 65536)
        lo = max(1, low - step)
        yield from older(lo)
        low = lo
        last_unit = next((got[s][1] for s in range(n, low - 1, -1) if got[s][0] != "system"), None)
    if last_unit is None:
        raise InvalidConversationError(
            "the conversation has only system messages, so there is nothing to answer; "
            "add the user message the model should reply to"
        )
    if max(1, last_unit - 1) < low:  # a tool group longer than the first look: read it, and P before it
        lo = max(1, last_unit - 1)
        yield from older(lo)
        low = lo
    last = [got[s][3] + ovh for s in range(last_unit, n + 1) if not got[s][2]]  # keep rows: in keep_cost
    last_cost = sum(last)
    fixed = spec.request_overhead + tools_tokens + sum(keep_cost.values()) + last_cost
    if fixed > budget:
        raise ContextWindowError(
            required=fixed,
            available=budget,
            model=spec.name,
            context_window=spec.context_window,
            reserve=reserve,
            detail="the must-keep part is the leading system and pinned messages, the newest "
            "message with its tool group (and any system messages after it), and the tool definitions",
        )
    remaining = budget - fixed

    def cost_to(s: int) -> int:
        """P(s): tokens plus overhead of the droppable messages 1..s (s in [low, n])."""
        return got[s][4] + ovh * got[s][5]

    known = cache.get(cid, epoch) if cache is not None else {}
    cut = 1
    if last_unit > 1:
        top = cost_to(last_unit - 1)
        x = top - remaining  # units starting after the last s with P(s) < x fit
        if x > 0:
            if cost_to(low) < x:  # the cut lies within the rows read: find it here
                s_star = next(s for s in range(low + 1, last_unit) if cost_to(s) >= x)
                cut = next(s for s in range(s_star + 1, last_unit + 1) if got[s][1] == s)
                before_cut = cost_to(cut - 1)
            else:  # search the running totals, and read the kept bodies the cache lacks, at once
                cut, before_cut, fetched = yield from _search_cut(
                    cid, counter_id, n, low, last_unit, x, ovh, keep_cost, known, image_count > 0, seen
                )
                if fetched:
                    known = {**known, **fetched}
            remaining -= top - before_cut
        else:
            remaining -= top
    pins = sorted(seq for seq in keep_cost if seq < cut)
    kept = [*pins, *range(cut, n + 1)]
    msgs = yield from _kept_bodies(cid, kept, cut, n, known, image_count > 0, seen)
    if cache is not None:
        cache.put(cid, epoch, dict(zip(kept, msgs, strict=True)))
    spans: list[tuple[int, int]] = []  # 0-based [start, end) runs of the kept seqs
    for seq in pins:
        if spans and spans[-1][1] == seq - 1:
            spans[-1] = (spans[-1][0], seq)
        else:
            spans.append((seq - 1, seq))
    if spans and spans[-1][1] == cut - 1:
        spans[-1] = (spans[-1][0], n)
    else:
        spans.append((cut - 1, n))
    return FitResult(
        messages=tuple(msgs),
        prompt_tokens=budget - remaining,
        budget=budget,
        model=spec.name,
        context_window=spec.context_window,
        reserve=reserve,
        margin=margin,
        strategy="trim",
        input_length=n,
        kept_spans=tuple(spans),
        tools_tokens=tools_tokens,
    )


def has_images(ns: str, cid: str) -> Op[bool]:
    conv = yield from lock_conversation(ns, cid)
    return bool(conv.image_count > 0)


# -- forks -------------------------------------------------------------------------------------


def fork(ns: str, cid: str, at_seq: int | None, title: str | None) -> Op[Conversation]:
    """A new conversation holding messages 1..at_seq of ``cid`` (counts copied, not recounted)."""
    conv = yield from lock_conversation(ns, cid, for_update=True)
    at = conv.last_seq if at_seq is None else at_seq
    if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at <= conv.last_seq:
        raise ValidationError(f"fork point must be a seq from 0 to {conv.last_seq}, got {at_seq!r}")
    m, tc, c, p = t.messages, t.tool_calls, t.token_counts, t.counter_progress
    new_id = uuid.uuid4().hex
    now = _now()
    prefix = min(conv.prefix_len, at)
    with_images = 0
    if conv.image_count:
        with_images = (
            yield Exec(
                sa.select(sa.func.count())
                .select_from(m)
                .where(m.c.conversation_id == cid, m.c.seq <= at, m.c.content.contains(IMAGE_MARKER))
            )
        ).scalar_one()
        with_images += (
            yield Exec(
                sa.select(sa.func.count())
                .select_from(m)
                .where(m.c.conversation_id == cid, m.c.seq <= at, m.c.content.contains('{"url":'))
            )
        ).scalar_one()
    yield Exec(
        sa.insert(t.conversations).values(
            id=new_id,
            namespace=ns,
            title=conv.title if title is None else title,
            metadata=conv.metadata,
            last_seq=at,
            prefix_len=prefix,
            image_count=with_images,
            forked_from=cid,
            forked_at_seq=at,
            created_at=now,
            updated_at=now,
        )
    )
    cols = [col for col in m.c if col.name not in ("id", "conversation_id")]
    yield Exec(
        sa.insert(m).from_select(
            ["conversation_id", *[col.name for col in cols]],
            sa.select(sa.literal(new_id, sa.String), *cols).where(m.c.conversation_id == cid, m.c.seq <= at),
        )
    )
    yield Exec(
        sa.insert(tc).from_select(
            ["conversation_id", "call_id", "seq"],
            sa.select(sa.literal(new_id, sa.String), tc.c.call_id, tc.c.seq).where(
                tc.c.conversation_id == cid, tc.c.seq <= at
            ),
        )
    )
    # an id made again after the fork point may have been made before it too: the fork's call
    yield from _restore_earlier_calls(cid, new_id, at, (yield from _calls_after(cid, at)))
    yield Exec(
        sa.insert(c).from_select(
            ["conversation_id", "counter_id", "seq", "tokens", "run_tokens", "run_msgs"],
            sa.select(
                sa.literal(new_id, sa.String),
                c.c.counter_id,
                c.c.seq,
                c.c.tokens,
                c.c.run_tokens,
                c.c.run_msgs,
            ).where(c.c.conversation_id == cid, c.c.seq <= at),
        )
    )
    yield Exec(
        sa.insert(p).from_select(
            ["conversation_id", "counter_id", "counted_seq"],
            sa.select(
                sa.literal(new_id, sa.String),
                p.c.counter_id,
                sa.case((p.c.counted_seq < at, p.c.counted_seq), else_=at),
            ).where(p.c.conversation_id == cid),
        )
    )
    if at:
        # the unit holding the fork point may owe its extent (and pinned flag) to tool results after it
        yield from _rebuild_last_unit(new_id, at, prefix)
    row = yield from lock_conversation(ns, new_id)
    return _conv(row)


def _rebuild_last_unit(cid: str, last: int, prefix: int) -> Op[None]:
    """Rebuild the units of the trailing unit of messages 1..``last``, as History builds them.

    Used when a conversation gets a new end (a fork point, a truncation): the
    unit holding ``last`` may have been merged with, or pinned by, messages
    after it that this conversation no longer has.
    """
    m = t.messages
    u = (yield Exec(sa.select(m.c.unit_seq).where(m.c.conversation_id == cid, m.c.seq == last))).scalar_one()
    rows = (
        yield Exec(
            sa.select(m.c.seq, m.c.role, m.c.tool_calls, m.c.tool_call_id, m.c.pinned, m.c.unit_seq, m.c.keep)
            .where(m.c.conversation_id == cid, m.c.seq >= u, m.c.seq <= last)
            .order_by(m.c.seq)
        )
    ).all()
    owner: dict[str, int] = {}
    starts: list[int] = []
    for r in rows:
        o = owner.get(r.tool_call_id) if r.role == "tool" else None
        if o is None:
            starts.append(r.seq)
        else:
            del starts[bisect_right(starts, o) :]
        for call in json.loads(r.tool_calls) if r.tool_calls else ():
            owner[call["id"]] = r.seq
    by_seq = {r.seq: r for r in rows}
    keep_changed: list[int] = []
    for a, b in pairwise([*starts, last + 1]):
        keep = any(by_seq[q].pinned or q <= prefix for q in range(a, b))
        keep_changed += [q for q in range(a, b) if bool(by_seq[q].keep) != keep]
        if any(by_seq[q].unit_seq != a or bool(by_seq[q].keep) != keep for q in range(a, b)):
            yield Exec(
                sa.update(m)
                .where(m.c.conversation_id == cid, m.c.seq >= a, m.c.seq < b)
                .values(unit_seq=a, keep=keep)
            )
    if keep_changed:
        yield from _recompute_runs(cid, min(keep_changed))
    return None


# -- turns, usage and calibration ----------------------------------------------------------------

USAGE_FIELDS = (
    "model",
    "counter_id",
    "local_prompt_tokens",
    "prompt_tokens",
    "completion_tokens",
    "image_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
)


@attrs.frozen
class UsageTotals:
    """Usage and cost summed over a conversation's recorded turns."""

    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    image_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0


@attrs.frozen
class Calibration:
    """How xAI's prompt counts compared with a counter's, for one model."""

    model: str
    counter_id: str
    ratio_max: float
    ratio_last: float
    samples: int


def record_turn(
    ns: str, cid: str, batch: Prepared | None, usage_row: Mapping[str, Any], dialect: str
) -> Op[int | None]:
    """Append the reply (if any) and its usage row in one transaction; returns the reply's seq."""
    seq: int | None = None
    if batch is not None and batch.messages:
        seqs = yield from append(ns, cid, batch, dialect)
        seq = seqs[-1]
    else:
        yield from lock_conversation(ns, cid, for_update=True)
    row = {k: usage_row.get(k) for k in USAGE_FIELDS}
    if not isinstance(row["model"], str) or not row["model"]:
        raise ValidationError("a usage row needs the model name")
    for k in USAGE_FIELDS[3:8]:
        row[k] = int(row[k] or 0)
    row["cost_usd"] = float(row["cost_usd"] or 0.0)
    yield Exec(sa.insert(t.usage).values(conversation_id=cid, seq=seq, created_at=_now(), **row))
    return seq


def usage_totals(ns: str, cid: str) -> Op[UsageTotals]:
    yield from lock_conversation(ns, cid)
    u = t.usage
    row = (
        yield Exec(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(u.c.prompt_tokens), 0),
                sa.func.coalesce(sa.func.sum(u.c.completion_tokens), 0),
                sa.func.coalesce(sa.func.sum(u.c.image_tokens), 0),
                sa.func.coalesce(sa.func.sum(u.c.cached_tokens), 0),
                sa.func.coalesce(sa.func.sum(u.c.reasoning_tokens), 0),
                sa.func.coalesce(sa.func.sum(u.c.cost_usd), 0.0),
            ).where(u.c.conversation_id == cid)
        )
    ).one()
    return UsageTotals(
        int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), int(row[5]), float(row[6])
    )


def get_calibration(model: str, counter_id: str) -> Op[Calibration | None]:
    c = t.calibration
    row = (yield Exec(sa.select(c).where(c.c.model == model, c.c.counter_id == counter_id))).first()
    if row is None:
        return None
    return Calibration(
        row.model, row.counter_id, float(row.ratio_max), float(row.ratio_last), int(row.samples)
    )


def add_calibration(model: str, counter_id: str, ratio: float, dialect: str) -> Op[Calibration]:
    """Record one observed ratio (xAI's prompt tokens / local count)."""
    if not (isinstance(ratio, int | float) and 0 < ratio < 100):
        raise ValidationError(f"a calibration ratio must be a positive number below 100, got {ratio!r}")
    c = t.calibration
    now = _now()
    ins = _insert(dialect, c).values(
        model=model, counter_id=counter_id, ratio_max=ratio, ratio_last=ratio, samples=1, updated_at=now
    )
    ins = ins.on_conflict_do_update(
        index_elements=["model", "counter_id"],
        set_={
            "ratio_max": sa.case((c.c.ratio_max < ratio, ratio), else_=c.c.ratio_max),
            "ratio_last": ratio,
            "samples": c.c.samples + 1,
            "updated_at": now,
        },
    )
    yield Exec(ins)
    got = yield from get_calibration(model, counter_id)
    assert got is not None
    return got


# -- summaries ---------------------------------------------------------------------------------


@attrs.frozen
class StoredSummary:
    """A summary row: the text and the exact seq range it covers."""

    first_seq: int
    last_seq: int
    text: str
    model: str
    counter_id: str
    tokens: int


def latest_summary(ns: str, cid: str) -> Op[StoredSummary | None]:
    """The summary written last: the one the last window used and the next one starts from.

    Not the one covering the most: a tool result arriving after its call was summarized joins
    the call to the newest turn, so the next summary covers less than the one before it.
    """
    yield from lock_conversation(ns, cid)
    s = t.summaries
    row = (
        yield Exec(sa.select(s).where(s.c.conversation_id == cid).order_by(s.c.id.desc()).limit(1))
    ).first()
    if row is None:
        return None
    return StoredSummary(row.first_seq, row.last_seq, row.content, row.model, row.counter_id, row.tokens)


def save_summary(ns: str, cid: str, summary: StoredSummary) -> Op[None]:
    conv = yield from lock_conversation(ns, cid, for_update=True)
    if not 1 <= summary.first_seq <= summary.last_seq <= conv.last_seq:
        raise ValidationError(
            f"a summary must cover stored messages: seqs {summary.first_seq}-{summary.last_seq} "
            f"of 1-{conv.last_seq}"
        )
    yield Exec(
        sa.insert(t.summaries).values(
            conversation_id=cid,
            first_seq=summary.first_seq,
            last_seq=summary.last_seq,
            content=summary.text,
            model=summary.model,
            counter_id=summary.counter_id,
            tokens=summary.tokens,
            created_at=_now(),
        )
    )
    return None


def summaries(ns: str, cid: str) -> Op[list[StoredSummary]]:
    yield from lock_conversation(ns, cid)
    s = t.summaries
    rows = (yield Exec(sa.select(s).where(s.c.conversation_id == cid).order_by(s.c.id))).all()
    return [StoredSummary(r.first_seq, r.last_seq, r.content, r.model, r.counter_id, r.tokens) for r in rows]


def _calls_after(cid: str, seq: int) -> Op[set[str]]:
    tc = t.tool_calls
    rows = (yield Exec(sa.select(tc.c.call_id).where(tc.c.conversation_id == cid, tc.c.seq > seq))).all()
    return {r.call_id for r in rows}


def _restore_earlier_calls(src: str, dst: str, at: int, ids: set[str]) -> Op[None]:
    """Give ``dst`` the newest call at seq <= ``at`` in ``src`` of each id in ``ids``.

    ``convkit_tool_calls`` keeps only the newest call per id, so when a history is cut at
    ``at`` (fork, truncate), an id whose newest call lies past the cut may still have been
    made before it: that earlier call is looked up in the kept messages.
    """
    if not ids or not at:
        return
    m = t.messages
    rows = (
        yield Exec(
            sa.select(m.c.seq, m.c.tool_calls)
            .where(m.c.conversation_id == src, m.c.seq <= at, m.c.tool_calls.is_not(None))
            .order_by(m.c.seq)
        )
    ).all()
    earlier: dict[str, int] = {}
    for r in rows:
        for call in json.loads(r.tool_calls):
            if call["id"] in ids:
                earlier[call["id"]] = r.seq
    if earlier:
        yield Exec(
            sa.insert(t.tool_calls),
            [{"conversation_id": dst, "call_id": k, "seq": v} for k, v in earlier.items()],
        )


# -- truncation ----------------------------------------------------------------------------------


def truncate(ns: str, cid: str, keep: int) -> Op[list[Message]]:
    """Delete the messages after seq ``keep``; returns them (oldest first).

    The one unit the cut may split is rebuilt from its remaining messages,
    exactly as an append would have built it; summaries reaching past the
    cut are deleted; usage rows stay (they record what was spent).
    """
    conv = yield from lock_conversation(ns, cid, for_update=True)
    if isinstance(keep, bool) or not isinstance(keep, int) or not 0 <= keep <= conv.last_seq:
        raise ValidationError(
            f"truncate keeps messages 1..keep with keep from 0 to {conv.last_seq}, got {keep!r}"
        )
    m, tc, c, p, s = t.messages, t.tool_calls, t.token_counts, t.counter_progress, t.summaries
    if keep == conv.last_seq:
        return []
    gone_rows = (
        yield Exec(sa.select(*_body()).where(m.c.conversation_id == cid, m.c.seq > keep).order_by(m.c.seq))
    ).all()
    gone = yield from _decode_body(gone_rows)
    cut_calls = yield from _calls_after(cid, keep)
    for table in (c, tc, m):
        yield Exec(sa.delete(table).where(table.c.conversation_id == cid, table.c.seq > keep))
    yield from _restore_earlier_calls(cid, cid, keep, cut_calls)
    yield Exec(sa.delete(s).where(s.c.conversation_id == cid, s.c.last_seq > keep))
    yield Exec(
        sa.update(p).where(p.c.conversation_id == cid, p.c.counted_seq > keep).values(counted_seq=keep)
    )
    prefix = min(conv.prefix_len, keep)
    if keep:
        yield from _rebuild_last_unit(cid, keep, prefix)
    yield Exec(
        sa.update(t.conversations)
        .where(t.conversations.c.id == cid)
        .values(last_seq=keep, prefix_len=prefix, epoch=t.conversations.c.epoch + 1, updated_at=_now())
    )
    return gone


def pop(ns: str, cid: str) -> Op[Message | None]:
    """Remove and return the newest message, in one transaction."""
    conv = yield from lock_conversation(ns, cid, for_update=True)
    if conv.last_seq == 0:
        return None
    gone = yield from truncate(ns, cid, conv.last_seq - 1)
    return gone[-1]
