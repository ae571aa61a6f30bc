"""The OpenAI Agents SDK adapter, against the real ``openai-agents``.

* ``ConvkitSession`` satisfies the SDK's runtime-checkable ``Session``
  protocol; its session id is a key: ``ConvkitSession(store, "user-42")``
  names ``store.conversation_for("user-42")``, created by the first write
  (making a session, and reading a key never written, do no write), shared
  by every session object of that id, one conversation under concurrent
  first uses; ``for_conversation``/``create`` wrap or make a conversation by
  its convkit id, and an old-style conversation id still opens its
  conversation, with a ``DeprecationWarning``.
* The SDK's own ``Runner`` runs a multi-turn, tool-calling conversation (a
  scripted model, tracing off, no network) through keyed sessions, a new
  session object each turn, on SQLite and PostgreSQL, with an ``AsyncStore``
  and with a ``Store``.
* Items round-trip exactly (property test): ``get_items`` returns what
  ``add_items`` stored, for messages, function calls and outputs, images,
  and items convkit does not know; ``limit``, ``pop_item``,
  ``clear_session``.
* Window, then limit: on a long session the model sees only the window that
  fits the chosen model, with tool calls and their outputs together; a
  ``limit`` then takes the newest items of that window and drops a call
  output whose call it cut (property test over random sessions and limits;
  examples; the Runner with ``SessionSettings(limit=...)`` and a
  ``session_input_callback``, which the SDK does not prune).
* The README's Agents SDK examples run: the session example, and a whole
  two-turn agent on Grok (``OpenAIChatCompletionsModel``) against convkit's
  xAI stand-in on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from agents import Agent, RunConfig, Runner, RunState, function_tool, set_tracing_disabled
from agents.items import ModelResponse
from agents.memory import Session
from agents.models.interface import Model
from agents.usage import Usage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

import convkit
from convkit import ContextWindowError, ModelSpec, ValidationError
from convkit.integrations.agents import ITEM_KEY, ConvkitSession, item_to_message, message_to_items
from convkit.testing import Reply, XAIStandIn
from convkit.testing.strategies import image_bytes, json_values, texts

from ._integrations import database_url, png, readme_block

set_tracing_disabled(True)  # the SDK would otherwise export traces over the network


# -- a scripted model for the SDK's Runner --------------------------------------------------------


def say(text: str, n: int) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=f"msg_{n}",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def call(call_id: str, name: str, arguments: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        type="function_call",
        call_id=call_id,
        name=name,
        arguments=arguments,
        id=f"fc_{call_id}",
        status="completed",
    )


class ScriptedModel(Model):
    """Answers each request with the next scripted output; records the input it was given."""

    def __init__(self, turns: list[list[Any]]) -> None:
        self.turns = list(turns)
        self.inputs: list[list[dict[str, Any]]] = []

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[Any],
        model_settings: Any,
        tools: list[Any],
        output_schema: Any,
        handoffs: list[Any],
        tracing: Any,
        **kwargs: Any,
    ) -> ModelResponse:
        self.inputs.append(json.loads(json.dumps(input, default=str)))
        return ModelResponse(output=self.turns.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - not used
        raise NotImplementedError


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"18C and sunny in {city}"


@function_tool
def get_time(tz: str) -> str:
    """The time in a time zone."""
    return f"14:00 in {tz}"


EXACT = '{"city":  "Paris"}'


def script() -> list[list[Any]]:
    return [
        [call("call_1", "get_weather", EXACT)],
        [say("It is 18C in Paris.", 1)],
        [
            call("call_2", "get_weather", '{"city": "Oslo"}'),
            call("call_3", "get_time", '{"tz": "Europe/Oslo"}'),
        ],
        [say("Oslo: 18C, 14:00.", 2)],
        [say("You asked about Paris and Oslo.", 3)],
    ]


async def run_conversation(sessions: Callable[[], Session]) -> ScriptedModel:
    """Three turns through the Runner, each on a new session object (as each request of a
    server would make one): what a turn sees of the earlier ones comes from the store."""
    model = ScriptedModel(script())
    agent = Agent(name="weather", instructions="Be terse.", model=model, tools=[get_weather, get_time])
    for question in ("Weather in Paris?", "And Oslo, with the time?", "What did I ask about?"):
        await Runner.run(agent, question, session=sessions())
    return model


def check_conversation(model: ScriptedModel, items: list[dict[str, Any]]) -> None:
    kinds = [i.get("type", "message") for i in items]
    assert kinds == [
        "message",
        "function_call",
        "function_call_output",
        "message",
        "message",
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
        "message",
        "message",
        "message",
    ]
    assert items[1]["arguments"] == EXACT  # the exact text
    assert items[2] == {
        "call_id": "call_1",
        "output": "18C and sunny in Paris",
        "type": "function_call_output",
    }
    # the last turn's model input is the whole stored history plus the new question
    assert model.inputs[-1] == [*items[:-2], items[-2]]


def test_session_is_an_agents_session_named_by_its_key() -> None:
    store = convkit.Store("sqlite://")
    try:
        session = ConvkitSession(store, "user-42", window_model="grok-2")
        assert isinstance(session, Session)
        assert (session.session_id, session.key, session.conversation_id) == ("user-42", "user-42", None)
        assert store.list_conversations() == []  # making a session does no I/O
        conv = store.create_conversation()
        wrapped = ConvkitSession.for_conversation(store, conv.id, session_id="label")
        assert (wrapped.session_id, wrapped.key, wrapped.conversation_id) == ("label", None, conv.id)
        same = ConvkitSession(store, conversation_id=conv.id)
        assert (same.session_id, same.conversation_id) == (conv.id, conv.id)
        assert "user-42" in repr(session)
        assert conv.id in repr(same)
        with pytest.raises(ValidationError, match="Store"):
            ConvkitSession(object(), "c")  # type: ignore[arg-type]
        for bad in ("", "x" * 256, "a\x00b", 42):
            with pytest.raises(ValidationError, match="session_id"):
                ConvkitSession(store, bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="session_id"):
            ConvkitSession(store)
        with pytest.raises(ValidationError, match="conversation_id"):
            ConvkitSession(store, conversation_id="")
        with pytest.raises(ValidationError, match="title"):
            ConvkitSession(store, conversation_id=conv.id, title="t")
        with pytest.raises(TypeError):  # the old ConvkitSession(store, conversation_id, session_id=...)
            ConvkitSession(store, conv.id, session_id="s")  # type: ignore[misc]
        assert ConvkitSession(store, "x" * 255).session_id == "x" * 255
    finally:
        store.close()


def test_window_settings_are_checked_when_the_session_is_made(tmp_path: Path) -> None:
    """A bad window_model, reserve or counter fails at construction, before add_items stores
    anything, as WindowHook and ConvkitMemory do; reserve/counter without a model are refused,
    not silently ignored."""
    store = convkit.Store(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        with pytest.raises(convkit.UnknownModelError, match="grok-9000"):
            ConvkitSession(store, "k", window_model="grok-9000")
        for reserve in (-1, True, "8"):
            with pytest.raises(ValidationError, match="reserve"):
                ConvkitSession(store, "k", window_model="grok-2", reserve=reserve)  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="counter"):
            ConvkitSession(store, "k", window_model="grok-2", counter="tiktoken")  # type: ignore[arg-type]
        for kwargs in ({"reserve": 1024}, {"counter": convkit.EstimateCounter()}):
            with pytest.raises(ValidationError, match="window_model"):
                ConvkitSession(store, "k", **kwargs)  # type: ignore[arg-type]
        with pytest.raises(convkit.UnknownModelError):
            asyncio.run(ConvkitSession.create(store, window_model="grok-9000"))
        assert store.list_conversations() == []  # nothing was created by any of them
        ok = ConvkitSession(store, "k", window_model="grok-2", reserve=0, counter=convkit.EstimateCounter())
        assert ok.reserve == 0
    finally:
        store.close()


def test_a_created_session_reopens_by_its_session_id(tmp_path: Path) -> None:
    """create() keys the new conversation by a fresh session id: ConvkitSession(store,
    session.session_id) opens it again with no DeprecationWarning."""

    async def main() -> None:
        store = convkit.AsyncStore(f"sqlite:///{tmp_path / 'c.db'}")
        try:
            made = await ConvkitSession.create(store, title="t", metadata={"a": 1})
            assert made.key == made.session_id
            assert len(made.session_id) == 32
            conv = await store.get_conversation(cast(str, made.conversation_id))
            assert (conv.key, conv.title, conv.metadata) == (made.session_id, "t", {"a": 1})
            await made.add_items([{"role": "user", "content": "hi"}])
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                again = ConvkitSession(store, made.session_id)
                assert await again.get_items() == [{"role": "user", "content": "hi"}]
            assert again.conversation_id == conv.id
            other = await ConvkitSession.create(store)
            assert other.session_id != made.session_id
            for named in ({"session_id": "s"}, {"conversation_id": conv.id}):
                with pytest.raises(ValidationError, match="leave out"):
                    await ConvkitSession.create(store, **named)
            assert len(await store.list_conversations()) == 2
        finally:
            await store.close()

    asyncio.run(main())


def test_a_key_is_created_by_its_first_write_only(backend: str, tmp_path: Path) -> None:
    """Reading, popping or clearing a key never written creates nothing (the SDK's SQLiteSession
    neither); the first add_items creates it with title and metadata; every session object of
    that id, and concurrent first writers, share the one conversation."""

    async def main(url: str) -> None:
        store = convkit.AsyncStore(url, upgrade=True)
        try:
            fresh = ConvkitSession(
                store, "user-7", title="support", metadata={"plan": "pro"}, window_model="grok-2"
            )
            assert await fresh.get_items() == []
            assert await fresh.get_items(limit=3) == []
            assert await fresh.pop_item() is None
            await fresh.clear_session()
            await fresh.add_items([])
            assert await store.list_conversations() == []
            assert fresh.conversation_id is None

            await fresh.add_items([{"role": "user", "content": "hello"}])
            conv = await store.conversation_for("user-7", create=False)
            assert (conv.id, conv.key, conv.title, conv.metadata) == (
                fresh.conversation_id,
                "user-7",
                "support",
                {"plan": "pro"},
            )
            other = ConvkitSession(store, "user-7")
            assert await other.get_items() == [{"role": "user", "content": "hello"}]
            assert (await other.conversation()).id == conv.id
            await other.clear_session()  # emptied, still the key's conversation
            assert (await store.conversation_for("user-7", create=False)).id == conv.id
            assert await fresh.get_items() == []

            # concurrent first writes of one new key, from separate session objects: one conversation
            writers = [ConvkitSession(store, "busy") for _ in range(8)]
            await asyncio.gather(
                *(w.add_items([{"role": "user", "content": f"m{n}"}]) for n, w in enumerate(writers))
            )
            assert len({w.conversation_id for w in writers}) == 1
            got = await ConvkitSession(store, "busy").get_items()
            assert sorted(i["content"] for i in got) == [f"m{n}" for n in range(8)]
            assert len(await store.list_conversations()) == 2
            # a conversation made by conversation() has the key too
            made = await ConvkitSession(store, "made-now").conversation()
            assert made.key == "made-now"
            assert made.message_count == 0
        finally:
            await store.close()

    with database_url(backend, tmp_path, "async") as url:
        asyncio.run(main(url))


def test_a_session_whose_conversation_was_deleted_looks_its_key_up_again(
    backend: str, tmp_path: Path
) -> None:
    """A session remembers its key's conversation id; once that conversation is deleted (and the key
    perhaps taken again) every call looks the key up once more instead of raising
    ConversationNotFoundError for ever. A session on a conversation id (no key) still raises."""

    async def main(url: str) -> None:
        store = convkit.AsyncStore(url, upgrade=True)
        try:
            session = ConvkitSession(store, "user-9")
            await session.add_items([{"role": "user", "content": "first life"}])
            first = session.conversation_id
            assert first is not None
            await store.delete_conversation(first)
            assert await session.get_items() == []  # read: nothing, and nothing created
            assert await session.pop_item() is None
            await session.clear_session()
            assert await store.find_conversation("user-9") is None
            await session.add_items([{"role": "user", "content": "second life"}])  # write: created anew
            second = await store.find_conversation("user-9")
            assert second is not None
            assert second.id != first
            assert session.conversation_id == second.id
            assert await session.get_items() == [{"role": "user", "content": "second life"}]

            # deleted, and the key taken again by someone else: the session follows the key
            await store.delete_conversation(second.id)
            third = await store.conversation_for("user-9")
            await store.append(third.id, {"role": "user", "content": "third life"})
            assert await session.get_items(limit=5) == [{"role": "user", "content": "third life"}]
            assert session.conversation_id == third.id
            await store.delete_conversation(third.id)
            assert (await session.conversation()).key == "user-9"  # created again

            made = await ConvkitSession.create(store)  # keyed by its new session id: follows it too
            await store.delete_conversation(cast(str, made.conversation_id))
            assert await made.get_items() == []

            unkeyed = ConvkitSession.for_conversation(store, (await store.create_conversation()).id)
            await store.delete_conversation(cast(str, unkeyed.conversation_id))
            with pytest.raises(convkit.ConversationNotFoundError):
                await unkeyed.get_items()
        finally:
            await store.close()

    with database_url(backend, tmp_path, "async") as url:
        asyncio.run(main(url))


def test_an_old_style_conversation_id_still_opens_its_conversation(tmp_path: Path) -> None:
    """Code from before keys passed a conversation id: it keeps its history, with a warning; a key
    that names a conversation wins over an id."""

    async def main() -> None:
        store = convkit.AsyncStore(f"sqlite:///{tmp_path / 'legacy.db'}")
        try:
            conv = await store.create_conversation()
            await store.append(conv.id, {"role": "user", "content": "old"})
            with pytest.warns(DeprecationWarning, match="for_conversation"):
                assert await ConvkitSession(store, conv.id).get_items() == [
                    {"role": "user", "content": "old"}
                ]
            session = ConvkitSession(store, conv.id)
            with pytest.warns(DeprecationWarning, match="now the session id"):
                await session.add_items([{"role": "assistant", "content": "new"}])
            assert session.conversation_id == conv.id
            assert len(await store.messages(conv.id)) == 2
            keyed = await store.create_conversation(key=conv.id)  # now a key names a conversation
            assert await ConvkitSession(store, conv.id).get_items() == []
            assert (await ConvkitSession(store, conv.id).conversation()).id == keyed.id
        finally:
            await store.close()

    asyncio.run(main())


def test_runner_multi_turn_tool_calling_on_an_async_store(backend: str, tmp_path: Path) -> None:
    async def main(url: str) -> None:
        store = convkit.AsyncStore(url, upgrade=True)
        try:
            # keyed sessions, the window on (a big model: it keeps everything)
            model = await run_conversation(
                lambda: ConvkitSession(store, "user-42", window_model="grok-2", reserve=1024)
            )
            session = ConvkitSession(store, "user-42")
            items = await session.get_items()
            check_conversation(model, items)
            assert model.inputs[0] == [{"role": "user", "content": "Weather in Paris?"}]  # began empty
            (conv,) = await store.list_conversations()
            assert conv.key == "user-42"
            stored = await store.messages(conv.id)
            assert [m.role for m in stored[:4]] == ["user", "assistant", "tool", "assistant"]
            assert stored[1].tool_calls[0].arguments == EXACT
            assert stored[2].tool_call_id == "call_1"
            # limit, pop_item, clear_session
            assert await session.get_items(limit=3) == items[-3:]
            assert await session.get_items(limit=0) == []
            assert await session.pop_item() == items[-1]
            assert await session.get_items() == items[:-1]
            await session.clear_session()
            assert await session.get_items() == []
            assert await session.pop_item() is None
            # a conversation wrapped by its id, as before keys
            created = await ConvkitSession.create(store, title="weather")
            model = await run_conversation(
                lambda: ConvkitSession.for_conversation(store, str(created.conversation_id))
            )
            check_conversation(model, await created.get_items())
        finally:
            await store.close()

    with database_url(backend, tmp_path, "async") as url:
        asyncio.run(main(url))


def test_runner_on_a_sync_store(backend: str, tmp_path: Path) -> None:
    with database_url(backend, tmp_path) as url:
        store = convkit.Store(url, upgrade=True)
        try:
            model = asyncio.run(run_conversation(lambda: ConvkitSession(store, "user-42")))
            items = asyncio.run(ConvkitSession(store, "user-42").get_items())
            check_conversation(model, items)
            conv = store.conversation_for("user-42", create=False)
            assert [m.role for m in store.messages(conv.id)][-2:] == ["user", "assistant"]
        finally:
            store.close()


@function_tool(needs_approval=True)
def refund(order: str) -> str:
    """Refund an order."""
    return f"refunded {order}"


def test_an_approval_resumes_on_a_keyed_session(backend: str, tmp_path: Path) -> None:
    """Human in the loop: the run stops at a tool needing approval, its state goes out as JSON,
    and a later request resumes it on a new session object of the same id (the SDK reads the
    session's tail to settle its pending write); the history ends complete and in order."""

    async def main(url: str) -> None:
        store = convkit.AsyncStore(url, upgrade=True)
        try:
            model = ScriptedModel([[call("c1", "refund", '{"order": "A1"}')], [say("Refunded.", 1)]])
            agent = Agent(name="refunds", model=model, tools=[refund])
            first = await Runner.run(agent, "Refund A1", session=ConvkitSession(store, "user-9"))
            assert [i.raw_item.name for i in first.interruptions] == ["refund"]  # type: ignore[union-attr]
            state = await RunState.from_json(agent, first.to_state().to_json())
            for interruption in state.get_interruptions():
                state.approve(interruption)
            second = await Runner.run(agent, state, session=ConvkitSession(store, "user-9"))
            assert second.final_output == "Refunded."
            items = await ConvkitSession(store, "user-9").get_items()
            assert [i.get("type", "message") for i in items] == [
                "message",
                "function_call",
                "function_call_output",
                "message",
            ]
            assert items[2] == {"call_id": "c1", "output": "refunded A1", "type": "function_call_output"}
            assert model.inputs[1][1:3] == items[1:3]  # the model saw the call and its output
        finally:
            await store.close()

    with database_url(backend, tmp_path, "async") as url:
        asyncio.run(main(url))


def test_window_option_keeps_tool_pairs_and_the_system_prompt(tmp_path: Path) -> None:
    small = ModelSpec("agents-small", 400, {"text", "image"}, message_overhead=5, request_overhead=2)
    counter = convkit.EstimateCounter(margin=0)

    async def main() -> None:
        store = convkit.AsyncStore(f"sqlite:///{tmp_path / 'w.db'}", counters=[counter])
        try:
            conv = await store.create_conversation()
            full = ConvkitSession.for_conversation(store, conv.id)
            windowed = ConvkitSession.for_conversation(
                store, conv.id, window_model=small, counter=counter, reserve=50
            )
            items: list[dict[str, Any]] = [{"role": "developer", "content": "Be terse."}]
            for n in range(12):
                items += [
                    {"role": "user", "content": f"Question {n}: " + "what is the weather like? " * 3},
                    {
                        "type": "function_call",
                        "call_id": f"c{n}",
                        "name": "get_weather",
                        "arguments": json.dumps({"n": n}),
                    },
                    {"type": "function_call_output", "call_id": f"c{n}", "output": "sunny " * 10},
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": f"Answer {n}."}],
                    },
                ]
            await full.add_items(items)  # type: ignore[arg-type]
            assert await full.get_items() == items
            window = await windowed.get_items()
            assert window[0] == items[0]  # the system prompt stays
            assert window[-1] == items[-1]  # the newest item stays
            assert 2 < len(window) < len(items)
            ids = [i.get("call_id") for i in window if i.get("type") == "function_call"]
            outs = [i.get("call_id") for i in window if i.get("type") == "function_call_output"]
            assert ids == outs  # every call with its output, no orphan output
            result = await store.window(conv.id, model=small, counter=counter, reserve=50)
            assert window == [i for m in result.messages for i in message_to_items(m)]
            # then the limit: the newest items of the window, never an output without its call
            assert window[-2]["type"] == "function_call_output"
            assert await windowed.get_items(limit=2) == window[-1:]  # c11's output lost its call
            assert await windowed.get_items(limit=3) == window[-3:]

            # the Runner sees only the window
            model = ScriptedModel([[say("Fine.", 99)]])
            agent = Agent(name="w", model=model)
            await Runner.run(agent, "And now?", session=windowed)
            assert model.inputs[0][0] == items[0]
            assert len(model.inputs[0]) < len(items)

            # when even the newest turn cannot fit: a typed error, not a silent overflow
            tight = ConvkitSession.for_conversation(
                store, conv.id, window_model=small, counter=counter, reserve=390
            )
            with pytest.raises(ContextWindowError):
                await tight.get_items()
            empty = ConvkitSession(store, "rules-only", window_model=small)
            assert await empty.get_items() == []
            await empty.add_items([{"role": "system", "content": "only rules"}])
            assert await empty.get_items() == [{"role": "system", "content": "only rules"}]
            # system messages only are all sent, so they are counted: refused when they do not fit
            rules = [{"role": "system", "content": "rule " * 40}, {"role": "developer", "content": "more"}]
            await empty.add_items(rules)  # type: ignore[arg-type]
            need = counter.count_messages(
                [item_to_message({"role": "system", "content": "only rules"})]
                + [item_to_message(i) for i in rules],
                model=small,
            )
            fits = ConvkitSession(
                store, "rules-only", window_model=small, counter=counter, reserve=small.context_window - need
            )
            assert [i["content"] for i in await fits.get_items()] == ["only rules", "rule " * 40, "more"]
            over = ConvkitSession(
                store,
                "rules-only",
                window_model=small,
                counter=counter,
                reserve=small.context_window - need + 1,
            )
            with pytest.raises(ContextWindowError, match="only system messages"):
                await over.get_items()
        finally:
            await store.close()

    asyncio.run(main())


# -- item mapping -------------------------------------------------------------------------------

_TEXT = texts(max_size=40)
_DATA_URL = image_bytes(max_side=32).map(
    lambda b: (
        ("data:image/png;base64," if b.startswith(b"\x89PNG") else "data:image/jpeg;base64,")
        + base64.b64encode(b).decode()
    )
)
_CONTENT_PARTS = st.one_of(
    _TEXT.map(lambda t: {"type": "input_text", "text": t}),
    st.builds(
        lambda u, d: {"type": "input_image", "image_url": u, "detail": d},
        _DATA_URL,
        st.sampled_from(["auto", "low", "high"]),
    ),
    st.just({"type": "input_image", "image_url": "https://img.example.com/a.png", "detail": "auto"}),
    st.just({"type": "input_file", "file_id": "file-123"}),
)
_MESSAGE_ITEMS = st.one_of(
    st.builds(
        lambda r, c: {"role": r, "content": c},
        st.sampled_from(["user", "system", "developer", "assistant"]),
        _TEXT,
    ),
    st.builds(lambda c: {"role": "user", "content": c}, st.lists(_CONTENT_PARTS, min_size=1, max_size=3)),
    st.builds(
        lambda t, n: {
            "id": f"msg_{n}",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": t, "annotations": []}],
        },
        _TEXT,
        st.integers(0, 99),
    ),
    st.just({"role": "user", "content": ""}),  # empty: kept as its JSON text
)
_ARGUMENTS = st.one_of(
    st.dictionaries(texts(max_size=6), json_values(max_leaves=3), max_size=3).map(json.dumps),
    st.just('{"city": "Par'),  # not JSON: kept verbatim, still a tool call
    st.just(""),  # a call without parameters, as some models send it
)
_OTHER_ITEMS = st.one_of(
    st.builds(lambda n: {"type": "reasoning", "id": f"rs_{n}", "summary": []}, st.integers(0, 9)),
    st.builds(lambda n: {"type": "item_reference", "id": f"msg_{n}"}, st.integers(0, 9)),
)
_ORPHAN_OUTPUT = st.builds(
    lambda t: {"type": "custom_tool_call_output", "call_id": "nope", "output": t}, _TEXT
)


@st.composite
def item_lists(
    draw: st.DrawFn,
    messages: st.SearchStrategy[dict[str, Any]] = _MESSAGE_ITEMS,
    others: st.SearchStrategy[dict[str, Any]] = _OTHER_ITEMS,
    size: int = 8,
) -> list[dict[str, Any]]:
    """Items as the SDK adds them: messages, calls with their outputs (or not), other items."""
    out: list[dict[str, Any]] = []
    for n in range(draw(st.integers(1, size))):
        kind = draw(st.sampled_from(["message", "message", "call", "calls", "other"]))
        if kind == "message":
            out.append(draw(messages))
        elif kind == "other":
            out.append(draw(others))
        elif kind == "calls":  # parallel calls, then the outputs of some, in any order
            cids = [f"call_{n}a", f"call_{n}b"]
            out += [{"type": "function_call", "call_id": c, "name": "g", "arguments": "{}"} for c in cids]
            answered = draw(
                st.permutations(cids).flatmap(lambda p: st.lists(st.sampled_from(p), unique=True))
            )
            out += [{"type": "function_call_output", "call_id": c, "output": draw(_TEXT)} for c in answered]
        else:
            cid = f"call_{n}"
            out.append(
                {
                    "type": "function_call",
                    "call_id": cid,
                    "name": "f",
                    "arguments": draw(_ARGUMENTS),
                    "id": f"fc_{n}",
                }
            )
            if draw(st.booleans()):
                output: Any = draw(
                    st.one_of(_TEXT, st.just(""), st.lists(_CONTENT_PARTS, min_size=1, max_size=2))
                )
                out.append({"type": "function_call_output", "call_id": cid, "output": output})
    return out


@given(item_lists(others=st.one_of(_OTHER_ITEMS, _ORPHAN_OUTPUT)))
def test_items_round_trip_through_messages(items: list[dict[str, Any]]) -> None:
    for item in items:
        m = item_to_message(item)
        assert message_to_items(m) == [item]
        for part in m.images:
            if part.data is not None:  # image bytes are kept in the part, not in the stored item
                assert base64.b64encode(part.data).decode() not in json.dumps(m.metadata)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(item_lists(), min_size=1, max_size=3))
def test_items_round_trip_through_a_store(
    sqlite_store: convkit.Store, batches: list[list[dict[str, Any]]]
) -> None:
    async def main() -> list[Any]:
        session = await ConvkitSession.create(sqlite_store)
        for batch in batches:
            await session.add_items(batch)  # type: ignore[arg-type]
        return await session.get_items()

    assert asyncio.run(main()) == [item for batch in batches for item in batch]


def test_item_mapping_examples() -> None:
    m = item_to_message({"role": "developer", "content": "rules"})
    assert (m.role, m.text) == ("system", "rules")
    data_url = "data:image/png;base64," + base64.b64encode(png()).decode()
    m = item_to_message(
        {"role": "user", "content": [{"type": "input_image", "image_url": data_url, "detail": "low"}]}
    )
    assert m.images[0].data == png()
    assert m.images[0].tokens == 512
    m = item_to_message({"type": "function_call", "call_id": "c", "name": "f", "arguments": '{"a" : 1}'})
    assert m.tool_calls == (convkit.ToolCall("c", "f", '{"a" : 1}'),)
    m = item_to_message({"type": "function_call_output", "call_id": "c", "output": "r"})
    assert (m.role, m.tool_call_id, m.text) == ("tool", "c", "r")
    m = item_to_message({"type": "reasoning", "id": "rs_1", "summary": []})
    assert m.role == "assistant"
    assert json.loads(m.text) == {"type": "reasoning", "id": "rs_1", "summary": []}
    # messages written by other means come back as the items their OpenAI form describes
    foreign = convkit.Message.assistant("ok", tool_calls=[convkit.ToolCall("x", "g", "{}")])
    assert ITEM_KEY not in foreign.metadata
    assert message_to_items(foreign) == [
        {"role": "assistant", "content": "ok"},
        {"type": "function_call", "call_id": "x", "name": "g", "arguments": "{}"},
    ]
    assert message_to_items(convkit.Message.tool("r", tool_call_id="x")) == [
        {"type": "function_call_output", "call_id": "x", "output": "r"}
    ]


def test_an_output_without_its_call_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    """The same rule as the LangChain history: an orphaned call output is refused, not stored."""

    async def main() -> None:
        store = convkit.AsyncStore(f"sqlite:///{tmp_path / 'o.db'}")
        try:
            session = await ConvkitSession.create(store)
            first = [{"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"}]
            await session.add_items(first)  # type: ignore[arg-type]
            orphan = {"type": "function_call_output", "call_id": "gone", "output": "orphan"}
            for batch in (
                [orphan],
                [{"type": "function_call_output", "call_id": "a", "output": "for a"}, orphan],
                [{"role": "user", "content": "hi"}, {"type": "custom_tool_call_output", "call_id": "x"}],
            ):
                with pytest.raises(convkit.InvalidConversationError, match=r"gone|x"):
                    await session.add_items(batch)  # type: ignore[arg-type]
                assert await session.get_items() == first  # nothing of the batch was stored
            later = [  # an output whose call is stored, a call and its output in one batch
                {"type": "function_call_output", "call_id": "a", "output": "for a"},
                {"type": "function_call", "call_id": "b", "name": "f", "arguments": ""},
                {"type": "function_call_output", "call_id": "b", "output": "for b"},
            ]
            await session.add_items(later)  # type: ignore[arg-type]
            assert [m.role for m in await store.messages(session.conversation_id)] == [
                "assistant",
                "tool",
                "assistant",
                "tool",
            ]
            assert await session.get_items() == first + later
        finally:
            await store.close()

    asyncio.run(main())


def test_session_settings_accepts_the_dict_form(tmp_path: Path) -> None:
    from agents.memory.session_settings import SessionSettings

    async def main() -> None:
        store = convkit.AsyncStore(f"sqlite:///{tmp_path / 's.db'}")
        try:
            conv = await store.create_conversation()
            session = ConvkitSession.for_conversation(store, conv.id, session_settings={"limit": 2})
            assert session.session_settings == SessionSettings(limit=2)
            items = [{"role": "user", "content": f"q{n}"} for n in range(4)]
            await session.add_items(items)  # type: ignore[arg-type]
            assert await session.get_items() == items[-2:]
            assert await session.get_items(limit=3) == items[-3:]
            model = ScriptedModel([[say("Fine.", 1)]])
            await Runner.run(Agent(name="s", model=model), "And now?", session=session)
            assert model.inputs[0][:2] == items[-2:]
            assert (
                ConvkitSession.for_conversation(store, conv.id, session_settings={}).session_settings
                == SessionSettings()
            )
            same = SessionSettings(limit=5)
            assert (
                ConvkitSession.for_conversation(store, conv.id, session_settings=same).session_settings
                is same
            )
            for bad in ({"limit": 2, "max_items": 3}, {"limit": "many"}, [("limit", 2)]):
                with pytest.raises(ValidationError):
                    ConvkitSession.for_conversation(store, conv.id, session_settings=bad)  # type: ignore[arg-type]
        finally:
            await store.close()

    asyncio.run(main())


_WINDOW_TEXT = st.builds(lambda n, t: f"{t} " + "word " * n, st.integers(0, 30), texts(max_size=20))
_WINDOW_MESSAGES = st.builds(
    lambda r, c: {"role": r, "content": c}, st.sampled_from(["user", "assistant"]), _WINDOW_TEXT
)


def check_cut(base: list[dict[str, Any]], got: list[dict[str, Any]], limit: int) -> None:
    """``got`` is ``get_items(limit)`` over ``base`` (the window or the whole session): the newest
    ``limit`` items of ``base`` less exactly the call outputs whose call they do not hold."""
    tail = base[-limit:] if limit > 0 else []
    assert len(got) <= max(limit, 0)
    calls: set[str] = set()
    rest = iter(tail)
    for item in got:  # ``got`` is ``tail`` with some items left out...
        for skipped in rest:
            if skipped == item:
                break
            # ...only call outputs whose call the cut left out
            assert skipped.get("type") == "function_call_output", skipped
            assert skipped["call_id"] not in {
                i.get("call_id") for i in tail if i.get("type") == "function_call"
            }
        else:
            raise AssertionError(f"{item} is not among the newest {limit} items, in order")
        if item.get("type") == "function_call":
            calls.add(item["call_id"])
        elif item.get("type") == "function_call_output":  # never an output without its call
            assert item["call_id"] in calls, f"output of {item['call_id']} without its call"
    for skipped in rest:
        assert skipped.get("type") == "function_call_output", skipped
        assert skipped["call_id"] not in calls


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=item_lists(messages=_WINDOW_MESSAGES, others=_WINDOW_MESSAGES, size=30),
    reserve=st.integers(50, 300),
    limits=st.lists(st.integers(-1, 14), min_size=1, max_size=3),
)
def test_window_keeps_a_call_and_its_output_together(
    sqlite_store: convkit.Store, items: list[dict[str, Any]], reserve: int, limits: list[int]
) -> None:
    """Over random sessions (calls with empty, cut-off or JSON arguments, parallel calls): the
    window never holds an output without its call, and holds a call's output whenever the
    session does; a limit then takes the newest items of the window (of the whole session
    without one) and drops exactly the outputs whose call it cut."""
    small = ModelSpec("agents-small", 400, {"text", "image"}, message_overhead=5, request_overhead=2)
    items = [*items, {"role": "user", "content": "last"}]  # the newest turn always fits

    async def main() -> tuple[list[Any], list[Any], list[Any], list[Any]]:
        session = await ConvkitSession.create(sqlite_store, window_model=small, reserve=reserve)
        await session.add_items(items)  # type: ignore[arg-type]
        plain = ConvkitSession.for_conversation(sqlite_store, str(session.conversation_id))
        return (
            await session.get_items(),
            [await session.get_items(limit) for limit in limits],
            await plain.get_items(),
            [await plain.get_items(limit) for limit in limits],
        )

    window, window_cuts, everything, cuts = asyncio.run(main())
    assert everything == items
    assert window[-1] == items[-1]
    answered = {i["call_id"] for i in items if i.get("type") == "function_call_output"}
    seen: set[str] = set()
    for item in window:
        if item.get("type") == "function_call":
            seen.add(item["call_id"])
        elif item.get("type") == "function_call_output":
            assert item["call_id"] in seen, f"output of {item['call_id']} without its call"
    outputs = {i["call_id"] for i in window if i.get("type") == "function_call_output"}
    assert seen & answered == outputs  # a kept call keeps its output
    for limit, window_cut, cut in zip(limits, window_cuts, cuts, strict=True):
        check_cut(window, window_cut, limit)
        check_cut(items, cut, limit)


def test_limit_never_cuts_a_call_from_its_output(tmp_path: Path) -> None:
    from agents.memory.session_settings import SessionSettings

    async def main() -> None:
        store = convkit.AsyncStore(f"sqlite:///{tmp_path / 'l.db'}")
        try:
            session = ConvkitSession(store, "cuts")
            question = {"role": "user", "content": "Weather in Paris and Oslo?"}
            calls = [
                {"type": "function_call", "call_id": c, "name": "get_weather", "arguments": "{}"}
                for c in ("a", "b")
            ]
            outputs = [{"type": "function_call_output", "call_id": c, "output": c * 3} for c in ("a", "b")]
            await session.add_items([question, *calls, *outputs])  # type: ignore[arg-type]
            assert await session.get_items(limit=1) == []  # the last item is an output: its call is cut
            assert await session.get_items(limit=2) == []
            assert await session.get_items(limit=3) == [calls[1], outputs[1]]  # b's call stays, a's does not
            assert await session.get_items(limit=4) == [*calls, *outputs]
            assert await session.get_items(limit=-1) == []
            answer = {"role": "assistant", "content": "Both sunny."}
            await session.add_items([answer])  # type: ignore[arg-type]
            assert await session.get_items(limit=1) == [answer]
            assert await session.get_items(limit=2) == [answer]
            # the settings' limit is the default, an explicit one wins
            limited = ConvkitSession(store, "cuts", session_settings={"limit": 3})
            assert await limited.get_items() == [answer]  # both outputs lost their calls
            assert await limited.get_items(limit=5) == [*calls, *outputs, answer]

            # the Runner with SessionSettings(limit=3) and a session_input_callback (the SDK does not
            # prune outputs it hands to the callback): the model never gets an orphaned output
            await session.pop_item()
            model = ScriptedModel([[say("Sunny.", 1)]])
            seen: list[list[Any]] = []

            def callback(history: list[Any], new: list[Any]) -> list[Any]:
                seen.append(list(history))
                return history + new

            await Runner.run(
                Agent(name="l", model=model),
                "And now?",
                session=ConvkitSession(store, "cuts", session_settings={"limit": 3}),
                run_config=RunConfig(session_input_callback=callback),
            )
            assert seen == [[calls[1], outputs[1]]]
            assert model.inputs[0][:2] == [calls[1], outputs[1]]
            assert model.inputs[0][2]["content"] == "And now?"
            # RunConfig's session_settings win over the session's
            model = ScriptedModel([[say("Still sunny.", 2)]])
            await Runner.run(
                Agent(name="l", model=model),
                "Tomorrow?",
                session=ConvkitSession(store, "cuts", session_settings={"limit": 5}),
                run_config=RunConfig(session_settings=SessionSettings(limit=2)),
            )
            history = await session.get_items()
            assert [i.get("id") for i in history[-4:]] == [None, "msg_1", None, "msg_2"]
            assert model.inputs[0] == [*history[-4:-2], {"content": "Tomorrow?", "role": "user"}]
        finally:
            await store.close()

    asyncio.run(main())


def test_readme_agents_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_block("agents"), "README.md:agents", "exec"), {})


def test_readme_agents_on_grok(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], xai: XAIStandIn
) -> None:
    """The README's whole agent, on convkit's xAI stand-in: a tool call, then a second turn that
    reads the first from the store through a new session object of the same id."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XAI_BASE_URL", xai.base_url)
    monkeypatch.setenv("XAI_API_KEY", xai.api_key)
    xai.queue(
        Reply(tool_calls=[{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]),
        Reply(text="It is 18 °C and clear in Paris."),
    )  # then the stand-in's default answer: "You said: <the last user text>"
    exec(compile(readme_block("agents-grok"), "README.md:agents-grok", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.splitlines() == [
        "It is 18 °C and clear in Paris.",
        "You said: Which city did I ask about?",
        "['message', 'function_call', 'function_call_output', 'message', 'message', 'message']",
    ]
    assert xai.pending == []
    asked, answered, second_turn = xai.chat_requests
    assert {r["model"] for r in (asked, answered, second_turn)} == {"grok-4.3"}  # verbatim to xAI
    served = convkit.get_model(asked["model"])  # a name xAI serves: not a retired slug nor deprecated
    assert served.name == asked["model"]
    assert not served.deprecated
    assert [t["function"]["name"] for t in asked["tools"]] == ["get_weather"]
    first_turn = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What's the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 °C and clear in Paris"},
    ]
    assert answered["messages"] == first_turn  # the tool ran and its output went back
    assert second_turn["messages"] == [  # the second turn saw the first, read from the store
        *first_turn,
        {"role": "assistant", "content": "It is 18 °C and clear in Paris."},
        {"role": "user", "content": "Which city did I ask about?"},
    ]
    with convkit.Store(f"sqlite:///{tmp_path / 'agents-grok.db'}") as store:
        (conv,) = store.list_conversations()
        assert conv.key == "user-42"
        messages = store.messages(conv.id)
        assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant", "user", "assistant"]
        assert messages[1].tool_calls[0].arguments == '{"city":"Paris"}'
        assert messages[2].tool_call_id == "call_1"
