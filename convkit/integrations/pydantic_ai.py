"""Pydantic AI adapter: lossless message conversion, a Grok-window history processor, keyed storage.

Needs the ``pydantic-ai`` extra (``pip install -e '.[pydantic-ai]'`` in a checkout,
``pydantic-ai-slim>=2.60``).

* :func:`from_pydantic_ai` / :func:`to_pydantic_ai` convert a ``ModelMessage``
  list each way. A ``ModelResponse`` is one assistant message: its
  ``ToolCallPart`` s the tool calls with their exact argument text, and one
  text, its parts joined by a blank line as ``OpenAIChatModel`` sends them --
  a ``TextPart`` as it is, a ``ThinkingPart`` in ``<think>`` tags (Pydantic AI
  sends reasoning back with the next request, ``OpenAIChatModel`` in those
  tags or a ``reasoning_content`` field, so the window counts it), other
  parts, such as built-in tool calls or files, as their JSON text. A
  ``ModelRequest`` is one message per part, in order: ``SystemPromptPart`` ->
  system, ``UserPromptPart`` -> user (text, ``ImageUrl`` and JPEG/PNG
  ``BinaryContent`` as image parts; other media counted as their JSON),
  ``ToolReturnPart`` (and a legacy ``RetryPromptPart`` naming a tool) -> the
  tool message answering its call, ``RetryFeedbackPart`` (as the fenced text
  Pydantic AI sends) and other parts -> user. So a tool return follows the
  assistant message with its call, as convkit needs. Every message keeps
  Pydantic AI's own JSON form (``ModelMessagesTypeAdapter``) of its message
  and part in ``metadata[INFO_KEY]`` (timestamps, ids, usage, provider
  details, run ids; without image bytes, which live in the image parts), and
  ``to_pydantic_ai`` regroups the parts of each request:
  ``to_pydantic_ai(from_pydantic_ai(x)) == x`` for any list that Pydantic
  AI's own serialization round trip leaves equal (it loads a
  ``BinaryContent`` image as a ``BinaryImage`` and a legacy
  ``RetryPromptPart`` as a ``ToolReturnPart`` or ``RetryFeedbackPart``; so
  does this). Messages written by other means are mapped by role,
  consecutive system, user and tool messages forming one request.
* :func:`fit_model_messages` and :class:`GrokWindow`: the newest messages that
  fit a Grok model's window, by :func:`convkit.fit`'s rules (system prompt
  kept, a tool call and its return kept or dropped together, images counted,
  a :class:`~convkit.ContextWindowError` when even the system prompt and the
  newest message cannot fit; a list ending in a ``ModelResponse``, as a
  resumed run sends, is fitted too, and Pydantic AI's own checks say what it
  refuses). ``GrokWindow(model, reserve=...)`` is a history
  processor for ``pydantic_ai.capabilities.ProcessHistory`` (this Pydantic AI
  takes processors as that capability; ``Agent(history_processors=...)`` is
  gone); ``GrokWindow(...).capability()`` trims each request only, leaving the
  run's history (and ``result.new_messages()``) whole.
* :class:`ConvkitMessageHistory` (:class:`~convkit.Store`) and
  :class:`AsyncConvkitMessageHistory` (:class:`~convkit.AsyncStore`): a
  conversation named by the application's own key, with ``load()`` for
  ``message_history=`` and ``save(result.new_messages())`` (one
  transaction). Making one does no I/O, reads never create (a key never
  saved to loads ``[]``), the first save creates the conversation
  (``store.conversation_for(key)``).

This module is the public face; the code lives in private modules, one job
each: ``_pydantic_ai_convert`` (conversion), ``_pydantic_ai_window`` (fitting)
and ``_pydantic_ai_store`` (storage).
"""

from __future__ import annotations

from ._extras import require

require("pydantic_ai", "Pydantic AI", "pydantic-ai", "pydantic_ai")

from ._pydantic_ai_convert import INFO_KEY, from_pydantic_ai, to_pydantic_ai  # noqa: E402
from ._pydantic_ai_store import AsyncConvkitMessageHistory, ConvkitMessageHistory  # noqa: E402
from ._pydantic_ai_window import GrokWindow, fit_model_messages  # noqa: E402

__all__ = [
    "INFO_KEY",
    "AsyncConvkitMessageHistory",
    "ConvkitMessageHistory",
    "GrokWindow",
    "fit_model_messages",
    "from_pydantic_ai",
    "to_pydantic_ai",
]
