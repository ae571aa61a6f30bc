"""The summarize strategy (DESIGN section 3, "Summaries"; issue 5).

* Properties (hypothesis) of ``fit(strategy="summarize")`` with the offline
  :class:`~convkit.ExtractiveSummarizer`, over random conversations (tool
  groups, pinned and interleaved system messages, images), models, counters
  and budgets: the window fits and its count is the counter's own; the
  summary message sits right after the leading system messages; its range is
  contiguous, starts at the first droppable unit (right after the pinned
  prefix) and ends right before the first kept droppable unit, so every
  input message is kept or summarized (pinned messages inside the range are
  kept after the summary); pinned messages, the newest turn and whole tool
  groups are kept; the input is unchanged; ``fit(fit(x)) == fit(x)``; a
  previous summary is reused without a summarizer call while nothing new
  overflows, and a fold goes down to the low-water mark, starting from the
  previous summary and folding only the newly overflowing messages.
* The store: sequences of turns through ``Store.window`` and
  ``AsyncStore.window`` (sync and async summarizers; SQLite and PostgreSQL)
  equal ``fit`` over the same messages with the previous summary; the
  originals stay intact, each new summary is stored with its exact seq range
  and token count, and reused (no call) until more must be folded.
* Faults: a summarizer raising, timing out (XAISummarizer against the local
  xAI stand-in holding the response), answering empty, blank or over-long:
  a typed error (SummarizerError, or ContextWindowError saying the summary
  does not fit), nothing written, and ``fallback="trim"`` returns the
  trimmed window.
* The xAI summarizer against :class:`~convkit.testing.XAIStandIn`:
  hierarchical summarization into a small-window model (several calls, each
  request fits: the stand-in answers 400 otherwise), and a short
  ``Session(strategy="summarize")`` run.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import convkit
from convkit import (
    AsyncXAIClient,
    AsyncXAISummarizer,
    ContextWindowError,
    EstimateCounter,
    ExtractiveSummarizer,
    FitResult,
    Message,
    ModelSpec,
    StoredSummary,
    SummarizerError,
    Summary,
    TokenCounter,
    ToolCall,
    ValidationError,
    XAIClient,
    XAISummarizer,
    fit,
    get_model,
)
from convkit import _models as convkit_models
from convkit._errors import APITimeoutError
from convkit._session import AsyncSession, Session
from convkit._summarize import summary_message
from convkit.store import AsyncStore, Store
from convkit.testing import Fault, Reply, XAIStandIn
from convkit.testing.strategies import conversations, texts
from convkit.xai._summarizer import MIN_INPUT

from . import oracle

#: Unregistered (passed as a value): a small window with overheads of its own.
SMALL = ModelSpec(
    "summarize-test-small", 1600, {"text", "image"}, 1.0, 1.0, 1.0, message_overhead=3, request_overhead=2
)
MODELS: tuple[str | ModelSpec, ...] = ("grok-2-vision-1212", "convkit-test-small", SMALL)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


# -- summarizers for the tests --------------------------------------------------------------------


class Counting:
    """Wraps a summarizer: counts calls and records what each was given."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner if inner is not None else ExtractiveSummarizer()
        self.calls: list[tuple[list[Message], str | None, int]] = []

    def summarize(self, messages: Sequence[Message], *, previous: str | None, max_tokens: int) -> str:
        self.calls.append((list(messages), previous, max_tokens))
        return str(self.inner.summarize(messages, previous=previous, max_tokens=max_tokens))


class AsyncCounting:
    """The asyncio form of :class:`Counting` (an AsyncSummarizer)."""

    def __init__(self) -> None:
        self.inner = ExtractiveSummarizer()
        self.calls: list[tuple[list[Message], str | None, int]] = []

    async def summarize(self, messages: Sequence[Message], *, previous: str | None, max_tokens: int) -> str:
        await asyncio.sleep(0)
        self.calls.append((list(messages), previous, max_tokens))
        return self.inner.summarize(messages, previous=previous, max_tokens=max_tokens)


class Faulty:
    """A summarizer that fails in one way: raises, times out, or answers empty/blank/over-long/not text."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.calls = 0

    def summarize(self, messages: Sequence[Message], *, previous: str | None, max_tokens: int) -> Any:
        self.calls += 1
        if self.mode == "raises":
            raise RuntimeError("the summarizer broke")
        if self.mode == "timeout":
            raise TimeoutError("the summarizer did not answer in time")
        if self.mode == "empty":
            return ""
        if self.mode == "blank":
            return " \n\t "
        if self.mode == "none":
            return None
        assert self.mode == "overlong"
        return "a very long summary sentence. " * 2000


class AsyncFaulty(Faulty):
    async def summarize(  # type: ignore[override]
        self, messages: Sequence[Message], *, previous: str | None, max_tokens: int
    ) -> Any:
        await asyncio.sleep(0)
        return Faulty.summarize(self, messages, previous=previous, max_tokens=max_tokens)


FAULTS = ("raises", "timeout", "empty", "blank", "none", "overlong")


# -- structural checks ------------------------------------------------------------------------------


def leading_system_count(messages: Sequence[Message]) -> int:
    n = 0
    for m in messages:
        if m.role != "system":
            break
        n += 1
    return n


class Layout:
    """The units of a conversation as the rules read them (tests/oracle.py), and what must be kept."""

    def __init__(self, conv: Sequence[Message]) -> None:
        self.conv = list(conv)
        self.n = len(conv)
        self.units = oracle.units(conv)
        flags = oracle.must_keep_flags(conv)
        speakers = [i for i, m in enumerate(conv) if m.role != "system"]
        tail = next(u for u, members in enumerate(self.units) if speakers[-1] in members)
        self.must: set[int] = set()
        #: droppable units (lists of message indices), oldest first
        self.droppable: list[list[int]] = []
        for u, members in enumerate(self.units):
            if u >= tail or any(flags[i] for i in members):
                self.must.update(members)
            else:
                self.droppable.append(members)
        self.lead = leading_system_count(conv)


def answered_ids(messages: Sequence[Message]) -> set[str]:
    return {m.tool_call_id for m in messages if m.role == "tool" and m.tool_call_id is not None}


def assert_tool_groups_whole(source: Sequence[Message], messages: Sequence[Message]) -> None:
    """No tool result without its call; no call kept without every result the source has for it."""
    seen: set[str] = set()
    for m in messages:
        if m.role == "tool":
            assert m.tool_call_id in seen, f"tool result {m.tool_call_id!r} without its call"
        seen.update(c.id for c in m.tool_calls)
    assert seen & answered_ids(source) <= answered_ids(messages), "a kept tool call lost its results"


def summary_cost(result: FitResult, counter: TokenCounter, spec: ModelSpec, tools: Any) -> int:
    """Tokens the summary message adds to the prompt."""
    assert result.summary is not None
    without = [m for m in result.messages if "convkit_summary" not in m.metadata]
    return result.prompt_tokens - counter.count_messages(without, model=spec, tools=tools)


def check_window(
    conv: Sequence[Message], result: FitResult, counter: TokenCounter, spec: ModelSpec, tools: Any = None
) -> Layout:
    """Invariants 1-5 with the summary counted, and the summary's place and range."""
    lay = Layout(conv)
    n = lay.n
    assert result.strategy == "summarize"
    assert result.input_length == n
    # 1. fits, and prompt_tokens is the counter's own count of exactly these messages
    assert result.prompt_tokens == counter.count_messages(result.messages, model=spec, tools=tools)
    assert result.prompt_tokens <= result.budget
    kept = result.kept
    kept_set = set(kept)
    assert kept == sorted(kept_set)
    # 3, 4. pinned, leading system messages and the newest turn are kept
    assert lay.must <= kept_set
    assert n - 1 in kept_set
    # 5. tool groups whole
    assert_tool_groups_whole(conv, result.messages)
    assert any(m.role != "system" for m in result.messages)

    if result.summary is None:
        # no summary only when nothing had to be dropped
        assert kept == list(range(n))
        assert list(result.messages) == list(conv)
        assert not result.summary_is_new
        return lay

    s = result.summary
    # 2. order: leading system messages, the summary, then the kept messages in input order
    lead = lay.lead
    assert list(result.messages[:lead]) == list(conv[:lead])
    carrier = result.messages[lead]
    assert carrier == summary_message(s)
    assert carrier.role == "system"
    assert s.text.strip()
    assert s.text in carrier.text
    assert carrier.metadata["convkit_summary"] == {"first": s.first, "last": s.last}
    assert list(result.messages[lead + 1 :]) == [conv[i] for i in kept if i >= lead]
    assert sum("convkit_summary" in m.metadata for m in result.messages) == 1

    # the range: from the first droppable unit (right after the pinned prefix) to the end of a
    # droppable unit; every droppable message in it is summarized, everything after it kept
    assert lay.droppable, "a summary although nothing is droppable"
    assert s.first == lay.droppable[0][0]
    assert s.last in {u[-1] for u in lay.droppable}
    summarized = {i for u in lay.droppable if u[-1] <= s.last for i in u}
    assert summarized, "an empty summarized range"
    assert set(range(n)) - kept_set == summarized
    for i in range(s.first, s.last + 1):
        assert (i in summarized) != (i in kept_set)
        if i in kept_set:
            assert i in lay.must, f"message {i} inside the summary's range kept but not pinned"
    assert all(i in kept_set for i in range(s.last + 1, n)), "a gap after the summary's range"
    assert all(i in kept_set for i in range(s.first))
    return lay


def check_low_water(
    conv: Sequence[Message],
    result: FitResult,
    lay: Layout,
    *,
    counter: TokenCounter,
    spec: ModelSpec,
    tools: Any,
    allowance: int,
    low_water: float,
    folded_from: int,
) -> None:
    """A new summary folds down to the low-water mark, and no further than needed.

    ``folded_from``: the index of the first message this fold summarized
    (the first droppable one, or the one after the previous summary).
    """
    assert result.summary is not None
    assert result.summary_is_new
    target = math.floor(low_water * result.budget)
    rest = result.prompt_tokens - summary_cost(result, counter, spec, tools)  # all but the summary
    folded_everything = result.summary.last == lay.droppable[-1][-1]
    if not folded_everything:
        assert rest + allowance <= target, "the fold stopped above the low-water mark"
    # minimal: keeping the newest folded unit would miss the mark (when that was an option)
    newest = next(u for u in lay.droppable if u[-1] == result.summary.last)
    if newest[0] > folded_from:
        wider = sorted(set(result.kept) | set(newest))
        with_newest = counter.count_messages([conv[i] for i in wider], model=spec, tools=tools)
        assert with_newest + allowance > target, "the fold went further than the low-water mark needed"


# -- properties of fit(strategy="summarize") ------------------------------------------------------------


def reserve_for_budget(spec: ModelSpec, budget: int, margin: float) -> int:
    return max(0, spec.context_window - math.ceil(budget * (1 + margin)))


@pytest.fixture(scope="module", params=["estimate", "bpe", "upper-bound"])
def counter(request: pytest.FixtureRequest, tiny_counter: TokenCounter) -> TokenCounter:
    if request.param == "bpe":
        return tiny_counter
    if request.param == "upper-bound":
        return EstimateCounter.upper_bound()
    return EstimateCounter()


def draw_setup(data: st.DataObject, counter: TokenCounter, *, growing: bool = False) -> dict[str, Any]:
    """A model, tools, low-water mark, summary length, conversation and a reserve that makes the
    budget land anywhere from what must be kept (in every prefix, when ``growing``) to everything."""
    model = data.draw(st.sampled_from(MODELS), label="model")
    tools = data.draw(st.sampled_from([None, None, TOOLS]), label="tools")
    low_water = data.draw(st.sampled_from([0.6, 0.6, 0.3, 0.8, 1.0]), label="low_water")
    summary_tokens = data.draw(st.sampled_from([None, None, 24, 64, 200]), label="summary_tokens")
    between = growing or data.draw(st.sampled_from([True, True, True, False]), label="above must-keep")
    position = data.draw(st.integers(0, 50 if growing else 110), label="budget position, %")
    conv = data.draw(
        conversations(min_size=6 if growing else 1, max_size=30, images=not growing), label="conversation"
    )
    spec = get_model(model)
    total = counter.count_messages(conv, model=spec, tools=tools)
    lo = 0
    if between:
        ends = range(1, len(conv) + 1) if growing else [len(conv)]
        lo = max(
            oracle.trim(conv[:i], model=spec, counter=counter, tools=tools, margin=0).required
            for i in ends
            if any(m.role != "system" for m in conv[:i])
        )
    budget = lo + max(0, total - lo) * position // 100
    if growing:  # leave room for a summary next to the must-keep part
        budget += 3 * (summary_tokens or 64)
    return {
        "model": spec,
        "counter": counter,
        "reserve": reserve_for_budget(spec, budget, counter.margin),
        "tools": tools,
        "low_water": low_water,
        "summary_tokens": summary_tokens,
        "conv": conv,
    }


def outcome(call: Any) -> Any:
    """The call's result, or the ContextWindowError it raised."""
    try:
        return call()
    except ContextWindowError as exc:
        return exc


def fit_kw(setup: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in setup.items() if k != "conv"}


def allowance_of(setup: dict[str, Any], budget: int) -> int:
    st_ = setup["summary_tokens"]
    return int(st_) if st_ is not None else max(64, budget // 8)


@settings(max_examples=min(100, settings.default.max_examples))
@given(data=st.data())
def test_summarized_window_invariants(
    data: st.DataObject, counter: TokenCounter, custom_model: ModelSpec
) -> None:
    setup = draw_setup(data, counter)
    conv: list[Message] = setup["conv"]
    kw = fit_kw(setup)
    spec, tools = kw["model"], kw["tools"]
    original = list(conv)
    trimmed = outcome(lambda: fit(conv, **{k: kw[k] for k in ("model", "counter", "reserve", "tools")}))
    if isinstance(trimmed, ContextWindowError):
        # must-keep part too big: summarizing cannot help, and says the same
        event("outcome: must-keep part does not fit")
        with pytest.raises(ContextWindowError) as info:
            fit(conv, strategy="summarize", summarizer=Counting(), **kw)
        assert (info.value.required, info.value.available) == (trimmed.required, trimmed.available)
        return
    summarizer = Counting()
    result = outcome(lambda: fit(conv, strategy="summarize", summarizer=summarizer, **kw))
    if isinstance(result, ContextWindowError):
        # the summary itself does not fit: the error says so, and the caller may ask for trim
        event("outcome: the summary does not fit")
        assert "summary" in str(result)
        assert len(summarizer.calls) == 1
        fallback = fit(conv, strategy="summarize", summarizer=Counting(), fallback="trim", **kw)
        assert fallback == trimmed
        return
    assert conv == original, "fit changed its input"
    lay = check_window(conv, result, counter, spec, tools)
    if result.summary is None:
        event("outcome: everything fits")
        assert not trimmed.dropped
        assert summarizer.calls == []
    else:
        event("outcome: summarized")
        assert trimmed.dropped
        assert result.summary_is_new
        assert len(summarizer.calls) == 1
        folded, previous, max_tokens = summarizer.calls[0]
        assert previous is None
        assert max_tokens == allowance_of(setup, result.budget)
        assert folded == [
            conv[i] for i in range(result.summary.first, result.summary.last + 1) if i not in set(result.kept)
        ]
        check_low_water(
            conv,
            result,
            lay,
            counter=counter,
            spec=spec,
            tools=tools,
            allowance=max_tokens,
            low_water=setup["low_water"],
            folded_from=lay.droppable[0][0],
        )

    # 7. idempotent: fitting the window again changes nothing and calls no summarizer
    again_summarizer = Counting()
    again = fit(result.messages, strategy="summarize", summarizer=again_summarizer, **kw)
    assert again.messages == result.messages
    assert again.prompt_tokens == result.prompt_tokens
    assert again_summarizer.calls == []

    # the previous summary is reused, without a call, while the next message still fits
    extra = Message.user(data.draw(texts(max_size=60), label="next message"))
    grown = [*conv, extra]
    reuse = Counting()
    try:
        nxt = fit(grown, strategy="summarize", summarizer=reuse, summary=result.summary, **kw)
    except ContextWindowError:
        event("next message: does not fit")
        assert counter.count_messages([*result.messages, extra], model=spec, tools=tools) > result.budget
        return
    still_fits = counter.count_messages([*result.messages, extra], model=spec, tools=tools) <= result.budget
    if still_fits:
        event("next message: still fits")
        assert reuse.calls == []
        assert nxt.messages == (*result.messages, extra)
        assert nxt.summary == result.summary
        assert not nxt.summary_is_new
    else:
        event("next message: overflows")
        assert len(reuse.calls) == 1
        check_window(grown, nxt, counter, spec, tools)


@settings(max_examples=min(50, settings.default.max_examples))
@given(data=st.data())
def test_growing_conversation_folds_only_new_messages(
    data: st.DataObject, counter: TokenCounter, custom_model: ModelSpec
) -> None:
    """Turn by turn: a summarizer call only when the previous summary no longer suffices,
    each fold starts from the previous summary and folds only the newly overflowing messages."""
    setup = draw_setup(data, counter, growing=True)
    conv: list[Message] = setup["conv"]
    kw = fit_kw(setup)
    spec, tools = kw["model"], kw["tools"]
    summarizer = Counting()
    previous: Summary | None = None
    last_window: FitResult | None = None
    folds = 0
    for i in range(1, len(conv) + 1):
        prefix = conv[:i]
        if not any(m.role != "system" for m in prefix):
            continue
        calls_before = len(summarizer.calls)
        try:
            result = fit(prefix, strategy="summarize", summarizer=summarizer, summary=previous, **kw)
        except ContextWindowError as exc:
            event("a window did not fit: " + ("the summary" if "summary" in str(exc) else "must-keep"))
            return
        lay = check_window(prefix, result, counter, spec, tools)
        new_calls = len(summarizer.calls) - calls_before
        if result.summary is None or not result.summary_is_new:
            assert new_calls == 0
            if result.summary is not None:
                assert result.summary == previous
        else:
            folds += 1
            assert new_calls == 1
            folded, prev_text, max_tokens = summarizer.calls[-1]
            # the summary grows from the previous one when that still starts the range
            from_previous = (
                previous is not None
                and previous.first == result.summary.first
                and (previous.last in {u[-1] for u in lay.droppable})
            )
            if from_previous:
                assert previous is not None
                assert prev_text == previous.text
                assert result.summary.last >= previous.last
                start = previous.last + 1
            else:
                assert prev_text is None
                start = result.summary.first
            kept = set(result.kept)
            assert folded == [prefix[j] for j in range(start, result.summary.last + 1) if j not in kept]
            if last_window is not None and last_window.summary is not None and from_previous:
                # a fold happens only when the previous summary no longer fits with the new messages
                reused = list(last_window.messages) + list(prefix[last_window.input_length :])
                assert counter.count_messages(reused, model=spec, tools=tools) > result.budget
            check_low_water(
                prefix,
                result,
                lay,
                counter=counter,
                spec=spec,
                tools=tools,
                allowance=max_tokens,
                low_water=setup["low_water"],
                folded_from=start,
            )
        if result.summary is not None:
            previous = result.summary
        last_window = result
    event(f"folds: {min(folds, 3)}{'+' if folds >= 3 else ''}")


# -- the store: sequences of turns ------------------------------------------------------------------

_FACTS = (
    "order 4471 ships Tuesday; Ada prefers email; the budget is 1200 EUR; open question: which "
    "warehouse? Paris office closes at 18:00; invoice INV-2024-88 was paid; Bob owns the migration"
)
WORDS = tuple(_FACTS.split())


def turn_script(seed: int, turns: int) -> list[list[Message]]:
    """Batches to append, each ending where a window is taken (after a user message or tool results).

    A leading system prompt, user and assistant turns of varied length, tool groups (a call, its
    results, the answer), a pinned user message and a mid-conversation system note.
    """
    import random

    rng = random.Random(seed)

    def words(lo: int, hi: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))

    batches: list[list[Message]] = [
        [Message.system("You are a careful support agent."), Message.user(words(5, 30))]
    ]
    call = 0
    for t in range(turns):
        batch: list[Message] = []
        if rng.random() < 0.2:
            ids = [f"call_{call + k}" for k in range(rng.randint(1, 2))]
            call += len(ids)
            batch.append(
                Message.assistant(
                    None, tool_calls=[ToolCall(i, "lookup_order", f'{{"id": {t}}}') for i in ids]
                )
            )
            batches.append(batch)  # a window with the calls' results pending is fine too
            batch = [Message.tool(words(3, 40), tool_call_id=i) for i in ids]
            batches.append(batch)
            batch = []
        batch.append(Message.assistant(words(5, 60)))
        if t == 3:
            batch.append(Message.user("Remember: my account id is ACC-77 (pinned)", pinned=True))
            batch.append(Message.assistant("Noted."))
        if t == 9:
            batch.append(Message.system("Note: the customer is on the premium plan."))
        batch.append(Message.user(words(3, 40)))
        batches.append(batch)
    return batches


STORE_KW: dict[str, Any] = {"model": SMALL, "reserve": 200, "low_water": 0.6}


class Mirror:
    """What the store's windows must equal: ``fit`` over the same messages with the previous summary."""

    def __init__(self, counter: TokenCounter, **kw: Any) -> None:
        self.counter = counter
        self.kw = {**STORE_KW, **kw}
        self.summarizer = Counting()
        self.previous: Summary | None = None
        self.messages: list[Message] = []

    def window(self) -> FitResult:
        result = fit(
            self.messages,
            counter=self.counter,
            strategy="summarize",
            summarizer=self.summarizer,
            summary=self.previous,
            **self.kw,
        )
        if result.summary is not None:
            self.previous = result.summary
        return result


def check_store_step(
    mirror: Mirror,
    result: FitResult,
    stored_messages: list[Message],
    rows: list[StoredSummary],
    rows_before: list[StoredSummary],
    calls: int,
    calls_before: int,
    previous: Summary | None,
) -> None:
    """One window of a stored conversation against the mirror and the rows written."""
    spec, counter = mirror.kw["model"], mirror.counter
    expected = mirror.window()
    assert result == expected
    assert stored_messages == mirror.messages, "the stored originals changed"
    lay = check_window(mirror.messages, result, counter, spec)
    assert calls == len(mirror.summarizer.calls)
    if result.summary_is_new:
        assert result.summary is not None
        assert calls == calls_before + 1
        s = result.summary
        tokens = counter.content_tokens([summary_message(s)])[0]
        assert rows == [
            *rows_before,
            StoredSummary(s.first + 1, s.last + 1, s.text, spec.name, counter.identity, tokens),
        ]
        start = previous.last + 1 if previous is not None and previous.first == s.first else s.first
        check_low_water(
            mirror.messages,
            result,
            lay,
            counter=counter,
            spec=spec,
            tools=None,
            allowance=max(64, result.budget // 8),
            low_water=mirror.kw["low_water"],
            folded_from=start,
        )
    else:
        assert calls == calls_before, "a summarizer call although the previous summary sufficed"
        assert rows == rows_before, "a summary row written for a reused summary"
        if result.summary is not None:
            assert rows
            assert (rows[-1].first_seq, rows[-1].last_seq) == (
                result.summary.first + 1,
                result.summary.last + 1,
            )


def run_turns_sync(
    store: Store, counter: TokenCounter, batches: list[list[Message]]
) -> tuple[str, Mirror, Counting]:
    cid = store.create_conversation(title="summarize").id
    mirror = Mirror(counter)
    summarizer = Counting()
    for batch in batches:
        store.extend(cid, batch)
        mirror.messages.extend(batch)
        rows_before = store.summaries(cid)
        calls_before = len(summarizer.calls)
        previous = mirror.previous
        result = store.window(cid, counter=counter, strategy="summarize", summarizer=summarizer, **STORE_KW)
        check_store_step(
            mirror,
            result,
            store.messages(cid),
            store.summaries(cid),
            rows_before,
            len(summarizer.calls),
            calls_before,
            previous,
        )
    return cid, mirror, summarizer


def test_store_turns_keep_originals_and_reuse_summaries(db_url: str) -> None:
    counter = EstimateCounter()
    batches = turn_script(seed=1, turns=45)
    with Store(db_url, counters=[counter], upgrade=True) as store:
        cid, mirror, summarizer = run_turns_sync(store, counter, batches)
        windows = len(batches)
        folds = len(summarizer.calls)
        # a long conversation costs one summarizer call per several turns, not one per turn
        assert 4 <= folds <= windows // 3, (folds, windows)
        rows = store.summaries(cid)
        assert len(rows) == folds
        assert all(r.first_seq == rows[0].first_seq for r in rows)
        assert [r.last_seq for r in rows] == sorted({r.last_seq for r in rows}), "each fold covers more"
        # each fold after the first started from the previous summary's text
        assert summarizer.calls[0][1] is None
        assert all(prev == rows[k].text for k, (_, prev, _) in enumerate(summarizer.calls[1:]))
    # a new Store over the same database reuses the stored summary: no call
    with Store(db_url, counters=[counter], upgrade=True) as again:
        fresh = Counting()
        result = again.window(cid, counter=counter, strategy="summarize", summarizer=fresh, **STORE_KW)
        assert fresh.calls == []
        assert result.summary == mirror.previous
        assert again.summaries(cid) == rows


def test_store_summarize_windows_read_only_what_follows_the_summary(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a summary is stored, a summarize window reads the keep rows and the rows after the
    summary, never the whole conversation (issue 11), and still equals ``fit`` over all of it."""
    import convkit.store._base as store_base

    full_reads: list[str] = []
    real = store_base.read_messages

    def spy(ns: str, cid: str, start: int | None, stop: int | None) -> Any:
        full_reads.append(cid)
        return real(ns, cid, start, stop)

    counter = EstimateCounter()
    batches = turn_script(seed=5, turns=40)
    with Store(db_url, counters=[counter], upgrade=True) as store:
        cid = store.create_conversation(title="partial").id
        mirror = Mirror(counter)
        summarizer = Counting()
        reads_with_summary = 0
        windows_with_summary = 0
        for batch in batches:
            store.extend(cid, batch)
            mirror.messages.extend(batch)
            had_summary = bool(store.summaries(cid))
            monkeypatch.setattr(store_base, "read_messages", spy)
            before = len(full_reads)
            result = store.window(
                cid, counter=counter, strategy="summarize", summarizer=summarizer, **STORE_KW
            )
            monkeypatch.setattr(store_base, "read_messages", real)
            expected = mirror.window()
            assert result.messages == expected.messages
            assert result.kept_spans == expected.kept_spans
            assert result.prompt_tokens == expected.prompt_tokens
            assert result.summary == expected.summary
            if had_summary:
                windows_with_summary += 1
                reads_with_summary += len(full_reads) - before
        assert windows_with_summary >= 20
        assert reads_with_summary == 0, "a summarize window read the whole conversation"


def test_store_window_with_an_unseen_counter_backfills_and_summarizes(tmp_path: Path) -> None:
    """A counter the store does not count with: the summarized window is still fit's answer."""
    counter = EstimateCounter(3.0)
    batches = turn_script(seed=2, turns=20)
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        _, _, summarizer = run_turns_sync(store, counter, batches)
        assert summarizer.calls


@pytest.mark.parametrize("summarizer_kind", ["async", "sync"])
def test_async_store_turns(db_url: str, summarizer_kind: str) -> None:
    counter = EstimateCounter()
    batches = turn_script(seed=3, turns=30)

    async def main() -> tuple[int, int]:
        store = AsyncStore(db_url, counters=[counter], upgrade=True)
        try:
            cid = (await store.create_conversation()).id
            mirror = Mirror(counter)
            summarizer: Any = AsyncCounting() if summarizer_kind == "async" else Counting()
            for batch in batches:
                await store.extend(cid, batch)
                mirror.messages.extend(batch)
                rows_before = await store.summaries(cid)
                calls_before = len(summarizer.calls)
                previous = mirror.previous
                result = await store.window(
                    cid, counter=counter, strategy="summarize", summarizer=summarizer, **STORE_KW
                )
                check_store_step(
                    mirror,
                    result,
                    await store.messages(cid),
                    await store.summaries(cid),
                    rows_before,
                    len(summarizer.calls),
                    calls_before,
                    previous,
                )
            return len(summarizer.calls), len(await store.summaries(cid))
        finally:
            await store.close()

    calls, rows = asyncio.run(main())
    assert calls == rows >= 3


# -- faults: typed errors, nothing written, fallback to trim -------------------------------------------


def overflowing(turns: int = 30, seed: int = 5) -> list[Message]:
    return [m for batch in turn_script(seed, turns) for m in batch]


def expect_fault(mode: str, call: Any) -> BaseException:
    """Run ``call``; the error a summarizer failing in ``mode`` must produce."""
    if mode == "overlong":
        with pytest.raises(ContextWindowError) as info:
            call()
        assert "summary" in str(info.value)
        assert info.value.required > info.value.available
        return info.value
    with pytest.raises(SummarizerError) as err:
        call()
    if mode in ("raises", "timeout"):
        assert isinstance(err.value.__cause__, RuntimeError | TimeoutError)
        assert "nothing was written" in str(err.value)
    else:
        assert "empty" in str(err.value)
    return err.value


@pytest.mark.parametrize("mode", FAULTS)
def test_fit_summarizer_faults(mode: str) -> None:
    conv = overflowing()
    original = list(conv)
    kw: dict[str, Any] = {"model": SMALL, "reserve": 200, "strategy": "summarize"}
    trimmed = fit(conv, model=SMALL, reserve=200)
    assert trimmed.dropped
    faulty = Faulty(mode)
    expect_fault(mode, lambda: fit(conv, summarizer=faulty, **kw))
    assert faulty.calls == 1
    # the caller asked for trim: the trimmed window, no placeholder text anywhere
    assert fit(conv, summarizer=Faulty(mode), fallback="trim", **kw) == trimmed
    assert conv == original


def test_fit_refuses_an_async_summarizer_whatever_the_fallback() -> None:
    conv = overflowing()
    for fallback in ("error", "trim"):
        with pytest.raises(ValidationError, match="synchronous summarizer"):
            fit(
                conv,
                model=SMALL,
                reserve=200,
                strategy="summarize",
                summarizer=AsyncCounting(),
                fallback=fallback,
            )  # type: ignore[arg-type]


def test_summarizer_error_is_never_a_placeholder() -> None:
    with pytest.raises(SummarizerError):
        Summary("   ", 0, 1)
    with pytest.raises(ValidationError):
        Summary("text", 3, 1)


def prepare_store_with_summary(store: Store, counter: TokenCounter) -> str:
    """A stored conversation with one summary already, and new messages that overflow it."""
    cid = store.create_conversation().id
    store.extend(cid, overflowing(turns=20))
    first = store.window(cid, counter=counter, strategy="summarize", summarizer=Counting(), **STORE_KW)
    assert first.summary_is_new
    # append until the stored summary no longer suffices
    for k in range(40):
        store.extend(
            cid, [Message.assistant(f"answer {k}: " + " ".join(WORDS)), Message.user(f"question {k}")]
        )
        probe = Counting()
        fit(
            store.messages(cid),
            counter=counter,
            strategy="summarize",
            summarizer=probe,
            summary=Summary(
                store.summaries(cid)[-1].text, first.summary.first, store.summaries(cid)[-1].last_seq - 1
            )
            if first.summary
            else None,
            **STORE_KW,
        )
        if probe.calls:
            return cid
    raise AssertionError("never overflowed")  # pragma: no cover


@pytest.mark.parametrize("mode", FAULTS)
def test_store_summarizer_faults_write_nothing(tmp_path: Path, mode: str) -> None:
    counter = EstimateCounter()
    with Store(f"sqlite:///{tmp_path / 'faults.db'}", counters=[counter]) as store:
        cid = prepare_store_with_summary(store, counter)
        messages, rows, usage = store.messages(cid), store.summaries(cid), store.usage(cid)
        kw = {"counter": counter, "strategy": "summarize", **STORE_KW}
        expect_fault(mode, lambda: store.window(cid, summarizer=Faulty(mode), **kw))
        assert (store.messages(cid), store.summaries(cid), store.usage(cid)) == (messages, rows, usage)
        # fallback="trim": the trimmed window, and still nothing written
        trimmed = store.window(cid, summarizer=Faulty(mode), fallback="trim", **kw)
        assert trimmed == fit(messages, model=SMALL, counter=counter, reserve=200)
        assert (store.messages(cid), store.summaries(cid)) == (messages, rows)
        # a working summarizer afterwards folds from the stored summary
        good = Counting()
        result = store.window(cid, summarizer=good, **kw)
        assert result.summary_is_new
        assert len(good.calls) == 1
        assert good.calls[0][1] == rows[-1].text
        assert len(store.summaries(cid)) == len(rows) + 1


@pytest.mark.parametrize("mode", ["raises", "empty", "overlong"])
def test_async_store_summarizer_faults_write_nothing(tmp_path: Path, mode: str) -> None:
    counter = EstimateCounter()
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    with Store(url, counters=[counter]) as sync_store:
        cid = prepare_store_with_summary(sync_store, counter)

    async def main() -> None:
        store = AsyncStore(url, counters=[counter])
        try:
            messages, rows = await store.messages(cid), await store.summaries(cid)
            kw = {"counter": counter, "strategy": "summarize", **STORE_KW}
            with pytest.raises(ContextWindowError if mode == "overlong" else SummarizerError):
                await store.window(cid, summarizer=AsyncFaulty(mode), **kw)
            assert (await store.messages(cid), await store.summaries(cid)) == (messages, rows)
            trimmed = await store.window(cid, summarizer=AsyncFaulty(mode), fallback="trim", **kw)
            assert trimmed == fit(messages, model=SMALL, counter=counter, reserve=200)
            assert await store.summaries(cid) == rows
        finally:
            await store.close()

    asyncio.run(main())


def test_sync_store_refuses_an_async_summarizer_and_writes_nothing(tmp_path: Path) -> None:
    counter = EstimateCounter()
    with Store(f"sqlite:///{tmp_path / 's.db'}", counters=[counter]) as store:
        cid = store.create_conversation().id
        store.extend(cid, overflowing())
        for fallback in ("error", "trim"):
            with pytest.raises(ValidationError, match="synchronous summarizer"):
                store.window(
                    cid,
                    counter=counter,
                    strategy="summarize",
                    summarizer=AsyncCounting(),
                    fallback=fallback,
                    **STORE_KW,
                )  # type: ignore[arg-type]
        assert store.summaries(cid) == []


# -- the xAI summarizer against the local stand-in ---------------------------------------------------

#: A small-window model for the summarizer's own requests (registered with the stand-in only).
TINY_SUMMARIZER = ModelSpec("summarizer-test-tiny", 2048, {"text"}, 1.0, None, 2.0)
#: Counts exactly as the summarizer's default counter does (``EstimateCounter()``, whose margin is 0):
#: the stand-in refuses any request the summarizer's own count did not fit into the window.
TIGHT = EstimateCounter()
#: The models the stand-in serves: the default ones, TINY_SUMMARIZER and SMALL.
STANDIN_MODELS = convkit_models.ModelRegistry(
    [*convkit_models.default_registry.specs(), TINY_SUMMARIZER, SMALL]
)

pytestmark = pytest.mark.standin(counter=TIGHT, registry=STANDIN_MODELS)  # the xai fixture (conftest.py)


def client_for(xai: XAIStandIn, **kw: Any) -> XAIClient:
    return XAIClient(api_key=xai.api_key, base_url=xai.base_url, max_retries=0, **kw)


def assert_requests_fit(xai: XAIStandIn) -> None:
    """Every chat request the stand-in received fit its model's window (it answers 400 otherwise)."""
    assert xai.errors == []
    for body in xai.chat_requests:
        spec = xai.registry.get(body["model"])
        msgs = [Message.from_openai(m) for m in body["messages"]]
        prompt = xai.counter.count_messages(msgs, model=spec, tools=body.get("tools"))
        assert prompt <= spec.context_window - (body.get("max_tokens") or 0)


def overlong_partials(summarizer: XAISummarizer | AsyncXAISummarizer, max_tokens: int) -> list[Reply]:
    """Partial summaries each over half a call's transcript budget (by the summarizer's own counter):
    no two share a call of the next round, so the rounds do not get shorter."""
    half = summarizer.input_budget(max_tokens) // 2
    text = "fact " * (half + 1)
    assert summarizer.counter.count_texts([text.strip()])[0] > half
    return [Reply(text=text) for _ in range(40)]


def long_range(n: int = 120) -> list[Message]:
    out = []
    for i in range(n):
        out.append(Message.user(f"question {i}: " + " ".join(WORDS[i % 7 :][:25])))
        out.append(Message.assistant(f"answer {i}: " + " ".join(WORDS[i % 5 :][:30])))
    return out


@pytest.mark.parametrize("previous", ["short", "long", None])
def test_xai_summarizer_is_hierarchical_and_every_request_fits(xai: XAIStandIn, previous: str | None) -> None:
    max_tokens = 300
    prev_text = {"short": "Earlier: Ada's order 4471.", "long": "Earlier facts. " * 600, None: None}[previous]
    replies = [f"partial summary {k}: " + "fact " * 290 for k in range(60)]  # ~300 tokens each
    xai.queue(*[Reply(text=t) for t in replies])
    with client_for(xai) as client:
        summarizer = XAISummarizer(client, model=TINY_SUMMARIZER)
        # the stand-in counts exactly as the summarizer (its default counter, margin 0)
        assert (summarizer.counter.identity, summarizer.counter.margin) == (TIGHT.identity, 0)
        if previous is not None:
            # the scenario: a short summary goes along, a long one leaves too little room for lines
            room = summarizer.input_budget(max_tokens, prev_text)
            assert (room >= MIN_INPUT) == (previous == "short"), room
        messages = long_range()
        text = summarizer.summarize(messages, previous=prev_text, max_tokens=max_tokens)
    requests = xai.chat_requests
    assert summarizer.calls == len(requests) >= 4
    assert text == replies[len(requests) - 1].strip()  # the summary of summaries
    assert_requests_fit(xai)
    assert all(r["model"] == TINY_SUMMARIZER.name and r["max_tokens"] == max_tokens for r in requests)
    assert summarizer.prompt_tokens == sum(
        TIGHT.count_messages([Message.from_openai(m) for m in r["messages"]], model=TINY_SUMMARIZER)
        for r in requests
    )
    # the first round saw every message once, in order; the previous summary went along first
    bodies = [r["messages"][-1]["content"] for r in requests]
    lines = convkit.xai._summarizer.render_transcript(messages)
    first_round = [b for b in bodies if "partial summary" not in b]
    joined = "\n".join(first_round)
    positions = [joined.find(line) for line in lines]
    assert all(p >= 0 for p in positions)
    assert positions == sorted(positions)
    if prev_text is not None:
        assert prev_text.strip()[:40] in first_round[0]
        assert not any(prev_text.strip()[:40] in b for b in first_round[1:])
    if previous == "long":  # too long to go along as "Previous summary": summarized as a line
        assert first_round[0].startswith("New messages:\n(previous summary) ")


def test_async_xai_summarizer_is_hierarchical(xai: XAIStandIn) -> None:
    replies = [f"partial {k}: " + "fact " * 140 for k in range(60)]
    xai.queue(*[Reply(text=t) for t in replies])

    async def main() -> tuple[str, int]:
        async with AsyncXAIClient(api_key=xai.api_key, base_url=xai.base_url, max_retries=0) as client:
            s = AsyncXAISummarizer(client, model=TINY_SUMMARIZER)
            return await s.summarize(long_range(), previous="Earlier: ACC-77.", max_tokens=300), s.calls

    text, calls = asyncio.run(main())
    assert calls == len(xai.chat_requests) >= 4
    assert text == replies[calls - 1].strip()
    assert_requests_fit(xai)


def test_xai_summarizer_counts_lines_as_joined(xai: XAIStandIn) -> None:
    """A line's first word costs more after a newline than after the tokenizer's leading space:
    chunks are sized by the count of each line as it is sent, so no later round overflows."""
    messages = [Message.user(f"question {i}: " + "fact " * 30) for i in range(3000)]
    xai.queue(*[Reply(text=f"Discussed fact {k}: " + "fact " * 12) for k in range(400)])
    with client_for(xai) as client:
        summarizer = XAISummarizer(client, model=TINY_SUMMARIZER)
        summarizer.summarize(messages, previous=None, max_tokens=300)
    assert summarizer.calls >= 10
    assert_requests_fit(xai)


def test_xai_summarizer_window_too_small_or_no_progress(xai: XAIStandIn) -> None:
    with client_for(xai) as client:
        summarizer = XAISummarizer(client, model=TINY_SUMMARIZER)
        with pytest.raises(SummarizerError, match="too small"):
            summarizer.summarize(long_range(3), previous=None, max_tokens=1800)
        assert xai.chat_requests == []
        # partial summaries as long as the input: summarizing again cannot converge
        xai.queue(*overlong_partials(summarizer, 700))
        with pytest.raises(SummarizerError, match="do not get shorter"):
            summarizer.summarize(long_range(), previous=None, max_tokens=700)
    assert_requests_fit(xai)


def test_xai_summarizer_empty_answer_and_timeout_write_nothing(xai: XAIStandIn, tmp_path: Path) -> None:
    counter = EstimateCounter()
    with Store(f"sqlite:///{tmp_path / 'x.db'}", counters=[counter]) as store:
        cid = store.create_conversation().id
        store.extend(cid, overflowing())
        messages = store.messages(cid)
        kw = {"counter": counter, "strategy": "summarize", **STORE_KW}
        # a slow reply outlasts 1 s; the others finish within it, even on a loaded machine
        with client_for(xai, timeout=1.0) as client:
            summarizer = XAISummarizer(client)  # grok-2-1212: one call a fold here
            # an empty answer
            xai.queue(Reply(text="   "))
            with pytest.raises(SummarizerError, match="empty"):
                store.window(cid, summarizer=summarizer, **kw)
            # slow: the stand-in holds the response past the client's timeout (no retries)
            release = threading.Event()
            xai.queue(Fault.slow(release))
            try:
                with pytest.raises(SummarizerError) as err:
                    store.window(cid, summarizer=summarizer, **kw)
                assert isinstance(err.value.__cause__, APITimeoutError)
                assert "APITimeoutError" in str(err.value)
                assert store.summaries(cid) == []
                assert store.messages(cid) == messages
                # ... and with fallback="trim", the trimmed window
                xai.queue(Fault.slow(release))
                result = store.window(cid, summarizer=summarizer, fallback="trim", **kw)
                assert result == fit(messages, model=SMALL, counter=counter, reserve=200)
            finally:
                release.set()
            assert store.summaries(cid) == []
            assert store.messages(cid) == messages
            # the stand-in answers again: the summary is stored with its exact range
            xai.queue(Reply(text="Ada's order 4471 ships Tuesday; account ACC-77."))
            result = store.window(cid, summarizer=summarizer, **kw)
            assert result.summary is not None
            assert result.summary_is_new
            (row,) = store.summaries(cid)
            assert (row.first_seq, row.last_seq) == (result.summary.first + 1, result.summary.last + 1)
            assert row.text == "Ada's order 4471 ships Tuesday; account ACC-77."


# -- Session(strategy="summarize") against the stand-in ----------------------------------------------


def test_session_summarize_with_its_own_client(tmp_path: Path) -> None:
    """The default summarizer is an XAISummarizer (grok-2-1212) over the session's client; every
    request fits; one chat request per turn plus one per summarizer call; summarizing is recorded."""
    turns = 14
    with XAIStandIn() as xai, Store(f"sqlite:///{tmp_path / 'session.db'}") as store:
        cid = store.create_conversation().id
        with client_for(xai) as client:
            session = Session(store, cid, model="grok-2-vision-1212", client=client, strategy="summarize")
            assert isinstance(session.summarizer, XAISummarizer)
            assert session.summarizer.spec.name == "grok-2-1212"
            prompt_tokens = 0
            for t in range(turns):
                reply = session.send(f"turn {t}: " + " ".join(WORDS) * 12)  # ~900 tokens each
                prompt_tokens += reply.usage.prompt_tokens
        calls = session.summarizer.calls
        assert calls >= 2
        assert len(xai.chat_requests) == turns + calls
        assert_requests_fit(xai)
        rows = store.summaries(cid)
        assert len(rows) == calls  # one call per fold here (short transcripts)
        assert [r.model for r in rows] == ["grok-2-vision-1212"] * calls
        assert all(r.first_seq == 1 for r in rows)
        messages = store.messages(cid)
        assert len(messages) == 2 * turns
        usage = store.usage(cid)
        assert usage.turns == turns + calls  # summarizing has rows of its own
        assert usage.prompt_tokens == prompt_tokens + session.summarizer.prompt_tokens


def test_session_summarizer_failure_keeps_the_user_message_and_falls_back(
    xai: XAIStandIn, tmp_path: Path
) -> None:
    with Store(f"sqlite:///{tmp_path / 'session.db'}") as store:
        cid = store.create_conversation().id
        store.extend(cid, overflowing())
        with client_for(xai) as client:
            failing = Session(
                store,
                cid,
                model=SMALL,
                client=client,
                strategy="summarize",
                reserve=200,
                summarizer=Faulty("raises"),
            )
            with pytest.raises(SummarizerError):
                failing.send("one more question")
            assert store.messages(cid)[-1] == Message.user("one more question")
            assert store.summaries(cid) == []
            assert xai.chat_requests == []
            fallback = Session(
                store,
                cid,
                model=SMALL,
                client=client,
                strategy="summarize",
                reserve=200,
                summarizer=Faulty("raises"),
                fallback="trim",
            )
            fallback.send("one more question")  # the retry sends the stored message, once
        messages = store.messages(cid)
        assert [m.role for m in messages[-2:]] == ["user", "assistant"]
        assert sum(m == Message.user("one more question") for m in messages) == 1
        assert store.summaries(cid) == []
        assert len(xai.chat_requests) == 1
        assert_requests_fit(xai)


def test_async_session_summarize(tmp_path: Path) -> None:
    turns = 8

    async def main(xai: XAIStandIn) -> tuple[int, int]:
        store = AsyncStore(f"sqlite:///{tmp_path / 'asession.db'}")
        try:
            cid = (await store.create_conversation()).id
            async with AsyncXAIClient(api_key=xai.api_key, base_url=xai.base_url, max_retries=0) as client:
                session = AsyncSession(
                    store, cid, model="grok-2-vision-1212", client=client, strategy="summarize"
                )
                assert isinstance(session.summarizer, AsyncXAISummarizer)
                for t in range(turns):
                    await session.send(f"turn {t}: " + " ".join(WORDS) * 12)
                return session.summarizer.calls, len(await store.summaries(cid))
        finally:
            await store.close()

    with XAIStandIn() as xai:
        calls, rows = asyncio.run(main(xai))
        assert calls >= 1
        assert rows == calls
        assert len(xai.chat_requests) == turns + calls
        assert_requests_fit(xai)


def test_store_folds_from_the_newest_summary_after_a_late_tool_result(tmp_path: Path) -> None:
    """A tool result arriving after its call was summarized joins the call's unit to the newest
    turn: the next summary covers less than the one before. Later windows must start from that
    newest summary (the one the last window used), as ``fit`` with it does."""
    # the sizes below make the scenario at a flat 2.5 bytes a token; the character-class default
    # prices runs like "www..." at 0.8 tokens a letter, twice that, and the must-keep part with
    # its summary would no longer fit SMALL
    counter = EstimateCounter(2.5)
    opening = [Message.system("You are a careful support agent.")]
    for t in range(12):
        opening.append(Message.user(f"question {t}: " + "w" * 100))
        if t == 6:
            args = '{"query": "' + "q" * 500 + '"}'
            opening.append(Message.assistant(None, tool_calls=[ToolCall("call_late", "search", args)]))
        else:
            opening.append(Message.assistant(f"answer {t}: " + "v" * 100))
    batches = [opening, [Message.tool("found 3 rows", tool_call_id="call_late")]]
    batches += [
        [Message.assistant(f"ok {k}: " + " ".join(WORDS[:8])), Message.user(f"next {k}")] for k in range(6)
    ]
    with Store(f"sqlite:///{tmp_path / 'late.db'}", counters=[counter]) as store:
        cid = store.create_conversation().id
        mirror = Mirror(counter)
        summarizer = Counting()
        lasts = []
        for batch in batches:
            store.extend(cid, batch)
            mirror.messages.extend(batch)
            rows_before, calls_before, previous = store.summaries(cid), len(summarizer.calls), mirror.previous
            result = store.window(
                cid, counter=counter, strategy="summarize", summarizer=summarizer, **STORE_KW
            )
            check_store_step(
                mirror,
                result,
                store.messages(cid),
                store.summaries(cid),
                rows_before,
                len(summarizer.calls),
                calls_before,
                previous,
            )
            lasts.append(result.summary.last if result.summary else None)
        assert lasts[0] is not None
        assert lasts[1] is not None
        assert lasts[1] < lasts[0], "the scenario: the second summary covers less than the first"


# -- arguments and small pieces -----------------------------------------------------------------------


def test_summarize_arguments_are_checked(tmp_path: Path) -> None:
    conv = overflowing()
    kw: dict[str, Any] = {"model": SMALL, "reserve": 200, "strategy": "summarize"}
    with pytest.raises(ValidationError, match="low_water"):
        fit(conv, summarizer=Counting(), low_water=0, **kw)
    with pytest.raises(ValidationError, match="low_water"):
        fit(conv, summarizer=Counting(), low_water=1.5, **kw)
    with pytest.raises(ValidationError, match="summary_tokens"):
        fit(conv, summarizer=Counting(), summary_tokens=0, **kw)
    with pytest.raises(ValidationError, match="fallback"):
        fit(conv, summarizer=Counting(), fallback="placeholder", **kw)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="summarizer"):
        fit(conv, **kw)
    # a previous summary alone is enough while it suffices; a new fold then needs a summarizer
    first = fit(conv, summarizer=Counting(), **kw)
    assert first.summary is not None
    again = fit(conv, summary=first.summary, **kw)
    assert again.messages == first.messages
    assert not again.summary_is_new
    grown = [*conv, *overflowing(turns=10, seed=9)[1:]]
    with pytest.raises(ValidationError, match="no summarizer"):
        fit(grown, summary=first.summary, **kw)
    with Store(f"sqlite:///{tmp_path / 'args.db'}") as store:
        cid = store.create_conversation().id
        store.extend(cid, conv)
        with pytest.raises(ValidationError, match="needs summarizer"):
            store.window(cid, model=SMALL, strategy="summarize")
        with pytest.raises(ValidationError, match="fallback"):
            store.window(cid, model=SMALL, strategy="summarize", summarizer=Counting(), fallback="x")  # type: ignore[arg-type]
        assert store.summaries(cid) == []

    async def main() -> None:
        store = AsyncStore(f"sqlite:///{tmp_path / 'args.db'}")
        try:
            with pytest.raises(ValidationError, match="needs summarizer"):
                await store.window(cid, model=SMALL, strategy="summarize")
            with pytest.raises(ValidationError, match="fallback"):
                await store.window(
                    cid, model=SMALL, strategy="summarize", summarizer=Counting(), fallback="x"
                )  # type: ignore[arg-type]
        finally:
            await store.close()

    asyncio.run(main())


def test_extractive_summarizer_is_deterministic_bounded_and_never_empty() -> None:
    s = ExtractiveSummarizer()
    msgs = [
        Message.user([convkit.TextPart("What is in this picture? It is blue."), png_part()]),
        Message.assistant(None, tool_calls=[ToolCall("c1", "lookup_order", '{"id": 4471}')]),
        Message.tool("shipped on Tuesday", tool_call_id="c1"),
        Message.assistant("Order 4471 shipped on Tuesday. Anything else?"),
    ]
    out = s.summarize(msgs, previous="Earlier: Ada asked about order 4471.", max_tokens=200)
    assert out == s.summarize(msgs, previous="Earlier: Ada asked about order 4471.", max_tokens=200)
    assert out.splitlines() == [
        "Earlier: Ada asked about order 4471.",
        "- user: [1 image(s)] What is in this picture? It is blue.",
        '- assistant: called lookup_order({"id": 4471})',
        "- tool: shipped on Tuesday",
        "- assistant: Order 4471 shipped on Tuesday",
    ]
    # bounded by its counter: the oldest lines go first, and the newest whole lines stay
    short = s.summarize(msgs * 20, previous="old", max_tokens=30)
    assert s.counter.count_texts([short])[0] <= 30
    assert short.splitlines()[-1] == "- assistant: Order 4471 shipped on Tuesday"
    everything = s.summarize(msgs * 20, previous="old", max_tokens=10**6).splitlines()
    kept = short.splitlines()
    assert everything[-len(kept) :] == kept
    longer = "\n".join(everything[-len(kept) - 1 :])
    assert s.counter.count_texts([longer])[0] > 30  # maximal: one more line would not fit
    # digits cost a token each: a bound in bytes would let this through at twice the tokens
    digits = s.summarize([Message.user("4471" * 50)], previous=None, max_tokens=40)
    assert s.counter.count_texts([digits])[0] <= 40
    with pytest.raises(SummarizerError, match="nothing to summarize"):
        s.summarize([], previous=None, max_tokens=100)
    # the xAI summarizer's transcript marks images and tool calls the same way
    lines = convkit.xai._summarizer.render_transcript(msgs)
    assert lines[0].startswith("user: [1 image(s)] What is in this picture?")
    assert lines[1] == 'assistant: [calls lookup_order({"id": 4471})]'
    assert lines[2] == "tool result for c1: shipped on Tuesday"


def png_part() -> convkit.ImagePart:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 0, 255)).save(buf, format="PNG")
    return convkit.ImagePart.from_bytes(buf.getvalue())


def test_async_xai_summarizer_no_progress(xai: XAIStandIn) -> None:
    async def main() -> None:
        async with AsyncXAIClient(api_key=xai.api_key, base_url=xai.base_url, max_retries=0) as client:
            s = AsyncXAISummarizer(client, model=TINY_SUMMARIZER)
            xai.queue(*overlong_partials(s, 700))
            with pytest.raises(SummarizerError, match="do not get shorter"):
                await s.summarize(long_range(), previous=None, max_tokens=700)

    asyncio.run(main())
    assert_requests_fit(xai)
