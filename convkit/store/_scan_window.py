"""Scanned windows: a text-only model over a conversation holding images, read newest first.

Dropping images (``images="drop"``) changes what messages cost, and the
stored counts and running totals are of the messages as stored, so the
window cannot search them (:mod:`convkit.store._windows`). Instead it reads
the keep rows (leading system, pinned units) and the newest rows, in chunks
that double, applies the image policy and counts them with the window's
counter, and lets the engine plan over that part with one stand-in for
everything older, priced above any budget (so the engine always drops it).
Once the plan drops a real unit of the part, older units cannot matter
(a cut never keeps a unit older than one it dropped), so the part's window
is the conversation's: reads and counting are of the window, not of the
conversation.

Invariants: one read transaction (a snapshot), so every chunk is of one state
of the conversation; the part starts at a unit start and holds the newest
turn; the result equals :func:`convkit.fit` over every stored message with
the same settings, with kept spans in the conversation's positions.
"""

from __future__ import annotations

from typing import Any

import attrs
import sqlalchemy as sa

from .._counting import apply_image_policy
from .._engine.settings import WindowSettings
from .._engine.spans import input_spans
from .._errors import DatabaseError, ValidationError
from .._fitting import FitResult, plan_fit
from .._history import History
from .._messages import Message
from . import _schema as t
from ._conversations import lock_conversation
from ._msgcache import MessageCache
from ._ops_core import Exec, Op, body, decode_body

__all__ = ["FIRST_CHUNK", "window_scan"]

#: Rows read in the first chunk (each later chunk doubles the part).
FIRST_CHUNK = 64

#: Stands for every row older than the part: never sent (it costs more than any budget).
_OLDER = Message.user("[older messages, not read]")


def window_scan(
    ns: str, cid: str, settings: WindowSettings, cache: MessageCache | None = None
) -> Op[tuple[FitResult, int | None]]:
    """The trim window of ``settings`` over the stored conversation, read newest first, and
    (``policy="stable"``) the start stored before it (the part then reaches back to it)."""
    conv = yield from lock_conversation(ns, cid)
    n, epoch = conv.last_seq, conv.epoch
    if n == 0:
        raise ValidationError("nothing to fit: the conversation has no messages")
    stored = None
    if settings.policy == "stable":
        ws = t.window_starts
        stored = (
            yield Exec(
                sa.select(ws.c.start_seq).where(
                    ws.c.conversation_id == cid,
                    ws.c.model == settings.spec.name,
                    ws.c.counter_id == settings.counter.identity,
                )
            )
        ).scalar_one_or_none()
    previous = stored if stored is not None and 1 <= stored <= n else None
    m = t.messages
    cols = [*body(), m.c.unit_seq, m.c.keep]
    keep_rows = (yield Exec(sa.select(*cols).where(m.c.conversation_id == cid, m.c.keep.is_(True)))).all()
    rows: dict[int, Any] = {r.seq: r for r in keep_rows}
    known = dict(cache.get(cid, epoch)) if cache is not None else {}
    lo, chunk = n + 1, FIRST_CHUNK
    while True:
        a = max(1, lo - chunk)
        got = (
            yield Exec(sa.select(*cols).where(m.c.conversation_id == cid, m.c.seq >= a, m.c.seq < lo))
        ).all()
        if len(got) != lo - a:
            raise DatabaseError(
                f"conversation {cid}: stored messages are missing between seq {a} and {lo - 1} "
                "(was the database edited outside convkit?)"
            )
        rows.update((r.seq, r) for r in got)
        lo, chunk = a, chunk * 2
        # the part starts at a unit start after the leading system run (a stand-in inside the
        # run would end it early, making leading system messages droppable)
        first = max(lo, conv.prefix_len + 1)
        found = next((s for s in range(first, n + 1) if rows[s].unit_seq == s), None) if lo > 1 else 1
        if found is None or (lo > 1 and all(rows[s].role == "system" for s in range(found, n + 1))):
            continue  # the newest unit, or the newest turn, starts further back
        if previous is not None and found > previous:
            continue  # the stable policy's previous start must be in the part
        start: int = found
        seqs = [s for s in sorted(rows) if s >= start or rows[s].keep]
        missing = [rows[s] for s in seqs if s not in known]
        if missing:
            decoded = yield from decode_body([tuple(r)[:-2] for r in missing], images=True)
            known.update(zip([r.seq for r in missing], decoded, strict=True))
        messages = apply_image_policy([known[s] for s in seqs], settings.spec, settings.images)
        counts = list(settings.counter.content_tokens(messages))
        positions = [s - 1 for s in seqs]
        if start > 1:  # the stand-in for everything older, after the keep rows before the part
            at = sum(1 for s in seqs if s < start)
            messages.insert(at, _OLDER)
            counts.insert(at, settings.budget + 1)
            positions.insert(at, -1)
        at_previous = positions.index(previous - 1) if previous is not None else None
        history = History(messages, counter=settings.counter, counts=counts)
        trimmed, _ = plan_fit(history, settings, start=at_previous)
        dropped_real = any(positions[i] >= start - 1 for i in trimmed.dropped)
        # a stable window that kept its previous start does not depend on older rows either
        kept_previous = at_previous is not None and trimmed.start == at_previous
        if start == 1 or dropped_real or kept_previous:
            if cache is not None:
                cache.put(cid, epoch, {s: known[s] for s in seqs})
            result = attrs.evolve(
                trimmed, kept_spans=input_spans(trimmed.kept_spans, positions), input_length=n
            )
            return result, stored
