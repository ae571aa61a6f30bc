"""Window reads: the trim window of a stored conversation, from counts and the kept bodies only.

:func:`window_trim` is the store's side of :func:`convkit.fit` with
``strategy="trim"``: it supplies counts and rows, and finds the cut with the
engine's rule (units are dropped oldest first while the rest does not fit) over
the stored running totals (see :mod:`convkit.store._totals`), in SQL built once
per process and run as ``raw`` requests (see :class:`~convkit.store._ops_core.Exec`).

It asks its caller for another path by raising: :class:`NeedsBackfill` (its
counter has not counted every message yet: back-fill, then ask again),
:class:`NeedsFullFit` (a text-only model over a conversation holding images:
``fit`` over every message) and :class:`WindowMoved` (the conversation changed
between its statements: ask again). The handles' shared flow
(:mod:`convkit.store._base`) does so.

Invariants: the result equals ``fit`` over the stored messages; every range
read is closed, and nothing past the conversation's length at the first
statement is read; reads without a snapshot (PostgreSQL) check that each later
statement saw the conversation as the first did (length and ``epoch``), so a
window never mixes two states; the store's :class:`~convkit.store._msgcache.MessageCache`
is trusted only for the epoch it was filled in.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import attrs
import sqlalchemy as sa

from .._engine.cut import check_must_keep, threshold
from .._engine.spans import kept_spans
from .._errors import (
    ConversationNotFoundError,
    DatabaseError,
    InvalidConversationError,
    ValidationError,
)
from .._fitting import FitResult
from .._messages import Message
from .._models import ModelSpec
from . import _schema as t
from ._msgcache import MessageCache
from ._ops_core import Exec, Op, decode_body, insert_for

__all__ = [
    "WINDOW_FIRST_DIVISOR",
    "WINDOW_FIRST_ROWS",
    "NeedsBackfill",
    "NeedsFullFit",
    "WindowMoved",
    "kept_bodies",
    "save_start",
    "window_trim",
]


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

    Rows are ``(kind, seq, role, unit_seq, keep, tokens, run_tokens, run_msgs, *body)``; kind 0:
    the conversation (``last_seq``, -, ``image_count``, -, count watermark, ``epoch``, -); 1: a keep
    row before the range, with its count; 2: a message of the range; 3: a count of the range.
    ``body`` is ``content, tool_calls, tool_call_id, name, pinned, metadata``: of a range row with
    ``seq >= body_from``, and of the keep rows when ``keep_bodies`` is 1 (else NULL), so a window
    whose kept bodies the store's cache mostly holds reads the rest in its first statement.
    Parameters: ``cid``, ``ns``, ``counter_id``, ``step``, ``body_from``, ``keep_bodies`` (first),
    ``lo``, ``hi`` (older).
    """
    m, c, cv = t.messages, t.token_counts, t.conversations
    cid, counter_id = sa.bindparam("cid", type_=sa.String), sa.bindparam("counter_id", type_=sa.String)
    ns = sa.bindparam("ns", type_=sa.String)
    none_s, none_i, none_b = sa.null().cast(sa.String), sa.null().cast(sa.Integer), sa.null().cast(sa.Boolean)
    none_l = sa.null().cast(sa.BigInteger)

    def kind(k: int) -> Any:
        return sa.literal_column(str(k), sa.Integer)

    no_body = (none_s, none_s, none_s, none_s, none_b, none_s)

    def body_if(cond: Any) -> tuple[Any, ...]:
        cols = (m.c.content, m.c.tool_calls, m.c.tool_call_id, m.c.name, m.c.pinned, m.c.metadata)
        return tuple(sa.case((cond, col), else_=none) for col, none in zip(cols, no_body, strict=True))

    # counts have no holes (see convkit.store._totals): the count of the newest message, if any
    counted = (
        sa.select(c.c.seq)
        .where(c.c.conversation_id == cv.c.id, c.c.counter_id == counter_id, c.c.seq == cv.c.last_seq)
        .scalar_subquery()
    )
    # the stable policy's stored start (per model and counter): the start of the unit holding
    # it, and the running totals before that unit
    # (each lookup names the conversation by parameter: a subquery nested in another does not
    # correlate to the outer conversation row, and would read every conversation's rows)
    ws = t.window_starts
    start_seq = (
        sa.select(ws.c.start_seq)
        .where(
            ws.c.conversation_id == cid,
            ws.c.model == sa.bindparam("model"),
            ws.c.counter_id == counter_id,
        )
        .scalar_subquery()
    )
    start_unit = (
        sa.select(m.c.unit_seq).where(m.c.conversation_id == cid, m.c.seq == start_seq).scalar_subquery()
    )

    def before_start(col: Any) -> Any:
        return (
            sa.select(col)
            .where(c.c.conversation_id == cid, c.c.counter_id == counter_id, c.c.seq == start_unit - 1)
            .scalar_subquery()
        )

    no_start = (none_i, none_i, none_l, none_i)
    head = sa.select(
        kind(0),
        cv.c.last_seq,
        none_s,
        cv.c.image_count,
        none_b,
        counted,
        sa.cast(cv.c.epoch, sa.BigInteger),
        none_i,
        *no_body,
        start_seq,
        start_unit,
        before_start(c.c.run_tokens),
        before_start(c.c.run_msgs),
    ).where(cv.c.id == cid, cv.c.namespace == ns)
    # the conversation's length, looked up once (and nothing at all in another namespace)
    n = sa.select(cv.c.last_seq).where(cv.c.id == cid, cv.c.namespace == ns).scalar_subquery()
    low = n - sa.bindparam("step", type_=sa.Integer) + 1

    def light(a: Any, b: Any, bodies: bool) -> list[sa.Select[Any]]:
        """Rows a <= seq <= b of the messages (kind 2) and of the counts (kind 3): two index ranges,
        not a join (with stale statistics PostgreSQL planned the join as a nested loop over the
        whole count range)."""
        body = body_if(m.c.seq >= sa.bindparam("body_from", type_=sa.Integer)) if bodies else no_body
        return [
            sa.select(
                kind(2), m.c.seq, m.c.role, m.c.unit_seq, m.c.keep, none_i, none_l, none_i, *body, *no_start
            ).where(m.c.conversation_id == cid, m.c.seq >= a, m.c.seq <= b),
            sa.select(
                kind(3),
                c.c.seq,
                none_s,
                none_i,
                none_b,
                c.c.tokens,
                c.c.run_tokens,
                c.c.run_msgs,
                *no_body,
                *no_start,
            ).where(c.c.conversation_id == cid, c.c.counter_id == counter_id, c.c.seq >= a, c.c.seq <= b),
        ]

    # keep rows are few and anywhere: each count looked up by primary key (a correlated lookup)
    keep_tokens = (
        sa.select(c.c.tokens)
        .where(c.c.conversation_id == m.c.conversation_id, c.c.counter_id == counter_id, c.c.seq == m.c.seq)
        .scalar_subquery()
    )
    keep_rows = sa.select(
        kind(1),
        m.c.seq,
        m.c.role,
        m.c.unit_seq,
        m.c.keep,
        keep_tokens,
        none_l,
        none_i,
        *body_if(sa.bindparam("keep_bodies", type_=sa.Integer) == 1),
        *no_start,
    ).where(m.c.conversation_id == cid, m.c.keep.is_(True), m.c.seq < low)
    lo, hi = sa.bindparam("lo", type_=sa.Integer), sa.bindparam("hi", type_=sa.Integer)
    return _WindowSQL(
        # the conversation, the keep rows before the first look (always in the window: leading
        # system, pinned units), then the newest rows: one statement
        first=sa.union_all(head, keep_rows, *light(low, n, True)),
        older=sa.union_all(head, *light(lo, hi, False)),
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


def kept_bodies(
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
        fetched = dict(zip([r[0] for r in body], (yield from decode_body(body, images)), strict=True))
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
    known: Collection[int],
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
    fetched = dict(zip([r[0] for r in body], (yield from decode_body(body, images)), strict=True))
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
    model: str = "",
    low_water: float | None = None,
) -> Op[tuple[FitResult, int | None]]:
    """The trim window of a stored conversation, and the stable start stored before it.

    ``low_water`` given: the cache-stable policy (:func:`convkit._engine.cut.stable_cut`)
    with the start stored for ``model`` and the counter (returned, so the caller can store
    the new one when it moved); else the maximal cut. Reads only the kept bodies and a few
    counts.

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
    # bodies in the first statement: those after the cache's newest (else the first look's, and
    # the keep rows'), so a turn's window is usually one statement
    newest = cache.newest(cid) if cache is not None else None
    first_params = {
        **params,
        "ns": ns,
        "step": step,
        "body_from": 1 if newest is None else newest + 1,
        "keep_bodies": 1 if newest is None else 0,
        "model": model,
    }
    rows = (yield Exec(sql.first, first_params, raw=True)).all()
    head = next((r for r in rows if r[0] == 0), None)
    if head is None:
        raise ConversationNotFoundError(cid, ns)
    _, n, _, image_count, _, counted, epoch, *_ = head
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
        for kind, seq, role, unit, keep, tokens, run_tokens, run_msgs, *_ in rows:
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
    remaining = check_must_keep(spec, fixed, budget, reserve)

    def cost_to(s: int) -> int:
        """P(s): tokens plus overhead of the droppable messages 1..s (s in [low, n])."""
        return got[s][4] + ovh * got[s][5]

    known = cache.get(cid, epoch) if cache is not None else {}
    # the bodies the first statement read (rows of the first look, or newer than the cache's),
    # decoded below only if the window keeps them
    raw = {r[1]: (r[1], r[2], *r[8:14]) for r in rows if r[0] in (1, 2) and r[8] is not None}
    have = set(known) | set(raw)
    stored_start, start_unit, start_rt, start_rm = head[14:18]
    cut = 1
    if last_unit > 1:
        top = cost_to(last_unit - 1)
        room = remaining
        keep_start = None
        if low_water is not None:  # the stable policy, as the engine's stable_cut decides it
            if (
                start_unit is not None
                and start_unit <= last_unit
                and (start_unit == 1 or start_rt is not None)
            ):
                before = 0 if start_unit == 1 else start_rt + ovh * start_rm
                if top - before <= remaining:
                    keep_start = (start_unit, before)
            if keep_start is None and not (start_unit is None and top <= remaining):
                room = max(remaining - (budget - math.floor(low_water * budget)), 0)
        x = threshold(top, room)  # the engine's rule: units starting after the last s with P(s) < x fit
        if keep_start is not None:
            cut, before_cut = keep_start
            remaining -= top - before_cut
        elif x > 0:
            if cost_to(low) < x:  # the cut lies within the rows read: find it here
                s_star = next(s for s in range(low + 1, last_unit) if cost_to(s) >= x)
                cut = next(s for s in range(s_star + 1, last_unit + 1) if got[s][1] == s)
                before_cut = cost_to(cut - 1)
            else:  # search the running totals, and read the kept bodies the cache lacks, at once
                cut, before_cut, fetched = yield from _search_cut(
                    cid, counter_id, n, low, last_unit, x, ovh, keep_cost, have, image_count > 0, seen
                )
                if fetched:
                    known = {**known, **fetched}
            remaining -= top - before_cut
        else:
            remaining -= top
    pins = sorted(seq for seq in keep_cost if seq < cut)
    kept = [*pins, *range(cut, n + 1)]
    ready = [raw[seq] for seq in kept if seq in raw and seq not in known]
    if ready:
        decoded = yield from decode_body(ready, image_count > 0)
        known = {**known, **dict(zip([b[0] for b in ready], decoded, strict=True))}
    msgs = yield from kept_bodies(cid, kept, cut, n, known, image_count > 0, seen)
    if cache is not None:
        cache.put(cid, epoch, dict(zip(kept, msgs, strict=True)))
    spans = kept_spans(((seq - 1, seq) for seq in pins), cut - 1, n)  # 0-based, as fit's
    result = FitResult.trimmed(
        spec,
        msgs,
        prompt_tokens=budget - remaining,
        budget=budget,
        reserve=reserve,
        margin=margin,
        input_length=n,
        kept_spans=spans,
        tools_tokens=tools_tokens,
    )
    return result, stored_start


def save_start(cid: str, model: str, counter_id: str, start_seq: int, dialect: str) -> Op[None]:
    """Remember where the conversation's stable window for ``(model, counter_id)`` starts."""
    ws = t.window_starts
    ins = insert_for(dialect, ws).values(
        conversation_id=cid, model=model, counter_id=counter_id, start_seq=start_seq
    )
    yield Exec(
        ins.on_conflict_do_update(
            index_elements=["conversation_id", "model", "counter_id"], set_={"start_seq": start_seq}
        )
    )
