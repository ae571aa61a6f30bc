"""A LangGraph thread's ``messages`` in a convkit conversation keyed by thread id (:class:`ConvkitMessages`).

Private to :mod:`convkit.integrations.langgraph`, which re-exports the class
and documents the design. Messages are converted with
:func:`~convkit.integrations.langchain.to_langchain` /
:func:`~convkit.integrations.langchain.from_langchain`; the store is a
:class:`~convkit.Store` (sync and async) or an :class:`~convkit.AsyncStore`
(async only).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage, RemoveMessage
from langchain_core.runnables import RunnableLambda
from langgraph.graph.message import REMOVE_ALL_MESSAGES

from .._errors import InvalidMessageError, ValidationError
from .._messages import Message
from ._langchain_convert import from_langchain, to_langchain
from ._langgraph_window import state_messages
from ._store_calls import call

if TYPE_CHECKING:
    from .._results import Conversation
    from ..store import AsyncStore, Store


def thread_id(config: object) -> str:
    """The thread id of a LangGraph run's ``config`` (``config["configurable"]["thread_id"]``), as a str."""
    configurable = config.get("configurable") if isinstance(config, Mapping) else None
    if not isinstance(configurable, Mapping) or "thread_id" not in configurable:
        raise ValidationError(
            "the run's config has no thread id: pass config={'configurable': {'thread_id': ...}} to "
            "invoke / ainvoke / stream (convkit keeps one conversation per thread id)"
        )
    value = configurable["thread_id"]
    if isinstance(value, uuid.UUID) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    if not isinstance(value, str) or not value:
        raise ValidationError(
            f"thread_id must be a non-empty str (or an int or UUID, used as text), got {value!r}"
        )
    return value


def _converted(messages: object) -> list[tuple[str | None, Message]]:
    """Each message's LangChain id and convkit form, checked before any I/O."""
    if not isinstance(messages, Sequence) or isinstance(messages, str | bytes):
        raise ValidationError(f"messages must be a list of LangChain messages, got {type(messages).__name__}")
    out: list[tuple[str | None, Message]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, BaseMessage):
            raise ValidationError(f"messages[{i}] is a {type(m).__name__}, not a LangChain message")
        try:
            out.append((m.id or None, from_langchain(m)))
        except InvalidMessageError as exc:
            raise type(exc)(f"messages[{i}]: {exc}") from None
    return out


def _new(stored: Sequence[Message], converted: Sequence[tuple[str | None, Message]]) -> list[Message]:
    """The messages to append: those without an id, and those whose id no stored message has.

    Stored ids are the LangChain ids ``from_langchain`` kept (``to_langchain`` gives them back).
    """
    known = {i for i in (to_langchain(m).id for m in stored) if i}
    out: list[Message] = []
    for lc_id, m in converted:
        if lc_id is not None:
            if lc_id in known:
                continue
            known.add(lc_id)
        out.append(m)
    return out


def _merged(stored: list[BaseMessage], current: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The reducer update making the state ``stored`` then the current messages not among them.

    ``add_messages`` drops every message before a ``RemoveMessage(id=REMOVE_ALL_MESSAGES)``.
    """
    known = {m.id for m in stored if m.id}
    rest = [m for m in current if not (m.id and m.id in known)]
    return [RemoveMessage(id=REMOVE_ALL_MESSAGES), *stored, *rest]


# Where a run's config says how the node runs. LangGraph puts the graph's checkpointer under this key
# (langgraph.constants.CONFIG_KEY_CHECKPOINTER); a subgraph's namespace joins its parent's with "|".
_CHECKPOINTER_KEY = "__pregel_checkpointer"
_NS_SEP = "|"
# A run with no checkpoint to resume numbers its steps from -1 (the input) and 0 (START), so the nodes
# after START run in step 1; a run resuming a checkpoint numbers on from that checkpoint's step.
_FIRST_NODE_STEP = 1


def _resumed(config: Mapping[str, Any]) -> bool:
    """Whether a checkpointer restored the thread's state for this run (the node runs after START)."""
    configurable = config.get("configurable")
    metadata = config.get("metadata")
    step = metadata.get("langgraph_step") if isinstance(metadata, Mapping) else None
    return (
        isinstance(configurable, Mapping)
        and configurable.get(_CHECKPOINTER_KEY) is not None
        and isinstance(step, int)
        and step > _FIRST_NODE_STEP
    )


def _nested(config: Mapping[str, Any]) -> bool:
    """Whether the node runs in a subgraph (whose state its parent graph gave it)."""
    configurable = config.get("configurable")
    ns = configurable.get("checkpoint_ns") if isinstance(configurable, Mapping) else None
    return isinstance(ns, str) and _NS_SEP in ns


def _carries(stored: Sequence[BaseMessage], current: Sequence[BaseMessage]) -> bool:
    """Whether the state came from the stored thread: one of its messages has a stored id."""
    known = {m.id for m in stored if m.id}
    return any(m.id in known for m in current if m.id)


def _loaded(
    stored: list[BaseMessage], current: Sequence[BaseMessage], config: Mapping[str, Any]
) -> dict[str, list[BaseMessage]]:
    """The load node's update (after :func:`_resumed` said no): none when a parent graph gave a
    subgraph the thread already, else the stored thread first."""
    if _nested(config) and _carries(stored, current):
        return {}
    return {"messages": _merged(stored, current)}


def _extends(stored: Sequence[BaseMessage], current: Sequence[BaseMessage]) -> bool:
    """Whether the state's messages begin with the stored ones (a stored message without a LangChain id
    matches the same message with the id ``add_messages`` gave it)."""
    if len(current) < len(stored):
        return False
    pairs = zip(stored, current[: len(stored)], strict=True)
    return all(s == (c if s.id else c.model_copy(update={"id": None})) for s, c in pairs)


def _plan(
    stored: Sequence[Message], current: Sequence[BaseMessage], converted: Sequence[tuple[str | None, Message]]
) -> tuple[bool, list[Message]]:
    """What the save node writes: ``(False, new)`` appends ``new``; ``(True, all)`` replaces the thread.

    A state that begins with the stored thread appends the rest (a run's usual case). A state that
    came from the stored thread (it holds a stored id) but no longer begins with it was edited (a
    node, ``update_state`` or a fork changed or removed stored messages): it replaces the thread. A
    state that shares no message with it appends what is new, so no save loses what is stored.
    """
    as_stored = [to_langchain(m) for m in stored]
    if _extends(as_stored, current):
        return False, _new(stored, converted[len(stored) :])
    if _carries(as_stored, current):
        return True, [m for _, m in converted]
    return False, _new(stored, converted)


class ConvkitMessages:
    """A LangGraph thread's messages, kept in a convkit conversation named by the thread id.

    ``store``: a :class:`~convkit.Store` (sync and async methods; the async
    ones run it in a worker thread) or an :class:`~convkit.AsyncStore`
    (async methods only: :meth:`aload`, :meth:`asave`, and the nodes under
    ``ainvoke`` / ``astream``; the sync ones raise
    :class:`~convkit.ValidationError`). Each thread id
    (``config["configurable"]["thread_id"]``) names one conversation through
    ``store.conversation_for(thread_id)``, created (with ``title``) the first
    time messages are saved; making this object does no I/O.

    * :meth:`load` / :meth:`aload`: the thread's stored messages as LangChain
      messages (``[]`` for a thread never saved; reading creates nothing).
    * :meth:`save` / :meth:`asave`: append, in one transaction, the messages
      not stored yet: those whose LangChain ``id`` no stored message of the
      thread has, and those without an id (LangGraph's ``add_messages``
      gives every message of the state an id). Returns what was appended.
    * :attr:`load_node` / :attr:`save_node`: graph nodes (sync and async),
      ``START -> load_node -> ... -> save_node``. The load node makes the
      state's ``messages`` the stored thread followed by the run's input,
      unless a LangGraph checkpointer restored the thread's state for the run
      (or, in a subgraph, the parent gave it the thread): then the state wins
      and it changes nothing. The save node makes the conversation match the
      state (appends what is new; replaces the stored thread, in one
      transaction, when the state came from it and was edited, had messages
      removed or was forked) and changes no state. See
      :mod:`convkit.integrations.langgraph` for the rules with a checkpointer.
    """

    def __init__(self, store: Store | AsyncStore, *, title: str | None = None) -> None:
        from ..store import AsyncStore, Store

        if not isinstance(store, Store | AsyncStore):
            raise ValidationError(f"store must be a convkit Store or AsyncStore, got {type(store).__name__}")
        if title is not None and not isinstance(title, str):
            raise ValidationError(f"title must be a str or None, got {type(title).__name__}")
        self.store = store
        self.title = title
        self.load_node: RunnableLambda[Any, dict[str, list[BaseMessage]]] = RunnableLambda(
            self._load_node, afunc=self._aload_node, name="convkit_load"
        )
        self.save_node: RunnableLambda[Any, dict[str, Any]] = RunnableLambda(
            self._save_node, afunc=self._asave_node, name="convkit_save"
        )

    def __repr__(self) -> str:
        return f"ConvkitMessages({self.store!r}, title={self.title!r})"

    def _sync(self, what: str) -> Store:
        from ..store import Store

        if not isinstance(self.store, Store):
            raise ValidationError(
                f"{what} is synchronous but these messages are kept in an AsyncStore; use the async "
                "methods (aload, asave, aconversation_id; graph.ainvoke / astream for the nodes) or "
                "a Store"
            )
        return self.store

    # -- sync -----------------------------------------------------------------------------------
    def conversation_id(self, config: Mapping[str, Any]) -> str | None:
        """The id of the thread's conversation, or None when the thread was never saved."""
        conv = self._sync("conversation_id").find_conversation(thread_id(config))
        return None if conv is None else conv.id

    def load(self, config: Mapping[str, Any]) -> list[BaseMessage]:
        """The thread's stored messages (``[]`` if none), oldest first."""
        key = thread_id(config)
        store = self._sync("load")
        conv = store.find_conversation(key)
        if conv is None:
            return []
        return [to_langchain(m) for m in store.messages(conv.id)]

    def save(self, config: Mapping[str, Any], messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """Append the messages the thread has not stored yet, in one transaction; returns them."""
        key = thread_id(config)
        store = self._sync("save")
        converted = _converted(messages)
        conv = store.conversation_for(key, title=self.title)
        new = _new(store.messages(conv.id), converted)
        if new:
            store.extend(conv.id, new)
        return [to_langchain(m) for m in new]

    # -- async ----------------------------------------------------------------------------------
    async def aconversation_id(self, config: Mapping[str, Any]) -> str | None:
        """The id of the thread's conversation, or None when the thread was never saved (async)."""
        conv: Conversation | None = await call(self.store, "find_conversation", thread_id(config))
        return None if conv is None else conv.id

    async def aload(self, config: Mapping[str, Any]) -> list[BaseMessage]:
        """The thread's stored messages (``[]`` if none), oldest first (async)."""
        conv: Conversation | None = await call(self.store, "find_conversation", thread_id(config))
        if conv is None:
            return []
        return [to_langchain(m) for m in await call(self.store, "messages", conv.id)]

    async def asave(self, config: Mapping[str, Any], messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """Append the messages the thread has not stored yet, in one transaction; returns them (async)."""
        key = thread_id(config)
        converted = _converted(messages)
        conv = await call(self.store, "conversation_for", key, title=self.title)
        new = _new(await call(self.store, "messages", conv.id), converted)
        if new:
            await call(self.store, "extend", conv.id, new)
        return [to_langchain(m) for m in new]

    # -- graph nodes ----------------------------------------------------------------------------
    def _load_node(self, state: Any, config: Any) -> dict[str, list[BaseMessage]]:
        current = state_messages(state)
        if _resumed(config):  # the checkpointer's state is the thread
            return {}
        return _loaded(self.load(config), current, config)

    async def _aload_node(self, state: Any, config: Any) -> dict[str, list[BaseMessage]]:
        current = state_messages(state)
        if _resumed(config):
            return {}
        return _loaded(await self.aload(config), current, config)

    def _save_node(self, state: Any, config: Any) -> dict[str, Any]:
        current = state_messages(state)
        key = thread_id(config)
        store = self._sync("save_node")
        converted = _converted(current)
        conv = store.conversation_for(key, title=self.title)
        replace, batch = _plan(store.messages(conv.id), current, converted)
        if replace:
            store.replace_messages(conv.id, batch)
        elif batch:
            store.extend(conv.id, batch)
        return {}

    async def _asave_node(self, state: Any, config: Any) -> dict[str, Any]:
        current = state_messages(state)
        key = thread_id(config)
        converted = _converted(current)
        conv = await call(self.store, "conversation_for", key, title=self.title)
        replace, batch = _plan(await call(self.store, "messages", conv.id), current, converted)
        if replace:
            await call(self.store, "replace_messages", conv.id, batch)
        elif batch:
            await call(self.store, "extend", conv.id, batch)
        return {}
