"""Stored token counts and their running totals: writing them, keeping them right, back-filling.

Each message is counted once per counter (``convkit_token_counts``), when it is
appended or, for a counter the store did not have then, by :func:`backfill`;
windows then read counts, never re-tokenize. Next to each count: the running
totals ``run_tokens``/``run_msgs`` of the droppable (not ``keep``) messages up
to that seq, which the window's search for its cut reads (see
:mod:`convkit.store._windows`); ``convkit_counter_progress`` is each counter's
watermark (every seq up to it is counted).

Invariants: the counts of a counter cover seqs ``1..watermark`` without a hole;
a running total at ``s`` equals the sum over the non-keep seqs ``1..s`` whenever
the counts below ``s`` exist (totals written before the counter reached that
far are rewritten by the back-fill that reaches them); a change of ``keep``
flags rewrites the totals from the first changed seq (:func:`recompute_runs`);
the watermark only moves from where it stood (:func:`advance_progress`), so a
concurrent back-fill and append never skip a seq.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ..counting import TokenCounter
from . import schema as t
from ._conversations import lock_conversation
from ._ops_core import CHUNK, Exec, Op, body, decode_body, insert_for

__all__ = ["advance_progress", "backfill", "recompute_runs", "store_counts"]


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


def store_counts(
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
    ins = insert_for(dialect, t.token_counts)
    ins = ins.on_conflict_do_update(
        index_elements=["conversation_id", "counter_id", "seq"],
        set_={"run_tokens": ins.excluded.run_tokens, "run_msgs": ins.excluded.run_msgs},
    )
    for i in range(0, len(rows), CHUNK):
        yield Exec(ins, rows[i : i + CHUNK])


def recompute_runs(cid: str, start: int) -> Op[None]:
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


def advance_progress(cid: str, counter_id: str, prev: int, new: int, dialect: str) -> Op[None]:
    """Move the counted watermark from ``prev`` to ``new`` when it stood exactly at ``prev``."""
    p = t.counter_progress
    res = yield Exec(
        sa.update(p)
        .where(p.c.conversation_id == cid, p.c.counter_id == counter_id, p.c.counted_seq == prev)
        .values(counted_seq=new)
    )
    if res.rowcount == 0 and prev == 0:
        ins = insert_for(dialect, p).on_conflict_do_nothing(index_elements=["conversation_id", "counter_id"])
        yield Exec(ins.values(conversation_id=cid, counter_id=counter_id, counted_seq=new))


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
            sa.select(*body(), m.c.keep)
            .where(m.c.conversation_id == cid, m.c.seq > done, m.c.seq <= conv.last_seq)
            .order_by(m.c.seq)
            .limit(limit)
        )
    ).all()
    msgs = yield from decode_body([r[:-1] for r in rows])
    counts = counter.content_tokens(msgs)
    keeps = [bool(r[-1]) for r in rows]
    yield from store_counts(cid, counter_id, done + 1, list(counts), keeps, dialect)
    top = rows[-1].seq if rows else conv.last_seq
    yield from advance_progress(cid, counter_id, done, top, dialect)
    return bool(top >= conv.last_seq)
