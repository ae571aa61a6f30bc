"""OpenAI Agents SDK adapter: :class:`ConvkitSession`, a ``Session`` kept in a convkit store.

Needs the ``agents`` extra (``pip install -e '.[agents]'``,
``openai-agents>=0.18.1``).

**Session ids are keys.** ``ConvkitSession(store, "user-42")`` is the
history of the store's conversation whose application key is ``"user-42"``
(:meth:`convkit.Store.conversation_for`), created empty on the first write,
as the SDK's ``SQLiteSession("user-42", db)`` does; making the session does
no I/O, and reading a key never written returns nothing and creates nothing.
``ConvkitSession.for_conversation(store, conversation_id)`` (or
``conversation_id=``) wraps an existing conversation by its convkit id, and
``ConvkitSession.create(store)`` makes a new one keyed by a fresh session id
(``uuid4().hex``), so ``ConvkitSession(store, session.session_id)`` opens it
again. (Before keys, the second
argument was a conversation id; a session id that no conversation has as its
key but that is the id of one of the store's conversations still names that
conversation, with a ``DeprecationWarning``.) A keyed session remembers its
conversation's id; when that conversation has been deleted, it looks the key
up once more (a read finds nothing, a write creates it anew).

Each Responses-API item the SDK adds becomes one convkit message, so
``limit`` counts items and ``pop_item`` removes exactly the newest one:

* a message item (``{"role", "content"}``, with or without ``"type":
  "message"``; input or output text, refusals, images) -> a message of that
  role (``developer`` -> system);
* ``function_call`` (and the other ``*_call`` items with a ``call_id``) -> an
  assistant message with one tool call (``arguments`` verbatim);
* ``function_call_output`` (and the other ``*_call_output`` items) -> a tool
  message answering that ``call_id``;
* anything else (reasoning, hosted tool calls, item references...) -> an
  assistant message whose text is the item's JSON, so it is counted.

The item itself is kept in the message's ``metadata["convkit.agents.item"]``
(image data excepted: it lives once in the image parts), so ``get_items``
returns exactly what was added. An item convkit cannot hold faithfully (an
empty message, an image that is not a JPEG or PNG) is stored as its JSON
text with the same role; a ``function_call`` whose ``arguments`` are not
JSON (``""`` included) stays a tool call, counted as the JSON string of its
arguments, so its output stays paired with it. A call output whose call is
neither in the session nor earlier in the same ``add_items`` is refused with
:class:`~convkit.InvalidConversationError` and nothing is stored, as the
LangChain history refuses an orphaned tool message: xAI and OpenAI refuse a
request holding one.
Messages written to the conversation by other means come back as the items
their OpenAI form describes.

**Window, then limit.** ``get_items(limit)`` (``limit`` defaults to
``session_settings.limit``) works in this order:

1. with ``window_model``, the items of the window :meth:`convkit.Store.window`
   chooses for that model (leading system and pinned messages, tool calls
   with their outputs, the newest items that fit; system messages only are
   all returned when they fit, :class:`~convkit.ContextWindowError` otherwise);
   without it, every item;
2. with a ``limit``, the newest ``limit`` of those items (none when
   ``limit <= 0``), counted in items, so it may cut the window's leading
   system prompt;
3. a call output whose call that cut left out is dropped too: the result has
   *at most* ``limit`` items and never hands the ``Runner`` an orphaned
   ``function_call_output`` (``limit=1`` on a session that ends with a call
   output returns ``[]``).

The window bounds the session's items only: the ``Runner`` adds the agent's
instructions and tools, the run's new input and every item the run produces,
so ``reserve`` must leave room for them and the reply.

The session is backed by an :class:`~convkit.AsyncStore`; a
:class:`~convkit.Store` works too (its calls run in a worker thread).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .._counting import TokenCounter
from .._engine.settings import WindowSettings
from .._errors import ConversationNotFoundError, InvalidConversationError, ValidationError
from .._fitting import FitResult
from .._messages import Message
from .._models import ModelSpec
from ._agents_items import ITEM_KEY, item_to_message, message_to_items, messages_to_items, newest_items
from ._store_calls import afind_named, call, system_only

if TYPE_CHECKING:
    from agents.items import TResponseInputItem
    from agents.memory.session_settings import SessionSettings

    from .._results import Conversation
    from ..store import AsyncStore, Store
else:  # the SDK is imported so that a missing extra fails here, with its name
    from ._extras import require

    require("agents", "the OpenAI Agents SDK", "agents", "agents")
    import agents  # noqa: F401

T = TypeVar("T")

__all__ = ["ITEM_KEY", "ConvkitSession", "item_to_message", "message_to_items"]


class ConvkitSession:
    """An Agents SDK ``Session`` stored in a convkit conversation (see the module docstring).

    ``store``: an :class:`~convkit.AsyncStore` (or a :class:`~convkit.Store`,
    run in a worker thread). ``session_id``: the application's id of the
    session, the key of its conversation (``store.conversation_for(session_id)``,
    created with ``title`` and ``metadata`` on the first write; no I/O here).
    ``conversation_id``: instead, an existing conversation's convkit id (see
    :meth:`for_conversation`); ``session_id`` then only labels the session and
    defaults to that id. ``key`` is the session id when it names the
    conversation, None then. ``window_model``, ``counter`` and ``reserve``: when a
    model is given, ``get_items`` returns the window ``store.window(model=window_model,
    counter=counter, reserve=reserve)`` keeps, then applies ``limit``. They are checked
    here: an unknown model raises :class:`~convkit.UnknownModelError`, a bad ``reserve`` or
    ``counter``, or either without ``window_model``, :class:`~convkit.ValidationError`.
    ``session_settings``: the SDK's ``SessionSettings`` or its dict form
    (``{"limit": 20}``), converted as the SDK's own sessions do; an unknown key
    or a bad value raises :class:`~convkit.ValidationError`.
    """

    def __init__(
        self,
        store: AsyncStore | Store,
        session_id: str | None = None,
        *,
        conversation_id: str | None = None,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        window_model: str | ModelSpec | None = None,
        counter: TokenCounter | None = None,
        reserve: int | None = None,
        session_settings: SessionSettings | Mapping[str, Any] | None = None,
    ) -> None:
        from ..store import AsyncStore, Store
        from ..store._conversations import check_key

        if not isinstance(store, AsyncStore | Store):
            raise ValidationError(f"store must be a convkit AsyncStore or Store, got {type(store).__name__}")
        if conversation_id is None:
            if session_id is None:
                raise ValidationError(
                    "ConvkitSession needs a session_id (the key naming its conversation) "
                    "or conversation_id= (an existing conversation)"
                )
            try:
                self.session_id: str = check_key(session_id)
            except ValidationError as exc:
                raise ValidationError(f"session_id: {exc}") from None
            self.key: str | None = self.session_id
        else:
            if not isinstance(conversation_id, str) or not conversation_id:
                raise ValidationError(f"conversation_id must be a non-empty string, got {conversation_id!r}")
            if title is not None or metadata is not None:
                raise ValidationError(
                    "title= and metadata= are for the conversation a session_id creates; "
                    "conversation_id= names one that exists"
                )
            if session_id is not None and (not isinstance(session_id, str) or not session_id):
                raise ValidationError(f"session_id must be a non-empty string, got {session_id!r}")
            self.session_id = conversation_id if session_id is None else session_id
            self.key = None
        self.store = store
        self.title = title
        self.metadata = None if metadata is None else dict(metadata)
        self._conversation_id: str | None = conversation_id
        self.session_settings: SessionSettings | None = _session_settings(session_settings)
        _check_window(window_model, counter, reserve)
        self.window_model = window_model
        self.counter = counter
        self.reserve = reserve

    @classmethod
    def for_conversation(
        cls, store: AsyncStore | Store, conversation_id: str, **kwargs: Any
    ) -> ConvkitSession:
        """A session on the existing conversation ``conversation_id`` (a convkit id, not a key);
        keyword arguments as for the constructor (``session_id`` defaults to the id)."""
        return cls(store, conversation_id=conversation_id, **kwargs)

    @classmethod
    async def create(
        cls,
        store: AsyncStore | Store,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> ConvkitSession:
        """A session on a new conversation of ``store``, keyed by a new session id (a random
        ``uuid4().hex``), so ``ConvkitSession(store, session.session_id)`` opens it again.
        Keyword arguments as for the constructor, less ``session_id`` and ``conversation_id``."""
        named = sorted({"session_id", "conversation_id"} & kwargs.keys())
        if named:
            raise ValidationError(
                f"ConvkitSession.create makes a new session id; leave out {', '.join(named)} (use "
                "ConvkitSession(store, session_id) or ConvkitSession.for_conversation(store, "
                "conversation_id))"
            )
        session = cls(store, uuid.uuid4().hex, title=title, metadata=metadata, **kwargs)
        key = cast(str, session.key)
        conv = await call(store, "create_conversation", title=title, metadata=session.metadata, key=key)
        session._conversation_id = conv.id
        return session

    def __repr__(self) -> str:
        named = (
            f"{self.session_id!r}" if self.key is not None else f"conversation_id={self._conversation_id!r}"
        )
        return f"ConvkitSession({self.store!r}, {named}, window_model={self.window_model!r})"

    @property
    def conversation_id(self) -> str | None:
        """The convkit id of the session's conversation; None until a call has looked the key up
        (see :meth:`conversation`)."""
        return self._conversation_id

    async def conversation(self) -> Conversation:
        """The session's conversation, as the store has it now (a key's is created if need be)."""
        conv: Conversation | None = await self._on(
            lambda cid: call(self.store, "get_conversation", cid), create=True
        )
        assert conv is not None
        return conv

    async def _resolve(self, *, create: bool) -> str | None:
        """The conversation id: looked up once; a key's conversation created only when ``create``."""
        if self._conversation_id is not None:
            return self._conversation_id
        key = cast(str, self.key)
        conv: Conversation | None = await afind_named(self.store, key, adapter="ConvkitSession", stacklevel=5)
        if conv is None:
            if not create:
                return None
            conv = await call(self.store, "conversation_for", key, title=self.title, metadata=self.metadata)
        self._conversation_id = cid = str(conv.id)
        return cid

    async def _on(self, work: Callable[[str], Awaitable[T]], *, create: bool) -> T | None:
        """``work(conversation id)``; None when reading a key no conversation has.

        A key's conversation id is remembered; when that conversation is gone (deleted, the key
        perhaps taken again since), the key is looked up once more and ``work`` runs on what it
        names now, instead of every later call raising ConversationNotFoundError.
        """
        cid = await self._resolve(create=create)
        if cid is None:
            return None
        try:
            return await work(cid)
        except ConversationNotFoundError:
            if self.key is None:
                raise
            self._conversation_id = None
            cid = await self._resolve(create=create)
            if cid is None:
                return None
            return await work(cid)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The session's items, oldest first: the window's when ``window_model`` is set, then the
        newest ``limit`` (default ``session_settings.limit``) less any call output whose call
        that cut left out (see the module docstring). A key never written: ``[]``."""
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        if limit is not None and limit <= 0:
            return []
        items = await self._on(lambda cid: self._items(cid, limit), create=False)
        if items is None:
            return []
        if limit is not None:
            items = newest_items(items, limit)
        return cast("list[TResponseInputItem]", items)

    async def _items(self, cid: str, limit: int | None) -> list[dict[str, Any]]:
        if self.window_model is not None:
            return await self._window_items(cid)
        if limit is None:
            return messages_to_items(await call(self.store, "messages", cid))
        # one message gives one item or more: the newest ``limit`` messages hold enough
        total = (await call(self.store, "get_conversation", cid)).message_count
        return messages_to_items(await call(self.store, "messages", cid, start=max(1, total - limit + 1)))

    async def _window_items(self, cid: str) -> list[dict[str, Any]]:
        if (await call(self.store, "get_conversation", cid)).message_count == 0:
            return []
        window = {"model": self.window_model, "counter": self.counter, "reserve": self.reserve}
        try:
            result: FitResult = await call(self.store, "window", cid, **window)
        except InvalidConversationError:  # system messages only: nothing to trim around
            messages: list[Message] = await call(self.store, "messages", cid)
            if any(m.role != "system" for m in messages):  # pragma: no cover - refused for another reason
                raise
            return messages_to_items(system_only(self.store, messages, **window))
        return messages_to_items(result.messages)

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append the items in one transaction (all or none); a key's conversation is created
        on the first non-empty call.

        Raises :class:`~convkit.InvalidConversationError` (nothing stored) for a call output
        (``function_call_output`` and the other ``*_call_output`` items) whose call is neither in
        the session nor earlier in ``items``: xAI and OpenAI refuse such a request.
        """
        messages = [item_to_message(cast(Mapping[str, Any], item)) for item in items]
        if not messages:
            return
        # a call output whose call is neither in the session nor earlier in ``items`` is refused
        # by the store (InvalidConversationError, nothing stored), as the LangChain history does
        await self._on(lambda cid: call(self.store, "extend", cid, messages), create=True)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item (None when the session is empty or never written)."""
        m: Message | None = await self._on(lambda cid: call(self.store, "pop", cid), create=False)
        if m is None:
            return None
        return cast("TResponseInputItem", message_to_items(m)[-1])

    async def clear_session(self) -> None:
        """Remove every item (the conversation stays, empty, with its key)."""
        await self._on(lambda cid: call(self.store, "truncate", cid, 0), create=False)


def _check_window(model: str | ModelSpec | None, counter: object, reserve: object) -> None:
    """Refuse bad window settings now, not at the first ``get_items`` (after ``add_items`` stored
    data): an unknown model (:class:`~convkit.UnknownModelError`), a bad reserve or counter, or
    either of them without a model (they would be ignored) (:class:`~convkit.ValidationError`)."""
    if model is None:
        given = [name for name, v in (("counter", counter), ("reserve", reserve)) if v is not None]
        if given:
            raise ValidationError(
                f"{' and '.join(given)} set the window of window_model=...; without a window_model "
                "get_items returns every item, so give window_model= or leave them out"
            )
        return
    if counter is not None and not isinstance(counter, TokenCounter):
        raise ValidationError(
            "counter is a convkit token counter (EstimateCounter, HFTokenCounter...), "
            f"got {type(counter).__name__}"
        )
    WindowSettings.of(model, counter=counter, reserve=cast("int | None", reserve))


def _session_settings(value: object) -> SessionSettings | None:
    """The SDK's ``SessionSettings`` for ``value`` (None, an instance, or its dict form)."""
    if value is None:
        return None
    from agents.memory.session_settings import SessionSettings

    if isinstance(value, SessionSettings):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"session_settings must be an agents SessionSettings or a dict, got {type(value).__name__}"
        )
    known = {f.name for f in dataclasses.fields(SessionSettings) if f.init}
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise ValidationError(
            f"unknown session_settings: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    try:
        return SessionSettings(**value)
    except (TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise ValidationError(f"invalid session_settings {dict(value)!r}: {exc}") from exc
