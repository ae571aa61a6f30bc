"""Adapters that plug convkit into other frameworks (each behind an optional extra).

* :mod:`convkit.integrations.langchain` -- ``pip install -e '.[langchain]'``:
  :class:`~convkit.integrations.langchain.ConvkitChatMessageHistory` (a
  LangChain ``BaseChatMessageHistory`` backed by a convkit store),
  ``to_langchain`` / ``from_langchain`` (lossless message conversion) and
  ``fit_messages`` (a drop-in for LangChain's ``trim_messages`` that runs
  :func:`convkit.fit`);
* :mod:`convkit.integrations.agents` -- ``pip install -e '.[agents]'``:
  :class:`~convkit.integrations.agents.ConvkitSession`, an OpenAI Agents SDK
  ``Session`` backed by a convkit store, optionally returning only the window
  that fits a chosen Grok model;
* :mod:`convkit.integrations.langgraph` -- ``pip install -e '.[langgraph]'``:
  ``WindowHook`` (a pre-model hook handing the model the window of the
  graph's messages) and ``ConvkitMessages`` (a thread's messages kept in the
  conversation its thread id names);
* :mod:`convkit.integrations.pydantic_ai` -- ``pip install -e '.[pydantic-ai]'``:
  ``ModelMessage`` conversion both ways, ``GrokWindow`` (a history processor)
  and keyed message histories for ``message_history=``;
* :mod:`convkit.integrations.llama_index` -- ``pip install -e '.[llama-index]'``:
  a LlamaIndex chat store on a convkit store and a memory that returns the
  window that fits a Grok model.

Each keys its histories by the application's own id
(:meth:`convkit.Store.conversation_for`). Importing this package imports no
framework; each submodule imports its
own on import and fails with an ``ImportError`` naming the extra to install.
"""

from __future__ import annotations

__all__: list[str] = []
