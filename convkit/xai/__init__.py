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
    from ._retry import Backoff
    from .client import DEFAULT_BASE_URL, AsyncXAIClient, XAIClient
    from .counter import XAITokenCounter
    from .protocol import Completion, Done, StreamEvent, TextDelta, ToolCallDelta, Usage
    from .summarizer import AsyncXAISummarizer, XAISummarizer

#: Loaded on first use, so the wire types (``convkit.xai.protocol``) never pull in httpx.
_LAZY = {
    "Backoff": "._retry",
    "DEFAULT_BASE_URL": ".client",
    "AsyncXAIClient": ".client",
    "XAIClient": ".client",
    "XAITokenCounter": ".counter",
    "Completion": ".protocol",
    "Done": ".protocol",
    "StreamEvent": ".protocol",
    "TextDelta": ".protocol",
    "ToolCallDelta": ".protocol",
    "Usage": ".protocol",
    "AsyncXAISummarizer": ".summarizer",
    "XAISummarizer": ".summarizer",
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
