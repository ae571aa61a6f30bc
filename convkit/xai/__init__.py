"""Talking to xAI: the HTTP clients, the remote token counter, the summarizers and the wire types.

``XAIClient``/``AsyncXAIClient`` (:mod:`.client`) send chat requests (plain
or streamed), count tokens remotely and list models; ``XAITokenCounter``
(:mod:`.counter`) counts with xAI's own tokenizer; ``XAISummarizer``/
``AsyncXAISummarizer`` (:mod:`.summarizer`) fold history into summaries;
:mod:`.protocol` holds the request and response shapes. Everything else
here (modules with a leading underscore) is implementation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

if TYPE_CHECKING:
    from ._client import DEFAULT_BASE_URL, AsyncXAIClient, XAIClient
    from ._counter import XAITokenCounter
    from ._protocol import Completion, Done, StreamEvent, TextDelta, ToolCallDelta, Usage
    from ._retry import Backoff
    from ._summarizer import AsyncXAISummarizer, XAISummarizer

#: Loaded on first use, so the wire types (``convkit.xai._protocol``) never pull in httpx.
_LAZY = {
    "Backoff": "._retry",
    "DEFAULT_BASE_URL": "._client",
    "AsyncXAIClient": "._client",
    "XAIClient": "._client",
    "XAITokenCounter": "._counter",
    "Completion": "._protocol",
    "Done": "._protocol",
    "StreamEvent": "._protocol",
    "TextDelta": "._protocol",
    "ToolCallDelta": "._protocol",
    "Usage": "._protocol",
    "AsyncXAISummarizer": "._summarizer",
    "XAISummarizer": "._summarizer",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "DEFAULT_BASE_URL",
    "AsyncXAIClient",
    "AsyncXAISummarizer",
    "Backoff",
    "Completion",
    "Done",
    "StreamEvent",
    "TextDelta",
    "ToolCallDelta",
    "Usage",
    "XAIClient",
    "XAISummarizer",
    "XAITokenCounter",
]
