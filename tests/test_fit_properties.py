"""Property tests of ``convkit.fit`` (strategy "trim"): the invariants of DESIGN section 3.

Each example draws a valid conversation (tool groups, interleaved system
messages, images, pinned messages), a model (the four built-ins, an alias,
and a registered small-window custom model), a counter (the in-memory BPE,
the estimator, the estimator's upper bound; the shared Grok-1 tokenizer in
its own parametrization), a reserve putting the budget anywhere from below
zero to far above the conversation, tool definitions and a margin override.
The result is checked against every invariant directly and against the
reference implementation in ``tests/oracle.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import convkit
from convkit import (
    ContextWindowError,
    EstimateCounter,
    FitResult,
    History,
    ImagePart,
    Message,
    TokenCounter,
    UnknownModelError,
    UnsupportedInputError,
    ValidationError,
    fit,
    get_model,
)
from convkit._counting import apply_image_policy
from convkit.testing.strategies import budgets, conversations, texts

from . import oracle

MODELS = (
    "grok-2-vision-1212",
    "grok-2-1212",
    "grok-vision-beta",
    "grok-beta",
    "grok-2",
    "convkit-test-small",
    "test-small",
)

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {"type": "function", "function": {"name": "search_web", "parameters": {"type": "object"}}},
]


@pytest.fixture(scope="module", params=["in-code", pytest.param("grok-1", marks=pytest.mark.shared)])
def counters(request: pytest.FixtureRequest, tiny_counter: TokenCounter) -> list[TokenCounter]:
    """The counters one parametrization draws from."""
    if request.param == "grok-1":
        return [request.getfixturevalue("grok_counter")]
    return [tiny_counter, EstimateCounter(), EstimateCounter.upper_bound()]


@attrs.frozen
class Case:
    conversation: list[Message]
    model: str
    counter: TokenCounter
    reserve: int
    tools: list[dict[str, Any]] | None
    images: str
    margin: float | None
    alt_reserve: int = 0  # a second reserve, for monotonicity
    chunks: tuple[int, ...] = ()  # chunk sizes for building a History piecewise (0: all the rest)

    @property
    def spec(self) -> convkit.ModelSpec:
        return get_model(self.model)

    @property
    def effective(self) -> list[Message]:
        """The conversation after the image policy (what fit trims)."""
        return apply_image_policy(self.conversation, self.spec, "drop")

    @property
    def used_margin(self) -> float:
        return self.counter.margin if self.margin is None else self.margin

    def fit(self, messages: Any = None, *, reserve: int | None = None) -> FitResult:
        return fit(
            self.conversation if messages is None else messages,
            model=self.model,
            counter=self.counter,
            reserve=self.reserve if reserve is None else reserve,
            tools=self.tools,
            images=self.images,  # type: ignore[arg-type]
            margin=self.margin,
        )


def reserve_for_budget(spec: convkit.ModelSpec, budget: int, margin: float) -> int:
    """A reserve that makes fit's budget about ``budget`` (0 when the window is smaller)."""
    return max(0, spec.context_window - math.ceil(budget * (1 + margin)))


def draw_case(data: st.DataObject, counters: Sequence[TokenCounter], max_size: int = 30) -> Case:
    # Scalars first: hypothesis draws little entropy after a large conversation, so
    # anything drawn after it would be biased towards its minimum.
    model = data.draw(st.sampled_from(MODELS), label="model")
    counter = data.draw(st.sampled_from(list(counters)), label="counter")
    tools = data.draw(st.sampled_from([None, None, [], TOOLS[:1], TOOLS]), label="tools")
    images = data.draw(st.sampled_from(("drop", "drop", "drop", "error")), label="images")
    margin = data.draw(st.sampled_from((None, None, 0.0, 0.05, 0.5)), label="margin")
    spec = get_model(model)
    used_margin = counter.margin if margin is None else margin
    mode = data.draw(st.sampled_from(("between", "between", "between", "around", "budget", "reserve")))
    position = data.draw(st.integers(0, 100), label="position")  # percent of the way from lo to hi
    alt_position = data.draw(st.integers(0, 100), label="second position")
    chunks = tuple(data.draw(st.lists(st.integers(0, 8), max_size=6), label="chunks"))
    target = data.draw(budgets(), label="target budget")
    any_reserve = data.draw(st.integers(0, spec.context_window + 100), label="reserve")
    conversation = data.draw(conversations(max_size=max_size), label="conversation")
    if mode in ("between", "around"):  # a budget near the conversation's own size: trimming happens
        effective = apply_image_policy(conversation, spec, "drop")
        total = counter.count_messages(effective, model=spec, tools=tools)
        lowest = 0
        if mode == "between":  # between what must be kept and everything
            lowest = oracle.trim(effective, model=spec, counter=counter, tools=tools, margin=0).required
        lo, hi = max(0, lowest - 3), total + 3
        reserve = reserve_for_budget(spec, lo + (hi - lo) * position // 100, used_margin)
        alt_reserve = reserve_for_budget(spec, lo + (hi - lo) * alt_position // 100, used_margin)
    elif mode == "budget":  # tiny to huge
        reserve = reserve_for_budget(spec, target, used_margin)
        alt_reserve = spec.context_window * alt_position // 100
    else:  # any reserve, including more than the window
        reserve = any_reserve
        alt_reserve = spec.context_window * alt_position // 100
    return Case(conversation, model, counter, reserve, tools, images, margin, alt_reserve, chunks)


# -- the checks ------------------------------------------------------------------------------


def leading_system_count(messages: Sequence[Message]) -> int:
    n = 0
    for m in messages:
        if m.role != "system":
            break
        n += 1
    return n


def answered_ids(messages: Sequence[Message]) -> set[str]:
    return {m.tool_call_id for m in messages if m.role == "tool" and m.tool_call_id is not None}


def assert_invariants(case: Case, result: FitResult) -> None:
    """Invariants 1-6 and 8 of DESIGN section 3, checked directly on one result."""
    spec = case.spec
    source = case.effective
    n = len(source)
    kept = result.kept

    # bookkeeping: kept/dropped partition the input; the budget is what the contract says
    assert result.input_length == n
    assert sorted(kept + result.dropped) == list(range(n))
    assert result.budget == math.floor((spec.context_window - case.reserve) / (1 + case.used_margin))
    assert result.model == spec.name
    assert result.to_openai() == [m.to_openai() for m in result.messages]

    # 1. fits, and prompt_tokens is the counter's own count of exactly these messages
    count = case.counter.count_messages(result.messages, model=case.model, tools=case.tools)
    assert count == result.prompt_tokens
    assert count <= result.budget

    # 2. order: the kept input messages in their original order
    assert kept == sorted(set(kept))
    assert list(result.messages) == [source[i] for i in kept]

    # 3. pinned and leading system messages kept
    lead = leading_system_count(source)
    for i, m in enumerate(source):
        if m.pinned or i < lead:
            assert i in kept, f"must-keep message {i} ({m.role}, pinned={m.pinned}) was dropped"

    # 4. newest kept
    assert n - 1 in kept

    # 5. tool atomicity: no orphan result, no answered call without all its results
    calls_so_far: set[str] = set()
    for m in result.messages:
        if m.role == "tool":
            assert m.tool_call_id in calls_so_far, f"orphan tool result {m.tool_call_id!r}"
        calls_so_far.update(c.id for c in m.tool_calls)
    all_answers = answered_ids(source)
    kept_answers = answered_ids(result.messages)
    for m in result.messages:
        for c in m.tool_calls:
            if c.id in all_answers:
                assert c.id in kept_answers, f"call {c.id!r} kept without its result"

    # 6. maximal: droppable units kept form the newest run; the next older one would not fit
    units = oracle.units(source)
    flags = oracle.must_keep_flags(source)
    kept_set = set(kept)
    for members in units:
        assert all(i in kept_set for i in members) or not any(i in kept_set for i in members)
    droppable = [u for u in units if not any(flags[i] for i in u) and u[-1] not in kept_set]
    if droppable:
        newest_dropped = droppable[-1]
        kept_droppable = [u for u in units if not any(flags[i] for i in u) and u[0] in kept_set]
        assert all(u[0] > newest_dropped[-1] for u in kept_droppable), "dropped a newer unit than kept"
        widened = sorted(kept_set.union(newest_dropped))
        wider = case.counter.count_messages([source[i] for i in widened], model=case.model, tools=case.tools)
        assert wider > result.budget, "the next older droppable unit would have fit"

    # 8. never an empty or system-only prompt, never over budget (above)
    assert result.messages
    assert any(m.role != "system" for m in result.messages)


def expect_oracle(case: Case, result: FitResult | ContextWindowError) -> None:
    want = oracle.trim(
        case.effective,
        model=case.model,
        counter=case.counter,
        reserve=case.reserve,
        tools=case.tools,
        margin=case.margin,
    )
    if isinstance(result, ContextWindowError):
        assert want.kept is None, f"fit raised but the oracle keeps {want.kept}"
        assert result.required == want.required
        assert result.available == want.budget
        assert result.required > result.available
        assert result.model == case.spec.name
        assert str(result.required) in str(result)
        if case.reserve >= case.spec.context_window:  # said in words, not as a negative "available"
            assert f"the reserve of {case.reserve} tokens" in str(result)
            assert "not smaller than the context window" in str(result)
            assert result.available > 0 or f"{result.available} are available" not in str(result)
        else:
            assert str(result.available) in str(result)
    else:
        assert want.kept is not None, f"fit kept {result.kept} but the oracle says it cannot fit"
        assert result.kept == want.kept
        assert result.prompt_tokens == want.prompt_tokens


def has_images(messages: Sequence[Message]) -> bool:
    return any(isinstance(p, ImagePart) for m in messages for p in m.content)


# -- the properties ----------------------------------------------------------------------------


@given(data=st.data())
def test_fit_invariants_and_oracle(
    data: st.DataObject, counters: list[TokenCounter], custom_model: convkit.ModelSpec
) -> None:
    case = draw_case(data, counters)
    outcome: FitResult | ContextWindowError | UnsupportedInputError
    try:
        outcome = case.fit()
    except (ContextWindowError, UnsupportedInputError) as exc:
        outcome = exc
    if isinstance(outcome, UnsupportedInputError):
        event("outcome: images refused")
        assert case.images == "error"
        assert not case.spec.supports_images
        assert has_images(case.conversation)
        assert "images='drop'" in str(outcome)
        return
    if isinstance(outcome, ContextWindowError):
        event("outcome: cannot fit")
    else:
        event("outcome: " + ("trimmed" if outcome.dropped else "everything fits"))
        assert_invariants(case, outcome)
    expect_oracle(case, outcome)


@given(data=st.data())
def test_fit_idempotent_and_monotone(
    data: st.DataObject, counters: list[TokenCounter], custom_model: convkit.ModelSpec
) -> None:
    case = draw_case(data, counters)
    if case.images == "error" and not case.spec.supports_images and has_images(case.conversation):
        case = attrs.evolve(case, images="drop")
    small, large = sorted((case.reserve, case.alt_reserve), reverse=True)  # larger reserve: smaller budget
    try:
        tight = case.fit(reserve=small)
    except ContextWindowError:
        tight = None
    try:
        loose = case.fit(reserve=large)
    except ContextWindowError:
        assert tight is None, "a larger budget failed where a smaller one fitted"
        return
    # 7. monotone: a larger budget keeps a superset
    if tight is not None:
        assert set(tight.kept) <= set(loose.kept)
        assert tight.budget <= loose.budget
    # 7. idempotent: fitting the result again changes nothing
    again = case.fit(loose.messages, reserve=large)
    assert again.messages == loose.messages
    assert again.prompt_tokens == loose.prompt_tokens
    assert again.dropped == []
    # ... and from convkit's lossless dict shape (to_openai() drops pinned flags and URL-image sizes)
    again_dicts = case.fit([m.to_dict() for m in loose.messages], reserve=large)
    assert again_dicts.messages == loose.messages
    assert again_dicts.prompt_tokens == loose.prompt_tokens


@given(data=st.data())
def test_fit_history_equals_list(
    data: st.DataObject, counters: list[TokenCounter], custom_model: convkit.ModelSpec
) -> None:
    same_counter = data.draw(st.booleans(), label="History with the same counter")
    case = draw_case(data, counters)
    if case.images == "error" and not case.spec.supports_images and has_images(case.conversation):
        case = attrs.evolve(case, images="drop")
    # a History built in chunks, with the same counter (reused as is) or another one (recounted)
    history_counter = case.counter if same_counter else EstimateCounter(3.0)
    history = History(counter=history_counter)
    rest = list(case.conversation)
    for k in case.chunks:
        history.extend(rest[: k or len(rest)])
        rest = rest[k or len(rest) :]
    history.extend(rest)
    try:
        from_list = case.fit()
    except ContextWindowError as exc:
        from_list_error = exc
        with pytest.raises(ContextWindowError) as info:
            case.fit(history)
        assert info.value.required == from_list_error.required
        assert info.value.available == from_list_error.available
        return
    from_history = case.fit(history)
    assert from_history.messages == from_list.messages
    assert from_history.kept == from_list.kept
    assert from_history.dropped == from_list.dropped
    assert from_history.prompt_tokens == from_list.prompt_tokens
    assert from_history.budget == from_list.budget
    assert len(history) == len(case.conversation)  # fit never changes the History


@given(conversation=conversations(max_size=12, images=True), data=st.data())
def test_images_on_text_only_models(
    conversation: list[Message], data: st.DataObject, tiny_counter: TokenCounter
) -> None:
    model = data.draw(st.sampled_from(("grok-2-1212", "grok-beta")))
    if not has_images(conversation):
        conversation = [
            *conversation,
            Message.user(["look:", convkit.ImagePart.from_url("https://x.test/a.png")]),
        ]
    with pytest.raises(UnsupportedInputError, match=r"text only") as info:
        fit(conversation, model=model, counter=tiny_counter)
    assert "grok-2-vision-1212" in str(info.value)  # it says what to do instead
    with pytest.raises(UnsupportedInputError):
        tiny_counter.count_messages(conversation, model=model)

    result = fit(conversation, model=model, counter=tiny_counter, images="drop")
    assert not has_images(result.messages)
    kept_inputs = [conversation[i] for i in result.kept]
    for original, sent in zip(kept_inputs, result.messages, strict=True):
        assert len(original.content) == len(sent.content)
        for before, after in zip(original.content, sent.content, strict=True):
            if isinstance(before, ImagePart):
                assert "image omitted" in getattr(after, "text", "")  # a visible note in its place
            else:
                assert after == before
    # the notes are counted: prompt_tokens is the count of what is sent, notes included
    assert result.prompt_tokens == tiny_counter.count_messages(result.messages, model=model)
    assert result.image_tokens == 0


@given(
    conversation=conversations(max_size=6),
    name=texts(max_size=30).filter(lambda s: s not in convkit._models.default_registry),
)
def test_unknown_model_is_loud(conversation: list[Message], name: str) -> None:
    with pytest.raises(UnknownModelError) as info:
        fit(conversation, model=name)
    assert info.value.name == name
    assert "grok-2-1212" in str(info.value)  # it lists the known models
    with pytest.raises(UnknownModelError):
        EstimateCounter().count_messages(conversation, model=name)


@given(conversation=conversations(max_size=10, tool_groups=False, images=False))
def test_system_only_conversations_are_refused(conversation: list[Message]) -> None:
    systems = [Message.system(m.text) for m in conversation]
    with pytest.raises(ValidationError, match="system"):
        fit(systems, model="grok-2")


# -- worked examples (each once a bug, or an edge the properties reach rarely) -----------------


def test_empty_conversation_is_refused() -> None:
    with pytest.raises(ValidationError, match="no messages"):
        fit([], model="grok-2")


def test_trailing_system_message_never_leaves_a_system_only_prompt() -> None:
    counter = EstimateCounter(margin=0)
    conversation = [
        Message.system("be nice"),
        Message.user("x" * 4000),
        Message.system("answer in French"),
    ]
    everything = counter.count_messages(conversation, model="grok-2")
    systems_only = counter.count_messages([conversation[0], conversation[2]], model="grok-2")
    # a budget that holds both system messages but not the user's: once a silent
    # system-only prompt, now a loud failure that counts the user message as must-keep
    for budget in (systems_only, everything - 1):
        with pytest.raises(ContextWindowError) as info:
            fit(conversation, model="grok-2", counter=counter, reserve=131072 - budget)
        assert info.value.required == everything
    result = fit(conversation, model="grok-2", counter=counter, reserve=131072 - everything)
    assert result.kept == [0, 1, 2]

    # with an older message to spare, that is what goes; the newest turn stays whole
    conversation.insert(1, Message.user("y" * 4000))
    result = fit(conversation, model="grok-2", counter=counter, reserve=131072 - everything)
    assert result.kept == [0, 2, 3]


def test_tool_group_with_a_user_turn_inside_is_atomic(tiny_counter: TokenCounter) -> None:
    conversation: list[Mapping[str, Any]] = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "old question " * 50},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "b", "content": "result b " * 20},
        {"role": "user", "content": "still there?"},
        {"role": "tool", "tool_call_id": "a", "content": "result a " * 20},
        {"role": "user", "content": "thanks"},
    ]
    full = tiny_counter.count_messages(conversation, model="grok-2")
    group = tiny_counter.count_messages([conversation[0], *conversation[2:]], model="grok-2")
    # budget between "group + newest" and "everything": the old question goes, the group stays whole
    reserve = 131072 - (group + full) // 2
    result = fit(conversation, model="grok-2", counter=tiny_counter, reserve=reserve)
    assert result.kept == [0, 2, 3, 4, 5, 6]
    # a budget below the group's cost drops the whole group, never half of it
    tail = tiny_counter.count_messages([conversation[0], conversation[6]], model="grok-2")
    result = fit(conversation, model="grok-2", counter=tiny_counter, reserve=131072 - tail)
    assert result.kept == [0, 6]


def test_context_window_error_carries_the_numbers(tiny_counter: TokenCounter) -> None:
    conversation = [Message.system("rules " * 100, pinned=True), Message.user("question " * 100)]
    need = tiny_counter.count_messages(conversation, model="grok-2-vision-1212")
    with pytest.raises(ContextWindowError) as info:
        fit(conversation, model="grok-2-vision-1212", counter=tiny_counter, reserve=8192 - need + 1)
    err = info.value
    assert (err.required, err.available) == (need, need - 1)
    assert err.context_window == 8192
    assert err.reserve == 8192 - need + 1
    assert isinstance(err, convkit.ConvkitError)
    result = fit(conversation, model="grok-2-vision-1212", counter=tiny_counter, reserve=8192 - need)
    assert result.prompt_tokens == result.budget == need


def test_reserve_larger_than_the_window_fails_loudly() -> None:
    with pytest.raises(ContextWindowError) as info:
        fit([Message.user("hi")], model="grok-2-vision-1212", reserve=9000)
    assert info.value.available < 0 < info.value.required


@pytest.mark.parametrize("reserve", [-1, 1.5, True, "10"])
def test_bad_reserve_is_a_validation_error(reserve: Any) -> None:
    with pytest.raises(ValidationError, match="reserve"):
        fit([Message.user("hi")], model="grok-2", reserve=reserve)


def test_summarize_and_unknown_strategies_are_typed_errors() -> None:
    with pytest.raises(ValidationError, match="summarizer"):
        fit([Message.user("hi")], model="grok-2", strategy="summarize")
    with pytest.raises(ValidationError, match="unknown strategy"):
        fit([Message.user("hi")], model="grok-2", strategy="shrink")  # type: ignore[arg-type]


def test_fit_accepts_dicts_and_messages_alike(tiny_counter: TokenCounter) -> None:
    msgs = [Message.system("s"), Message.user("hello"), Message.assistant("hi there")]
    a = fit(msgs, model="grok-2", counter=tiny_counter)
    b = fit([m.to_openai() for m in msgs], model="grok-2", counter=tiny_counter)
    assert a.messages == b.messages
    assert a.prompt_tokens == b.prompt_tokens


def test_fit_does_not_touch_the_tokenizer_when_counts_are_known() -> None:
    class Exploding(EstimateCounter):
        armed = False

        def _encode(self, texts: list[str]) -> list[int]:
            assert not self.armed, "fit re-tokenized a message whose count was known"
            return super()._encode(texts)

    counter = Exploding()
    history = History([Message.user(f"message {i} " * 5) for i in range(200)], counter=counter)
    counter.armed = True
    counter.clear_cache()  # only the History knows the counts now
    result = fit(history, model="grok-2-vision-1212", reserve=8000)
    assert result.kept[-1] == 199
    assert 0 < len(result.kept) < 200
