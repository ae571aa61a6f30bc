"""LlamaIndex adapter: a chat store and a memory on a convkit store, lossless message conversion.

Needs the ``llama-index`` extra (``pip install -e '.[llama-index]'``,
``llama-index-core>=0.14.16``).

* :func:`from_llama_index` / :func:`to_llama_index` convert one message each
  way. Roles: system, developer (-> system), user, assistant (chatbot, model
  -> assistant), tool and function (-> tool; the id of the call it answers in
  ``additional_kwargs["tool_call_id"]``). ``TextBlock`` and ``ImageBlock``
  (bytes, http(s) or data URL) become text and image parts; tool calls come
  from ``additional_kwargs["tool_calls"]`` (the OpenAI form, exact argument
  text) and from ``ToolCallBlock`` blocks (a ``tool_kwargs`` string that is
  not JSON, as a streamed call can leave, is kept as a call whose arguments
  are that string as JSON, so its result stays paired with it; a block
  without ``tool_call_id`` takes its tool's name as id, which is what
  ``FunctionAgent`` puts in the result's ``tool_call_id`` for LLMs whose tool
  selections are named by tool, Google's among them). A convkit
  message renders as text and image blocks with its tool calls in
  ``additional_kwargs["tool_calls"]`` and ``tool_call_id`` / ``name`` there
  too; ``pinned`` and ``metadata`` travel in ``additional_kwargs["convkit"]``
  (so ``ChatMessage(..., additional_kwargs={"convkit": {"pinned": True}})``
  pins a message). Round trips are exact both ways:
  ``to_llama_index(from_llama_index(x)) == x`` for a ``ChatMessage`` whose
  ``additional_kwargs`` are JSON values, and
  ``from_llama_index(to_llama_index(m)) == m``. Blocks LlamaIndex sends to
  the model that convkit has no part for (thinking, document, audio, video,
  citable and citation blocks) are text parts holding the block's JSON, so
  the window counts them (a document is counted as its base64 text: more
  than a provider charges for it, never less); on the way back each block is
  rebuilt from that JSON. Audio, video and document blocks (and images in
  citable and citation blocks) given only by a file path or an http(s) URL
  are refused with :class:`~convkit.InvalidMessageError`: LlamaIndex reads or
  downloads them into the prompt, and convkit could not count them. A
  ``CachePoint`` has no part and is not counted: it only marks where the LLM
  integration asks the provider to cache, and holds no content. What else
  convkit's message has no field for (the role's spelling, other
  ``additional_kwargs``, ``ToolCallBlock`` forms, the blocks' own form) is
  kept as the message's JSON form in ``metadata["convkit.llama_index"]``,
  without the payloads the parts hold (text, image bytes, URLs, the blocks
  above), and is used on the way back only while it still describes the
  message (an image dropped for a note by ``images="drop"`` leaves the other
  blocks as they are).
* :class:`ConvkitChatStore` is a LlamaIndex ``BaseChatStore`` whose keys are
  application keys of convkit conversations (``store.conversation_for(key)``):
  every method, sync and async, over a :class:`~convkit.Store` (async ones in
  a worker thread) or an :class:`~convkit.AsyncStore` (async ones only).
* :class:`ConvkitMemory` is a ``BaseChatStoreMemory`` (the base of
  ``ChatMemoryBuffer``; ``FunctionAgent`` and ``ReActAgent`` take it as
  ``memory=``) over a :class:`ConvkitChatStore`: it stores the whole
  conversation, and ``get()`` returns the window that fits a Grok model with
  ``reserve`` tokens free (leading system and pinned messages, tool calls with
  their results, the newest messages that fit; a conversation of system
  messages only is returned whole, or :class:`~convkit.ContextWindowError`
  when it does not fit). As ``ChatMemoryBuffer.get`` does, a cut never leaves
  an assistant or tool message first after the leading system and pinned
  messages (and the system messages the cut brings after them): the oldest
  kept units go while one does, since model APIs expect the history to open
  with the user. Two exceptions: the newest turn is kept even when it is a
  reply (it is what the model answers; ``ChatMemoryBuffer`` keeps its newest
  message too), and a conversation that itself opens with a reply (an
  assistant greeting, say) is sent so while nothing before it is cut. A
  summarized window (``strategy="summarize"`` through
  ``ConvkitChatStore.window``) is returned as it is: its summary covers only
  what was cut. ``ConvkitChatStore.window`` is the same window.

How the chat store differs from LlamaIndex's ``SimpleChatStore`` and SQL chat stores:

* a key's conversation is created on the first write; reading an unknown key
  returns ``[]`` (``get_messages``) or ``None`` (the deletes) and creates
  nothing;
* writes are validated before anything changes: ``set_messages`` replaces the
  messages in one transaction (the SQL store deletes, then inserts one by
  one), ``add_message`` / ``add_messages`` append in one transaction, and a
  tool message whose call is not in the conversation (nor earlier in the same
  call) raises :class:`~convkit.InvalidConversationError` and stores nothing
  -- xAI and OpenAI refuse a request holding one; a message with nothing to
  send (no text, image or tool call) raises :class:`~convkit.InvalidMessageError`;
* ``delete_messages`` empties the conversation and returns what it held; the
  conversation stays, with its key, metadata and usage, so ``get_keys`` still
  lists the key (``SimpleChatStore`` forgets it);
* ``delete_message(key, idx)`` takes a list position (negative from the end,
  as ``list.pop``; the SQL store takes a row id) and returns ``None`` outside
  the list; the last message is popped in one transaction, any other is
  removed by rewriting the conversation in one transaction, refused with
  :class:`~convkit.InvalidConversationError` (nothing changed) when it is an
  assistant message whose tool calls later messages answer. The rewrite is
  not safe against another writer to the same key at the same time (neither is
  ``SimpleChatStore``); ``add_message(key, message, idx)`` inserts the same
  way;
* ``delete_last_message`` on an empty key returns ``None`` (``SimpleChatStore``
  raises ``IndexError``);
* ``get_keys`` lists the namespace's keyed conversations (oldest first);
  conversations made without a key are not listed.

The code lives in private modules, one job each: ``_llama_index_convert``
(messages both ways), ``_llama_index_store`` (the chat store) and
``_llama_index_memory`` (the memory).
"""

from ._extras import require

require("llama_index", "LlamaIndex", "llama-index", "llama_index")

from ._llama_index_convert import EXTRAS_KEY, INFO_KEY, from_llama_index, to_llama_index  # noqa: E402
from ._llama_index_memory import ConvkitMemory  # noqa: E402
from ._llama_index_store import ConvkitChatStore  # noqa: E402

__all__ = [
    "EXTRAS_KEY",
    "INFO_KEY",
    "ConvkitChatStore",
    "ConvkitMemory",
    "from_llama_index",
    "to_llama_index",
]
