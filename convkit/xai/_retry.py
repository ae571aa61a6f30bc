"""The retry policy of the xAI clients: which failures are retried, and how long to wait.

xAI documents no rate-limit headers, so 429, 5xx, timeouts and connection
failures are retried after a bounded exponential backoff with full jitter
(:class:`Backoff`); every other error is final. :func:`pause_or_raise` is
the one place that decides, as a step of a flow (see
:mod:`convkit.xai._flows`): it raises the error, or logs the retry and
yields the :class:`~convkit.xai._actions.Sleep` before it.

Invariants: at most ``max_retries`` retries, so at most ``max_retries + 1``
attempts; a wait never exceeds ``Backoff.maximum``; the log record names the
request and the error's type only (never its text, which quotes the
server), so no secret can reach the log through it.
"""

from __future__ import annotations

import logging
import random

import attrs

from .._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from ._actions import Flow, Sleep

__all__ = ["Backoff", "pause_or_raise", "retryable"]

log = logging.getLogger("convkit.xai")


@attrs.frozen
class Backoff:
    """Bounded exponential backoff with full jitter: attempt k waits up to ``initial * multiplier**k``."""

    initial: float = 0.5
    maximum: float = 8.0
    multiplier: float = 2.0
    jitter: bool = True

    def __attrs_post_init__(self) -> None:
        if not (self.initial >= 0 and self.maximum >= 0 and self.multiplier >= 1):  # NaN fails too
            raise ValidationError(
                "Backoff needs initial >= 0, maximum >= 0 and multiplier >= 1, got "
                f"initial={self.initial!r}, maximum={self.maximum!r}, multiplier={self.multiplier!r}"
            )

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        cap = min(self.maximum, self.initial * self.multiplier**attempt)
        return (rng or random).uniform(0, cap) if self.jitter else cap


def retryable(err: APIError) -> bool:
    """Whether a failure may pass if the same request is sent again."""
    return isinstance(err, RateLimitError | ServerError | APITimeoutError | APIConnectionError)


def pause_or_raise(what: str, err: APIError, attempt: int, max_retries: int, backoff: Backoff) -> Flow[None]:
    """After failed ``attempt`` (0 first) of ``what``: raise ``err``, or wait before the next attempt."""
    if not retryable(err) or attempt >= max_retries:
        raise err
    delay = backoff.delay(attempt)
    log.warning(
        "%s failed (%s); retry %d of %d in %.2fs", what, type(err).__name__, attempt + 1, max_retries, delay
    )
    yield Sleep(delay)
