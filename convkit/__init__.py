"""convkit: conversations in SQLite/PostgreSQL that always fit a Grok model's window.

The public API is what ``__all__`` lists (pinned by a test); everything else
is internal. The pure core (messages, models, counting, fitting) loads
without SQLAlchemy; the store names (``Store``, ``AsyncStore``,
``Conversation``, ``upgrade``) import the database layer on first use.
See README.md for a tour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._engine.settings import DEFAULT_RESERVE, WindowSettings
from ._lazy import lazy_getattr
from ._version import __version__
from .counting import BaseCounter, EstimateCounter, HFTokenCounter, TokenCounter
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContextWindowError,
    ConversationNotFoundError,
    ConvkitError,
    DatabaseError,
    InvalidConversationError,
    InvalidImageError,
    InvalidMessageError,
    NotFoundError,
    PermissionDeniedError,
    PromptTooLongError,
    RateLimitError,
    ResponseFormatError,
    SchemaError,
    ServerError,
    StoreError,
    SummarizerError,
    TokenizerError,
    UnknownModelError,
    UnsupportedInputError,
    ValidationError,
)
from .fitting import FitResult, fit
from .history import History
from .images import image_tokens
from .jsonl import dumps_jsonl, loads_jsonl, read_jsonl
from .messages import ImagePart, Message, TextPart, ToolCall
from .models import ModelRegistry, ModelSpec, get_model, list_models, override_model, register_model
from .summarize import AsyncSummarizer, ExtractiveSummarizer, Summarizer, Summary

if TYPE_CHECKING:
    from ._results import Calibration, Conversation, StoredSummary, UsageTotals
    from .session import AsyncSession, Session
    from .store import AsyncStore, Store
    from .store.migrate import upgrade
    from .xai.client import AsyncXAIClient, Backoff, XAIClient
    from .xai.counter import XAITokenCounter
    from .xai.protocol import Completion, Done, TextDelta, ToolCallDelta, Usage
    from .xai.summarizer import AsyncXAISummarizer, XAISummarizer

_LAZY = {
    "AsyncSession": ".session",
    "AsyncStore": ".store",
    "AsyncXAIClient": ".xai.client",
    "Backoff": ".xai.client",
    "Completion": ".xai.protocol",
    "Done": ".xai.protocol",
    "Session": ".session",
    "TextDelta": ".xai.protocol",
    "ToolCallDelta": ".xai.protocol",
    "Usage": ".xai.protocol",
    "XAIClient": ".xai.client",
    "XAITokenCounter": ".xai.counter",
    "XAISummarizer": ".xai.summarizer",
    "AsyncXAISummarizer": ".xai.summarizer",
    "Calibration": "._results",
    "Conversation": "._results",
    "StoredSummary": "._results",
    "UsageTotals": "._results",
    "Store": ".store",
    "upgrade": ".store.migrate",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncSession",
    "AsyncStore",
    "AsyncSummarizer",
    "AsyncXAIClient",
    "AsyncXAISummarizer",
    "AuthenticationError",
    "Backoff",
    "BadRequestError",
    "BaseCounter",
    "Calibration",
    "Completion",
    "ContextWindowError",
    "Conversation",
    "ConversationNotFoundError",
    "ConvkitError",
    "DEFAULT_RESERVE",
    "DatabaseError",
    "Done",
    "EstimateCounter",
    "ExtractiveSummarizer",
    "FitResult",
    "HFTokenCounter",
    "History",
    "ImagePart",
    "InvalidConversationError",
    "InvalidImageError",
    "InvalidMessageError",
    "Message",
    "ModelRegistry",
    "ModelSpec",
    "NotFoundError",
    "PermissionDeniedError",
    "PromptTooLongError",
    "RateLimitError",
    "ResponseFormatError",
    "SchemaError",
    "ServerError",
    "Session",
    "Store",
    "StoreError",
    "StoredSummary",
    "Summarizer",
    "SummarizerError",
    "Summary",
    "TextDelta",
    "TextPart",
    "TokenCounter",
    "TokenizerError",
    "ToolCall",
    "ToolCallDelta",
    "UnknownModelError",
    "UnsupportedInputError",
    "Usage",
    "UsageTotals",
    "ValidationError",
    "WindowSettings",
    "XAIClient",
    "XAISummarizer",
    "XAITokenCounter",
    "__version__",
    "dumps_jsonl",
    "fit",
    "get_model",
    "image_tokens",
    "list_models",
    "loads_jsonl",
    "override_model",
    "read_jsonl",
    "register_model",
    "upgrade",
]
