"""The xAI wire protocol, as pure functions: request bodies, responses, SSE, errors.

Nothing here does I/O, so the sync and async clients share all of it.

* :func:`chat_body` builds a ``POST /v1/chat/completions`` body that
  validates against the official ``ChatRequest`` schema.
* :func:`parse_completion` reads a ``ChatResponse`` into a :class:`Completion`
  (the assistant :class:`~convkit._messages.Message`, finish reason,
  :class:`Usage` and cost), raising :class:`ResponseFormatError` for any other
  shape.
* :class:`StreamAssembler` consumes SSE ``data:`` payloads, yields
  :class:`TextDelta` / :class:`ToolCallDelta` events and assembles the same
  :class:`Completion` at ``[DONE]``; a stream that ends before ``[DONE]`` is
  an error, never a partial message passed off as complete.
* :func:`error_from_response` maps xAI's flat error bodies (``{"code",
  "error"}``, or plain text for 422) to the typed tree; the 400 "maximum
  prompt length is N but the request contains M tokens" becomes a
  :class:`PromptTooLongError` carrying N and M.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from .._errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    PromptTooLongError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    ValidationError,
)
from .._messages import CUT_OFF, Message, MessageLike, ToolCall, as_messages
from .._models import ModelSpec, get_model

__all__ = [
    "Completion",
    "Done",
    "StreamAssembler",
    "StreamEvent",
    "TextDelta",
    "ToolCallDelta",
    "Usage",
    "chat_body",
    "error_from_response",
    "parse_completion",
    "redact",
]

_PROMPT_TOO_LONG = re.compile(r"maximum prompt length is (\d+) but the request contains (\d+) tokens")
_WRONG_KEY = re.compile(r"incorrect api key|invalid api key|no api key", re.I)


@attrs.frozen
class Usage:
    """Token usage of one completion, as xAI reports it."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    text_tokens: int = 0
    image_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens + self.reasoning_tokens

    def cost(self, spec: ModelSpec) -> float:
        """US dollars xAI bills for this usage on ``spec``: cached prompt tokens at the cached
        price, reasoning tokens as completion tokens, a tier's rates when the prompt reaches it."""
        return spec.estimate_cost(
            self.prompt_tokens,
            self.completion_tokens,
            image_tokens=self.image_tokens,
            cached_tokens=self.cached_tokens,
            reasoning_tokens=self.reasoning_tokens,
        )

    @classmethod
    def from_api(cls, d: object) -> Usage:
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise ResponseFormatError("usage is not an object")
        pd = d.get("prompt_tokens_details") or {}
        cd = d.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=_int(d.get("prompt_tokens")),
            completion_tokens=_int(d.get("completion_tokens")),
            text_tokens=_int(pd.get("text_tokens")) if isinstance(pd, Mapping) else 0,
            image_tokens=_int(pd.get("image_tokens")) if isinstance(pd, Mapping) else 0,
            cached_tokens=_int(pd.get("cached_tokens")) if isinstance(pd, Mapping) else 0,
            reasoning_tokens=_int(cd.get("reasoning_tokens")) if isinstance(cd, Mapping) else 0,
        )


def _int(v: object) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


@attrs.frozen
class Completion:
    """One chat completion: the assistant message, why it stopped, usage and cost (USD).

    ``finish_reason`` is xAI's: ``"stop"`` (the reply ended), ``"tool_calls"``, or ``"length"``:
    the reply was cut off at ``max_tokens`` (or the context window), so ``text`` is only its
    beginning, and may be empty when the budget went to reasoning before any text. That empty
    reply is still a reply (billed, with its usage): its message is an empty assistant message
    whose metadata is :data:`~convkit._messages.CUT_OFF` (``{"finish_reason": "length"}``), and a
    session stores it as the turn's reply like any other. ``truncated`` says so.
    """

    message: Message
    finish_reason: str | None
    usage: Usage
    model: str
    id: str = ""
    cost_usd: float = 0.0

    @property
    def text(self) -> str:
        return self.message.text

    @property
    def truncated(self) -> bool:
        """Whether the reply was cut off at the token limit (``finish_reason == "length"``)."""
        return self.finish_reason == "length"

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return self.message.tool_calls


@attrs.frozen
class TextDelta:
    """A piece of the reply's text, as it streams."""

    text: str


@attrs.frozen
class ToolCallDelta:
    """A piece of a tool call: its index, and the id/name/arguments text it adds."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@attrs.frozen
class Done:
    """The last event of a stream: the assembled completion with its usage."""

    completion: Completion


StreamEvent = TextDelta | ToolCallDelta | Done


def chat_body(
    messages: Sequence[MessageLike],
    *,
    model: str | ModelSpec,
    max_tokens: int | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    temperature: float | None = None,
    stream: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A ``ChatRequest`` body; ``extra`` passes other ChatRequest fields through."""
    spec = get_model(model)
    msgs = as_messages(messages)
    if not msgs:
        raise ValidationError("a chat request needs at least one message")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise ValidationError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    body: dict[str, Any] = {"model": spec.name, "messages": [m.to_openai() for m in msgs]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if tools:
        body["tools"] = [dict(t) for t in tools]
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if temperature is not None:
        body["temperature"] = temperature
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    for key, value in extra.items():
        if value is not None:
            body[key] = value
    return body


def _reply(content: str | None, calls: tuple[ToolCall, ...], finish_reason: object) -> Message:
    """The assistant's reply; one cut off by ``max_tokens`` before any text or tool call
    (``finish_reason: "length"``, its tokens billed) is the empty reply it is, marked
    :data:`~convkit._messages.CUT_OFF`, not a malformed response."""
    if not content and not calls and finish_reason == "length":
        return Message("assistant", None, metadata=CUT_OFF)
    return Message("assistant", content or None, calls)


def _message_from_api(d: object, finish_reason: object = None) -> Message:
    if not isinstance(d, Mapping):
        raise ResponseFormatError("choices[0].message is not an object")
    calls = []
    for c in d.get("tool_calls") or ():
        fn = c.get("function") if isinstance(c, Mapping) else None
        if not isinstance(fn, Mapping):
            raise ResponseFormatError("a tool call in the response has no function")
        args = fn.get("arguments")
        calls.append(
            ToolCall(
                id=str(c.get("id") or ""),
                name=str(fn.get("name") or ""),
                arguments=args if isinstance(args, str) else "{}",
                type=str(c.get("type") or "function"),
            )
        )
    content = d.get("content")
    if content is not None and not isinstance(content, str):
        raise ResponseFormatError("choices[0].message.content is not a string")
    return _reply(content, tuple(calls), finish_reason)


def parse_completion(payload: object, spec: ModelSpec) -> Completion:
    """A :class:`Completion` from a ChatResponse body (already JSON-decoded)."""
    try:
        if not isinstance(payload, Mapping):
            raise ResponseFormatError("the response is not a JSON object")
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise ResponseFormatError("the response has no choices")
        choice = choices[0]
        message = _message_from_api(choice.get("message"), choice.get("finish_reason"))
        usage = Usage.from_api(payload.get("usage"))
    except (ValidationError, TypeError, AttributeError) as exc:
        if isinstance(exc, ResponseFormatError):
            raise
        raise ResponseFormatError(f"unexpected chat response shape: {exc}") from None
    return Completion(
        message=message,
        finish_reason=choice.get("finish_reason"),
        usage=usage,
        model=str(payload.get("model") or spec.name),
        id=str(payload.get("id") or ""),
        cost_usd=usage.cost(spec),
    )


class StreamAssembler:
    """Turns SSE ``data:`` payloads into events and, at ``[DONE]``, a :class:`Completion`."""

    def __init__(self, spec: ModelSpec, *, secret: str | None = None) -> None:
        self._spec = spec
        self._secret = secret  # masked in the error an error event becomes
        self._text: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self._finish: str | None = None
        self._usage: object = None
        self._id = ""
        self._model = spec.name
        self.done = False
        self.completion: Completion | None = None

    def feed_line(self, line: str) -> Iterator[StreamEvent]:
        """Feed one line of the event stream (``data: ...``; other lines are ignored)."""
        if not line.startswith("data:"):
            return
        data = line[5:].strip()
        if data == "[DONE]":
            self.completion = self._finish_completion()
            self.done = True
            return
        if self.done:
            raise ResponseFormatError("data after [DONE] in the event stream")
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: nested thousands of levels deep
            raise ResponseFormatError("an event in the stream is not valid JSON") from None
        if not isinstance(chunk, Mapping):
            raise ResponseFormatError("an event in the stream is not a JSON object")
        if "error" in chunk and "choices" not in chunk:
            raise error_from_response(
                200, json.dumps(chunk).encode(), "application/json", secret=self._secret
            )
        self._id = str(chunk.get("id") or self._id)
        self._model = str(chunk.get("model") or self._model)
        if chunk.get("usage") is not None:
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
            delta = choice.get("delta") or {}
            if not isinstance(delta, Mapping):
                raise ResponseFormatError("a stream delta is not an object")
            text = delta.get("content")
            if isinstance(text, str) and text:
                self._text.append(text)
                yield TextDelta(text)
            for tc in delta.get("tool_calls") or ():
                if not isinstance(tc, Mapping):
                    raise ResponseFormatError("a streamed tool call is not an object")
                index = tc.get("index")
                index = index if isinstance(index, int) else len(self._calls)
                fn = tc.get("function") or {}
                slot = self._calls.setdefault(
                    index, {"id": None, "name": None, "arguments": [], "type": "function"}
                )
                if tc.get("id"):
                    slot["id"] = tc["id"]
                if tc.get("type"):
                    slot["type"] = tc["type"]
                if fn.get("name"):
                    slot["name"] = fn["name"]
                args = fn.get("arguments") or ""
                slot["arguments"].append(args)
                yield ToolCallDelta(index, tc.get("id"), fn.get("name"), args)

    def _finish_completion(self) -> Completion:
        try:
            calls = tuple(
                ToolCall(
                    id=str(c["id"] or ""),
                    name=str(c["name"] or ""),
                    arguments="".join(c["arguments"]) or "{}",
                    type=str(c["type"]),
                )
                for _, c in sorted(self._calls.items())
            )
            message = _reply("".join(self._text), calls, self._finish)
        except ValidationError as exc:
            raise ResponseFormatError(f"the streamed reply is not a valid message: {exc}") from None
        usage = Usage.from_api(self._usage)
        return Completion(
            message=message,
            finish_reason=self._finish,
            usage=usage,
            model=self._model,
            id=self._id,
            cost_usd=usage.cost(self._spec),
        )

    def result(self) -> Completion:
        """The assembled completion; raises when the stream ended before ``[DONE]``."""
        if not self.done or self.completion is None:
            raise ResponseFormatError(
                "the event stream ended before [DONE]; the reply is incomplete and was not used"
            )
        return self.completion


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` (and its long prefixes) masked."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text


def error_from_response(
    status: int, body: bytes, content_type: str, *, secret: str | None = None
) -> APIError:
    """The typed error for an xAI error answer (flat JSON body or plain text)."""
    raw = body.decode("utf-8", "replace").strip()
    code: str | None = None
    message = raw
    if "json" in content_type or raw.startswith("{"):
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, Mapping):
            err = parsed.get("error")
            if isinstance(err, Mapping):  # OpenAI-style nesting, accepted too
                code = str(err.get("code") or err.get("type") or "") or None
                message = str(err.get("message") or "")
            else:
                code = str(parsed.get("code")) if parsed.get("code") is not None else None
                message = str(err if err is not None else parsed.get("message", raw))
    message = redact(message[:2000], secret) or f"HTTP {status}"
    code = redact(code[:200], secret) if code is not None else None
    text = f"xAI answered {status}: {message}" + (f" (code: {code})" if code else "")
    m = _PROMPT_TOO_LONG.search(message)
    if m:
        return PromptTooLongError(
            text, limit=int(m.group(1)), requested=int(m.group(2)), status_code=status, code=code
        )
    if status == 401 or (status == 400 and _WRONG_KEY.search(message)):
        return AuthenticationError(text + ". Check XAI_API_KEY.", status_code=status, code=code)
    kinds: dict[int, type[APIError]] = {
        400: BadRequestError,
        403: PermissionDeniedError,
        404: NotFoundError,
        422: BadRequestError,
        429: RateLimitError,
    }
    if status in kinds:
        return kinds[status](text, status_code=status, code=code)
    if status >= 500:
        return ServerError(text, status_code=status, code=code)
    if 400 <= status < 500:
        return BadRequestError(text, status_code=status, code=code)
    return ResponseFormatError(text, status_code=status, code=code)
