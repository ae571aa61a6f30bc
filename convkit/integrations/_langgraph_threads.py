"""A LangGraph thread's ``messages`` in a convkit conversation keyed by thread id (:class:`ConvkitMessages`).

Private to :mod:`convkit.integrations.langgraph`, which re-exports the class
and documents the design. Messages are converted with
:func:`~convkit.integrations.langchain.to_langchain` /
:func:`~convkit.integrations.langchain.from_langchain`; the store is a
:class:`~convkit.Store` (sync and async) or an :class:`~convkit.AsyncStore`
(async only).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from langchain_core.messages import BaseMessage, RemoveMessage
from langchain_core.runnables import RunnableLambda
from langgraph.graph.message import REMOVE_ALL_MESSAGES

from .._errors import ConversationNotFoundError, InvalidMessageError, ValidationError
from .._messages import Message
from ._langchain_convert import from_langchain, to_langchain
from ._langgraph_window import state_messages

if TYPE_CHECKING:
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
    * :attr:`load_node` / :attr:`save_node`: the same as graph nodes (sync
      and async): the load node makes the state's ``messages`` the stored
      thread followed by the run's new input; the save node stores what is new
      and changes no state.
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
        key = thread_id(config)
        try:
            return self._sync("conversation_id").conversation_for(key, create=False).id
        except ConversationNotFoundError:
            return None

    def load(self, config: Mapping[str, Any]) -> list[BaseMessage]:
        """The thread's stored messages (``[]`` if none), oldest first."""
        key = thread_id(config)
        store = self._sync("load")
        try:
            conv = store.conversation_for(key, create=False)
        except ConversationNotFoundError:
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
        key = thread_id(config)
        try:
            return cast(str, (await self._run("conversation_for", key, create=False)).id)
        except ConversationNotFoundError:
            return None

    async def aload(self, config: Mapping[str, Any]) -> list[BaseMessage]:
        """The thread's stored messages (``[]`` if none), oldest first (async)."""
        key = thread_id(config)
        try:
            conv = await self._run("conversation_for", key, create=False)
        except ConversationNotFoundError:
            return []
        return [to_langchain(m) for m in await self._run("messages", conv.id)]

    async def asave(self, config: Mapping[str, Any], messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """Append the messages the thread has not stored yet, in one transaction; returns them (async)."""
        key = thread_id(config)
        converted = _converted(messages)
        conv = await self._run("conversation_for", key, title=self.title)
        new = _new(await self._run("messages", conv.id), converted)
        if new:
            await self._run("extend", conv.id, new)
        return [to_langchain(m) for m in new]

    async def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a store method: awaited on an AsyncStore, in a worker thread on a Store."""
        from ..store import Store

        fn = getattr(self.store, method)
        if isinstance(self.store, Store):
            return await asyncio.to_thread(fn, *args, **kwargs)
        return await fn(*args, **kwargs)

    # -- graph nodes ----------------------------------------------------------------------------
    def _load_node(self, state: Any, config: Any) -> dict[str, list[BaseMessage]]:
        return {"messages": _merged(self.load(config), state_messages(state))}

    async def _aload_node(self, state: Any, config: Any) -> dict[str, list[BaseMessage]]:
        return {"messages": _merged(await self.aload(config), state_messages(state))}

    def _save_node(self, state: Any, config: Any) -> dict[str, Any]:
        self.save(config, state_messages(state))
        return {}

    async def _asave_node(self, state: Any, config: Any) -> dict[str, Any]:
        await self.asave(config, state_messages(state))
        return {}
