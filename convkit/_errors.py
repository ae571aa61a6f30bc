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
    ├── SummarizerError              a summarizer failed, timed out or gave an empty summary
    ├── StoreError                   the conversation store
    │   ├── ConversationNotFoundError  (also LookupError) no such conversation in this namespace
    │   ├── ConversationExistsError    another conversation of the namespace has that key
    │   ├── SchemaError              the database schema is missing, behind or ahead of this code
    │   └── DatabaseError            the database failed (connection, lock timeout, constraint)
    │       ├── PoolTimeoutError     no free pooled connection within the store's pool_timeout
    │       └── StatementTimeoutError  a statement ran (or waited for a lock) past statement_timeout
    └── APIError                     talking to xAI failed; ``status_code``/``code`` when it answered
        ├── BadRequestError          400/422: the request was refused as invalid
        │   └── PromptTooLongError   (also ContextWindowError) "maximum prompt length is N but ... M"
        ├── AuthenticationError      401, or 400 "Incorrect API key provided", or no key configured
        ├── PermissionDeniedError    403
        ├── NotFoundError            404 (e.g. an unknown model)
        ├── RateLimitError           429, after the retries ran out
        ├── ServerError              5xx, after the retries ran out
        ├── APITimeoutError          no answer within the timeout, after the retries ran out
        ├── APIConnectionError       could not connect, or the connection broke
        └── ResponseFormatError      an answer convkit cannot read (bad JSON, a stream cut off)

Each message says what to fix, names the offending index or field, and never
contains a secret.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ContextWindowError",
    "ConversationExistsError",
    "ConversationNotFoundError",
    "ConvkitError",
    "DatabaseError",
    "InvalidConversationError",
    "InvalidImageError",
    "InvalidMessageError",
    "NotFoundError",
    "PermissionDeniedError",
    "PoolTimeoutError",
    "PromptTooLongError",
    "RateLimitError",
    "ResponseFormatError",
    "SchemaError",
    "ServerError",
    "StatementTimeoutError",
    "StoreError",
    "SummarizerError",
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
        if context_window and reserve >= context_window:  # said in words: no negative "available"
            msg = (
                f"{model}: the reserve of {reserve} tokens for the reply is not smaller than the context "
                f"window of {context_window} tokens, so no room is left for the prompt (it needs at least "
                f"{required} tokens). Lower the reserve below the window."
            )
        else:
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

    def __init__(self, conversation_id: str, namespace: str, *, key: bool = False) -> None:
        self.conversation_id = conversation_id
        self.namespace = namespace
        #: whether ``conversation_id`` is an application key (``Store.conversation_for``) rather than an id
        self.key = key
        what = "with key " if key else ""
        super().__init__(f"no conversation {what}{conversation_id!r} in namespace {namespace!r}")

    def __reduce__(self) -> tuple[object, ...]:
        return (_not_found, (self.conversation_id, self.namespace, self.key))


def _not_found(conversation_id: str, namespace: str, key: bool) -> ConversationNotFoundError:
    return ConversationNotFoundError(conversation_id, namespace, key=key)


class ConversationExistsError(StoreError):
    """Another conversation of this store's namespace already has that key.

    Keys are unique per namespace; :meth:`convkit.Store.conversation_for`
    returns the existing conversation instead of raising.
    """

    def __init__(self, key: str, namespace: str) -> None:
        self.key = key
        self.namespace = namespace
        super().__init__(
            f"a conversation with key {key!r} already exists in namespace {namespace!r}; "
            "store.conversation_for(key) returns it"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.key, self.namespace))


class SchemaError(StoreError):
    """The database's convkit schema is missing, behind or ahead of this version of convkit."""


class DatabaseError(StoreError):
    """The database failed; the operation was rolled back and nothing was written."""


class PoolTimeoutError(DatabaseError):
    """Every connection of the store's pool stayed busy for its ``pool_timeout``; nothing was run."""


class StatementTimeoutError(DatabaseError):
    """A statement ran, or waited for a lock, longer than the store's ``statement_timeout``.

    PostgreSQL cancelled it (or SQLite's wait for its write lock ran out); the transaction was
    rolled back and nothing was written.
    """


class APIError(ConvkitError):
    """Talking to the xAI API failed.

    ``status_code`` and ``code`` are set when the server answered; the
    message never contains the API key. ``retry_after``: the seconds the
    answer's ``Retry-After`` header asked to wait, when it had one.
    """

    retry_after: float | None = None

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None) -> None:
        self.status_code = status_code
        self.code = code
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_api_error, (type(self), str(self), self.status_code, self.code))


def _rebuild_api_error(
    cls: type[APIError], message: str, status_code: int | None, code: str | None
) -> APIError:
    err = APIError.__new__(cls)
    APIError.__init__(err, message, status_code=status_code, code=code)
    return err


class BadRequestError(APIError):
    """The request was refused as invalid (400, or 422 for a body xAI could not read)."""


class PromptTooLongError(BadRequestError, ContextWindowError):
    """xAI said the prompt is over the model's limit: ``limit`` (N) and ``requested`` (M) tokens."""

    def __init__(
        self,
        message: str,
        *,
        limit: int,
        requested: int,
        model: str = "",
        status_code: int = 400,
        code: str | None = None,
    ) -> None:
        self.limit = limit
        self.requested = requested
        self.required = requested
        self.available = limit
        self.model = model
        self.context_window = None
        self.reserve = 0
        self.status_code = status_code
        self.code = code
        Exception.__init__(self, message)  # both parents' __init__ take other arguments

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_ptl,
            (str(self), self.limit, self.requested, self.model, self.status_code, self.code),
        )


def _rebuild_ptl(
    message: str, limit: int, requested: int, model: str, status_code: int | None, code: str | None
) -> PromptTooLongError:
    return PromptTooLongError(
        message, limit=limit, requested=requested, model=model, status_code=status_code or 400, code=code
    )


class AuthenticationError(APIError):
    """The API key is missing, wrong or revoked."""


class PermissionDeniedError(APIError):
    """The key may not do this (403)."""


class NotFoundError(APIError):
    """The model or resource does not exist for this key (404)."""


class RateLimitError(APIError):
    """Too many requests (429), and the retries ran out."""


class ServerError(APIError):
    """xAI failed (5xx), and the retries ran out."""


class APITimeoutError(APIError):
    """No answer within the timeout, and the retries ran out."""


class APIConnectionError(APIError):
    """The connection could not be made or broke before an answer."""


class ResponseFormatError(APIError):
    """An answer convkit cannot read: not JSON, the wrong shape, or a stream cut off mid-way."""


class SummarizerError(ConvkitError):
    """The summarizer failed, timed out, or returned an empty summary; nothing was written."""
