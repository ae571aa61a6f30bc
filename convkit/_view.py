"""A picture of a window: one bar per message (or per run of messages) sized by its tokens.

:func:`rows_for` turns a :class:`~convkit.FitResult` into :class:`Row` values:
one row per kept message (``"kept"``, or ``"pinned"``), the summary message
(``"summary"``) before the first message it replaced, and one row per run of dropped or
summarized input messages (``"dropped"``, ``"summarized"``) with the run's
message count and total tokens when they are known. :func:`window_view` adds
the window's figures (budget, reserve, margin, cost, counter) and
:func:`render` draws it with ``rich``: bars and colour on a terminal, plain
ASCII bars otherwise (what the tests compare), cropped to the width (80
columns when the output is not a terminal), with a budget line (the prompt's
share of the budget filled in a full-width bar) and the estimated cost.

Bars are scaled to the largest single message shown (the summary included),
not to the budget: a typical message is a percent or two of the budget, so
budget-scaled bars would all be empty, while the budget line already shows
how much of the budget the prompt uses. A run of dropped or summarized
messages longer than the largest message fills the whole bar and ends in
``+`` (its tokens are printed beside it). Output is deterministic: it depends
only on the view, the width and whether it is drawn for a terminal.

This module draws; it never counts, fits or reads a database.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from typing import TextIO

import attrs
from rich.console import Console
from rich.text import Text

from ._counting import TokenCounter
from ._errors import ValidationError
from ._fitting import FitResult
from ._messages import Message
from ._models import get_model

__all__ = ["STATES", "Row", "WindowView", "preview", "render", "rows_for", "window_view"]

#: The states a row can be in.
STATES = ("kept", "pinned", "dropped", "summarized", "summary")

#: Longest preview kept in a Row (the picture crops it further to the width).
PREVIEW_CHARS = 160


@attrs.frozen
class Row:
    """One bar: a message, or a run of dropped or summarized messages."""

    #: the number shown for the message: a file line number, a stored seq, ...
    first: int
    #: == first for one message; the last of a run otherwise
    last: int
    #: messages in the row (1, or the run's length)
    count: int
    #: the role, or "" for a run of several messages
    role: str
    #: prompt tokens the row costs as sent (None: not counted)
    tokens: int | None
    #: "kept" | "pinned" | "dropped" | "summarized" | "summary"
    state: str
    #: a short one-line preview ("" for a run)
    preview: str

    def __attrs_post_init__(self) -> None:
        if self.state not in STATES:
            raise ValidationError(f"a row's state is one of {', '.join(STATES)}, got {self.state!r}")


@attrs.frozen
class WindowView:
    """What :func:`render` draws: the rows and the window's figures."""

    title: str
    #: what Row.first/last are: "line", "seq" or "message"
    numbering: str
    rows: tuple[Row, ...]
    model: str
    context_window: int
    reserve: int
    budget: int
    prompt_tokens: int
    margin: float
    cost_usd: float | None  # None: the model's prices are unknown
    #: a short description of the counter
    counter: str
    #: how the cost was estimated, e.g. "prompt at $2.00/M, 1,024-token reply at $10.00/M"
    cost_note: str = ""


def preview(m: Message, width: int = PREVIEW_CHARS) -> str:
    """One line for ``m``: its text, the tools it calls, how many images it holds."""
    text = " ".join(m.text.split())
    if m.tool_calls:
        text = (text + " " if text else "") + "calls " + ", ".join(c.name for c in m.tool_calls)
    if m.images:
        n = len(m.images)
        text = f"[{n} image{'s' if n > 1 else ''}] " + text
    return text if len(text) <= width else text[: width - 1] + "…"


def rows_for(
    result: FitResult,
    messages: Sequence[Message],
    counts: Sequence[int | None] | None,
    *,
    numbers: Sequence[int] | None = None,
) -> tuple[Row, ...]:
    """The rows of ``result``'s picture, in input order.

    ``messages``: the input ``result`` was fitted from (``result.input_length`` of them);
    only ``messages[i]`` for the kept messages and for a dropped or summarized run of one
    message are read, so a sequence that holds only the kept ones works too (a run of one
    message it cannot give, raising ``LookupError``, is shown without role and preview).
    ``counts[i]``: the content tokens of input message ``i`` as sent (``counter.content_tokens``
    after the image policy), ``None`` where it was not counted; each row adds the model's
    per-message overhead, so a kept row's tokens are what the message costs in the prompt.
    A run's tokens are known when every message in it was counted. ``None`` for ``counts``:
    nothing was counted. ``numbers[i]``: the number shown for input message ``i`` (default
    ``i + 1``).

    One row per kept message (``"pinned"`` when the message is), one per run of dropped or
    summarized messages, and under strategy ``"summarize"`` a ``"summary"`` row where the
    summary stands (before the first message it replaced); the summary's tokens are what the prompt
    spends beyond the kept messages, known when every kept message was counted.
    """
    n = result.input_length
    if numbers is not None and len(numbers) != n:
        raise ValidationError(f"numbers has {len(numbers)} entries for {n} input messages")
    if counts is not None and len(counts) != n:
        raise ValidationError(f"counts has {len(counts)} entries for {n} input messages")
    spec = result.spec if result.spec is not None else get_model(result.model)
    overhead = spec.message_overhead

    def number(i: int) -> int:
        return numbers[i] if numbers is not None else i + 1

    def tokens(a: int, b: int) -> int | None:
        if counts is None:
            return None
        total = 0
        for c in counts[a:b]:
            if c is None:
                return None
            total += c
        return total + overhead * (b - a)

    def run(a: int, b: int, state: str) -> Row:
        if b - a == 1:
            try:
                m = messages[a]
            except LookupError:  # a message not at hand (e.g. not read back): shown unnamed
                return Row(number(a), number(a), 1, "", tokens(a, b), state, "")
            return Row(number(a), number(a), 1, m.role, tokens(a, b), state, preview(m))
        return Row(number(a), number(b - 1), b - a, "", tokens(a, b), state, "")

    summary = result.summary
    lo, hi = (summary.first, summary.last + 1) if summary is not None else (n, n)
    rows: list[Row] = []
    starts: list[int] = []  # the input position each row starts at

    def gap(a: int, b: int) -> None:
        """Rows for [a, b), where nothing is kept: dropped, summarized, dropped."""
        for x, y, state in ((a, min(b, lo), "dropped"), (max(a, lo), min(b, hi), "summarized")):
            if x < y:
                starts.append(x)
                rows.append(run(x, y, state))
        if max(a, hi) < b:
            starts.append(max(a, hi))
            rows.append(run(max(a, hi), b, "dropped"))

    kept_tokens: int | None = 0
    prev = 0
    for a, b in result.kept_spans:
        gap(prev, a)
        for i in range(a, b):
            m = messages[i]
            t = tokens(i, i + 1)
            kept_tokens = None if t is None or kept_tokens is None else kept_tokens + t
            starts.append(i)
            rows.append(Row(number(i), number(i), 1, m.role, t, "pinned" if m.pinned else "kept", preview(m)))
        prev = b
    gap(prev, n)
    if summary is not None:
        s_tokens = None
        if kept_tokens is not None:
            rest = result.prompt_tokens - spec.request_overhead - result.tools_tokens - kept_tokens
            s_tokens = rest if rest > 0 else None
        first, last = number(summary.first), number(summary.last)
        row = Row(first, last, 1, "system", s_tokens, "summary", one_line(summary.text))
        rows.insert(bisect_left(starts, summary.first), row)
    return tuple(rows)


def one_line(text: str) -> str:
    """``text`` on one line, cut to :data:`PREVIEW_CHARS`."""
    one = " ".join(text.split())
    return one if len(one) <= PREVIEW_CHARS else one[: PREVIEW_CHARS - 1] + "…"


def window_view(
    result: FitResult,
    rows: Sequence[Row],
    *,
    title: str,
    numbering: str,
    counter: TokenCounter | str,
    completion_tokens: int | None = None,
    priced: bool = True,
    unpriced_note: str = "",
) -> WindowView:
    """The view of ``result``: its rows and figures, the cost estimated as ``convkit fit`` does.

    ``completion_tokens``: the reply the cost counts (default: the reserve, the most the model
    may answer). ``counter``: the counter used (its repr is shown) or a description of it.
    ``priced=False``: the model's prices are not known, so no cost is shown (``unpriced_note``
    says how to give them).
    """
    spec = result.spec if result.spec is not None else get_model(result.model)
    out = result.reserve if completion_tokens is None else completion_tokens
    note = f"prompt at ${spec.price_text_in:.2f}/M"
    if out:
        note += f", {out:,}-token reply at ${spec.price_completion:.2f}/M"
    return WindowView(
        title=title,
        numbering=numbering,
        rows=tuple(rows),
        model=result.model,
        context_window=result.context_window,
        reserve=result.reserve,
        budget=result.budget,
        prompt_tokens=result.prompt_tokens,
        margin=result.margin,
        cost_usd=result.estimate_cost(out) if priced else None,
        counter=counter if isinstance(counter, str) else repr(counter),
        cost_note=note if priced else unpriced_note,
    )


# -- drawing -----------------------------------------------------------------------------------

#: per state: (terminal bar character, its style, plain-text bar character)
_LOOK: dict[str, tuple[str, str, str]] = {
    "kept": ("█", "green", "#"),
    "pinned": ("█", "bold cyan", "#"),
    "summary": ("█", "magenta", "="),
    "summarized": ("▒", "yellow", "~"),
    "dropped": ("░", "red", "."),
}


def _console(out: TextIO, terminal: bool | None, width: int | None) -> Console:
    if terminal is None:
        isatty = getattr(out, "isatty", None)
        terminal = bool(isatty()) if callable(isatty) else False
    return Console(
        file=out,
        width=width if width is not None else (None if terminal else 80),
        force_terminal=terminal,
        no_color=None if terminal else True,
        color_system="auto" if terminal else None,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=False,
        legacy_windows=False,
    )


def _number(row: Row) -> str:
    return str(row.first) if row.first == row.last else f"{row.first}-{row.last}"


def _who(row: Row) -> str:
    if row.count == 1:
        return row.role
    return f"{row.count} msgs"


def _tokens(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def render(view: WindowView, out: TextIO, *, terminal: bool | None = None, width: int | None = None) -> None:
    """Draw ``view`` on ``out`` (see the module docstring).

    ``terminal``: draw colour and block bars (default: when ``out`` is a terminal); otherwise
    plain text with ASCII bars. ``width``: columns (default: the terminal's, else 80); each
    line is cropped to it.
    """
    console = _console(out, terminal, width)
    plain = not console.is_terminal
    cols = console.width

    def line(text: Text) -> None:
        console.print(text, no_wrap=True, overflow="ellipsis", crop=True)

    def say(text: str, style: str = "") -> None:  # a line of prose: wrapped, never cropped
        console.print(Text(text, style=style), overflow="fold")

    rows = view.rows
    singles = [r.tokens for r in rows if r.count == 1 and r.tokens is not None]
    scale = max(singles) if singles else max((r.tokens or 0 for r in rows), default=0)
    w_num = max([len(view.numbering), *(len(_number(r)) for r in rows)])
    w_who = max([len("role"), *(len(_who(r)) for r in rows)])
    w_tok = max([len("tokens"), *(len(_tokens(r.tokens)) for r in rows)])
    w_state = max(len(s) for s in STATES)
    w_bar = max(8, min(24, cols // 5))

    say(f"== {view.title}", "bold")
    head = f"{view.numbering:>{w_num}}  {'role':<{w_who}}  {'tokens':>{w_tok}}  {'state':<{w_state}}  "
    line(Text(head + f"{'bar':<{w_bar + 1}}  preview", style="dim"))
    for r in rows:
        char, style, ascii_char = _LOOK[r.state]
        text = Text(f"{_number(r):>{w_num}}  {_who(r):<{w_who}}  {_tokens(r.tokens):>{w_tok}}  ")
        text.append(f"{r.state:<{w_state}}", style=style)
        text.append("  ")
        bar = ""
        if r.tokens is not None and r.tokens > 0 and scale > 0:
            cells = math.ceil(r.tokens * w_bar / scale)
            bar = (ascii_char if plain else char) * min(cells, w_bar) + ("+" if cells > w_bar else "")
        if r.preview:
            text.append(f"{bar:<{w_bar + 1}}", style=style)
            text.append("  " + r.preview)
        else:
            text.append(bar, style=style)
        line(text)

    kept = sum(r.count for r in rows if r.state in ("kept", "pinned"))
    pinned = sum(r.count for r in rows if r.state == "pinned")
    dropped = sum(r.count for r in rows if r.state == "dropped")
    summarized = sum(r.count for r in rows if r.state == "summarized")
    parts = [f"{kept:,} kept" + (f" ({pinned:,} pinned)" if pinned else "")]
    has_summary = any(r.state == "summary" for r in rows)
    if dropped or not has_summary:
        parts.append(f"{dropped:,} dropped")
    if has_summary:
        parts.append(f"{summarized:,} summarized into 1 summary")

    legend = "# kept or pinned, = summary, ~ summarized, . dropped; " if plain else ""
    say(f"bars: {legend}scaled to the largest message ({scale:,} tokens); a longer run ends in +", "dim")
    share = view.prompt_tokens / view.budget if view.budget > 0 else 1.0
    say(
        f"prompt {view.prompt_tokens:,} of {view.budget:,} budget tokens ({share:.1%}): " + ", ".join(parts),
        "bold",
    )
    inner = max(10, cols - 2)
    filled = min(inner, math.ceil(share * inner)) if view.prompt_tokens > 0 else 0
    gauge = Text("[")
    gauge.append(("#" if plain else "█") * filled, style="green" if share <= 1 else "red")
    gauge.append(("." if plain else "░") * (inner - filled), style="dim")
    gauge.append("]")
    line(gauge)
    say(
        f"{view.model}: window {view.context_window:,} less reserve {view.reserve:,}, "
        f"margin {view.margin:g}: budget {view.budget:,}"
    )
    cost = "cost unknown" if view.cost_usd is None else f"estimated cost ${view.cost_usd:.5f}"
    if view.cost_note:
        cost += f" ({view.cost_note})"
    say(cost)
    say(f"counter {view.counter}")
