"""Calibration: how xAI's prompt counts compare with a local counter's, per namespace.

Every session turn that gets a reply with usage records one sample, the ratio
of xAI's ``usage.prompt_tokens`` to the local count of the same prompt (and an
overflow 400 records the ratio its numbers give). The sessions of a namespace
widen their safety margin by what the samples taught (``ratio_max - 1``, see
:func:`convkit._session_flows._margin`).

The estimate (column ``ratio_max``) follows one rule, :func:`next_estimate`,
for every driver, sync or async, run in SQL by :func:`upsert_calibration`:

* per namespace (and model, and counter): a tenant's odd replies never cut
  another tenant's budget;
* bounded: one sample raises it by at most :data:`CALIBRATION_STEP`, so a
  single odd reply cannot cut a budget by more than that at once;
* recovering: each sample shrinks its excess over 1 by :data:`CALIBRATION_DECAY`
  (never below that sample's ratio), so a spike is forgotten over some tens
  of ordinary turns while steadily high ratios keep it up.

The step bound applies to what replies' usage teach. An overflow 400 gives
xAI's own count of the prompt it refused (``Store.calibrate``, the session's
re-fit) and is taken whole, so a genuine undercount is corrected at once;
it decays like any other sample afterwards.

A session skips a sample that would not move the estimate it read at the
turn's start (:func:`teaches`), so a settled namespace's row is not written
by every turn.
"""

from __future__ import annotations

import sqlalchemy as sa

from .._errors import ValidationError
from .._results import Calibration
from . import _schema as t
from ._ops_core import Exec, Op, insert_for, utc_now

__all__ = [
    "CALIBRATION_DECAY",
    "CALIBRATION_STEP",
    "add_calibration",
    "get_calibration",
    "next_estimate",
    "teaches",
    "upsert_calibration",
]

#: One sample raises the estimate by at most this factor.
CALIBRATION_STEP = 1.25
#: Each sample shrinks the estimate's excess over 1 by this factor (down to the sample's ratio):
#: after 20 ordinary samples about 12% of a spike's excess remains, after 40 about 1.5%.
CALIBRATION_DECAY = 0.9


def next_estimate(estimate: float | None, ratio: float, *, bounded: bool = True) -> float:
    """The estimate after one sample ``ratio`` (``estimate``: the one before, ``None`` at first).

    ``max(min(ratio, e * STEP), 1 + (e - 1) * DECAY)`` where ``e`` is the estimate before (1 at
    first): never below 1, which would narrow the counter's own margin. ``bounded=False`` (an
    overflow 400, whose numbers are xAI's own count of a prompt it refused, or an explicit
    ``Store.calibrate``) takes ``ratio`` whole: ``max(ratio, 1 + (e - 1) * DECAY)``.
    """
    before = 1.0 if estimate is None else estimate
    grown = min(ratio, before * CALIBRATION_STEP) if bounded else ratio
    return max(grown, 1.0 + (before - 1.0) * CALIBRATION_DECAY)


#: A sample that would move the estimate by less than this fraction of it is not written.
QUIET = 1e-3


def teaches(estimate: float, ratio: float) -> bool:
    """Whether a reply's sample ``ratio`` would move ``estimate`` (read at the turn's start) by
    :data:`QUIET` of it or more. A session writes only such samples: once the estimate has
    settled, turns leave the namespace's calibration row alone, so concurrent sessions do not
    queue on its lock (``samples`` then counts the samples written)."""
    return abs(next_estimate(estimate, ratio) - estimate) >= QUIET * estimate


def get_calibration(ns: str, model: str, counter_id: str) -> Op[Calibration | None]:
    """The namespace's calibration of ``counter_id`` for ``model``; ``None`` before any sample."""
    c = t.calibration
    row = (
        yield Exec(sa.select(c).where(c.c.namespace == ns, c.c.model == model, c.c.counter_id == counter_id))
    ).first()
    if row is None:
        return None
    return Calibration(
        row.model, row.counter_id, float(row.ratio_max), float(row.ratio_last), int(row.samples)
    )


def add_calibration(ns: str, model: str, counter_id: str, ratio: float, dialect: str) -> Op[Calibration]:
    """Record one ratio taken whole (an overflow 400's numbers; ``Store.calibrate``); returns the
    calibration now."""
    yield from upsert_calibration(ns, model, counter_id, ratio, dialect, bounded=False)
    got = yield from get_calibration(ns, model, counter_id)
    assert got is not None
    return got


def upsert_calibration(
    ns: str, model: str, counter_id: str, ratio: float, dialect: str, *, bounded: bool = True
) -> Op[None]:
    """Record one observed ratio in one statement (:func:`next_estimate` in SQL: no sample is lost
    to a concurrent turn)."""
    if not (isinstance(ratio, int | float) and 0 < ratio < 100):
        raise ValidationError(f"a calibration ratio must be a positive number below 100, got {ratio!r}")
    c = t.calibration
    now = utc_now()
    ins = insert_for(dialect, c).values(
        namespace=ns,
        model=model,
        counter_id=counter_id,
        ratio_max=next_estimate(None, ratio, bounded=bounded),
        ratio_last=ratio,
        samples=1,
        updated_at=now,
    )
    step = c.c.ratio_max * CALIBRATION_STEP
    grown = (
        sa.case((step > ratio, sa.literal(float(ratio))), else_=step) if bounded else sa.literal(float(ratio))
    )
    decayed = 1.0 + (c.c.ratio_max - 1.0) * CALIBRATION_DECAY
    ins = ins.on_conflict_do_update(
        index_elements=["namespace", "model", "counter_id"],
        set_={
            "ratio_max": sa.case((grown > decayed, grown), else_=decayed),
            "ratio_last": ratio,
            "samples": c.c.samples + 1,
            "updated_at": now,
        },
    )
    yield Exec(ins)
