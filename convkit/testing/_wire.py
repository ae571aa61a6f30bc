"""xAI's wire shapes as the stand-in writes them: pure functions, no I/O.

Error bodies are flat, ``{"code": ..., "error": ...}``; ``code`` is the long
gRPC phrase xAI has long sent ("Client specified an invalid argument") or,
with ``style="slug"``, the newer short form ("invalid-argument"). Prices are
US cents per 100 million tokens, so one token at price ``p`` costs exactly
``p`` ticks (1 cent is 10^8 ticks): a usage's ``cost_in_usd_ticks`` is an
exact integer. Chat bodies follow the OpenAPI ``ChatResponse`` and
``ChatResponseChunk`` schemas; a streamed reply is the role delta, the
reasoning and content pieces, the tool-call deltas, the finish chunk, and
(when asked) a usage chunk with no choices.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

from .._counting import TOOL_CALL_OVERHEAD, TokenCounter
from .._models import ModelSpec

__all__ = [
    "CONTEXT_ERROR",
    "SERDE_ERROR",
    "WRONG_KEY_ERROR",
    "ErrorStyle",
    "build_usage",
    "cents_per_100m",
    "chat_chunks",
    "chat_response",
    "completion_tokens",
    "error_body",
    "error_code",
    "fake_tokens",
    "hf_tokens",
    "language_model",
    "mask_key",
    "split_even",
    "split_words",
]

ErrorStyle: TypeAlias = Literal["phrase", "slug"]

#: How xAI's 422 ``text/plain`` answers to a body it cannot deserialize begin.
SERDE_ERROR = "Failed to deserialize the JSON body into the target type: "
#: The sentence xAI sends (HTTP 400) when a prompt is longer than the model takes.
CONTEXT_ERROR = "This model's maximum prompt length is {limit} but the request contains {tokens} tokens."
#: The sentence xAI sends (HTTP 400) for a wrong or missing API key; ``{masked}`` never holds the key.
WRONG_KEY_ERROR = "Incorrect API key provided: {masked}. You can obtain an API key from https://console.x.ai."

_PHRASES = {
    400: "Client specified an invalid argument",
    401: "The request does not have valid authentication credentials for the operation",
    403: "The caller does not have permission to execute the specified operation",
    404: "Some requested entity was not found",
    408: "The deadline expired before the operation could complete",
    409: "The operation was aborted",
    429: "Some resource has been exhausted",
    500: "Internal error",
    501: "The operation is not implemented or is not supported/enabled in this service",
    503: "The service is currently unavailable",
    504: "The deadline expired before the operation could complete",
}
_SLUGS = {
    400: "invalid-argument",
    401: "unauthenticated",
    403: "permission-denied",
    404: "not-found",
    408: "deadline-exceeded",
    409: "aborted",
    429: "resource-exhausted",
    500: "internal",
    501: "unimplemented",
    503: "unavailable",
    504: "deadline-exceeded",
}
_MESSAGES = {
    400: "Bad request.",
    401: "Unauthenticated.",
    403: "Your team does not have permission to perform this operation.",
    404: "The requested resource was not found.",
    429: "Too many requests: your team has exceeded its rate limit. Please slow down and retry later.",
    500: "Internal server error. Please retry later.",
    502: "Bad gateway. Please retry later.",
    503: "The service is temporarily unavailable. Please retry later.",
    504: "Gateway timeout. Please retry later.",
}


def error_code(status: int, style: ErrorStyle = "phrase") -> str:
    """xAI's ``code`` for an HTTP status, in the long-phrase or short-slug style."""
    if style == "slug":
        return _SLUGS.get(status, "unknown")
    return _PHRASES.get(status, "Unknown error")


def error_body(
    status: int, error: str | None = None, *, code: str | None = None, style: ErrorStyle = "phrase"
) -> dict[str, str]:
    """A flat xAI error body ``{"code": ..., "error": ...}``."""
    return {
        "code": code if code is not None else error_code(status, style),
        "error": error if error is not None else _MESSAGES.get(status, f"HTTP {status}."),
    }


def mask_key(key: str) -> str:
    """``te***ey`` for ``test-key``, as xAI masks keys; short keys become ``***``."""
    if len(key) < 6:
        return "***"
    return f"{key[:2]}***{key[-2:]}"


def cents_per_100m(dollars_per_million: float | None) -> int:
    """US dollars per 1M tokens -> US cents per 100M tokens ($2.00/M -> 20000)."""
    if dollars_per_million is None:
        return 0
    return round(dollars_per_million * 10_000)


def language_model(spec: ModelSpec, *, created: int = 1733961600) -> dict[str, Any]:
    """A ``LanguageModel`` entry of ``GET /v1/language-models`` for a registered model."""
    text_price = cents_per_100m(spec.price_text_in)
    return {
        "id": spec.name,
        "fingerprint": "fp_standin",
        "created": created,
        "object": "model",
        "owned_by": "xai",
        "version": "1.0",
        "input_modalities": sorted(spec.input_modalities, key=lambda m: (m != "text", m)),
        "output_modalities": ["text"],
        "prompt_text_token_price": text_price,
        "cached_prompt_text_token_price": (
            cents_per_100m(spec.price_cached_in) if spec.price_cached_in is not None else text_price
        ),
        "prompt_image_token_price": cents_per_100m(spec.price_image_in),
        "completion_text_token_price": cents_per_100m(spec.price_completion),
        "search_price": 0,
        "aliases": list(spec.aliases),
    }


# -- tokens ---------------------------------------------------------------------------


def split_even(data: bytes, n: int) -> list[bytes]:
    """``data`` cut into ``n`` consecutive pieces of near-equal size (empty pieces past its end)."""
    if n <= 0:
        return []
    size, extra = divmod(len(data), n)
    out: list[bytes] = []
    start = 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(data[start:end])
        start = end
    return out


def fake_tokens(text: str, count: int) -> list[dict[str, Any]]:
    """``count`` deterministic pseudo-tokens covering ``text``'s UTF-8 bytes.

    Used when the stand-in has no tokenizer: ``count`` is its counter's
    count of ``text``, so ``POST /v1/tokenize-text`` agrees with the
    ``usage.prompt_tokens`` it reports. A piece may cut a multi-byte
    character; ``token_bytes`` is then the truth and ``string_token`` shows
    U+FFFD for the cut bytes, as the API does for partial tokens.
    """
    out = []
    for piece in split_even(text.encode("utf-8"), count):
        out.append(
            {
                "token_id": zlib.crc32(piece) % 131072,
                "string_token": piece.decode("utf-8", "replace"),
                "token_bytes": list(piece),
            }
        )
    return out


def hf_tokens(tokenizer: Any, text: str) -> list[dict[str, Any]]:
    """Tokens of a HuggingFace ``tokenizers.Tokenizer`` (no special tokens), in the API's shape."""
    enc = tokenizer.encode(text, add_special_tokens=False)
    out = []
    for token_id, (start, end) in zip(enc.ids, enc.offsets, strict=True):
        piece = text[start:end]
        out.append({"token_id": int(token_id), "string_token": piece, "token_bytes": list(piece.encode())})
    return out


def completion_tokens(counter: TokenCounter, text: str | None, calls: Sequence[Mapping[str, str]]) -> int:
    """Completion tokens of a reply: its text, and each call's name and arguments plus overhead."""
    texts = [text or ""]
    for c in calls:
        texts.extend((c["name"], c["arguments"]))
    return sum(counter.count_texts(texts)) + TOOL_CALL_OVERHEAD * len(calls)


def build_usage(
    spec: ModelSpec,
    *,
    prompt: int,
    image: int,
    completion: int,
    reasoning: int,
    cached: int = 0,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``Usage`` object; ``overrides`` replace fields, derived fields follow unless also given.

    ``total_tokens`` is prompt + completion + reasoning (xAI counts reasoning
    outside ``completion_tokens``); ``text_tokens`` is prompt - image; the cost
    bills reasoning at the completion price and ``cached`` prompt tokens (served
    from the prompt cache) at the cached-input price.
    """
    top = dict(overrides or {})
    p_over = dict(top.pop("prompt_tokens_details", None) or {})
    c_over = dict(top.pop("completion_tokens_details", None) or {})
    prompt = int(top.get("prompt_tokens", prompt))
    completion = int(top.get("completion_tokens", completion))
    image = int(p_over.get("image_tokens", image))
    reasoning = int(c_over.get("reasoning_tokens", reasoning))
    text = int(p_over.get("text_tokens", max(prompt - image, 0)))
    cached = min(int(p_over.get("cached_tokens", cached)), text)
    cached_price = spec.price_cached_in
    ticks = (
        (text - cached) * cents_per_100m(spec.price_text_in)
        + cached * cents_per_100m(cached_price if cached_price is not None else spec.price_text_in)
        + image
        * cents_per_100m(spec.price_image_in if spec.price_image_in is not None else spec.price_text_in)
        + (completion + reasoning) * cents_per_100m(spec.price_completion)
    )
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion + reasoning,
        "prompt_tokens_details": {
            "text_tokens": text,
            "audio_tokens": 0,
            "image_tokens": image,
            "cached_tokens": cached,
        },
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
        "num_sources_used": 0,
        "cost_in_usd_ticks": ticks,
    }
    usage.update(top)
    usage["prompt_tokens_details"].update(p_over)
    usage["completion_tokens_details"].update(c_over)
    return usage


# -- chat bodies ------------------------------------------------------------------------


def _openai_call(call: Mapping[str, str]) -> dict[str, Any]:
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": call["name"], "arguments": call["arguments"]},
    }


def chat_response(
    *,
    id: str,
    created: int,
    model: str,
    text: str | None,
    calls: Sequence[Mapping[str, str]],
    finish_reason: str,
    usage: Mapping[str, Any],
    reasoning_content: str | None = None,
) -> dict[str, Any]:
    """A ``ChatResponse`` body with one choice."""
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if calls:
        message["tool_calls"] = [_openai_call(c) for c in calls]
    if reasoning_content is not None:
        message["reasoning_content"] = reasoning_content
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": dict(usage),
        "system_fingerprint": "fp_standin",
    }


_WORD = re.compile(r"\S+\s*|\s+")


def split_words(text: str) -> list[str]:
    """Pieces of ``text`` (a word and its trailing space each) that join back to it; >= 2 when possible."""
    pieces = _WORD.findall(text)
    if len(pieces) == 1 and len(text) >= 2:
        half = len(text) // 2
        pieces = [text[:half], text[half:]]
    return pieces


def _split_chars(text: str, n: int) -> list[str]:
    """``text`` in ``n`` non-empty pieces (fewer when it is shorter; ``[""]`` for empty text)."""
    n = max(1, min(n, len(text)))
    size, extra = divmod(len(text), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return out


def chat_chunks(
    *,
    id: str,
    created: int,
    model: str,
    text: str | None,
    calls: Sequence[Mapping[str, str]],
    finish_reason: str,
    usage: Mapping[str, Any],
    reasoning_content: str | None = None,
    include_usage: bool = False,
    tool_call_chunks: int = 2,
) -> list[dict[str, Any]]:
    """The ``ChatResponseChunk`` objects of a streamed reply, in order (``[DONE]`` not included).

    Deltas: ``{"role": "assistant"}`` first; then ``reasoning_content`` and
    ``content`` word by word; then each tool call, its ``arguments`` cut into
    ``tool_call_chunks`` pieces. The first delta of a call carries ``index``,
    ``id``, ``type`` and ``function.name``; later ones only ``index`` and
    ``function.arguments`` (OpenAI's streaming convention). Then the finish
    chunk (empty delta, ``finish_reason``). Without ``include_usage`` the
    finish chunk carries ``usage``; with it, every chunk has ``"usage": null``
    and one more chunk, with ``"choices": []``, carries the usage (as the
    OpenAPI ``StreamOptions`` describes).
    """
    deltas: list[dict[str, Any]] = [{"role": "assistant"}]
    deltas.extend({"reasoning_content": p} for p in split_words(reasoning_content or ""))
    deltas.extend({"content": p} for p in split_words(text or ""))
    for index, call in enumerate(calls):
        pieces = _split_chars(call["arguments"], tool_call_chunks)
        first = {"index": index, **_openai_call(call)}
        first["function"] = {"name": call["name"], "arguments": pieces[0]}
        deltas.append({"tool_calls": [first]})
        deltas.extend({"tool_calls": [{"index": index, "function": {"arguments": p}}]} for p in pieces[1:])

    def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
        c: dict[str, Any] = {
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
            "system_fingerprint": "fp_standin",
        }
        if include_usage:
            c["usage"] = None
        return c

    out = [chunk([{"index": 0, "delta": d, "finish_reason": None}]) for d in deltas]
    final = chunk([{"index": 0, "delta": {}, "finish_reason": finish_reason}])
    out.append(final)
    if include_usage:
        tail = chunk([])
        tail["usage"] = dict(usage)
        out.append(tail)
    else:
        final["usage"] = dict(usage)
    return out
