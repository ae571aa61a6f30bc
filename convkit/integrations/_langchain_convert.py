"""LangChain messages <-> convkit messages, lossless both ways (the conversion itself).

Private to :mod:`convkit.integrations.langchain`, which re-exports
:func:`to_langchain`, :func:`from_langchain`, :data:`EXTRAS_KEY` and
:data:`INFO_KEY` and documents the mapping. Roles, tool calls (exact argument
text kept) and ``pinned`` / ``metadata`` are mapped here; content blocks are
left to :mod:`._langchain_content`; whatever LangChain's form has beyond the
default rendering is kept in ``metadata[INFO_KEY]``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

import attrs
from langchain_core.messages import AIMessage, BaseMessage, message_to_dict, messages_from_dict

from .._errors import InvalidMessageError
from .._messages import ImagePart, Message, MessageLike, ToolCall, as_message
from ._langchain_content import _fill, _parse_content, _render

#: Key of ``additional_kwargs`` holding convkit's ``pinned``, ``metadata`` and URL-image sizes.
EXTRAS_KEY = "convkit"
#: Key of a convkit message's ``metadata`` holding what only the LangChain form has (reserved).
INFO_KEY = "convkit.langchain"

_TYPE_OF_ROLE = {"system": "system", "user": "human", "assistant": "ai", "tool": "tool"}
_ROLE_OF_TYPE = {
    "system": "system",
    "human": "user",
    "ai": "assistant",
    "tool": "tool",
    "SystemMessageChunk": "system",
    "HumanMessageChunk": "user",
    "AIMessageChunk": "assistant",
    "ToolMessageChunk": "tool",
}
_CHAT_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "tool": "tool",
}


def _same(a: object, b: object) -> bool:
    """Equal as JSON, types included (``1 != 1.0 != True``); plain ``==`` for non-JSON values."""
    try:
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    except (TypeError, ValueError):
        try:
            return bool(a == b)
        except Exception:
            return False


# -- tool calls ---------------------------------------------------------------------------------


def _lc_calls(calls: Sequence[ToolCall]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """LangChain ``tool_calls`` (object arguments) and ``invalid_tool_calls`` (any other JSON)."""
    valid: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    for c in calls:
        args = json.loads(c.arguments)
        if isinstance(args, dict):
            valid.append({"name": c.name, "args": args, "id": c.id, "type": "tool_call"})
        else:
            invalid.append(
                {
                    "name": c.name,
                    "args": c.arguments,
                    "id": c.id,
                    "error": "the arguments are JSON but not an object",
                    "type": "invalid_tool_call",
                }
            )
    return valid, invalid


def _convkit_calls(msg: AIMessage) -> tuple[ToolCall, ...]:
    """convkit tool calls of an AIMessage: exact argument text from ``additional_kwargs`` when it agrees."""
    raw_by_id: dict[str, ToolCall] = {}
    raw = msg.additional_kwargs.get("tool_calls")
    if isinstance(raw, list):
        for item in raw:
            try:
                call = ToolCall.from_openai(item)
            except InvalidMessageError:
                continue
            raw_by_id.setdefault(call.id, call)
    out: list[ToolCall] = []

    def take(call_id: object, name: object, args_text: str | None, args: object) -> None:
        if not isinstance(call_id, str) or not call_id:
            raise InvalidMessageError(
                "a LangChain tool call needs an id (convkit links tool results to calls by id)"
            )
        known = raw_by_id.get(call_id)
        if known is not None and known.name == name:
            if args_text is not None and known.arguments == args_text:
                out.append(known)
                return
            if args_text is None and _same(json.loads(known.arguments), args):
                out.append(known)
                return
        if args_text is None:
            try:
                args_text = json.dumps(args)
            except (TypeError, ValueError) as exc:
                raise InvalidMessageError(f"tool call {call_id!r}: args are not JSON ({exc})") from None
        out.append(ToolCall(id=call_id, name=cast(str, name), arguments=args_text))

    for tc in msg.tool_calls:
        take(tc.get("id"), tc.get("name"), None, tc.get("args"))
    for itc in msg.invalid_tool_calls:
        text, call_id, name = itc.get("args"), itc.get("id"), itc.get("name")
        if isinstance(text, str) and call_id and name:
            try:
                take(call_id, name, text, None)
            except InvalidMessageError:
                continue  # not JSON: LangChain keeps it (so does the info), convkit cannot send it
    order = {cid: k for k, cid in enumerate(raw_by_id)}
    out.sort(key=lambda c: order.get(c.id, len(order)))
    return tuple(out)


# -- messages -----------------------------------------------------------------------------------


def _default_dict(m: Message) -> tuple[str, dict[str, Any]]:
    """The LangChain ``(type, data)`` of a convkit message without LangChain info."""
    kind = _TYPE_OF_ROLE[m.role]
    extras: dict[str, Any] = {}
    if m.pinned:
        extras["pinned"] = True
    user_meta = {k: v for k, v in m.metadata.items() if k != INFO_KEY}
    if user_meta:
        extras["metadata"] = user_meta
    sizes = [
        [i, p.width, p.height]
        for i, p in enumerate(m.content)
        if isinstance(p, ImagePart) and p.url is not None and p.width is not None
    ]
    if sizes:
        extras["image_sizes"] = sizes
    kwargs: dict[str, Any] = {}
    if m.tool_calls:
        kwargs["tool_calls"] = [c.to_openai() for c in m.tool_calls]
    if extras:
        kwargs[EXTRAS_KEY] = extras
    data: dict[str, Any] = {
        "content": _render(m.content),
        "additional_kwargs": kwargs,
        "response_metadata": {},
        "type": kind,
        "name": m.name,
        "id": None,
    }
    if kind == "ai":
        valid, invalid = _lc_calls(m.tool_calls)
        data.update(tool_calls=valid, invalid_tool_calls=invalid, usage_metadata=None)
    elif kind == "tool":
        data.update(tool_call_id=m.tool_call_id, artifact=None, status="success")
    return kind, data


def _build(kind: str, data: dict[str, Any]) -> BaseMessage:
    try:
        return messages_from_dict([{"type": kind, "data": data}])[0]
    except (ValueError, TypeError, KeyError) as exc:  # pydantic's ValidationError is a ValueError
        raise InvalidMessageError(f"cannot build a LangChain {kind!r} message: {exc}") from None


def to_langchain(message: MessageLike) -> BaseMessage:
    """The LangChain message for a convkit message (or OpenAI-shaped dict); see the module docstring."""
    m = as_message(message)
    kind, data = _default_dict(m)
    info = m.metadata.get(INFO_KEY)
    if not isinstance(info, Mapping):
        return _build(kind, data)
    kind = str(info.get("type", kind))
    data["type"] = kind
    if "content" in info:
        filled = _fill(info["content"], m.content)
        if filled is not None:
            data["content"] = filled
    for key in info.get("absent", ()):
        data.pop(key, None)
    data.update(info.get("fields", {}))
    kwargs = data["additional_kwargs"]
    for key in info.get("kwargs_absent", ()):
        kwargs.pop(key, None)
    kwargs.update(info.get("kwargs", {}))
    return _build(kind, data)


def _role(msg: BaseMessage) -> str:
    if msg.type in {"chat", "ChatMessageChunk"}:
        role = _CHAT_ROLES.get(str(getattr(msg, "role", "")))
        if role is None:
            raise InvalidMessageError(
                f"ChatMessage role {getattr(msg, 'role', None)!r} has no convkit role; use one of "
                f"{', '.join(sorted(_CHAT_ROLES))}"
            )
        return role
    role = _ROLE_OF_TYPE.get(msg.type)
    if role is None:
        raise InvalidMessageError(
            f"LangChain {type(msg).__name__} ({msg.type!r}) has no convkit role; convkit takes system, "
            "human, AI, tool and chat messages"
        )
    return role


def _convert(msg: BaseMessage, *, with_info: bool) -> Message:
    if not isinstance(msg, BaseMessage):
        raise InvalidMessageError(f"from_langchain takes a LangChain BaseMessage, got {type(msg).__name__}")
    role = _role(msg)
    parts, entries = _parse_content(msg.content)
    extras = msg.additional_kwargs.get(EXTRAS_KEY) or {}
    if not isinstance(extras, Mapping):
        raise InvalidMessageError(f"additional_kwargs[{EXTRAS_KEY!r}] must be a dict")
    meta = extras.get("metadata") or {}
    if not isinstance(meta, Mapping) or INFO_KEY in meta:
        raise InvalidMessageError(f"convkit metadata must be a dict without the reserved key {INFO_KEY!r}")
    for item in extras.get("image_sizes") or ():
        i, width, height = item
        if not (0 <= i < len(parts) and isinstance(parts[i], ImagePart)):
            raise InvalidMessageError(f"image_sizes names part {i}, which is not an image")
        parts[i] = attrs.evolve(cast(ImagePart, parts[i]), width=width, height=height)
    base = Message(
        role,  # type: ignore[arg-type]
        parts,
        _convkit_calls(msg) if isinstance(msg, AIMessage) and role == "assistant" else (),
        tool_call_id=getattr(msg, "tool_call_id", None) if role == "tool" else None,
        name=msg.name or None,
        pinned=extras.get("pinned", False),
        metadata=meta,
    )
    if not with_info:
        return base
    info = _info(msg, base, entries)
    if not info:
        return base
    out = attrs.evolve(base, metadata={**meta, INFO_KEY: info})
    if to_langchain(out) != msg:  # pragma: no cover - a safety net; the property tests keep it unused
        dumped = message_to_dict(msg)
        fields = {k: v for k, v in dumped["data"].items() if k not in ("content", "type")}
        info = {"type": dumped["type"], "fields": fields, "content": entries or dumped["data"]["content"]}
        out = attrs.evolve(base, metadata={**meta, INFO_KEY: info})
    return out


def _info(msg: BaseMessage, base: Message, entries: list[Any] | None) -> dict[str, Any]:
    """What the LangChain form has beyond the default rendering of ``base``."""
    dumped = message_to_dict(msg)
    data: dict[str, Any] = dumped["data"]
    kind, default = _default_dict(base)
    info: dict[str, Any] = {}
    if dumped["type"] != kind:
        info["type"] = dumped["type"]
    fields: dict[str, Any] = {}
    if not _same(data.get("content"), default["content"]):
        if entries is not None:
            info["content"] = entries
        else:  # pragma: no cover - a string content always renders back as itself
            fields["content"] = data.get("content")
    for key, value in data.items():
        if key in ("content", "additional_kwargs", "type"):
            continue
        if key not in default or not _same(value, default[key]):
            fields[key] = value
    absent = [k for k in default if k not in data]
    kwargs, default_kwargs = data.get("additional_kwargs") or {}, default["additional_kwargs"]
    changed = {k: v for k, v in kwargs.items() if k not in default_kwargs or not _same(v, default_kwargs[k])}
    kwargs_absent = [k for k in default_kwargs if k not in kwargs]
    for key, value in (("fields", fields), ("absent", absent), ("kwargs", changed)):
        if value:
            info[key] = value
    if kwargs_absent:
        info["kwargs_absent"] = kwargs_absent
    return info


def from_langchain(message: BaseMessage) -> Message:
    """The convkit message for a LangChain message; see the module docstring.

    Raises :class:`~convkit.InvalidMessageError` for what convkit cannot hold:
    an empty message, a tool call without an id, an unknown message type, an
    image given only by a file id, or (for storing) fields that are not JSON.
    """
    return _convert(message, with_info=True)
