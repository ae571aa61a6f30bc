"""Calling a convkit :class:`~convkit.Store` or :class:`~convkit.AsyncStore` from an adapter's code.

Private to :mod:`convkit.integrations`; standard library and convkit only (no
framework is imported here), so every adapter can use it.

* :func:`call`: run a store method from async code: awaited on an
  ``AsyncStore``, in a worker thread (``asyncio.to_thread``) on a ``Store``,
  so an adapter's async methods take either and never block the event loop.
* :func:`system_only`: what an adapter sends when ``store.window`` refuses a
  conversation of system messages only (there is nothing to answer, so
  :class:`~convkit.InvalidConversationError`): all of them, counted as
  ``store.window`` counts them, or :class:`~convkit.ContextWindowError` when
  they do not fit. Used as::

      try:
          result = await call(store, "window", cid, **kwargs)
      except InvalidConversationError:
          messages = await call(store, "messages", cid)
          if any(m.role != "system" for m in messages):
              raise  # refused for another reason
          return system_only(store, messages, **kwargs)

* :func:`find_named` / :func:`afind_named`: the conversation an adapter's
  positional name stands for. The name is the application's key; code from
  before keys passed a convkit conversation id there, so a name that no
  conversation has as its key but that is a conversation's id still names
  that conversation, with a ``DeprecationWarning`` saying what to write
  instead. One rule for every adapter whose positional argument changed
  meaning (``ConvkitSession``, ``ConvkitChatMessageHistory``).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._counting import apply_image_policy
from .._engine.settings import WindowSettings
from .._errors import ContextWindowError, ConversationNotFoundError
from .._messages import Message

if TYPE_CHECKING:
    from .._results import Conversation
    from ..store import AsyncStore, Store

__all__ = ["afind_named", "call", "find_named", "system_only"]


async def call(store: Store | AsyncStore, method: str, *args: Any, **kwargs: Any) -> Any:
    """``store.<method>(*args, **kwargs)`` from async code: awaited on an AsyncStore, in a worker
    thread on a Store."""
    from ..store import Store

    fn = getattr(store, method)
    if isinstance(store, Store):
        return await asyncio.to_thread(fn, *args, **kwargs)
    return await fn(*args, **kwargs)


# the window arguments that say what is counted and against what budget (the others, such as
# strategy or summarizer, only choose what to drop, and there is nothing to drop here)
_COUNTED = ("counter", "reserve", "tools", "images", "margin")


def system_only(store: Store | AsyncStore, messages: Sequence[Message], **window: Any) -> list[Message]:
    """The window of a conversation holding only the system ``messages``: all of them, if they fit.

    ``window``: the arguments given to ``store.window`` (``model=`` or ``settings=``, ``counter``,
    ``reserve``, ``tools``, ``images``, ``margin``; the others are ignored). The messages are counted
    as ``store.window`` counts (the store's first counter when none is given, the image policy
    applied: the returned messages are the ones to send); :class:`~convkit.ContextWindowError` when
    they need more than the budget (context window less reserve).
    """
    counters = store.counters
    settings = WindowSettings.given(
        window.get("settings"),
        window.get("model"),
        default_counter=counters[0] if counters else None,
        **{k: window[k] for k in _COUNTED if k in window},
    )
    spec = settings.spec
    sent = apply_image_policy(messages, spec, settings.images)
    need = settings.counter.count_messages(sent, model=spec, tools=settings.tools)
    if need > settings.budget:
        raise ContextWindowError(
            required=need,
            available=settings.budget,
            model=spec.name,
            context_window=spec.context_window,
            reserve=settings.reserve,
            detail="the conversation has only system messages, and all of them are sent",
        )
    return sent


def find_named(store: Store, name: str, *, adapter: str, stacklevel: int = 2) -> Conversation | None:
    """The conversation whose key is ``name``; failing that, the one whose *id* is ``name``
    (old code), with a ``DeprecationWarning`` naming ``adapter`` (the class whose positional
    argument ``name`` was); None when neither exists. Reads only: nothing is created.
    ``stacklevel``: as for :func:`warnings.warn`, as if this function warned (2: its caller)."""
    conv = store.find_conversation(name)
    if conv is None:
        try:
            conv = store.get_conversation(name)
        except ConversationNotFoundError:
            return None
        _warn_legacy(adapter, name, stacklevel)
    return conv


async def afind_named(
    store: Store | AsyncStore, name: str, *, adapter: str, stacklevel: int = 2
) -> Conversation | None:
    """:func:`find_named` from async code (on a ``Store``, its calls run in a worker thread)."""
    conv: Conversation | None = await call(store, "find_conversation", name)
    if conv is None:
        try:
            conv = await call(store, "get_conversation", name)
        except ConversationNotFoundError:
            return None
        _warn_legacy(adapter, name, stacklevel)
    return conv


def _warn_legacy(adapter: str, name: str, stacklevel: int) -> None:
    warnings.warn(
        f"{adapter}(store, {name!r}): {name!r} is the id of a conversation, and no conversation has "
        "it as its key; the second argument is now the session id (the application's key). Wrapping "
        f"that conversation as before; use {adapter}.for_conversation(store, conversation_id) instead",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )
