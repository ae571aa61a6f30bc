"""Where to cut: the rule that decides how many of the oldest droppable units go.

Costs are prefix sums over the droppable units before the newest turn:
``cost(u)`` is what keeping nothing before unit ``u`` saves, non-decreasing
in ``u``. Keeping units ``[u, tail)`` costs ``cost(tail) - cost(u)``; the
maximal window keeps the smallest ``u`` whose cost fits the room left after
the must-keep part. Equivalently (the store's SQL searches running totals
this way), the units that fit are those starting after the last position
``s`` with ``P(s) < threshold(top, room)``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

from .._errors import ContextWindowError
from .._models import ModelSpec

__all__ = ["MUST_KEEP", "check_must_keep", "find_cut", "stable_cut", "threshold"]

#: What the must-keep part is, for the error that says it cannot fit.
MUST_KEEP = (
    "the must-keep part is the leading system and pinned messages, the newest message with its tool "
    "group (and any system messages after it), and the tool definitions"
)


def check_must_keep(spec: ModelSpec, required: int, budget: int, reserve: int) -> int:
    """The room left for droppable units; :class:`ContextWindowError` when the must-keep part does not fit."""
    if required > budget:
        raise ContextWindowError(
            required=required,
            available=budget,
            model=spec.name,
            context_window=spec.context_window,
            reserve=reserve,
            detail=MUST_KEEP,
        )
    return budget - required


def find_cut(cost: Callable[[int], int], tail: int, room: int) -> int:
    """The first unit kept: the smallest ``u`` in ``[0, tail]`` with ``cost(tail) - cost(u) <= room``."""
    return bisect_left(range(tail + 1), cost(tail) - room, key=cost)


def stable_cut(cost: Callable[[int], int], tail: int, room: int, low_room: int, previous: int | None) -> int:
    """The first unit kept by the cache-stable policy (``previous``: the previous window's).

    While the units from ``previous`` on still fit ``room``, the start stays there, so
    consecutive prompts share their prefix byte for byte (xAI bills a cached prefix at about a
    quarter of the input price). When they no longer fit, or a first window does not fit
    whole, the cut goes down to ``low_room`` (the low-water mark's room), keeping the most
    units that fit it: maximal at the moment of the cut. The start only moves forward.
    """
    if previous is not None and 0 <= previous <= tail and cost(tail) - cost(previous) <= room:
        return previous
    if previous is None and cost(tail) - cost(0) <= room:
        return 0
    return find_cut(cost, tail, max(low_room, 0))


def threshold(top: int, room: int) -> int:
    """The running cost below which a position's unit is dropped (``top``: cost before the newest turn)."""
    return top - room
