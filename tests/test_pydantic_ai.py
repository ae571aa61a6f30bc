"""The Pydantic AI adapter, against the real ``pydantic-ai-slim``.

* A real ``Agent`` with a tool, driven by a scripted ``FunctionModel`` (tool
  calls, then answers; no network), talks over several turns whose history is
  saved with ``save(result.new_messages())`` and loaded with ``load()``
  between turns, keyed by an application key, on SQLite and PostgreSQL, with
  a ``Store`` and an ``AsyncStore``: what is loaded equals every message of
  every run, the model is sent that history, the conversation is created on
  first use (not when the history object is made), and a save is all or none.
* Conversions (property test over random ``ModelMessage`` lists: system and
  user prompts with text, ``BinaryImage`` and ``ImageUrl`` images, tool
  calls with dict or JSON-text arguments, tool returns of any JSON value,
  retries, thinking, usage, provider details, run ids):
  ``to_pydantic_ai(from_pydantic_ai(x)) == x``, through a store as well;
  tool returns become the tool messages answering their calls; a legacy
  ``RetryPromptPart`` comes back as Pydantic AI's own serialization loads
  it; messages written by other means map by role.
* The window (property test): ``fit_model_messages`` / ``GrokWindow`` never
  splits a tool call from its return, never exceeds the budget, keeps the
  system prompt and the newest request, never starts with a
  ``ModelResponse``, and returns the input's own objects; both as a
  ``ProcessHistory`` processor and as the request-only capability (which
  leaves ``new_messages()`` whole) in a real run.
* Typed errors on bad input; the README's Pydantic AI example runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_ai import Agent
from pydantic_ai import messages as pm
from pydantic_ai.capabilities import ProcessHistory
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.usage import RequestUsage

import convkit
from convkit import (
    ContextWindowError,
    InvalidConversationError,
    InvalidImageError,
    InvalidMessageError,
    Message,
    ModelSpec,
    ToolCall,
    UnknownModelError,
    ValidationError,
)
from convkit.integrations.pydantic_ai import (
    INFO_KEY,
    AsyncConvkitMessageHistory,
    ConvkitMessageHistory,
    GrokWindow,
    fit_model_messages,
    from_pydantic_ai,
    to_pydantic_ai,
)
from convkit.testing.strategies import image_bytes, json_values, texts

from ._integrations import database_url, png, readme_block

TA = pm.ModelMessagesTypeAdapter


def canonical(messages: list[pm.ModelMessage]) -> list[pm.ModelMessage]:
    """What Pydantic AI's own serialization round trip makes of ``messages``."""
    return TA.validate_json(TA.dump_json(messages))


# -- a scripted model and an agent with a tool -------------------------------------------------------


def weather_agent(
    capabilities: list[Any] | None = None,
) -> tuple[Agent[None, str], list[list[pm.ModelMessage]]]:
    """An agent whose model calls ``get_weather`` for each user prompt, then answers with its result."""
    sent: list[list[pm.ModelMessage]] = []

    def model(messages: list[pm.ModelMessage], info: AgentInfo) -> pm.ModelResponse:
        sent.append(list(messages))
        last = messages[-1]
        assert isinstance(last, pm.ModelRequest)
        returns = [p for p in last.parts if isinstance(p, pm.ToolReturnPart)]
        if returns:
            return pm.ModelResponse(parts=[pm.TextPart(f"It is {returns[0].content}.")])
        prompt = next(p for p in last.parts if isinstance(p, pm.UserPromptPart))
        city = str(prompt.content).split()[-1]
        n = len(sent)
        return pm.ModelResponse(
            parts=[pm.ToolCallPart("get_weather", json.dumps({"city": city}), f"call_{n}")]
        )

    agent: Agent[None, str] = Agent(
        FunctionModel(model), system_prompt="You are a weather bot.", capabilities=capabilities
    )

    @agent.tool_plain
    def get_weather(city: str) -> str:
        return f"18C in {city}"

    return agent, sent


CITIES = ["Paris", "Oslo", "Lima"]


def test_agent_conversation_on_a_store(backend: str, tmp_path: Path) -> None:
    with database_url(backend, tmp_path) as url:
        store = convkit.Store(url, upgrade=True)
        try:
            agent, sent = weather_agent()
            history = ConvkitMessageHistory(store, "chat-7", title="weather")
            assert store.find_conversation("chat-7") is None  # nothing created (statements: see below)
            everything: list[pm.ModelMessage] = []
            for city in CITIES:
                loaded = history.load()
                assert loaded == everything
                result = agent.run_sync(f"Weather in {city}", message_history=loaded)
                history.save(result.new_messages())
                everything += result.new_messages()
                assert sent[-2][: len(everything) - 4] == everything[:-4]  # the model saw the history
                assert result.output == f"It is 18C in {city}."
            assert history.load() == everything
            conv = store.conversation_for("chat-7", create=False)
            assert conv.id == history.conversation_id()
            assert conv.title == "weather"
            stored = store.messages(conv.id)
            assert [m.role for m in stored[:5]] == ["system", "user", "assistant", "tool", "assistant"]
            assert stored[2].tool_calls == (ToolCall("call_1", "get_weather", '{"city": "Paris"}'),)
            assert stored[3].tool_call_id == "call_1"
            assert stored[3].text == "18C in Paris"
            # a second history object with the same key is the same conversation
            assert ConvkitMessageHistory(store, "chat-7").load() == everything
            # a save is all or none: a tool return whose call is not stored is refused
            orphan = pm.ModelRequest(parts=[pm.ToolReturnPart("get_weather", "x", "nope")])
            with pytest.raises(InvalidConversationError):
                history.save([pm.ModelRequest(parts=[pm.UserPromptPart("hi")]), orphan])
            assert history.load() == everything
        finally:
            store.close()


def test_agent_conversation_on_an_async_store(backend: str, tmp_path: Path) -> None:
    async def main(url: str) -> None:
        store = convkit.AsyncStore(url, upgrade=True)
        try:
            agent, _ = weather_agent()
            history = AsyncConvkitMessageHistory(store, "chat-async")
            assert await store.find_conversation("chat-async") is None  # nothing created
            everything: list[pm.ModelMessage] = []
            for city in CITIES:
                loaded = await history.load()
                assert loaded == everything
                result = await agent.run(f"Weather in {city}", message_history=loaded)
                await history.save(result.new_messages())
                everything += result.new_messages()
            assert await history.load() == everything
            window = await history.window(model=ModelSpec("pai-tiny", 200, {"text"}), reserve=20)
            assert window[-1] == everything[-1]  # the newest, and the system prompt, stay
            assert window[0].parts[0] == everything[0].parts[0]
            assert len(window) < len(everything)
            await history.clear()
            assert await history.load() == []
            assert (await store.conversation_for("chat-async", create=False)).id == (
                await history.conversation_id()
            )
        finally:
            await store.close()

    with database_url(backend, tmp_path, "async") as url:
        asyncio.run(main(url))


TURN: list[pm.ModelMessage] = [
    pm.ModelRequest(parts=[pm.UserPromptPart("hi")]),
    pm.ModelResponse(parts=[pm.TextPart("hello")]),
]
WRITES = ("INSERT", "UPDATE", "DELETE")


def test_history_is_lazy_and_reads_never_create(backend: str, tmp_path: Path) -> None:
    """Making a history runs no statement; load, window and clear only read (a key never saved to loads
    [] and has the window []); the first save creates the conversation; an emptied one stays."""
    import sqlalchemy as sa

    with database_url(backend, tmp_path) as url:
        store = convkit.Store(url, upgrade=True)
        statements: list[str] = []
        sa.event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        try:
            history = ConvkitMessageHistory(store, "user-42", title="Ada")
            assert statements == []  # making it did nothing
            assert history.load() == []
            assert history.window(model="grok-4") == []
            history.clear()
            assert statements  # they read ...
            assert not [s for s in statements if s.lstrip().upper().startswith(WRITES)]  # ... and only read
            assert store.list_conversations() == []
            history.save(TURN)
            conv = store.find_conversation("user-42")
            assert conv is not None
            assert (conv.title, conv.message_count) == ("Ada", 2)
            assert ConvkitMessageHistory(store, "user-42").load() == TURN
            history.clear()  # the conversation stays, empty: reads give [] and do not raise
            assert history.load() == []
            assert history.window(model="grok-4") == []
            assert store.get_conversation(conv.id).message_count == 0
        finally:
            store.close()


def test_async_history_is_lazy_and_reads_never_create(backend: str, tmp_path: Path) -> None:
    """:func:`test_history_is_lazy_and_reads_never_create` on an AsyncStore."""
    import sqlalchemy as sa

    async def main(store: convkit.AsyncStore) -> None:
        assert await store.list_conversations() == []  # (an AsyncStore upgrades on its first use)
        statements: list[str] = []
        sa.event.listen(store.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        history = AsyncConvkitMessageHistory(store, "user-42", title="Ada")
        assert statements == []
        assert await history.load() == []
        assert await history.window(model="grok-4") == []
        await history.clear()
        assert statements
        assert not [s for s in statements if s.lstrip().upper().startswith(WRITES)]
        assert await store.list_conversations() == []
        await history.save(TURN)
        conv = await store.find_conversation("user-42")
        assert conv is not None
        assert (conv.title, conv.message_count) == ("Ada", 2)
        assert await AsyncConvkitMessageHistory(store, "user-42").load() == TURN
        await history.clear()
        assert await history.load() == []
        assert await history.window(model="grok-4") == []

    async def run(url: str) -> None:
        store = convkit.AsyncStore(url, upgrade=True)
        try:
            await main(store)
        finally:
            await store.close()

    with database_url(backend, tmp_path, "async") as url:
        asyncio.run(run(url))


# -- conversion ---------------------------------------------------------------------------------------

STAMPS = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(timezone.utc)
)
IDS = st.text("abcdefghij0123456789_-", min_size=1, max_size=12)
NAMES = st.sampled_from(["get_weather", "add", "search", "lookup_user"])
SOME_TEXT = texts(min_size=0, max_size=40, non_blank=False)


@st.composite
def user_prompts(draw: st.DrawFn) -> pm.UserPromptPart:
    if draw(st.booleans()):
        content: Any = draw(SOME_TEXT)
    else:
        items = st.one_of(
            SOME_TEXT,
            image_bytes(max_side=40).map(lambda b: pm.BinaryImage(data=b, media_type=_media(b))),
            st.sampled_from(["https://example.com/a.png", "https://example.com/b.jpg"]).map(
                lambda u: pm.ImageUrl(url=u)
            ),
            st.just(pm.CachePoint()),
            SOME_TEXT.map(pm.TextContent),
        )
        content = draw(st.lists(items, max_size=4))
    return pm.UserPromptPart(content, timestamp=draw(STAMPS))


def _media(data: bytes) -> str:
    return "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"


LONG_THINKING = st.integers(0, 400).map(lambda n: "step by step, " * n)


@st.composite
def responses(draw: st.DrawFn, thinking: st.SearchStrategy[str] = SOME_TEXT) -> pm.ModelResponse:
    parts: list[Any] = []
    if draw(st.booleans()):
        parts.append(pm.ThinkingPart(draw(thinking), signature=draw(st.none() | IDS)))
    if draw(st.booleans()):
        parts.append(pm.TextPart(draw(SOME_TEXT)))
    for call_id in draw(st.lists(IDS, max_size=3, unique=True)):
        args = draw(st.dictionaries(st.sampled_from("abc"), json_values(max_leaves=3), max_size=2))
        text_args = draw(st.booleans())
        parts.append(
            pm.ToolCallPart(
                draw(NAMES),
                json.dumps(args, indent=draw(st.none() | st.just(1))) if text_args else args,
                call_id,
            )
        )
    return pm.ModelResponse(
        parts=parts,
        usage=RequestUsage(input_tokens=draw(st.integers(0, 10**6)), output_tokens=draw(st.integers(0, 999))),
        model_name=draw(st.none() | st.just("grok-4")),
        timestamp=draw(STAMPS),
        provider_name=draw(st.none() | st.just("xai")),
        provider_details=draw(st.none() | st.dictionaries(st.sampled_from("xyz"), json_values(max_leaves=2))),
        provider_response_id=draw(st.none() | IDS),
        finish_reason=draw(st.none() | st.sampled_from(["stop", "tool_call", "length"])),
        run_id=draw(st.none() | IDS),
    )


def _returns(draw: st.DrawFn, calls: list[pm.ToolCallPart]) -> list[Any]:
    parts: list[Any] = []
    for call in calls:
        outcome = draw(st.sampled_from(["success", "success", "failed", "retried"]))
        parts.append(
            pm.ToolReturnPart(
                call.tool_name,
                draw(json_values(max_leaves=3)),
                call.tool_call_id,
                timestamp=draw(STAMPS),
                outcome=outcome,
            )
        )
    return parts


@st.composite
def histories(
    draw: st.DrawFn, max_turns: int = 4, thinking: st.SearchStrategy[str] = SOME_TEXT
) -> list[pm.ModelMessage]:
    """Conversation-shaped lists: requests and responses, every tool call answered in the next request."""
    first: list[Any] = []
    if draw(st.booleans()):
        first.append(pm.SystemPromptPart(draw(SOME_TEXT), timestamp=draw(STAMPS)))
    first.append(draw(user_prompts()))
    out: list[pm.ModelMessage] = [
        pm.ModelRequest(parts=first, timestamp=draw(st.none() | STAMPS), run_id=draw(st.none() | IDS))
    ]
    seen: set[str] = set()
    for _ in range(draw(st.integers(0, max_turns))):
        response = draw(responses(thinking))
        calls = [p for p in response.parts if isinstance(p, pm.ToolCallPart) and p.tool_call_id not in seen]
        if len(calls) < len([p for p in response.parts if isinstance(p, pm.ToolCallPart)]):
            continue  # a call id used before: draw another turn
        seen.update(c.tool_call_id for c in calls)
        out.append(response)
        parts = _returns(draw, calls)
        if draw(st.booleans()) or not parts:
            parts.append(draw(user_prompts()))
        if draw(st.booleans()):
            parts.append(
                pm.RetryFeedbackPart(
                    draw(SOME_TEXT), retry=pm.RetryInfo(cause="model_retry"), timestamp=draw(STAMPS)
                )
            )
        out.append(pm.ModelRequest(parts=parts, instructions=draw(st.none() | SOME_TEXT)))
    return out


@given(history=histories())
def test_conversion_round_trips(history: list[pm.ModelMessage]) -> None:
    history = canonical(history)  # e.g. a BinaryContent image loads as a BinaryImage
    converted = from_pydantic_ai(history)
    assert to_pydantic_ai(converted) == history
    # the same through JSON (as stored), and each convkit message as the dict convkit stores
    assert to_pydantic_ai([Message.from_dict(m.to_dict()) for m in converted]) == history
    # tool returns are tool messages answering a call made earlier in the list
    calls: set[str] = set()
    for m in converted:
        calls.update(c.id for c in m.tool_calls)
        if m.role == "tool":
            assert m.tool_call_id in calls
    # image bytes live in the image parts, not in the kept JSON form
    assert "iVBOR" not in json.dumps([m.metadata for m in converted])
    n_parts = sum(len(x.parts) if isinstance(x, pm.ModelRequest) else 1 for x in history)
    assert len(converted) == n_parts


@given(history=histories(max_turns=2))
def test_conversion_round_trips_through_a_store(
    sqlite_store: convkit.Store, history: list[pm.ModelMessage]
) -> None:
    history = canonical(history)
    conv = sqlite_store.create_conversation()
    sqlite_store.extend(conv.id, from_pydantic_ai(history))
    assert to_pydantic_ai(sqlite_store.messages(conv.id)) == history


def test_images_become_image_parts() -> None:
    request = pm.ModelRequest(
        parts=[
            pm.UserPromptPart(
                [
                    "What is this?",
                    pm.BinaryImage(data=png(), media_type="image/png", vendor_metadata={"detail": "low"}),
                    pm.ImageUrl(url="https://example.com/cat.jpg"),
                    pm.BinaryContent(data=b"%PDF-1.4", media_type="application/pdf"),
                ]
            )
        ]
    )
    (m,) = from_pydantic_ai([request])
    image, url = m.content[1], m.content[2]
    assert isinstance(image, convkit.ImagePart)
    assert image.data == png()
    assert image.detail == "low"
    assert isinstance(url, convkit.ImagePart)
    assert url.url == "https://example.com/cat.jpg"
    assert isinstance(m.content[3], convkit.TextPart)
    assert "application/pdf" in m.content[3].text
    assert to_pydantic_ai([m]) == canonical([request])


@pytest.mark.filterwarnings("ignore:.RetryPromptPart. is deprecated")
def test_legacy_retry_prompt_comes_back_as_pydantic_ai_loads_it() -> None:
    call = pm.ModelResponse(parts=[pm.ToolCallPart("add", {"a": 1}, "c1")])
    retry = pm.RetryPromptPart("a must be a string", tool_name="add", tool_call_id="c1")
    feedback = pm.RetryPromptPart("answer in JSON")
    history: list[pm.ModelMessage] = [
        pm.ModelRequest(parts=[pm.UserPromptPart("add")]),
        call,
        pm.ModelRequest(parts=[retry, feedback]),
    ]
    converted = from_pydantic_ai(history)
    assert [m.role for m in converted] == ["user", "assistant", "tool", "user"]
    assert converted[2].tool_call_id == "c1"
    back = to_pydantic_ai(converted)
    assert back == canonical(history)
    assert isinstance(back[2].parts[0], pm.ToolReturnPart)
    assert back[2].parts[0].outcome == "retried"
    assert isinstance(back[2].parts[1], pm.RetryFeedbackPart)


def test_messages_written_by_other_means() -> None:
    messages = [
        Message.system("Be brief."),
        Message.user(["Look", convkit.ImagePart.from_bytes(png())]),
        Message.assistant("Checking.", tool_calls=[ToolCall("c1", "lookup", '{"q": 1}')]),
        Message.tool("found", tool_call_id="c1"),
        Message.user("thanks"),
        Message.assistant("You're welcome."),
    ]
    out = to_pydantic_ai(messages)
    assert [type(m).__name__ for m in out] == [
        "ModelRequest",
        "ModelResponse",
        "ModelRequest",
        "ModelResponse",
    ]
    first, call, returns, last = out
    assert isinstance(first, pm.ModelRequest)
    assert isinstance(returns, pm.ModelRequest)
    assert first.parts[0] == pm.SystemPromptPart("Be brief.", timestamp=first.parts[0].timestamp)
    user = first.parts[1]
    assert isinstance(user, pm.UserPromptPart)
    assert user.content[1] == pm.BinaryImage(data=png(), media_type="image/png")
    assert isinstance(call, pm.ModelResponse)
    assert call.parts[1] == pm.ToolCallPart("lookup", '{"q": 1}', "c1")
    tool_return = returns.parts[0]
    assert isinstance(tool_return, pm.ToolReturnPart)
    assert (tool_return.tool_name, tool_return.content, tool_return.tool_call_id) == ("lookup", "found", "c1")
    assert isinstance(last, pm.ModelResponse)
    assert last.text == "You're welcome."
    # and back: the same roles, text and calls
    again = from_pydantic_ai(out)
    assert [(m.role, m.text, m.tool_calls, m.tool_call_id) for m in again] == [
        (m.role, m.text, m.tool_calls, m.tool_call_id) for m in messages
    ]


def test_a_window_cut_through_a_request_keeps_its_parts() -> None:
    """A request whose parts are not all present (as in a store window) comes back with those that are."""
    history = canonical(
        [
            pm.ModelRequest(parts=[pm.UserPromptPart("q")]),
            pm.ModelResponse(parts=[pm.ToolCallPart("f", "{}", "c1")]),
            pm.ModelRequest(parts=[pm.ToolReturnPart("f", "r", "c1"), pm.UserPromptPart("next")]),
        ]
    )
    converted = from_pydantic_ai(history)
    (only,) = to_pydantic_ai(converted[3:])  # the user prompt without the tool return before it
    assert isinstance(only, pm.ModelRequest)
    assert only.parts == [history[2].parts[1]]


# -- the window ---------------------------------------------------------------------------------------

SMALL = ModelSpec("pai-small", 600, {"text", "image"}, message_overhead=4, request_overhead=3)


@st.composite
def windowed(draw: st.DrawFn) -> list[pm.ModelMessage]:
    history = draw(histories(max_turns=5))
    if not isinstance(history[-1], pm.ModelRequest):  # pragma: no cover - histories end with a request
        history.append(pm.ModelRequest(parts=[pm.UserPromptPart("more")]))
    return history


@given(history=windowed(), reserve=st.integers(0, 400))
def test_window_keeps_calls_with_returns_and_fits(history: list[pm.ModelMessage], reserve: int) -> None:
    try:
        out = fit_model_messages(history, model=SMALL, reserve=reserve)
    except ContextWindowError:
        return  # the system prompt and the newest request alone do not fit: said, not broken
    # the input's own objects (or a copy of a request with some of its parts), in order; the newest
    # part stays (a tool return before it may go with its call: it is an older unit)
    last = out[-1]
    assert isinstance(last, pm.ModelRequest)
    assert last.parts[-1] is history[-1].parts[-1]  # type: ignore[union-attr]
    positions = [next(k for k, m in enumerate(history) if m is o or _subset(o, m)) for o in out]
    assert positions == sorted(set(positions))
    # never a return without its call, nor a kept call without its return
    calls = {
        p.tool_call_id
        for m in out
        if isinstance(m, pm.ModelResponse)
        for p in m.parts
        if isinstance(p, pm.ToolCallPart)
    }
    returns = {
        p.tool_call_id
        for m in out
        if isinstance(m, pm.ModelRequest)
        for p in m.parts
        if isinstance(p, pm.ToolReturnPart)
    }
    answered = {
        p.tool_call_id
        for m in history
        if isinstance(m, pm.ModelRequest)
        for p in m.parts
        if isinstance(p, pm.ToolReturnPart)
    }
    assert returns <= calls
    assert calls & answered == returns
    # the leading system prompt stays; no ModelResponse opens the window
    first = history[0]
    assert isinstance(first, pm.ModelRequest)
    if isinstance(first.parts[0], pm.SystemPromptPart):
        assert out[0].parts[0] is first.parts[0]
    if isinstance(out[0], pm.ModelResponse):  # only when the newest request answers its calls
        opened = {p.tool_call_id for p in out[0].parts if isinstance(p, pm.ToolCallPart)}
        assert opened & {p.tool_call_id for p in last.parts if isinstance(p, pm.ToolReturnPart)}
    # within the budget: fitting the output again keeps all of it
    converted = [m for msg in out for m in from_pydantic_ai([msg])]
    instructions = next(
        (m.instructions for m in reversed(history) if isinstance(m, pm.ModelRequest) and m.instructions), None
    )
    if instructions is not None and instructions.strip():  # the newest request's instructions count
        converted.insert(0, Message.system(instructions))
    again = convkit.fit(converted, model=SMALL, reserve=reserve)
    assert len(again.messages) == len(converted)
    assert again.prompt_tokens <= again.budget


def _subset(part_of: pm.ModelMessage, whole: pm.ModelMessage) -> bool:
    return (
        isinstance(part_of, pm.ModelRequest)
        and isinstance(whole, pm.ModelRequest)
        and dataclasses.replace(whole, parts=part_of.parts) == part_of
        and all(any(p is q for q in whole.parts) for p in part_of.parts)
    )


def test_window_drops_the_oldest_and_keeps_the_system_prompt() -> None:
    long = "word " * 60
    history: list[pm.ModelMessage] = [
        pm.ModelRequest(parts=[pm.SystemPromptPart("sys"), pm.UserPromptPart(long)])
    ]
    for n in range(6):
        history += [
            pm.ModelResponse(parts=[pm.ToolCallPart("f", "{}", f"c{n}")]),
            pm.ModelRequest(parts=[pm.ToolReturnPart("f", long, f"c{n}"), pm.UserPromptPart(f"q{n}")]),
        ]
    out = GrokWindow(SMALL, reserve=100)(history)
    assert out[0] == pm.ModelRequest(parts=[history[0].parts[0]])  # the prompt went, the system part stayed
    assert out[-1] is history[-1]
    assert len(out) < len(history)
    # the first call went with its return; the prompt after that return stayed, without it
    assert out[1] == pm.ModelRequest(parts=[history[2].parts[1]])  # type: ignore[union-attr]
    assert out[2:] == history[3:]
    with pytest.raises(ContextWindowError):
        fit_model_messages(history[:1], model=ModelSpec("pai-tiny", 40, {"text"}), reserve=0)


# what OpenAIChatModel sends: Pydantic AI's own mapping, offline (the client is never called)
OPENAI_CHAT = OpenAIChatModel(
    "grok-4", provider=OpenAIProvider(base_url="http://127.0.0.1:9/v1", api_key="k")
)


def sent_messages(messages: list[pm.ModelMessage]) -> list[Message | None]:
    """The chat messages ``OpenAIChatModel`` sends for ``messages``, as convkit messages (None: empty)."""
    params = ModelRequestParameters()
    prepared = OPENAI_CHAT.prepare_messages(messages, params)
    wire = asyncio.run(OPENAI_CHAT._map_messages(prepared, params))
    out: list[Message | None] = []
    for d in wire:
        item: dict[str, Any] = dict(d)
        content = item.get("content")
        parts: list[Any] = [convkit.TextPart(content)] if isinstance(content, str) and content.strip() else []
        for p in content if isinstance(content, list) else []:
            if p["type"] == "text":
                parts.append(convkit.TextPart(p["text"]))
            else:
                assert p["type"] == "image_url", p
                image = p["image_url"]
                parts.append(convkit.ImagePart.from_url(image["url"], detail=image.get("detail")))
        parts += [convkit.TextPart(item[f]) for f in ("reasoning_content", "reasoning") if item.get(f)]
        calls = [
            ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
            for c in item.get("tool_calls", ())
        ]
        if not calls and not any(isinstance(p, convkit.ImagePart) or p.text.strip() for p in parts):
            out.append(None)  # sent, holding nothing convkit counts but the message's overhead
        elif item["role"] == "tool":
            out.append(Message.tool(parts, tool_call_id=item["tool_call_id"]))
        else:
            out.append(Message(item["role"], parts, calls))
    return out


def sent_tokens(messages: list[pm.ModelMessage], spec: ModelSpec) -> int:
    """Tokens of what ``OpenAIChatModel`` sends for ``messages``, counted as convkit counts."""
    sent = sent_messages(messages)
    counted = [m for m in sent if m is not None]
    return convkit.EstimateCounter().count_messages(counted, model=spec) + spec.message_overhead * (
        len(sent) - len(counted)
    )


def test_thinking_sent_back_is_counted() -> None:
    """A ThinkingPart goes back to the model (OpenAIChatModel: <think> text), so the window counts it."""
    tiny = ModelSpec("tiny", 4096)
    history: list[pm.ModelMessage] = [
        pm.ModelRequest(parts=[pm.UserPromptPart("q1")]),
        pm.ModelResponse(parts=[pm.ThinkingPart("reasoning " * 6000), pm.TextPart("a1")]),
        pm.ModelRequest(parts=[pm.UserPromptPart("q2")]),
    ]
    out = fit_model_messages(history, model=tiny, reserve=0)
    assert out == [history[2]]  # the reasoning does not fit: its turn goes
    assert sent_tokens(out, tiny) <= 4096
    # the stored form counts it too (store.window), and still round-trips exactly
    (_, response, _) = converted = from_pydantic_ai(history)
    assert response.text.startswith("<think>\nreasoning ")
    assert to_pydantic_ai(converted) == history
    # a reasoning field (the provider's own, as Grok's reasoning_content) is what is counted as well
    field = pm.ThinkingPart("why " * 50, id="reasoning_content", provider_name="openai")
    wire = sent_messages([history[0], pm.ModelResponse(parts=[field, pm.TextPart("a1")]), history[2]])
    assert wire[1] is not None
    assert "why why" in wire[1].text


@given(history=histories(max_turns=4, thinking=LONG_THINKING), reserve=st.integers(0, 400))
def test_what_openai_chat_model_sends_for_the_window_fits(
    history: list[pm.ModelMessage], reserve: int
) -> None:
    """Counting what Pydantic AI's OpenAIChatModel sends for the window: it fits the budget."""
    spec = ModelSpec("pai-wire", 1500, {"text", "image"}, message_overhead=4, request_overhead=3)
    try:
        out = fit_model_messages(history, model=spec, reserve=reserve)
    except ContextWindowError:
        return
    assert sent_tokens(out, spec) <= spec.context_window - reserve


def test_a_list_ending_in_a_response_is_fitted_with_it() -> None:
    """A resumed run sends its history ending in the suspended ModelResponse, and a stored history may end
    in one: it is fitted keeping that newest message (Pydantic AI itself refuses what it will not send)."""
    long = "word " * 80
    history: list[pm.ModelMessage] = [
        pm.ModelRequest(parts=[pm.SystemPromptPart("sys"), pm.UserPromptPart(long)]),
        pm.ModelResponse(parts=[pm.TextPart(long)]),
        pm.ModelRequest(parts=[pm.UserPromptPart("again")]),
        pm.ModelResponse(parts=[pm.TextPart("the newest")], state="suspended"),
    ]
    assert fit_model_messages(history, model="grok-4") == history
    out = GrokWindow(ModelSpec("pai-short", 150, {"text"}), reserve=0)(history)
    assert out == [pm.ModelRequest(parts=[history[0].parts[0]]), history[2], history[3]]  # type: ignore[union-attr]
    assert out[-1] is history[-1]


def test_window_in_a_run_as_processor_and_as_capability() -> None:
    """Both ways of plugging the window into a run: each request sent fits and opens with the system
    prompt; ProcessHistory makes the trimmed list the run's history, the capability does not."""
    small = ModelSpec("pai-run", 700, {"text"})
    window = GrokWindow(small, reserve=100)
    for capability, whole in ((ProcessHistory(window), False), (window.capability(), True)):
        agent, sent = weather_agent([capability])
        history: list[pm.ModelMessage] = []
        for n in range(8):
            result = agent.run_sync(f"{'please ' * 40} weather in City{n}", message_history=history)
            history += result.new_messages()
        assert max(len(request) for request in sent) < len(history)  # the window did trim
        for request in sent:
            assert fit_model_messages(request, model=small, reserve=100) == request  # it fits whole
            first = request[0]
            assert isinstance(first, pm.ModelRequest)
            assert isinstance(first.parts[0], pm.SystemPromptPart)
        prompts = [
            p.content
            for m in history
            if isinstance(m, pm.ModelRequest)
            for p in m.parts
            if isinstance(p, pm.UserPromptPart)
        ]
        assert [str(p).split()[-1] for p in prompts] == [f"City{n}" for n in range(8)]  # every run's own
        assert (result.all_messages() == history) is whole


# -- typed errors -----------------------------------------------------------------------------------


def test_bad_input_raises_typed_errors(sqlite_store: convkit.Store) -> None:
    with pytest.raises(ValidationError, match="list of messages"):
        from_pydantic_ai(pm.ModelRequest(parts=[pm.UserPromptPart("x")]))  # type: ignore[arg-type]
    with pytest.raises(InvalidMessageError, match="message 1: a Pydantic AI message is a ModelRequest"):
        from_pydantic_ai([pm.ModelRequest(parts=[pm.UserPromptPart("x")]), "hello"])  # type: ignore[list-item]
    twice = pm.ModelResponse(parts=[pm.ToolCallPart("f", "{}", "c1"), pm.ToolCallPart("g", "{}", "c1")])
    with pytest.raises(InvalidMessageError, match="unique"):
        from_pydantic_ai([twice])
    not_png = pm.ModelRequest(
        parts=[pm.UserPromptPart([pm.BinaryContent(data=b"nope", media_type="image/png")])]
    )
    with pytest.raises(InvalidImageError):
        from_pydantic_ai([not_png])
    with pytest.raises(ValidationError, match="list of messages"):
        to_pydantic_ai(Message.user("x"))  # type: ignore[arg-type]
    broken = Message.user("x", metadata={INFO_KEY: {"message": {"kind": "request"}, "count": 1, "part": {}}})
    with pytest.raises(InvalidMessageError, match="does not validate"):
        to_pydantic_ai([broken])
    with pytest.raises(InvalidConversationError, match="c9"):
        to_pydantic_ai([Message.tool("r", tool_call_id="c9")])
    orphan = pm.ModelRequest(parts=[pm.ToolReturnPart("f", "r", "c1")])
    with pytest.raises(InvalidConversationError):
        fit_model_messages([orphan], model=SMALL)
    with pytest.raises(UnknownModelError):
        GrokWindow("no-such-model")
    with pytest.raises(ValidationError, match="reserve"):
        GrokWindow(SMALL, reserve=-1)
    for key in ("", "a" * 256, "a\x00b", "lone \ud800 surrogate", 7):
        with pytest.raises(ValidationError, match="key"):
            ConvkitMessageHistory(sqlite_store, key)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="Store"):
        ConvkitMessageHistory("sqlite:///x.db", "k")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="AsyncStore"):
        AsyncConvkitMessageHistory(sqlite_store, "k")  # type: ignore[arg-type]
    assert INFO_KEY == "convkit.pydantic_ai"


def test_readme_pydantic_ai_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(readme_block("pydantic-ai"), "README.md:pydantic-ai", "exec"), namespace)
    store = convkit.Store(f"sqlite:///{tmp_path / 'pydantic_ai.db'}")
    try:
        conv = store.conversation_for("user-42", create=False)
        assert [m.role for m in store.messages(conv.id)][:4] == ["system", "user", "assistant", "tool"]
    finally:
        store.close()
