"""The stand-in's HTTP side: routing, the three endpoints, reading and writing bytes.

Internal to :mod:`convkit.testing._server` (whose docstring states the
behaviour). The handler records each request (key redacted), checks the
key, applies the first queued fault of the endpoint or answers normally,
and writes the response, optionally cut or held part-way. Streams are
written event by event with ``Connection: close`` (no chunked encoding);
other responses carry ``Content-Length`` and keep the connection alive.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import attrs

from .._errors import ConvkitError, UnknownModelError, UnsupportedInputError
from .._messages import Message
from .._models import ModelSpec
from ..xai._headers import CONV_ID_HEADER
from . import _wire
from ._items import Fault, RecordedRequest, Reply
from ._wire import CONTEXT_ERROR, SERDE_ERROR

if TYPE_CHECKING:
    from ._server import XAIStandIn

_MAX_BODY = 64 * 1024 * 1024


@attrs.frozen
class Response:
    status: int
    pieces: tuple[bytes, ...]
    content_type: str = "application/json"
    stream: bool = False
    headers: Mapping[str, str] = attrs.field(factory=dict)


def _json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    data = json.dumps(payload, ensure_ascii=False).encode()
    return Response(status, (data,), headers=dict(headers or {}))


def error_response(
    status: int, error: str | None = None, *, code: str | None = None, style: _wire.ErrorStyle = "phrase"
) -> Response:
    """A flat xAI error answer."""
    return _json_response(status, _wire.error_body(status, error, code=code, style=style))


def _text_response(status: int, text: str) -> Response:
    return Response(status, (text.encode(),), "text/plain; charset=utf-8")


def _sse(payloads: Iterable[Any]) -> tuple[bytes, ...]:
    events = [f"data: {json.dumps(p, ensure_ascii=False)}\n\n".encode() for p in payloads]
    return (*events, b"data: [DONE]\n\n")


def _type_name(value: object) -> str:
    return {dict: "map", list: "sequence", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


class _Abort(Exception):
    """The handler closed the connection on purpose (cut, or the stand-in is stopping)."""


def model_spec(standin: XAIStandIn, name: str) -> ModelSpec | Response:
    try:
        return standin.registry.get(name)
    except UnknownModelError:
        return standin._error(
            404,
            f"The model {name} does not exist or your team {standin.team_id} does not have access to it.",
        )


def chat(
    standin: XAIStandIn, body: Any, reply: Reply | None, *, take_reply: bool, conv_id: str | None = None
) -> Response:
    if not isinstance(body, dict):
        return _text_response(
            422, SERDE_ERROR + f"invalid type: {_type_name(body)}, expected struct ChatRequest"
        )
    for field in ("messages", "model"):
        if field not in body:
            return _text_response(422, SERDE_ERROR + f"missing field `{field}`")
    model, raw_messages = body["model"], body["messages"]
    if not isinstance(model, str):
        return _text_response(
            422, SERDE_ERROR + f"model: invalid type: {_type_name(model)}, expected a string"
        )
    if not isinstance(raw_messages, list):
        return _text_response(
            422, SERDE_ERROR + f"messages: invalid type: {_type_name(raw_messages)}, expected a sequence"
        )
    tools = body.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        return _text_response(422, SERDE_ERROR + "tools: invalid type, expected a sequence of tool objects")
    reserve = 0
    for field in ("max_tokens", "max_completion_tokens"):
        value = body.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            return _text_response(422, SERDE_ERROR + f"{field}: invalid value: {value!r}, expected u32")
    if body.get("max_completion_tokens") is not None:
        reserve = int(body["max_completion_tokens"])
    elif body.get("max_tokens") is not None:
        reserve = int(body["max_tokens"])
    spec = model_spec(standin, model)
    if isinstance(spec, Response):
        return spec
    if not raw_messages:
        return standin._error(400, "A chat request needs at least one message.")
    messages = []
    for i, m in enumerate(raw_messages):
        try:
            messages.append(Message.from_openai(m))
        except (ConvkitError, TypeError) as exc:
            return _text_response(422, SERDE_ERROR + f"messages[{i}]: {exc}")
    try:
        prompt = standin.counter.count_messages(messages, model=spec, tools=tools)
    except UnsupportedInputError:
        return standin._error(400, f"Image inputs are not supported by the model {spec.name}.")
    except ConvkitError as exc:
        return standin._error(400, str(exc))
    limit = max(spec.context_window - reserve, 0)
    if prompt > limit:
        return standin._error(400, CONTEXT_ERROR.format(limit=limit, tokens=prompt))
    if reply is None and take_reply:
        reply = standin._take("chat", Reply)
    if reply is not None and reply.body is not None:
        return _json_response(200, reply.body)
    if reply is None or (reply.text is None and not reply.tool_calls):
        reply = attrs.evolve(reply or Reply(), text=_default_text(messages))
    image = sum(p.tokens for m in messages for p in m.images)
    completion = _wire.completion_tokens(standin.counter, reply.text, reply.tool_calls)
    cached = standin.prompt_cache.serve(
        conv_id,
        (spec.name, json.dumps(tools, sort_keys=True)),
        raw_messages,
        _prefix_tokens(standin, spec, messages, tools),
        prompt,
    )
    usage = _wire.build_usage(
        spec,
        prompt=prompt,
        image=image,
        completion=completion,
        reasoning=reply.reasoning_tokens,
        cached=cached,
        overrides=reply.usage,
    )
    fields: dict[str, Any] = {
        "id": standin._next_id(),
        "created": int(time.time()),
        "model": spec.name,
        "text": reply.text,
        "calls": reply.tool_calls,
        "finish_reason": reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop"),
        "usage": usage,
        "reasoning_content": reply.reasoning_content,
    }
    if body.get("stream") is True:
        options = body.get("stream_options")
        include = isinstance(options, dict) and options.get("include_usage") is True
        chunks = _wire.chat_chunks(**fields, include_usage=include, tool_call_chunks=reply.tool_call_chunks)
        return Response(200, _sse(chunks), "text/event-stream", stream=True)
    return _json_response(200, _wire.chat_response(**fields))


def _prefix_tokens(
    standin: XAIStandIn, spec: ModelSpec, messages: Sequence[Message], tools: Any
) -> list[int]:
    """The prompt's tokens up to the end of each message (tool definitions come first)."""
    total = standin.counter.tools_tokens(tools)
    out = []
    for tokens in standin.counter.content_tokens(list(messages)):
        total += tokens + spec.message_overhead
        out.append(total)
    return out


def tokenize(standin: XAIStandIn, body: Any, reply: Reply | None) -> Response:
    if reply is not None and reply.body is not None:
        return _json_response(200, reply.body)
    if not isinstance(body, dict):
        return _text_response(
            422, SERDE_ERROR + f"invalid type: {_type_name(body)}, expected struct TokenizeRequest"
        )
    for field in ("text", "model"):
        if not isinstance(body.get(field), str):
            if field not in body:
                return _text_response(422, SERDE_ERROR + f"missing field `{field}`")
            return _text_response(
                422, SERDE_ERROR + f"{field}: invalid type: {_type_name(body[field])}, expected a string"
            )
    spec = model_spec(standin, body["model"])
    if isinstance(spec, Response):
        return spec
    text: str = body["text"]
    if standin.tokenizer is not None:
        tokens = _wire.hf_tokens(standin.tokenizer, text)
    else:
        tokens = _wire.fake_tokens(text, standin.counter.count_texts([text])[0] if text else 0)
    return _json_response(200, {"token_ids": tokens})


def language_models(standin: XAIStandIn, path: str, reply: Reply | None) -> Response:
    if reply is not None and reply.body is not None:
        return _json_response(200, reply.body)
    models = standin.language_models
    name = path.removeprefix("/v1/language-models").strip("/")
    if not name:
        return _json_response(200, {"models": models})
    for m in models:
        if m.get("id") == name or name in (m.get("aliases") or ()):
            return _json_response(200, m)
    return standin._error(
        404, f"The model {name} does not exist or your team {standin.team_id} does not have access to it."
    )


def _default_text(messages: Sequence[Message]) -> str:
    for m in reversed(messages):
        if m.role == "user":
            said = m.text.strip() or "[an image]"
            if len(said) > 200:
                said = said[:200] + "…"
            return f"You said: {said}"
    return "Hello from the xAI stand-in."


def _route(method: str, path: str) -> str | None:
    if method == "POST" and path == "/v1/chat/completions":
        return "chat"
    if method == "POST" and path == "/v1/tokenize-text":
        return "tokenize"
    if method == "GET" and (path == "/v1/language-models" or path.startswith("/v1/language-models/")):
        return "language-models"
    return None


class Server(ThreadingHTTPServer):
    """Tracks each connection and its thread so that stop() can close and join them."""

    daemon_threads = True
    block_on_close = False
    #: many clients connect at once in load tests; the default backlog of 5 stalls them
    request_queue_size = 128
    standin: XAIStandIn

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self._live: dict[socket.socket, threading.Thread] = {}
        self._live_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self._live_lock:
            self._live[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._live_lock:
            self._live.pop(request, None)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._live_lock:
            sockets = list(self._live)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def join_handlers(self, timeout: float) -> None:
        with self._live_lock:
            threads = list(self._live.values())
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small writes go out at once (else ~40 ms per request)
    server_version = "convkit-xai-standin"
    sys_version = ""
    server: Server
    _started = False

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    # -- one request ---------------------------------------------------------------------
    def _serve(self) -> None:
        standin = self.server.standin
        self._started = False
        try:
            self._handle(standin)
        except _Abort:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client went away
        except Exception as exc:
            standin._record_error(exc)
            self.close_connection = True
            if not self._started:  # mid-body there is nothing sensible left to send
                with contextlib.suppress(OSError):
                    self._write(standin._error(500, "Internal error in the xAI stand-in."))

    def _handle(self, standin: XAIStandIn) -> None:
        raw = self._read_body()
        if raw is None:
            return
        path = urlsplit(self.path).path
        endpoint = _route(self.command, path)
        body = self._record(standin, raw, endpoint)
        auth = self.headers.get("Authorization")
        if not standin._key_ok(auth):
            self._write(standin._wrong_key(auth))
            return
        if endpoint is None:
            self._write(standin._error(404, f"No handler for {self.command} {path}."))
            return
        fault: Fault | None = standin._take(endpoint, Fault)
        streaming = endpoint == "chat" and isinstance(body, dict) and body.get("stream") is True
        if fault is None:
            self._write(self._respond(standin, endpoint, path, body, None, take_reply=True))
        elif fault.kind == "status":
            error = standin._error(fault.http_status, fault.error, fault.code)
            self._write(attrs.evolve(error, headers=fault.headers))
        elif fault.kind == "wrong_key":
            self._write(standin._wrong_key(auth))
        elif fault.kind == "plain_422":
            self._write(_text_response(422, fault.text))
        elif fault.kind == "malformed_json":
            if streaming:
                self._write(
                    Response(200, (b"data: {not json\n\n", b"data: [DONE]\n\n"), "text/event-stream", True)
                )
            else:
                self._write(Response(200, (b'{"id": "malformed", "choices": [{"index": 0, "message": ',)))
        elif fault.kind == "drop":
            response = self._respond(standin, endpoint, path, body, fault.reply, take_reply=False)
            self._write(response, cut_after=fault.after_chunks, reset=fault.reset)
        else:  # slow
            assert fault.release is not None
            if fault.after_chunks is None:
                if not standin._hold(fault.release):
                    self._cut(reset=True)
                response = self._respond(standin, endpoint, path, body, fault.reply, take_reply=False)
                self._write(response)
            else:
                response = self._respond(standin, endpoint, path, body, fault.reply, take_reply=False)
                self._write(response, hold_after=fault.after_chunks, release=fault.release)

    def _respond(
        self,
        standin: XAIStandIn,
        endpoint: str,
        path: str,
        body: Any,
        reply: Reply | None,
        *,
        take_reply: bool,
    ) -> Response:
        if body is _BAD_JSON:
            return _text_response(400, "Failed to parse the request body as JSON.")
        if endpoint == "chat":
            conv_id = self.headers.get(CONV_ID_HEADER)
            return chat(standin, body, reply, take_reply=take_reply, conv_id=conv_id)
        if reply is None and take_reply:
            reply = standin._take(endpoint, Reply)
        if endpoint == "tokenize":
            return tokenize(standin, body, reply)
        return language_models(standin, path, reply)

    # -- reading ----------------------------------------------------------------------------
    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        try:
            length = int(length_header) if length_header else 0
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self.close_connection = True
            self._write(_text_response(413 if length > _MAX_BODY else 400, "Bad Content-Length."))
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes | None:
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024).split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                size = -1
            total += max(size, 0)
            if size < 0 or total > _MAX_BODY:
                self.close_connection = True
                self._write(_text_response(400, "Bad chunked body."))
                return None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _record(self, standin: XAIStandIn, raw: bytes, endpoint: str | None) -> Any:
        key = standin.api_key
        seen = False
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            lname = name.lower()
            if lname == "authorization":
                scheme = value.strip().partition(" ")[0]
                headers[lname] = f"{scheme} ***" if scheme.lower() == "bearer" else "***"
                continue
            seen = seen or key in value
            headers[lname] = value.replace(key, "***")
        path = self.path
        if key in path:
            seen, path = True, path.replace(key, "***")
        if key.encode() in raw:
            seen, raw = True, raw.replace(key.encode(), b"***")
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = _BAD_JSON
        standin._record(
            RecordedRequest(
                self.command,
                path,
                headers,
                None if body is _BAD_JSON else body,
                raw,
                endpoint,
                seen,
            )
        )
        return body

    # -- writing ----------------------------------------------------------------------------
    def _write(
        self,
        response: Response,
        *,
        cut_after: int | None = None,
        reset: bool = True,
        hold_after: int | None = None,
        release: threading.Event | None = None,
    ) -> None:
        pieces = response.pieces
        partial = cut_after is not None or hold_after is not None
        if partial and not response.stream:
            data = b"".join(pieces)
            pieces = (data[: len(data) // 2], data[len(data) // 2 :])
        last = len(pieces) - 1  # never [DONE] / the second half before a cut or hold
        self._started = True
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.stream:
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(sum(len(p) for p in pieces)))
        self.end_headers()
        for i, piece in enumerate(pieces):
            if cut_after is not None and i >= min(cut_after, last):
                self._cut(reset=reset)
            if hold_after is not None and i == min(hold_after, last):
                assert release is not None
                if not self.server.standin._hold(release):
                    self._cut(reset=True)
            self.wfile.write(piece)
        self.wfile.flush()

    def _cut(self, *, reset: bool) -> NoReturn:
        """Close the connection now: a TCP reset, or a clean FIN; raises _Abort."""
        self.close_connection = True
        sock = self.connection
        with contextlib.suppress(OSError):
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()  # the real close (a RST) happens when rfile/wfile are closed in finish()
            else:
                sock.shutdown(socket.SHUT_RDWR)
        raise _Abort


_BAD_JSON: Any = object()
