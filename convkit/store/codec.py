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
from collections.abc import Mapping
from typing import Any

from ..errors import DatabaseError, InvalidMessageError
from ..messages import ImagePart, Message, Part, TextPart, ToolCall

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


def decode_message(row: Mapping[str, Any], images: Mapping[str, bytes]) -> Message:
    """The Message a ``convkit_messages`` row holds; ``images`` maps sha256 to bytes."""
    try:
        parts: list[Part] = []
        for p in json.loads(row["content"]):
            if "text" in p:
                parts.append(TextPart(p["text"]))
            elif "image" in p:
                parts.append(ImagePart(data=images[p["image"]], detail=p.get("detail")))
            else:
                parts.append(
                    ImagePart(
                        url=p["url"], width=p.get("width"), height=p.get("height"), detail=p.get("detail")
                    )
                )
        calls = tuple(
            ToolCall(id=c["id"], name=c["name"], arguments=c["arguments"], type=c.get("type", "function"))
            for c in (json.loads(row["tool_calls"]) if row["tool_calls"] else ())
        )
        return Message(
            role=row["role"],
            content=tuple(parts),
            tool_calls=calls,
            tool_call_id=row["tool_call_id"],
            name=row["name"],
            pinned=bool(row["pinned"]),
            metadata=json.loads(row["metadata"]) if row["metadata"] else None,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise DatabaseError(
            f"stored message seq {row.get('seq')} cannot be decoded ({type(exc).__name__}: {exc})"
        ) from None
