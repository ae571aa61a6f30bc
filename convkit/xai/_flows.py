"""The xAI client's calls, each written once as a sans-I/O flow.

Every public call of :class:`~convkit.xai._client.XAIClient` and
:class:`~convkit.xai._client.AsyncXAIClient` is one generator here: it yields
the actions of :mod:`convkit.xai._actions` (send, read, emit, sleep),
receives their outcomes (responses, lines, or the ``httpx.HTTPError`` that an
action raised), and returns the call's result. The twins only bind a flow to
their driver (:mod:`convkit.xai._drive`), so every decision lives here: what
to send, which answer is an error and which typed error it is, whether to
retry (:func:`~convkit.xai._retry.pause_or_raise`), how long to wait, what
to log. The docstrings of the public flows are the docstrings of the
clients' methods.

Invariants: an ``httpx.HTTPError`` is always turned into an
:class:`~convkit._errors.APIError` (timeouts into :class:`APITimeoutError`,
the rest into :class:`APIConnectionError`) and never raised; every text
built from an exception or a response passes through :meth:`Wire.redact`,
so the API key never reaches an error; a stream is retried only before its
first event (also when the connection closed cleanly before it), and a
stream cut off after it raises :class:`ResponseFormatError` rather than
return a partial message.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import httpx

from .._errors import APIConnectionError, APIError, APITimeoutError, ResponseFormatError
from .._messages import MessageLike
from .._models import ModelRegistry, ModelSpec, get_model
from ._actions import Emit, Flow, ReadBody, ReadLine, Send
from ._headers import conv_headers
from ._protocol import (
    Completion,
    Done,
    StreamAssembler,
    chat_body,
    error_from_response,
    parse_completion,
    redact,
)
from ._retry import Backoff, pause_or_raise, retry_after_seconds

__all__ = ["Wire", "chat", "language_models", "refresh_models", "request", "stream", "tokenize"]

STREAM = "POST /chat/completions (stream)"


@attrs.frozen
class Wire:
    """What a flow needs of its client, read as the call starts: the key (to mask), retries, models."""

    secret: str = attrs.field(repr=False)
    max_retries: int
    backoff: Backoff
    registry: ModelRegistry

    def redact(self, text: str) -> str:
        return redact(text, self.secret)

    def spec(self, model: str | ModelSpec) -> ModelSpec:
        return get_model(model, self.registry)

    def error(self, resp: httpx.Response) -> APIError:
        """The typed error of an error answer (its body read), with the wait its ``Retry-After`` asks."""
        err = error_from_response(
            resp.status_code, resp.content, resp.headers.get("content-type", ""), secret=self.secret
        )
        err.retry_after = retry_after_seconds(resp.headers.get("retry-after"))
        return err

    def transport_error(self, exc: httpx.HTTPError, what: str) -> APIError:
        detail = self.redact(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(f"{what}: no answer within the timeout ({detail})")
        return APIConnectionError(f"{what}: connection failed ({detail})")

    def pause_or_raise(self, what: str, err: APIError, attempt: int) -> Flow[None]:
        return pause_or_raise(what, err, attempt, self.max_retries, self.backoff)


def request(
    wire: Wire, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None
) -> Flow[httpx.Response]:
    """Send until a success answer (status below 400) comes back, retrying what may pass."""
    what = f"{method} {path}"
    for attempt in itertools.count():
        got = yield Send(method, path, body, headers=headers)
        if isinstance(got, httpx.Response) and got.status_code < 400:
            return got
        err = wire.transport_error(got, what) if isinstance(got, httpx.HTTPError) else wire.error(got)
        yield from wire.pause_or_raise(what, err, attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _json(resp: httpx.Response) -> Any:
    try:
        return json.loads(resp.content)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands of levels deep
        raise ResponseFormatError(
            f"xAI answered {resp.status_code} with a body that is not JSON", status_code=resp.status_code
        ) from None


def chat(
    wire: Wire,
    /,
    messages: Sequence[MessageLike],
    *,
    model: str | ModelSpec,
    max_tokens: int | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    conv_id: str | None = None,
    **options: Any,
) -> Flow[Completion]:
    """One chat completion (``options``: other ChatRequest fields, e.g. temperature).

    ``conv_id``: an opaque, stable key of the conversation, sent as ``x-grok-conv-id`` so
    every request of one conversation reaches the server that holds its prompt cache.
    """
    spec = wire.spec(model)
    headers = conv_headers(conv_id)
    body = chat_body(messages, model=spec, max_tokens=max_tokens, tools=tools, **options)
    resp = yield from request(wire, "POST", "/chat/completions", body, headers)
    return parse_completion(_json(resp), spec)


def stream(
    wire: Wire,
    /,
    messages: Sequence[MessageLike],
    *,
    model: str | ModelSpec,
    max_tokens: int | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    conv_id: str | None = None,
    **options: Any,
) -> Flow[None]:
    """Stream a completion: TextDelta/ToolCallDelta events, then one Done with the completion.

    ``conv_id``: as for :meth:`chat` (the ``x-grok-conv-id`` cache-routing header).
    """
    spec = wire.spec(model)
    headers = conv_headers(conv_id)
    body = chat_body(messages, model=spec, max_tokens=max_tokens, tools=tools, stream=True, **options)
    for attempt in itertools.count():
        err = yield from _stream_once(wire, spec, body, headers)
        if err is None:
            return
        yield from wire.pause_or_raise(STREAM, err, attempt)


def _stream_once(
    wire: Wire, spec: ModelSpec, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> Flow[APIError | None]:
    """One attempt: ``None`` once ``Done`` is emitted; the error when it failed before the first event."""
    got = yield Send("POST", "/chat/completions", body, stream=True, headers=headers)
    if isinstance(got, httpx.HTTPError):
        return wire.transport_error(got, STREAM)
    if got.status_code >= 400:
        failed = yield ReadBody()
        return wire.transport_error(failed, STREAM) if failed is not None else wire.error(got)
    asm = StreamAssembler(spec, secret=wire.secret)
    started = False
    while not asm.done:
        line = yield ReadLine()
        if line is None:
            break
        if isinstance(line, httpx.HTTPError):
            if started:
                cut = (
                    f"the stream was cut off mid-way ({type(line).__name__}); the partial reply was not used"
                )
                raise ResponseFormatError(wire.redact(cut))
            return wire.transport_error(line, STREAM)
        for event in asm.feed_line(line):
            started = True
            yield Emit(event)
    if not (asm.done or started):
        return APIConnectionError(f"{STREAM}: the connection closed before the reply began")
    yield Emit(Done(asm.result()))  # raises when cut off after the reply began
    return None


def tokenize(wire: Wire, /, text: str, model: str | ModelSpec) -> Flow[list[int]]:
    """Token ids of ``text`` by the API's own tokenizer for ``model``."""
    spec = wire.spec(model)
    resp = yield from request(wire, "POST", "/tokenize-text", {"text": text, "model": spec.name})
    payload = _json(resp)
    if not isinstance(payload, Mapping) or not isinstance(payload.get("token_ids"), list):
        raise ResponseFormatError("tokenize-text answered without a 'token_ids' list")
    out = []
    for t in payload["token_ids"]:
        tid = t.get("token_id") if isinstance(t, Mapping) else t
        if not isinstance(tid, int):
            raise ResponseFormatError("tokenize-text answered a token without an integer token_id")
        out.append(tid)
    return out


def language_models(wire: Wire, /) -> Flow[dict[str, Any]]:
    """The raw ``GET /v1/language-models`` body."""
    resp = yield from request(wire, "GET", "/language-models")
    payload = _json(resp)
    if not isinstance(payload, dict):
        raise ResponseFormatError("language-models answered something other than an object")
    return payload


def refresh_models(wire: Wire, /, registry: ModelRegistry | None = None) -> Flow[list[ModelSpec]]:
    """Update prices, aliases and modalities of known models from the API."""
    payload = yield from language_models(wire)
    return (registry or wire.registry).update_from_language_models(payload)
