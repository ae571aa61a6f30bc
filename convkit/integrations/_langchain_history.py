"""LangChain ``BaseChatMessageHistory`` on a convkit conversation (:class:`ConvkitChatMessageHistory`).

Private to :mod:`convkit.integrations.langchain`, which re-exports the class.
Backed by a :class:`~convkit.Store` (sync and async methods) or an
:class:`~convkit.AsyncStore` (async methods only); messages are converted with
:func:`~convkit.integrations.langchain.to_langchain` /
:func:`~convkit.integrations.langchain.from_langchain`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage

from .._errors import ConversationNotFoundError, ValidationError
from .._fitting import FitResult
from .._models import ModelSpec
from ._langchain_convert import from_langchain, to_langchain

if TYPE_CHECKING:
    from ..store import AsyncStore, Store


class ConvkitChatMessageHistory(BaseChatMessageHistory):
    """A LangChain chat message history stored in a convkit conversation.

    ``store`` is a :class:`~convkit.Store` (every method works; the async
    ones run it in a worker thread) or an :class:`~convkit.AsyncStore` (only
    the async methods: ``aget_messages``, ``aadd_messages``, ``aclear``,
    ``areplace_messages``, ``awindow``). The conversation is named either by
    its convkit id (``ConvkitChatMessageHistory(store, conversation_id)``,
    :meth:`create`) or by the application's own key
    (``ConvkitChatMessageHistory(store, key="user-42")``, as
    ``RunnableWithMessageHistory``'s ``get_session_history`` gets a session
    id): a keyed conversation is created on first write
    (:meth:`convkit.Store.conversation_for`), and reads before it exist
    return no messages. Making a history does no I/O, so
    ``get_session_history`` never blocks an event loop.
    ``add_messages`` is one transaction; so is replacing
    the history (``history.messages = [...]``, :meth:`areplace_messages`),
    which validates the new list first and leaves the old messages intact
    when it is refused; ``clear`` empties the conversation (it stays, with
    its id). :meth:`window` / :meth:`awindow` give the
    messages that fit a Grok model, as ``store.window`` chooses them.
    """

    def __init__(
        self,
        store: Store | AsyncStore,
        conversation_id: str | None = None,
        *,
        key: str | None = None,
        title: str | None = None,
    ) -> None:
        from ..store import AsyncStore, Store
        from ..store._conversations import check_key

        if not isinstance(store, Store | AsyncStore):
            raise ValidationError(f"store must be a convkit Store or AsyncStore, got {type(store).__name__}")
        if (conversation_id is None) == (key is None):
            raise ValidationError(
                "name the history's conversation by exactly one of conversation_id (convkit's id) and key "
                f"(your own id, created on first use); got conversation_id={conversation_id!r}, key={key!r}"
            )
        if conversation_id is not None and (not isinstance(conversation_id, str) or not conversation_id):
            raise ValidationError(f"conversation_id is a non-empty string, got {conversation_id!r}")
        super().__init__()
        self.store = store
        self.key = None if key is None else check_key(key)
        self.title = title
        self._conversation_id = conversation_id

    @classmethod
    def create(cls, store: Store, *, title: str | None = None) -> ConvkitChatMessageHistory:
        """A history on a new conversation of ``store``."""
        return cls(store, store.create_conversation(title=title).id)

    @classmethod
    async def acreate(
        cls, store: Store | AsyncStore, *, title: str | None = None
    ) -> ConvkitChatMessageHistory:
        """A history on a new conversation of ``store`` (async)."""
        sync = _sync_store(store)
        if sync is not None:
            conv = await asyncio.to_thread(sync.create_conversation, title=title)
        else:
            conv = await cast("AsyncStore", store).create_conversation(title=title)
        return cls(store, conv.id)

    def __repr__(self) -> str:
        named = f"key={self.key!r}" if self.key is not None else repr(self._conversation_id)
        return f"ConvkitChatMessageHistory({self.store!r}, {named})"

    @property
    def conversation_id(self) -> str:
        """The convkit id of the conversation (a keyed one is looked up, and created, on first use)."""
        if self._conversation_id is None:
            self._conversation_id = (
                self._sync("conversation_id").conversation_for(cast(str, self.key), title=self.title).id
            )
        return self._conversation_id

    def _read_id(self) -> str | None:
        """The conversation's id for a read (None: a keyed conversation not created yet)."""
        if self._conversation_id is None:
            try:
                conv = self._sync("reading").conversation_for(cast(str, self.key), create=False)
            except ConversationNotFoundError:
                return None
            self._conversation_id = conv.id
        return self._conversation_id

    def _remember(self, cid: str) -> str:
        self._conversation_id = cid
        return cid

    async def _aid(self, *, create: bool) -> str | None:
        """The conversation's id, async (``create=False``: None for a keyed one not created yet)."""
        if self._conversation_id is not None:
            return self._conversation_id
        key = cast(str, self.key)
        sync = _sync_store(self.store)
        try:
            if sync is not None:
                conv = await asyncio.to_thread(sync.conversation_for, key, title=self.title, create=create)
            else:
                conv = await cast("AsyncStore", self.store).conversation_for(
                    key, title=self.title, create=create
                )
        except ConversationNotFoundError:
            return None
        return self._remember(conv.id)

    def _sync(self, what: str) -> Store:
        store = _sync_store(self.store)
        if store is None:
            raise ValidationError(
                f"{what} is synchronous but this history is backed by an AsyncStore; use the async "
                "methods (aget_messages, aadd_messages, aclear, areplace_messages, awindow) or back it "
                "with a Store"
            )
        return store

    # -- sync -----------------------------------------------------------------------------------
    @property
    def messages(self) -> list[BaseMessage]:
        """Every message of the conversation, as LangChain messages."""
        cid = self._read_id()
        return [] if cid is None else [to_langchain(m) for m in self._sync("messages").messages(cid)]

    @messages.setter
    def messages(self, value: Sequence[BaseMessage]) -> None:
        """Replace the conversation's messages in one transaction (all or nothing).

        ``history.messages = trim_messages(history.messages, ...)`` works: the
        new list is converted and validated before anything changes. A list
        convkit refuses (a tool message without its call, as ``trim_messages``
        can leave; :class:`~convkit.InvalidConversationError`) or cannot
        convert (:class:`~convkit.InvalidMessageError`) leaves the old
        messages as they were. See :meth:`areplace_messages` for async code.
        """
        store = self._sync("messages")
        converted = [from_langchain(m) for m in value]
        store.replace_messages(self.conversation_id, converted)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append messages in one transaction (all or none)."""
        converted = [from_langchain(m) for m in messages]
        store = self._sync("add_messages")
        store.extend(self.conversation_id, converted)

    def clear(self) -> None:
        """Delete every message of the conversation (the conversation itself stays)."""
        store = self._sync("clear")
        cid = self._read_id()
        if cid is not None:
            store.truncate(cid, 0)

    def window(self, *, model: str | ModelSpec, **kwargs: Any) -> list[BaseMessage]:
        """The messages to send to ``model`` now (``store.window(...)``, as LangChain messages)."""
        store = self._sync("window")
        cid = self._read_id()
        if cid is None:
            return []
        return [to_langchain(m) for m in store.window(cid, model=model, **kwargs).messages]

    # -- async ----------------------------------------------------------------------------------
    async def aget_messages(self) -> list[BaseMessage]:
        cid = await self._aid(create=False)
        if cid is None:
            return []
        sync = _sync_store(self.store)
        if sync is not None:
            stored = await asyncio.to_thread(sync.messages, cid)
        else:
            stored = await cast("AsyncStore", self.store).messages(cid)
        return [to_langchain(m) for m in stored]

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        converted = [from_langchain(m) for m in messages]
        cid = cast(str, await self._aid(create=True))
        sync = _sync_store(self.store)
        if sync is not None:
            await asyncio.to_thread(sync.extend, cid, converted)
        else:
            await cast("AsyncStore", self.store).extend(cid, converted)

    async def aclear(self) -> None:
        cid = await self._aid(create=False)
        if cid is None:
            return
        sync = _sync_store(self.store)
        if sync is not None:
            await asyncio.to_thread(sync.truncate, cid, 0)
        else:
            await cast("AsyncStore", self.store).truncate(cid, 0)

    async def areplace_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Replace the conversation's messages in one transaction (async ``history.messages = ...``).

        All or nothing, as the ``messages`` setter: on an error the old messages stay.
        """
        converted = [from_langchain(m) for m in messages]
        cid = cast(str, await self._aid(create=True))
        sync = _sync_store(self.store)
        if sync is not None:
            await asyncio.to_thread(sync.replace_messages, cid, converted)
        else:
            await cast("AsyncStore", self.store).replace_messages(cid, converted)

    async def awindow(self, *, model: str | ModelSpec, **kwargs: Any) -> list[BaseMessage]:
        """The messages to send to ``model`` now (async)."""
        cid = await self._aid(create=False)
        if cid is None:
            return []
        sync = _sync_store(self.store)
        result: FitResult
        if sync is not None:
            result = await asyncio.to_thread(lambda: sync.window(cid, model=model, **kwargs))
        else:
            result = await cast("AsyncStore", self.store).window(cid, model=model, **kwargs)
        return [to_langchain(m) for m in result.messages]


def _sync_store(store: object) -> Store | None:
    from ..store import Store

    return store if isinstance(store, Store) else None
