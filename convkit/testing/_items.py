"""What tests script and read back: :class:`Reply`, :class:`Fault`, :class:`RecordedRequest`.

Frozen values. A queued Reply or Fault answers the next request of its
``endpoint`` (``"chat"`` by default, or ``"tokenize"``,
``"language-models"``, ``"any"``), first in, first out. A RecordedRequest
never holds the API key.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeAlias

import attrs

from ._wire import SERDE_ERROR

__all__ = ["Endpoint", "Fault", "FaultKind", "RecordedRequest", "Reply"]

#: Which requests a queued item answers: one endpoint, or ``"any"``.
Endpoint: TypeAlias = Literal["chat", "tokenize", "language-models", "any"]
_ENDPOINTS = ("chat", "tokenize", "language-models", "any")


def _check_endpoint(_inst: object, _attr: object, value: str) -> None:
    if value not in _ENDPOINTS:
        raise ValueError(f"endpoint must be one of {', '.join(_ENDPOINTS)}; got {value!r}")


def _to_calls(value: Iterable[Any] | None) -> tuple[dict[str, str], ...]:
    """Tool calls as ``{"id", "name", "arguments"}`` from that shape, OpenAI's, or a ToolCall."""
    out = []
    for i, item in enumerate(value or ()):
        c = item.to_openai() if hasattr(item, "to_openai") else item
        if not isinstance(c, Mapping):
            raise TypeError(f"a tool call is a dict or convkit.ToolCall, got {type(c).__name__}")
        fn = c.get("function")
        name = fn.get("name") if isinstance(fn, Mapping) else c.get("name")
        args = fn.get("arguments") if isinstance(fn, Mapping) else c.get("arguments", "{}")
        if not isinstance(args, str):  # a dict is sent as its compact JSON text
            args = json.dumps(args, separators=(",", ":"))
        if not isinstance(name, str) or not name:
            raise ValueError(f"tool call {i} needs a non-empty name")
        out.append({"id": str(c.get("id") or f"call_{i}"), "name": name, "arguments": args})
    return tuple(out)


def _frozen_headers(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return None if value is None else dict(value)


@attrs.frozen
class Reply:
    """A scripted successful answer, used by the next matching request (FIFO).

    For chat: ``text`` (``None`` with no tool calls: the default reply), tool
    calls as ``{"id", "name", "arguments"}`` dicts (arguments JSON text, sent
    verbatim even when invalid, or a dict that is dumped), OpenAI-shaped
    dicts or :class:`convkit.ToolCall`; ``finish_reason`` (default
    ``"tool_calls"`` with calls, else ``"stop"``); ``reasoning_tokens`` and
    ``reasoning_content``; ``usage`` overrides merged into the computed usage
    (nested ``*_details`` merge too; totals and cost follow unless given);
    ``tool_call_chunks``, how many stream chunks each call's arguments are
    cut into (1 sends a call whole, as xAI does).

    ``body`` replaces the whole JSON body (200) on any endpoint, for
    unexpected-but-valid-JSON shapes or a custom tokenize answer.
    """

    text: str | None = None
    tool_calls: tuple[dict[str, str], ...] = attrs.field(default=(), converter=_to_calls)
    finish_reason: str | None = None
    reasoning_tokens: int = 0
    reasoning_content: str | None = None
    usage: Mapping[str, Any] | None = attrs.field(default=None, converter=_frozen_mapping)
    body: Any = None
    tool_call_chunks: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    endpoint: Endpoint = attrs.field(default="chat", validator=_check_endpoint)


FaultKind: TypeAlias = Literal["status", "wrong_key", "plain_422", "malformed_json", "drop", "slow"]


@attrs.frozen
class Fault:
    """A scripted failure for the next matching request; build one with the class methods."""

    kind: FaultKind
    http_status: int = 0
    code: str | None = None
    error: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_headers)
    text: str = ""
    after_chunks: int | None = None
    reset: bool = False
    release: threading.Event | None = attrs.field(default=None, eq=False)
    reply: Reply | None = None
    endpoint: Endpoint = attrs.field(default="chat", validator=_check_endpoint)

    @classmethod
    def status(
        cls,
        http_status: int,
        *,
        code: str | None = None,
        error: str | None = None,
        headers: Mapping[str, str] | None = None,
        endpoint: Endpoint = "chat",
    ) -> Fault:
        """An HTTP error with xAI's flat body ``{"code": ..., "error": ...}`` (defaults per status)."""
        if not 400 <= http_status <= 599:
            raise ValueError(f"Fault.status takes a 4xx or 5xx status, got {http_status}")
        return cls("status", http_status, code, error, headers or {}, endpoint=endpoint)

    @classmethod
    def wrong_key(cls, *, endpoint: Endpoint = "chat") -> Fault:
        """400 "Incorrect API key provided: <masked key>. ..." even for the right key."""
        return cls("wrong_key", 400, endpoint=endpoint)

    @classmethod
    def plain_422(
        cls, text: str = SERDE_ERROR + "missing field `messages`", *, endpoint: Endpoint = "chat"
    ) -> Fault:
        """422 with a ``text/plain`` body, as xAI answers bodies it cannot deserialize."""
        return cls("plain_422", 422, text=text, endpoint=endpoint)

    @classmethod
    def malformed_json(cls, *, endpoint: Endpoint = "chat") -> Fault:
        """200 whose body is not JSON; streaming: a ``data: {not json`` event, then ``[DONE]``."""
        return cls("malformed_json", 200, endpoint=endpoint)

    @classmethod
    def drop_mid_stream(
        cls,
        after_chunks: int = 2,
        *,
        reset: bool = False,
        reply: Reply | None = None,
        endpoint: Endpoint = "chat",
    ) -> Fault:
        """Cut the connection part-way, never sending ``[DONE]`` (or the whole body).

        Streaming: the headers and ``after_chunks`` SSE events (at most all but
        ``[DONE]``) of ``reply`` (default: the default reply), then the cut.
        Otherwise: the headers (announcing the full length), then half of the
        body when ``after_chunks >= 1``, then the cut.

        By default the socket is closed cleanly (FIN): every event sent
        arrives and the stream simply ends without ``[DONE]`` (a non-streaming
        body ends short of its ``Content-Length``: httpx raises
        ``RemoteProtocolError``). ``reset=True`` closes with a TCP reset
        instead: the client gets a connection error (httpx ``ReadError``),
        and its kernel may discard events it had not read yet.
        """
        if after_chunks < 0:
            raise ValueError("after_chunks must be >= 0")
        return cls("drop", after_chunks=after_chunks, reset=reset, reply=reply, endpoint=endpoint)

    @classmethod
    def slow(
        cls,
        release: threading.Event,
        *,
        after_chunks: int | None = None,
        reply: Reply | None = None,
        endpoint: Endpoint = "chat",
    ) -> Fault:
        """Hold the response until ``release`` is set (or the stand-in stops).

        With ``after_chunks=None`` nothing is sent until then, after which
        the request is handled normally (without taking a queued Reply:
        ``reply``, or the default reply, answers it). With ``after_chunks=k``
        the headers and ``k`` SSE events are sent first (non-streaming: ``k``
        of the body's two halves), so a client's read timeout fires mid-body.
        When the stand-in stops while a response is held it sets ``release``
        and closes that connection without answering.
        """
        if not isinstance(release, threading.Event):
            raise TypeError("Fault.slow needs a threading.Event")
        if after_chunks is not None and after_chunks < 0:
            raise ValueError("after_chunks must be >= 0")
        return cls("slow", after_chunks=after_chunks, release=release, reply=reply, endpoint=endpoint)


@attrs.frozen
class RecordedRequest:
    """One request the stand-in received, with the API key redacted everywhere.

    ``headers`` has lower-case names; ``json`` is the decoded body or
    ``None``; ``raw`` the body bytes; ``endpoint`` is ``"chat"``,
    ``"tokenize"``, ``"language-models"`` or ``None`` for an unknown route;
    ``key_seen`` is True when the key appeared outside the Authorization
    header (in the path, another header or the body) and was masked there.
    """

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    raw: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    endpoint: str | None = None
    key_seen: bool = False
