"""LlamaIndex ``BaseChatStore`` on a convkit store, a chat store key naming a conversation.

Private to :mod:`convkit.integrations.llama_index`, which re-exports
:class:`ConvkitChatStore` and documents how it differs from LlamaIndex's own
chat stores. Each key is the application key of one conversation
(:meth:`convkit.Store.conversation_for`), created on the first write to it;
messages are converted with :func:`._llama_index_convert.from_llama_index` /
:func:`._llama_index_convert.to_llama_index`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.storage.chat_store.base import BaseChatStore

from .._engine.units import drop_leading_units, link_owners
from .._errors import (
    InvalidConversationError,
    ValidationError,
)
from .._fitting import FitResult
from .._messages import Message
from .._results import Conversation
from ._llama_index_convert import from_llama_index, to_llama_index
from ._store_calls import call, system_only

if TYPE_CHECKING:
    from ..store import AsyncStore, Store

_PAGE = 1000


def _converted(messages: object, *, alone: bool) -> list[Message]:
    """convkit messages of ``messages``; ``alone``: refuse a tool result whose call is not among them."""
    if isinstance(messages, ChatMessage | str | bytes) or not isinstance(messages, Sequence):
        raise ValidationError(f"messages is a list of ChatMessage, got {type(messages).__name__}")
    out = [from_llama_index(m) for m in messages]
    if alone:  # checked before any I/O: a refused list creates no conversation
        link_owners(out, {}, 0)
    return out


def _index(idx: object, length: int) -> int | None:
    """``idx`` as a position in ``range(length)`` (negative counts from the end), None when outside."""
    if isinstance(idx, bool) or not isinstance(idx, int):
        raise ValidationError(f"idx is an integer position, got {idx!r}")
    if not -length <= idx < length:
        return None
    return idx % length


def _chat(messages: Sequence[Message]) -> list[ChatMessage]:
    return [to_llama_index(m) for m in messages]


_REPLIES = ("assistant", "tool")


def _opening_on_a_user(result: FitResult) -> list[Message]:
    """The window less the replies a cut left at its start, as ``ChatMemoryBuffer.get`` drops them.

    The oldest kept units go while the first message after the leading system and pinned
    ones (system messages the cut brings there among them) is an assistant or tool message
    with a message before it cut; the newest turn stays even then (it is what the model
    answers). A window that cut nothing before that message (the conversation itself opens
    so) and a summarized window (its summary covers only what was cut) are returned whole.
    """
    window = result.messages
    if result.summary is not None:
        return list(window)
    position = [p for a, b in result.kept_spans for p in range(a, b)]  # window index -> stored position

    def cut_before(i: int) -> bool:
        return window[i].role in _REPLIES and position[i] != i

    def system(i: int) -> bool:
        return window[i].role == "system"

    return [window[i] for i in drop_leading_units(window, range(len(window)), cut_before, system)]


class ConvkitChatStore(BaseChatStore):
    """A LlamaIndex chat store whose keys name conversations of a convkit store.

    ``store``: a :class:`~convkit.Store` (every method; the async ones run it
    in a worker thread) or an :class:`~convkit.AsyncStore` (the async methods
    only: ``aset_messages``, ``aget_messages``, ``async_add_message``,
    ``aadd_messages``, ``adelete_messages``, ``adelete_message``,
    ``adelete_last_message``, ``aget_keys``, ``awindow``; the sync ones raise
    :class:`~convkit.ValidationError`). Constructing one does no I/O; a
    key's conversation is created on the first write to it (reads of an
    unknown key return ``[]`` / ``None`` and create nothing). See
    :mod:`convkit.integrations.llama_index` for the semantics of each method.
    """

    _store: Any = PrivateAttr(default=None)

    def __init__(self, store: Store | AsyncStore) -> None:
        from ..store import AsyncStore, Store

        if not isinstance(store, Store | AsyncStore):
            raise ValidationError(f"store must be a convkit Store or AsyncStore, got {type(store).__name__}")
        super().__init__()
        self._store = store

    @classmethod
    def class_name(cls) -> str:
        return "ConvkitChatStore"

    @property
    def store(self) -> Store | AsyncStore:
        """The convkit store holding the conversations."""
        return self._store  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"ConvkitChatStore({self._store!r})"

    def _sync(self, what: str) -> Store:
        from ..store import Store

        if not isinstance(self._store, Store):
            raise ValidationError(
                f"{what} is synchronous but this chat store is backed by an AsyncStore; use its async twin "
                "(aset_messages, aget_messages, async_add_message, adelete_messages, adelete_message, "
                "adelete_last_message, aget_keys, awindow) or back it with a Store"
            )
        return self._store

    # -- sync -----------------------------------------------------------------------------------
    def _find(self, key: str, what: str) -> Conversation | None:
        return self._sync(what).find_conversation(key)

    def conversation_id(self, key: str) -> str:
        """The id of the conversation the key names (created now if none has it)."""
        return self._sync("conversation_id").conversation_for(key).id

    def set_messages(self, key: str, messages: list[ChatMessage]) -> None:
        """Replace the key's messages in one transaction (all or nothing)."""
        converted = _converted(messages, alone=True)
        self._sync("set_messages").replace_messages(self.conversation_id(key), converted)

    def get_messages(self, key: str) -> list[ChatMessage]:
        """The key's messages, oldest first (``[]`` for an unknown key)."""
        conv = self._find(key, "get_messages")
        return [] if conv is None else _chat(self._sync("get_messages").messages(conv.id))

    def add_message(self, key: str, message: ChatMessage, idx: int | None = None) -> None:
        """Append a message (``idx``: insert it at that position instead, as ``SimpleChatStore``)."""
        self.add_messages(key, [message], idx=idx)

    def add_messages(self, key: str, messages: list[ChatMessage], idx: int | None = None) -> None:
        """Append messages in one transaction (all or none); ``idx``: insert them there."""
        store = self._sync("add_messages")
        conv = self._find(key, "add_messages")
        converted = _converted(messages, alone=conv is None or conv.message_count == 0)
        if not converted:
            return
        cid = conv.id if conv is not None else self.conversation_id(key)
        if idx is None:
            store.extend(cid, converted)
            return
        old = store.messages(cid)
        at = _insert_at(idx, len(old))
        store.replace_messages(cid, [*old[:at], *converted, *old[at:]])

    def delete_messages(self, key: str) -> list[ChatMessage] | None:
        """Empty the key's conversation (it stays, with its key); the removed messages, None if unknown."""
        conv = self._find(key, "delete_messages")
        if conv is None:
            return None
        return _chat(self._sync("delete_messages").truncate(conv.id, 0))

    def delete_message(self, key: str, idx: int) -> ChatMessage | None:
        """Remove the message at ``idx`` (negative from the end); None when there is none.

        The last message is popped in one transaction; any other is removed by
        rewriting the conversation (one transaction, validated): removing an
        assistant message whose tool calls later messages answer raises
        :class:`~convkit.InvalidConversationError` and changes nothing.
        """
        store = self._sync("delete_message")
        conv = self._find(key, "delete_message")
        if conv is None:
            return None
        old = store.messages(conv.id)
        at = _index(idx, len(old))
        if at is None:
            return None
        if at == len(old) - 1:
            popped = store.pop(conv.id)
            return None if popped is None else to_llama_index(popped)
        store.replace_messages(conv.id, [*old[:at], *old[at + 1 :]])
        return to_llama_index(old[at])

    def delete_last_message(self, key: str) -> ChatMessage | None:
        """Remove and return the newest message (None for an empty or unknown key)."""
        conv = self._find(key, "delete_last_message")
        if conv is None:
            return None
        popped = self._sync("delete_last_message").pop(conv.id)
        return None if popped is None else to_llama_index(popped)

    def get_keys(self) -> list[str]:
        """The keys of the namespace's keyed conversations, oldest conversation first."""
        store = self._sync("get_keys")
        keys: list[str] = []
        after: str | None = None
        while True:
            page = store.list_conversations(limit=_PAGE, after=after)
            keys.extend(c.key for c in page if c.key is not None)
            if len(page) < _PAGE:
                return keys
            after = page[-1].id

    def window(self, key: str, **kwargs: Any) -> list[ChatMessage]:
        """The key's messages to send now: ``store.window(conversation_id, **kwargs)``, as ChatMessages,
        less the replies a cut leaves opening it (as ``ChatMemoryBuffer.get``; the newest turn stays).

        ``[]`` for an unknown or empty key; every message when there are only system messages
        (:class:`~convkit.ContextWindowError` when they do not fit).
        """
        store = self._sync("window")
        conv = self._find(key, "window")
        if conv is None or conv.message_count == 0:
            return []
        try:
            result: FitResult = store.window(conv.id, **kwargs)
        except InvalidConversationError:  # system messages only: nothing to trim around
            messages = store.messages(conv.id)
            if any(m.role != "system" for m in messages):  # pragma: no cover - raised for another reason
                raise
            return _chat(system_only(store, messages, **kwargs))
        return _chat(_opening_on_a_user(result))

    # -- async ----------------------------------------------------------------------------------
    async def _afind(self, key: str) -> Conversation | None:
        conv: Conversation | None = await call(self._store, "find_conversation", key)
        return conv

    async def aconversation_id(self, key: str) -> str:
        """The id of the conversation the key names (created now if none has it)."""
        conv: Conversation = await call(self._store, "conversation_for", key)
        return conv.id

    async def aset_messages(self, key: str, messages: list[ChatMessage]) -> None:
        converted = _converted(messages, alone=True)
        await call(self._store, "replace_messages", await self.aconversation_id(key), converted)

    async def aget_messages(self, key: str) -> list[ChatMessage]:
        conv = await self._afind(key)
        return [] if conv is None else _chat(await call(self._store, "messages", conv.id))

    async def async_add_message(self, key: str, message: ChatMessage, idx: int | None = None) -> None:
        await self.aadd_messages(key, [message], idx=idx)

    async def aadd_messages(self, key: str, messages: list[ChatMessage], idx: int | None = None) -> None:
        """Append messages in one transaction (all or none); ``idx``: insert them there."""
        conv = await self._afind(key)
        converted = _converted(messages, alone=conv is None or conv.message_count == 0)
        if not converted:
            return
        cid = conv.id if conv is not None else await self.aconversation_id(key)
        if idx is None:
            await call(self._store, "extend", cid, converted)
            return
        old: list[Message] = await call(self._store, "messages", cid)
        at = _insert_at(idx, len(old))
        await call(self._store, "replace_messages", cid, [*old[:at], *converted, *old[at:]])

    async def adelete_messages(self, key: str) -> list[ChatMessage] | None:
        conv = await self._afind(key)
        if conv is None:
            return None
        return _chat(await call(self._store, "truncate", conv.id, 0))

    async def adelete_message(self, key: str, idx: int) -> ChatMessage | None:
        conv = await self._afind(key)
        if conv is None:
            return None
        old: list[Message] = await call(self._store, "messages", conv.id)
        at = _index(idx, len(old))
        if at is None:
            return None
        if at == len(old) - 1:
            popped: Message | None = await call(self._store, "pop", conv.id)
            return None if popped is None else to_llama_index(popped)
        await call(self._store, "replace_messages", conv.id, [*old[:at], *old[at + 1 :]])
        return to_llama_index(old[at])

    async def adelete_last_message(self, key: str) -> ChatMessage | None:
        conv = await self._afind(key)
        if conv is None:
            return None
        popped: Message | None = await call(self._store, "pop", conv.id)
        return None if popped is None else to_llama_index(popped)

    async def aget_keys(self) -> list[str]:
        keys: list[str] = []
        after: str | None = None
        while True:
            page: list[Conversation] = await call(self._store, "list_conversations", limit=_PAGE, after=after)
            keys.extend(c.key for c in page if c.key is not None)
            if len(page) < _PAGE:
                return keys
            after = page[-1].id

    async def awindow(self, key: str, **kwargs: Any) -> list[ChatMessage]:
        """The key's messages to send now (async :meth:`window`)."""
        conv = await self._afind(key)
        if conv is None or conv.message_count == 0:
            return []
        try:
            result: FitResult = await call(self._store, "window", conv.id, **kwargs)
        except InvalidConversationError:  # system messages only: nothing to trim around
            messages: list[Message] = await call(self._store, "messages", conv.id)
            if any(m.role != "system" for m in messages):  # pragma: no cover - raised for another reason
                raise
            return _chat(system_only(self._store, messages, **kwargs))
        return _chat(_opening_on_a_user(result))


def _insert_at(idx: object, length: int) -> int:
    """Where ``list.insert(idx, ...)`` puts an item in a list of ``length``."""
    if isinstance(idx, bool) or not isinstance(idx, int):
        raise ValidationError(f"idx is an integer position, got {idx!r}")
    return max(0, min(length, idx if idx >= 0 else length + idx))


__all__ = ["ConvkitChatStore"]
