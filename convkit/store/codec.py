"""Message <-> database row encoding (pure; no I/O).

``content`` is a JSON list with one object per part: ``{"text": ...}``,
``{"image": <sha256>, "detail": ...}`` for image bytes (kept once in
``convkit_images``), or ``{"url": ..., "width": ..., "height": ..., "detail":
...}`` for an image xAI fetches. ``tool_calls`` is a JSON list of
``{"id", "type", "name", "arguments"}`` whose ``arguments`` string is the
exact text received. Decoding an encoded message gives an equal Message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, cast

import attrs

from ..errors import DatabaseError, InvalidMessageError
from ..messages import ROLES, ImagePart, Message, Part, TextPart, ToolCall

__all__ = ["IMAGE_MARKER", "decode_message", "encode_message", "image_row", "image_shas"]

#: Appears in ``content`` exactly where an image part is stored (text is JSON-escaped, so never matches).
IMAGE_MARKER = '{"image":'


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def encode_message(m: Message) -> dict[str, Any]:
    """Columns of ``convkit_messages`` for ``m`` (without ids, seq and unit fields)."""
    parts: list[dict[str, Any]] = []
    for p in m.content:
        if isinstance(p, TextPart):
            parts.append({"text": p.text})
        elif p.data is not None:
            d: dict[str, Any] = {"image": p.sha256}
            if p.detail is not None:
                d["detail"] = p.detail
            parts.append(d)
        else:
            d = {"url": p.url}
            if p.width is not None:
                d["width"], d["height"] = p.width, p.height
            if p.detail is not None:
                d["detail"] = p.detail
            parts.append(d)
    calls = (
        _dumps([{"id": c.id, "type": c.type, "name": c.name, "arguments": c.arguments} for c in m.tool_calls])
        if m.tool_calls
        else None
    )
    row: dict[str, Any] = {
        "role": m.role,
        "content": _dumps(parts),
        "tool_calls": calls,
        "tool_call_id": m.tool_call_id,
        "name": m.name,
        "pinned": m.pinned,
        "metadata": _dumps(m.metadata) if m.metadata else None,
    }
    for column in ("content", "tool_calls", "tool_call_id", "name", "metadata"):
        _check_utf8(row[column], column, m.role)
    # stored in columns of their own (JSON text escapes U+0000; these are raw, and PostgreSQL
    # text cannot hold it): refused on every database alike
    for what, value in (
        ("tool_call_id", m.tool_call_id),
        ("name", m.name),
        *(("tool call id", c.id) for c in m.tool_calls),
    ):
        if value is not None and "\x00" in value:
            raise InvalidMessageError(
                f"{m.role} message {what} {value!r} holds a NUL character (U+0000), which the store "
                "cannot keep; remove it"
            )
    return row


def _check_utf8(value: str | None, column: str, role: str) -> None:
    """Refuse text the database cannot hold: a lone surrogate has no UTF-8 encoding."""
    if value is None:
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start : exc.end]
        raise InvalidMessageError(
            f"{role} message {column} holds {bad!r}, a lone surrogate that is not valid Unicode text; "
            "decode the text correctly (or replace the surrogate) before storing it"
        ) from None


def image_shas(content_json: str) -> list[str]:
    """The image hashes an encoded ``content`` refers to."""
    if IMAGE_MARKER not in content_json:
        return []
    return [p["image"] for p in json.loads(content_json) if "image" in p]


def image_row(p: ImagePart) -> dict[str, Any]:
    """Columns of ``convkit_images`` for an image part holding bytes."""
    assert p.data is not None
    return {
        "sha256": p.sha256,
        "media_type": p.media_type,
        "width": p.width,
        "height": p.height,
        "size": len(p.data),
        "data": p.data,
    }


_new, _put = object.__new__, object.__setattr__


def _text_fast(text: str) -> TextPart:
    part = _new(TextPart)
    _put(part, "text", text)
    return part


def _call_fast(id: str, name: str, arguments: str, type: str) -> ToolCall:
    call = _new(ToolCall)
    _put(call, "id", id)
    _put(call, "name", name)
    _put(call, "arguments", arguments)
    _put(call, "type", type)
    return call


def _message_fast(
    role: str,
    content: tuple[Part, ...],
    tool_calls: tuple[ToolCall, ...],
    tool_call_id: str | None,
    name: str | None,
    pinned: bool,
    metadata: dict[str, Any],
) -> Message:
    msg = _new(Message)
    _put(msg, "role", role)
    _put(msg, "content", content)
    _put(msg, "tool_calls", tool_calls)
    _put(msg, "tool_call_id", tool_call_id)
    _put(msg, "name", name)
    _put(msg, "pinned", pinned)
    _put(msg, "metadata", metadata)
    _put(msg, "_attrs_cached_hash", None)  # attrs' hash cache: not computed yet
    return msg


def _fields(cls: type) -> tuple[str, ...]:
    return tuple(a.name for a in attrs.fields(cast(Any, cls)))


# Rows were validated when written, so decoding rebuilds text parts, tool calls and messages
# without re-running their checks (re-validating was most of a window's cost), as long as the
# classes have the layout the builders above set; otherwise it uses the checked constructors.
_FAST = (
    _fields(TextPart) == ("text",)
    and _fields(ToolCall) == ("id", "name", "arguments", "type")
    and _fields(Message) == ("role", "content", "tool_calls", "tool_call_id", "name", "pinned", "metadata")
    and set(getattr(Message, "__slots__", ())) == {*_fields(Message), "__weakref__", "_attrs_cached_hash"}
)
_text: Callable[[str], TextPart] = _text_fast if _FAST else TextPart
_call: Callable[[str, str, str, str], ToolCall] = _call_fast if _FAST else ToolCall
_message: Callable[..., Message] = _message_fast if _FAST else Message


def decode_message(
    row: Mapping[str, Any], images: Mapping[str, bytes], cache: dict[Any, ImagePart] | None = None
) -> Message:
    """The Message a ``convkit_messages`` row holds; ``images`` maps sha256 to bytes.

    Rows were validated when written, so text parts, tool calls and the message are rebuilt
    without re-running their checks (image parts are rebuilt normally, once per image and
    detail in ``cache`` when given). A row that does not decode raises DatabaseError.
    """
    try:
        parts: list[Part] = []
        for p in json.loads(row["content"]):
            if "text" in p:
                text = p["text"]
                if not isinstance(text, str):
                    raise TypeError("text part without a string")
                parts.append(_text(text))
            else:
                key = (p.get("image"), p.get("url"), p.get("width"), p.get("height"), p.get("detail"))
                part = cache.get(key) if cache is not None else None
                if part is None:
                    if "image" in p:
                        part = ImagePart(data=images[p["image"]], detail=p.get("detail"))
                    else:
                        part = ImagePart(
                            url=p["url"], width=p.get("width"), height=p.get("height"), detail=p.get("detail")
                        )
                    if cache is not None:
                        cache[key] = part
                parts.append(part)
        calls = tuple(
            _call(c["id"], c["name"], c["arguments"], c.get("type", "function"))
            for c in (json.loads(row["tool_calls"]) if row["tool_calls"] else ())
        )
        role = row["role"]
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        return _message(
            role,
            tuple(parts),
            calls,
            row["tool_call_id"],
            row["name"],
            bool(row["pinned"]),
            json.loads(row["metadata"]) if row["metadata"] else {},
        )
    except (KeyError, ValueError, TypeError) as exc:  # ValidationError is a ValueError
        raise DatabaseError(
            f"stored message seq {row.get('seq')} cannot be decoded ({type(exc).__name__}: {exc})"
        ) from None
