"""Summarize-window reads: with a stored summary, read only what the window can still use.

A conversation with a stored summary covering seqs ``first..last`` is planned
over a part of it: the keep rows (leading system, pinned units) up to
``last``, one stand-in message for the folded droppable rows, and every row
after ``last``. The stand-in costs exactly what the rows it stands for cost
(their running totals, see :mod:`convkit.store._totals`), so the engine's
planner (:func:`convkit._summarize.plan`, given each part message's input
positions) decides as it would over the whole conversation, and the window
costs what it keeps: reads are of the window, not of the conversation.

:func:`summary_part` returns ``None`` when the part cannot stand for the
whole, and the caller reads every message instead: no stored summary; a
text-only model over a conversation holding images (dropping images changes
costs the running totals do not know); or a summary that no longer lines up
with the conversation (its first seq is not the first droppable row, its last
row is kept or does not end a unit, or nothing newer than it speaks). It
raises :class:`~convkit.store._windows.NeedsBackfill` when its counter has
not counted every message yet.

Invariants: it runs in one read transaction (a snapshot), so the counts, the
summary and the bodies are of one state of the conversation; the planner's
result over the part equals its result over the whole conversation whenever
the whole does not fit (the caller checks a result without a summary, which
means it does, against the whole).
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from typing import Any

import attrs
import sqlalchemy as sa

from .._counting import TokenCounter
from .._errors import ConversationNotFoundError, DatabaseError
from .._history import History
from .._messages import Message
from .._models import ModelSpec
from .._results import StoredSummary
from .._summarize import Summary
from . import _schema as t
from ._msgcache import MessageCache
from ._ops_core import Exec, Op
from ._windows import NeedsBackfill, kept_bodies

__all__ = ["Part", "summary_part"]

#: The stand-in for the folded rows: never sent (the summary replaces it), counted as they are.
_FOLDED = Message.user("[messages folded into the stored summary]")


@attrs.frozen
class Part:
    """A part of a conversation standing for all of it (see the module docstring)."""

    history: History
    #: per message of ``history``, the 0-based half-open range of input positions it stands for
    origin: tuple[tuple[int, int], ...]
    #: the conversation's length
    length: int
    #: the stored summary, in 0-based input positions
    previous: Summary
    stored: StoredSummary


@functools.cache
def _head_sql() -> sa.Select[Any]:
    """The conversation, its counter's watermark and its latest summary: one row, or none."""
    cv, s, c = t.conversations, t.summaries, t.token_counts
    s2 = s.alias("s2")
    latest = sa.select(sa.func.max(s2.c.id)).where(s2.c.conversation_id == cv.c.id).scalar_subquery()
    counted = (  # counts have no holes: the count of the newest message, if any
        sa.select(c.c.seq)
        .where(
            c.c.conversation_id == cv.c.id,
            c.c.counter_id == sa.bindparam("counter_id"),
            c.c.seq == cv.c.last_seq,
        )
        .scalar_subquery()
    )
    return (
        sa.select(
            cv.c.last_seq,
            cv.c.epoch,
            cv.c.image_count,
            counted,
            s.c.first_seq,
            s.c.last_seq,
            s.c.content,
            s.c.model,
            s.c.counter_id,
            s.c.tokens,
        )
        .select_from(cv.outerjoin(s, s.c.id == latest))
        .where(cv.c.id == sa.bindparam("cid"), cv.c.namespace == sa.bindparam("ns"))
    )


@functools.cache
def _rows_sql() -> sa.CompoundSelect[Any]:
    """Rows ``(kind, seq, role, unit_seq, keep, tokens, run_tokens, run_msgs)``.

    kind 0: a row of the part (keep rows ``seq <= last``, every row ``last < seq <= n``) with its
    count; kind 1: the running totals at ``first - 1`` and ``last``; kind 2: the first row not kept.
    """
    m, c = t.messages, t.token_counts
    cid, counter_id = sa.bindparam("cid", type_=sa.String), sa.bindparam("counter_id", type_=sa.String)
    last, n = sa.bindparam("last", type_=sa.Integer), sa.bindparam("n", type_=sa.Integer)
    none_s, none_i, none_b = sa.null().cast(sa.String), sa.null().cast(sa.Integer), sa.null().cast(sa.Boolean)
    none_l = sa.null().cast(sa.BigInteger)

    def kind(k: int) -> Any:
        return sa.literal_column(str(k), sa.Integer)

    tokens = (
        sa.select(c.c.tokens)
        .where(c.c.conversation_id == m.c.conversation_id, c.c.counter_id == counter_id, c.c.seq == m.c.seq)
        .scalar_subquery()
    )

    def rows(*where: Any) -> sa.Select[Any]:
        return sa.select(kind(0), m.c.seq, m.c.role, m.c.unit_seq, m.c.keep, tokens, none_l, none_i).where(
            m.c.conversation_id == cid, *where
        )

    totals = sa.select(kind(1), c.c.seq, none_s, none_i, none_b, none_i, c.c.run_tokens, c.c.run_msgs).where(
        c.c.conversation_id == cid,
        c.c.counter_id == counter_id,
        c.c.seq.in_([sa.bindparam("before", type_=sa.Integer), last]),
    )
    first_free = (
        sa.select(m.c.seq)
        .where(m.c.conversation_id == cid, m.c.keep.is_(False))
        .order_by(m.c.seq)
        .limit(1)
        .subquery()
    )
    free = sa.select(kind(2), first_free.c.seq, none_s, none_i, none_b, none_i, none_l, none_i)
    return sa.union_all(
        rows(m.c.keep.is_(True), m.c.seq <= last), rows(m.c.seq > last, m.c.seq <= n), totals, free
    )


def summary_part(
    ns: str,
    cid: str,
    spec: ModelSpec,
    counter: TokenCounter,
    cache: MessageCache | None = None,
) -> Op[Part | None]:
    """The part of the conversation a summarize window needs, or ``None`` (read it all)."""
    head = (yield Exec(_head_sql(), {"cid": cid, "ns": ns, "counter_id": counter.identity})).first()
    if head is None:
        raise ConversationNotFoundError(cid, ns)
    n, epoch, image_count, counted, first, last, text, model, counter_id, tokens = head
    if first is None or (image_count and not spec.supports_images) or not first <= last < n:
        return None
    if (counted or 0) < n:
        raise NeedsBackfill
    params = {"cid": cid, "counter_id": counter.identity, "last": last, "n": n, "before": first - 1}
    got = (yield Exec(_rows_sql(), params)).all()
    shape: dict[int, tuple[str, int, bool, int]] = {}
    runs: dict[int, int] = {0: 0}
    ovh = spec.message_overhead
    first_free = None
    for kind, seq, role, unit, keep, count, run_tokens, run_msgs in got:
        if kind == 0:
            if count is None:
                raise DatabaseError(
                    f"conversation {cid}: the token count of seq {seq} for counter {counter.identity!r} "
                    "is missing (was the database edited outside convkit?)"
                )
            shape[seq] = (role, unit, bool(keep), count)
        elif kind == 1:
            runs[seq] = run_tokens + ovh * run_msgs
        else:
            first_free = seq
    after = range(last + 1, n + 1)
    if any(seq not in shape for seq in after) or first - 1 not in runs or last not in runs:
        raise DatabaseError(
            f"conversation {cid}: stored messages or token counts of counter {counter.identity!r} are "
            f"missing after seq {last} (was the database edited outside convkit?)"
        )
    lines_up = (
        first_free == first
        and last not in shape  # the summary's last row is not a keep row
        and shape[last + 1][1] == last + 1  # ... and ends a unit
        and any(shape[seq][0] != "system" for seq in after)  # the newest turn is after it
    )
    if not lines_up:
        return None
    seqs = sorted(shape)
    known = cache.get(cid, epoch) if cache is not None else {}
    bodies = yield from kept_bodies(cid, seqs, last + 1, n, known, image_count > 0, (n, epoch))
    if cache is not None:
        cache.put(cid, epoch, dict(zip(seqs, bodies, strict=True)))
    messages = list(bodies)
    counts = [shape[seq][3] for seq in seqs]
    origin = [(seq - 1, seq) for seq in seqs]
    # the stand-in goes where the folded rows start: after the keep rows before ``first``
    at = bisect_left(seqs, first)
    folded = runs[last] - runs[first - 1]  # what the folded droppable rows cost, overheads included
    messages.insert(at, _FOLDED)
    counts.insert(at, folded - ovh)
    origin.insert(at, (first - 1, last))
    stored = StoredSummary(first, last, text, model, counter_id, tokens)
    return Part(
        History(messages, counter=counter, counts=counts),
        tuple(origin),
        n,
        Summary(text, first - 1, last - 1),
        stored,
    )
