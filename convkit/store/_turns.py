"""Turns and what is learned from them: usage rows, calibration, summaries.

:func:`record_turn` appends a model's reply with its usage row;
:func:`usage_totals` sums those rows; :func:`begin_turn` reads and
:func:`end_turn` records the namespace's calibration (:mod:`._calibration`);
:func:`save_summary`, :func:`latest_summary` and :func:`summaries` keep the
summaries a ``strategy="summarize"`` window folded.

Invariants: a reply and its usage row are written in one transaction (both or
neither); a usage row always names its model; calibration follows
:func:`._calibration.next_estimate` (an upsert, so concurrent turns lose no
sample); a summary covers stored seqs only and is never changed
once written (the next one is a new row; originals are never touched).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from .._errors import ConversationNotFoundError, UnknownModelError, ValidationError
from .._models import get_model
from .._results import Calibration, StoredSummary, UsageTotals
from . import _schema as t
from ._appends import Prepared, append
from ._calibration import upsert_calibration
from ._conversations import lock_conversation
from ._ops_core import Exec, Op, decode_body, utc_now

__all__ = [
    "USAGE_FIELDS",
    "check_usage",
    "latest_summary",
    "record_turn",
    "save_summary",
    "summaries",
    "usage_totals",
]


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


#: The usage columns that hold token counts (``convkit_usage``: 32-bit integers on every database).
_TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "image_tokens", "cached_tokens", "reasoning_tokens")
_MAX_INT = 2**31 - 1
_NAME_LENGTH = 128  # convkit_usage.model and .counter_id are String(128)


def check_usage(usage_row: object) -> dict[str, Any]:
    """The usage row as the columns take it; a :class:`ValidationError` naming the key if it is bad."""
    if not isinstance(usage_row, Mapping):
        raise ValidationError(
            f"usage must be a mapping with the keys {', '.join(USAGE_FIELDS)}, got {type(usage_row).__name__}"
        )
    row = {k: usage_row.get(k) for k in USAGE_FIELDS}
    for key in ("model", "counter_id"):
        value = row[key]
        if value is None and key == "counter_id":
            continue
        if not isinstance(value, str) or not value or len(value) > _NAME_LENGTH or "\x00" in value:
            raise ValidationError(
                f"usage {key} must be a non-empty string of at most {_NAME_LENGTH} characters "
                f"without NUL{' (the model name)' if key == 'model' else ''}, got {value!r}"
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(f"usage {key} {value!r} holds a lone surrogate; pass valid text") from None
    for key in ("local_prompt_tokens", *_TOKEN_FIELDS):
        value = row[key]
        if value is None:
            row[key] = None if key == "local_prompt_tokens" else 0
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_INT:
            raise ValidationError(
                f"usage {key} must be a whole number of tokens from 0 to {_MAX_INT} (or None), got {value!r}"
            )
        row[key] = int(value)
    cost = row["cost_usd"]
    if cost is None:
        row["cost_usd"] = 0.0
    elif not isinstance(cost, int | float) or isinstance(cost, bool) or not math.isfinite(cost) or cost < 0:
        raise ValidationError(
            f"usage cost_usd must be a finite number of dollars >= 0 (or None), got {cost!r}"
        )
    else:
        row["cost_usd"] = float(cost)
    return row


def record_turn(
    ns: str, cid: str, batch: Prepared | None, usage_row: Mapping[str, Any], dialect: str
) -> Op[int | None]:
    """Append the reply (if any) and its usage row in one transaction; returns the reply's seq."""
    row = check_usage(usage_row)  # before anything is written
    seq: int | None = None
    if batch is not None and batch.messages:
        seqs = yield from append(ns, cid, batch, dialect)
        seq = seqs[-1]
    else:
        yield from lock_conversation(ns, cid, for_update=True)
    yield Exec(sa.insert(t.usage).values(conversation_id=cid, seq=seq, created_at=utc_now(), **row))
    return seq


def begin_turn(
    ns: str, cid: str, batch: Prepared, dialect: str, calibration: tuple[str, str] | None
) -> Op[tuple[int | None, Calibration | None]]:
    """A session turn's first transaction: the user's message, and what calibration knows.

    The message is appended unless it already is the conversation's last (the same message
    sent again after a failed turn waits for its reply: a retry, not a new turn). One
    statement locks the conversation's row and reads its last message and the calibration of
    ``(model, counter_id)`` (for the window's margin). Returns the new message's seq (``None``
    for a retry) and the calibration.
    """
    model, counter_id = calibration if calibration is not None else ("", "")
    row = (
        yield Exec(
            _turn_head(calibration is not None), {"cid": cid, "ns": ns, "model": model, "cnt": counter_id}
        )
    ).first()
    if row is None:
        raise ConversationNotFoundError(cid, ns)
    stored = {k: row._mapping[f"last_{k}"] for k in _LAST}
    wanted = batch.encoded[0]
    same = stored["role"] is not None and all(
        (bool(stored[k]) if k == "pinned" else stored[k]) == wanted[k] for k in _LAST
    )
    if not same and stored["role"] == wanted["role"]:  # equal messages may encode apart (key order)
        (last,) = yield from decode_body([(row.last_seq, *(stored[k] for k in _LAST))])
        same = last == batch.messages[0]
    seq: int | None = None
    if not same:
        (seq,) = yield from append(ns, cid, batch, dialect, locked=row)
    calib = None
    if calibration is not None and row.cal_samples is not None:
        calib = Calibration(model, counter_id, float(row.cal_max), float(row.cal_last), int(row.cal_samples))
    return seq, calib


#: The message columns a retry compares, in BODY_COLUMNS order after ``seq``.
_LAST = ("role", "content", "tool_calls", "tool_call_id", "name", "pinned", "metadata")


@functools.cache
def _turn_head(calibrated: bool) -> sa.Select[Any]:
    """The conversation's row (locked on PostgreSQL), its last message and, when ``calibrated``,
    the calibration of ``(:model, :cnt)``: one row, or none outside the namespace."""
    c, m, k = t.conversations, t.messages.alias("last_message"), t.calibration
    cols: list[Any] = [*c.c, *(m.c[name].label(f"last_{name}") for name in _LAST)]
    joined = c.outerjoin(m, sa.and_(m.c.conversation_id == c.c.id, m.c.seq == c.c.last_seq))
    if calibrated:
        cols += [
            k.c.ratio_max.label("cal_max"),
            k.c.ratio_last.label("cal_last"),
            k.c.samples.label("cal_samples"),
        ]
        joined = joined.outerjoin(
            k,
            sa.and_(
                k.c.namespace == sa.bindparam("ns"),
                k.c.model == sa.bindparam("model"),
                k.c.counter_id == sa.bindparam("cnt"),
            ),
        )
    else:
        cols += [sa.null().label("cal_max"), sa.null().label("cal_last"), sa.null().label("cal_samples")]
    return (
        sa.select(*cols)
        .select_from(joined)
        .where(c.c.id == sa.bindparam("cid"), c.c.namespace == sa.bindparam("ns"))
        .with_for_update(of=c)
    )


def end_turn(
    ns: str,
    cid: str,
    batch: Prepared | None,
    usage_row: Mapping[str, Any],
    dialect: str,
    calibration: tuple[str, str, float] | None,
) -> Op[int | None]:
    """A session turn's last transaction: the reply with its usage row, and the observed ratio."""
    seq = yield from record_turn(ns, cid, batch, usage_row, dialect)
    if calibration is not None:
        yield from upsert_calibration(ns, *calibration, dialect, bounded=True)
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
    cached = (
        yield Exec(
            sa.select(u.c.model, u.c.prompt_tokens, u.c.cached_tokens, u.c.image_tokens).where(
                u.c.conversation_id == cid, u.c.cached_tokens > 0
            )
        )
    ).all()
    saved = 0.0
    for model, prompt, hits, image in cached:  # each turn at its own model's prices and tier
        try:
            spec = get_model(model)
        except UnknownModelError:
            continue
        saved += spec.cache_savings(int(prompt), int(hits), image_tokens=int(image or 0))
    return UsageTotals(
        int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), int(row[5]), float(row[6]), saved
    )


# -- summaries ---------------------------------------------------------------------------------


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
            created_at=utc_now(),
        )
    )
    return None


def summaries(ns: str, cid: str) -> Op[list[StoredSummary]]:
    yield from lock_conversation(ns, cid)
    s = t.summaries
    rows = (yield Exec(sa.select(s).where(s.c.conversation_id == cid).order_by(s.c.id))).all()
    return [StoredSummary(r.first_seq, r.last_seq, r.content, r.model, r.counter_id, r.tokens) for r in rows]
