"""convkit: conversations in SQLite/PostgreSQL that always fit a Grok model's window.

The public API is what ``__all__`` lists (pinned by a test); everything else
is internal. See README.md for a tour.
"""

from __future__ import annotations

from ._version import __version__
from .counting import BaseCounter, EstimateCounter, HFTokenCounter, TokenCounter
from .errors import (
    ContextWindowError,
    ConvkitError,
    InvalidConversationError,
    InvalidImageError,
    InvalidMessageError,
    TokenizerError,
    UnknownModelError,
    UnsupportedInputError,
    ValidationError,
)
from .fitting import FitResult, fit
from .history import History
from .images import image_tokens
from .messages import ImagePart, Message, TextPart, ToolCall
from .models import ModelRegistry, ModelSpec, get_model, list_models, override_model, register_model
from .store.migrate import upgrade

__all__ = [
    "BaseCounter",
    "ContextWindowError",
    "ConvkitError",
    "EstimateCounter",
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
    "TextPart",
    "TokenCounter",
    "TokenizerError",
    "ToolCall",
    "UnknownModelError",
    "UnsupportedInputError",
    "ValidationError",
    "__version__",
    "fit",
    "get_model",
    "image_tokens",
    "list_models",
    "override_model",
    "register_model",
    "upgrade",
]
