"""``XAIClient`` and ``AsyncXAIClient``: the xAI HTTP API over httpx.

Thin I/O twins with identical method names (``chat``, ``stream``,
``tokenize``, ``language_models``, ``refresh_models``); everything about the
wire format lives in :mod:`convkit.xai.protocol`.

Guarantees: the API key comes from ``api_key=`` or ``$XAI_API_KEY`` and never
appears in a repr, log record or exception; timeouts are explicit; 429, 5xx,
timeouts and connection failures are retried with bounded exponential
backoff and full jitter (xAI documents no rate-limit headers), other errors
are raised at once as the typed tree of :mod:`convkit.errors`; a stream is
retried only before its first event (also when the connection closed
cleanly before it), and a stream cut off mid-way raises
:class:`ResponseFormatError` instead of returning a partial message. httpx
exceptions never escape.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import attrs
import httpx

from ..errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    ValidationError,
)
from ..messages import MessageLike
from ..models import ModelRegistry, ModelSpec, default_registry, get_model
from .protocol import (
    Completion,
    Done,
    StreamAssembler,
    StreamEvent,
    chat_body,
    error_from_response,
    parse_completion,
    redact,
)

__all__ = ["DEFAULT_BASE_URL", "AsyncXAIClient", "Backoff", "XAIClient"]

DEFAULT_BASE_URL = "https://api.x.ai/v1"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
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


def _check_base_url(base_url: str) -> str:
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValidationError(f"base_url {base_url!r} is not a valid URL ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValidationError(f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL}, got {base_url!r}")
    return base_url.rstrip("/")


def _retryable(err: APIError) -> bool:
    return isinstance(err, RateLimitError | ServerError | APITimeoutError | APIConnectionError)


class _Base:
    """Configuration shared by the twins (no I/O)."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        backoff: Backoff | None,
        registry: ModelRegistry | None,
    ) -> None:
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
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise ValidationError(f"max_retries must be a non-negative integer, got {max_retries!r}")
        self.__key = key
        self.base_url = _check_base_url(base_url)
        self.timeout = (
            timeout
            if isinstance(timeout, httpx.Timeout)
            else (DEFAULT_TIMEOUT if timeout is None else httpx.Timeout(timeout))
        )
        self.max_retries = max_retries
        self.backoff = backoff or Backoff()
        self.registry = registry or default_registry

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, max_retries={self.max_retries})"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.__key}", "Accept": "application/json"}

    def _redact(self, text: str) -> str:
        return redact(text, self.__key)

    def _spec(self, model: str | ModelSpec) -> ModelSpec:
        return get_model(model, self.registry)

    def _transport_error(self, exc: httpx.HTTPError, what: str) -> APIError:
        detail = self._redact(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(f"{what}: no answer within the timeout ({detail})")
        return APIConnectionError(f"{what}: connection failed ({detail})")

    def _assembler(self, spec: ModelSpec) -> StreamAssembler:
        return StreamAssembler(spec, secret=self.__key)

    def _error(self, resp: httpx.Response) -> APIError:
        return error_from_response(
            resp.status_code, resp.content, resp.headers.get("content-type", ""), secret=self.__key
        )

    def _json(self, resp: httpx.Response) -> Any:
        try:
            return json.loads(resp.content)
        except ValueError:
            raise ResponseFormatError(
                f"xAI answered {resp.status_code} with a body that is not JSON", status_code=resp.status_code
            ) from None

    def _log_retry(self, what: str, err: APIError, attempt: int, delay: float) -> None:
        log.warning(
            "%s failed (%s); retry %d of %d in %.2fs",
            what,
            type(err).__name__,
            attempt + 1,
            self.max_retries,
            delay,
        )

    @staticmethod
    def _token_ids(payload: Any) -> list[int]:
        if not isinstance(payload, Mapping) or not isinstance(payload.get("token_ids"), list):
            raise ResponseFormatError("tokenize-text answered without a 'token_ids' list")
        out = []
        for t in payload["token_ids"]:
            tid = t.get("token_id") if isinstance(t, Mapping) else t
            if not isinstance(tid, int):
                raise ResponseFormatError("tokenize-text answered a token without an integer token_id")
            out.append(tid)
        return out


class XAIClient(_Base):
    """Synchronous xAI client. Close it (or use ``with``) to release connections."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 3,
        backoff: Backoff | None = None,
        transport: httpx.BaseTransport | None = None,
        registry: ModelRegistry | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout, max_retries, backoff, registry)
        self._http = httpx.Client(
            base_url=self.base_url, timeout=self.timeout, transport=transport, headers=self._headers()
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> XAIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        what = f"{method} {path}"
        for attempt in range(self.max_retries + 1):
            try:
                resp = self._http.request(method, path, json=body)
            except httpx.HTTPError as exc:
                err = self._transport_error(exc, what)
            else:
                if resp.status_code < 400:
                    return resp
                err = self._error(resp)
            if not _retryable(err) or attempt == self.max_retries:
                raise err
            delay = self.backoff.delay(attempt)
            self._log_retry(what, err, attempt, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def chat(
        self,
        messages: Sequence[MessageLike],
        *,
        model: str | ModelSpec,
        max_tokens: int | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **options: Any,
    ) -> Completion:
        """One chat completion (``options``: other ChatRequest fields, e.g. temperature)."""
        spec = self._spec(model)
        body = chat_body(messages, model=spec, max_tokens=max_tokens, tools=tools, **options)
        return parse_completion(self._json(self._request("POST", "/chat/completions", body)), spec)

    def stream(
        self,
        messages: Sequence[MessageLike],
        *,
        model: str | ModelSpec,
        max_tokens: int | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **options: Any,
    ) -> Iterator[StreamEvent]:
        """Stream a completion: TextDelta/ToolCallDelta events, then one Done with the completion."""
        spec = self._spec(model)
        body = chat_body(messages, model=spec, max_tokens=max_tokens, tools=tools, stream=True, **options)
        what = "POST /chat/completions (stream)"
        for attempt in range(self.max_retries + 1):
            started = False
            try:
                with self._http.stream("POST", "/chat/completions", json=body) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        err = self._error(resp)
                    else:
                        asm = self._assembler(spec)
                        for line in resp.iter_lines():
                            for event in asm.feed_line(line):
                                started = True
                                yield event
                            if asm.done:
                                break
                        if asm.done or started:
                            yield Done(asm.result())  # raises when cut off after the reply began
                            return
                        err = APIConnectionError(f"{what}: the connection closed before the reply began")
            except httpx.HTTPError as exc:
                if started:
                    raise ResponseFormatError(
                        self._redact(
                            f"the stream was cut off mid-way ({type(exc).__name__}); the partial "
                            "reply was not used"
                        )
                    ) from None
                err = self._transport_error(exc, what)
            if not _retryable(err) or attempt == self.max_retries:
                raise err
            delay = self.backoff.delay(attempt)
            self._log_retry(what, err, attempt, delay)
            time.sleep(delay)

    def tokenize(self, text: str, model: str | ModelSpec) -> list[int]:
        """Token ids of ``text`` by the API's own tokenizer for ``model``."""
        spec = self._spec(model)
        resp = self._request("POST", "/tokenize-text", {"text": text, "model": spec.name})
        return self._token_ids(self._json(resp))

    def language_models(self) -> dict[str, Any]:
        """The raw ``GET /v1/language-models`` body."""
        payload = self._json(self._request("GET", "/language-models"))
        if not isinstance(payload, dict):
            raise ResponseFormatError("language-models answered something other than an object")
        return payload

    def refresh_models(self, registry: ModelRegistry | None = None) -> list[ModelSpec]:
        """Update prices, aliases and modalities of known models from the API."""
        return (registry or self.registry).update_from_language_models(self.language_models())


class AsyncXAIClient(_Base):
    """Asynchronous twin of :class:`XAIClient` (same methods, awaitable)."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 3,
        backoff: Backoff | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        registry: ModelRegistry | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout, max_retries, backoff, registry)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, transport=transport, headers=self._headers()
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncXAIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        what = f"{method} {path}"
        for attempt in range(self.max_retries + 1):
            try:
                resp = await self._http.request(method, path, json=body)
            except httpx.HTTPError as exc:
                err = self._transport_error(exc, what)
            else:
                if resp.status_code < 400:
                    return resp
                err = self._error(resp)
            if not _retryable(err) or attempt == self.max_retries:
                raise err
            delay = self.backoff.delay(attempt)
            self._log_retry(what, err, attempt, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def chat(
        self,
        messages: Sequence[MessageLike],
        *,
        model: str | ModelSpec,
        max_tokens: int | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **options: Any,
    ) -> Completion:
        spec = self._spec(model)
        body = chat_body(messages, model=spec, max_tokens=max_tokens, tools=tools, **options)
        return parse_completion(self._json(await self._request("POST", "/chat/completions", body)), spec)

    async def stream(
        self,
        messages: Sequence[MessageLike],
        *,
        model: str | ModelSpec,
        max_tokens: int | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **options: Any,
    ) -> AsyncIterator[StreamEvent]:
        spec = self._spec(model)
        body = chat_body(messages, model=spec, max_tokens=max_tokens, tools=tools, stream=True, **options)
        what = "POST /chat/completions (stream)"
        for attempt in range(self.max_retries + 1):
            started = False
            try:
                async with self._http.stream("POST", "/chat/completions", json=body) as resp:
                    if resp.status_code >= 400:
                        await resp.aread()
                        err = self._error(resp)
                    else:
                        asm = self._assembler(spec)
                        async for line in resp.aiter_lines():
                            for event in asm.feed_line(line):
                                started = True
                                yield event
                            if asm.done:
                                break
                        if asm.done or started:
                            yield Done(asm.result())  # raises when cut off after the reply began
                            return
                        err = APIConnectionError(f"{what}: the connection closed before the reply began")
            except httpx.HTTPError as exc:
                if started:
                    raise ResponseFormatError(
                        self._redact(
                            f"the stream was cut off mid-way ({type(exc).__name__}); the partial "
                            "reply was not used"
                        )
                    ) from None
                err = self._transport_error(exc, what)
            if not _retryable(err) or attempt == self.max_retries:
                raise err
            delay = self.backoff.delay(attempt)
            self._log_retry(what, err, attempt, delay)
            await asyncio.sleep(delay)

    async def tokenize(self, text: str, model: str | ModelSpec) -> list[int]:
        spec = self._spec(model)
        resp = await self._request("POST", "/tokenize-text", {"text": text, "model": spec.name})
        return self._token_ids(self._json(resp))

    async def language_models(self) -> dict[str, Any]:
        payload = self._json(await self._request("GET", "/language-models"))
        if not isinstance(payload, dict):
            raise ResponseFormatError("language-models answered something other than an object")
        return payload

    async def refresh_models(self, registry: ModelRegistry | None = None) -> list[ModelSpec]:
        return (registry or self.registry).update_from_language_models(await self.language_models())
