"""A Pydantic AI message history kept in a convkit conversation named by an application key.

Private to :mod:`convkit.integrations.pydantic_ai`, which re-exports
:class:`ConvkitMessageHistory` (a :class:`~convkit.Store`) and
:class:`AsyncConvkitMessageHistory` (an :class:`~convkit.AsyncStore`); the
twins differ only by ``await``. Making one does no I/O; reads
(``load``, ``window``, ``clear``) find the key's conversation
(``store.find_conversation``) and never create it -- a key never written to
loads ``[]`` -- and the first write (``save``) creates it
(``store.conversation_for``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic_ai import messages as pm

from .._errors import ValidationError
from .._models import ModelSpec
from ..store._conversations import check_key
from ._pydantic_ai_convert import from_pydantic_ai, to_pydantic_ai

if TYPE_CHECKING:
    from .._results import Conversation
    from ..store import AsyncStore, Store


class _Keyed:
    """What both twins hold: the store, the key and the conversation's settings for its creation."""

    def __init__(
        self,
        store: Any,
        key: str,
        kind: type,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(store, kind):
            raise ValidationError(f"store must be a convkit {kind.__name__}, got {type(store).__name__}")
        self.key = check_key(key)
        self.title = title
        self.metadata = metadata
        self._conversation_id: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r}, {self.key!r})"  # type: ignore[attr-defined]


class ConvkitMessageHistory(_Keyed):
    """Pydantic AI messages kept in the conversation of ``store`` whose key is ``key``.

    ``history.load()`` gives ``message_history=`` for the next run and
    ``history.save(result.new_messages())`` appends a run's messages (one
    transaction: all or none). Making the object does no I/O; ``load``,
    ``window`` and ``clear`` only read (a key never saved to loads ``[]``,
    its window is ``[]`` and clearing it does nothing), and the first
    ``save`` creates the conversation (with ``title`` and ``metadata``). A
    bad key (:func:`convkit.Store.conversation_for`'s rules) or store raises
    :class:`~convkit.ValidationError` at once.
    """

    def __init__(
        self,
        store: Store,
        key: str,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        from ..store import Store

        super().__init__(store, key, Store, title=title, metadata=metadata)
        self.store = store

    def conversation(self) -> Conversation:
        """The key's conversation (created empty if no message was saved yet: a write)."""
        conv = self.store.conversation_for(self.key, title=self.title, metadata=self.metadata)
        self._conversation_id = conv.id
        return conv

    def conversation_id(self) -> str:
        """The id of the key's conversation (looked up, and created if need be, once)."""
        if self._conversation_id is None:
            self.conversation()
        assert self._conversation_id is not None
        return self._conversation_id

    def _found(self) -> Conversation | None:
        """The key's conversation as it is now, or None when none has the key (a read)."""
        conv = self.store.find_conversation(self.key)
        if conv is not None:
            self._conversation_id = conv.id
        return conv

    def load(self) -> list[pm.ModelMessage]:
        """Every stored message, as the list Pydantic AI takes as ``message_history`` (``[]``: none)."""
        conv = self._found()
        return [] if conv is None else to_pydantic_ai(self.store.messages(conv.id))

    def save(self, messages: Sequence[pm.ModelMessage]) -> None:
        """Append ``messages`` (say ``result.new_messages()``) in one transaction."""
        converted = from_pydantic_ai(messages)
        if converted:
            self.store.extend(self.conversation_id(), converted)

    def window(self, *, model: str | ModelSpec, **kwargs: Any) -> list[pm.ModelMessage]:
        """The stored messages that fit ``model`` now (``store.window(...)``), as Pydantic AI messages.

        ``[]`` when nothing is stored under the key.
        """
        conv = self._found()
        if conv is None or conv.message_count == 0:
            return []
        return to_pydantic_ai(self.store.window(conv.id, model=model, **kwargs).messages)

    def clear(self) -> None:
        """Delete every message (the conversation stays, with its key; none is created)."""
        conv = self._found()
        if conv is not None:
            self.store.truncate(conv.id, 0)


class AsyncConvkitMessageHistory(_Keyed):
    """:class:`ConvkitMessageHistory` on an :class:`~convkit.AsyncStore` (the same methods, awaited)."""

    def __init__(
        self,
        store: AsyncStore,
        key: str,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        from ..store import AsyncStore

        super().__init__(store, key, AsyncStore, title=title, metadata=metadata)
        self.store = store

    async def conversation(self) -> Conversation:
        """The key's conversation (created empty if no message was saved yet: a write)."""
        conv = await self.store.conversation_for(self.key, title=self.title, metadata=self.metadata)
        self._conversation_id = conv.id
        return conv

    async def conversation_id(self) -> str:
        """The id of the key's conversation (looked up, and created if need be, once)."""
        if self._conversation_id is None:
            await self.conversation()
        assert self._conversation_id is not None
        return self._conversation_id

    async def _found(self) -> Conversation | None:
        """The key's conversation as it is now, or None when none has the key (a read)."""
        conv = await self.store.find_conversation(self.key)
        if conv is not None:
            self._conversation_id = conv.id
        return conv

    async def load(self) -> list[pm.ModelMessage]:
        """Every stored message, as the list Pydantic AI takes as ``message_history`` (``[]``: none)."""
        conv = await self._found()
        return [] if conv is None else to_pydantic_ai(await self.store.messages(conv.id))

    async def save(self, messages: Sequence[pm.ModelMessage]) -> None:
        """Append ``messages`` (say ``result.new_messages()``) in one transaction."""
        converted = from_pydantic_ai(messages)
        if converted:
            await self.store.extend(await self.conversation_id(), converted)

    async def window(self, *, model: str | ModelSpec, **kwargs: Any) -> list[pm.ModelMessage]:
        """The stored messages that fit ``model`` now (``store.window(...)``), as Pydantic AI messages.

        ``[]`` when nothing is stored under the key.
        """
        conv = await self._found()
        if conv is None or conv.message_count == 0:
            return []
        result = await self.store.window(conv.id, model=model, **kwargs)
        return to_pydantic_ai(result.messages)

    async def clear(self) -> None:
        """Delete every message (the conversation stays, with its key; none is created)."""
        conv = await self._found()
        if conv is not None:
            await self.store.truncate(conv.id, 0)
