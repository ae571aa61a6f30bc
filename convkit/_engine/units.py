"""Trim units and tool links: the one definition, for lists, histories and stored rows.

A unit is a message alone, or an assistant message with tool calls together
with every message up to its last tool result: a tool result folds every
unit from the one holding its call up to itself into one. So a call and its
results are kept or dropped together, and units stay contiguous. A unit is
pinned when it holds a pinned message or a leading system message (one
before the first non-system message).

Positions are whatever the caller numbers messages by (list indices from 0,
stored seqs from 1); the rules only need them ascending.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence

import attrs

from .._errors import InvalidConversationError
from .._messages import Message

__all__ = [
    "Units",
    "drop_leading_units",
    "leading_system",
    "link_owners",
    "must_keep_units",
    "newest_turn",
    "unit_lists",
    "unit_starts",
]


@attrs.define
class Units:
    """Unit starts (ascending positions) and pinned unit indices (ascending), built incrementally."""

    starts: list[int] = attrs.field(factory=list)
    pinned: list[int] = attrs.field(factory=list)

    def add(self, pos: int, *, owner: int | None, pin: bool) -> int:
        """Add the message at ``pos`` (after every earlier one); returns the first unit it changed.

        ``owner`` is the position of the message that made the call a tool result answers
        (``None`` for any other message).
        """
        starts, pinned = self.starts, self.pinned
        if owner is None:
            if pin:
                pinned.append(len(starts))
            starts.append(pos)
            return len(starts) - 1
        u0 = bisect_right(starts, owner) - 1
        del starts[u0 + 1 :]
        while pinned and pinned[-1] >= u0:
            pinned.pop()
            pin = True
        if pin:
            pinned.append(u0)
        return u0

    def unit_of(self, pos: int) -> int:
        """The index of the unit holding ``pos``."""
        return bisect_right(self.starts, pos) - 1

    def is_pinned(self, unit: int) -> bool:
        i = bisect_left(self.pinned, unit)
        return i < len(self.pinned) and self.pinned[i] == unit


def leading_system(messages: Sequence[Message], start: int = 0) -> int:
    """The end of the leading system run, scanning from ``start`` (itself inside that run)."""
    n = len(messages)
    while start < n and messages[start].role == "system":
        start += 1
    return start


def link_owners(
    messages: Sequence[Message],
    known: Mapping[str, int],
    base: int,
    describe: Callable[[int], str] = lambda k: f"message {k}",
) -> list[int | None]:
    """Per message, the position of the message whose call it answers (``None`` if no tool result).

    ``known`` maps call ids made before ``messages`` to their positions; ``messages[k]`` sits
    at ``base + k``. A tool result for a call no earlier message made raises
    :class:`InvalidConversationError`, naming the message with ``describe(k)``.
    """
    seen = dict(known)
    owners: list[int | None] = []
    for k, m in enumerate(messages):
        owner = None
        if m.role == "tool":
            owner = seen.get(m.tool_call_id) if m.tool_call_id is not None else None
            if owner is None:
                raise InvalidConversationError(
                    f"{describe(k)} is a tool result for call id {m.tool_call_id!r}, which no earlier "
                    "assistant message of this conversation made; add the assistant message with that "
                    "tool call first"
                )
        owners.append(owner)
        for c in m.tool_calls:
            seen[c.id] = base + k
    return owners


def unit_starts(messages: Sequence[Message], *, strict: bool = False) -> Units:
    """The units of a whole conversation (positions are list indices).

    With ``strict`` an orphaned tool result raises; otherwise it is a unit of its own (the
    integrations hand over what a framework gives them and report orphans themselves).
    """
    units = Units()
    owner_of: dict[str, int] = {}
    lead = leading_system(messages)
    for i, m in enumerate(messages):
        owner = owner_of.get(m.tool_call_id) if m.role == "tool" and m.tool_call_id is not None else None
        if strict and m.role == "tool" and owner is None:
            link_owners(messages[: i + 1], owner_of, 0)  # raises, naming message i
        units.add(i, owner=owner, pin=m.pinned or i < lead)
        for c in m.tool_calls:
            owner_of[c.id] = i
    return units


def newest_turn(messages: Sequence[Message], units: Units) -> int | None:
    """The unit of the newest non-system message (``fit`` keeps it and all after), or ``None``."""
    speaker = len(messages) - 1
    while speaker >= 0 and messages[speaker].role == "system":
        speaker -= 1
    return units.unit_of(speaker) if speaker >= 0 else None


def must_keep_units(messages: Sequence[Message], units: Units) -> list[bool]:
    """Per unit: does ``fit`` always keep it (pinned, or in the newest turn)?"""
    tail = newest_turn(messages, units)
    n = len(units.starts)
    keep = [False] * n if tail is None else [u >= tail for u in range(n)]
    for u in units.pinned:
        keep[u] = True
    return keep


def unit_lists(units: Units, n: int) -> list[list[int]]:
    """The units as lists of positions ``0..n-1``, oldest first."""
    bounds = [*units.starts, n]
    return [list(range(bounds[u], bounds[u + 1])) for u in range(len(units.starts))]


def drop_leading_units(
    messages: Sequence[Message],
    kept: Sequence[int],
    drop: Callable[[int], bool],
    pass_over: Callable[[int], bool] = lambda i: False,
) -> list[int]:
    """``kept`` less its oldest droppable units while the first kept message ``i`` of the oldest
    one left has ``drop(i)``. Must-keep units (leading system, pinned, the newest turn) stay,
    and so do units with ``pass_over(i)``, which do not end the dropping either.

    What the adapters need to open a window on a given kind of message (LangChain's
    ``start_on``, a Pydantic AI request, a LlamaIndex user message): dropping whole units keeps
    tool groups whole and only lowers the count.
    """
    units = unit_starts(messages)
    keep = must_keep_units(messages, units)
    kept_set = set(kept)
    out: list[int] = []
    dropping = True
    for u, unit in enumerate(unit_lists(units, len(messages))):
        mine = [i for i in unit if i in kept_set]
        if not mine:
            continue
        if dropping and not keep[u]:
            if drop(mine[0]):
                continue
            dropping = pass_over(mine[0])
        out.extend(mine)
    return out
