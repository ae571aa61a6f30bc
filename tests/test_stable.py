"""The cache-stable cut policy (issue 12): ``fit(..., policy="stable", start=...)``.

A growing conversation is fitted turn by turn, each window given the previous
window's start. Every window holds invariants 1-5 and 8 (it fits, in order,
pinned and leading system messages kept, the newest turn kept, tool groups
whole, the same errors as ``fit``); between cuts the start does not move and
each request's messages begin with the previous request's; at a cut the
window is the maximal window of the low-water budget, and the start only moves
forward. A first window (no start) is idempotent and a larger budget keeps a
superset (invariant 7).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import convkit
from convkit import ContextWindowError, EstimateCounter, InvalidConversationError, Message, fit
from convkit._engine.units import must_keep_units, unit_lists, unit_starts
from convkit.testing.strategies import conversations

SPEC = convkit.ModelSpec("stable-test", 1200, {"text", "image"}, 1.0, 1.0, 1.0, message_overhead=3)
COUNTER = EstimateCounter(margin=0)


def _check_shape(conv: list[Message], result: convkit.FitResult) -> None:
    """Invariants 1-5: fits, in order, must-keep units kept, units whole, a start at a unit."""
    assert result.prompt_tokens == COUNTER.count_messages(result.messages, model=SPEC)
    assert result.prompt_tokens <= result.budget
    kept = result.kept
    assert kept == sorted(set(kept))
    assert [conv[i] for i in kept] == list(result.messages)
    units = unit_starts(conv)
    lists = unit_lists(units, len(conv))
    keep = must_keep_units(conv, units)
    kept_set = set(kept)
    for u, members in enumerate(lists):
        inside = [i in kept_set for i in members]
        assert all(inside) or not any(inside), "a unit was split"
        if keep[u]:
            assert all(inside), "a must-keep unit was dropped"
    assert result.start in units.starts or result.start == len(conv)
    assert all(i in kept_set for i in range(result.start, len(conv)))


def _low_water_window(conv: list[Message], budget: int, low_water: float) -> Any:
    """The maximal window of the low-water budget (``None`` when the must-keep part exceeds it)."""
    low = math.floor(low_water * budget)
    try:
        return fit(conv, model=SPEC, counter=COUNTER, reserve=SPEC.context_window - low, margin=0)
    except ContextWindowError:
        return None


@given(
    conv=conversations(min_size=2, max_size=40),
    reserve=st.integers(0, 1100),
    low_water=st.sampled_from([0.3, 0.5, 0.6, 0.9, 1.0]),
)
def test_stable_windows_keep_their_start_until_a_cut(
    conv: list[Message], reserve: int, low_water: float
) -> None:
    kw: dict[str, Any] = {"model": SPEC, "counter": COUNTER, "reserve": reserve, "margin": 0}
    previous: convkit.FitResult | None = None
    cuts = 0
    for i in range(1, len(conv) + 1):
        prefix = conv[:i]
        try:
            maximal = fit(prefix, **kw)
        except (ContextWindowError, InvalidConversationError) as exc:
            refused: Exception | None = exc
        else:
            refused = None
        if refused is not None:
            with pytest.raises(type(refused)) as again:
                fit(prefix, policy="stable", low_water=low_water, start=previous and previous.start, **kw)
            if isinstance(refused, ContextWindowError):
                assert isinstance(again.value, ContextWindowError)
                assert (again.value.required, again.value.available) == (refused.required, refused.available)
            previous = None
            continue
        start = previous.start if previous is not None else None
        result = fit(prefix, policy="stable", low_water=low_water, start=start, **kw)
        _check_shape(prefix, result)
        assert set(result.kept) <= set(maximal.kept) | set(range(result.start)), "kept more than fits"
        held = None
        if previous is not None and previous.start < i:  # where the previous start's unit begins now
            units = unit_starts(prefix)
            held = units.starts[units.unit_of(previous.start)]
            # a window's start is where its last kept run begins: pinned units just before the
            # held unit join that run
            while held > 0 and held - 1 in result.kept and units.is_pinned(units.unit_of(held - 1)):
                held = units.starts[units.unit_of(held - 1)]
        if previous is not None and result.start == previous.start:
            # between cuts: the request begins with the previous request's messages
            assert list(result.messages[: len(previous.messages)]) == list(previous.messages)
        elif held is not None and result.start == held:
            event("a late tool result joined the start's unit to older messages")
        elif result.dropped:
            cuts += 1
            if previous is not None:
                assert result.start > previous.start, "the start moved back"
            low = _low_water_window(prefix, result.budget, low_water)
            if low is not None:
                assert result.kept == low.kept, "a cut is not the maximal low-water window"
        else:
            assert result.kept == list(range(i)), "a conversation that fits is kept whole"
        previous = result
    event(f"cuts: {min(cuts, 3)}{'+' if cuts >= 3 else ''}")


@given(conv=conversations(min_size=2, max_size=30), reserve=st.integers(0, 1100))
def test_a_first_stable_window_is_idempotent_and_monotone(conv: list[Message], reserve: int) -> None:
    kw: dict[str, Any] = {"model": SPEC, "counter": COUNTER, "margin": 0, "policy": "stable"}
    try:
        result = fit(conv, reserve=reserve, **kw)
    except (ContextWindowError, InvalidConversationError):
        return
    _check_shape(conv, result)
    again = fit(list(result.messages), reserve=reserve, **kw)
    assert again.messages == result.messages
    if reserve >= 100:
        wider = fit(conv, reserve=reserve - 100, **kw)
        assert set(result.kept) <= set(wider.kept)


def test_stable_needs_its_arguments_right() -> None:
    msgs = [Message.user("hi")]
    for bad in ({"start": 0}, {"start": -1, "policy": "stable"}, {"start": True, "policy": "stable"}):
        with pytest.raises(convkit.ValidationError, match="start="):
            fit(msgs, model="grok-2", **bad)
    with pytest.raises(convkit.ValidationError, match="policy"):
        fit(msgs, model="grok-2", policy="sticky")  # type: ignore[arg-type]
    # a start past the end (the conversation was truncated) starts afresh
    assert fit(msgs, model="grok-2", policy="stable", start=5).kept == [0]


def test_store_stable_windows_equal_fit_and_remember_their_start(open_store: Any) -> None:
    """``Store.window(policy="stable")`` equals ``fit(..., policy="stable", start=previous.start)``
    turn by turn, with the start the store remembers per conversation (three conversations
    interleaved: a review found one conversation reading another's start), and another store
    on the database keeps it."""
    import random

    rng = random.Random(3)
    store = open_store()
    convs = [store.create_conversation().id for _ in range(3)]
    msgs: dict[str, list[Message]] = {cid: [Message.system("be brief")] for cid in convs}
    previous: dict[str, convkit.FitResult | None] = dict.fromkeys(convs)
    starts: set[tuple[str, int]] = set()
    kw: dict[str, Any] = {"model": SPEC, "counter": COUNTER, "margin": 0, "reserve": 200, "policy": "stable"}
    for cid in convs:
        store.extend(cid, msgs[cid])
    for turn in range(40):
        for k, cid in enumerate(convs):
            batch = [Message.user(f"q{turn} " + "word " * rng.randint(5, 60 + 20 * k))]
            if turn % 7 == 3:
                call = convkit.ToolCall(f"c{turn}", "look", "{}")
                batch += [
                    Message.assistant(None, tool_calls=[call]),
                    Message.tool("found " * 20, tool_call_id=call.id),
                ]
            if turn == 10:
                batch.append(Message.user("remember this", pinned=True))
            store.extend(cid, batch)
            msgs[cid] += batch
            prev = previous[cid]
            want = fit(msgs[cid], start=prev.start if prev is not None else None, **kw)
            got = store.window(cid, **kw)
            assert got == want, f"turn {turn}, conversation {k}"
            starts.add((cid, got.start))
            reply = [Message.assistant(f"a{turn} " + "word " * rng.randint(5, 40))]
            store.extend(cid, reply)
            msgs[cid] += reply
            previous[cid] = got
    assert len(starts) >= 9, "each conversation should have been cut a few times"
    other = open_store()
    for cid in convs:
        prev = previous[cid]
        assert prev is not None
        assert other.window(cid, **kw).start == fit(msgs[cid], start=prev.start, **kw).start


def test_store_stable_windows_over_dropped_images_keep_their_start(open_store: Any) -> None:
    """A text-only model over a conversation with images (the store reads newest first): the
    stable policy still keeps its stored start, as ``fit`` does (found in review)."""
    import random

    from convkit import ImagePart

    from . import _store_support as sup

    rng = random.Random(9)
    text_only = convkit.ModelSpec("stable-text", 1500, {"text"}, message_overhead=3)
    png = ImagePart.from_bytes(sup.image("PNG", (32, 32)))
    store = open_store(window_cache=0)
    cid = store.create_conversation().id
    msgs: list[Message] = [Message.system("describe"), Message.user(["look", png])]
    store.extend(cid, msgs)
    kw: dict[str, Any] = {"model": text_only, "counter": COUNTER, "margin": 0, "reserve": 100}
    previous: convkit.FitResult | None = None
    starts = set()
    for turn in range(40):
        batch = [
            Message.user([f"q{turn} " + "word " * rng.randint(5, 50), png] if turn % 5 == 0 else f"q{turn}")
        ]
        batch.append(Message.assistant(f"a{turn} " + "word " * rng.randint(5, 40)))
        store.extend(cid, batch)
        msgs += batch
        want = fit(msgs, images="drop", policy="stable", start=previous.start if previous else None, **kw)
        got = store.window(cid, images="drop", policy="stable", **kw)
        assert got == want, f"turn {turn}"
        starts.add(got.start)
        previous = got
    assert len(starts) >= 2, "the conversation should have been cut"
