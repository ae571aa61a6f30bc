"""Newest-first windows: plan over the newest part of a conversation, not all of it.

A window that must count messages as they will be sent (a text-only model
over images, or a JSONL file nothing has counted) need not count the whole
conversation. It reads the keep messages (leading system run, pinned units)
and the newest ones, in chunks that grow, and plans over that part with one
stand-in for everything older, priced above any budget so the engine always
drops it. Once the plan drops a real unit of the part, older units cannot
matter (a cut never keeps a unit older than one it dropped), so the part's
window is the conversation's.

Positions are 1-based (stored seqs, or message numbers of a file); the part is
``start..n`` plus the keep positions before it. The store's scan window
(:mod:`convkit.store._scan_window`) and ``convkit fit`` over a file
(:mod:`convkit._file_window`) read their parts differently and share these
two rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import attrs

from ._counting import apply_image_policy
from ._engine.settings import WindowSettings
from ._engine.spans import input_spans
from ._fitting import FitResult, plan_fit
from ._history import History
from ._messages import Message

__all__ = ["FIRST_CHUNK", "Part", "part_start", "plan_part"]

#: Messages read in the first chunk (each later chunk doubles the part).
FIRST_CHUNK = 64

#: Stands for every message older than the part: never sent (it costs more than any budget).
_OLDER = Message.user("[older messages, not read]")


def part_start(
    n: int,
    lo: int,
    prefix_len: int,
    unit_start: Callable[[int], int],
    role: Callable[[int], str],
    previous: int | None = None,
) -> int | None:
    """Where a part holding positions ``lo..n`` starts, or ``None`` when it must reach further back.

    The part starts at a unit start after the leading system run (``prefix_len`` messages: a
    stand-in inside the run would end it early, making leading system messages droppable),
    holds the newest turn (not only system messages) and reaches back to ``previous`` (the
    stable policy's start) when given.
    """
    if lo <= 1:
        return 1
    found = next((s for s in range(max(lo, prefix_len + 1), n + 1) if unit_start(s) == s), None)
    if found is None or all(role(s) == "system" for s in range(found, n + 1)):
        return None
    if previous is not None and found > previous:
        return None
    return found


@attrs.frozen
class Part:
    """A plan over a part: the conversation's window, and what the part's messages cost."""

    result: FitResult  # kept spans in 0-based conversation positions, input_length n
    counts: Mapping[int, int]  # content tokens as sent, by 1-based position, of the part's messages


def plan_part(
    settings: WindowSettings,
    n: int,
    start: int,
    positions: Sequence[int],
    messages: Sequence[Message],
    previous: int | None = None,
) -> Part | None:
    """The window over ``messages`` (at ascending 1-based ``positions``: the keep positions before
    ``start``, then ``start..n``), or ``None`` when older messages could still change it."""
    sent = apply_image_policy(list(messages), settings.spec, settings.images)
    counts = list(settings.counter.content_tokens(sent))
    by_position = dict(zip(positions, counts, strict=True))
    at_input = [s - 1 for s in positions]
    if start > 1:  # the stand-in for everything older, after the keep messages before the part
        at = sum(1 for s in positions if s < start)
        sent.insert(at, _OLDER)
        counts.insert(at, settings.budget + 1)
        at_input.insert(at, -1)
    at_previous = at_input.index(previous - 1) if previous is not None else None
    history = History(sent, counter=settings.counter, counts=counts)
    trimmed, _ = plan_fit(history, settings, start=at_previous)
    dropped_real = any(at_input[i] >= start - 1 for i in trimmed.dropped)
    # a stable window that kept its previous start does not depend on older messages either
    kept_previous = at_previous is not None and trimmed.start == at_previous
    if not (start == 1 or dropped_real or kept_previous):
        return None
    result = attrs.evolve(trimmed, kept_spans=input_spans(trimmed.kept_spans, at_input), input_length=n)
    return Part(result, by_position)
