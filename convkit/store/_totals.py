"""Stored token counts and their running totals: writing them, keeping them right, back-filling.

Each message is counted once per counter (``convkit_token_counts``), when it is
appended or, for a counter the store did not have then, by :func:`backfill`;
windows then read counts, never re-tokenize. Next to each count: the running
totals ``run_tokens``/``run_msgs`` of the droppable (not ``keep``) messages up
to that seq, which the window's search for its cut reads (see
:mod:`convkit.store._windows`). A counter's newest count is its watermark.

Invariants: the counts of a counter cover seqs ``1..watermark`` without a hole
(a count is written only on top of the one before it, :func:`store_counts`);
a running total at ``s`` equals the sum over the non-keep seqs ``1..s``; a
change of ``keep`` flags rewrites the totals from the first changed seq
(:func:`recompute_runs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from .._counting import TokenCounter
from . import _schema as t
from ._conversations import lock_conversation
from ._ops_core import CHUNK, Exec, Op, body, decode_body, insert_for

__all__ = ["backfill", "recompute_runs", "store_counts"]


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

    Only on top of the count of ``first - 1``: a counter that has not counted that far yet
    writes nothing (its back-fill counts these messages when it gets there), so counts never
    have a hole. One message is one statement (its totals computed from the count before it
    in the same INSERT); a batch reads the count before it, then inserts.
    """
    c = t.token_counts
    if first > 1 and len(counts) == 1:
        add_tokens, add_msgs = (0, 0) if keeps[0] else (counts[0], 1)
        yield Exec(
            sa.insert(c).from_select(
                ["conversation_id", "counter_id", "seq", "tokens", "run_tokens", "run_msgs"],
                sa.select(
                    c.c.conversation_id,
                    c.c.counter_id,
                    sa.literal(first, sa.Integer),
                    sa.literal(counts[0], sa.Integer),
                    c.c.run_tokens + add_tokens,
                    c.c.run_msgs + add_msgs,
                ).where(c.c.conversation_id == cid, c.c.counter_id == counter_id, c.c.seq == first - 1),
            )
        )
        return
    base = yield from _runs_at(cid, counter_id, first - 1)
    if base is None:
        return
    run_tokens, run_msgs = base
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
    ins = insert_for(dialect, c)
    ins = ins.on_conflict_do_update(  # two back-fills at once write the same rows
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


def backfill(ns: str, cid: str, counter: TokenCounter, limit: int, dialect: str) -> Op[bool]:
    """Count up to ``limit`` messages past the counter's newest count; returns True when none are left.

    Under the conversation's write lock, so no truncate, pop or append that changes keep flags
    commits between reading the rows and writing their counts (stale counts would be trusted
    as the watermark).
    """
    conv = yield from lock_conversation(ns, cid, for_update=True)
    c, m = t.token_counts, t.messages
    counter_id = counter.identity
    done = (
        yield Exec(
            sa.select(sa.func.max(c.c.seq)).where(c.c.conversation_id == cid, c.c.counter_id == counter_id)
        )
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
    return bool(top >= conv.last_seq)
