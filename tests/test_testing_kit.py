"""``convkit.testing.assert_fits`` / ``assert_cannot_fit``: the invariant checkers users run in CI.

* They accept every result ``convkit.fit`` gives (property test over the
  strategies' conversations, budgets, counters, tools and image policies).
* They catch deliberately broken results, one test per invariant: over the
  budget or a wrong ``prompt_tokens`` (1), reordered messages (2), a dropped
  pinned or leading system message (3), a dropped newest message (4), a
  broken tool pair (5), a result that dropped more than it had to or dropped
  a newer unit than it kept (6), a counter that changes its mind (7), a
  system-only result and a result where an error was due (8); and a
  ``ContextWindowError`` with wrong numbers.
* The README's example (a user's own pin rule and counter) runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convkit
from convkit import ContextWindowError, EstimateCounter, FitResult, Message, ModelSpec, ToolCall, fit
from convkit.testing import assert_cannot_fit, assert_fits
from convkit.testing._invariants import trim_units
from convkit.testing.strategies import budgets, conversations

MODEL = ModelSpec("kit-test", 1000, {"text", "image"}, message_overhead=4, request_overhead=2)
COUNTER = EstimateCounter(margin=0)


def source() -> list[Message]:
    return [
        Message.system("You are a support bot."),  # 0 leading system
        Message.user("My order 1234 is late. " * 3, pinned=True),  # 1 pinned
        Message.assistant("Let me look. " * 10),  # 2
        Message.user("Any news? " * 10),  # 3
        Message.assistant(
            None, tool_calls=[ToolCall("c1", "lookup_order", '{"id": 1234}'), ToolCall("c2", "eta", "{}")]
        ),  # 4
        Message.tool("shipped " * 10, tool_call_id="c2"),  # 5
        Message.tool("order 1234: in transit " * 5, tool_call_id="c1"),  # 6
        Message.assistant("It ships tomorrow. " * 5),  # 7
        Message.user("Thanks, and the invoice?"),  # 8
    ]


def budget_for(kept: list[int]) -> int:
    msgs = source()
    return COUNTER.count_messages([msgs[i] for i in kept], model=MODEL)


def reserve_keeping(kept: list[int]) -> int:
    """A reserve whose budget holds exactly these messages (and not one more unit)."""
    return MODEL.context_window - budget_for(kept)


def rebuild(result: FitResult, kept: list[int], messages: list[Message] | None = None) -> FitResult:
    """``result`` claiming to keep ``kept`` (messages, spans and prompt_tokens consistent)."""
    src = source()
    msgs = [src[i] for i in kept] if messages is None else messages
    spans: list[tuple[int, int]] = []
    for i in kept:
        if spans and spans[-1][1] == i:
            spans[-1] = (spans[-1][0], i + 1)
        else:
            spans.append((i, i + 1))
    return attrs.evolve(
        result,
        messages=tuple(msgs),
        kept_spans=tuple(spans),
        prompt_tokens=COUNTER.count_messages(msgs, model=MODEL),
    )


def check(result: FitResult, reserve: int, **kw: Any) -> None:
    assert_fits(result, source(), counter=COUNTER, model=MODEL, reserve=reserve, **kw)


KEEP = [0, 1, 4, 5, 6, 7, 8]  # drops 2 and 3: the tool group and everything newer stay


@pytest.fixture
def fitted() -> tuple[FitResult, int]:
    reserve = reserve_keeping(KEEP)
    result = fit(source(), model=MODEL, counter=COUNTER, reserve=reserve)
    assert result.kept == KEEP
    check(result, reserve)  # the genuine result passes
    return result, reserve


def test_the_source_has_the_units_the_tests_assume() -> None:
    assert trim_units(source()) == [[0], [1], [2], [3], [4, 5, 6], [7], [8]]


def test_over_budget(fitted: tuple[FitResult, int]) -> None:
    result, reserve = fitted
    with pytest.raises(AssertionError, match=r"^invariant 1 \(fits\): the result needs \d+ tokens, over"):
        check(rebuild(result, list(range(9))), reserve)


def test_wrong_prompt_tokens_and_budget(fitted: tuple[FitResult, int]) -> None:
    result, reserve = fitted
    with pytest.raises(AssertionError, match=r"invariant 1 \(fits\): prompt_tokens says"):
        check(attrs.evolve(result, prompt_tokens=result.prompt_tokens - 1), reserve)
    with pytest.raises(AssertionError, match=r"invariant 1 \(fits\): budget is"):
        check(result, reserve + 1)


def test_reordered(fitted: tuple[FitResult, int]) -> None:
    result, reserve = fitted
    msgs = list(result.messages)
    msgs[-1], msgs[-2] = msgs[-2], msgs[-1]
    with pytest.raises(
        AssertionError, match=r"^invariant 2 \(order\): result message 5 is not input message 7"
    ):
        check(rebuild(result, KEEP, msgs), reserve)


def test_dropped_pinned_message(fitted: tuple[FitResult, int]) -> None:
    result, reserve = fitted
    with pytest.raises(
        AssertionError, match=r"^invariant 3 \(pinned kept\): input message 1 \(user, marked pinned\)"
    ):
        check(rebuild(result, [0, 4, 5, 6, 7, 8]), reserve)
    with pytest.raises(
        AssertionError, match=r"^invariant 3 \(pinned kept\): input message 0 \(system, a leading"
    ):
        check(rebuild(result, [1, 4, 5, 6, 7, 8]), reserve)


def test_dropped_newest_message(fitted: tuple[FitResult, int]) -> None:
    result, reserve = fitted
    with pytest.raises(AssertionError, match=r"^invariant 4 \(newest kept\)"):
        check(rebuild(result, [0, 1, 4, 5, 6, 7]), reserve)


def test_broken_tool_pair(fitted: tuple[FitResult, int]) -> None:
    result, reserve = fitted
    with pytest.raises(
        AssertionError, match=r"^invariant 5 \(tool atomicity\): call 'c1' was kept without its"
    ):
        check(rebuild(result, [0, 1, 4, 5, 7, 8]), reserve)
    with pytest.raises(
        AssertionError, match=r"^invariant 5 \(tool atomicity\): result message 2 answers call 'c2'"
    ):
        check(rebuild(result, [0, 1, 5, 6, 7, 8]), reserve)


def test_not_maximal(fitted: tuple[FitResult, int]) -> None:
    result, reserve = fitted
    with pytest.raises(
        AssertionError, match=r"^invariant 6 \(maximal\): the next older unit \[4, 5, 6\] would have fit"
    ):
        check(rebuild(result, [0, 1, 7, 8]), reserve)
    roomy = reserve_keeping([0, 1, 2, 4, 5, 6, 7, 8])
    loose = fit(source(), model=MODEL, counter=COUNTER, reserve=roomy)
    with pytest.raises(
        AssertionError, match=r"^invariant 6 \(maximal\): unit \[3\] was dropped but the older \[2\]"
    ):
        check(rebuild(loose, [0, 1, 2, 4, 5, 6, 7, 8]), roomy)


def test_counter_that_changes_its_mind(fitted: tuple[FitResult, int]) -> None:
    """fit with a counter whose counts drift is neither idempotent nor monotone: invariant 7 says so."""
    # after fit, every message costs `drift` more: the result ([0, 1, 4, 5, 6, 7, 8]) no longer
    # fits its budget, while its must-keep part (leading system, pinned, newest: [0, 1, 8]) still
    # does, so fitting the result again drops messages rather than raising ContextWindowError
    must = [0, 1, 8]
    drift = (budget_for(KEEP) - budget_for(must)) // (2 * len(must))
    assert drift > 0

    class Drifting(EstimateCounter):
        calls = 0

        @property
        def identity(self) -> str:
            return f"drifting-{self.calls}"

        def content_tokens(self, messages: Any) -> list[int]:
            type(self).calls += 1
            self.clear_cache()
            return [n + (drift if type(self).calls > 3 else 0) for n in super().content_tokens(messages)]

    counter = Drifting(margin=0)
    reserve = reserve_keeping(KEEP)
    result = fit(source(), model=MODEL, counter=counter, reserve=reserve)
    assert result.kept == KEEP  # counted before the drift
    with pytest.raises(AssertionError, match=r"^invariant 7 \(idempotent\): fit of the result keeps"):
        assert_fits(result, source(), counter=counter, model=MODEL, reserve=reserve)
    # drifting so far that the must-keep part no longer fits either: still invariant 7, named,
    # not a ContextWindowError escaping the checker
    drift = budget_for(KEEP)
    Drifting.calls = 0
    result = fit(source(), model=MODEL, counter=counter, reserve=reserve)
    with pytest.raises(AssertionError, match=r"^invariant 7 \(idempotent\): fit of the result raised"):
        assert_fits(result, source(), counter=counter, model=MODEL, reserve=reserve)


def test_system_only_and_undue_results() -> None:
    msgs = [Message.system("rules"), Message.user("question " * 20), Message.system("answer in French")]
    reserve = MODEL.context_window - COUNTER.count_messages(msgs, model=MODEL)
    result = fit(msgs, model=MODEL, counter=COUNTER, reserve=reserve)
    assert_fits(result, msgs, counter=COUNTER, model=MODEL, reserve=reserve)
    only_system = attrs.evolve(
        result,
        messages=(msgs[0], msgs[2]),
        kept_spans=((0, 1), (2, 3)),
        prompt_tokens=COUNTER.count_messages([msgs[0], msgs[2]], model=MODEL),
    )
    with pytest.raises(
        AssertionError, match=r"^invariant 5|^invariant 8 \(loud failure\): the result is empty or"
    ):
        assert_fits(only_system, msgs, counter=COUNTER, model=MODEL, reserve=reserve)


def test_assert_cannot_fit() -> None:
    msgs = source()
    must = [0, 1, 8]
    reserve = reserve_keeping(must) + 1
    with pytest.raises(ContextWindowError) as info:
        fit(msgs, model=MODEL, counter=COUNTER, reserve=reserve)
    assert_cannot_fit(info.value, msgs, counter=COUNTER, model=MODEL, reserve=reserve)
    wrong = ContextWindowError(
        required=info.value.required - 1, available=info.value.available, model="kit-test"
    )
    with pytest.raises(
        AssertionError, match=r"invariant 8 \(loud failure\): the error says \d+ tokens are required"
    ):
        assert_cannot_fit(wrong, msgs, counter=COUNTER, model=MODEL, reserve=reserve)
    budget = info.value.required
    fitting = ContextWindowError(required=budget, available=budget, model="kit-test")
    with pytest.raises(
        AssertionError, match=r"invariant 8 \(loud failure\): the must-keep messages need \d+ <= "
    ):
        assert_cannot_fit(fitting, msgs, counter=COUNTER, model=MODEL, reserve=reserve - 1)


@given(
    conversation=conversations(max_size=12),
    budget=budgets(max_value=9000),
    counter=st.sampled_from([EstimateCounter(), EstimateCounter(margin=0), EstimateCounter.upper_bound()]),
    model=st.sampled_from(["grok-2-vision-1212", "grok-2-1212"]),
    tools=st.sampled_from([None, [{"type": "function", "function": {"name": "f", "parameters": {}}}]]),
)
def test_genuine_results_pass(
    conversation: list[Message], budget: int, counter: EstimateCounter, model: str, tools: Any
) -> None:
    spec = convkit.get_model(model)
    reserve = max(0, spec.context_window - budget)
    kw: dict[str, Any] = {
        "counter": counter,
        "model": model,
        "reserve": reserve,
        "tools": tools,
        "images": "drop",
    }
    try:
        result = fit(conversation, **kw)
    except ContextWindowError as exc:
        assert_cannot_fit(exc, conversation, **kw)
    else:
        assert_fits(result, conversation, **kw)


def test_docstring_example_runs() -> None:
    import textwrap

    from hypothesis import settings

    import convkit.testing._invariants as module

    doc = module.__doc__ or ""
    namespace: dict[str, Any] = {}
    exec(textwrap.dedent(doc[doc.index("    import attrs") :]), namespace)
    settings(max_examples=25)(namespace["test_pinned_task_survives"])()


def test_module_imports_neither_pytest_nor_hypothesis() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import convkit.testing._invariants; "
        "assert 'pytest' not in sys.modules and 'hypothesis' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
