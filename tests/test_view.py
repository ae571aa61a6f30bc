"""The window picture: rows from a FitResult (kept, pinned, dropped and summarized runs, the
summary) and the drawing (bars, budget line, cost), compared as plain text at 80 columns."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from typing import overload

import pytest

from convkit import EstimateCounter, ExtractiveSummarizer, Message, ModelSpec, fit
from convkit._errors import ValidationError
from convkit._summarize import summary_message
from convkit._view import Row, WindowView, render, rows_for, window_view

#: A small text model with visible overheads, so rows' tokens show them.
SPEC = ModelSpec(
    "view-test",
    700,
    {"text"},
    price_text_in=2.0,
    price_completion=10.0,
    message_overhead=4,
    request_overhead=3,
)
COUNTER = EstimateCounter()


def conversation(days: int = 12) -> list[Message]:
    msgs = [
        Message.system("You are terse and precise."),
        Message.user("Remember: the fiscal year starts in April.", pinned=True),
    ]
    for day in range(days):
        msgs.append(Message.user(f"Day {day}: what does the warning on the dashboard mean today?"))
        msgs.append(
            Message.assistant(
                f"Day {day}: it means a scheduled job ran close to its time limit; check the last runs."
            )
        )
    msgs.append(Message.user("Thanks, summarize what we changed."))
    return msgs


def counts_of(msgs: list[Message]) -> list[int]:
    return COUNTER.content_tokens(msgs)


def plain(view: WindowView, width: int = 80) -> str:
    out = io.StringIO()
    render(view, out, terminal=False, width=width)
    return out.getvalue()


def test_rows_for_a_trimmed_window_keeps_one_row_per_kept_message_and_collapses_the_dropped_run() -> None:
    msgs = conversation()
    result = fit(msgs, model=SPEC, counter=COUNTER, reserve=300)
    assert result.dropped, "the test needs a window that drops messages"
    counts = counts_of(msgs)
    rows = rows_for(result, msgs, counts)

    kept_rows = [r for r in rows if r.state in ("kept", "pinned")]
    assert [r.first - 1 for r in kept_rows] == result.kept  # numbers default to 1..n
    assert [r.state for r in kept_rows[:2]] == ["kept", "pinned"]
    assert all(r.state == "kept" for r in kept_rows[2:])
    for r in kept_rows:
        assert (r.count, r.last, r.role) == (1, r.first, msgs[r.first - 1].role)
        assert r.tokens == counts[r.first - 1] + SPEC.message_overhead
    # the kept rows' tokens and the request overhead are the prompt
    assert sum(r.tokens or 0 for r in kept_rows) + SPEC.request_overhead == result.prompt_tokens

    (run,) = [r for r in rows if r.state == "dropped"]  # one contiguous run: 3..cut
    dropped = result.dropped
    assert (run.first, run.last, run.count) == (dropped[0] + 1, dropped[-1] + 1, len(dropped))
    assert (run.role, run.preview) == ("", "")
    assert run.tokens == sum(counts[i] for i in dropped) + SPEC.message_overhead * len(dropped)
    assert [r.first for r in rows] == sorted(r.first for r in rows)  # input order


def test_rows_for_with_numbers_and_partial_counts() -> None:
    msgs = conversation()
    result = fit(msgs, model=SPEC, counter=COUNTER, reserve=300)
    lines = [10 + 2 * i for i in range(len(msgs))]  # e.g. a JSONL file with blank lines
    counts: list[int | None] = list(counts_of(msgs))
    counts[result.dropped[0]] = None  # not counted (a reader that stopped at the cut)
    rows = rows_for(result, msgs, counts, numbers=lines)
    (run,) = [r for r in rows if r.state == "dropped"]
    assert (run.first, run.last) == (lines[result.dropped[0]], lines[result.dropped[-1]])
    assert run.tokens is None
    assert [r.first for r in rows if r.state != "dropped"] == [lines[i] for i in result.kept]

    uncounted = rows_for(result, msgs, None)
    assert all(r.tokens is None for r in uncounted)
    assert "?" in plain(window_view(result, uncounted, title="t", numbering="line", counter=COUNTER))

    with pytest.raises(ValidationError, match="numbers has 3 entries"):
        rows_for(result, msgs, None, numbers=[1, 2, 3])


def test_a_dropped_run_of_one_message_keeps_its_role_and_preview() -> None:
    msgs = [Message.system("sys"), Message.user("old " * 300), Message.user("new question")]
    result = fit(msgs, model=SPEC, counter=COUNTER, reserve=600)
    assert result.dropped == [1]
    rows = rows_for(result, msgs, counts_of(msgs))
    assert [(r.state, r.count, r.role) for r in rows] == [
        ("kept", 1, "system"),
        ("dropped", 1, "user"),
        ("kept", 1, "user"),
    ]
    assert rows[1].preview.startswith("old old")
    assert rows[1].preview.endswith("…")


def test_rows_for_reads_only_the_kept_messages() -> None:
    """A sequence holding only the kept messages (as ``convkit fit`` reads a big file back)."""

    class KeptOnly(Sequence[Message]):
        def __init__(self, msgs: list[Message], kept: list[int]) -> None:
            self.msgs, self.kept = msgs, set(kept)

        def __len__(self) -> int:
            return len(self.msgs)

        @overload
        def __getitem__(self, i: int) -> Message: ...
        @overload
        def __getitem__(self, i: slice) -> Sequence[Message]: ...
        def __getitem__(self, i: int | slice) -> Message | Sequence[Message]:
            if isinstance(i, slice) or i not in self.kept:
                raise KeyError(i)
            return self.msgs[i]

    msgs = [Message.system("sys"), Message.user("old " * 300), Message.user("new question")]
    result = fit(msgs, model=SPEC, counter=COUNTER, reserve=600)
    rows = rows_for(result, KeptOnly(msgs, result.kept), None)
    assert [(r.state, r.role, r.preview) for r in rows] == [
        ("kept", "system", "sys"),
        ("dropped", "", ""),
        ("kept", "user", "new question"),
    ]


def test_rows_for_a_summarized_window() -> None:
    msgs = conversation(16)
    msgs[9] = Message.user("Pinned inside the folded part: keep the EU region.", pinned=True)
    result = fit(
        msgs,
        model=SPEC,
        counter=COUNTER,
        reserve=300,
        strategy="summarize",
        summarizer=ExtractiveSummarizer(),
    )
    s = result.summary
    assert s is not None
    assert s.first <= 9 <= s.last, "the pinned message must sit in the folded range"
    counts = counts_of(msgs)
    rows = rows_for(result, msgs, counts)
    states = [r.state for r in rows]

    (summary_row,) = [r for r in rows if r.state == "summary"]
    assert (summary_row.first, summary_row.last, summary_row.role) == (s.first + 1, s.last + 1, "system")
    expected = COUNTER.content_tokens([summary_message(s)])[0] + SPEC.message_overhead
    assert summary_row.tokens == expected
    assert summary_row.preview.startswith(s.text.split()[0])
    # the summary stands before the first message it replaced; the pinned one splits the run
    i = states.index("summary")
    assert states[i : i + 4] == ["summary", "summarized", "pinned", "summarized"]
    folded = [r for r in rows if r.state == "summarized"]
    assert sum(r.count for r in folded) == s.last - s.first  # all but the pinned one
    assert (folded[0].first, folded[-1].last) == (s.first + 1, s.last + 1)
    assert rows[i + 2].first == 10  # the pinned message, by its number
    assert not [r for r in rows if r.state == "dropped"]
    kept = [r.first - 1 for r in rows if r.state in ("kept", "pinned")]
    assert kept == result.kept

    text = plain(window_view(result, rows, title="summarized", numbering="message", counter=COUNTER))
    kept_count = len(result.kept)
    prose = " ".join(text.split())  # footer lines wrap at 80 columns
    assert f"{kept_count} kept (2 pinned), {s.last - s.first} summarized into 1 summary" in prose
    assert re.search(rf"^ *{s.first + 1}-{s.last + 1} +system +{expected} +summary +=+ ", text, re.M)


def test_render_plain_text_at_80_columns() -> None:
    msgs = conversation()
    result = fit(msgs, model=SPEC, counter=COUNTER, reserve=300)
    rows = rows_for(result, msgs, counts_of(msgs))
    view = window_view(result, rows, title="view-test, trimmed", numbering="seq", counter=COUNTER)
    text = plain(view)
    lines = text.splitlines()

    assert "\x1b" not in text  # no colour without a terminal
    assert all(len(line) <= 80 for line in lines)
    assert text == plain(view)  # deterministic
    assert lines[0] == "== view-test, trimmed"
    assert lines[1].split() == ["seq", "role", "tokens", "state", "bar", "preview"]

    dropped = result.dropped
    run = next(line for line in lines if " dropped " in line or line.rstrip().endswith("+"))
    fields = run.split()
    assert fields[:4] == [
        f"{dropped[0] + 1}-{dropped[-1] + 1}",
        str(len(dropped)),
        "msgs",
        f"{rows[2].tokens:,}",
    ]
    assert fields[4] == "dropped"
    assert fields[5].endswith("+")  # longer than the largest message
    assert set(fields[5][:-1]) == {"."}

    last = next(line for line in lines if line.lstrip().startswith(f"{len(msgs)} "))
    assert last.split()[1:4] == ["user", str(rows[-1].tokens), "kept"]
    assert "Thanks, summarize" in last

    share = result.prompt_tokens / result.budget
    assert f"prompt {result.prompt_tokens:,} of {result.budget:,} budget tokens ({share:.1%})" in text
    assert f"{len(result.kept)} kept (1 pinned), {len(dropped)} dropped" in text
    gauge = next(line for line in lines if line.startswith("["))
    assert len(gauge) == 80
    assert gauge.endswith("]")
    assert gauge.count("#") == math.ceil(share * 78)
    assert set(gauge[1:-1]) <= {"#", "."}
    assert f"window 700 less reserve 300, margin 0: budget {result.budget:,}" in text
    cost = result.estimate_cost(result.reserve)
    assert view.cost_usd == cost
    assert f"estimated cost ${cost:.5f} (prompt at $2.00/M, 300-token reply at $10.00/M)" in text
    assert "counter EstimateCounter(" in text


def test_bars_are_scaled_to_the_largest_message() -> None:
    rows = (
        Row(1, 1, 1, "system", 10, "kept", "a"),
        Row(2, 2, 1, "user", 40, "pinned", "b"),
        Row(3, 9, 7, "", 20, "dropped", ""),
        Row(10, 10, 1, "user", 400, "kept", "c"),
    )
    view = WindowView("t", "line", rows, "m", 1000, 100, 900, 450, 0.0, 0.001, "estimate")
    lines = plain(view).splitlines()[2:6]
    bars = [line.split()[5 if " msgs " in line else 4] for line in lines]
    assert bars[3] == "#" * 16  # the largest message fills the bar (16 cells at 80 columns)
    assert bars[1] == "##"  # 40/400 of 16 cells, rounded up
    assert bars[0] == "#"  # never empty while it costs a token
    assert bars[2] == "."  # a run is drawn on the same scale
    wide = plain(view, width=120).splitlines()[5]
    assert wide.split()[4] == "#" * 24  # the bar grows with the width, up to 24 cells


def test_render_on_a_terminal_uses_colour_and_blocks() -> None:
    msgs = conversation()
    result = fit(msgs, model=SPEC, counter=COUNTER, reserve=300)
    view = window_view(
        result, rows_for(result, msgs, counts_of(msgs)), title="t", numbering="seq", counter="c"
    )
    out = io.StringIO()
    render(view, out, terminal=True, width=100)
    text = out.getvalue()
    assert "\x1b[" in text
    assert "█" in text
    assert "░" in text
    visible = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert all(len(line) <= 100 for line in visible.splitlines())
    assert "counter c" in visible


def test_a_row_state_is_checked() -> None:
    with pytest.raises(ValidationError, match="state"):
        Row(1, 1, 1, "user", 3, "lost", "")
