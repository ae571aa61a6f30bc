"""The public API is exactly what ``convkit.__all__`` lists, sorted; hypothesis stays optional."""

from __future__ import annotations

import subprocess
import sys

import convkit

PUBLIC = [
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


def test_all_is_pinned_and_sorted() -> None:
    assert convkit.__all__ == PUBLIC, "update PUBLIC here when the public API changes on purpose"
    assert convkit.__all__ == sorted(convkit.__all__)


def test_every_public_name_resolves() -> None:
    for name in convkit.__all__:
        assert getattr(convkit, name) is not None, name


def test_errors_share_one_root() -> None:
    errors = [getattr(convkit, n) for n in convkit.__all__ if n.endswith("Error")]
    assert errors
    for error in errors:
        assert issubclass(error, convkit.ConvkitError), error


def test_the_core_imports_neither_hypothesis_nor_sqlalchemy() -> None:
    code = (
        "import sys, convkit\n"
        "convkit.fit([{'role': 'user', 'content': 'hi'}], model='grok-2')\n"
        "bad = sorted(m for m in ('hypothesis', 'sqlalchemy', 'httpx') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.strip() == ""


def test_testing_strategies_are_public_and_documented() -> None:
    from convkit.testing import strategies

    for name in ("texts", "images", "messages", "conversations", "budgets"):
        assert name in strategies.__all__
        assert (getattr(strategies, name).__doc__ or "").strip(), name


#: The modules a user imports; every other module's name starts with an underscore.
PUBLIC_MODULES = {
    "convkit",
    "convkit.__main__",
    "convkit.integrations",
    "convkit.integrations.agents",
    "convkit.integrations.langchain",
    "convkit.integrations.langgraph",
    "convkit.integrations.llama_index",
    "convkit.integrations.pydantic_ai",
    "convkit.store",
    "convkit.store.ops",  # deprecated: the result types moved to convkit
    "convkit.testing",
    "convkit.testing.openapi",
    "convkit.testing.strategies",
    "convkit.xai",
}


def test_implementation_modules_are_private() -> None:
    """Issue 11: implementation modules are private behind curated package ``__init__``s."""
    import pkgutil

    found = {"convkit"}
    for info in pkgutil.walk_packages(convkit.__path__, "convkit."):
        if not any(part.startswith("_") and part != "__main__" for part in info.name.split(".")):
            found.add(info.name)
    assert found == PUBLIC_MODULES
