"""The summarize strategy: fold the oldest droppable history into one summary.

Pure and two-phase, so sync and async callers share it: :func:`plan` either
finishes (nothing needs folding, or the previous summary still suffices) or
returns a :class:`FoldRequest` naming the messages to fold; the caller runs
a :class:`Summarizer` (or :class:`AsyncSummarizer`) on it and hands the text
to :func:`complete`.

Rules (DESIGN section 3, "Summaries"):

* the summary replaces a contiguous run of the oldest droppable units and
  sits right after the leading system messages, as one system message;
  pinned messages inside that run stay (after it, in their order);
* a previous summary is reused as long as the window fits with it; folding
  happens only when something new overflows, and then it goes down to a
  low-water mark (``low_water`` of the budget) so that one summarizer call
  serves many turns; the new summary is built from the previous one plus the
  newly folded messages only;
* the result fits the budget, or :class:`~convkit._errors.ContextWindowError`
  says that the summary itself would not fit; a summarizer failure or an
  empty summary is a :class:`~convkit._errors.SummarizerError`, never a
  placeholder text.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs

from ._counting import EstimateCounter, TokenCounter
from ._engine.spans import input_spans, kept_spans
from ._errors import ContextWindowError, SummarizerError, ValidationError
from ._fitting import FitResult, Frame
from ._history import History
from ._messages import Message, TextPart
from ._models import ModelSpec

__all__ = [
    "AsyncSummarizer",
    "ExtractiveSummarizer",
    "FoldRequest",
    "Summarizer",
    "Summary",
    "complete",
    "plan",
    "summary_message",
]

SUMMARY_HEADER = "Summary of the earlier conversation (messages {first}-{last}):\n"


@attrs.frozen
class Summary:
    """A summary of input messages ``first``..``last`` (0-based, inclusive)."""

    text: str
    first: int
    last: int

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise SummarizerError("a summary must hold text; an empty summary is not a summary")
        if not (0 <= self.first <= self.last):
            raise ValidationError(
                f"a summary covers messages first..last with 0 <= first <= last, got {self}"
            )


def summary_message(summary: Summary) -> Message:
    """The system message that carries a summary in a prompt."""
    header = SUMMARY_HEADER.format(first=summary.first + 1, last=summary.last + 1)
    return Message(
        "system",
        (TextPart(header + summary.text),),
        metadata={"convkit_summary": {"first": summary.first, "last": summary.last}},
    )


@runtime_checkable
class Summarizer(Protocol):
    """Turns messages (and the previous summary) into a summary of at most ``max_tokens``."""

    def summarize(self, messages: Sequence[Message], *, previous: str | None, max_tokens: int) -> str: ...


@runtime_checkable
class AsyncSummarizer(Protocol):
    """The asyncio form of :class:`Summarizer`."""

    async def summarize(
        self, messages: Sequence[Message], *, previous: str | None, max_tokens: int
    ) -> str: ...


@attrs.frozen
class FoldRequest:
    """What to summarize: ``messages`` (after ``previous``), into at most ``max_tokens``."""

    messages: tuple[Message, ...]
    previous: str | None
    max_tokens: int
    first: int
    last: int
    #: index into the droppable units of the first unit kept after the summary
    k: int
    context: _Context = attrs.field(repr=False)


@attrs.frozen
class _Context:
    h: History
    spec: ModelSpec
    counter: TokenCounter
    budget: int
    reserve: int
    margin: float
    frame: Frame
    droppable: tuple[int, ...]  # unit indices of droppable units before the tail
    #: per History index, the half-open range of input positions it stands for (None: itself)
    origin: Sequence[tuple[int, int]] | None = None
    #: the input's length (None: the History's)
    length: int | None = None

    def start(self, i: int) -> int:
        """The first input position History index ``i`` stands for."""
        return i if self.origin is None else self.origin[i][0]

    def end(self, i: int) -> int:
        """The last input position History index ``i`` stands for."""
        return i if self.origin is None else self.origin[i][1] - 1


def _unit_cost(ctx: _Context, u: int) -> int:
    h = ctx.h
    return (h._cum_tok[u + 1] - h._cum_tok[u]) + ctx.frame.overhead * (h._cum_msg[u + 1] - h._cum_msg[u])


def _suffix_costs(ctx: _Context) -> list[int]:
    """costs[k] = cost of droppable units droppable[k:] (what stays after a summary of the first k)."""
    out = [0] * (len(ctx.droppable) + 1)
    for k in range(len(ctx.droppable) - 1, -1, -1):
        out[k] = out[k + 1] + _unit_cost(ctx, ctx.droppable[k])
    return out


def _summary_cost(ctx: _Context, summary: Summary) -> int:
    return ctx.counter.content_tokens([summary_message(summary)])[0] + ctx.frame.overhead


def _assemble(ctx: _Context, summary: Summary, k: int, new: bool) -> FitResult:
    h = ctx.h
    n = len(h)
    msgs = h._messages
    cut_unit = ctx.droppable[k] if k < len(ctx.droppable) else ctx.frame.tail
    cut = h._unit_start[cut_unit]
    prefix = h._prefix_len
    pins = [h.unit_bounds(u) for u in h._pinned_units[: bisect_left(h._pinned_units, cut_unit)]]
    spans = kept_spans([(0, prefix), *(p for p in pins if p[1] > prefix)] if prefix else pins, cut, n)
    out: list[Message] = [*msgs[:prefix], summary_message(summary)]
    for a, b in spans:
        out.extend(msgs[max(a, prefix) : b])
    if ctx.origin is not None:  # spans in input positions (kept indices each stand for one)
        spans = input_spans(spans, [ctx.start(i) for i in range(n)])
    tokens = ctx.counter.count_messages(out, model=ctx.spec) + ctx.frame.tools_tokens
    if tokens > ctx.budget:
        raise ContextWindowError(
            required=tokens,
            available=ctx.budget,
            model=ctx.spec.name,
            context_window=ctx.spec.context_window,
            reserve=ctx.reserve,
            detail=f"with the summary of messages {summary.first + 1}-{summary.last + 1} "
            f"({_summary_cost(ctx, summary)} tokens) the prompt still does not fit: "
            "the summary itself is too long",
        )
    return FitResult(
        messages=tuple(out),
        prompt_tokens=tokens,
        budget=ctx.budget,
        model=ctx.spec.name,
        context_window=ctx.spec.context_window,
        reserve=ctx.reserve,
        margin=ctx.margin,
        strategy="summarize",
        input_length=n if ctx.length is None else ctx.length,
        kept_spans=spans,
        tools_tokens=ctx.frame.tools_tokens,
        summary=summary,
        summary_is_new=new,
        spec=ctx.spec,
    )


def plan(
    h: History,
    spec: ModelSpec,
    counter: TokenCounter,
    budget: int,
    reserve: int,
    margin: float,
    frame: Frame,
    trimmed: FitResult,
    previous: Summary | None,
    *,
    low_water: float = 0.6,
    summary_tokens: int | None = None,
    origin: Sequence[tuple[int, int]] | None = None,
    length: int | None = None,
) -> FitResult | FoldRequest:
    """Decide whether a summary is needed, reusable, or must be (re)made.

    Summaries and results speak of input positions. ``h`` is the input itself, or (the
    store's window over a conversation with a stored summary) a part of it: then
    ``origin[i]`` is the half-open range of input positions ``h``'s message ``i`` stands for
    (one message standing for the folded range, the rest for themselves) and ``length`` is
    the input's length.
    """
    if not 0 < low_water <= 1:
        raise ValidationError(f"low_water is a fraction of the budget in (0, 1], got {low_water!r}")
    if not trimmed.dropped:
        return attrs.evolve(trimmed, strategy="summarize")
    pinned = set(h._pinned_units)
    droppable = tuple(u for u in range(frame.tail) if u not in pinned)
    ctx = _Context(h, spec, counter, budget, reserve, margin, frame, droppable, origin, length)
    first = ctx.start(h._unit_start[droppable[0]])
    suffix = _suffix_costs(ctx)
    k0 = 0
    if previous is not None and previous.first == first:
        ends = [ctx.end(h.unit_bounds(u)[1] - 1) for u in droppable]
        if previous.last in ends:
            k0 = ends.index(previous.last) + 1
    if k0:
        assert previous is not None
        if frame.fixed + _summary_cost(ctx, previous) + suffix[k0] <= budget:
            return _assemble(ctx, previous, k0, new=False)
    allowance = summary_tokens if summary_tokens is not None else max(64, budget // 8)
    if allowance < 1:
        raise ValidationError(f"summary_tokens must be positive, got {summary_tokens!r}")
    target = math.floor(low_water * budget)
    k = len(droppable)
    for cand in range(max(k0, 1), len(droppable) + 1):
        if frame.fixed + allowance + suffix[cand] <= target:
            k = cand
            break
    fold: list[Message] = []
    for u in droppable[k0:k]:
        a, b = h.unit_bounds(u)
        fold.extend(h._messages[a:b])
    last = ctx.end(h.unit_bounds(droppable[k - 1])[1] - 1)
    return FoldRequest(
        messages=tuple(fold),
        previous=previous.text if k0 and previous is not None else None,
        max_tokens=allowance,
        first=first,
        last=last,
        k=k,
        context=ctx,
    )


def complete(request: FoldRequest, text: object) -> FitResult:
    """The window with the new summary ``text`` in place."""
    if not isinstance(text, str) or not text.strip():
        raise SummarizerError("the summarizer returned an empty summary; nothing was written")
    summary = Summary(text.strip(), request.first, request.last)
    return _assemble(request.context, summary, request.k, new=True)


class ExtractiveSummarizer:
    """An offline, deterministic, extractive summarizer (no model: it quotes, it does not write).

    It keeps the previous summary and, for each folded message, the role and
    the first sentence (tool calls by name and arguments), dropping the oldest
    lines while the summary counts more than ``max_tokens`` by ``counter``
    (default :class:`~convkit.EstimateCounter`, which does not undercount
    Grok's tokenizer in practice). For tests, demos and offline use; use the
    xAI summarizer for real abstractive summaries.
    """

    def __init__(self, counter: TokenCounter | None = None) -> None:
        self.counter = counter if counter is not None else EstimateCounter()

    def summarize(self, messages: Sequence[Message], *, previous: str | None, max_tokens: int) -> str:
        lines: list[str] = [previous.strip()] if previous and previous.strip() else []
        for m in messages:
            text = " ".join(m.text.split())
            sentence = text.split(". ")[0][:200]
            if m.tool_calls:
                sentence = (sentence + " " if sentence else "") + "; ".join(
                    f"called {c.name}({c.arguments[:80]})" for c in m.tool_calls
                )
            if m.images:
                sentence = f"[{len(m.images)} image(s)] " + sentence
            if sentence:
                lines.append(f"- {m.role}: {sentence}")
        limit = max(16, max_tokens)
        count = self.counter.count_texts
        # drop the oldest lines while too long: the first line to keep, by bisection
        lo, hi = 0, max(0, len(lines) - 1)
        while lo < hi:
            mid = (lo + hi) // 2
            if count(["\n".join(lines[mid:])])[0] <= limit:
                hi = mid
            else:
                lo = mid + 1
        out = "\n".join(lines[lo:])
        if count([out])[0] > limit:  # one line too long: keep its longest prefix that fits
            a, b = 0, len(out)
            while a < b:
                mid = (a + b + 1) // 2
                if count([out[:mid]])[0] <= limit:
                    a = mid
                else:
                    b = mid - 1
            out = out[:a]
        if not out.strip():
            raise SummarizerError("the folded messages hold nothing to summarize")
        return out
