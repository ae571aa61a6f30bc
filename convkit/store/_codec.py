"""Message <-> database row encoding (pure; no I/O).

``content`` is JSON. A message whose content is exactly one text part keeps
that text as a JSON string, ``"..."``. Any other content is a JSON list with
one object per part: ``{"text": ...}``, ``{"image": <sha256>, "detail": ...}``
for image bytes (kept once in ``convkit_images``), or ``{"url": ..., "width":
..., "height": ..., "detail": ...}`` for an image xAI fetches. Rows written
before the string form existed hold ``[{"text": ...}]`` for one text part, and
decode as before. Text is JSON-escaped in both forms, so :data:`IMAGE_MARKER`
(or ``{"url":``) never occurs inside it.

``tool_calls`` is a JSON list of ``{"id", "type", "name", "arguments"}`` whose
``arguments`` string is the exact text received; ``metadata`` is a JSON object,
or NULL when empty. Decoding an encoded message gives an equal Message.
"""

from __future__ import annotations

import json
from _json import scanstring  # CPython's C string scanner, the one json.loads uses
from collections.abc import Callable, Mapping, Sequence
from json.scanner import make_scanner
from types import MemberDescriptorType
from typing import Any, cast

import attrs
import sqlalchemy as sa

from .._errors import DatabaseError, InvalidMessageError
from .._messages import ROLES, ImagePart, Message, Part, TextPart, ToolCall
from . import _schema as t

__all__ = [
    "BODY_COLUMNS",
    "IMAGE_MARKER",
    "decode_message",
    "decode_rows",
    "encode_message",
    "image_row",
    "image_shas",
]

#: Appears in ``content`` exactly where an image part is stored (text is JSON-escaped, so never matches).
IMAGE_MARKER = '{"image":'

#: The ``convkit_messages`` columns :func:`decode_rows` takes, in the order it takes them.
BODY_COLUMNS: tuple[str, ...] = (
    "seq",
    "role",
    "content",
    "tool_calls",
    "tool_call_id",
    "name",
    "pinned",
    "metadata",
)


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
    one_text = len(parts) == 1 and "text" in parts[0]
    calls = (
        _dumps([{"id": c.id, "type": c.type, "name": c.name, "arguments": c.arguments} for c in m.tool_calls])
        if m.tool_calls
        else None
    )
    row: dict[str, Any] = {
        "role": m.role,
        "content": _dumps(parts[0]["text"] if one_text else parts),
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
        if value is None:
            continue
        if "\x00" in value:
            raise InvalidMessageError(
                f"{m.role} message {what} {value!r} holds a NUL character (U+0000), which the store "
                "cannot keep; remove it"
            )
        # checked here, not by the database: SQLite would keep a longer value, PostgreSQL refuse it
        limit = _LENGTHS[what]
        if len(value) > limit:
            raise InvalidMessageError(
                f"{m.role} message {what} is {len(value)} characters long; the store keeps at most "
                f"{limit} characters ({value[:40]!r}...); shorten it"
            )
    return row


def _length(column: sa.Column[Any]) -> int:
    length = getattr(column.type, "length", None)
    assert isinstance(length, int), column
    return length


#: The most characters each bounded string column a message fills can hold (``String(n)`` in the schema).
_LENGTHS: dict[str, int] = {
    "tool_call_id": _length(t.messages.c.tool_call_id),
    "name": _length(t.messages.c.name),
    "tool call id": min(_length(t.tool_calls.c.call_id), _length(t.messages.c.tool_call_id)),
}


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
    if content_json[:1] == '"' or IMAGE_MARKER not in content_json:  # one text part (cheap), or no image
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


# -- unchecked construction ----------------------------------------------------------------
#
# Rows were validated when written, so decoding rebuilds text parts, tool calls and messages
# without re-running their checks (re-validating was most of a window's cost). The frozen
# classes refuse attribute assignment, so the builders write their slots through the slot
# descriptors' own setters (cheaper than object.__setattr__). This holds only while the classes
# have the layout checked below; otherwise decoding uses the checked constructors.

_Setter = Callable[[Any, Any], None]
_MESSAGE_SLOTS = ("role", "content", "tool_calls", "tool_call_id", "name", "pinned", "metadata")
_HASH_SLOT = "_attrs_cached_hash"  # attrs' hash cache: None means not computed yet


def _layout_is(cls: type, fields: tuple[str, ...], *extra_slots: str) -> bool:
    """Whether ``cls`` has exactly these attrs ``fields``, each in a slot, and no other slots."""
    names = tuple(a.name for a in attrs.fields(cast(Any, cls)))
    return names == fields and set(getattr(cls, "__slots__", ())) == {*fields, *extra_slots, "__weakref__"}


def _slot_setters(cls: type, names: tuple[str, ...]) -> tuple[_Setter, ...]:
    """A setter for each attribute ``names`` of ``cls`` that bypasses its frozen ``__setattr__``."""

    def generic(name: str) -> _Setter:
        return lambda obj, value: object.__setattr__(obj, name, value)

    slots = {name: vars(cls).get(name) for name in names}
    return tuple(s.__set__ if isinstance(s, MemberDescriptorType) else generic(n) for n, s in slots.items())


_TEXT_SET = _slot_setters(TextPart, ("text",))
_CALL_SET = _slot_setters(ToolCall, ("id", "name", "arguments", "type"))
_MESSAGE_SET = _slot_setters(Message, (*_MESSAGE_SLOTS, _HASH_SLOT))
_FAST = (
    _layout_is(TextPart, ("text",))
    and _layout_is(ToolCall, ("id", "name", "arguments", "type"))
    and _layout_is(Message, _MESSAGE_SLOTS, _HASH_SLOT)
)
_new = object.__new__


def _text_fast(text: str) -> TextPart:
    part = _new(TextPart)
    _TEXT_SET[0](part, text)
    return part


def _call_fast(id: str, name: str, arguments: str, type: str) -> ToolCall:
    call = _new(ToolCall)
    set_id, set_name, set_arguments, set_type = _CALL_SET
    set_id(call, id)
    set_name(call, name)
    set_arguments(call, arguments)
    set_type(call, type)
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
    set_role, set_content, set_calls, set_call_id, set_name, set_pinned, set_metadata, set_hash = _MESSAGE_SET
    set_role(msg, role)
    set_content(msg, content)
    set_calls(msg, tool_calls)
    set_call_id(msg, tool_call_id)
    set_name(msg, name)
    set_pinned(msg, pinned)
    set_metadata(msg, metadata)
    set_hash(msg, None)
    return msg


_text: Callable[[str], TextPart] = _text_fast if _FAST else TextPart
_call: Callable[[str, str, str, str], ToolCall] = _call_fast if _FAST else ToolCall
_message: Callable[..., Message] = _message_fast if _FAST else Message


# -- decoding ------------------------------------------------------------------------------

_scan_once: Callable[[str, int], tuple[Any, int]] = make_scanner(cast(Any, json.JSONDecoder()))
_ROLES = {role: role for role in ROLES}  # also gives every decoded message the one shared role string
_OLD_ONE_TEXT = '[{"text":"'  # how rows written before the string form begin a single text part


def _loads(text: str) -> Any:
    """``json.loads(text)``, through the C scanner directly when ``text`` is compact JSON."""
    try:
        value, end = _scan_once(text, 0)
    except (StopIteration, TypeError):  # leading whitespace, nothing, or not a str: json.loads says
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def _string_at(content: str, first: int, last: int) -> str | None:
    """The JSON string from ``content[first - 1]`` when its closing quote is ``content[last]``, else None."""
    text = content[first:last]
    if "\\" in text or '"' in text:
        text, end = scanstring(content, first)
        if end != last + 1:  # more after the string: other parts, or not JSON
            return None
    return text


def _parts(content: str, images: Mapping[str, bytes], cache: dict[Any, ImagePart]) -> tuple[Part, ...]:
    """The parts an encoded ``content`` holds, in either form; image parts are shared via ``cache``."""
    value = _loads(content)
    if type(value) is str:
        return (_text(value),)
    if type(value) is not list:
        raise TypeError("content is neither a JSON string nor a list of parts")
    parts: list[Part] = []
    for p in value:
        if type(p) is not dict:
            raise TypeError("a content part is not a JSON object")
        if "text" in p:
            text = p["text"]
            if type(text) is not str:
                raise TypeError("text part without a string")
            parts.append(_text(text))
            continue
        key = (p.get("image"), p.get("url"), p.get("width"), p.get("height"), p.get("detail"))
        part = cache.get(key)
        if part is None:
            if "image" in p:
                part = ImagePart(data=images[p["image"]], detail=p.get("detail"))
            else:
                part = ImagePart(
                    url=p["url"], width=p.get("width"), height=p.get("height"), detail=p.get("detail")
                )
            cache[key] = part
        parts.append(part)
    return tuple(parts)


def _calls(encoded: str) -> tuple[ToolCall, ...]:
    """The tool calls an encoded ``tool_calls`` holds (built inline, as ``_call_fast`` would)."""
    calls = _loads(encoded)
    if type(calls) is not list:
        raise TypeError("tool_calls is not a JSON list")
    if _call is not _call_fast:  # the checked constructor stands in
        return tuple([_call(c["id"], c["name"], c["arguments"], c.get("type", "function")) for c in calls])
    new, (set_id, set_name, set_arguments, set_type) = _new, _CALL_SET
    for i, c in enumerate(calls):
        call = new(ToolCall)
        set_id(call, c["id"])
        set_name(call, c["name"])
        set_arguments(call, c["arguments"])
        set_type(call, c.get("type", "function"))
        calls[i] = call
    return tuple(calls)


def _metadata(encoded: str) -> dict[str, Any]:
    value = _loads(encoded)
    if type(value) is not dict:
        raise TypeError("metadata is not a JSON object")
    return cast(dict[str, Any], value)


def _corrupt(row: Any, exc: Exception) -> DatabaseError:
    """The error for a row that does not decode, naming its seq."""
    try:
        width: int | None = len(row)
    except TypeError:
        width = None
    seq = row[0] if width == len(BODY_COLUMNS) else None
    if width != len(BODY_COLUMNS):
        got = f"{width} values" if width is not None else f"a {type(row).__name__}"
        reason = f"a row holds the {len(BODY_COLUMNS)} BODY_COLUMNS, got {got}"
    elif not (isinstance(row[1], str) and row[1] in _ROLES):
        reason = f"unknown role {row[1]!r}"
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return DatabaseError(f"stored message seq {seq} cannot be decoded ({reason})")


def decode_rows(rows: Sequence[Sequence[Any]], images: Mapping[str, bytes]) -> list[Message]:
    """The Messages ``convkit_messages`` rows hold; ``images`` maps sha256 to bytes.

    Each row holds the :data:`BODY_COLUMNS`, in that order (a plain tuple from the driver or
    a SQLAlchemy Row); ``pinned`` may be a bool or 0/1, and ``seq`` only names the row in
    errors. Text parts, tool calls and messages are rebuilt without re-running their checks;
    image parts are built once per image, URL, size and detail across the rows. A row that
    does not decode raises DatabaseError naming its seq.
    """
    return _decode(rows, images, {})


def decode_message(
    row: Mapping[str, Any], images: Mapping[str, bytes], cache: dict[Any, ImagePart] | None = None
) -> Message:
    """The Message one ``convkit_messages`` row, as a mapping of its columns, holds.

    As :func:`decode_rows`; image parts are shared through ``cache`` when given.
    """
    seq = row.get("seq")
    try:
        body = (
            seq,
            row["role"],
            row["content"],
            row["tool_calls"],
            row["tool_call_id"],
            row["name"],
            row["pinned"],
            row["metadata"],
        )
    except KeyError as exc:
        raise DatabaseError(f"stored message seq {seq} cannot be decoded (no column {exc})") from None
    return _decode((body,), images, {} if cache is None else cache)[0]


def _decode(
    rows: Sequence[Sequence[Any]], images: Mapping[str, bytes], cache: dict[Any, ImagePart]
) -> list[Message]:
    """Decode ``rows`` (see :func:`decode_rows`), sharing image parts through ``cache``.

    Most rows are one text part without tool calls or metadata, so that path is inlined: the
    text is cut out of the JSON string, or unescaped by the C scanner json.loads uses when it
    has escapes, and the text part and message are built as ``_text_fast`` and
    ``_message_fast`` would. A string without escapes is taken as it is: the only JSON rule it
    skips is the one against raw control characters, which the encoder always escapes.
    """
    out: list[Message] = []
    append = out.append
    checked = _message is not _message_fast  # the checked constructors stand in
    roles, new, scan, parts_of, calls_of, metadata_of = _ROLES, _new, scanstring, _parts, _calls, _metadata
    set_text = _TEXT_SET[0]
    set_role, set_content, set_calls, set_call_id, set_name, set_pinned, set_metadata, set_hash = _MESSAGE_SET
    row: Sequence[Any] = ()
    try:
        for row in rows:
            _seq, role, content, calls, call_id, name, pinned, meta = row
            role = roles[role]
            if content[0] == '"' and content[-1] == '"':  # one text part, as a JSON string
                text = content[1:-1]
                if "\\" in text:  # unescape (the C scanner json.loads uses)
                    text, end = scan(content, 1)
                    if end != len(content):
                        text = None
                elif '"' in text or (not text and len(content) < 2):
                    text = None  # not one JSON string: the generic path says what it is
            elif type(content) is str and content.startswith(_OLD_ONE_TEXT) and content.endswith('"}]'):
                text = _string_at(content, 10, len(content) - 3)
            else:
                text = None
            if text is None:
                parts = parts_of(content, images, cache)
            elif checked:
                parts = (_text(text),)
            else:
                part = new(TextPart)
                set_text(part, text)
                parts = (part,)
            tool_calls = calls_of(calls) if calls else ()
            metadata = metadata_of(meta) if meta else {}
            pinned = True if pinned else False  # noqa: SIM210 - cheaper than bool(), and 0/1 arrive
            if checked:
                msg = _message(role, parts, tool_calls, call_id, name, pinned, metadata)
            else:
                msg = new(Message)
                set_role(msg, role)
                set_content(msg, parts)
                set_calls(msg, tool_calls)
                set_call_id(msg, call_id)
                set_name(msg, name)
                set_pinned(msg, pinned)
                set_metadata(msg, metadata)
                set_hash(msg, None)
            append(msg)
    except (LookupError, ValueError, TypeError, RecursionError) as exc:  # ValidationError is a ValueError
        raise _corrupt(row, exc) from None
    return out
