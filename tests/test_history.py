"""History: incremental building equals bulk building, appends are all-or-nothing, units merge right."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from convkit import (
    EstimateCounter,
    HFTokenCounter,
    History,
    InvalidConversationError,
    InvalidMessageError,
    Message,
    TokenizerError,
    ToolCall,
    fit,
)
from convkit.testing.strategies import conversations

from . import oracle


def snapshot(h: History) -> dict[str, Any]:
    """Everything a History knows, public and internal."""
    return {
        "messages": h.messages,
        "content": h.content_counts,
        "units": [h.unit_bounds(u) for u in range(h.units)],
        "has_images": h.has_images,
        "len": len(h),
        "cum": (list(h._cum_tok), list(h._cum_msg), list(h._cum_drop_tok), list(h._cum_drop_msg)),
        "pinned": list(h._pinned_units),
    }


def expected_units(conv: list[Message]) -> list[tuple[int, int]]:
    return [(u[0], u[-1] + 1) for u in oracle.units(conv)]


def call(i: str) -> ToolCall:
    return ToolCall(i, "f", "{}")


@given(
    chunks=st.lists(st.integers(1, 6), max_size=8),
    conv=conversations(max_size=30),
)
def test_incremental_equals_bulk(chunks: list[int], conv: list[Message]) -> None:
    counter = EstimateCounter()
    bulk = History(conv, counter=counter)
    one_by_one = History(counter=counter)
    for m in conv:
        one_by_one.append(m)
    chunked = History(counter=counter)
    rest = list(conv)
    for k in chunks:
        chunked.extend(rest[:k])
        rest = rest[k:]
    chunked.extend(rest)
    dicts = History([m.to_dict() for m in conv], counter=counter)
    assert snapshot(bulk) == snapshot(one_by_one) == snapshot(chunked) == snapshot(dicts)


@given(conv=conversations(max_size=30))
def test_units_and_prefix_sums_match_the_rules(conv: list[Message]) -> None:
    counter = EstimateCounter()
    h = History(conv, counter=counter)
    assert [h.unit_bounds(u) for u in range(h.units)] == expected_units(conv)
    flags = oracle.must_keep_flags(conv)
    pinned = [u for u, members in enumerate(oracle.units(conv)) if any(flags[i] for i in members)]
    assert h._pinned_units == pinned
    content = counter.content_tokens(conv)
    assert h.content_counts == content
    # prefix sums: tokens and message counts, over all units and over droppable ones
    total = droppable = n_drop = 0
    for u in range(h.units):
        a, b = h.unit_bounds(u)
        total += sum(content[a:b])
        if u not in pinned:
            droppable += sum(content[a:b])
            n_drop += b - a
        assert h._cum_tok[u + 1] == total
        assert h._cum_msg[u + 1] == b
        assert h._cum_drop_tok[u + 1] == droppable
        assert h._cum_drop_msg[u + 1] == n_drop
    assert h.has_images == any(m.images for m in conv)


@given(
    split=st.integers(0, 100),
    where=st.integers(0, 100),
    conv=conversations(max_size=20),
)
def test_a_bad_batch_changes_nothing(split: int, where: int, conv: list[Message]) -> None:
    counter = EstimateCounter()
    k = len(conv) * split // 100
    h = History(conv[:k], counter=counter)
    before = snapshot(h)
    rest = conv[k:]
    position = len(rest) * where // 100
    orphan = Message.tool("who asked?", tool_call_id="never-made")
    bad_batches: list[tuple[list[Any], type[Exception], str]] = [
        (
            [*rest[:position], orphan, *rest[position:]],
            InvalidConversationError,
            rf"message {k + position} is a tool result for call id 'never-made'.*add the assistant message",
        ),
        ([*rest[:position], {"role": "user", "content": ""}], InvalidMessageError, r"empty"),
        ([*rest[:position], {"role": "wizard", "content": "x"}], InvalidMessageError, r"unknown role"),
    ]
    for batch, error, pattern in bad_batches:
        with pytest.raises(error, match=pattern):
            h.extend(batch)
        assert snapshot(h) == before
    if rest:
        with pytest.raises(InvalidConversationError, match="one non-negative count per message"):
            h.extend(rest, counts=[1] * (len(rest) + 1))
        with pytest.raises(InvalidConversationError, match="one non-negative count per message"):
            h.extend(rest, counts=[-1] * len(rest))
        assert snapshot(h) == before
    # the good batch still goes in, and the result is what a bulk build gives
    h.extend(rest)
    assert snapshot(h) == snapshot(History(conv, counter=counter))


def test_a_failing_tokenizer_changes_nothing(tiny_tokenizer: Any) -> None:
    class Flaky:
        fail = False

        def encode_batch(self, texts: list[str], add_special_tokens: bool = True) -> Any:
            if self.fail:
                raise RuntimeError("tokenizer crashed")
            return tiny_tokenizer.encode_batch(texts, add_special_tokens=add_special_tokens)

        def to_str(self) -> str:
            return str(tiny_tokenizer.to_str())

    tok = Flaky()
    h = History([Message.user("hello")], counter=HFTokenCounter(tok))
    before = snapshot(h)
    tok.fail = True
    with pytest.raises(TokenizerError, match="tokenizer crashed"):
        h.extend([Message.assistant("a new text"), Message.user("another")])
    assert snapshot(h) == before


def test_unit_merging_examples() -> None:
    s, u, a = Message.system, Message.user, Message.assistant

    def units(conv: list[Message]) -> list[tuple[int, int]]:
        return [History(conv).unit_bounds(i) for i in range(History(conv).units)]

    # a call and its results, with a user turn between them, are one unit
    conv = [
        s("sys"),
        u("q"),
        a(tool_calls=[call("a"), call("b")]),
        Message.tool("rb", tool_call_id="b"),
        u("still there?"),
        Message.tool("ra", tool_call_id="a"),
        u("thanks"),
    ]
    assert units(conv) == [(0, 1), (1, 2), (2, 6), (6, 7)]
    # overlapping groups fold into one
    conv = [
        u("q"),
        a(tool_calls=[call("a")]),
        a(tool_calls=[call("b")]),
        Message.tool("ra", tool_call_id="a"),
        u("mid"),
        Message.tool("rb", tool_call_id="b"),
        a("done"),
    ]
    assert units(conv) == [(0, 1), (1, 6), (6, 7)]
    # nested groups too, and a call whose results have not arrived yet is a unit of its own
    conv = [
        a(tool_calls=[call("a")]),
        a(tool_calls=[call("b")]),
        Message.tool("rb", tool_call_id="b"),
        Message.tool("ra", tool_call_id="a"),
        a(tool_calls=[call("c")]),
    ]
    assert units(conv) == [(0, 4), (4, 5)]


def test_a_pinned_message_inside_a_group_pins_the_group() -> None:
    conv = [
        Message.user("old " * 100),
        Message.assistant(tool_calls=[call("a")]),
        Message.user("remember this", pinned=True),
        Message.tool("ra", tool_call_id="a"),
        Message.user("filler " * 300),
        Message.user("newest"),
    ]
    h = History(conv)
    assert h._pinned_units == [1]
    counter = EstimateCounter(margin=0)
    must = counter.count_messages([conv[1], conv[2], conv[3], conv[5]], model="grok-2")
    result = fit(conv, model="grok-2", counter=counter, reserve=131072 - must)
    assert result.kept == [1, 2, 3, 5]


def test_a_result_may_answer_a_call_from_an_earlier_batch() -> None:
    h = History([Message.user("q"), Message.assistant(tool_calls=[call("x")])])
    h.extend([Message.user("meanwhile"), Message.tool("rx", tool_call_id="x")])
    assert [h.unit_bounds(u) for u in range(h.units)] == [(0, 1), (1, 4)]


def test_leading_system_run_continues_across_batches() -> None:
    h = History([Message.system("a")])
    h.extend([Message.system("b"), Message.user("c"), Message.system("d")])
    assert h._pinned_units == [0, 1]  # "d" comes after a user message: droppable


def test_known_counts_skip_the_tokenizer() -> None:
    class Refusing(EstimateCounter):
        def _encode(self, texts: list[str]) -> list[int]:
            raise AssertionError(f"tokenized {texts!r} although the counts were given")

    conv = [Message.user("a"), Message.assistant("b"), Message.user("c")]
    h = History(conv, counter=Refusing(), counts=[10, 20, 30])
    assert h.content_counts == [10, 20, 30]
    h.append(Message.user("d"), count=40)
    assert h.content_counts == [10, 20, 30, 40]
    assert fit(h, model="grok-2").kept == [0, 1, 2, 3]


def test_messages_is_a_copy() -> None:
    h = History([Message.user("a")])
    h.messages.append(Message.user("b"))
    assert len(h) == 1


def test_a_reused_call_id_links_to_the_latest_call() -> None:
    # some providers number calls per turn ("call_0" again and again)
    conv = [
        Message.user("q1"),
        Message.assistant(tool_calls=[call("call_0")]),
        Message.tool("r1", tool_call_id="call_0"),
        Message.user("q2"),
        Message.assistant(tool_calls=[call("call_0")]),
        Message.tool("r2", tool_call_id="call_0"),
    ]
    h = History(conv)
    assert [h.unit_bounds(u) for u in range(h.units)] == [(0, 1), (1, 3), (3, 4), (4, 6)]
    assert [h.unit_bounds(u) for u in range(h.units)] == expected_units(conv)
