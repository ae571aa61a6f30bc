"""LangChain ``BaseChatMessageHistory`` on a convkit conversation (:class:`ConvkitChatMessageHistory`).

Private to :mod:`convkit.integrations.langchain`, which re-exports the class.
Backed by a :class:`~convkit.Store` (sync and async methods) or an
:class:`~convkit.AsyncStore` (async methods only); messages are converted with
:func:`~convkit.integrations.langchain.to_langchain` /
:func:`~convkit.integrations.langchain.from_langchain`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage

from .._errors import ConversationNotFoundError, ValidationError
from .._fitting import FitResult
from .._messages import Message
from .._models import ModelSpec
from ._langchain_convert import from_langchain, to_langchain
from ._store_calls import afind_named, call, find_named

if TYPE_CHECKING:
    from .._results import Conversation
    from ..store import AsyncStore, Store

T = TypeVar("T")

_ADAPTER = "ConvkitChatMessageHistory"  # named in the warning for an old-style conversation id


class ConvkitChatMessageHistory(BaseChatMessageHistory):
    """A LangChain chat message history stored in a convkit conversation.

    ``store`` is a :class:`~convkit.Store` (every method works; the async
    ones run it in a worker thread) or an :class:`~convkit.AsyncStore` (only
    the async methods: ``aget_messages``, ``aadd_messages``, ``aclear``,
    ``areplace_messages``, ``awindow``, :meth:`aconversation_id`).

    **The second argument is the application's key**, as LangChain's own
    ``SQLChatMessageHistory`` takes its session id and as the other adapters
    take theirs: ``ConvkitChatMessageHistory(store, "user-42")`` (or
    ``key="user-42"``) is the history of ``store.conversation_for("user-42")``,
    created on the first write; reads before that return no messages and
    create nothing. :meth:`for_conversation` (or ``conversation_id=``) wraps
    an existing conversation by its convkit id, and :meth:`create` /
    :meth:`acreate` make a new one. (Before keys, the second argument was a
    conversation id: a key that no conversation has but that is the id of one
    of the store's conversations still names that conversation, with a
    ``DeprecationWarning``.) Making a history does no I/O, so
    ``RunnableWithMessageHistory``'s ``get_session_history`` never blocks an
    event loop. A keyed history remembers its conversation's id; when that
    conversation has been deleted, it looks the key up once more (a read
    finds nothing, a write creates it anew).
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
        key: str | None = None,
        *,
        conversation_id: str | None = None,
        title: str | None = None,
    ) -> None:
        from ..store import AsyncStore, Store
        from ..store._conversations import check_key

        if not isinstance(store, Store | AsyncStore):
            raise ValidationError(f"store must be a convkit Store or AsyncStore, got {type(store).__name__}")
        if (conversation_id is None) == (key is None):
            raise ValidationError(
                "name the history's conversation by exactly one of key (your own id, such as a session "
                "id: ConvkitChatMessageHistory(store, key), created on first use) and conversation_id= "
                f"(convkit's id of an existing conversation); got key={key!r}, "
                f"conversation_id={conversation_id!r}"
            )
        if conversation_id is not None and (not isinstance(conversation_id, str) or not conversation_id):
            raise ValidationError(f"conversation_id is a non-empty string, got {conversation_id!r}")
        super().__init__()
        self.store = store
        self.key = None if key is None else check_key(key)
        self.title = title
        self._conversation_id = conversation_id

    @classmethod
    def for_conversation(
        cls, store: Store | AsyncStore, conversation_id: str, *, title: str | None = None
    ) -> ConvkitChatMessageHistory:
        """A history on the existing conversation ``conversation_id`` (a convkit id, not a key)."""
        return cls(store, conversation_id=conversation_id, title=title)

    @classmethod
    def create(cls, store: Store, *, title: str | None = None) -> ConvkitChatMessageHistory:
        """A history on a new, unkeyed conversation of ``store`` (a :class:`~convkit.Store`;
        for an :class:`~convkit.AsyncStore`, ``await`` :meth:`acreate`)."""
        from ..store import Store

        if not isinstance(store, Store):
            raise ValidationError(
                "ConvkitChatMessageHistory.create is synchronous and needs a convkit Store, got "
                f"{type(store).__name__}; use await ConvkitChatMessageHistory.acreate(store)"
            )
        return cls(store, conversation_id=store.create_conversation(title=title).id)

    @classmethod
    async def acreate(
        cls, store: Store | AsyncStore, *, title: str | None = None
    ) -> ConvkitChatMessageHistory:
        """A history on a new, unkeyed conversation of ``store`` (async)."""
        conv: Conversation = await call(store, "create_conversation", title=title)
        return cls(store, conversation_id=conv.id)

    def __repr__(self) -> str:
        named = repr(self.key) if self.key is not None else f"conversation_id={self._conversation_id!r}"
        return f"ConvkitChatMessageHistory({self.store!r}, {named})"

    @property
    def conversation_id(self) -> str:
        """The convkit id of the conversation. A keyed history's conversation is looked up and,
        when none has the key yet, created (an id names a conversation); to look without creating,
        ``store.find_conversation(history.key)``. See :meth:`aconversation_id` for async code."""
        cid = self._id(create=True, what="conversation_id", stacklevel=4)
        assert cid is not None
        return cid

    async def aconversation_id(self) -> str:
        """:attr:`conversation_id`, async (works on an AsyncStore too)."""
        cid = await self._aid(create=True, stacklevel=4)
        assert cid is not None
        return cid

    def _id(self, *, create: bool, what: str, stacklevel: int = 5) -> str | None:
        """The conversation's id, remembered (``create=False``: None for a keyed one not created yet);
        ``what`` names the caller in the error a keyed history on an AsyncStore raises;
        ``stacklevel``: the user's frame, seen from :func:`find_named`, for its warning."""
        if self._conversation_id is None:
            store, key = self._sync(what), cast(str, self.key)
            conv = find_named(store, key, adapter=_ADAPTER, stacklevel=stacklevel)
            if conv is None and create:
                conv = store.conversation_for(key, title=self.title)
            if conv is None:
                return None
            self._conversation_id = conv.id
        return self._conversation_id

    async def _aid(self, *, create: bool, stacklevel: int = 5) -> str | None:
        """The conversation's id, async (``create=False``: None for a keyed one not created yet)."""
        if self._conversation_id is None:
            key = cast(str, self.key)
            conv = await afind_named(self.store, key, adapter=_ADAPTER, stacklevel=stacklevel)
            if conv is None and create:
                conv = await call(self.store, "conversation_for", key, title=self.title)
            if conv is None:
                return None
            self._conversation_id = conv.id
        return self._conversation_id

    def _on(self, work: Callable[[str], T], *, create: bool, what: str) -> T | None:
        """``work(conversation id)``; None when reading a key no conversation has.

        A keyed history remembers its conversation's id; when that conversation is gone
        (deleted, its key perhaps taken again since), the key is looked up once more and
        ``work`` runs on what it names now, instead of every later call raising
        :class:`~convkit.ConversationNotFoundError`. A history named by an id raises it.
        """
        cid = self._id(create=create, what=what)
        if cid is None:
            return None
        try:
            return work(cid)
        except ConversationNotFoundError:
            if self.key is None:
                raise
            self._conversation_id = None
            cid = self._id(create=create, what=what)
            return None if cid is None else work(cid)

    async def _aon(self, work: Callable[[str], Awaitable[T]], *, create: bool) -> T | None:
        """:meth:`_on` for async ``work``."""
        cid = await self._aid(create=create)
        if cid is None:
            return None
        try:
            return await work(cid)
        except ConversationNotFoundError:
            if self.key is None:
                raise
            self._conversation_id = None
            cid = await self._aid(create=create)
            return None if cid is None else await work(cid)

    def _sync(self, what: str) -> Store:
        from ..store import Store

        if not isinstance(self.store, Store):
            raise ValidationError(
                f"{what} is synchronous but this history is backed by an AsyncStore; use the async "
                "methods (aget_messages, aadd_messages, aclear, areplace_messages, awindow) or back it "
                "with a Store"
            )
        return self.store

    # -- sync -----------------------------------------------------------------------------------
    @property
    def messages(self) -> list[BaseMessage]:
        """Every message of the conversation, as LangChain messages."""
        store = self._sync("messages")
        return [to_langchain(m) for m in self._on(store.messages, create=False, what="messages") or []]

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
        self._on(lambda cid: store.replace_messages(cid, converted), create=True, what="messages")

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append messages in one transaction (all or none)."""
        converted = [from_langchain(m) for m in messages]
        store = self._sync("add_messages")
        self._on(lambda cid: store.extend(cid, converted), create=True, what="add_messages")

    def clear(self) -> None:
        """Delete every message of the conversation (the conversation itself stays)."""
        store = self._sync("clear")
        self._on(lambda cid: store.truncate(cid, 0), create=False, what="clear")

    def window(self, *, model: str | ModelSpec, **kwargs: Any) -> list[BaseMessage]:
        """The messages to send to ``model`` now (``store.window(...)``, as LangChain messages)."""
        store = self._sync("window")
        result = self._on(lambda cid: store.window(cid, model=model, **kwargs), create=False, what="window")
        return [] if result is None else [to_langchain(m) for m in result.messages]

    # -- async ----------------------------------------------------------------------------------
    async def aget_messages(self) -> list[BaseMessage]:
        stored: list[Message] | None = await self._aon(
            lambda cid: call(self.store, "messages", cid), create=False
        )
        return [to_langchain(m) for m in stored or []]

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        converted = [from_langchain(m) for m in messages]
        await self._aon(lambda cid: call(self.store, "extend", cid, converted), create=True)

    async def aclear(self) -> None:
        await self._aon(lambda cid: call(self.store, "truncate", cid, 0), create=False)

    async def areplace_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Replace the conversation's messages in one transaction (async ``history.messages = ...``).

        All or nothing, as the ``messages`` setter: on an error the old messages stay.
        """
        converted = [from_langchain(m) for m in messages]
        await self._aon(lambda cid: call(self.store, "replace_messages", cid, converted), create=True)

    async def awindow(self, *, model: str | ModelSpec, **kwargs: Any) -> list[BaseMessage]:
        """The messages to send to ``model`` now (async)."""
        result: FitResult | None = await self._aon(
            lambda cid: call(self.store, "window", cid, model=model, **kwargs), create=False
        )
        return [] if result is None else [to_langchain(m) for m in result.messages]
