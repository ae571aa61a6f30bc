"""New ends of a history: fork, truncate and pop, with what a cut must rebuild.

:func:`fork` copies messages ``1..at`` (with their tool links, counts and
running totals: nothing is recounted) into a new conversation;
:func:`truncate` deletes the messages after ``keep`` and returns them;
:func:`pop` is a truncation by one.

Invariants: a cut leaves exactly what appending the kept messages would have
built: the one unit the cut may split is rebuilt from its remaining messages
(:func:`rebuild_last_unit`, which rewrites running totals where ``keep``
flags change), and a tool-call id whose newest call lies past the cut points
again at its newest call before it (:func:`restore_earlier_calls`); count
watermarks never pass the new end; summaries reaching past a truncation are
deleted, usage rows stay (they record what was spent); a truncation bumps the
conversation's ``epoch``, so no window cache or concurrent window reuses rows
of the old history.
"""

from __future__ import annotations

import json
import uuid
from itertools import pairwise

import sqlalchemy as sa

from .._engine.units import Units
from .._errors import ValidationError
from .._messages import Message
from .._results import Conversation
from . import _schema as t
from ._codec import IMAGE_MARKER
from ._conversations import conversation_of, lock_conversation
from ._image_gc import drop_unreferenced_images, images_of
from ._ops_core import Exec, Op, body, decode_body, utc_now
from ._totals import recompute_runs

__all__ = ["fork", "pop", "rebuild_last_unit", "restore_earlier_calls", "truncate"]


def fork(ns: str, cid: str, at_seq: int | None, title: str | None) -> Op[Conversation]:
    """A new conversation holding messages 1..at_seq of ``cid`` (counts copied, not recounted)."""
    conv = yield from lock_conversation(ns, cid, for_update=True)
    at = conv.last_seq if at_seq is None else at_seq
    if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at <= conv.last_seq:
        raise ValidationError(f"fork point must be a seq from 0 to {conv.last_seq}, got {at_seq!r}")
    m, tc, c = t.messages, t.tool_calls, t.token_counts
    new_id = uuid.uuid4().hex
    now = utc_now()
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
    yield from restore_earlier_calls(cid, new_id, at, (yield from calls_after(cid, at)))
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
    if at:
        # the unit holding the fork point may owe its extent (and pinned flag) to tool results after it
        yield from rebuild_last_unit(new_id, at, prefix)
    row = yield from lock_conversation(ns, new_id)
    return conversation_of(row)


def rebuild_last_unit(cid: str, last: int, prefix: int) -> Op[None]:
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
    units = Units()  # the engine's rule, over the rows from the trailing unit's start
    for r in rows:
        o = owner.get(r.tool_call_id) if r.role == "tool" else None
        units.add(r.seq, owner=o, pin=bool(r.pinned) or r.seq <= prefix)
        for call in json.loads(r.tool_calls) if r.tool_calls else ():
            owner[call["id"]] = r.seq
    by_seq = {r.seq: r for r in rows}
    keep_changed: list[int] = []
    for u, (a, b) in enumerate(pairwise([*units.starts, last + 1])):
        keep = units.is_pinned(u)
        keep_changed += [q for q in range(a, b) if bool(by_seq[q].keep) != keep]
        if any(by_seq[q].unit_seq != a or bool(by_seq[q].keep) != keep for q in range(a, b)):
            yield Exec(
                sa.update(m)
                .where(m.c.conversation_id == cid, m.c.seq >= a, m.c.seq < b)
                .values(unit_seq=a, keep=keep)
            )
    if keep_changed:
        yield from recompute_runs(cid, min(keep_changed))
    return None


def calls_after(cid: str, seq: int) -> Op[set[str]]:
    tc = t.tool_calls
    rows = (yield Exec(sa.select(tc.c.call_id).where(tc.c.conversation_id == cid, tc.c.seq > seq))).all()
    return {r.call_id for r in rows}


def restore_earlier_calls(src: str, dst: str, at: int, ids: set[str]) -> Op[None]:
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
    m, tc, c, s = t.messages, t.tool_calls, t.token_counts, t.summaries
    if keep == conv.last_seq:
        return []
    gone_rows = (
        yield Exec(sa.select(*body()).where(m.c.conversation_id == cid, m.c.seq > keep).order_by(m.c.seq))
    ).all()
    gone = yield from decode_body(gone_rows)
    cut_calls = yield from calls_after(cid, keep)
    shas = yield from images_of(cid, keep)
    for table in (c, tc, m):
        yield Exec(sa.delete(table).where(table.c.conversation_id == cid, table.c.seq > keep))
    yield from drop_unreferenced_images(shas)  # the returned messages hold their bytes
    yield from restore_earlier_calls(cid, cid, keep, cut_calls)
    yield Exec(sa.delete(s).where(s.c.conversation_id == cid, s.c.last_seq > keep))
    prefix = min(conv.prefix_len, keep)
    if keep:
        yield from rebuild_last_unit(cid, keep, prefix)
    yield Exec(
        sa.update(t.conversations)
        .where(t.conversations.c.id == cid)
        .values(last_seq=keep, prefix_len=prefix, epoch=t.conversations.c.epoch + 1, updated_at=utc_now())
    )
    return gone


def pop(ns: str, cid: str) -> Op[Message | None]:
    """Remove and return the newest message, in one transaction."""
    conv = yield from lock_conversation(ns, cid, for_update=True)
    if conv.last_seq == 0:
        return None
    gone = yield from truncate(ns, cid, conv.last_seq - 1)
    return gone[-1]
