"""Kept messages as half-open index ranges, adjacent ranges merged (the shape of ``FitResult.kept_spans``)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["kept_spans"]


def kept_spans(pinned: Iterable[tuple[int, int]], start: int, stop: int) -> tuple[tuple[int, int], ...]:
    """The ranges of ``pinned`` (ascending, before ``start``), then ``[start, stop)``, merged if touching."""
    spans: list[tuple[int, int]] = []
    for a, b in (*pinned, (start, stop)):
        if spans and spans[-1][1] == a:
            spans[-1] = (spans[-1][0], b)
        else:
            spans.append((a, b))
    return tuple(spans)
