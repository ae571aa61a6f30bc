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

from .._errors import ValidationError
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
    ``areplace_messages``, ``awindow``). The conversation must exist (see
    :meth:`create`). ``add_messages`` is one transaction; so is replacing
    the history (``history.messages = [...]``, :meth:`areplace_messages`),
    which validates the new list first and leaves the old messages intact
    when it is refused; ``clear`` empties the conversation (it stays, with
    its id). :meth:`window` / :meth:`awindow` give the
    messages that fit a Grok model, as ``store.window`` chooses them.
    """

    def __init__(self, store: Store | AsyncStore, conversation_id: str) -> None:
        from ..store import AsyncStore, Store

        if not isinstance(store, Store | AsyncStore):
            raise ValidationError(f"store must be a convkit Store or AsyncStore, got {type(store).__name__}")
        super().__init__()
        self.store = store
        self.conversation_id = conversation_id

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
        return f"ConvkitChatMessageHistory({self.store!r}, {self.conversation_id!r})"

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
        return [to_langchain(m) for m in self._sync("messages").messages(self.conversation_id)]

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
        self._sync("add_messages").extend(self.conversation_id, converted)

    def clear(self) -> None:
        """Delete every message of the conversation (the conversation itself stays)."""
        self._sync("clear").truncate(self.conversation_id, 0)

    def window(self, *, model: str | ModelSpec, **kwargs: Any) -> list[BaseMessage]:
        """The messages to send to ``model`` now (``store.window(...)``, as LangChain messages)."""
        result = self._sync("window").window(self.conversation_id, model=model, **kwargs)
        return [to_langchain(m) for m in result.messages]

    # -- async ----------------------------------------------------------------------------------
    async def aget_messages(self) -> list[BaseMessage]:
        sync = _sync_store(self.store)
        if sync is not None:
            stored = await asyncio.to_thread(sync.messages, self.conversation_id)
        else:
            stored = await cast("AsyncStore", self.store).messages(self.conversation_id)
        return [to_langchain(m) for m in stored]

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        converted = [from_langchain(m) for m in messages]
        sync = _sync_store(self.store)
        if sync is not None:
            await asyncio.to_thread(sync.extend, self.conversation_id, converted)
        else:
            await cast("AsyncStore", self.store).extend(self.conversation_id, converted)

    async def aclear(self) -> None:
        sync = _sync_store(self.store)
        if sync is not None:
            await asyncio.to_thread(sync.truncate, self.conversation_id, 0)
        else:
            await cast("AsyncStore", self.store).truncate(self.conversation_id, 0)

    async def areplace_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Replace the conversation's messages in one transaction (async ``history.messages = ...``).

        All or nothing, as the ``messages`` setter: on an error the old messages stay.
        """
        converted = [from_langchain(m) for m in messages]
        sync = _sync_store(self.store)
        if sync is not None:
            await asyncio.to_thread(sync.replace_messages, self.conversation_id, converted)
        else:
            await cast("AsyncStore", self.store).replace_messages(self.conversation_id, converted)

    async def awindow(self, *, model: str | ModelSpec, **kwargs: Any) -> list[BaseMessage]:
        """The messages to send to ``model`` now (async)."""
        sync = _sync_store(self.store)
        result: FitResult
        if sync is not None:
            result = await asyncio.to_thread(lambda: sync.window(self.conversation_id, model=model, **kwargs))
        else:
            result = await cast("AsyncStore", self.store).window(self.conversation_id, model=model, **kwargs)
        return [to_langchain(m) for m in result.messages]


def _sync_store(store: object) -> Store | None:
    from ..store import Store

    return store if isinstance(store, Store) else None
