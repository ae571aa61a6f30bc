"""The LangGraph adapter, against the real ``langgraph`` (prebuilt agent and ``StateGraph``).

* A multi-turn, tool-calling conversation driven by LangGraph's
  ``create_react_agent`` (a scripted LangChain chat model with tools, no
  network) inside a graph that loads the thread from convkit first and saves
  it last (``ConvkitMessages.load_node`` / ``save_node``), on SQLite and
  PostgreSQL, with a ``Store`` (``invoke``, and ``ainvoke`` through worker
  threads) and an ``AsyncStore`` (``ainvoke``): each run resumes the stored
  conversation by thread id, also from a new store object (a restart), the
  model sees the whole thread, threads stay apart, and the stored messages
  equal the graph's final state (tool calls with their exact argument text).
* With a LangGraph checkpointer (``InMemorySaver``), on SQLite and
  PostgreSQL, ``Store`` and ``AsyncStore``: an edit by id through
  ``update_state``, a ``RemoveMessage``, a fork from an earlier checkpoint,
  removing everything and a fork from before the first save each give the
  same model inputs and final state as LangGraph alone; the conversation
  follows the state (rewritten when the state came from it and changed,
  appended to when it shares no message), and a restart with a new, empty
  checkpointer resumes it; ordinary runs only append; summarise-then-remove
  keeps the state small; in a subgraph of a checkpointed graph the parent's
  state wins; a run with nothing restored (no checkpointer, or a new one)
  puts the stored thread first and keeps the stored copy of a re-sent id.
* ``load`` / ``save`` (and the async twins) used around a graph without
  nodes; ``save`` appends only what is new (by LangChain id), so saving the
  same state twice stores nothing twice; a thread never saved loads as ``[]``
  and creates nothing.
* ``WindowHook``: inside the agent, the model gets a window of a long thread
  (system prompt and the newest turn kept, every tool call with its
  results) while the state keeps everything; property test over random
  conversations with tool groups: the fitted input is the input's own
  messages in order, never splits a tool call from its results, never
  exceeds the budget, and equals ``convkit.fit``; ``prompt=`` counts the
  system prompt; tools count.
* Round trips (property, with the LangChain adapter's message strategies):
  ``load(config)`` after ``save(config, messages)`` gives the messages back
  exactly.
* Typed errors: no thread id, a bad thread id, a store that is not a convkit
  store, sync methods on an ``AsyncStore``, a state without messages, bad
  hook settings, a tool result without its call.
* The README's LangGraph example runs.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.message import REMOVE_ALL_MESSAGES
from langgraph.prebuilt import create_react_agent
from pydantic import Field

import convkit
from convkit import (
    ContextWindowError,
    EstimateCounter,
    InvalidConversationError,
    InvalidMessageError,
    ModelSpec,
    ValidationError,
)
from convkit._engine.settings import compute_budget
from convkit.integrations.langchain import from_langchain, to_langchain
from convkit.integrations.langgraph import LLM_INPUT_KEY, ConvkitMessages, WindowHook, thread_id
from convkit.testing.strategies import conversations

from ._integrations import database_url, readme_block
from .test_langchain import assert_no_orphans, lc_messages

pytestmark = pytest.mark.filterwarnings("ignore::langgraph.warnings.LangGraphDeprecatedSinceV10")

# -- a scripted chat model with tools -----------------------------------------------------------

EXACT_ARGS = '{"city":  "Paris"}'


class ToolChatModel(FakeMessagesListChatModel):
    """A fake chat model that accepts tools (``bind_tools`` returns itself) and records its inputs."""

    inputs: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ToolChatModel:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.inputs.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def scripted() -> ToolChatModel:
    """Answers: a tool call, text; two tool calls, text; text."""
    return ToolChatModel(
        inputs=[],
        responses=[
            AIMessage(
                "",
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
            AIMessage("It is 18C in Paris."),
            AIMessage(
                "Checking both.",
                tool_calls=[
                    {"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_2"},
                    {"name": "get_time", "args": {"tz": "Europe/Oslo"}, "id": "call_3"},
                ],
            ),
            AIMessage("Oslo: 18C, 14:00."),
            AIMessage("You asked about Paris and Oslo."),
        ],
    )


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"18C and sunny in {city}"


@tool
def get_time(tz: str) -> str:
    """The time in a time zone."""
    return f"14:00 in {tz}"


QUESTIONS = ["Weather in Paris?", "And Oslo, with the time?", "What did I ask about?"]
ROLES_AFTER = [  # the stored roles after each run
    ["system", "user", "assistant", "tool", "assistant"],
    ["user", "assistant", "tool", "tool", "assistant"],
    ["user", "assistant"],
]


def agent(model: ToolChatModel, hook: WindowHook | None = None) -> Any:
    with warnings.catch_warnings():  # moved to langchain.agents (not installed); still LangGraph's own
        warnings.simplefilter("ignore")
        return create_react_agent(model, [get_weather, get_time], pre_model_hook=hook)


def app(thread: ConvkitMessages, model: ToolChatModel, hook: WindowHook | None = None) -> Any:
    """load (from convkit) -> the prebuilt agent -> save (to convkit); no LangGraph checkpointer."""
    graph = StateGraph(MessagesState)
    graph.add_node("load", thread.load_node)
    graph.add_node("agent", agent(model, hook))
    graph.add_node("save", thread.save_node)
    graph.add_edge(START, "load")
    graph.add_edge("load", "agent")
    graph.add_edge("agent", "save")
    graph.add_edge("save", END)
    return graph.compile()


def first_input(n: int) -> list[BaseMessage]:
    q = HumanMessage(QUESTIONS[n])
    return [SystemMessage("You are a weather bot."), q] if n == 0 else [q]


def config(tid: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": tid}}


def check_run(n: int, out: dict[str, Any], stored: list[convkit.Message], model: ToolChatModel) -> None:
    """After run ``n``: the stored thread is the final state, the model saw the whole thread."""
    final = out["messages"]
    assert [to_langchain(m) for m in stored] == final
    assert [m.role for m in stored] == [r for roles in ROLES_AFTER[: n + 1] for r in roles]
    assert stored[2].tool_calls[0].arguments == EXACT_ARGS  # byte for byte
    assert stored[3].tool_call_id == "call_1"
    # the model's last input: everything before its reply (no window hook: all of it)
    assert model.inputs[-1] == final[:-1]


def run_sync(url: str, tid: str) -> list[convkit.Message]:
    model = scripted()
    for n in range(3):
        store = convkit.Store(url)  # a new store object each run: a process restarting
        try:
            thread = ConvkitMessages(store, title="weather")
            out = app(thread, model).invoke({"messages": first_input(n)}, config(tid))
            stored = store.messages(store.conversation_for(tid, create=False).id)
            check_run(n, out, stored, model)
            assert thread.load(config(tid)) == out["messages"]
        finally:
            store.close()
    return stored


def test_agent_multi_turn_resumed_by_thread_id(backend: str, tmp_path: Path) -> None:
    with database_url(backend, tmp_path) as url:
        convkit.Store(url, upgrade=True).close()
        stored = run_sync(url, "thread-1")
        assert len(stored) == 12
        store = convkit.Store(url)
        try:
            conv = store.conversation_for("thread-1", create=False)
            assert conv.title == "weather"
            assert conv.key == "thread-1"
            # another thread starts empty and stays apart
            model = scripted()
            thread = ConvkitMessages(store)
            out = app(thread, model).invoke({"messages": first_input(0)}, config("thread-2"))
            assert len(out["messages"]) == 5
            assert len(thread.load(config("thread-1"))) == 12
            assert len(store.messages(conv.id)) == 12
        finally:
            store.close()


def test_agent_on_an_async_store(backend: str, tmp_path: Path) -> None:
    async def main(url: str) -> None:
        model = scripted()
        for n in range(3):
            store = convkit.AsyncStore(url, upgrade=n == 0)
            try:
                thread = ConvkitMessages(store, title="weather")
                hook = WindowHook("grok-4", reserve=2048)  # a large window: the model sees everything
                out = await app(thread, model, hook).ainvoke({"messages": first_input(n)}, config("t"))
                conv = await store.conversation_for("t", create=False)
                check_run(n, out, await store.messages(conv.id), model)
                assert await thread.aload(config("t")) == out["messages"]
                assert await thread.aconversation_id(config("t")) == conv.id
                assert await thread.aconversation_id(config("never")) is None
                with pytest.raises(ValidationError, match="AsyncStore"):
                    app(thread, model).invoke({"messages": [HumanMessage("sync?")]}, config("t"))
            finally:
                await store.close()

    with database_url(backend, tmp_path, "async") as url:
        asyncio.run(main(url))


def test_agent_ainvoke_on_a_sync_store(tmp_path: Path) -> None:
    store = convkit.Store(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        thread = ConvkitMessages(store)
        model = scripted()

        async def main() -> None:
            for n in range(3):
                out = await app(thread, model).ainvoke({"messages": first_input(n)}, config("t"))
                stored = store.messages(store.conversation_for("t", create=False).id)
                check_run(n, out, stored, model)

        asyncio.run(main())
    finally:
        store.close()


def test_load_and_save_around_a_graph(tmp_path: Path) -> None:
    """Without the nodes: load the thread, invoke, save the final state (only the new messages go in)."""
    store = convkit.Store(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        thread = ConvkitMessages(store)
        cfg = config("user-42:chat")
        assert thread.load(cfg) == []
        assert thread.conversation_id(cfg) is None  # reading creates nothing
        assert store.list_conversations() == []
        model = scripted()
        react = agent(model)
        for n in range(3):
            out = react.invoke({"messages": [*thread.load(cfg), *first_input(n)]}, cfg)
            added = thread.save(cfg, out["messages"])
            assert added == out["messages"][-len(added) :]
            assert len(added) == len(ROLES_AFTER[n])
            assert thread.load(cfg) == out["messages"]
        assert thread.save(cfg, out["messages"]) == []  # saved twice: stored once
        cid = thread.conversation_id(cfg)
        assert cid is not None
        assert len(store.messages(cid)) == 12
        # a message without a LangChain id cannot be recognized: appended each time it is saved
        assert thread.save(cfg, [HumanMessage("no id")]) == [HumanMessage("no id")]
        assert thread.save(cfg, [HumanMessage("no id")]) == [HumanMessage("no id")]
        assert [m.text for m in store.messages(cid)[-2:]] == ["no id", "no id"]
        # int and UUID thread ids name the conversation by their text
        u = uuid.uuid4()
        thread.save({"configurable": {"thread_id": u}}, [HumanMessage("hi", id="h1")])
        assert thread.load(config(str(u))) == [HumanMessage("hi", id="h1")]
        thread.save({"configurable": {"thread_id": 7}}, [HumanMessage("seven", id="h7")])
        assert thread.load(config("7")) == [HumanMessage("seven", id="h7")]
    finally:
        store.close()


def test_with_a_langgraph_checkpointer_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpointer restores the state (the load node leaves it as it is); no duplicates."""
    from langgraph.checkpoint.memory import InMemorySaver

    store = convkit.Store(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        thread = ConvkitMessages(store)
        model = scripted()
        graph = StateGraph(MessagesState)
        graph.add_node("load", thread.load_node)
        graph.add_node("agent", agent(model))
        graph.add_node("save", thread.save_node)
        graph.add_edge(START, "load")
        graph.add_edge("load", "agent")
        graph.add_edge("agent", "save")
        graph.add_edge("save", END)
        compiled = graph.compile(checkpointer=InMemorySaver())
        rewrites: list[str] = []
        replace = store.replace_messages

        def counted(cid: str, messages: Any) -> range:
            rewrites.append(cid)
            return replace(cid, messages)

        monkeypatch.setattr(store, "replace_messages", counted)
        for n in range(3):
            out = compiled.invoke({"messages": first_input(n)}, config("both"))
            stored = store.messages(store.conversation_for("both", create=False).id)
            check_run(n, out, stored, model)
        assert compiled.get_state(config("both")).values["messages"] == out["messages"]
        assert rewrites == []  # the state only grew: each run appended, nothing was rewritten
    finally:
        store.close()


def test_a_failed_run_stores_nothing(tmp_path: Path) -> None:
    store = convkit.Store(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        thread = ConvkitMessages(store)
        model = scripted()
        app(thread, model).invoke({"messages": first_input(0)}, config("t"))
        broken = ToolChatModel(responses=[])  # raises when asked for a reply
        with pytest.raises(IndexError):
            app(thread, broken).invoke({"messages": [HumanMessage("again?")]}, config("t"))
        assert len(thread.load(config("t"))) == 5
    finally:
        store.close()


def test_save_is_all_or_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        store = convkit.AsyncStore(f"sqlite:///{tmp_path / 's.db'}")
        try:
            thread = ConvkitMessages(store)
            cfg = config("t")
            first = [HumanMessage("hi", id="a"), AIMessage("hello", id="b")]
            assert await thread.asave(cfg, first) == first
            orphan = ToolMessage("18C", tool_call_id="call_gone", id="d")
            with pytest.raises(InvalidConversationError, match="call_gone"):
                await thread.asave(cfg, [*first, HumanMessage("next", id="c"), orphan])
            assert await thread.aload(cfg) == first  # nothing of the batch was stored
            assert await thread.asave(cfg, first) == []
        finally:
            await store.close()

    asyncio.run(main())


# -- with a LangGraph checkpointer: the checkpointer's state is the truth ------------------------


class Echo:
    """A model node that answers its last input message and records what it saw."""

    def __init__(self) -> None:
        self.inputs: list[list[str]] = []

    def __call__(self, state: MessagesState) -> dict[str, list[BaseMessage]]:
        seen = [str(m.content) for m in state["messages"]]
        self.inputs.append(seen)
        return {"messages": [AIMessage(f"echo {seen[-1]}")]}


def echo_graph(thread: ConvkitMessages | None, model: Echo, saver: Any = None) -> Any:
    """START -> (load) -> the model -> (save) -> END; without ``thread``, LangGraph alone (the reference)."""
    graph = StateGraph(MessagesState)
    nodes: list[tuple[str, Any]] = [("model", model)]
    if thread is not None:
        nodes = [("load", thread.load_node), *nodes, ("save", thread.save_node)]
    previous = START
    for name, node in nodes:
        graph.add_node(name, node)
        graph.add_edge(previous, name)
        previous = name
    graph.add_edge(previous, END)
    return graph.compile(checkpointer=saver)


def texts(messages: Sequence[BaseMessage]) -> list[str]:
    return [str(m.content) for m in messages]


def edit_then_run(compiled: Any, cfg: dict[str, Any]) -> Any:
    """(a) a message edited by id through ``update_state`` (a redaction), then the next run."""
    compiled.invoke({"messages": [HumanMessage("my card is 4111", id="m1")]}, cfg)
    compiled.update_state(cfg, {"messages": [HumanMessage("my card is [redacted]", id="m1")]})
    return compiled.invoke({"messages": [HumanMessage("next")]}, cfg)


def remove_then_run(compiled: Any, cfg: dict[str, Any]) -> Any:
    """(b) a message removed with ``RemoveMessage``, then the next run."""
    compiled.invoke({"messages": [HumanMessage("secret", id="s1")]}, cfg)
    compiled.update_state(cfg, {"messages": [RemoveMessage(id="s1")]})
    return compiled.invoke({"messages": [HumanMessage("next")]}, cfg)


def fork_then_run(compiled: Any, cfg: dict[str, Any]) -> Any:
    """(c) time travel: two runs, then a run from the checkpoint that ended the first."""
    compiled.invoke({"messages": [HumanMessage("one")]}, cfg)
    compiled.invoke({"messages": [HumanMessage("two")]}, cfg)
    after_one = next(
        s
        for s in compiled.get_state_history(cfg)
        if not s.next and texts(s.values.get("messages", [])) == ["one", "echo one"]
    )
    return compiled.invoke({"messages": [HumanMessage("fork")]}, after_one.config)


def remove_all_then_run(compiled: Any, cfg: dict[str, Any]) -> Any:
    """Every message removed (``REMOVE_ALL_MESSAGES``), then the next run: nothing comes back."""
    compiled.invoke({"messages": [HumanMessage("one", id="o1")]}, cfg)
    compiled.update_state(cfg, {"messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES)]})
    return compiled.invoke({"messages": [HumanMessage("next")]}, cfg)


def fork_before_any_save(compiled: Any, cfg: dict[str, Any]) -> Any:
    """A run from the thread's very first checkpoint (before the first run's input was applied)."""
    compiled.invoke({"messages": [HumanMessage("one")]}, cfg)
    first = list(compiled.get_state_history(cfg))[-1]
    return compiled.invoke({"messages": [HumanMessage("fork")]}, first.config)


SCENARIOS = {
    "edit": (edit_then_run, ["my card is [redacted]", "echo my card is 4111", "next", "echo next"]),
    "remove": (remove_then_run, ["echo secret", "next", "echo next"]),
    "fork": (fork_then_run, ["one", "echo one", "fork", "echo fork"]),
    "remove-all": (remove_all_then_run, ["next", "echo next"]),
    "fork-before-any-save": (fork_before_any_save, ["fork", "echo fork"]),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_checkpointer_edits_removals_and_forks_are_kept(backend: str, tmp_path: Path, scenario: str) -> None:
    """The graph with the convkit nodes behaves as LangGraph alone with the same checkpointer (the
    model sees the same messages, the final state is the same). The conversation becomes the graph's
    last state when that came from it (an edit, a removal, a fork rewrite it); a state sharing no
    message with it is appended. A restart with a new, empty checkpointer resumes the conversation."""
    from langgraph.checkpoint.memory import InMemorySaver

    run, expected = SCENARIOS[scenario]
    reference_model = Echo()
    reference = run(echo_graph(None, reference_model, InMemorySaver()), config("t"))
    assert texts(reference["messages"]) == expected
    with database_url(backend, tmp_path) as url:
        store = convkit.Store(url, upgrade=True)
        try:
            thread = ConvkitMessages(store)
            model = Echo()
            out = run(echo_graph(thread, model, InMemorySaver()), config("t"))
            assert texts(out["messages"]) == expected
            assert model.inputs == reference_model.inputs  # the model saw what it sees without convkit
            kept = texts(thread.load(config("t")))
            if scenario in ("remove-all", "fork-before-any-save"):  # shares no message with it: appended
                assert kept == ["one", "echo one", *expected]
            else:  # the state came from the conversation and was changed: the conversation follows it
                assert thread.load(config("t")) == out["messages"]
            # a restart: a new in-memory checkpointer knows nothing; the stored thread is resumed
            restarted = Echo()
            again = echo_graph(thread, restarted, InMemorySaver()).invoke(
                {"messages": [HumanMessage("restart")]}, config("t")
            )
            assert restarted.inputs == [[*kept, "restart"]]
            assert texts(again["messages"]) == [*kept, "restart", "echo restart"]
            assert thread.load(config("t")) == again["messages"]
        finally:
            store.close()


def test_checkpointer_state_wins_on_an_async_store(backend: str, tmp_path: Path) -> None:
    """The async nodes: an edit, a removal and a fork, each kept (AsyncStore, ``ainvoke``)."""
    from langgraph.checkpoint.memory import InMemorySaver

    async def main(url: str) -> None:
        store = convkit.AsyncStore(url, upgrade=True)
        try:
            thread = ConvkitMessages(store)
            model = Echo()
            compiled = echo_graph(thread, model, InMemorySaver())
            cfg = config("a")
            await compiled.ainvoke({"messages": [HumanMessage("my card is 4111", id="m1")]}, cfg)
            await compiled.ainvoke({"messages": [HumanMessage("secret", id="s1")]}, cfg)
            await compiled.aupdate_state(
                cfg, {"messages": [HumanMessage("my card is [redacted]", id="m1"), RemoveMessage(id="s1")]}
            )
            out = await compiled.ainvoke({"messages": [HumanMessage("next")]}, cfg)
            want = ["my card is [redacted]", "echo my card is 4111", "echo secret", "next", "echo next"]
            assert texts(out["messages"]) == want
            assert model.inputs[-1] == want[:-1]
            assert await thread.aload(cfg) == out["messages"]
            history = [s async for s in compiled.aget_state_history(cfg)]
            first_done = next(s for s in history if not s.next and len(s.values["messages"]) == 2)
            forked = await compiled.ainvoke({"messages": [HumanMessage("fork")]}, first_done.config)
            assert texts(forked["messages"]) == [
                "my card is 4111",
                "echo my card is 4111",
                "fork",
                "echo fork",
            ]
            assert await thread.aload(cfg) == forked["messages"]
        finally:
            await store.close()

    with database_url(backend, tmp_path, "async") as url:
        asyncio.run(main(url))


def test_summarise_then_remove_keeps_the_thread_small(tmp_path: Path) -> None:
    """LangGraph's summarise-then-remove pattern with a checkpointer: the state (what the model sees)
    stays at the summary and the newest turns instead of growing; the conversation keeps them all
    (each run's state shares no message with it, so it is appended to)."""
    from langgraph.checkpoint.memory import InMemorySaver

    def summarise(state: MessagesState) -> dict[str, list[BaseMessage]]:
        old = state["messages"][:-2]
        if len(old) < 2:
            return {}
        note = AIMessage(f"summary of {len(old)}", id=f"summary-{uuid.uuid4()}")
        return {"messages": [*(RemoveMessage(id=str(m.id)) for m in old), note]}

    store = convkit.Store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        for saver in (InMemorySaver(),):
            thread = ConvkitMessages(store)
            graph = StateGraph(MessagesState)
            model = Echo()
            for name, node in (("load", thread.load_node), ("model", model), ("summarise", summarise)):
                graph.add_node(name, node)
            graph.add_node("save", thread.save_node)
            graph.add_edge(START, "load")
            graph.add_edge("load", "model")
            graph.add_edge("model", "summarise")
            graph.add_edge("summarise", "save")
            graph.add_edge("save", END)
            compiled = graph.compile(checkpointer=saver)
            cfg = config("summary")
            for n in range(4):
                out = compiled.invoke({"messages": [HumanMessage(f"q{n}")]}, cfg)
                assert len(out["messages"]) <= 3
                assert thread.load(cfg)[-len(out["messages"]) :] == out["messages"]
            assert texts(out["messages"]) == ["q3", "echo q3", "summary of 3"]
            assert model.inputs[-1] == ["q2", "echo q2", "summary of 3", "q3"]
            assert len(thread.load(cfg)) == 2 + 3 * 3
    finally:
        store.close()


@pytest.mark.parametrize("checkpointer", [False, True])
def test_a_run_with_nothing_restored_starts_from_the_stored_thread(
    tmp_path: Path, checkpointer: bool
) -> None:
    """No checkpointer, or a new one each run (a process restarting with an in-memory saver): the
    state is the run's input, the stored thread goes first, and an input message whose id is stored
    is the stored one (sent again, it is not a second copy)."""
    from langgraph.checkpoint.memory import InMemorySaver

    store = convkit.Store(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        thread = ConvkitMessages(store)
        model = Echo()

        def compiled() -> Any:
            return echo_graph(thread, model, InMemorySaver() if checkpointer else None)

        compiled().invoke({"messages": [HumanMessage("hello", id="h1")]}, config("t"))
        out = compiled().invoke({"messages": [HumanMessage("hello again", id="h1")]}, config("t"))
        assert model.inputs[-1] == ["hello", "echo hello"]
        assert texts(out["messages"]) == ["hello", "echo hello", "echo echo hello"]
        assert thread.load(config("t")) == out["messages"]
        # a message saved without a LangChain id (``save``) is not stored again by the save node
        thread.save(config("plain"), [HumanMessage("no id")])
        compiled().invoke({"messages": [HumanMessage("hi")]}, config("plain"))
        assert texts(thread.load(config("plain"))) == ["no id", "hi", "echo hi"]
    finally:
        store.close()


@pytest.mark.parametrize("scenario", ["edit", "remove", "fork"])
def test_in_a_subgraph_under_a_checkpointer(tmp_path: Path, scenario: str) -> None:
    """The convkit nodes in a subgraph of a checkpointed graph: the parent hands the subgraph the
    thread (a stored id in its state), which wins over the stored copy as at the top level."""
    from langgraph.checkpoint.memory import InMemorySaver

    def parent(thread: ConvkitMessages | None, model: Echo) -> Any:
        graph = StateGraph(MessagesState)
        graph.add_node("chat", echo_graph(thread, model))
        graph.add_edge(START, "chat")
        graph.add_edge("chat", END)
        return graph.compile(checkpointer=InMemorySaver())

    run, expected = SCENARIOS[scenario]
    reference_model, model = Echo(), Echo()
    assert texts(run(parent(None, reference_model), config("t"))["messages"]) == expected
    store = convkit.Store(f"sqlite:///{tmp_path / 'sub.db'}")
    try:
        thread = ConvkitMessages(store)
        out = run(parent(thread, model), config("t"))
        assert texts(out["messages"]) == expected
        assert model.inputs == reference_model.inputs
        assert thread.load(config("t")) == out["messages"]
    finally:
        store.close()


# -- the window hook in the agent ----------------------------------------------------------------

SMALL = ModelSpec("langgraph-small", 600, {"text", "image"}, message_overhead=4, request_overhead=3)


def long_thread() -> list[BaseMessage]:
    out: list[BaseMessage] = [SystemMessage("You are a weather bot.", id="sys")]
    for n in range(15):
        out += [
            HumanMessage(f"Question {n}: " + "what is the weather like? " * 4, id=f"h{n}"),
            AIMessage("", tool_calls=[{"name": "get_weather", "args": {"n": n}, "id": f"c{n}"}], id=f"a{n}"),
            ToolMessage("sunny " * 12, tool_call_id=f"c{n}", id=f"t{n}"),
            AIMessage(f"Answer {n}.", id=f"r{n}"),
        ]
    return out


def test_hook_gives_the_model_a_window_and_keeps_the_state(tmp_path: Path) -> None:
    counter = EstimateCounter(margin=0)
    hook = WindowHook(SMALL, reserve=100, counter=counter, tools=[get_weather, get_time])
    store = convkit.Store(f"sqlite:///{tmp_path / 'h.db'}")
    try:
        thread = ConvkitMessages(store)
        history = long_thread()
        thread.save(config("long"), history)
        model = ToolChatModel(
            inputs=[],
            responses=[
                AIMessage("", tool_calls=[{"name": "get_time", "args": {"tz": "UTC"}, "id": "c_new"}]),
                AIMessage("It is 14:00."),
            ],
        )
        out = app(thread, model, hook).invoke({"messages": [HumanMessage("Time?")]}, config("long"))
        assert out["messages"][: len(history)] == history  # the state kept everything
        assert len(out["messages"]) == len(history) + 4
        assert LLM_INPUT_KEY not in out
        assert len(thread.load(config("long"))) == len(history) + 4
        budget = compute_budget(SMALL, 100, 0)
        for seen in model.inputs:
            assert seen[0] == history[0]  # the system prompt stays
            assert 2 < len(seen) < len(history)
            assert_no_orphans(seen, out["messages"])
            tokens = counter.count_messages(
                [from_langchain(m) for m in seen], model=SMALL, tools=hook.settings.tools
            )
            assert tokens <= budget
        assert model.inputs[0][-1] == HumanMessage("Time?", id=out["messages"][len(history)].id)
        assert model.inputs[1][-2:] == out["messages"][-3:-1]  # the new call and its result
        # tools count: without them the same budget holds more messages
        bare = WindowHook(SMALL, reserve=100, counter=counter)
        assert len(bare.fit(out["messages"])) > len(hook.fit(out["messages"]))
    finally:
        store.close()


def test_hook_prompt_is_counted_and_first() -> None:
    counter = EstimateCounter(margin=0)
    msgs = long_thread()[1:]
    plain = WindowHook(SMALL, reserve=100, counter=counter)
    prompted = WindowHook(SMALL, reserve=100, counter=counter, prompt="Be terse. " * 20)
    got = prompted({"messages": msgs})[LLM_INPUT_KEY]
    assert got[0] == SystemMessage("Be terse. " * 20)
    assert got[1:] == plain.fit(msgs)[-(len(got) - 1) :]
    assert len(got) - 1 < len(plain.fit(msgs))  # the prompt took room
    assert WindowHook(SMALL, prompt=SystemMessage("s", id="p")).fit([])[0].id == "p"
    # system messages only: nothing to trim around, returned as they are
    assert WindowHook(SMALL).fit([SystemMessage("only rules")]) == [SystemMessage("only rules")]
    # a custom key, and a Pydantic-like state object
    other = WindowHook(SMALL, reserve=100, counter=counter, key="model_input")

    class State:
        messages = msgs

    assert other(State()) == {"model_input": plain.fit(msgs)}
    # too small for the must-keep part: a typed error, not an oversized request
    with pytest.raises(ContextWindowError):
        WindowHook(SMALL, reserve=590, counter=counter).fit(msgs)


SPEC = ModelSpec("langgraph-prop", 2000, {"text", "image"}, message_overhead=4, request_overhead=3)


@given(conversation=conversations(max_size=16), reserve=st.integers(0, 1990))
def test_hook_never_splits_a_tool_group_nor_exceeds_the_budget(
    conversation: list[convkit.Message], reserve: int
) -> None:
    msgs = [to_langchain(m) for m in conversation]
    counter = EstimateCounter()
    hook = WindowHook(SPEC, reserve=reserve, counter=counter)
    try:
        fitted = hook({"messages": msgs})[LLM_INPUT_KEY]
    except ContextWindowError:
        with pytest.raises(ContextWindowError):
            convkit.fit(conversation, model=SPEC, counter=counter, reserve=reserve)
        return
    positions = [next(k for k, x in enumerate(msgs) if x is m) for m in fitted]  # the input's own objects
    assert positions == sorted(set(positions))
    assert_no_orphans(fitted, msgs)
    assert fitted[-1] is msgs[-1]
    if isinstance(msgs[0], SystemMessage):
        assert fitted[0] is msgs[0]
    budget = compute_budget(SPEC, reserve, counter.margin)
    assert counter.count_messages([from_langchain(m) for m in fitted], model=SPEC) <= budget
    reference = convkit.fit(conversation, model=SPEC, counter=counter, reserve=reserve)
    assert [from_langchain(m) for m in fitted] == list(reference.messages)


# -- round trips ---------------------------------------------------------------------------------


def _storable(batch: list[BaseMessage]) -> list[BaseMessage]:
    """Messages as a graph state holds them: each with an id (``add_messages`` gives one), ids
    unique, no tool result without its call, convertible by convkit."""
    out: list[BaseMessage] = []
    ids: set[str] = set()
    for m in batch:
        if isinstance(m, ToolMessage) or (m.id and m.id in ids):
            continue
        try:
            from_langchain(m)
        except InvalidMessageError:
            continue
        named = m if m.id else m.model_copy(update={"id": str(uuid.uuid4())})
        ids.add(str(named.id))
        out.append(named)
    return out


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(lc_messages(), min_size=1, max_size=4), min_size=1, max_size=3))
def test_saved_messages_load_back_exactly(
    sqlite_store: convkit.Store, batches: list[list[BaseMessage]]
) -> None:
    """Saving the growing state after each batch (as the save node does) stores each message once."""
    thread = ConvkitMessages(sqlite_store)
    cfg = config(f"thread-{uuid.uuid4()}")
    state: list[BaseMessage] = []
    for batch in batches:
        state = _storable([*state, *batch])
        thread.save(cfg, state)
    assert thread.load(cfg) == state
    cid = thread.conversation_id(cfg)
    assert cid is not None
    assert sqlite_store.messages(cid) == [from_langchain(m) for m in state]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conversation=conversations(max_size=12), cut=st.integers(0, 12))
def test_tool_groups_saved_in_two_runs_load_back_exactly(
    sqlite_store: convkit.Store, conversation: list[convkit.Message], cut: int
) -> None:
    """A conversation with tool groups (results may come in a later run than their call)."""
    msgs = [m.model_copy(update={"id": f"m{k}"}) for k, m in enumerate(to_langchain(c) for c in conversation)]
    thread = ConvkitMessages(sqlite_store)
    cfg = config(f"thread-{uuid.uuid4()}")
    assert thread.save(cfg, msgs[:cut]) == msgs[:cut]
    assert thread.save(cfg, msgs) == msgs[cut:]
    assert thread.load(cfg) == msgs
    assert [from_langchain(m) for m in thread.load(cfg)] == [from_langchain(m) for m in msgs]


# -- typed errors --------------------------------------------------------------------------------


def test_bad_input_is_refused_with_typed_errors(tmp_path: Path) -> None:
    store = convkit.Store(f"sqlite:///{tmp_path / 'e.db'}")
    try:
        thread = ConvkitMessages(store)
        bad_configs: list[Any] = [{}, {"configurable": {}}, {"configurable": None}, None, {"thread_id": "t"}]
        for bad in bad_configs:
            with pytest.raises(ValidationError, match="thread id"):
                thread.load(bad)  # type: ignore[arg-type]
            with pytest.raises(ValidationError, match="thread id"):
                thread.save(bad, [])  # type: ignore[arg-type]
        for bad_id in ("", None, True, ["t"], 1.5):
            with pytest.raises(ValidationError, match="thread_id"):
                thread_id({"configurable": {"thread_id": bad_id}})
        with pytest.raises(ValidationError):
            thread.save(config("x" * 256), [HumanMessage("hi")])  # longer than a key may be
        with pytest.raises(ValidationError, match="Store"):
            ConvkitMessages(object())  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="list of LangChain messages"):
            thread.save(config("t"), "hello")  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match=r"messages\[1\]"):
            thread.save(config("t"), [HumanMessage("hi"), {"role": "user"}])  # type: ignore[list-item]
        # a graph whose state has no messages channel
        with pytest.raises(ValidationError, match="'messages'"):
            thread.load_node.invoke({"question": "hi"}, config("t"))  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="not a LangChain message"):
            WindowHook(SMALL)({"messages": [("user", "hi")]})
        # the graph without a thread id
        with pytest.raises(ValidationError, match="thread id"):
            app(thread, scripted()).invoke({"messages": [HumanMessage("hi")]})
        # hook settings are checked when the hook is made
        for kwargs in (
            {"reserve": -1},
            {"images": "maybe"},
            {"prompt": 3},
            {"prompt": ""},
            {"key": ""},
            {"tools": [object()]},
        ):
            with pytest.raises(ValidationError):
                WindowHook(SMALL, **kwargs)
        with pytest.raises(convkit.ConvkitError):
            WindowHook("no-such-model")
        with pytest.raises(InvalidConversationError, match="call_x"):
            WindowHook(SMALL).fit([HumanMessage("hi"), ToolMessage("r", tool_call_id="call_x")])
    finally:
        store.close()

    async def on_async(url: str) -> None:
        astore = convkit.AsyncStore(url)
        try:
            athread = ConvkitMessages(astore)
            for call in (
                lambda: athread.load(config("t")),
                lambda: athread.save(config("t"), []),
                lambda: athread.conversation_id(config("t")),
            ):
                with pytest.raises(ValidationError, match="AsyncStore"):
                    call()
            with pytest.raises(ValidationError, match="thread id"):
                await athread.aload({})
        finally:
            await astore.close()

    asyncio.run(on_async(f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"))


def test_nothing_happens_at_construction(tmp_path: Path) -> None:
    store = convkit.Store(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        ConvkitMessages(store, title="lazy")
        WindowHook("grok-2-vision-1212", reserve=1024)
        assert store.list_conversations() == []
        assert "ConvkitMessages" in repr(ConvkitMessages(store))
        assert "grok-2-vision-1212" in repr(WindowHook("grok-2-vision-1212"))
    finally:
        store.close()


# -- README --------------------------------------------------------------------------------------


def test_readme_langgraph_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(readme_block("langgraph"), "README.md:langgraph", "exec"), namespace)
    store = namespace["store"]
    try:
        conv = store.conversation_for("user-42", create=False)
        stored = store.messages(conv.id)
        assert [m.role for m in stored][:5] == ["system", "user", "assistant", "tool", "assistant"]
        assert len(stored) >= 7
    finally:
        store.close()
