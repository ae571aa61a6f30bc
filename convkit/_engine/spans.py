"""Kept messages as half-open index ranges, adjacent ranges merged (the shape of ``FitResult.kept_spans``).

:func:`input_spans` maps the spans of a window planned over a part of the input (the store's
windows that read only what they keep) back to the input's positions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["input_spans", "kept_spans"]


def kept_spans(pinned: Iterable[tuple[int, int]], start: int, stop: int) -> tuple[tuple[int, int], ...]:
    """The ranges of ``pinned`` (ascending, before ``start``), then ``[start, stop)``, merged if touching."""
    spans: list[tuple[int, int]] = []
    for a, b in (*pinned, (start, stop)):
        if spans and spans[-1][1] == a:
            spans[-1] = (spans[-1][0], b)
        else:
            spans.append((a, b))
    return tuple(spans)


def input_spans(spans: Iterable[tuple[int, int]], position: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Spans over a part of the input as spans over the input (``position[i]``: where part index
    ``i`` stands in the input; positions ascending), adjacent ones merged."""
    out: list[tuple[int, int]] = []
    for a, b in spans:
        for i in range(a, b):
            p = position[i]
            if out and out[-1][1] == p:
                out[-1] = (out[-1][0], p + 1)
            else:
                out.append((p, p + 1))
    return tuple(out)
