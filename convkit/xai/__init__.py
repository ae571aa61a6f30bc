"""Talking to xAI: the HTTP clients, the remote token counter, the summarizers and the wire types.

``XAIClient``/``AsyncXAIClient`` (:mod:`.client`) send chat requests (plain
or streamed), count tokens remotely and list models; ``XAITokenCounter``
(:mod:`.counter`) counts with xAI's own tokenizer; ``XAISummarizer``/
``AsyncXAISummarizer`` (:mod:`.summarizer`) fold history into summaries;
:mod:`.protocol` holds the request and response shapes. Everything else
here (modules with a leading underscore) is implementation.
"""

from __future__ import annotations

from ._retry import Backoff
from .client import DEFAULT_BASE_URL, AsyncXAIClient, XAIClient
from .counter import XAITokenCounter
from .protocol import Completion, Done, StreamEvent, TextDelta, ToolCallDelta, Usage
from .summarizer import AsyncXAISummarizer, XAISummarizer

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
