"""The one error tree of convkit.

Every exception convkit raises on purpose derives from :class:`ConvkitError`;
errors of the libraries underneath (tokenizers, Pillow, and later SQLAlchemy
and httpx) are translated at the boundary and never escape the public API.

    ConvkitError
    ├── ValidationError              (also ValueError) bad input; nothing was changed
    │   ├── InvalidMessageError      a message that cannot be sent as it is
    │   │   └── InvalidImageError    not a JPEG/PNG, unreadable, or over 10 MiB
    │   ├── InvalidConversationError messages fine alone, wrong together (orphan tool result)
    │   └── UnsupportedInputError    e.g. an image for a text-only model
    ├── UnknownModelError            (also LookupError) a model name nobody registered
    ├── ContextWindowError           the must-keep messages cannot fit; carries the numbers
    ├── TokenizerError               a tokenizer could not be loaded or failed to encode
    └── StoreError                   the conversation store
        ├── ConversationNotFoundError  (also LookupError) no such conversation in this namespace
        ├── SchemaError              the database schema is missing, behind or ahead of this code
        └── DatabaseError            the database failed (connection, lock timeout, constraint)

Each message says what to fix, names the offending index or field, and never
contains a secret.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ContextWindowError",
    "ConversationNotFoundError",
    "ConvkitError",
    "DatabaseError",
    "InvalidConversationError",
    "InvalidImageError",
    "InvalidMessageError",
    "SchemaError",
    "StoreError",
    "TokenizerError",
    "UnknownModelError",
    "UnsupportedInputError",
    "ValidationError",
]


class ConvkitError(Exception):
    """Root of every error convkit raises."""


class ValidationError(ConvkitError, ValueError):
    """Input that convkit refuses; nothing was stored, sent or changed."""


class InvalidMessageError(ValidationError):
    """A single message is malformed (role, content, tool fields)."""


class InvalidImageError(InvalidMessageError):
    """An image part whose bytes are not a readable JPEG/PNG, or too large."""


class InvalidConversationError(ValidationError):
    """Messages that are valid one by one but not as a sequence."""


class UnsupportedInputError(ValidationError):
    """Input the chosen model cannot take, such as images for a text-only model."""


class UnknownModelError(ConvkitError, LookupError):
    """A model name (or alias) that is not registered."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = tuple(sorted(known))
        super().__init__(
            f"unknown model {name!r}; known models and aliases: {', '.join(self.known)}. "
            "Register it with convkit.register_model(ModelSpec(...)) if it is new."
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.name, self.known))


class ContextWindowError(ConvkitError):
    """The messages that must be kept do not fit the budget.

    ``required`` is the token count of what must be sent (pinned messages, the
    newest message with its tool group, tool definitions, per-request
    overhead); ``available`` is the budget (context window minus reserve and
    safety margin).
    """

    def __init__(
        self,
        *,
        required: int,
        available: int,
        model: str,
        context_window: int | None = None,
        reserve: int = 0,
        detail: str = "",
    ) -> None:
        self.required = required
        self.available = available
        self.model = model
        self.context_window = context_window
        self.reserve = reserve
        window = f" (context window {context_window}, reserve {reserve})" if context_window else ""
        msg = (
            f"{model}: the messages that must be kept need {required} tokens but only "
            f"{available} are available{window}"
        )
        if detail:
            msg += f"; {detail}"
        msg += (
            ". Shorten the pinned or newest messages, lower the reserve, or choose a "
            "model with a larger window."
        )
        super().__init__(msg)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_cwe, (self.required, self.available, self.model, self.context_window, self.reserve))


def _rebuild_cwe(
    required: int, available: int, model: str, context_window: int | None, reserve: int
) -> ContextWindowError:
    return ContextWindowError(
        required=required, available=available, model=model, context_window=context_window, reserve=reserve
    )


class TokenizerError(ConvkitError):
    """A tokenizer could not be loaded or could not encode the input."""


class StoreError(ConvkitError):
    """Root of the conversation store's errors."""


class ConversationNotFoundError(StoreError, LookupError):
    """No conversation with that id in this store's namespace.

    The same error is raised whether the id does not exist or belongs to
    another namespace, so a namespace cannot learn about another's data.
    """

    def __init__(self, conversation_id: str, namespace: str) -> None:
        self.conversation_id = conversation_id
        self.namespace = namespace
        super().__init__(f"no conversation {conversation_id!r} in namespace {namespace!r}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.conversation_id, self.namespace))


class SchemaError(StoreError):
    """The database's convkit schema is missing, behind or ahead of this version of convkit."""


class DatabaseError(StoreError):
    """The database failed; the operation was rolled back and nothing was written."""
