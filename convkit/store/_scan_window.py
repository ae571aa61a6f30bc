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

import sqlalchemy as sa

from .._engine.settings import WindowSettings
from .._errors import DatabaseError, ValidationError
from .._fitting import FitResult
from .._scan import FIRST_CHUNK, part_start, plan_part
from . import _schema as t
from ._conversations import lock_conversation
from ._msgcache import MessageCache
from ._ops_core import Exec, Op, body, decode_body

__all__ = ["FIRST_CHUNK", "window_scan"]


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
        start = part_start(
            n, lo, conv.prefix_len, lambda s: int(rows[s].unit_seq), lambda s: str(rows[s].role), previous
        )
        if start is None:
            continue  # the newest unit or turn, or the stable policy's previous start, is further back
        seqs = [s for s in sorted(rows) if s >= start or rows[s].keep]
        missing = [rows[s] for s in seqs if s not in known]
        if missing:
            decoded = yield from decode_body([tuple(r)[:-2] for r in missing], images=True)
            known.update(zip([r.seq for r in missing], decoded, strict=True))
        part = plan_part(settings, n, start, seqs, [known[s] for s in seqs], previous)
        if part is not None:
            if cache is not None:
                cache.put(cid, epoch, {s: known[s] for s in seqs})
            return part.result, stored
