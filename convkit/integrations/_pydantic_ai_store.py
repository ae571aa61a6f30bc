"""A Pydantic AI message history kept in a convkit conversation named by an application key.

Private to :mod:`convkit.integrations.pydantic_ai`, which re-exports
:class:`ConvkitMessageHistory` (a :class:`~convkit.Store`) and
:class:`AsyncConvkitMessageHistory` (an :class:`~convkit.AsyncStore`); the
twins differ only by ``await``. The conversation is
``store.conversation_for(key)``, looked up (and created empty) on first use,
not when the object is made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic_ai import messages as pm

from .._errors import ValidationError
from .._models import ModelSpec
from ._pydantic_ai_convert import from_pydantic_ai, to_pydantic_ai

if TYPE_CHECKING:
    from .._results import Conversation
    from ..store import AsyncStore, Store


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > 255 or "\x00" in key:
        raise ValidationError(
            f"key is the application's id of the conversation: a non-empty str of at most 255 characters "
            f"without NUL, got {key!r}"
        )
    return key


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
        self.key = _check_key(key)
        self.title = title
        self.metadata = metadata
        self._conversation_id: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r}, {self.key!r})"  # type: ignore[attr-defined]


class ConvkitMessageHistory(_Keyed):
    """Pydantic AI messages kept in the conversation of ``store`` whose key is ``key``.

    ``history.load()`` gives ``message_history=`` for the next run and
    ``history.save(result.new_messages())`` appends a run's messages (one
    transaction: all or none). The conversation is created (with ``title``
    and ``metadata``) the first time one is needed; making the object does no
    I/O. A bad key or store raises :class:`~convkit.ValidationError` at once.
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
        """The key's conversation (created empty on first use)."""
        conv = self.store.conversation_for(self.key, title=self.title, metadata=self.metadata)
        self._conversation_id = conv.id
        return conv

    def conversation_id(self) -> str:
        """The id of the key's conversation (looked up, and created, on first use)."""
        if self._conversation_id is None:
            self.conversation()
        assert self._conversation_id is not None
        return self._conversation_id

    def load(self) -> list[pm.ModelMessage]:
        """Every stored message, as the list Pydantic AI takes as ``message_history``."""
        return to_pydantic_ai(self.store.messages(self.conversation_id()))

    def save(self, messages: Sequence[pm.ModelMessage]) -> None:
        """Append ``messages`` (say ``result.new_messages()``) in one transaction."""
        converted = from_pydantic_ai(messages)
        if converted:
            self.store.extend(self.conversation_id(), converted)

    def window(self, *, model: str | ModelSpec, **kwargs: Any) -> list[pm.ModelMessage]:
        """The stored messages that fit ``model`` now (``store.window(...)``), as Pydantic AI messages."""
        return to_pydantic_ai(self.store.window(self.conversation_id(), model=model, **kwargs).messages)

    def clear(self) -> None:
        """Delete every message (the conversation stays, with its key)."""
        self.store.truncate(self.conversation_id(), 0)


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
        """The key's conversation (created empty on first use)."""
        conv = await self.store.conversation_for(self.key, title=self.title, metadata=self.metadata)
        self._conversation_id = conv.id
        return conv

    async def conversation_id(self) -> str:
        """The id of the key's conversation (looked up, and created, on first use)."""
        if self._conversation_id is None:
            await self.conversation()
        assert self._conversation_id is not None
        return self._conversation_id

    async def load(self) -> list[pm.ModelMessage]:
        """Every stored message, as the list Pydantic AI takes as ``message_history``."""
        return to_pydantic_ai(await self.store.messages(await self.conversation_id()))

    async def save(self, messages: Sequence[pm.ModelMessage]) -> None:
        """Append ``messages`` (say ``result.new_messages()``) in one transaction."""
        converted = from_pydantic_ai(messages)
        if converted:
            await self.store.extend(await self.conversation_id(), converted)

    async def window(self, *, model: str | ModelSpec, **kwargs: Any) -> list[pm.ModelMessage]:
        """The stored messages that fit ``model`` now (``store.window(...)``), as Pydantic AI messages."""
        result = await self.store.window(await self.conversation_id(), model=model, **kwargs)
        return to_pydantic_ai(result.messages)

    async def clear(self) -> None:
        """Delete every message (the conversation stays, with its key)."""
        await self.store.truncate(await self.conversation_id(), 0)
