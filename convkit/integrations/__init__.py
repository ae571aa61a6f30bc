"""Adapters that plug convkit into other frameworks (each behind an optional extra).

* :mod:`convkit.integrations.langchain` -- ``pip install 'convkit-grok[langchain]'``:
  :class:`~convkit.integrations.langchain.ConvkitChatMessageHistory` (a
  LangChain ``BaseChatMessageHistory`` backed by a convkit store),
  ``to_langchain`` / ``from_langchain`` (lossless message conversion) and
  ``fit_messages`` (a drop-in for LangChain's ``trim_messages`` that runs
  :func:`convkit.fit`);
* :mod:`convkit.integrations.agents` -- ``pip install 'convkit-grok[agents]'``:
  :class:`~convkit.integrations.agents.ConvkitSession`, an OpenAI Agents SDK
  ``Session`` backed by a convkit store, optionally returning only the window
  that fits a chosen Grok model.

Importing this package imports neither framework; each submodule imports its
own on import and fails with an ``ImportError`` naming the extra to install.
"""

from __future__ import annotations

__all__: list[str] = []
