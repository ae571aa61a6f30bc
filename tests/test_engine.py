"""The window engine's parts: units, the cut, spans, and a plain list's cached index.

The list path of ``fit`` keeps each list's index by the identity of its
messages; these tests pin that it answers exactly as a fresh index would,
for the same list, a grown list, a list changed in the middle, a list of
dicts (never cached), and from many threads at once.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import convkit
from convkit import EstimateCounter, History, InvalidConversationError, Message, ToolCall, fit
from convkit._engine import listcache
from convkit._engine.cut import check_must_keep, find_cut
from convkit._engine.spans import kept_spans
from convkit._engine.units import Units, must_keep_units, unit_lists, unit_starts
from convkit.testing.strategies import budgets, conversations

COUNTER = EstimateCounter()


def _tool_turn(i: int) -> list[Message]:
    call = ToolCall(f"c{i}", "lookup", "{}")
    return [
        Message.user(f"question {i}"),
        Message.assistant(None, tool_calls=[call]),
        Message.user("an aside between the call and its result"),
        Message.tool(f"result {i}", tool_call_id=call.id),
        Message.assistant(f"answer {i}"),
    ]


def test_units_fold_a_call_with_its_results_and_everything_between() -> None:
    msgs = [Message.system("rules"), Message.user("hi", pinned=True), *_tool_turn(0)]
    units = unit_starts(msgs)
    assert unit_lists(units, len(msgs)) == [[0], [1], [2], [3, 4, 5], [6]]
    assert units.pinned == [0, 1]
    assert must_keep_units(msgs, units) == [True, True, False, False, True]
    # a pinned aside inside a tool group pins the whole group
    inside = [*msgs[:4], Message.user("keep me", pinned=True), *msgs[5:]]
    assert must_keep_units(inside, unit_starts(inside))[3]


def test_orphaned_results_are_units_of_their_own_unless_strict() -> None:
    msgs = [Message.user("hi"), Message.tool("lost", tool_call_id="nope"), Message.user("again")]
    assert unit_lists(unit_starts(msgs), 3) == [[0], [1], [2]]
    with pytest.raises(InvalidConversationError, match=r"message 1 is a tool result for call id 'nope'"):
        unit_starts(msgs, strict=True)


def test_incremental_units_equal_the_whole_list_ones() -> None:
    msgs = [m for i in range(4) for m in _tool_turn(i)]
    inc = Units()
    owners: dict[str, int] = {}
    for i, m in enumerate(msgs):
        inc.add(i, owner=owners.get(m.tool_call_id or "") if m.role == "tool" else None, pin=False)
        for c in m.tool_calls:
            owners[c.id] = i
    assert inc == unit_starts(msgs)


@given(costs=st.lists(st.integers(0, 50), max_size=30), room=st.integers(0, 2000))
def test_the_cut_keeps_the_most_units_that_fit(costs: list[int], room: int) -> None:
    prefix = [0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    tail = len(costs)
    cut = find_cut(prefix.__getitem__, tail, room)
    assert cut == min(u for u in range(tail + 1) if prefix[tail] - prefix[u] <= room)


def test_must_keep_error_says_the_numbers() -> None:
    spec = convkit.get_model("grok-2-vision-1212")
    assert check_must_keep(spec, 100, 150, 0) == 50
    with pytest.raises(convkit.ContextWindowError) as err:
        check_must_keep(spec, 200, 150, 1024)
    assert (err.value.required, err.value.available) == (200, 150)


def test_spans_merge_when_they_touch() -> None:
    assert kept_spans([(0, 2), (2, 3), (5, 6)], 6, 9) == ((0, 3), (5, 9))
    assert kept_spans([], 4, 9) == ((4, 9),)


# -- the list path -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    listcache.clear()


def fresh(msgs: list[Message], **kw: Any) -> convkit.FitResult:
    """What fit gives over a new index (the History path)."""
    return fit(History(msgs, counter=kw.get("counter", COUNTER)), **kw)


@given(
    conv=conversations(min_size=1, max_size=40),
    extra=conversations(min_size=1, max_size=10, tool_groups=False),
    budget=budgets(min_value=0, max_value=4000),
)
def test_list_path_equals_a_fresh_index_as_the_list_grows(
    conv: list[Message], extra: list[Message], budget: int
) -> None:
    listcache.clear()
    spec = convkit.get_model("grok-2-vision-1212")
    reserve = max(0, spec.context_window - budget)
    kw: dict[str, Any] = {"model": spec, "counter": COUNTER, "reserve": reserve}
    grown = [*conv, *extra]
    for msgs in (conv, conv, grown, list(grown), conv):
        try:
            want = fresh(msgs, **kw)
        except convkit.ConvkitError as exc:
            with pytest.raises(type(exc)):
                fit(msgs, **kw)
            continue
        assert fit(msgs, **kw) == want


def test_a_list_changed_in_the_middle_is_indexed_afresh() -> None:
    msgs = [Message.system("rules"), *[m for i in range(30) for m in _tool_turn(i)]]
    kw: dict[str, Any] = {"model": "grok-2-vision-1212", "counter": COUNTER, "reserve": 8192 - 400}
    first = fit(msgs, **kw)
    msgs[-3] = Message.user("a much longer replacement " * 30)
    assert fit(msgs, **kw) == fresh(msgs, **kw) != first


def test_errors_on_a_grown_list_name_the_message_and_change_nothing() -> None:
    msgs = [m for i in range(3) for m in _tool_turn(i)]
    kw: dict[str, Any] = {"model": "grok-2-1212", "counter": COUNTER}
    before = fit(msgs, **kw)
    bad = [*msgs, Message.tool("late", tool_call_id="unknown")]
    with pytest.raises(InvalidConversationError, match=r"^message 15 is a tool result"):
        fit(bad, **kw)
    png = convkit.ImagePart.from_url("https://example.com/a.png")
    with pytest.raises(convkit.UnsupportedInputError, match=r"^message 15 has an image"):
        fit([*msgs, Message.user(["look", png])], **kw)
    assert fit(msgs, **kw) == before


def test_dicts_are_converted_every_time_never_cached() -> None:
    rows: list[Any] = [{"role": "user", "content": "x " * 50}, {"role": "assistant", "content": "ok"}]
    kw: dict[str, Any] = {"model": "grok-2-1212", "counter": COUNTER}
    first = fit(rows, **kw)
    rows[0]["content"] = "y"  # the same dict object, changed in place
    assert fit(rows, **kw).prompt_tokens < first.prompt_tokens


def test_threads_share_the_cache_safely() -> None:
    base = [Message.system("rules"), *[m for i in range(200) for m in _tool_turn(i)]]
    kw: dict[str, Any] = {"model": "grok-2-vision-1212", "counter": COUNTER, "reserve": 1024}
    lists = [base[: 400 + 5 * k] for k in range(8)]
    want = [fresh(m, **kw) for m in lists]
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for r in range(20):
                j = (k + r) % len(lists)
                assert fit(lists[j], **kw) == want[j]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_each_text_only_model_gets_its_own_note_for_a_dropped_image() -> None:
    png = convkit.ImagePart.from_url("https://example.com/a.png")
    msgs = [Message.system("describe images"), Message.user(["what is this?", png])]
    for model in ("grok-beta", "grok-2-1212", "grok-beta"):
        result = fit(msgs, model=model, counter=COUNTER, images="drop")
        assert f"[image omitted: {model} does not accept images]" in result.messages[-1].text
        assert result == fresh(msgs, model=model, counter=COUNTER, images="drop")


def test_a_store_window_prices_a_model_the_registry_does_not_know(tmp_path: Any) -> None:
    """The window carries the spec it was fitted against, as fit's result does."""
    spec = convkit.ModelSpec("my-unregistered-grok", 4000, {"text"}, 3.0, None, 9.0)
    msgs = [Message.system("rules"), *[m for i in range(20) for m in _tool_turn(i)]]
    with convkit.Store(f"sqlite:///{tmp_path / 'w.db'}") as store:
        conv = store.create_conversation()
        store.extend(conv.id, msgs)
        window = store.window(conv.id, model=spec, reserve=500)
    assert window == fit(msgs, model=spec, reserve=500)
    with pytest.raises(convkit.UnknownModelError):
        convkit.get_model(spec.name)
    assert window.estimate_cost(100) == pytest.approx(spec.estimate_cost(window.prompt_tokens, 100))


def test_new_messages_are_counted_by_the_callers_counter() -> None:
    class Recording(EstimateCounter):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[str] = []

        def _encode(self, texts: list[str]) -> list[int]:
            self.seen.extend(texts)
            return super()._encode(texts)

    first, second = Recording(), Recording()
    assert first.identity == second.identity
    msgs = [Message.user("hello there"), Message.assistant("hi")]
    fit(msgs, model="grok-2-1212", counter=first)
    grown = [*msgs, Message.user("a brand new question")]
    assert fit(grown, model="grok-2-1212", counter=second) == fresh(grown, model="grok-2-1212")
    assert "a brand new question" in second.seen
    assert "a brand new question" not in first.seen


def test_building_one_lists_index_does_not_hold_up_another_list() -> None:
    entered, release = threading.Event(), threading.Event()

    class Slow(EstimateCounter):
        @property
        def identity(self) -> str:
            return "slow-test-counter"

        def content_tokens(self, messages: Any) -> list[int]:
            entered.set()
            assert release.wait(10)
            return super().content_tokens(messages)

    slow_list = [Message.user("waits for its count")]
    worker = threading.Thread(
        target=fit, args=(slow_list,), kwargs={"model": "grok-2-1212", "counter": Slow()}
    )
    worker.start()
    try:
        assert entered.wait(10)
        other = [Message.user("another conversation entirely")]
        assert fit(other, model="grok-2-1212", counter=COUNTER) == fresh(other, model="grok-2-1212")
    finally:
        release.set()
        worker.join(10)
    assert not worker.is_alive()


def test_a_grown_list_whose_late_result_folds_cached_units() -> None:
    call = ToolCall("late", "lookup", "{}")
    msgs = [
        Message.system("rules"),
        Message.user("look it up"),
        Message.assistant(None, tool_calls=[call]),
        *[Message.user(f"meanwhile {i} " * 5) for i in range(30)],
    ]
    kw: dict[str, Any] = {"model": "grok-2-vision-1212", "counter": COUNTER, "reserve": 8192 - 1000}
    assert fit(msgs, **kw) == fresh(msgs, **kw)  # cached: the call is a unit of its own, so far
    grown = [*msgs, Message.tool("found it", tool_call_id="late"), Message.user("and?")]
    result = fit(grown, **kw)
    assert result == fresh(grown, **kw)
    # the late result folded the call and everything after it into one unit: all of it or none
    assert set(range(2, len(grown) - 1)) <= set(result.kept) or not set(range(2, len(grown) - 1)) & set(
        result.kept
    )


def test_lists_made_afresh_by_the_store_are_not_cached(tmp_path: Any) -> None:
    png = convkit.ImagePart.from_url("https://example.com/a.png")
    with convkit.Store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        conv = store.create_conversation()
        store.extend(conv.id, [Message.user(["look", png]), Message.assistant("a cat")])
        store.window(conv.id, model="grok-2-1212", images="drop")  # text-only: the whole conversation is read
    assert not listcache._entries


# -- WindowSettings: one value from layer to layer ------------------------------------------------


def test_window_settings_carry_every_argument_through_fit_and_the_store(tmp_path: Any) -> None:
    msgs = [Message.system("rules"), *(m for i in range(30) for m in _tool_turn(i))]
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    kw: dict[str, Any] = {"model": "grok-2-vision-1212", "counter": COUNTER, "reserve": 7000, "tools": tools}
    ws = convkit.WindowSettings.of(kw.pop("model"), **kw)
    assert ws.reserve == 7000
    assert ws.budget == 8192 - 7000
    by_args = fit(msgs, model="grok-2-vision-1212", **kw)
    assert by_args.dropped, "the example must trim"
    assert fit(msgs, settings=ws) == by_args
    with convkit.Store(f"sqlite:///{tmp_path / 'w.db'}") as store:
        cid = store.create_conversation().id
        store.extend(cid, msgs)
        assert store.window(cid, settings=ws) == by_args
        assert store.window(cid, model="grok-2-vision-1212", **kw) == by_args
        with pytest.raises(convkit.ValidationError, match="leave out model, reserve"):
            store.window(cid, settings=ws, model="grok-2", reserve=5)
    with pytest.raises(convkit.ValidationError, match="leave out images"):
        fit(msgs, settings=ws, images="drop")
    with pytest.raises(convkit.ValidationError, match="needs model="):
        fit(msgs)
    with pytest.raises(convkit.ValidationError, match=r"takes a convkit\.WindowSettings"):
        fit(msgs, settings={"model": "grok-2"})  # type: ignore[arg-type]
    wider = ws.with_margin(0.5)
    assert (wider.margin, wider.budget) == (0.5, int((8192 - 7000) / 1.5))
    assert fit(msgs, settings=wider) == fit(msgs, model="grok-2-vision-1212", margin=0.5, **kw)


def test_the_default_reserve_is_one_rule_everywhere(tmp_path: Any) -> None:
    """``convkit.DEFAULT_RESERVE`` (or a quarter of a small window) when no reserve is given."""
    from convkit._engine.settings import default_reserve

    small = convkit.ModelSpec("tiny-window", 2000, {"text"})
    msgs = [Message.user("hello")]
    assert fit(msgs, model="grok-2").reserve == convkit.DEFAULT_RESERVE == 1024
    assert fit(msgs, model=small).reserve == default_reserve(small) == 500
    assert convkit.WindowSettings.of("grok-2").reserve == 1024
    with convkit.Store(f"sqlite:///{tmp_path / 'r.db'}") as store:
        cid = store.create_conversation().id
        store.extend(cid, msgs)
        assert store.window(cid, model="grok-2").reserve == 1024
        assert store.window(cid, model=small).reserve == 500
        session = convkit.Session(store, cid, model=small, client=object())  # type: ignore[arg-type]
        assert session.reserve == session.settings.reserve == 500
