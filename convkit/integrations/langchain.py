"""LangChain adapter: a chat message history on a convkit store, lossless conversion, ``fit_messages``.

Needs the ``langchain`` extra (``pip install -e '.[langchain]'`` in a checkout,
``langchain-core>=1.2.5``).

* :func:`from_langchain` / :func:`to_langchain` convert one message each way
  (``SystemMessage``, ``HumanMessage``, ``AIMessage`` with tool calls,
  ``ToolMessage``, ``ChatMessage``; text, ``image_url`` blocks and
  LangChain's standard ``{"type": "image", ...}`` blocks, base64 or URL).
  Round trips are exact both ways: ``to_langchain(from_langchain(x)) == x``
  and ``from_langchain(to_langchain(m)) == m``. What convkit's message has no
  field for (LangChain ids, ``response_metadata``, other
  ``additional_kwargs``, the form of each content block, content blocks
  convkit does not send, such as reasoning) is kept in the convkit
  message's ``metadata["convkit.langchain"]`` -- without image data, which
  lives in the image parts (and, in a store, once per image). Tool-call
  arguments keep their exact JSON text: an ``AIMessage`` made by
  :func:`to_langchain` carries it in ``additional_kwargs["tool_calls"]``
  (the OpenAI form, as ``langchain-openai`` produces it), while
  ``tool_calls`` holds the parsed ``args`` LangChain wants; arguments that
  are JSON but not an object become ``invalid_tool_calls`` (LangChain's
  ``args`` must be a dict). convkit's ``pinned`` flag and ``metadata``
  travel in ``additional_kwargs["convkit"]`` (so
  ``AIMessage(..., additional_kwargs={"convkit": {"pinned": True}})`` pins a
  message).
* :class:`ConvkitChatMessageHistory` is a LangChain
  ``BaseChatMessageHistory`` over a :class:`~convkit.Store` (every method,
  sync and async; the async ones run the store in a worker thread) or an
  :class:`~convkit.AsyncStore` (the async methods ``aget_messages``,
  ``aadd_messages``, ``aclear``, ``areplace_messages`` and ``awindow`` only:
  an async engine cannot be driven from synchronous code, so the sync
  methods raise :class:`~convkit.ValidationError` saying so;
  ``aconversation_id()`` is the async twin of ``conversation_id``). Its
  second argument is the application's own key, as for the other adapters
  and LangChain's ``SQLChatMessageHistory``:
  ``ConvkitChatMessageHistory(store, "user-42")`` (or ``key="user-42"``) is
  created on the first write, with no I/O before (for
  ``RunnableWithMessageHistory``'s session ids); ``for_conversation(store,
  conversation_id)`` (or ``conversation_id=``) wraps a conversation by its
  convkit id, ``create``/``acreate`` make one. A conversation id passed where
  the key goes (code from before keys) still opens that conversation, with a
  ``DeprecationWarning``, while no conversation has it as its key. Replacing the
  history (``history.messages = [...]``, ``areplace_messages``) is one
  transaction that validates the new list first: a refused list (say, a
  ``ToolMessage`` whose call ``trim_messages`` cut off) leaves the old
  messages intact.
* :func:`fit_messages` is a drop-in for ``langchain_core.messages.trim_messages``
  (``strategy="last"``) that runs :func:`convkit.fit`: leading system and
  pinned messages stay, a tool call and its results are kept or dropped
  together, images are counted, and when the must-keep messages cannot fit a
  :class:`~convkit.ContextWindowError` says so instead of a broken history.
  ``include_system=False`` is refused (:class:`~convkit.ValidationError`),
  not ignored: the leading system messages are always kept. Without messages
  it returns a ``Runnable`` (``fit_messages(max_tokens=...) | model``).

This module is the public face; the code lives in private modules, one job
each: ``_langchain_content`` (content blocks <-> parts), ``_langchain_convert``
(messages both ways), ``_langchain_history`` (the chat message history) and
``_langchain_fit`` (``fit_messages``).
"""

from ._extras import require

require("langchain", "LangChain", "langchain", "langchain_core")

from ._langchain_convert import EXTRAS_KEY, INFO_KEY, from_langchain, to_langchain  # noqa: E402

# the types of fit_messages' token_counter and start_on / end_on: importable from here as before,
# re-exported explicitly (``as``) since they are not in __all__
from ._langchain_fit import LangChainTokenCounter as LangChainTokenCounter  # noqa: E402, PLC0414
from ._langchain_fit import MessageTypes as MessageTypes  # noqa: E402, PLC0414
from ._langchain_fit import fit_messages  # noqa: E402
from ._langchain_history import ConvkitChatMessageHistory  # noqa: E402

__all__ = [
    "EXTRAS_KEY",
    "INFO_KEY",
    "ConvkitChatMessageHistory",
    "fit_messages",
    "from_langchain",
    "to_langchain",
]
