"""The LlamaIndex adapter, against the real ``llama-index-core``.

* Conversion: ``to_llama_index(from_llama_index(x)) == x`` for ChatMessages of
  every role (developer, chatbot, model, function included) with text, image
  (bytes, http and data URLs, details), thinking, document, audio, video,
  citable, citation, cache and ``ToolCallBlock`` blocks (object, JSON-string and cut-off ``tool_kwargs``,
  no ``tool_call_id``),
  OpenAI-form ``additional_kwargs["tool_calls"]`` with oddly spelled argument
  text, ``tool_call_id``, ``name``, pins and other JSON ``additional_kwargs``;
  and ``from_llama_index(to_llama_index(m)) == m`` for convkit messages:
  property tests, also through a store.
* ``ConvkitChatStore``: every method of ``BaseChatStore``, sync and async, on
  SQLite and PostgreSQL, with a ``Store`` and (async) an ``AsyncStore`` (the
  sync methods refuse): keys name conversations (created on the first write,
  reads create nothing, ``get_keys``), ``set_messages`` all or nothing, an
  orphaned tool message refused with nothing stored, ``delete_message(idx)``
  refusing to orphan a tool result, ``add_message(idx=...)``.
* ``ConvkitMemory``: a ``FunctionAgent`` driven by LlamaIndex's own
  ``MockFunctionCallingLLM`` (scripted tool calls) runs several turns with one
  key, on SQLite and PostgreSQL, ``AsyncStore`` and ``Store``, and a new
  memory on the same key continues the conversation; with a small model the
  LLM sees the window: its system prompt, tool calls with their results, never
  an orphan. ``get()`` (``aget()``, ``ConvkitChatStore.window``) equals
  ``convkit.fit`` over the stored conversation less the oldest units a cut
  leaves opening with an assistant or tool message after the leading system
  and pinned ones, as ``ChatMemoryBuffer`` drops them (the newest turn and a
  conversation's own opening stay), never splits a tool call from its result
  and never exceeds the budget (property test, budgets aimed at cuts landing
  on replies); ChatMemoryBuffer's own example (run beside it), with system,
  pinned and tool messages, is pinned. Every block LlamaIndex sends is counted: for ChatMessage
  histories with every block kind, large documents too, the window holds each
  such block's JSON in the convkit message counted, and counted by the
  memory's counter it fits the context window less the reserve (property
  test); a big ``DocumentBlock`` makes older messages drop, system messages
  alone must fit too, and an image dropped for a note leaves the other
  blocks. A saved workflow ``Context`` holding the memory is refused on
  restore with a message saying what to do, and a new run with a new memory
  on the key continues the conversation.
* No test touches the network (a guard refuses any non-loopback connection),
  so nothing downloads tokenizer files or NLTK data.
* Typed errors on bad input; the README's LlamaIndex example runs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import (
    AudioBlock,
    CacheControl,
    CachePoint,
    ChatMessage,
    CitableBlock,
    CitationBlock,
    DocumentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    VideoBlock,
)
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.memory import BaseMemory
from llama_index.core.storage.chat_store.base import BaseChatStore
from llama_index.core.tools import FunctionTool

import convkit
from convkit import (
    ContextWindowError,
    EstimateCounter,
    InvalidConversationError,
    InvalidImageError,
    InvalidMessageError,
    Message,
    ModelSpec,
    TextPart,
    ToolCall,
    UnknownModelError,
    ValidationError,
)
from convkit._engine.units import must_keep_units, unit_lists, unit_starts
from convkit.integrations.llama_index import (
    INFO_KEY,
    ConvkitChatStore,
    ConvkitMemory,
    from_llama_index,
    to_llama_index,
)
from convkit.testing.strategies import conversations, image_bytes, json_values, messages, texts

from ._integrations import database_url, png, readme_block

# the workflows package inspects each agent's members, tripping pydantic's deprecation warnings
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")

SMALL = ModelSpec("li-small", 600, {"text", "image"}, message_overhead=4, request_overhead=3)
WIDE = ModelSpec("li-wide", 2000, {"text", "image"}, message_overhead=4, request_overhead=3)
COUNTER = EstimateCounter(margin=0)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any connection but to this machine (tokenizer or NLTK downloads would fail here)."""
    real = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"a test tried to reach the network: {address!r}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


# -- strategies of LlamaIndex messages ----------------------------------------------------------

_B64 = image_bytes(max_side=40)
_HTTP = st.from_regex(r"https://img\.example\.com/[a-z0-9]{1,8}\.png", fullmatch=True)
_DETAIL = st.sampled_from([None, "low", "high", "auto"])
_CALL_IDS = st.from_regex(r"call_[A-Za-z0-9]{1,8}", fullmatch=True)
_ARGS = st.dictionaries(texts(max_size=8, non_blank=False), json_values(max_leaves=4), max_size=3)
_IMAGE = st.one_of(
    st.builds(lambda b, d: ImageBlock(image=b, detail=d), _B64, _DETAIL),
    st.builds(lambda u, d: ImageBlock(url=u, detail=d), _HTTP, _DETAIL),
    st.builds(
        lambda b: ImageBlock(url=f"data:image/png;base64,{base64.b64encode(b).decode()}"),
        image_bytes(max_side=40, formats=("PNG",)),
    ),
)


def _noise(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


_OTHER = st.one_of(
    texts(max_size=20).map(lambda t: ThinkingBlock(content=t)),
    st.builds(
        lambda t, sig: ThinkingBlock(content=t, additional_information={"signature": sig}),
        texts(max_size=20),
        st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True),
    ),
    st.just(DocumentBlock(data=b"%PDF-1.4 tiny", document_mimetype="application/pdf")),
    st.just(DocumentBlock(url="data:application/pdf;base64,JVBERi0xLjQ=")),
    st.builds(lambda n: AudioBlock(audio=_noise(n, 1), format="wav"), st.integers(1, 60)),
    st.builds(lambda n: VideoBlock(video=_noise(n, 2), video_mimetype="video/mp4"), st.integers(1, 60)),
    st.builds(
        lambda t: CitableBlock(title="doc", source="kb://1", content=[TextBlock(text=t)]), texts(max_size=20)
    ),
    st.builds(
        lambda t: CitationBlock(
            cited_content=TextBlock(text=t), source="kb://1", title="doc", additional_location_info={"p": 1}
        ),
        texts(max_size=20),
    ),
    st.just(CachePoint(cache_control=CacheControl(type="ephemeral"))),
)
#: documents of about 130 to 710 tokens by COUNTER (their base64 JSON), SMALL's window being 600
_BIG = st.builds(
    lambda n, seed: DocumentBlock(data=_noise(n, seed), document_mimetype="application/pdf"),
    st.integers(50, 500),
    st.integers(0, 3),
)
_TEXT = texts(max_size=40, non_blank=False).map(lambda t: TextBlock(text=t))


def _spell(args: dict[str, Any], style: int) -> str:
    return [json.dumps(args), json.dumps(args, separators=(",", ":")), " " + json.dumps(args, indent=2)][
        style
    ]


@st.composite
def chat_messages(draw: st.DrawFn, big: bool = False) -> ChatMessage:
    """ChatMessages of every role and block kind; ``big``: large documents too, fewer pins."""
    role = draw(st.sampled_from(list(MessageRole)))
    kinds = st.one_of(_TEXT, _TEXT, _IMAGE, _OTHER)
    if big:
        kinds = st.one_of(_TEXT, _TEXT, _TEXT, _IMAGE, _OTHER, _OTHER, _BIG)
    blocks: list[Any] = draw(st.lists(kinds, max_size=4))
    kwargs: dict[str, Any] = draw(
        st.dictionaries(
            st.sampled_from(["refusal", "x-trace", "logprobs"]), json_values(max_leaves=3), max_size=2
        )
    )
    if role in (MessageRole.ASSISTANT, MessageRole.CHATBOT, MessageRole.MODEL):
        ids = draw(st.lists(_CALL_IDS, max_size=3, unique=True))
        raw = []
        for call_id in ids:
            name, args = draw(st.sampled_from(["add", "get_weather"])), draw(_ARGS)
            form = draw(st.sampled_from(["kwargs", "block", "block-str", "block-cut", "block-no-id"]))
            if form == "kwargs":
                text = _spell(args, draw(st.integers(0, 2)))
                raw.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": text}})
            elif form == "block":
                blocks.append(ToolCallBlock(tool_call_id=call_id, tool_name=name, tool_kwargs=args))
            elif form == "block-str":
                blocks.append(
                    ToolCallBlock(tool_call_id=call_id, tool_name=name, tool_kwargs=json.dumps(args))
                )
            elif form == "block-cut":
                blocks.append(ToolCallBlock(tool_call_id=call_id, tool_name=name, tool_kwargs='{"a": '))
            else:
                blocks.append(ToolCallBlock(tool_name=name, tool_kwargs=args))
        if raw:
            kwargs["tool_calls"] = raw
    if role in (MessageRole.TOOL, MessageRole.FUNCTION):
        kwargs["tool_call_id"] = draw(_CALL_IDS)
    elif draw(st.booleans()) and role == MessageRole.ASSISTANT:
        kwargs["tool_call_id"] = draw(_CALL_IDS)  # FunctionAgent's return_direct answer carries one
    if draw(st.booleans()):
        kwargs["name"] = draw(st.sampled_from(["alice", "weather_bot"]))
    pins: list[Any] = [{"pinned": True}, {"pinned": True, "metadata": {}}]
    extras = draw(st.sampled_from([None, {"metadata": {"topic": "x"}}] * (4 if big else 1) + pins))
    if extras is not None:
        kwargs["convkit"] = extras
    return ChatMessage(role=role, blocks=blocks, additional_kwargs=kwargs)


def _convertible(msg: ChatMessage) -> Message:
    try:
        return from_llama_index(msg)
    except InvalidMessageError:  # nothing to send (no text, image or call): refused, as documented
        assume(False)
        raise


@settings(deadline=None)
@given(chat_messages())
def test_chat_messages_round_trip(msg: ChatMessage) -> None:
    converted = _convertible(msg)
    assert to_llama_index(converted) == msg
    assert INFO_KEY not in to_llama_index(converted).additional_kwargs.get("convkit", {}).get("metadata", {})


@settings(deadline=None)
@given(messages())
def test_convkit_messages_round_trip(m: Message) -> None:
    chat = to_llama_index(m)
    assert isinstance(chat, ChatMessage)
    assert from_llama_index(chat) == m
    assert INFO_KEY not in from_llama_index(chat).metadata  # the default rendering needs no info


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(chat_messages(), min_size=1, max_size=4))
def test_chat_messages_round_trip_through_a_store(
    sqlite_store: convkit.Store, batch: list[ChatMessage]
) -> None:
    for msg in batch:
        _convertible(msg)
    chat = ConvkitChatStore(sqlite_store)
    key = f"rt-{id(batch)}-{len(sqlite_store.list_conversations(limit=10_000))}"
    unanswered = [m for m in batch if m.role.value in ("tool", "function")]
    assume(not unanswered)  # an orphaned tool message is refused (see the chat store tests)
    chat.set_messages(key, batch)
    assert chat.get_messages(key) == batch


def test_mapping_examples() -> None:
    call = ChatMessage(
        role="assistant",
        content="let me add",
        additional_kwargs={
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a":1}'}}
            ]
        },
    )
    m = from_llama_index(call)
    assert m.role == "assistant"
    assert m.text == "let me add"
    assert m.tool_calls == (ToolCall("c1", "add", '{"a":1}'),)
    assert INFO_KEY not in m.metadata  # exactly the default form
    # a ToolCallBlock without an id (as Google's LLMs give) is linked by its tool's name, which
    # FunctionAgent then uses as the result's tool_call_id
    no_id = ChatMessage(role="assistant", blocks=[ToolCallBlock(tool_name="add", tool_kwargs={"a": 1})])
    assert from_llama_index(no_id).tool_calls == (ToolCall("add", "add", '{"a": 1}'),)
    assert to_llama_index(from_llama_index(no_id)) == no_id
    block = from_llama_index(
        ChatMessage(
            role="assistant", blocks=[ToolCallBlock(tool_call_id="c2", tool_name="add", tool_kwargs={"b": 2})]
        )
    )
    assert block.tool_calls == (ToolCall("c2", "add", '{"b": 2}'),)
    result = from_llama_index(ChatMessage(role="tool", content="3", additional_kwargs={"tool_call_id": "c2"}))
    assert (result.role, result.tool_call_id, result.text) == ("tool", "c2", "3")
    dev = from_llama_index(ChatMessage(role="developer", content="be brief"))
    assert dev.role == "system"
    assert to_llama_index(dev).role == MessageRole.DEVELOPER
    image = from_llama_index(
        ChatMessage(role="user", blocks=[TextBlock(text="see"), ImageBlock(image=png())])
    )
    assert image.images[0].data == png()
    assert INFO_KEY not in image.metadata
    pinned = from_llama_index(
        ChatMessage(role="user", content="keep", additional_kwargs={"convkit": {"pinned": True}})
    )
    assert pinned.pinned
    # the info is used only while it describes the message: an edited text wins
    thought = from_llama_index(
        ChatMessage(role="assistant", blocks=[ThinkingBlock(content="hm"), TextBlock(text="a")])
    )
    # (the thinking block is sent to the model, so it is a text part holding its JSON: counted)
    assert thought.content[0] == TextPart(
        '{"block_type":"thinking","content":"hm","num_tokens":null,"additional_information":{}}'
    )
    edited = Message("assistant", [thought.content[0], "b"], metadata=thought.metadata)
    assert [type(b).__name__ for b in to_llama_index(edited).blocks] == ["ThinkingBlock", "TextBlock"]
    assert to_llama_index(edited).blocks[1].text == "b"  # type: ignore[union-attr]
    other = Message("assistant", ["b", "c"], metadata=thought.metadata)  # no longer matches: default form
    assert to_llama_index(other) == ChatMessage(
        role="assistant", blocks=[TextBlock(text="b"), TextBlock(text="c")]
    )


def test_bad_messages_raise_typed_errors() -> None:
    with pytest.raises(InvalidMessageError, match="ChatMessage"):
        from_llama_index({"role": "user", "content": "hi"})  # type: ignore[arg-type]
    with pytest.raises(InvalidMessageError, match="tool_call_id"):
        from_llama_index(ChatMessage(role="tool", content="3"))
    with pytest.raises(InvalidMessageError, match="empty"):
        from_llama_index(ChatMessage(role="assistant", content=""))
    with pytest.raises(InvalidMessageError, match="unique"):  # id-less calls take their tool's name
        from_llama_index(ChatMessage(role="assistant", blocks=[ToolCallBlock(tool_name="add")] * 2))
    with pytest.raises(InvalidImageError, match="path"):
        from_llama_index(ChatMessage(role="user", blocks=[ImageBlock(path=Path(__file__))]))
    with pytest.raises(InvalidMessageError, match="disagree"):
        from_llama_index(
            ChatMessage(
                role="assistant",
                blocks=[ToolCallBlock(tool_call_id="c1", tool_name="add", tool_kwargs={"a": 2})],
                additional_kwargs={
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{}"}}
                    ]
                },
            )
        )
    with pytest.raises(InvalidMessageError, match="only assistant"):
        from_llama_index(ChatMessage(role="user", blocks=[ToolCallBlock(tool_call_id="c", tool_name="f")]))
    # media LlamaIndex would read from a file or download into the prompt: convkit could not count it
    for block, field in [
        (DocumentBlock(path=Path(__file__)), "data="),
        (DocumentBlock(url="https://example.com/a.pdf"), "data="),
        (AudioBlock(url="https://example.com/a.wav"), "audio="),
        (VideoBlock(path=Path(__file__)), "video="),
        (CitableBlock(title="t", source="s", content=[DocumentBlock(path=Path(__file__))]), "data="),
        (
            CitationBlock(
                cited_content=ImageBlock(url="https://img.example.com/a.png"),
                source="s",
                title="t",
                additional_location_info={},
            ),
            "image=",
        ),
    ]:
        with pytest.raises(InvalidMessageError, match=f"cannot count it.*{field}"):
            from_llama_index(ChatMessage(role="user", blocks=[TextBlock(text="see"), block]))
    with pytest.raises(InvalidMessageError, match="reserved"):
        from_llama_index(
            ChatMessage(role="user", content="x", additional_kwargs={"convkit": {"metadata": {INFO_KEY: 1}}})
        )


# -- the chat store -----------------------------------------------------------------------------

_ASYNC = {
    "set_messages": "aset_messages",
    "get_messages": "aget_messages",
    "add_message": "async_add_message",
    "add_messages": "aadd_messages",
    "delete_messages": "adelete_messages",
    "delete_message": "adelete_message",
    "delete_last_message": "adelete_last_message",
    "get_keys": "aget_keys",
}
Call = Callable[..., Awaitable[Any]]


def _caller(chat: ConvkitChatStore, mode: str) -> Call:
    async def call(name: str, *args: Any, **kwargs: Any) -> Any:
        if mode == "sync":
            return await asyncio.to_thread(getattr(chat, name), *args, **kwargs)
        return await getattr(chat, _ASYNC[name])(*args, **kwargs)

    return call


def _u(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def _a(text: str) -> ChatMessage:
    return ChatMessage(role="assistant", content=text)


def _calls(*ids: str) -> ChatMessage:
    return ChatMessage(
        role="assistant",
        blocks=[ToolCallBlock(tool_call_id=i, tool_name="add", tool_kwargs={"a": 1}) for i in ids],
    )


def _result(call_id: str, text: str = "2") -> ChatMessage:
    return ChatMessage(role="tool", content=text, additional_kwargs={"tool_call_id": call_id})


async def chat_store_semantics(call: Call, list_conversations: Callable[[], Awaitable[list[Any]]]) -> None:
    # unknown keys: reads answer empty and create nothing
    assert await call("get_messages", "k1") == []
    assert await call("delete_messages", "k1") is None
    assert await call("delete_message", "k1", 0) is None
    assert await call("delete_last_message", "k1") is None
    assert await call("get_keys") == []
    # an orphaned tool message is refused before anything is created
    with pytest.raises(InvalidConversationError, match="c9"):
        await call("add_message", "k1", _result("c9"))
    with pytest.raises(InvalidConversationError):
        await call("set_messages", "k1", [_u("q"), _result("c9")])
    assert await list_conversations() == []
    # the first write creates the key's conversation
    await call("add_message", "k1", _u("hi"))
    await call("add_messages", "k1", [_calls("c1", "c2"), _result("c2", "b"), _result("c1", "a")])
    await call("add_message", "k1", _a("done"))
    got = await call("get_messages", "k1")
    assert [m.role.value for m in got] == ["user", "assistant", "tool", "tool", "assistant"]
    assert got[1].blocks[0].tool_call_id == "c1"
    assert got[2].additional_kwargs["tool_call_id"] == "c2"
    assert await call("get_keys") == ["k1"]
    (conv,) = await list_conversations()
    assert conv.key == "k1"
    assert conv.message_count == 5
    # a tool message answering no call of the conversation: refused, nothing stored
    with pytest.raises(InvalidConversationError, match="c7"):
        await call("add_message", "k1", _result("c7"))
    with pytest.raises(InvalidConversationError):
        await call("add_messages", "k1", [_u("x"), _result("c7")])
    assert len(await call("get_messages", "k1")) == 5
    # set_messages: all or nothing
    with pytest.raises(InvalidConversationError):
        await call("set_messages", "k1", [_u("new"), _result("c1")])
    assert len(await call("get_messages", "k1")) == 5
    await call("set_messages", "k1", [_u("q1"), _calls("c1"), _result("c1"), _a("a1"), _u("q2")])
    assert [m.content for m in await call("get_messages", "k1")] == ["q1", None, "2", "a1", "q2"]
    # delete_message: list positions, negative from the end, None outside
    assert await call("delete_message", "k1", 9) is None
    assert await call("delete_message", "k1", -9) is None
    assert (await call("delete_message", "k1", -1)).content == "q2"
    assert (await call("delete_message", "k1", 0)).content == "q1"
    with pytest.raises(InvalidConversationError, match="c1"):  # would orphan the result of c1
        await call("delete_message", "k1", 0)
    assert [m.content for m in await call("get_messages", "k1")] == [None, "2", "a1"]
    assert (await call("delete_message", "k1", 1)).content == "2"  # a result may go (the call stays)
    # add_message at a position inserts there, as SimpleChatStore does
    await call("add_message", "k1", _u("first"), idx=0)
    await call("add_message", "k1", _u("before last"), idx=-1)
    assert [m.content for m in await call("get_messages", "k1")] == ["first", None, "before last", "a1"]
    assert (await call("delete_last_message", "k1")).content == "a1"
    # a second key; delete_messages empties a conversation, which stays with its key
    await call("set_messages", "k2", [_u("other")])
    assert await call("get_keys") == ["k1", "k2"]
    removed = await call("delete_messages", "k1")
    assert [m.content for m in removed] == ["first", None, "before last"]
    assert await call("get_messages", "k1") == []
    assert await call("delete_last_message", "k1") is None
    assert await call("get_keys") == ["k1", "k2"]
    assert [m.content for m in await call("get_messages", "k2")] == ["other"]
    # bad input
    with pytest.raises(ValidationError):
        await call("get_messages", "")
    with pytest.raises(ValidationError, match="idx"):
        await call("delete_message", "k2", "0")
    with pytest.raises(ValidationError, match="list"):
        await call("set_messages", "k2", _u("not a list"))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_chat_store_on_a_store(backend: str, tmp_path: Path, mode: str) -> None:
    with database_url(backend, tmp_path) as url:
        store = convkit.Store(url, upgrade=True)
        try:
            chat = ConvkitChatStore(store)
            assert isinstance(chat, BaseChatStore)

            async def convs() -> list[Any]:
                return store.list_conversations()

            asyncio.run(chat_store_semantics(_caller(chat, mode), convs))
        finally:
            store.close()


def test_chat_store_on_an_async_store(backend: str, tmp_path: Path) -> None:
    async def main(url: str) -> None:
        store = convkit.AsyncStore(url, upgrade=True)
        try:
            chat = ConvkitChatStore(store)
            await chat_store_semantics(_caller(chat, "async"), store.list_conversations)
            with pytest.raises(ValidationError, match="AsyncStore"):
                chat.get_messages("k2")
            with pytest.raises(ValidationError, match="AsyncStore"):
                chat.add_message("k2", _u("x"))
        finally:
            await store.close()

    with database_url(backend, tmp_path, "async") as url:
        asyncio.run(main(url))


def test_constructing_does_no_io_and_bad_stores_are_refused(tmp_path: Path) -> None:
    store = convkit.Store(f"sqlite:///{tmp_path / 'x.db'}")
    chat = ConvkitChatStore(store)
    ConvkitMemory(chat, "never-used", model=SMALL)
    assert store.list_conversations() == []
    with pytest.raises(ValidationError, match="Store"):
        ConvkitChatStore(object())  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="Store"):
        ConvkitMemory(object(), "k", model=SMALL)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="chat_store_key"):
        ConvkitMemory(chat, "", model=SMALL)
    with pytest.raises(ValidationError, match="reserve"):
        ConvkitMemory(chat, "k", model=SMALL, reserve=-1)
    with pytest.raises(UnknownModelError):
        ConvkitMemory(chat, "k", model="no-such-model")
    with pytest.raises(ValidationError, match="initial_token_count"):
        ConvkitMemory(chat, "k", model=SMALL).get(initial_token_count=-5)
    store.close()


# -- the memory, driven by a FunctionAgent ------------------------------------------------------


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Script:
    """Response generator for MockFunctionCallingLLM: a tool call per user turn, then an answer.

    Records every input the LLM gets, so the tests can check what the agent sent."""

    def __init__(self, pad: str = "") -> None:
        self.inputs: list[list[ChatMessage]] = []
        self.turn = 0
        self.pad = pad

    def __call__(self, messages: list[ChatMessage], **kwargs: Any) -> ChatMessage:
        self.inputs.append(list(messages))
        if messages[-1].role == MessageRole.USER:
            self.turn += 1
            return ChatMessage(
                role="assistant",
                blocks=[
                    ToolCallBlock(
                        tool_call_id=f"call_{self.turn}",
                        tool_name="add",
                        tool_kwargs={"a": 40, "b": self.turn},
                    )
                ],
            )
        return ChatMessage(role="assistant", content=f"The sum is {messages[-1].content}.{self.pad}")


def _check_no_orphans(messages: list[ChatMessage]) -> None:
    seen: set[str] = set()
    for m in messages:
        for b in m.blocks:
            if isinstance(b, ToolCallBlock):
                seen.add(str(b.tool_call_id))
        for c in m.additional_kwargs.get("tool_calls", []):
            seen.add(c["id"])
        if m.role == MessageRole.TOOL:
            assert m.additional_kwargs["tool_call_id"] in seen, f"orphaned tool result in {messages}"


async def run_turns(memory: BaseMemory, script: Script, questions: list[str]) -> list[str]:
    llm = MockFunctionCallingLLM(response_generator=script)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(add)], llm=llm, system_prompt="You add numbers.")
    return [str(await agent.run(q, memory=memory)) for q in questions]


def _roles(messages: list[ChatMessage]) -> list[str]:
    return [m.role.value for m in messages]


def test_function_agent_multi_turn_on_an_async_store(backend: str, tmp_path: Path) -> None:
    async def main(url: str) -> None:
        store = convkit.AsyncStore(url, upgrade=True)
        try:
            memory = ConvkitMemory(store, "user-42", model="grok-4")
            script = Script()
            answers = await run_turns(memory, script, ["add 1", "add 2"])
            assert answers == ["The sum is 41.", "The sum is 42."]
            # a new memory on the same key (a new process, say) continues the conversation
            memory2 = ConvkitMemory(ConvkitChatStore(store), "user-42", model="grok-4")
            assert await run_turns(memory2, script, ["add 3"]) == ["The sum is 43."]
            stored = await memory2.aget_all()
            assert _roles(stored) == ["user", "assistant", "tool", "assistant"] * 3
            assert stored[1].blocks[0].tool_kwargs == {"a": 40, "b": 1}  # type: ignore[union-attr]
            assert stored[2].additional_kwargs["tool_call_id"] == "call_1"
            # the LLM saw the agent's system prompt, then the whole history (it fits grok-4)
            last = script.inputs[-1]
            assert last[0].role == MessageRole.SYSTEM
            assert last[1:] == stored[:-1]
            conv = await store.conversation_for("user-42", create=False)
            assert conv.message_count == 12
            raw = await store.messages(conv.id)
            assert raw[1].tool_calls == (ToolCall("call_1", "add", '{"a": 40, "b": 1}'),)
            assert await ConvkitChatStore(store).aget_keys() == ["user-42"]
            await memory2.areset()
            assert await memory2.aget() == []
            assert await memory2.aget_all() == []
        finally:
            await store.close()

    with database_url(backend, tmp_path, "async") as url:
        asyncio.run(main(url))


def test_function_agent_on_a_sync_store_sees_the_window(backend: str, tmp_path: Path) -> None:
    """A small model: the LLM gets the window, tool calls with their results, never an orphan."""
    with database_url(backend, tmp_path) as url:
        store = convkit.Store(url, upgrade=True)
        try:
            memory = ConvkitMemory(store, "thread-1", model=SMALL, reserve=150, counter=COUNTER)
            memory.put(ChatMessage(role="system", content="Remember: answers are in English."))
            script = Script(pad=" Padding words to fill the window." * 3)
            asyncio.run(run_turns(memory, script, [f"add {i}" for i in range(1, 9)]))
            stored = memory.get_all()
            assert len(stored) == 1 + 4 * 8
            window = memory.get()
            assert len(window) < len(stored)
            assert window[0] == stored[0]
            assert window == stored[:1] + stored[len(stored) - len(window) + 1 :]  # the newest that fit
            assert window[1].role == MessageRole.USER  # after the cut, a question opens the history
            for sent in script.inputs:
                assert sent[0].content == "You add numbers."  # the agent's own system prompt
                assert sent[1].content == "Remember: answers are in English."  # the memory's, kept
                assert sent[2].role == MessageRole.USER
                _check_no_orphans(sent)
            assert len(script.inputs[-1]) < len(stored) + 1  # the later turns saw a window
            # the same through the async twins, on a Store (worker threads)
            assert asyncio.run(memory.aget()) == window
            assert asyncio.run(memory.aget_all()) == stored
            with pytest.raises(ContextWindowError):
                memory.get(initial_token_count=SMALL.context_window)
        finally:
            store.close()


def test_a_saved_context_is_not_restored_but_the_key_brings_the_history_back(tmp_path: Path) -> None:
    from llama_index.core.workflow import Context

    async def main() -> None:
        store = convkit.AsyncStore(f"sqlite+aiosqlite:///{tmp_path / 'ctx.db'}", upgrade=True)
        try:
            script = Script()
            agent = FunctionAgent(
                tools=[FunctionTool.from_defaults(add)], llm=MockFunctionCallingLLM(response_generator=script)
            )
            ctx = Context(agent)
            await agent.run("add 1", memory=ConvkitMemory(store, "t", model="grok-4"), ctx=ctx)
            saved = ctx.to_dict()
            restored = Context.from_dict(agent, saved)  # the state is rebuilt on first use
            with pytest.raises(ValueError, match=r"memory=ConvkitMemory\(store, key"):
                await agent.run("add 2", ctx=restored)
            answer = await agent.run("add 2", memory=ConvkitMemory(store, "t", model="grok-4"))
            assert str(answer) == "The sum is 42."
            assert script.inputs[-1][0].content == "add 1"  # the new run saw the first turn
        finally:
            await store.close()

    asyncio.run(main())
    with pytest.raises(ValidationError, match="model="):
        ConvkitMemory(convkit.Store(f"sqlite:///{tmp_path / 'ctx2.db'}"), "t")


def test_memory_set_put_and_from_defaults(tmp_path: Path) -> None:
    store = convkit.Store(f"sqlite:///{tmp_path / 'm.db'}")
    memory = ConvkitMemory.from_defaults(
        [_u("a"), _a("b")], chat_store=store, chat_store_key="k", model=SMALL
    )
    assert isinstance(memory, BaseMemory)
    assert memory.get_all() == [_u("a"), _a("b")]
    memory.put_messages([_calls("c1"), _result("c1")])
    with pytest.raises(InvalidConversationError):
        memory.put_messages([_u("x"), _result("zz")])  # one transaction: nothing stored
    assert len(memory.get_all()) == 4
    with pytest.raises(InvalidConversationError):
        memory.set([_result("c1")])
    assert len(memory.get_all()) == 4
    memory.set([_u("only")])
    assert memory.get() == [_u("only")]
    memory.reset()
    assert memory.get_all() == []
    assert memory.get() == []
    memory.set([ChatMessage(role="system", content="sys")])
    assert memory.get() == [ChatMessage(role="system", content="sys")]  # nothing to trim around
    store.close()


_REPLIES = ("assistant", "tool")


def _units(messages: list[Message]) -> tuple[list[list[int]], list[bool]]:
    """The window's trim units (positions) and which of them fit always keeps."""
    units = unit_starts(messages)
    return unit_lists(units, len(messages)), must_keep_units(messages, units)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conv=conversations(max_size=18, images=False), data=st.data())
def test_memory_get_opens_on_a_user_after_a_cut_never_splits_a_tool_group_nor_exceeds_the_budget(
    sqlite_store: convkit.Store, conv: list[Message], data: st.DataObject
) -> None:
    # budgets near what the leading system messages and the newest from a reply on need
    replies = [i for i, m in enumerate(conv) if i and m.role in _REPLIES]
    k = data.draw(st.sampled_from(replies or [0]), label="cut at")
    lead = conv[: min(k, next(i for i, m in enumerate(conv) if m.role != "system"))]
    exact = WIDE.context_window - COUNTER.count_messages([*lead, *conv[k:]], model=WIDE)
    reserve = max(0, exact + data.draw(st.sampled_from([0, 0, -40, 40]) | st.integers(-200, 200)))
    chat = ConvkitChatStore(sqlite_store)
    key = f"prop-{len(sqlite_store.list_conversations(limit=10_000))}"
    chat.set_messages(key, [to_llama_index(m) for m in conv])
    memory = ConvkitMemory(chat, key, model=WIDE, reserve=reserve, counter=COUNTER)
    try:
        expected = convkit.fit(conv, model=WIDE, reserve=reserve, counter=COUNTER)
    except ContextWindowError:
        event("the must-keep messages do not fit")
        with pytest.raises(ContextWindowError):
            memory.get()
        return
    window = memory.get()
    assert asyncio.run(memory.aget()) == window
    assert chat.window(key, model=WIDE, reserve=reserve, counter=COUNTER) == window
    got = [from_llama_index(m) for m in window]
    fitted = list(expected.messages)
    position = [p for a, b in expected.kept_spans for p in range(a, b)]  # fit's window -> conversation
    # get() is fit's window less its oldest droppable units that a cut left opening with a reply
    units, keep = _units(fitted)
    dropped: set[int] = set()
    for unit in (unit for u, unit in enumerate(units) if not keep[u]):
        if fitted[unit[0]].role == "system":
            continue  # a system message the cut brings after the leading ones joins them
        if fitted[unit[0]].role not in _REPLIES or position[unit[0]] == unit[0]:
            break  # a user message, or the conversation's own opening: nothing more goes
        dropped.update(unit)
    assert got == [m for i, m in enumerate(fitted) if i not in dropped]
    event(
        "fits whole" if len(got) == len(conv) else "replies dropped after the cut" if dropped else "trimmed"
    )
    # so after the leading system, pinned and system units, the window opens on a user message,
    # or on the newest turn (kept whatever it is), or where the conversation itself opens
    units, keep = _units(got)
    first = next(
        (u[0] for k, u in zip(keep, units, strict=True) if not k and got[u[0]].role != "system"), None
    )
    if first is not None and got[first].role in _REPLIES:
        assert got[: first + 1] == conv[: first + 1]  # nothing before it was cut
    # a call kept keeps every result the conversation has for it; no result without its call
    _check_no_orphans(window)
    kept_calls = {c.id for m in got for c in m.tool_calls}
    answered = {m.tool_call_id for m in conv if m.role == "tool"}
    assert kept_calls & answered == {m.tool_call_id for m in got if m.role == "tool"}
    # and the window, counted by the counter itself, fits the budget
    assert expected.budget <= WIDE.context_window - reserve
    assert COUNTER.count_messages(got, model=WIDE) <= expected.budget


def _answered(draw: st.DrawFn, call_ids: list[str]) -> list[ChatMessage]:
    """A result for each call, some holding a document (tools may return files)."""
    out = []
    for call_id in call_ids:
        blocks: list[Any] = [TextBlock(text=draw(texts(max_size=20)))]
        blocks += draw(st.lists(st.one_of(_OTHER, _OTHER, _BIG), max_size=1))
        role = draw(st.sampled_from(["tool", "function"]))
        out.append(ChatMessage(role=role, blocks=blocks, additional_kwargs={"tool_call_id": call_id}))
    return out


@st.composite
def chat_histories(draw: st.DrawFn) -> list[ChatMessage]:
    """ChatMessage conversations with every block kind, large documents too; each call answered."""
    history: list[ChatMessage] = []
    seen: set[str] = set()
    for msg in draw(st.lists(chat_messages(big=True), min_size=1, max_size=10)):
        if msg.role in (MessageRole.TOOL, MessageRole.FUNCTION):
            continue  # results come right after their calls, below
        try:
            ids = [c.id for c in from_llama_index(msg).tool_calls]
        except InvalidMessageError:
            continue  # nothing to send: refused, as documented
        if seen & set(ids):
            continue  # a call id used twice in a conversation
        seen.update(ids)
        history += [msg, *_answered(draw, ids)]
    return history or [_u("hello")]


def _json_of(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _sent_blocks(msg: ChatMessage) -> list[Any]:
    """The blocks LlamaIndex sends that convkit has no part for (all but text, image, tool call, cache)."""
    plain = (TextBlock, ImageBlock, ToolCallBlock, CachePoint)
    return [b for b in msg.blocks if not isinstance(b, plain)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=chat_histories(), reserve=st.integers(0, 200))
def test_memory_window_counts_every_block_it_sends_and_fits_the_budget(
    sqlite_store: convkit.Store, history: list[ChatMessage], reserve: int
) -> None:
    chat = ConvkitChatStore(sqlite_store)
    key = f"blocks-{len(sqlite_store.list_conversations(limit=10_000))}"
    chat.set_messages(key, history)
    assert chat.get_messages(key) == history  # stored and read back exactly, every block
    memory = ConvkitMemory(chat, key, model=SMALL, reserve=reserve, counter=COUNTER)
    try:
        window = memory.get()
    except ContextWindowError:
        event("the must-keep messages do not fit")
        return
    event("trimmed" if len(window) < len(history) else "all fit")
    if any(_sent_blocks(m) for m in window):
        event("the window sends thinking, document, audio, video or citation blocks")
    assert all(m in history for m in window)  # messages as they were, blocks and all
    sent = [from_llama_index(m) for m in window]
    # what LlamaIndex sends of each block is in the message convkit counts: its JSON ...
    for msg, m in zip(window, sent, strict=True):
        counted = [_json_of(p.text) for p in m.content if isinstance(p, TextPart)]
        for block in _sent_blocks(msg):
            assert block.model_dump(mode="json") in counted
    # ... and the window, counted by the memory's counter for the model, fits the budget
    assert COUNTER.count_messages(sent, model=SMALL) <= SMALL.context_window - reserve


def test_a_big_document_makes_older_messages_drop(tmp_path: Path) -> None:
    store = convkit.Store(f"sqlite:///{tmp_path / 'doc.db'}")
    try:
        doc = ChatMessage(
            role="user",
            blocks=[
                TextBlock(text="Summarize this."),
                DocumentBlock(data=_noise(330, 7), document_mimetype="application/pdf", title="report"),
            ],
        )
        older = [
            _u("Hello, I have a question about the figures in our quarterly sales report."),
            _a("Of course! Please send me the report and tell me which figures you mean."),
            _u("I will send the whole report, then we can go through the regional numbers."),
            _a("Sounds good. Send it whenever you are ready and I will summarize it first."),
        ]
        ConvkitChatStore(store).set_messages("doc", [*older, doc])
        # 500 tokens (600 - 100): the document alone (about 490, as its JSON) leaves no room for the rest
        memory = ConvkitMemory(store, "doc", model=SMALL, reserve=100, counter=COUNTER)
        assert memory.get() == [doc]
        assert memory.get_all() == [*older, doc]

        def window(budget: int) -> list[ChatMessage]:
            reserve = SMALL.context_window - budget
            return ConvkitMemory(store, "doc", model=SMALL, reserve=reserve, counter=COUNTER).get()

        def tokens(messages: list[ChatMessage]) -> int:
            return COUNTER.count_messages([from_llama_index(m) for m in messages], model=SMALL)

        # the document is counted (as its JSON: hundreds of tokens), so it crowds the older turns out
        assert 400 < tokens([doc]) <= 500 < tokens([older[-1], doc])
        assert window(tokens([doc])) == [doc]
        # room for the answer before it too: the cut would leave it opening the window, so it goes
        assert window(tokens([older[-1], doc])) == [doc]
        assert window(tokens([*older[-2:], doc])) == [*older[-2:], doc]
        assert window(tokens([*older, doc]) - 1) == [*older[2:], doc]
        # a document bigger than the whole window is refused, never sent
        big = ChatMessage(role="user", blocks=[DocumentBlock(data=_noise(600, 8))])
        ConvkitChatStore(store).add_message("doc", big)
        with pytest.raises(ContextWindowError):
            window(SMALL.context_window)
        # system messages alone are sent whole (nothing to trim around), so they must fit too
        memory = ConvkitMemory(store, "sys", model=SMALL, reserve=0, counter=COUNTER)
        memory.set([ChatMessage(role="system", blocks=[TextBlock(text="Read it."), big.blocks[0]])])
        with pytest.raises(ContextWindowError, match="only system messages"):
            memory.get()
        with pytest.raises(ContextWindowError, match="only system messages"):
            asyncio.run(memory.aget())
        memory.set([ChatMessage(role="system", blocks=[TextBlock(text="Read it."), doc.blocks[1]])])
        assert memory.get() == memory.get_all()  # it fits: all of it
    finally:
        store.close()


# ChatMemoryBuffer's messages (llama-index-core tests/memory/test_chat_memory_buffer.py)
_FIRST, _FIRST_ANSWER = _u("first message"), _a("first answer")
_SECOND, _SECOND_ANSWER = _u("second message"), _a("second answer")


def test_after_a_cut_the_window_opens_on_a_user_message_as_chat_memory_buffer_does(tmp_path: Path) -> None:
    from llama_index.core.memory import ChatMemoryBuffer

    history = [_FIRST, _FIRST_ANSWER, _SECOND, _SECOND_ANSWER]
    # ChatMemoryBuffer (a word a token here: no tokenizer download) with room for the last three
    # messages drops the first answer too, rather than open the history with it
    buffer = ChatMemoryBuffer.from_defaults(history, token_limit=6, tokenizer_fn=str.split)
    assert buffer.get() == [_SECOND, _SECOND_ANSWER]
    store = convkit.Store(f"sqlite:///{tmp_path / 'cut.db'}")
    try:
        chat = ConvkitChatStore(store)

        def tokens(messages: list[ChatMessage]) -> int:
            return COUNTER.count_messages([from_llama_index(m) for m in messages], model=SMALL)

        def memory(key: str, messages: list[ChatMessage], *, room: list[ChatMessage]) -> ConvkitMemory:
            """A memory whose budget holds ``room`` exactly."""
            chat.set_messages(key, messages)
            reserve = SMALL.context_window - tokens(room)
            return ConvkitMemory(chat, key, model=SMALL, reserve=reserve, counter=COUNTER)

        # fit's window would be [first answer, second message, second answer]: the answer goes too
        assert convkit.fit(
            [from_llama_index(m) for m in history],
            model=SMALL,
            reserve=SMALL.context_window - tokens(history[1:]),
            counter=COUNTER,
        ).messages == tuple(from_llama_index(m) for m in history[1:])
        cut = memory("cut", history, room=history[1:])
        assert cut.get() == [_SECOND, _SECOND_ANSWER]
        assert asyncio.run(cut.aget()) == [_SECOND, _SECOND_ANSWER]
        assert chat.window("cut", model=SMALL, reserve=cut.reserve, counter=COUNTER) == [
            _SECOND,
            _SECOND_ANSWER,
        ]
        # after the system and pinned messages (kept, whatever they are)
        system = ChatMessage(role="system", content="Be brief.")
        pinned = ChatMessage(
            role="assistant", content="Noted: metric units.", additional_kwargs={"convkit": {"pinned": True}}
        )
        kept = [system, pinned]
        assert memory("sys", [*kept, *history], room=[*kept, *history[1:]]).get() == [
            *kept,
            _SECOND,
            _SECOND_ANSWER,
        ]
        # a system message the cut brings right after them joins them: the answer after it goes too
        note = ChatMessage(role="system", content="The user is in Paris.")
        noted = [system, _FIRST, _FIRST_ANSWER, note, _a("Bonjour!"), _SECOND]
        assert memory("note", noted, room=[system, *noted[2:]]).get() == [system, note, _SECOND]
        # a tool call with its results, and the answer after them, go as one
        tools = [_FIRST, _calls("c1", "c2"), _result("c2"), _result("c1"), _FIRST_ANSWER, _SECOND]
        assert memory("tools", tools, room=tools[1:]).get() == [_SECOND]
        # the newest message is kept even when it is an answer (the cut leaves nothing else)
        assert memory("newest", history, room=history[2:]).get() == [_SECOND, _SECOND_ANSWER]
        assert memory("newest", history, room=history[3:]).get() == [_SECOND_ANSWER]
        assert buffer.get(initial_token_count=5) == [_SECOND_ANSWER]  # ChatMemoryBuffer keeps it too
        # a conversation that opens with an answer is sent so while nothing is cut (as ChatMemoryBuffer)
        greeted = [_a("Hello! How can I help?"), _FIRST, _FIRST_ANSWER]
        assert memory("greet", greeted, room=greeted).get() == greeted
        assert (
            ChatMemoryBuffer.from_defaults(greeted, token_limit=100, tokenizer_fn=str.split).get() == greeted
        )
    finally:
        store.close()


def test_a_dropped_image_keeps_the_other_blocks(tmp_path: Path) -> None:
    """images="drop" on a text-only model: the image becomes the note, the document stays a document."""
    text_only = ModelSpec("li-text", 2000, {"text"}, message_overhead=4, request_overhead=3)
    store = convkit.Store(f"sqlite:///{tmp_path / 'img.db'}")
    try:
        memory = ConvkitMemory(store, "k", model=text_only, counter=COUNTER, images="drop")
        thinking = ThinkingBlock(content="look", additional_information={"signature": "s1"})
        document = DocumentBlock(data=b"%PDF-1.4 tiny", document_mimetype="application/pdf")
        msg = ChatMessage(role="user", blocks=[thinking, ImageBlock(image=png()), document])
        memory.put(msg)
        [got] = memory.get()
        assert got.blocks[0] == thinking
        assert isinstance(got.blocks[1], TextBlock)  # the note saying an image was there
        assert got.blocks[2] == document
        assert memory.get_all() == [msg]
    finally:
        store.close()


def test_readme_llama_index_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(readme_block("llama-index"), "README.md:llama-index", "exec"), namespace)
    [db] = tmp_path.glob("*.db")  # the example's SQLite file, whatever it calls it
    store = convkit.Store(f"sqlite:///{db}")
    try:
        conv = store.conversation_for("user-42", create=False)
        assert conv.message_count >= 4
        assert any(m.tool_calls for m in store.messages(conv.id))
    finally:
        store.close()


def test_memory_on_an_async_store_names_its_own_async_methods(tmp_path: Path) -> None:
    """A memory user calling a sync method on an AsyncStore is told the memory's twins (aget, aput...),
    not the chat store's."""
    store = convkit.AsyncStore(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    memory = ConvkitMemory(store, "k", model="grok-4")
    message = ChatMessage(role="user", content="hi")
    calls = {
        "get": memory.get,
        "get_all": memory.get_all,
        "put": lambda: memory.put(message),
        "put_messages": lambda: memory.put_messages([message]),
        "set": lambda: memory.set([message]),
        "reset": memory.reset,
    }
    for name, call in calls.items():
        with pytest.raises(
            ValidationError, match=rf"ConvkitMemory\.{name} is synchronous .* \(aget, aget_all, aput"
        ):
            call()
    asyncio.run(store.close())
