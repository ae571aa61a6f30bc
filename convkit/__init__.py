"""convkit: conversations in SQLite/PostgreSQL that always fit a Grok model's window.

The public API is what ``__all__`` lists (pinned by a test); everything else
is internal. The pure core (messages, models, counting, fitting) loads
without SQLAlchemy; the store names (``Store``, ``AsyncStore``,
``Conversation``, ``upgrade``) import the database layer on first use.
See README.md for a tour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._counting import BaseCounter, EstimateCounter, HFTokenCounter, TokenCounter
from ._engine.settings import DEFAULT_RESERVE, WindowSettings
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContextWindowError,
    ConversationExistsError,
    ConversationNotFoundError,
    ConvkitError,
    DatabaseError,
    InvalidConversationError,
    InvalidImageError,
    InvalidMessageError,
    NotFoundError,
    PermissionDeniedError,
    PoolTimeoutError,
    PromptTooLongError,
    RateLimitError,
    ResponseFormatError,
    SchemaError,
    ServerError,
    StatementTimeoutError,
    StoreError,
    SummarizerError,
    TokenizerError,
    UnknownModelError,
    UnsupportedInputError,
    ValidationError,
)
from ._fitting import FitResult, fit
from ._history import History
from ._images import image_tokens
from ._jsonl import dumps_jsonl, loads_jsonl, read_jsonl
from ._lazy import lazy_getattr
from ._messages import ImagePart, Message, TextPart, ToolCall
from ._models import (
    ModelRegistry,
    ModelSpec,
    PriceTier,
    get_model,
    list_models,
    override_model,
    register_model,
)
from ._summarize import AsyncSummarizer, ExtractiveSummarizer, Summarizer, Summary
from ._version import __version__

if TYPE_CHECKING:
    from ._results import Calibration, Conversation, StoredSummary, UsageTotals
    from ._session import AsyncSession, Session
    from .store import AsyncStore, Store
    from .store._migrate import upgrade
    from .xai._client import AsyncXAIClient, Backoff, XAIClient
    from .xai._counter import XAITokenCounter
    from .xai._protocol import Completion, Done, TextDelta, ToolCallDelta, Usage
    from .xai._summarizer import AsyncXAISummarizer, XAISummarizer

_LAZY = {
    "AsyncSession": "._session",
    "AsyncStore": ".store",
    "AsyncXAIClient": ".xai._client",
    "Backoff": ".xai._client",
    "Completion": ".xai._protocol",
    "Done": ".xai._protocol",
    "Session": "._session",
    "TextDelta": ".xai._protocol",
    "ToolCallDelta": ".xai._protocol",
    "Usage": ".xai._protocol",
    "XAIClient": ".xai._client",
    "XAITokenCounter": ".xai._counter",
    "XAISummarizer": ".xai._summarizer",
    "AsyncXAISummarizer": ".xai._summarizer",
    "Calibration": "._results",
    "Conversation": "._results",
    "StoredSummary": "._results",
    "UsageTotals": "._results",
    "Store": ".store",
    "upgrade": ".store._migrate",
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
    "ConversationExistsError",
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
    "PoolTimeoutError",
    "PriceTier",
    "PromptTooLongError",
    "RateLimitError",
    "ResponseFormatError",
    "SchemaError",
    "ServerError",
    "Session",
    "StatementTimeoutError",
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
