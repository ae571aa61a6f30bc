"""LlamaIndex ``ChatMessage`` <-> convkit ``Message``, lossless both ways (the conversion itself).

Private to :mod:`convkit.integrations.llama_index`, which re-exports
:func:`to_llama_index`, :func:`from_llama_index`, :data:`EXTRAS_KEY` and
:data:`INFO_KEY` and documents the mapping. A convkit message renders as a
``ChatMessage`` by default (text and image blocks, tool calls in
``additional_kwargs``); whatever a ``ChatMessage`` has beyond that default is
kept as its JSON form, payloads (text, image bytes, URLs) taken out, in
``metadata[INFO_KEY]``, and used on the way back only while it still
describes the message.

A block LlamaIndex sends to the model that convkit has no part for
(thinking, document, audio, video, citable and citation blocks) is a text
part holding the block's JSON, so the window counts it; on the way back the
block is rebuilt from that JSON. Only ``CachePoint`` has no part: it is a
marker telling the LLM integration where to cache, with no content
(llama-index-core's own ``Memory`` does not count it either). Audio, video
and document blocks given only by a file path or an http(s) URL are refused:
LlamaIndex reads or downloads them into the prompt, and convkit could not
count them (so are images given so inside citable and citation blocks).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

import attrs
from llama_index.core.base.llms.types import (
    AudioBlock,
    CachePoint,
    ChatMessage,
    CitableBlock,
    CitationBlock,
    DocumentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ToolCallBlock,
    VideoBlock,
)

from .._errors import InvalidImageError, InvalidMessageError
from .._messages import ImagePart, Message, MessageLike, Part, TextPart, ToolCall, as_message

#: Key of ``additional_kwargs`` holding convkit's ``pinned``, ``metadata`` and URL-image details.
EXTRAS_KEY = "convkit"
#: Key of a convkit message's ``metadata`` holding what only the LlamaIndex form has (reserved).
INFO_KEY = "convkit.llama_index"

_ROLE_OF = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "chatbot": "assistant",
    "model": "assistant",
    "tool": "tool",
    "function": "tool",
}
_DETAILS = (None, "auto", "low", "high")


# -- ChatMessage -> convkit ---------------------------------------------------------------------


def _image_part(block: ImageBlock) -> ImagePart:
    detail = block.detail if block.detail in _DETAILS else None
    if isinstance(block.image, bytes) and block.image:
        try:
            data = base64.b64decode(block.image, validate=True)
        except (binascii.Error, ValueError):
            data = block.image  # not base64 after all: the bytes themselves
        return ImagePart.from_bytes(data, detail=detail)
    if block.url is not None:
        return ImagePart.from_url(str(block.url), detail=detail)
    raise InvalidImageError(
        "a LlamaIndex ImageBlock needs its bytes (image=) or an http(s) or data URL (url=); convkit does "
        "not read files: pass ImageBlock(image=Path(...).read_bytes()) instead of path="
    )


def _block_json(block: Any) -> str:
    """The JSON text of a block convkit has no part for: what its text part holds (and is counted)."""
    return json.dumps(block.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))


_PAYLOAD: dict[type, str] = {
    AudioBlock: "audio",
    VideoBlock: "video",
    DocumentBlock: "data",
    ImageBlock: "image",
}


def _check_fetched(block: Any) -> None:
    """Refuse a media block (or one cited) whose content LlamaIndex would read from a file or download."""
    if isinstance(block, CitableBlock):
        inner: list[Any] = list(block.content)
    elif isinstance(block, CitationBlock):
        inner = [block.cited_content]
    else:
        inner = [block]
    for b in inner:
        field = _PAYLOAD.get(type(b))
        if field is None:
            continue
        url = str(b.url) if b.url is not None else ""
        if not getattr(b, field) and (b.path is not None or (url and not url.startswith("data:"))):
            kind = type(b).__name__
            raise InvalidMessageError(
                f"a LlamaIndex {kind} given only by path= or url= (here in a {type(block).__name__}) "
                f"is read into the prompt by LlamaIndex, and convkit cannot count it: pass its bytes "
                f"({kind}({field}=...))"
            )


def _parts(blocks: Sequence[Any]) -> tuple[list[Part], list[list[Any]], list[ToolCall]]:
    """convkit parts of ``blocks``, where each came from ([block index, field]), and ToolCallBlocks.

    ``field`` is ``"text"``, ``"image"`` (bytes), ``"url"`` or ``"block"`` (the whole block, as
    the JSON text its part holds)."""
    parts: list[Part] = []
    where: list[list[Any]] = []
    calls: list[ToolCall] = []
    for i, block in enumerate(blocks):
        if isinstance(block, TextBlock):
            parts.append(TextPart(block.text))
            where.append([i, "text"])
        elif isinstance(block, ImageBlock):
            part = _image_part(block)
            has_bytes = isinstance(block.image, bytes) and bool(block.image)
            parts.append(part)
            where.append([i, "image" if has_bytes else "url"])
        elif isinstance(block, ToolCallBlock):
            calls.append(_block_call(block))
        elif not isinstance(block, CachePoint):  # sent to the model: counted as its JSON
            _check_fetched(block)
            parts.append(TextPart(_block_json(block)))
            where.append([i, "block"])
    return parts, where, calls


def _block_call(block: ToolCallBlock) -> ToolCall:
    # without an id, the tool's name is the call's id: what LlamaIndex's own FunctionAgent then puts in
    # the result's tool_call_id for LLMs whose ToolSelection ids are tool names (Google's, for one)
    call_id = block.tool_call_id or block.tool_name
    kwargs = block.tool_kwargs
    if isinstance(kwargs, str):
        try:
            return ToolCall(call_id, block.tool_name, kwargs)
        except InvalidMessageError:  # cut-off JSON: still a call (kept with its result), as a JSON string
            return ToolCall(call_id, block.tool_name, json.dumps(kwargs))
    try:
        text = json.dumps(kwargs, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidMessageError(f"tool call {call_id!r}: tool_kwargs are not JSON ({exc})") from None
    return ToolCall(call_id, block.tool_name, text)


def _jsonable(value: Any) -> Any:
    """``value`` as ``ChatMessage`` serializes ``additional_kwargs`` (models dumped, bytes in base64)."""
    return ChatMessage()._recursive_serialization(value)


def _kwargs_calls(raw: object) -> list[ToolCall]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidMessageError(
            f"additional_kwargs['tool_calls'] is a list of OpenAI tool calls, got {type(raw).__name__}"
        )
    return [ToolCall.from_openai(_jsonable(item)) for item in raw]


def _merge_calls(first: list[ToolCall], second: list[ToolCall]) -> tuple[ToolCall, ...]:
    """Calls from ``additional_kwargs`` (``first``: exact argument text) and from ToolCallBlocks."""
    given = {c.id: c for c in first}
    out = list(first)
    for c in second:  # a call in both forms is taken once; two blocks with one id are refused by Message
        known = given.get(c.id)
        if known is None:
            out.append(c)
        elif known.name != c.name or json.loads(known.arguments) != json.loads(c.arguments):
            raise InvalidMessageError(
                f"tool call {c.id!r} is both in additional_kwargs['tool_calls'] and a ToolCallBlock, and "
                "they disagree; give it once"
            )
    return tuple(out)


def _role(msg: ChatMessage) -> str:
    value = msg.role.value if isinstance(msg.role, MessageRole) else str(msg.role)
    role = _ROLE_OF.get(value)
    if role is None:  # pragma: no cover - MessageRole has no other members today
        raise InvalidMessageError(f"ChatMessage role {value!r} has no convkit role")
    return role


def _extras(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    extras = kwargs.get(EXTRAS_KEY) or {}
    if not isinstance(extras, Mapping):
        raise InvalidMessageError(f"additional_kwargs[{EXTRAS_KEY!r}] must be a dict")
    return extras


def _base(msg: ChatMessage) -> Message:
    """The convkit message of ``msg`` without the LlamaIndex info."""
    if not isinstance(msg, ChatMessage):
        raise InvalidMessageError(
            f"from_llama_index takes a LlamaIndex ChatMessage, got {type(msg).__name__}"
        )
    role = _role(msg)
    kwargs = msg.additional_kwargs
    parts, _, block_calls = _parts(msg.blocks)
    extras = _extras(kwargs)
    meta = extras.get("metadata") or {}
    if not isinstance(meta, Mapping) or INFO_KEY in meta:
        raise InvalidMessageError(f"convkit metadata must be a dict without the reserved key {INFO_KEY!r}")
    for item in extras.get("images") or ():
        i, url, width, height = item
        if not (0 <= i < len(parts) and isinstance(parts[i], ImagePart)):
            raise InvalidMessageError(
                f"additional_kwargs[{EXTRAS_KEY!r}] names part {i}, which is not an image"
            )
        parts[i] = attrs.evolve(cast(ImagePart, parts[i]), url=url, width=width, height=height)
    calls = _merge_calls(_kwargs_calls(kwargs.get("tool_calls")), block_calls) if role == "assistant" else ()
    if role != "assistant" and (block_calls or kwargs.get("tool_calls")):
        raise InvalidMessageError(
            f"only assistant messages carry tool calls, not {msg.role.value!r} messages"
        )
    call_id = kwargs.get("tool_call_id") if role == "tool" else None
    if role == "tool" and (not isinstance(call_id, str) or not call_id):
        raise InvalidMessageError(
            f"a {msg.role.value} ChatMessage needs additional_kwargs['tool_call_id']: the id of the "
            "assistant's tool call it answers"
        )
    name = kwargs.get("name")
    return Message(
        role,  # type: ignore[arg-type]
        parts,
        calls,
        tool_call_id=call_id,
        name=name if isinstance(name, str) and name else None,
        pinned=extras.get("pinned", False),
        metadata=meta,
    )


def _stripped(msg: ChatMessage) -> dict[str, Any]:
    """The JSON form of ``msg`` with the parts' payloads taken out (they live in the parts)."""
    dump: dict[str, Any] = msg.model_dump(mode="json")
    _, where, _ = _parts(msg.blocks)
    for i, field in where:
        if field == "block":  # the whole block is in its part
            dump["blocks"][i] = None
        else:
            dump["blocks"][i][field] = None
    dump["parts"] = where
    return dump


def from_llama_index(message: ChatMessage) -> Message:
    """The convkit message for a LlamaIndex ``ChatMessage``; see the module docstring.

    Raises :class:`~convkit.InvalidMessageError` for what convkit cannot hold:
    a message with nothing to send (no text, image or tool call), a tool
    message without ``additional_kwargs["tool_call_id"]``, two calls with
    one id in a message (a ``ToolCallBlock`` without ``tool_call_id`` takes
    its tool's name as id), an image given only by a file path
    (:class:`~convkit.InvalidImageError`).
    """
    base = _base(message)
    if _default(base) == message:
        return base
    user_meta = dict(base.metadata)
    out = attrs.evolve(base, metadata={**user_meta, INFO_KEY: _stripped(message)})
    if to_llama_index(out) != message:  # e.g. a payload spelled unusually: keep the whole JSON form
        dump = message.model_dump(mode="json")
        dump["parts"] = []
        out = attrs.evolve(base, metadata={**user_meta, INFO_KEY: dump})
    return out


# -- convkit -> ChatMessage ---------------------------------------------------------------------


def _default(m: Message) -> ChatMessage:
    """The ``ChatMessage`` of a convkit message without LlamaIndex info."""
    blocks: list[Any] = []
    extras: dict[str, Any] = {}
    images: list[list[Any]] = []
    for i, p in enumerate(m.content):
        if isinstance(p, TextPart):
            blocks.append(TextBlock(text=p.text))
        elif p.data is not None:
            blocks.append(ImageBlock(image=p.data, image_mimetype=p.media_type, detail=p.detail))
        else:
            block = ImageBlock(url=p.url, detail=p.detail)
            if str(block.url) != p.url or p.width is not None:
                images.append([i, p.url, p.width, p.height])
            blocks.append(block)
    if m.pinned:
        extras["pinned"] = True
    user_meta = {k: v for k, v in m.metadata.items() if k != INFO_KEY}
    if user_meta:
        extras["metadata"] = user_meta
    if images:
        extras["images"] = images
    kwargs: dict[str, Any] = {}
    if m.tool_calls:
        kwargs["tool_calls"] = [c.to_openai() for c in m.tool_calls]
    if m.tool_call_id is not None:
        kwargs["tool_call_id"] = m.tool_call_id
    if m.name is not None:
        kwargs["name"] = m.name
    if extras:
        kwargs[EXTRAS_KEY] = extras
    return ChatMessage(role=MessageRole(m.role), blocks=blocks, additional_kwargs=kwargs)


def _filled(info: Mapping[str, Any], parts: Sequence[Part]) -> ChatMessage | None:
    """The ``ChatMessage`` the info describes, payloads taken from ``parts``; None if they do not match."""
    dump = copy.deepcopy(dict(info))
    where = dump.pop("parts", [])
    if not isinstance(where, list) or len(where) != len(parts):
        return None
    try:
        for (i, field), part in zip(where, parts, strict=True):
            block = dump["blocks"][i]
            if field == "block" and isinstance(part, TextPart):
                dump["blocks"][i] = json.loads(part.text)
            elif field in ("image", "url") and isinstance(part, TextPart):  # an image dropped for a note
                dump["blocks"][i] = {"block_type": "text", "text": part.text}
            elif field == "text" and isinstance(part, TextPart):
                block["text"] = part.text
            elif field == "image" and isinstance(part, ImagePart) and part.data is not None:
                block["image"] = base64.b64encode(part.data).decode("ascii")
            elif field == "url" and isinstance(part, ImagePart):
                block["url"] = part.openai_url()
            else:
                return None
        return ChatMessage.model_validate(dump)
    except (KeyError, IndexError, TypeError, ValueError):  # pydantic's ValidationError is a ValueError
        return None


def to_llama_index(message: MessageLike) -> ChatMessage:
    """The LlamaIndex ``ChatMessage`` for a convkit message (or OpenAI-shaped dict); see the module
    docstring."""
    m = as_message(message)
    info = m.metadata.get(INFO_KEY)
    plain = attrs.evolve(m, metadata={k: v for k, v in m.metadata.items() if k != INFO_KEY})
    if isinstance(info, Mapping):
        built = _filled(info, m.content)
        if built is not None:
            try:
                same = _base(built) == plain
            except (InvalidMessageError, InvalidImageError):
                same = False
            if same:
                return built
    return _default(plain)
