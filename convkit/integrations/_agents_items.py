"""Responses items <-> convkit messages, for the OpenAI Agents SDK adapter.

Private to :mod:`convkit.integrations.agents`, which re-exports
:func:`item_to_message`, :func:`message_to_items` and :data:`ITEM_KEY` (the
mapping is described there). One item becomes one message, and the item
itself is kept in the message's metadata, so the way back is exact; a
message written by other means comes back as the items its OpenAI form
describes. Standard library and convkit only: the SDK is not imported here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from .._errors import InvalidMessageError
from .._messages import ImagePart, Message, Part, TextPart, ToolCall

__all__ = ["ITEM_KEY", "item_to_message", "message_to_items", "messages_to_items", "newest_items"]

#: Key of a message's ``metadata`` holding the Responses item it was made from.
ITEM_KEY = "convkit.agents.item"
#: Key of a message's ``metadata`` listing image URLs taken out of the stored item: [path, part].
_IMAGES_KEY = "convkit.agents.images"

_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}
_TEXT_PARTS = {"input_text": "text", "output_text": "text", "refusal": "refusal", "summary_text": "text"}
_DETAILS = (None, "auto", "low", "high")


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _parts(content: object, path: list[Any], refs: list[list[Any]]) -> list[Part]:
    """convkit parts of a Responses content (str or list); records data-URL images in ``refs``."""
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    if not isinstance(content, list):
        return [TextPart(_dumps(content))]
    parts: list[Part] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        field = _TEXT_PARTS.get(str(kind))
        if field is not None and isinstance(part, Mapping) and isinstance(part.get(field), str):
            parts.append(TextPart(part[field]))
        elif kind == "input_image" and isinstance(part, Mapping) and isinstance(part.get("image_url"), str):
            url = part["image_url"]
            detail = part.get("detail") if part.get("detail") in _DETAILS else None
            image = ImagePart.from_url(url, detail=detail)
            if image.data is not None and image.openai_url() == url:
                refs.append([[*path, j, "image_url"], len(parts)])
            parts.append(image)
        else:
            parts.append(TextPart(_dumps(part)))
    return parts


def _is_json(text: str) -> bool:
    try:
        ToolCall("c", "f", text)
    except InvalidMessageError:
        return False
    return True


def _faithful(item: Mapping[str, Any], refs: list[list[Any]]) -> Message:
    kind = item.get("type")
    role = item.get("role")
    if isinstance(role, str) and kind in (None, "message"):
        if role not in _ROLES:
            raise InvalidMessageError(f"unknown role {role!r}")
        return Message(_ROLES[role], _parts(item.get("content"), ["content"], refs))  # type: ignore[arg-type]
    call_id = item.get("call_id")
    if isinstance(kind, str) and isinstance(call_id, str) and call_id:
        if kind.endswith("_call"):
            arguments = item.get("arguments")
            if kind != "function_call" or not isinstance(arguments, str):
                rest = {k: v for k, v in item.items() if k not in ("type", "call_id", "id", "status")}
                arguments = _dumps(rest)
            elif not _is_json(arguments):
                # "" (a call without parameters) or cut-off JSON: still a tool call, so that its
                # output stays linked to it (kept or dropped together); counted as its JSON string
                arguments = json.dumps(arguments)  # ASCII: a lone surrogate is escaped too
            name = item.get("name") if isinstance(item.get("name"), str) and item.get("name") else kind
            return Message.assistant(tool_calls=[ToolCall(call_id, cast(str, name), arguments)])
        if kind.endswith("_call_output"):
            return Message.tool(_parts(item.get("output"), ["output"], refs), tool_call_id=call_id)
    return Message.assistant(_dumps(item))


def item_to_message(item: Mapping[str, Any]) -> Message:
    """The convkit message for one Responses item (the item is kept in its metadata)."""
    if not isinstance(item, Mapping):
        raise InvalidMessageError(f"a Responses item is a dict, got {type(item).__name__}")
    stored = copy.deepcopy(dict(item))
    refs: list[list[Any]] = []
    try:
        msg = _faithful(item, refs)
    except InvalidMessageError:  # keep the item; count it as its JSON text, with the same role and link
        refs = []
        text = _dumps(item)
        kind, call_id = item.get("type"), item.get("call_id")
        if isinstance(kind, str) and kind.endswith("_call_output") and isinstance(call_id, str) and call_id:
            msg = Message.tool(text, tool_call_id=call_id)
        else:
            role = _ROLES.get(str(item.get("role")), "assistant")
            msg = Message(role, text)  # type: ignore[arg-type]
    for path, _ in refs:
        holder: Any = stored
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = None
    metadata: dict[str, Any] = {ITEM_KEY: stored}
    if refs:
        metadata[_IMAGES_KEY] = refs
    return Message(
        msg.role, msg.content, msg.tool_calls, tool_call_id=msg.tool_call_id, name=msg.name, metadata=metadata
    )


def message_to_items(m: Message) -> list[dict[str, Any]]:
    """The Responses items of a stored message: the item it was made from, else its OpenAI form."""
    item = m.metadata.get(ITEM_KEY)
    if isinstance(item, Mapping):
        out = copy.deepcopy(dict(item))
        for path, index in m.metadata.get(_IMAGES_KEY, ()):
            holder: Any = out
            for key in path[:-1]:
                holder = holder[key]
            part = m.content[index]
            holder[path[-1]] = part.openai_url() if isinstance(part, ImagePart) else None
        return [out]
    items: list[dict[str, Any]] = []
    if m.role == "tool":
        return [{"type": "function_call_output", "call_id": m.tool_call_id, "output": m.text}]
    if m.content:
        role = m.role
        text_type = "output_text" if role == "assistant" else "input_text"
        content: list[dict[str, Any]] = [
            {"type": text_type, "text": p.text}
            if isinstance(p, TextPart)
            else {"type": "input_image", "image_url": p.openai_url(), "detail": p.detail or "auto"}
            for p in m.content
        ]
        if all(isinstance(p, TextPart) for p in m.content):
            items.append({"role": role, "content": m.text})
        else:
            items.append({"role": role, "content": content})
    for c in m.tool_calls:
        items.append({"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments})
    return items


def messages_to_items(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The Responses items of ``messages``, in order."""
    return [item for m in messages for item in message_to_items(m)]


def _output_of(item: Mapping[str, Any]) -> str | None:
    """The ``call_id`` a call output answers (None for every other item)."""
    kind, call_id = item.get("type"), item.get("call_id")
    if isinstance(kind, str) and kind.endswith("_call_output") and isinstance(call_id, str) and call_id:
        return call_id
    return None


def _call_of(item: Mapping[str, Any]) -> str | None:
    """The ``call_id`` of a tool call item (None for every other item)."""
    kind, call_id = item.get("type"), item.get("call_id")
    if isinstance(kind, str) and kind.endswith("_call") and isinstance(call_id, str) and call_id:
        return call_id
    return None


def newest_items(items: Sequence[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` of ``items`` (none when ``limit <= 0``), less the call outputs whose
    call the cut left out: at most ``limit`` items, never an output without its call."""
    tail = list(items[-limit:]) if limit > 0 else []
    calls: set[str] = set()
    kept: list[dict[str, Any]] = []
    for item in tail:
        answered = _output_of(item)
        if answered is not None and answered not in calls:
            continue
        call = _call_of(item)
        if call is not None:
            calls.add(call)
        kept.append(item)
    return kept
