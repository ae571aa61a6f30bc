"""The LangChain adapter, against the real ``langchain-core``.

* Conversion: ``to_langchain(from_langchain(x)) == x`` for LangChain messages
  of every kind (content strings and block lists with text, ``image_url``
  and standard ``image`` blocks in base64 and URL forms, reasoning blocks,
  tool calls whose argument text is spelled oddly, invalid tool calls, ids,
  names, response metadata, statuses, artifacts, pins), and
  ``from_langchain(to_langchain(m)) == m`` for convkit messages: property
  tests, also through a store.
* ``ConvkitChatMessageHistory``: a multi-turn, tool-calling conversation
  driven by a LangChain chat model on SQLite and PostgreSQL, with a ``Store``
  (sync and async methods) and an ``AsyncStore`` (async methods; the sync
  ones refuse); replacing a history (``history.messages = ...``,
  ``areplace_messages``) is all or nothing: a list with an orphaned tool
  message is refused and the old messages stay. Its positional argument is
  the application's key (as in the Agents session); an old-style
  conversation id still opens its conversation with a
  ``DeprecationWarning``; ``create`` on an AsyncStore says to await
  ``acreate``; ``aconversation_id`` is ``conversation_id``'s async twin.
* ``fit_messages``: given the same inputs as ``trim_messages``, never an
  orphaned tool message and never over the budget (property test), where
  ``trim_messages`` orphans tool results (pinned counterexamples); with
  convkit's counting it equals ``convkit.fit``; typed errors
  (``include_system=False`` is refused).
* The README's LangChain example runs.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import warnings
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    trim_messages,
)
from langchain_core.messages.utils import count_tokens_approximately

import convkit
from convkit import (
    ContextWindowError,
    EstimateCounter,
    ImagePart,
    InvalidConversationError,
    InvalidMessageError,
    Message,
    ToolCall,
    UnsupportedInputError,
    ValidationError,
)
from convkit.integrations.langchain import (
    INFO_KEY,
    ConvkitChatMessageHistory,
    fit_messages,
    from_langchain,
    to_langchain,
)
from convkit.testing import assert_fits
from convkit.testing._invariants import trim_units
from convkit.testing.strategies import conversations, image_bytes, json_values, messages, texts

from ._integrations import database_url, png, readme_block

# -- strategies of LangChain messages -----------------------------------------------------------

_IDS = st.from_regex(r"(run|lc|msg)-[a-z0-9]{1,8}", fullmatch=True)
_NAMES = st.sampled_from(["alice", "weather_bot", "tool-runner"])
_B64 = image_bytes(max_side=40).map(lambda b: base64.b64encode(b).decode())
_HTTP = st.from_regex(r"https://img\.example\.com/[a-z0-9]{1,8}\.png", fullmatch=True)


def _data_url(b64: str, header: str | None) -> str:
    media = "image/png" if base64.b64decode(b64).startswith(b"\x89PNG") else "image/jpeg"
    return f"data:{header or media};base64,{b64}"


_IMAGE_BLOCKS = st.one_of(
    st.builds(lambda b: {"type": "image", "base64": b, "mime_type": "image/png"}, _B64),
    st.builds(lambda b, i: {"type": "image", "id": i, "base64": b, "mime_type": "image/jpeg"}, _B64, _IDS),
    st.builds(
        lambda b: {"type": "image", "source_type": "base64", "data": b, "mime_type": "image/png"}, _B64
    ),
    st.builds(lambda u: {"type": "image", "url": u}, _HTTP),
    st.builds(lambda u: {"type": "image", "source_type": "url", "url": u}, _HTTP),
    st.builds(
        lambda b, h, d: {"type": "image_url", "image_url": {"url": _data_url(b, h), **d}},
        _B64,
        st.sampled_from([None, None, "image/jpg", "image/x-png"]),  # a header convkit would spell otherwise
        st.sampled_from([{}, {"detail": "low"}, {"detail": "auto"}, {"detail": "original"}]),
    ),
    st.builds(lambda u: {"type": "image_url", "image_url": u}, _HTTP),
)
_TEXT_BLOCKS = st.one_of(
    texts(max_size=30).map(lambda t: {"type": "text", "text": t}),
    st.builds(lambda t, i: {"type": "text", "text": t, "id": i}, texts(max_size=30), _IDS),
    texts(max_size=30).map(lambda t: {"type": "text", "text": t, "annotations": []}),
    texts(max_size=20),  # a plain string item
)
_OTHER_BLOCKS = texts(max_size=20).map(lambda t: {"type": "reasoning", "reasoning": t})
_CONTENT = st.one_of(
    texts(max_size=60),
    st.just(""),
    st.lists(st.one_of(_TEXT_BLOCKS, _TEXT_BLOCKS, _IMAGE_BLOCKS, _OTHER_BLOCKS), min_size=1, max_size=4),
)
_ARGS = st.dictionaries(texts(max_size=8, non_blank=False), json_values(max_leaves=4), max_size=3)


def _spell(args: dict[str, Any], style: int) -> str:
    """The same JSON object in several spellings (the exact text must survive)."""
    if style == 0:
        return json.dumps(args)
    if style == 1:
        return json.dumps(args, separators=(",", ":"), ensure_ascii=False)
    return " " + json.dumps(args, indent=2) + "\n"


@st.composite
def ai_messages(draw: st.DrawFn) -> AIMessage:
    n = draw(st.integers(0, 3))
    ids = draw(
        st.lists(st.from_regex(r"call_[A-Za-z0-9]{1,8}", fullmatch=True), min_size=n, max_size=n, unique=True)
    )
    calls = [{"name": draw(_NAMES), "args": draw(_ARGS), "id": i} for i in ids]
    kwargs: dict[str, Any] = draw(st.sampled_from([{}, {"refusal": None}]))
    raw_mode = draw(st.sampled_from(["none", "exact", "exact"]))
    if calls and raw_mode == "exact":
        kwargs["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": _spell(c["args"], draw(st.integers(0, 2)))},
            }
            for c in calls
        ]
    invalid = []
    if draw(st.booleans()) and draw(st.booleans()):
        invalid.append({"name": "broken", "args": '{"city": "Par', "id": "call_bad", "error": None})
    usage = draw(st.sampled_from([None, {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}]))
    return AIMessage(
        draw(_CONTENT),
        tool_calls=calls,
        invalid_tool_calls=invalid,
        additional_kwargs={**kwargs, **draw(_extras())},
        response_metadata=draw(st.sampled_from([{}, {"model_name": "grok-2-1212", "finish_reason": "stop"}])),
        usage_metadata=usage,
        id=draw(st.none() | _IDS),
        name=draw(st.none() | _NAMES),
    )


@st.composite
def _extras(draw: st.DrawFn) -> dict[str, Any]:
    """convkit's own fields as LangChain carries them."""
    extras: dict[str, Any] = {}
    if draw(st.booleans()):
        extras["pinned"] = True
    if draw(st.booleans()):
        extras["metadata"] = draw(st.dictionaries(texts(max_size=8), json_values(max_leaves=3), max_size=2))
    return {"convkit": extras} if extras else {}


@st.composite
def lc_messages(draw: st.DrawFn) -> BaseMessage:
    kind = draw(st.sampled_from(["system", "human", "ai", "ai", "tool", "chat"]))
    common: dict[str, Any] = {
        "id": draw(st.none() | _IDS),
        "name": draw(st.none() | _NAMES),
        "additional_kwargs": draw(_extras()),
        "response_metadata": draw(st.sampled_from([{}, {"source": "test"}])),
    }
    if kind == "ai":
        return draw(ai_messages())
    content = draw(_CONTENT)
    if kind == "system":
        return SystemMessage(content, **common)
    if kind == "human":
        return HumanMessage(content, **common)
    if kind == "chat":
        return ChatMessage(content, role=draw(st.sampled_from(["developer", "user", "assistant"])), **common)
    return ToolMessage(
        content,
        tool_call_id=draw(st.from_regex(r"call_[a-z0-9]{1,6}", fullmatch=True)),
        status=draw(st.sampled_from(["success", "error"])),
        artifact=draw(st.none() | json_values(max_leaves=3)),
        **common,
    )


def _image_payloads(m: Message) -> list[str]:
    return [base64.b64encode(p.data).decode() for p in m.images if p.data is not None]


# -- conversion properties ------------------------------------------------------------------------


@given(lc_messages())
def test_langchain_round_trip_is_exact(original: BaseMessage) -> None:
    try:
        converted = from_langchain(original)
    except InvalidMessageError as exc:
        assume("empty" not in str(exc))  # convkit refuses empty messages; anything else is a failure
        raise
    back = to_langchain(converted)
    assert type(back) is type(original)
    assert back == original
    assert from_langchain(back) == converted
    # image data lives in the parts (stored once per image), never in the metadata JSON
    dumped = json.dumps(converted.metadata)
    for payload in _image_payloads(converted):
        assert payload not in dumped
    # the exact argument text survives, when LangChain had it
    raw = original.additional_kwargs.get("tool_calls") if isinstance(original, AIMessage) else None
    if raw:
        assert [c.arguments for c in converted.tool_calls] == [r["function"]["arguments"] for r in raw]


@given(messages())
def test_convkit_round_trip_is_exact(original: Message) -> None:
    lc = to_langchain(original)
    assert from_langchain(lc) == original
    assert INFO_KEY not in from_langchain(lc).metadata  # nothing to remember for convkit's own form
    if original.tool_calls:
        assert isinstance(lc, AIMessage)
        arguments = [c["function"]["arguments"] for c in lc.additional_kwargs["tool_calls"]]
        assert arguments == [c.arguments for c in original.tool_calls]


@given(conversations(max_size=12))
def test_conversations_round_trip(conversation: list[Message]) -> None:
    lc = [to_langchain(m) for m in conversation]
    assert [from_langchain(m) for m in lc] == conversation


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(lc_messages(), min_size=1, max_size=4))
def test_round_trip_through_a_store(sqlite_store: convkit.Store, batch: list[BaseMessage]) -> None:
    batch = [m for m in batch if not isinstance(m, ToolMessage)]  # a tool result needs its call stored
    converted = []
    for m in batch:
        try:
            converted.append(from_langchain(m))
        except InvalidMessageError:
            continue
    assume(converted)
    history = ConvkitChatMessageHistory.create(sqlite_store)
    history.add_messages([to_langchain(m) for m in converted])
    assert history.messages == [to_langchain(m) for m in converted]
    assert sqlite_store.messages(history.conversation_id) == converted


def test_conversion_examples() -> None:
    data = png()
    b64 = base64.b64encode(data).decode()
    ai = AIMessage(
        "",
        additional_kwargs={
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{ "x" : 1.0 }'}},
                {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{bad"}},
            ]
        },
    )
    m = from_langchain(ai)
    assert m.tool_calls == (ToolCall("c1", "f", '{ "x" : 1.0 }'),)  # exact text; bad JSON is not a call
    assert to_langchain(m) == ai
    # arguments that are JSON but not an object: LangChain's parser would crash on them
    odd = Message.assistant(tool_calls=[ToolCall("c", "f", "[1, 2]")])
    lc = to_langchain(odd)
    assert isinstance(lc, AIMessage)
    assert lc.tool_calls == []
    assert lc.invalid_tool_calls[0]["args"] == "[1, 2]"
    assert from_langchain(lc) == odd
    # both image forms become the same image part
    a = from_langchain(HumanMessage([{"type": "image", "base64": b64, "mime_type": "image/png"}]))
    b = from_langchain(
        HumanMessage([{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}}])
    )
    assert a.images[0].data == b.images[0].data == data
    assert a.images[0].tokens == 512  # counted by the tile rule
    # a pin travels in additional_kwargs
    pinned = from_langchain(HumanMessage("keep me", additional_kwargs={"convkit": {"pinned": True}}))
    assert pinned.pinned
    assert pinned.metadata == {}


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (HumanMessage(""), "empty"),
        (AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": None}]), "needs an id"),
        (HumanMessage([{"type": "image", "file_id": "file-1"}]), "file id"),
        (HumanMessage([{"type": "image", "base64": "not base64!", "mime_type": "image/png"}]), "base64"),
        (ChatMessage("x", role="critic"), "no convkit role"),
        (HumanMessage("x", additional_kwargs={"convkit": {"metadata": {INFO_KEY: 1}}}), "reserved"),
    ],
)
def test_conversion_errors_are_typed(message: BaseMessage, match: str) -> None:
    with pytest.raises(InvalidMessageError, match=match):
        from_langchain(message)


# -- the chat message history on SQLite and PostgreSQL --------------------------------------------

EXACT_ARGS = '{"city": "Paris",  "unit":"celsius"}'


def scripted_model() -> FakeMessagesListChatModel:
    """A LangChain chat model answering with tool calls, then text, turn after turn."""
    return FakeMessagesListChatModel(
        responses=[
            AIMessage(
                "",
                id="run-1",
                additional_kwargs={
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": EXACT_ARGS},
                        }
                    ]
                },
            ),
            AIMessage("It is 18C in Paris.", id="run-2", response_metadata={"finish_reason": "stop"}),
            AIMessage(
                [{"type": "text", "text": "Checking both."}],
                id="run-3",
                tool_calls=[
                    {"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_2"},
                    {"name": "get_time", "args": {"tz": "Europe/Oslo"}, "id": "call_3"},
                ],
            ),
            AIMessage("Oslo: 3C, 14:00.", id="run-4"),
        ]
    )


def run_tools(ai: AIMessage) -> list[ToolMessage]:
    answers = {"get_weather": "18C, sunny", "get_time": "14:00"}
    return [ToolMessage(answers[c["name"]], tool_call_id=c["id"]) for c in ai.tool_calls]


USER_TURNS: list[list[BaseMessage]] = [
    [SystemMessage("You are a weather bot."), HumanMessage("Weather in Paris?")],
    [
        HumanMessage(
            [
                {"type": "text", "text": "And here? Also Oslo, with the time."},
                {"type": "image", "base64": base64.b64encode(png()).decode(), "mime_type": "image/png"},
            ]
        )
    ],
]


def conversation_turns(history_messages: Any, add: Any) -> list[BaseMessage]:
    """Drive a tool-calling agent loop through a history; returns everything added."""
    model = scripted_model()
    added: list[BaseMessage] = []
    for turn in USER_TURNS:
        add(turn)
        added += turn
        while True:
            reply = model.invoke(history_messages())
            assert isinstance(reply, AIMessage)
            results = run_tools(reply)
            add([reply, *results])
            added += [reply, *results]
            if not results:
                break
    return added


def check_stored(store: convkit.Store, cid: str, added: list[BaseMessage]) -> None:
    stored = store.messages(cid)
    assert [to_langchain(m) for m in stored] == added
    assert stored[2].tool_calls[0].arguments == EXACT_ARGS  # byte for byte
    assert stored[5].images[0].data == png()  # the image is stored as bytes, counted by tiles


def test_history_multi_turn_tool_calling(backend: str, tmp_path: Path) -> None:
    with database_url(backend, tmp_path) as url:
        store = convkit.Store(url, upgrade=True)
        try:
            history = ConvkitChatMessageHistory.create(store, title="weather")
            added = conversation_turns(lambda: history.messages, history.add_messages)
            assert history.messages == added
            check_stored(store, history.conversation_id, added)
            assert history.messages[2].tool_calls[0]["args"] == {"city": "Paris", "unit": "celsius"}

            # the window for a small budget: tool groups whole, system prompt kept, newest kept
            full = EstimateCounter().count_messages(
                store.messages(history.conversation_id), model="grok-2-vision-1212"
            )
            window = history.window(model="grok-2-vision-1212", reserve=8192 - full * 3 // 4)
            assert window[0] == added[0]
            assert window[-1] == added[-1]
            assert len(window) < len(added)
            assert_no_orphans(window)

            # the async methods on a sync Store
            assert asyncio.run(history.aget_messages()) == added
            asyncio.run(history.aadd_messages([HumanMessage("thanks")]))
            assert asyncio.run(history.awindow(model="grok-2", images="drop"))[-1] == HumanMessage("thanks")
            history.messages = added[:2]
            assert history.messages == added[:2]
            asyncio.run(history.aclear())
            assert history.messages == []
            history.add_message(HumanMessage("again"))
            history.clear()
            assert store.messages(history.conversation_id) == []
        finally:
            store.close()


def test_history_on_an_async_store(backend: str, tmp_path: Path) -> None:
    async def main(url: str) -> None:
        store = convkit.AsyncStore(url, upgrade=True)
        try:
            history = await ConvkitChatMessageHistory.acreate(store)
            model = scripted_model()
            added: list[BaseMessage] = []
            for turn in USER_TURNS:
                await history.aadd_messages(turn)
                added += turn
                while True:
                    reply = await model.ainvoke(await history.aget_messages())
                    assert isinstance(reply, AIMessage)
                    results = run_tools(reply)
                    await history.aadd_messages([reply, *results])
                    added += [reply, *results]
                    if not results:
                        break
            assert await history.aget_messages() == added
            stored = await store.messages(history.conversation_id)
            assert stored[2].tool_calls[0].arguments == EXACT_ARGS
            window = await history.awindow(model="grok-2-vision-1212", reserve=7900)
            assert window[0] == added[0]
            assert_no_orphans(window)
            for call in (lambda: history.messages, lambda: history.add_messages([]), history.clear):
                with pytest.raises(ValidationError, match="AsyncStore"):
                    call()
            await history.aclear()
            assert await history.aget_messages() == []
        finally:
            await store.close()

    with database_url(backend, tmp_path, "async") as url:
        asyncio.run(main(url))


def test_history_refuses_what_is_not_a_store() -> None:
    with pytest.raises(ValidationError, match="Store"):
        ConvkitChatMessageHistory(object(), "x")  # type: ignore[arg-type]


def test_history_replacement_is_all_or_nothing(backend: str, tmp_path: Path) -> None:
    """``history.messages = trim_messages(...)`` that orphans a tool result is refused, old history intact."""
    msgs = weather_conversation()
    orphaning = trim_messages(msgs, max_tokens=45, token_counter=count_tokens_approximately, strategy="last")
    assert orphaned(orphaning)  # ToolMessage(call_1) without the AIMessage that made the call
    unconvertible = [HumanMessage("hi"), ToolMessage("x", tool_call_id="")]
    safe = fit_messages(msgs, max_tokens=45, token_counter=count_tokens_approximately)

    def check_sync(store: convkit.Store) -> None:
        history = ConvkitChatMessageHistory.create(store)
        history.add_messages(msgs)
        before = history.messages
        with pytest.raises(InvalidConversationError, match="call_1"):
            history.messages = orphaning
        assert history.messages == before
        with pytest.raises(InvalidMessageError):
            history.messages = unconvertible
        assert history.messages == before
        with pytest.raises(InvalidConversationError, match="call_1"):
            asyncio.run(history.areplace_messages(orphaning))
        assert history.messages == before
        history.messages = safe
        assert history.messages == [to_langchain(from_langchain(m)) for m in safe]
        asyncio.run(history.areplace_messages(msgs))
        assert history.messages == before

    async def check_async(store: convkit.AsyncStore) -> None:
        history = await ConvkitChatMessageHistory.acreate(store)
        await history.aadd_messages(msgs)
        before = await history.aget_messages()
        with pytest.raises(InvalidConversationError, match="call_1"):
            await history.areplace_messages(orphaning)
        assert await history.aget_messages() == before
        with pytest.raises(ValidationError, match="AsyncStore"):
            history.messages = safe
        assert await history.aget_messages() == before
        await history.areplace_messages(safe)
        assert await history.aget_messages() == [to_langchain(from_langchain(m)) for m in safe]

    with database_url(backend, tmp_path) as url:
        sync_store = convkit.Store(url, upgrade=True)
        try:
            check_sync(sync_store)
        finally:
            sync_store.close()

    async def main(url: str) -> None:
        store = convkit.AsyncStore(url, upgrade=True)
        try:
            await check_async(store)
        finally:
            await store.close()

    with database_url(backend, tmp_path, "async") as url:
        asyncio.run(main(url))


# -- fit_messages -------------------------------------------------------------------------------


def assert_no_orphans(result: list[BaseMessage], source: list[BaseMessage] | None = None) -> None:
    """No tool message without its call before it; no kept call without all its (input) results."""
    made: set[str] = set()
    for m in result:
        if isinstance(m, ToolMessage):
            assert m.tool_call_id in made, f"orphaned tool message for {m.tool_call_id!r}"
        if isinstance(m, AIMessage):
            made.update(str(c["id"]) for c in m.tool_calls)
    if source is not None:
        answered = {m.tool_call_id for m in source if isinstance(m, ToolMessage)}
        kept = {m.tool_call_id for m in result if isinstance(m, ToolMessage)}
        assert (made & answered) <= kept, "a tool call was kept without its results"


def orphaned(result: list[BaseMessage]) -> bool:
    try:
        assert_no_orphans(result)
    except AssertionError:
        return True
    return False


def per_message(message: BaseMessage) -> int:
    """A per-message counter (trim_messages sums it)."""
    return len(str(message.content)) // 3 + 4


# as written in a module without ``from __future__ import annotations``: trim_messages recognizes a
# per-message counter by its annotation being the BaseMessage class itself, not the string
per_message.__annotations__ = {"message": BaseMessage, "return": int}


def plus_base(messages: list[BaseMessage]) -> int:
    return sum(len(str(m.content)) + 2 for m in messages) // 4 + 3


def superadditive(messages: list[BaseMessage]) -> int:
    """Not additive: each message costs more the more there are."""
    return sum(len(str(m.content)) for m in messages) // 4 + len(messages) ** 2


COUNTERS: dict[str, Any] = {
    "approximate": "approximate",
    "count_tokens_approximately": count_tokens_approximately,
    "per-message": per_message,
    "plus-base": plus_base,
    "superadditive": superadditive,
}


def list_counter(name: str) -> Any:
    c = COUNTERS[name]
    if c == "approximate":
        return count_tokens_approximately
    if c is per_message:
        return lambda msgs: sum(per_message(m) for m in msgs)
    return c


@given(
    conversation=conversations(max_size=16),
    counter_name=st.sampled_from(sorted(COUNTERS)),
    position=st.integers(0, 130),
    kwargs=st.sampled_from(
        [
            {},
            {"include_system": True},
            {"include_system": True, "start_on": "human"},
            {"end_on": ("human", "tool")},
        ]
    ),
)
def test_fit_messages_is_a_safe_drop_in_for_trim_messages(
    conversation: list[Message], counter_name: str, position: int, kwargs: dict[str, Any]
) -> None:
    msgs = [to_langchain(m) for m in conversation]
    count = list_counter(counter_name)
    # mostly a budget between what must be kept and everything (so trimming happens), else any
    total = count(ended(msgs, kwargs) or msgs)
    rest = ended(msgs, kwargs)
    low = (
        count(must_keep(msgs, kwargs)) if rest and not all(isinstance(m, SystemMessage) for m in rest) else 0
    )
    if position <= 100:
        max_tokens = low + (total - low) * position // 100
    elif position <= 115:  # just below what must be kept
        max_tokens = max(0, low - (position - 100))
    else:
        max_tokens = total * (position - 116) // 14
    same = {"max_tokens": max_tokens, "token_counter": COUNTERS[counter_name], "strategy": "last", **kwargs}

    theirs = trim_messages(msgs, **same)
    if orphaned(theirs):
        event("trim_messages orphaned a tool message")
    outcome = fit_outcome(msgs, same)
    # the declarative form (fit_messages(**options) | model) does exactly the same
    try:
        declared: list[BaseMessage] | convkit.ConvkitError = fit_messages(**same).invoke(msgs)
    except (ContextWindowError, InvalidConversationError) as exc:
        declared = exc
    assert type(declared) is type(outcome)
    assert declared == outcome if isinstance(outcome, list) else str(declared) == str(outcome)
    if isinstance(outcome, InvalidConversationError):  # end_on left system messages only
        assert all(isinstance(m, SystemMessage) for m in ended(msgs, kwargs))
        return
    if isinstance(outcome, ContextWindowError):
        event("fit_messages: the must-keep messages cannot fit")
        must = must_keep(msgs, kwargs)
        assert outcome.available == max_tokens
        assert outcome.required == count(must) > max_tokens
        return
    ours = outcome
    if not ended(msgs, kwargs):  # end_on left nothing, as trim_messages would
        assert ours == []
        return
    event("fit_messages: trimmed" if len(ours) < len(msgs) else "fit_messages: everything fits")
    assert count(ours) <= max_tokens
    assert_no_orphans(ours, msgs)
    positions = [next(k for k, x in enumerate(msgs) if x is m) for m in ours]  # the input's own objects
    assert positions == sorted(set(positions))  # in order
    if "end_on" not in kwargs:
        assert ours[-1] is msgs[-1]
    if isinstance(msgs[0], SystemMessage):
        assert ours[0] is msgs[0]


def fit_outcome(msgs: list[BaseMessage], kwargs: dict[str, Any]) -> list[BaseMessage] | convkit.ConvkitError:
    try:
        return fit_messages(msgs, **kwargs)
    except (ContextWindowError, InvalidConversationError) as exc:
        return exc


def ended(msgs: list[BaseMessage], kwargs: dict[str, Any]) -> list[BaseMessage]:
    """The messages left after end_on (trailing messages of other types dropped)."""
    out = list(msgs)
    types = kwargs.get("end_on")
    while types and out and out[-1].type not in types:
        out.pop()
    return out


def must_keep(msgs: list[BaseMessage], kwargs: dict[str, Any]) -> list[BaseMessage]:
    """What fit always keeps (leading system, pinned, the newest turn), as convkit.testing sees it."""
    rest = ended(msgs, kwargs)
    converted = [from_langchain(m) for m in rest]
    units = trim_units(converted)
    lead = next((i for i, m in enumerate(converted) if m.role != "system"), len(converted))
    speaker = max(i for i, m in enumerate(converted) if m.role != "system")
    keep = [
        unit for unit in units if unit[-1] >= speaker or any(i < lead or converted[i].pinned for i in unit)
    ]
    return [rest[i] for unit in keep for i in unit]


def weather_conversation() -> list[BaseMessage]:
    return [
        SystemMessage("You are a weather bot."),
        HumanMessage("What is the weather in Paris?"),
        AIMessage(
            "",
            tool_calls=[
                {
                    "name": "get_weather",
                    "args": {"city": "Paris", "country": "France", "unit": "celsius", "days": 3},
                    "id": "call_1",
                }
            ],
        ),
        ToolMessage("18C", tool_call_id="call_1"),
        AIMessage("It is 18C in Paris."),
        HumanMessage("Thanks!"),
    ]


def test_trim_messages_orphans_a_tool_result_where_fit_messages_does_not() -> None:
    """The counterexample: a budget that holds the tool result but not the call that asked for it."""
    msgs = weather_conversation()
    same = {"max_tokens": 45, "token_counter": count_tokens_approximately, "include_system": True}
    theirs = trim_messages(msgs, strategy="last", **same)
    assert theirs == [msgs[0], msgs[3], msgs[4], msgs[5]]  # ToolMessage(call_1) without its AIMessage
    assert orphaned(theirs)

    ours = fit_messages(msgs, **same)
    assert ours == [msgs[0], msgs[4], msgs[5]]  # the call and its result went together
    assert_no_orphans(ours, msgs)
    assert count_tokens_approximately(ours) <= 45


def test_trim_messages_orphans_even_with_start_on_human() -> None:
    """With the recommended start_on="human", a user turn between a call and its result still splits it."""
    msgs = [
        SystemMessage("You are a weather bot."),
        AIMessage(
            "", tool_calls=[{"name": "get_weather", "args": {"city": "Paris, France"}, "id": "call_1"}]
        ),
        HumanMessage("Still there?"),
        ToolMessage("18C", tool_call_id="call_1"),
        HumanMessage("Thanks!"),
    ]
    same = {
        "max_tokens": 30,
        "token_counter": count_tokens_approximately,
        "include_system": True,
        "start_on": "human",
    }
    theirs = trim_messages(msgs, strategy="last", **same)
    assert theirs == [msgs[0], msgs[2], msgs[3], msgs[4]]
    assert orphaned(theirs)
    ours = fit_messages(msgs, **same)
    assert ours == [msgs[0], msgs[4]]
    assert_no_orphans(ours, msgs)


@given(conversation=conversations(max_size=14), position=st.integers(0, 110))
def test_fit_messages_with_convkit_counting_equals_fit(
    conversation: list[Message], position: int, tiny_counter: convkit.HFTokenCounter
) -> None:
    msgs = [to_langchain(m) for m in conversation]
    total = tiny_counter.count_messages(conversation, model="grok-2-vision-1212")
    max_tokens = min(8192, total * position // 100)
    try:
        ours = fit_messages(msgs, max_tokens=max_tokens, model="grok-2-vision-1212", counter=tiny_counter)
    except ContextWindowError:
        with pytest.raises(ContextWindowError):
            convkit.fit(
                conversation, model="grok-2-vision-1212", counter=tiny_counter, reserve=8192 - max_tokens
            )
        return
    reference = convkit.fit(
        conversation, model="grok-2-vision-1212", counter=tiny_counter, reserve=8192 - max_tokens
    )
    assert [from_langchain(m) for m in ours] == list(reference.messages)
    assert_fits(
        reference,
        conversation,
        counter=tiny_counter,
        model="grok-2-vision-1212",
        reserve=8192 - max_tokens,
        check_fit=False,
    )


def test_fit_messages_errors_and_options(tiny_counter: convkit.HFTokenCounter) -> None:
    msgs = weather_conversation()
    with pytest.raises(ContextWindowError) as info:
        fit_messages(msgs, max_tokens=5, token_counter="approximate")
    assert info.value.required > info.value.available == 5
    with pytest.raises(ContextWindowError):
        fit_messages(msgs, max_tokens=10, model="grok-2")
    with pytest.raises(ValidationError, match="strategy"):
        fit_messages(msgs, max_tokens=100, strategy="first")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="allow_partial"):
        fit_messages(msgs, max_tokens=100, allow_partial=True)
    # include_system=False (trim_messages may then drop the system prompt) is refused, not ignored
    dropped_system = trim_messages(msgs, max_tokens=20, token_counter="approximate", include_system=False)
    assert msgs[0] not in dropped_system
    for not_true in (False, None, 0):
        with pytest.raises(ValidationError, match="include_system"):
            fit_messages(msgs, max_tokens=1000, include_system=not_true)  # type: ignore[arg-type]
    assert fit_messages(msgs, max_tokens=1000, include_system=True) == msgs
    with pytest.raises(ValidationError, match="max_tokens"):
        fit_messages(msgs, max_tokens=-1)
    with pytest.raises(InvalidConversationError, match="call_1"):
        fit_messages(msgs[3:], max_tokens=1000)  # a tool result whose call is not there
    assert fit_messages([], max_tokens=10) == []
    # dict and tuple inputs, as trim_messages takes them
    assert fit_messages([("system", "s"), ("human", "hi")], max_tokens=100) == [
        SystemMessage("s"),
        HumanMessage("hi"),
    ]

    image = HumanMessage(
        [
            {"type": "text", "text": "what is this?"},
            {
                "type": "image_url",
                "image_url": {"url": f"data:image/png;base64,{base64.b64encode(png()).decode()}"},
            },
        ]
    )
    with pytest.raises(UnsupportedInputError):
        fit_messages([image], max_tokens=1000, model="grok-2")
    (dropped,) = fit_messages([image], max_tokens=1000, model="grok-2", images="drop")
    assert dropped.content[1] == {
        "type": "text",
        "text": "[image omitted: grok-2-1212 does not accept images]",
    }
    assert image.content[1]["type"] == "image_url"  # the input is not changed
    # images count by the tile rule: 512 tokens for a small image
    with pytest.raises(ContextWindowError):
        fit_messages([image], max_tokens=500, model="grok-2-vision-1212", counter=tiny_counter)

    # a pinned message survives a budget that drops older ones
    pinned = [
        HumanMessage("remember: order 1234", additional_kwargs={"convkit": {"pinned": True}}),
        *msgs[1:],
    ]
    kept = fit_messages(pinned, max_tokens=30, token_counter="approximate")
    assert kept[0] is pinned[0]
    assert kept[-1] is pinned[-1]


class _Recording(FakeMessagesListChatModel):
    """A fake chat model that records the messages each call was given."""

    seen: ClassVar[list[list[BaseMessage]]] = []

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def test_declarative_fit_messages_in_a_chain() -> None:
    """``fit_messages(max_tokens=...) | model``, as ``trim_messages(max_tokens=...) | model``."""
    model = _Recording(responses=[AIMessage("ok"), AIMessage("ok again")])
    _Recording.seen = []
    chain = fit_messages(max_tokens=45, token_counter="approximate") | model
    msgs: list[BaseMessage] = [
        SystemMessage("You are a weather bot."),
        HumanMessage("What is the weather in Paris? " * 3),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}]),
        ToolMessage("18C", tool_call_id="call_1"),
        AIMessage("It is 18C in Paris."),
        HumanMessage("Thanks!"),
    ]
    reply = chain.invoke(msgs)
    assert reply.content == "ok"
    assert model.seen[0] == fit_messages(msgs, max_tokens=45, token_counter="approximate")
    assert model.seen[0][0] == msgs[0]
    assert msgs[3] not in model.seen[0]  # its call went, so it went too (trim_messages keeps it)
    assert msgs[3] in trim_messages(msgs, max_tokens=45, token_counter="approximate", strategy="last")
    asyncio.run(chain.ainvoke(msgs))
    assert model.seen[1] == model.seen[0]
    # with convkit's counting for a Grok model, and a ChatPromptValue input
    from langchain_core.prompt_values import ChatPromptValue

    fitted = fit_messages(max_tokens=100_000, model="grok-2").invoke(ChatPromptValue(messages=msgs))
    assert fitted == msgs
    # bad options fail where the chain is built, not on its first call
    with pytest.raises(ValidationError, match="include_system"):
        fit_messages(max_tokens=10, include_system=False)
    with pytest.raises(ValidationError, match="max_tokens"):
        fit_messages(max_tokens=-1)
    with pytest.raises(convkit.UnknownModelError):
        fit_messages(max_tokens=10, model="grok-nope")


def test_fit_messages_counts_an_empty_reply_instead_of_refusing_the_thread(
    sqlite_store: convkit.Store,
) -> None:
    """Models do return replies with nothing to send (``AIMessage("")``, reasoning only); a graph keeps
    them in its state, and fitting that state (LangGraph's pre-model hook) must not fail on every later
    turn. Storing one is still refused (a stored message has content), saying what to give it."""
    msgs: list[BaseMessage] = [
        SystemMessage("You are terse."),
        HumanMessage("hi"),
        AIMessage(""),
        HumanMessage("again " * 30),
        AIMessage([{"type": "reasoning", "reasoning": "thinking only"}]),
        HumanMessage("and now?"),
    ]
    assert fit_messages(msgs, max_tokens=10_000, model="grok-4") == msgs
    assert fit_messages(max_tokens=10_000, model="grok-4").invoke(msgs) == msgs
    small = fit_messages(msgs, max_tokens=40, token_counter="approximate")
    assert small[0] is msgs[0]
    assert small[-1] is msgs[-1]
    assert len(small) < len(msgs)
    assert count_tokens_approximately(small) <= 40
    assert fit_messages(msgs[:3], max_tokens=10_000, model="grok-4") == msgs[:3]  # the newest, empty, kept
    history = ConvkitChatMessageHistory.create(sqlite_store)
    with pytest.raises(InvalidMessageError, match="assistant message is empty: give it text"):
        history.add_messages([HumanMessage("hi"), AIMessage("")])
    assert history.messages == []


def test_keyed_history_is_lazy_and_created_on_first_write(backend: str, tmp_path: Path) -> None:
    """``ConvkitChatMessageHistory(store, key=session_id)``: no I/O to make, created on the first write."""
    import sqlalchemy as sa

    with database_url(backend, tmp_path) as url:
        store = convkit.Store(url, upgrade=True)
        statements: list[str] = []
        sa.event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        try:
            history = ConvkitChatMessageHistory(store, key="user-42", title="Ada")
            assert statements == []  # making it did nothing
            assert "'user-42'" in repr(history)
            assert history.messages == []
            assert history.window(model="grok-2") == []
            history.clear()
            assert store.list_conversations() == []  # reads and clear create nothing
            history.add_messages([HumanMessage("hi"), AIMessage("hello")])
            conv = store.conversation_for("user-42", create=False)
            assert (conv.title, conv.message_count) == ("Ada", 2)
            assert history.conversation_id == conv.id
            # another history with the same key (another request, another process) finds it
            again = ConvkitChatMessageHistory(store, key="user-42")
            assert again.messages == [HumanMessage("hi"), AIMessage("hello")]
            assert asyncio.run(again.aget_messages()) == again.messages
            # a keyed history replaced before it exists is created by the replacement
            fresh = ConvkitChatMessageHistory(store, key="user-43")
            fresh.messages = [HumanMessage("new")]
            assert store.messages(store.conversation_for("user-43", create=False).id)[0].text == "new"
        finally:
            store.close()


def test_keyed_history_looks_its_key_up_again_after_a_delete(backend: str, tmp_path: Path) -> None:
    """A keyed history remembers its conversation's id; once that conversation is deleted (and the key
    perhaps taken again) it looks the key up once more instead of raising ConversationNotFoundError
    on every later call: reads find nothing and create nothing, writes create it anew. A history
    named by a conversation id still raises."""

    def gone(store: convkit.Store, history: ConvkitChatMessageHistory) -> None:
        store.delete_conversation(history.conversation_id)

    with database_url(backend, tmp_path) as url:
        store = convkit.Store(url, upgrade=True)
        try:
            history = ConvkitChatMessageHistory(store, key="user-9")
            history.add_messages([HumanMessage("first life")])
            first = history.conversation_id
            gone(store, history)
            assert history.messages == []
            assert history.window(model="grok-2") == []
            history.clear()
            assert store.find_conversation("user-9") is None  # the reads created nothing
            history.add_messages([HumanMessage("second life")])
            second = store.conversation_for("user-9", create=False)
            assert second.id not in (first, None)
            assert history.conversation_id == second.id
            gone(store, history)
            history.messages = [HumanMessage("replaced")]
            gone(store, history)
            third = store.conversation_for("user-9")  # the key taken again by someone else
            store.append(third.id, {"role": "user", "content": "third life"})
            assert history.messages == [HumanMessage("third life")]
            assert history.conversation_id == third.id

            by_id = ConvkitChatMessageHistory.create(store)
            gone(store, by_id)
            with pytest.raises(convkit.ConversationNotFoundError):
                _ = by_id.messages
        finally:
            store.close()

    async def main(url: str) -> None:
        astore = convkit.AsyncStore(url, upgrade=True)
        try:
            history = ConvkitChatMessageHistory(astore, key="async-9")
            await history.aadd_messages([HumanMessage("first life")])
            first = cast(str, history._conversation_id)
            await astore.delete_conversation(first)
            assert await history.aget_messages() == []
            assert await history.awindow(model="grok-2") == []
            await history.aclear()
            assert await astore.find_conversation("async-9") is None
            await history.aadd_messages([HumanMessage("second life")])
            assert await history.aget_messages() == [HumanMessage("second life")]
            await astore.delete_conversation(cast(str, history._conversation_id))
            await history.areplace_messages([HumanMessage("replaced")])
            conv = await astore.conversation_for("async-9", create=False)
            assert [m.text for m in await astore.messages(conv.id)] == ["replaced"]
        finally:
            await astore.close()

    (tmp_path / "async").mkdir()
    with database_url(backend, tmp_path / "async", "async") as url:
        asyncio.run(main(url))


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
def test_keyed_history_under_runnable_with_message_history(backend: str, tmp_path: Path) -> None:
    """``RunnableWithMessageHistory`` with a keyed history per session id: invoke on a Store, ainvoke on
    an AsyncStore; sessions are separate and resume from the store."""
    from langchain_core.runnables.history import RunnableWithMessageHistory

    def chain_for(history_of: Any) -> Any:
        model = FakeMessagesListChatModel(responses=[AIMessage(f"reply {i}") for i in range(4)])
        return RunnableWithMessageHistory(model, history_of)

    with database_url(backend, tmp_path) as url:
        store = convkit.Store(url, upgrade=True)
        try:
            chain = chain_for(lambda session_id: ConvkitChatMessageHistory(store, key=session_id))
            for session, text in (("a", "hi"), ("b", "hey"), ("a", "again")):
                chain.invoke([HumanMessage(text)], config={"configurable": {"session_id": session}})
            a = store.messages(store.conversation_for("a", create=False).id)
            b = store.messages(store.conversation_for("b", create=False).id)
            assert [m.text for m in a] == ["hi", "reply 0", "again", "reply 2"]
            assert [m.text for m in b] == ["hey", "reply 1"]
        finally:
            store.close()

    async def main(url: str) -> None:
        astore = convkit.AsyncStore(url, upgrade=True)
        try:
            made: list[ConvkitChatMessageHistory] = []

            def history_of(session_id: str) -> ConvkitChatMessageHistory:
                made.append(ConvkitChatMessageHistory(astore, key=session_id))
                return made[-1]

            chain = chain_for(history_of)
            await asyncio.gather(
                *(
                    chain.ainvoke([HumanMessage(f"hi {n}")], config={"configurable": {"session_id": f"s{n}"}})
                    for n in range(3)
                )
            )
            await chain.ainvoke([HumanMessage("more")], config={"configurable": {"session_id": "s0"}})
            s0 = await astore.messages((await astore.conversation_for("s0", create=False)).id)
            texts = [m.text for m in s0]
            assert len(texts) == 4
            assert (texts[0], texts[2]) == ("hi 0", "more")
            assert len(await astore.list_conversations()) == 3
            with pytest.raises(ValidationError, match="AsyncStore"):
                _ = made[0].messages  # the sync API refuses an AsyncStore, saying what to use
        finally:
            await astore.close()

    (tmp_path / "async").mkdir()
    with database_url(backend, tmp_path / "async", "async") as url:
        asyncio.run(main(url))


def test_history_is_named_by_exactly_one_of_id_and_key(sqlite_store: convkit.Store) -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        ConvkitChatMessageHistory(sqlite_store)
    with pytest.raises(ValidationError, match="exactly one"):
        ConvkitChatMessageHistory(sqlite_store, "k", conversation_id="some-id")
    with pytest.raises(ValidationError, match="exactly one"):
        ConvkitChatMessageHistory(sqlite_store, key="k", conversation_id="some-id")
    for bad in ("", "x" * 256, "a\x00b"):
        with pytest.raises(ValidationError, match="key"):
            ConvkitChatMessageHistory(sqlite_store, bad)
        with pytest.raises(ValidationError, match="key"):
            ConvkitChatMessageHistory(sqlite_store, key=bad)


def test_the_positional_argument_is_the_key_as_in_the_other_adapters(backend: str, tmp_path: Path) -> None:
    """``ConvkitChatMessageHistory(store, "user-42")`` names the conversation keyed "user-42", as
    ``ConvkitSession(store, "user-42")`` and LangChain's ``SQLChatMessageHistory(session_id)`` do:
    reads before the first write find nothing (and create nothing), the first write creates it;
    ``key=`` is the same argument."""
    with database_url(backend, tmp_path) as url:
        store = convkit.Store(url, upgrade=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                history = ConvkitChatMessageHistory(store, "user-42")
                assert history.key == "user-42"
                assert history.messages == []
                assert history.window(model="grok-2") == []
                history.clear()
                assert store.list_conversations() == []
                history.add_messages([HumanMessage("hi")])
                conv = store.conversation_for("user-42", create=False)
                assert history.conversation_id == conv.id
                assert ConvkitChatMessageHistory(store, key="user-42").messages == [HumanMessage("hi")]
        finally:
            store.close()


def test_an_old_style_conversation_id_still_opens_its_conversation(tmp_path: Path) -> None:
    """Code from before keys passed a conversation id positionally: it keeps its history, with a
    DeprecationWarning naming for_conversation (one rule with the Agents session); a key that names
    a conversation wins; for_conversation / conversation_id= wrap an id with no warning."""
    store = convkit.Store(f"sqlite:///{tmp_path / 'legacy.db'}")
    try:
        conv = store.create_conversation()
        store.append(conv.id, {"role": "user", "content": "old"})
        with pytest.warns(DeprecationWarning, match=r"ConvkitChatMessageHistory\.for_conversation") as w:
            assert ConvkitChatMessageHistory(store, conv.id).messages == [HumanMessage("old")]
        assert w[0].filename == __file__  # the warning points at the caller's line
        history = ConvkitChatMessageHistory(store, conv.id)
        with pytest.warns(DeprecationWarning, match="now the session id"):
            history.add_messages([AIMessage("new")])
        assert history.conversation_id == conv.id
        assert len(store.messages(conv.id)) == 2
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert len(ConvkitChatMessageHistory.for_conversation(store, conv.id).messages) == 2
            assert len(ConvkitChatMessageHistory(store, conversation_id=conv.id).messages) == 2
            keyed = store.create_conversation(key=conv.id)  # now a key names a conversation
            assert ConvkitChatMessageHistory(store, conv.id).messages == []
            assert ConvkitChatMessageHistory(store, conv.id).conversation_id == keyed.id

        async def main() -> None:
            astore = convkit.AsyncStore(f"sqlite:///{tmp_path / 'legacy-async.db'}")
            try:
                old = await astore.create_conversation()
                await astore.append(old.id, {"role": "user", "content": "old"})
                with pytest.warns(DeprecationWarning, match="for_conversation"):
                    assert await ConvkitChatMessageHistory(astore, old.id).aget_messages() == [
                        HumanMessage("old")
                    ]
            finally:
                await astore.close()

        asyncio.run(main())
    finally:
        store.close()


def test_create_on_an_async_store_says_to_await_acreate(tmp_path: Path) -> None:
    """``create`` is synchronous: on an AsyncStore it is refused before anything is called (no
    coroutine left unawaited), naming ``acreate``; ``acreate`` works on both kinds of store."""

    async def main() -> None:
        astore = convkit.AsyncStore(f"sqlite:///{tmp_path / 'a.db'}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with pytest.raises(
                    ValidationError, match=r"await ConvkitChatMessageHistory\.acreate\(store\)"
                ):
                    ConvkitChatMessageHistory.create(astore)  # type: ignore[arg-type]
                gc.collect()  # a coroutine never awaited would warn here
            assert await astore.list_conversations() == []
            history = await ConvkitChatMessageHistory.acreate(astore, title="t")
            assert history.key is None
            assert (await astore.get_conversation(await history.aconversation_id())).title == "t"
        finally:
            await astore.close()

    asyncio.run(main())


def test_aconversation_id_is_the_async_twin_of_conversation_id(tmp_path: Path) -> None:
    """On an AsyncStore, where ``conversation_id`` refuses (it is synchronous), ``aconversation_id``
    gives the id: for a key, of the conversation ``conversation_for`` names (created if need be, as
    ``conversation_id`` does); reads before it created nothing."""

    async def main() -> None:
        astore = convkit.AsyncStore(f"sqlite:///{tmp_path / 'a.db'}")
        try:
            history = ConvkitChatMessageHistory(astore, "user-5")
            with pytest.raises(ValidationError, match="conversation_id is synchronous"):
                _ = history.conversation_id
            assert await history.aget_messages() == []
            assert await astore.find_conversation("user-5") is None  # a read creates nothing
            cid = await history.aconversation_id()
            assert cid == (await astore.conversation_for("user-5", create=False)).id
            assert await ConvkitChatMessageHistory(astore, key="user-5").aconversation_id() == cid
            made = await astore.create_conversation()
            assert (
                await ConvkitChatMessageHistory.for_conversation(astore, made.id).aconversation_id()
                == made.id
            )
        finally:
            await astore.close()

    asyncio.run(main())

    with convkit.Store(f"sqlite:///{tmp_path / 's.db'}") as store:  # on a Store: the same as the property
        history = ConvkitChatMessageHistory(store, "user-6")
        cid = asyncio.run(history.aconversation_id())
        assert cid == history.conversation_id == store.conversation_for("user-6", create=False).id


def test_readme_langchain_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = readme_block("langchain")
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md:langchain", "exec"), namespace)
    store = namespace.get("store")
    if store is not None:
        store.close()


_ = (ImagePart,)
