"""Checkers of the fit invariants (DESIGN section 3) for your own tests.

:func:`assert_fits` checks a :class:`~convkit.FitResult` against the input
it was made from, and :func:`assert_cannot_fit` checks a
:class:`~convkit.ContextWindowError`. Each failure raises ``AssertionError``
whose message starts with the invariant's number and name, for example
``invariant 5 (tool atomicity): ...``. The invariants, for strategy "trim":

1. fits: ``counter.count_messages(result.messages) <= result.budget``, that
   count is ``result.prompt_tokens``, and the budget is ``floor((context
   window - reserve) / (1 + margin))``;
2. order: the result is the input's kept messages, in input order;
3. pinned kept: leading system messages and messages marked pinned;
4. newest kept: the last message;
5. tool atomicity: no tool result without its call, no answered call without
   all its results, no trim unit (a call, its results and whatever arrived
   between them) kept in part;
6. maximal: the dropped droppable units are all older than the kept ones,
   and the newest dropped one would not have fit;
7. idempotent and monotone: ``fit`` of the result keeps it all, a larger
   budget keeps a superset, a smaller one a subset (checked by running
   :func:`convkit.fit`, so it tests convkit together with your counter and
   pin rules);
8. loud failure: the result is neither empty nor system-only, and the
   must-keep messages fit (else ``fit`` must raise ``ContextWindowError``
   carrying the required and available tokens: :func:`assert_cannot_fit`).

For a result of strategy "summarize", the summary message is set aside and
invariants 1-5 and 8 are checked.

This module imports neither pytest nor hypothesis. Example, property-testing
your own pin rule with the strategies of :mod:`convkit.testing.strategies`::

    import attrs
    from hypothesis import given
    import convkit
    from convkit.testing import assert_cannot_fit, assert_fits
    from convkit.testing.strategies import budgets, conversations

    def pin_task(messages):  # your rule: the first user message states the task; keep it
        first = next((i for i, m in enumerate(messages) if m.role == "user"), None)
        return [attrs.evolve(m, pinned=True) if i == first else m for i, m in enumerate(messages)]

    @given(conversations(max_size=20), budgets(max_value=8192))
    def test_pinned_task_survives(conversation, budget):
        messages = pin_task(conversation)
        counter, reserve = convkit.EstimateCounter(), 8192 - budget
        kw = dict(counter=counter, model="grok-2-vision-1212", reserve=reserve)
        try:
            result = convkit.fit(messages, **kw)
        except convkit.ContextWindowError as exc:
            assert_cannot_fit(exc, messages, **kw)
        else:
            assert_fits(result, messages, **kw)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._counting import ImagePolicy, TokenCounter, apply_image_policy
from .._engine.settings import default_reserve
from .._engine.units import leading_system, must_keep_units, newest_turn, unit_lists, unit_starts
from .._errors import ContextWindowError, ConvkitError
from .._fitting import FitResult, compute_budget, fit
from .._history import History
from .._messages import Message, MessageLike, as_messages
from .._models import ModelSpec, get_model

__all__ = ["assert_cannot_fit", "assert_fits", "trim_units"]


def _fail(number: int | str, name: str, detail: str) -> AssertionError:
    label = f"invariant {number} ({name})" if isinstance(number, int) else name
    return AssertionError(f"{label}: {detail}")


def trim_units(messages: Sequence[Message]) -> list[list[int]]:
    """The trim units of a conversation, as lists of indices, oldest first (the engine's rule).

    Messages ``k`` and ``k + 1`` share a unit when some tool message ``j``
    answers a call made by message ``i`` with ``i <= k < j``.
    """
    return unit_lists(unit_starts(messages), len(messages))


class _Input:
    """The input as fit sees it, with its units and must-keep parts."""

    def __init__(
        self,
        messages: Iterable[MessageLike] | History,
        spec: ModelSpec,
        images: ImagePolicy,
    ) -> None:
        raw = messages.messages if isinstance(messages, History) else as_messages(messages)
        self.messages = apply_image_policy(raw, spec, images)
        n = len(self.messages)
        self.lead = leading_system(self.messages)
        units = unit_starts(self.messages)
        self.units = unit_lists(units, n)
        tail = newest_turn(self.messages, units)
        self.tail = len(self.units) if tail is None else tail
        self.must_keep = must_keep_units(self.messages, units)


def _count(counter: TokenCounter, messages: Sequence[Message], spec: ModelSpec, **kw: Any) -> int:
    return counter.count_messages(messages, model=spec, **kw)


def assert_fits(
    result: FitResult,
    messages: Iterable[MessageLike] | History,
    *,
    counter: TokenCounter,
    model: str | ModelSpec,
    reserve: int | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    images: ImagePolicy = "error",
    margin: float | None = None,
    check_fit: bool = True,
) -> None:
    """Check invariants 1-8 for ``result``, made from ``messages`` with these arguments of ``fit``.

    Pass the arguments ``fit`` was called with (``counter`` explicitly, as
    ``fit`` defaults it). ``check_fit=False`` skips invariant 7, which runs
    :func:`convkit.fit` three more times. Raises ``AssertionError`` naming
    the first invariant that does not hold.
    """
    spec = get_model(model)
    given = _Input(messages, spec, images)
    source, n = given.messages, len(given.messages)
    reserve = default_reserve(spec) if reserve is None else reserve
    used_margin = counter.margin if margin is None else margin
    budget = compute_budget(spec, reserve, used_margin)
    sent = list(result.messages)
    summarized = result.summary is not None
    if summarized:
        from .._summarize import summary_message

        assert result.summary is not None
        note = summary_message(result.summary)
        sent = [m for m in sent if m != note]

    # 1. fits
    if result.budget != budget:
        raise _fail(
            1,
            "fits",
            f"budget is {result.budget}, but floor(({spec.context_window} - {reserve}) / "
            f"(1 + {used_margin})) = {budget}",
        )
    try:
        tokens = _count(counter, result.messages, spec, tools=tools, images=images)
    except ConvkitError as exc:
        raise _fail(1, "fits", f"the counter cannot count the result: {exc}") from None
    if tokens > budget:
        raise _fail(1, "fits", f"the result needs {tokens} tokens, over the budget of {budget}")
    if result.prompt_tokens != tokens:
        raise _fail(1, "fits", f"prompt_tokens says {result.prompt_tokens}, the counter counts {tokens}")

    # 2. order
    kept = result.kept
    if result.input_length != n:
        raise _fail(2, "order", f"the result was made from {result.input_length} messages, the input has {n}")
    if kept != sorted(set(kept)) or (kept and not 0 <= kept[0] <= kept[-1] < n):
        raise _fail(2, "order", f"kept indices {kept} are not increasing indices into the input")
    if len(kept) != len(sent):
        raise _fail(2, "order", f"{len(sent)} messages for {len(kept)} kept indices")
    for pos, (i, m) in enumerate(zip(kept, sent, strict=True)):
        if m != source[i]:
            raise _fail(2, "order", f"result message {pos} is not input message {i} (kept indices {kept})")

    # 3. pinned kept, 4. newest kept
    kept_set = set(kept)
    for i, m in enumerate(source):
        if (i < given.lead or m.pinned) and i not in kept_set:
            what = "a leading system message" if i < given.lead else "marked pinned"
            raise _fail(3, "pinned kept", f"input message {i} ({m.role}, {what}) was dropped")
    if n and n - 1 not in kept_set:
        raise _fail(4, "newest kept", f"the last message (index {n - 1}) was dropped")

    # 5. tool atomicity
    made: set[str] = set()
    for pos, m in enumerate(sent):
        if m.role == "tool" and m.tool_call_id not in made:
            raise _fail(
                5, "tool atomicity", f"result message {pos} answers call {m.tool_call_id!r}, not kept"
            )
        made.update(c.id for c in m.tool_calls)
    answered = {m.tool_call_id for m in source if m.role == "tool"}
    kept_answers = {m.tool_call_id for m in sent if m.role == "tool"}
    for m in sent:
        for c in m.tool_calls:
            if c.id in answered and c.id not in kept_answers:
                raise _fail(5, "tool atomicity", f"call {c.id!r} was kept without its result")
    for unit in given.units:
        inside = [i in kept_set for i in unit]
        if any(inside) and not all(inside):
            raise _fail(5, "tool atomicity", f"the unit of messages {unit} (a tool group) was kept in part")

    # 8. loud failure: never empty or system-only; a result exists only when the must-keep part fits
    if not sent or all(m.role == "system" for m in sent):
        raise _fail(8, "loud failure", "the result is empty or holds system messages only")
    must = sorted(i for u, unit in enumerate(given.units) if given.must_keep[u] for i in unit)
    required = _count(counter, [source[i] for i in must], spec, tools=tools, images=images)
    if required > budget:
        raise _fail(
            8,
            "loud failure",
            f"the must-keep messages need {required} > {budget} tokens: fit must "
            "raise ContextWindowError instead of returning a result",
        )
    if summarized:
        return

    # 6. maximal
    droppable = [u for u in range(len(given.units)) if not given.must_keep[u]]
    dropped = [u for u in droppable if given.units[u][0] not in kept_set]
    if dropped:
        newest = dropped[-1]
        older_kept = [u for u in droppable if u < newest and given.units[u][0] in kept_set]
        if older_kept:
            raise _fail(
                6,
                "maximal",
                f"unit {given.units[newest]} was dropped but the older "
                f"{given.units[older_kept[0]]} was kept: trimming drops the oldest first",
            )
        wider = sorted(kept_set.union(given.units[newest]))
        cost = _count(counter, [source[i] for i in wider], spec, tools=tools, images=images)
        if cost <= budget:
            raise _fail(
                6,
                "maximal",
                f"the next older unit {given.units[newest]} would have fit "
                f"({cost} <= {budget} tokens) but was dropped",
            )

    # 7. idempotent and monotone
    if check_fit:
        _check_fit(result, source, counter, spec, reserve, tools, images, margin)


def _check_fit(
    result: FitResult,
    source: list[Message],
    counter: TokenCounter,
    spec: ModelSpec,
    reserve: int,
    tools: Sequence[Mapping[str, Any]] | None,
    images: ImagePolicy,
    margin: float | None,
) -> None:
    kw: dict[str, Any] = {
        "model": spec,
        "counter": counter,
        "tools": tools,
        "images": images,
        "margin": margin,
    }
    try:
        again = fit(list(result.messages), reserve=reserve, **kw)
    except ContextWindowError as exc:
        raise _fail(
            7,
            "idempotent",
            f"fit of the result raised ContextWindowError (its must-keep part needs {exc.required} of "
            f"{exc.available} tokens) although the result fit the same budget",
        ) from None
    if again.messages != result.messages:
        raise _fail(
            7, "idempotent", f"fit of the result keeps {again.kept} of its {len(result.messages)} messages"
        )
    kept = set(result.kept)
    if reserve > 0:
        try:
            looser = fit(source, reserve=reserve // 2, **kw)
        except ContextWindowError as exc:
            raise _fail(
                7, "monotone", f"a larger budget ({exc.available}) raised ContextWindowError this result fit"
            ) from None
        if not kept <= set(looser.kept):
            raise _fail(
                7,
                "monotone",
                f"a larger budget ({looser.budget}) dropped messages "
                f"{sorted(kept - set(looser.kept))} this result keeps",
            )
    tighter_reserve = reserve + max(1, (spec.context_window - reserve) // 4)
    try:
        tighter = fit(source, reserve=tighter_reserve, **kw)
    except ContextWindowError:
        return
    if not set(tighter.kept) <= kept:
        raise _fail(
            7,
            "monotone",
            f"a smaller budget ({tighter.budget}) keeps messages "
            f"{sorted(set(tighter.kept) - kept)} this result dropped",
        )


def assert_cannot_fit(
    error: ContextWindowError,
    messages: Iterable[MessageLike] | History,
    *,
    counter: TokenCounter,
    model: str | ModelSpec,
    reserve: int | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    images: ImagePolicy = "error",
    margin: float | None = None,
) -> None:
    """Check invariant 8 for a ``ContextWindowError`` that ``fit`` raised for ``messages``.

    The must-keep messages (leading system, pinned, the newest turn) really
    need ``error.required`` tokens with the tools and request overhead, that
    is more than ``error.available``, the budget.
    """
    spec = get_model(model)
    given = _Input(messages, spec, images)
    reserve = default_reserve(spec) if reserve is None else reserve
    budget = compute_budget(spec, reserve, counter.margin if margin is None else margin)
    must = [given.messages[i] for u, unit in enumerate(given.units) if given.must_keep[u] for i in unit]
    required = _count(counter, must, spec, tools=tools, images=images)
    if error.available != budget:
        raise _fail(
            8,
            "loud failure",
            f"the error says {error.available} tokens are available, the budget is {budget}",
        )
    if error.required != required:
        raise _fail(
            8,
            "loud failure",
            f"the error says {error.required} tokens are required, the must-keep messages need {required}",
        )
    if required <= budget:
        raise _fail(
            8,
            "loud failure",
            f"the must-keep messages need {required} <= {budget} tokens: they fit, "
            "so fit should have returned a result",
        )
