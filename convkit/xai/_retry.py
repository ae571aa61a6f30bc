"""The retry policy of the xAI clients: which failures are retried, and how long to wait.

429, 5xx, timeouts and connection failures are retried after a bounded
exponential backoff with full jitter (:class:`Backoff`); every other error is
final. xAI documents no rate-limit headers, but when an answer carries
``Retry-After`` (delay-seconds or an HTTP date, RFC 9110 section 10.2.3) the
wait is what it asks, capped at ``Backoff.maximum``
(:func:`retry_after_seconds` reads it; the error keeps it as ``retry_after``). :func:`pause_or_raise` is
the one place that decides, as a step of a flow (see
:mod:`convkit.xai._flows`): it raises the error, or logs the retry and
yields the :class:`~convkit.xai._actions.Sleep` before it.

Invariants: at most ``max_retries`` retries, so at most ``max_retries + 1``
attempts; a wait never exceeds ``Backoff.maximum``, whatever ``Retry-After`` asks; the log record names the
request and the error's type only (never its text, which quotes the
server), so no secret can reach the log through it.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time

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

__all__ = ["Backoff", "pause_or_raise", "retry_after_seconds", "retryable"]

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


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header value asks to wait (0 for a past date), ``None`` if unreadable.

    ``now``: the current POSIX time (default ``time.time()``), for an HTTP-date value.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() also takes "²", which float() refuses
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110: an HTTP date is in GMT
        return None
    wait = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, wait) if math.isfinite(wait) else None


def retryable(err: APIError) -> bool:
    """Whether a failure may pass if the same request is sent again."""
    return isinstance(err, RateLimitError | ServerError | APITimeoutError | APIConnectionError)


def pause_or_raise(what: str, err: APIError, attempt: int, max_retries: int, backoff: Backoff) -> Flow[None]:
    """After failed ``attempt`` (0 first) of ``what``: raise ``err``, or wait before the next attempt."""
    if not retryable(err) or attempt >= max_retries:
        raise err
    asked = getattr(err, "retry_after", None)
    delay = min(asked, backoff.maximum) if asked is not None else backoff.delay(attempt)
    log.warning(
        "%s failed (%s); retry %d of %d in %.2fs", what, type(err).__name__, attempt + 1, max_retries, delay
    )
    yield Sleep(delay)
