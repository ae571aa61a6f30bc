"""What the two xAI clients share besides their flows: construction and configuration.

:class:`ClientBase` checks the arguments once for both twins (the key, the
base URL, ``max_retries``), keeps the configuration as public attributes
(``base_url`` and ``timeout``, as the httpx client was opened with them;
``max_retries``, ``backoff`` and ``registry``, read again by every call),
and opens the twin's own httpx client through :meth:`ClientBase._connect`.
No I/O happens here.

Invariants: the API key comes from ``api_key=`` or ``$XAI_API_KEY``; it is
kept in a name-mangled attribute, handed only to httpx's ``Authorization``
header and to each call's :class:`~convkit.xai._flows.Wire` (which masks it
in every error), and never appears in a repr; a key that an HTTP header
cannot carry is refused here, before httpx could quote it in an exception;
timeouts are always explicit (60 s, 10 s to connect, unless given).
"""

from __future__ import annotations

import math
import os
from typing import Any, Generic, TypeVar

import httpx

from .._errors import AuthenticationError, ValidationError
from .._models import ModelRegistry, default_registry
from ._flows import Wire
from ._retry import Backoff

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_TIMEOUT", "ClientBase"]

DEFAULT_BASE_URL = "https://api.x.ai/v1"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)

TransportT = TypeVar("TransportT")
HttpT = TypeVar("HttpT")


def _check_base_url(base_url: str) -> str:
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValidationError(f"base_url {base_url!r} is not a valid URL ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValidationError(f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL}, got {base_url!r}")
    return base_url.rstrip("/")


def _seconds(value: object, what: str, *, none_ok: bool) -> None:
    if value is None and none_ok:
        return
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValidationError(
            f"{what} must be a positive, finite number of seconds"
            f"{' (or None for no limit)' if none_ok else ''}, got {value!r}"
        )


def _check_timeout(timeout: object) -> httpx.Timeout:
    """``timeout`` as an httpx.Timeout; refused unless every limit is a positive number of seconds.

    httpx takes a negative, zero or NaN timeout here and fails only at the first request, with a
    raw ``ValueError`` from the socket (zero even makes the socket non-blocking).
    """
    if timeout is None:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, httpx.Timeout):
        for part in ("connect", "read", "write", "pool"):
            _seconds(getattr(timeout, part), f"timeout.{part}", none_ok=True)
        return timeout
    _seconds(timeout, "timeout", none_ok=False)
    assert isinstance(timeout, int | float)
    return httpx.Timeout(timeout)


def _check_key(api_key: str | None) -> str:
    key = (api_key if api_key is not None else os.environ.get("XAI_API_KEY") or "").strip()
    if not key:
        raise AuthenticationError(
            "no xAI API key: set the XAI_API_KEY environment variable or pass api_key=..."
        )
    if not (key.isascii() and key.isprintable()) or any(ch.isspace() for ch in key):
        # an HTTP header cannot carry it; httpx would fail later with the key in its message
        raise AuthenticationError(
            "the xAI API key contains spaces, control or non-ASCII characters; check the value "
            "of XAI_API_KEY (or api_key=...)"
        )
    return key


class ClientBase(Generic[TransportT, HttpT]):
    """The twins' shared constructor and configuration; ``_http`` is the twin's httpx client."""

    _http: HttpT

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 3,
        backoff: Backoff | None = None,
        transport: TransportT | None = None,
        registry: ModelRegistry | None = None,
    ) -> None:
        key = _check_key(api_key)
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise ValidationError(f"max_retries must be a non-negative integer, got {max_retries!r}")
        self.__key = key
        self.base_url = _check_base_url(base_url)
        self.timeout = _check_timeout(timeout)
        self.max_retries = max_retries
        self.backoff = backoff or Backoff()
        self.registry = registry or default_registry
        self._http = self._connect(
            transport,
            base_url=self.base_url,
            timeout=self.timeout,
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, max_retries={self.max_retries})"

    def _connect(self, transport: TransportT | None, **options: Any) -> HttpT:
        """The twin's httpx client over ``transport`` with ``options`` (base_url, timeout, headers)."""
        raise NotImplementedError

    def _wire(self) -> Wire:
        """What a call's flow needs, as the configuration is now."""
        return Wire(self.__key, self.max_retries, self.backoff, self.registry)
