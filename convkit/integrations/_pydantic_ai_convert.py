"""Pydantic AI ``ModelMessage`` lists <-> convkit messages, lossless (the conversion itself).

Private to :mod:`convkit.integrations.pydantic_ai`, which re-exports
:func:`from_pydantic_ai`, :func:`to_pydantic_ai` and :data:`INFO_KEY` and
documents the mapping. A ``ModelResponse`` is one assistant message; a
``ModelRequest`` is one convkit message per part (so a ``ToolReturnPart`` is
the tool message answering its call). Each message keeps, in
``metadata[INFO_KEY]``, Pydantic AI's own JSON form (``ModelMessagesTypeAdapter``)
of what it was made from -- without the bytes of images, which live in the
image parts -- so the list is rebuilt exactly.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import pydantic
import pydantic_core
from pydantic_ai import messages as pm

from .._errors import InvalidConversationError, InvalidMessageError, ValidationError
from .._messages import ImagePart, Message, MessageLike, Part, TextPart, ToolCall, as_message

#: Key of a convkit message's ``metadata`` holding the Pydantic AI form it was made from (reserved).
INFO_KEY = "convkit.pydantic_ai"

_TA = pm.ModelMessagesTypeAdapter
_DETAILS = ("auto", "low", "high")
_BYTES_IMAGES = ("image/png", "image/jpeg")


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _dump(msg: pm.ModelMessage) -> dict[str, Any]:
    """Pydantic AI's own JSON form of one message (``ModelMessagesTypeAdapter``)."""
    try:
        dumped: dict[str, Any] = json.loads(_TA.dump_json([msg]))[0]
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as exc:
        raise InvalidMessageError(f"Pydantic AI cannot serialize this {type(msg).__name__}: {exc}") from None
    return dumped


def _load(forms: list[dict[str, Any]], where: str) -> list[pm.ModelMessage]:
    """Messages from their JSON forms, validated by ``ModelMessagesTypeAdapter``."""
    try:
        return _TA.validate_json(json.dumps(forms))
    except pydantic.ValidationError as exc:
        raise InvalidMessageError(f"{where}: the stored Pydantic AI form does not validate: {exc}") from None


def _detail(vendor_metadata: object) -> str | None:
    detail = vendor_metadata.get("detail") if isinstance(vendor_metadata, Mapping) else None
    return detail if detail in _DETAILS else None


def thinking_text(content: str) -> str:
    """The text a ``ThinkingPart`` is counted as: what ``OpenAIChatModel`` sends back by default.

    Pydantic AI sends a response's reasoning back with the next request (``OpenAIChatModel``: in
    ``<think>`` tags in the content, or as its provider's ``reasoning_content`` field), so the window
    must count it; the tags cost a few tokens more than the field, never less.
    """
    return f"<think>\n{content}\n</think>"


def _nonempty(parts: list[Part], form: object) -> list[Part]:
    """``parts``, or the JSON text of ``form`` when they hold nothing convkit counts (never empty)."""
    if any(isinstance(p, ImagePart) or p.text.strip() for p in parts):
        return parts
    return [TextPart(_json(form))]


# -- Pydantic AI -> convkit -------------------------------------------------------------------------


def _user_parts(part: pm.UserPromptPart, form: dict[str, Any]) -> tuple[list[Part], list[int]]:
    """convkit parts of a user prompt, and the content indices whose bytes became image parts."""
    if isinstance(part.content, str):
        return [TextPart(part.content)], []
    parts: list[Part] = []
    from_bytes: list[int] = []
    for j, item in enumerate(part.content):
        if isinstance(item, str):
            parts.append(TextPart(item))
        elif isinstance(item, pm.TextContent):
            parts.append(TextPart(item.content))
        elif isinstance(item, pm.CachePoint):
            continue  # a marker for the provider's cache, not content
        elif isinstance(item, pm.ImageUrl) and item.url.startswith(("http://", "https://", "data:")):
            parts.append(ImagePart.from_url(item.url, detail=_detail(item.vendor_metadata)))
        elif isinstance(item, pm.BinaryContent) and item.is_image and item.media_type in _BYTES_IMAGES:
            parts.append(ImagePart.from_bytes(item.data, detail=_detail(item.vendor_metadata)))
            from_bytes.append(j)
        else:  # audio, documents, video, uploaded files, other images: counted as their JSON
            parts.append(TextPart(_json(form["content"][j])))
    return parts, from_bytes


def _request_message(part: object, form: dict[str, Any]) -> tuple[Message, list[int]]:
    """The convkit message of one request part (and the image indices of a user prompt)."""
    if isinstance(part, pm.SystemPromptPart):
        return Message("system", _nonempty([TextPart(part.content)], form)), []
    if isinstance(part, pm.UserPromptPart):
        parts, from_bytes = _user_parts(part, form)
        return Message("user", _nonempty(parts, form)), from_bytes
    if isinstance(part, pm.ToolReturnPart):
        text = part.model_response_str()
        return Message.tool(_nonempty([TextPart(text)], form), tool_call_id=part.tool_call_id), []
    if isinstance(part, pm.RetryPromptPart):  # legacy: answers its call when it names a tool
        text = part.model_response()
        if part.tool_name is not None:
            return Message.tool(_nonempty([TextPart(text)], form), tool_call_id=part.tool_call_id), []
        return Message("user", _nonempty([TextPart(text)], form)), []
    if isinstance(part, pm.RetryFeedbackPart):  # sent as this text, fenced, in the user voice
        return Message("user", _nonempty([TextPart(part.model_response())], form)), []
    return Message("user", [TextPart(_json(form))]), []  # framework parts: counted as their JSON


def _call(part: pm.ToolCallPart) -> ToolCall:
    args = part.args
    if isinstance(args, str):
        try:
            return ToolCall(part.tool_call_id, part.tool_name, args)  # the exact JSON text
        except InvalidMessageError:
            if not part.tool_call_id or not part.tool_name:
                raise
    text = "{}" if args is None else part.args_as_json_str()
    return ToolCall(part.tool_call_id, part.tool_name, text)


def _response_message(msg: pm.ModelResponse, forms: list[dict[str, Any]]) -> Message:
    """One assistant message: its texts joined as ``OpenAIChatModel`` sends them, and its tool calls."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    for part, form in zip(msg.parts, forms, strict=True):
        if isinstance(part, pm.TextPart):
            texts.append(part.content)
        elif isinstance(part, pm.ToolCallPart):
            calls.append(_call(part))
        elif isinstance(part, pm.ThinkingPart):  # sent back (as <think> text or a reasoning field): counted
            texts.append(thinking_text(part.content))
        else:  # built-in tool calls and returns, files, speech, compaction: counted as their JSON
            texts.append(_json(form))
    joined = "\n\n".join(texts)  # one content string, as the chat completions API takes it
    parts: list[Part] = [TextPart(joined)] if joined.strip() else []
    if not calls:
        parts = _nonempty(parts, forms)
    return Message("assistant", parts, calls)


def _converted(msg: object, *, with_info: bool) -> list[Message]:
    """The convkit messages of one ModelMessage (a response: one; a request: one per part)."""
    if not isinstance(msg, pm.ModelRequest | pm.ModelResponse):
        raise InvalidMessageError(
            f"a Pydantic AI message is a ModelRequest or a ModelResponse, got {type(msg).__name__}"
        )
    envelope = _dump(msg)
    forms: list[dict[str, Any]] = envelope.pop("parts")
    if isinstance(msg, pm.ModelResponse):
        out = _response_message(msg, forms)
        if not with_info:
            return [out]
        return [attrs.evolve(out, metadata={INFO_KEY: {"message": envelope, "parts": forms}})]
    if not msg.parts:  # an interrupted request with no tool returns collected
        out = Message("user", [TextPart(_json(envelope))])
        return (
            [attrs.evolve(out, metadata={INFO_KEY: {"message": envelope, "count": 0}})]
            if with_info
            else [out]
        )
    messages: list[Message] = []
    for i, (part, form) in enumerate(zip(msg.parts, forms, strict=True)):
        out, from_bytes = _request_message(part, form)
        if not with_info:
            messages.append(out)
            continue
        info: dict[str, Any] = {"message": envelope, "count": len(forms)} if i == 0 else {}
        stored = form
        if from_bytes:
            stored = {**form, "content": list(form["content"])}
            for j in from_bytes:
                stored["content"][j] = {**stored["content"][j], "data": None}  # the bytes: in the image part
            image_at = [
                k for k, p in enumerate(out.content) if isinstance(p, ImagePart) and p.data is not None
            ]
            info["images"] = [[j, k] for j, k in zip(from_bytes, image_at, strict=True)]
        info["part"] = stored
        messages.append(attrs.evolve(out, metadata={INFO_KEY: info}))
    return messages


def _check_list(messages: object, what: str) -> None:
    if isinstance(messages, str | bytes | Mapping | pm.ModelRequest | pm.ModelResponse) or not isinstance(
        messages, Iterable
    ):
        raise ValidationError(f"{what} takes a list of messages, got {type(messages).__name__}")


def from_pydantic_ai(messages: Sequence[pm.ModelMessage]) -> list[Message]:
    """The convkit messages of a Pydantic AI message list; see :mod:`convkit.integrations.pydantic_ai`.

    Raises :class:`~convkit.ValidationError` when ``messages`` is not a list,
    :class:`~convkit.InvalidMessageError` (naming the message) for what convkit
    cannot hold: a tool call without an id or name, two calls with one id, a
    JPEG or PNG that is not one (:class:`~convkit.InvalidImageError`).
    """
    _check_list(messages, "from_pydantic_ai")
    out: list[Message] = []
    for k, msg in enumerate(messages):
        try:
            out.extend(_converted(msg, with_info=True))
        except InvalidMessageError as exc:
            raise type(exc)(f"message {k}: {exc}") from None
    return out


# -- convkit -> Pydantic AI -------------------------------------------------------------------------


def _restored_part(m: Message, info: Mapping[str, Any]) -> dict[str, Any]:
    """The stored JSON form of a request part, with its image bytes put back."""
    form = dict(info["part"])
    images = info.get("images") or ()
    if images:
        form["content"] = list(form["content"])
        for j, k in images:
            part = m.content[k]
            if not isinstance(part, ImagePart) or part.data is None:
                raise InvalidMessageError(
                    f"the stored Pydantic AI form names image part {k}, which is not one"
                )
            form["content"][j] = {**form["content"][j], "data": base64.b64encode(part.data).decode("ascii")}
    return form


def _default_part(m: Message, tool_names: Mapping[str, str]) -> object:
    """The request part of a convkit system, user or tool message written by other means."""
    if m.role == "system":
        return pm.SystemPromptPart(m.text)
    if m.role == "tool":
        assert m.tool_call_id is not None
        name = tool_names.get(m.tool_call_id) or m.name
        if name is None:
            raise InvalidConversationError(
                f"tool message answers call {m.tool_call_id!r}, which no earlier assistant message made: "
                "Pydantic AI needs the tool's name (give the tool message a name, or its call)"
            )
        return pm.ToolReturnPart(tool_name=name, content=m.text, tool_call_id=m.tool_call_id)
    if len(m.content) == 1 and isinstance(m.content[0], TextPart):
        return pm.UserPromptPart(m.content[0].text)
    content: list[pm.UserContent] = []
    for p in m.content:
        if isinstance(p, TextPart):
            content.append(p.text)
            continue
        vendor = {"detail": p.detail} if p.detail is not None else None
        if p.data is not None:
            content.append(
                pm.BinaryImage(data=p.data, media_type=p.media_type or "image/png", vendor_metadata=vendor)
            )
        else:
            assert p.url is not None
            content.append(pm.ImageUrl(url=p.url, vendor_metadata=vendor))
    return pm.UserPromptPart(content)


def _default_response(m: Message) -> pm.ModelResponse:
    if any(isinstance(p, ImagePart) for p in m.content):
        raise InvalidMessageError(
            "an assistant message with an image has no Pydantic AI form (a response holds text)"
        )
    parts: list[pm.ModelResponsePart] = [pm.TextPart(m.text)] if m.content else []
    parts += [pm.ToolCallPart(c.name, c.arguments, c.id) for c in m.tool_calls]
    return pm.ModelResponse(parts=parts)


def _single_part(form: dict[str, Any], where: str) -> Any:
    request = _load([{"kind": "request", "parts": [form]}], where)[0]
    assert isinstance(request, pm.ModelRequest)
    return request.parts[0]


def to_pydantic_ai(messages: Iterable[MessageLike]) -> list[pm.ModelMessage]:
    """The Pydantic AI message list of convkit messages; see :mod:`convkit.integrations.pydantic_ai`.

    Messages made by :func:`from_pydantic_ai` come back exactly (a request
    whose parts are not all present, as in a window, comes back with those
    that are); others are mapped by role, consecutive system, user and tool
    messages forming one ``ModelRequest``. Raises
    :class:`~convkit.InvalidConversationError` for a tool message (not from
    Pydantic AI) whose call is not earlier in the list and that has no
    ``name``: a ``ToolReturnPart`` needs the tool's name.
    """
    _check_list(messages, "to_pydantic_ai")
    msgs = [as_message(m) for m in messages]
    out: list[pm.ModelMessage] = []
    pending: list[Any] = []  # parts of a request being gathered from messages written by other means
    tool_names: dict[str, str] = {}

    def flush() -> None:
        if pending:
            out.append(pm.ModelRequest(parts=list(pending)))
            pending.clear()

    i = 0
    while i < len(msgs):
        m, where = msgs[i], f"message {i}"
        for c in m.tool_calls:
            tool_names[c.id] = c.name
        info = m.metadata.get(INFO_KEY)
        if isinstance(info, Mapping) and isinstance(info.get("message"), Mapping):
            flush()
            envelope = dict(info["message"])
            if envelope.get("kind") == "response":
                out.extend(_load([{**envelope, "parts": info.get("parts", [])}], where))
                i += 1
                continue
            forms = [_restored_part(m, info)] if "part" in info else []
            i += 1
            while len(forms) < info.get("count", 0) and i < len(msgs):
                nxt = msgs[i].metadata.get(INFO_KEY)
                if not isinstance(nxt, Mapping) or "message" in nxt or "part" not in nxt:
                    break
                forms.append(_restored_part(msgs[i], nxt))
                i += 1
            out.extend(_load([{**envelope, "parts": forms}], where))
            continue
        if isinstance(info, Mapping) and isinstance(info.get("part"), Mapping):
            pending.append(_single_part(_restored_part(m, info), where))  # its request's head is not here
        elif m.role == "assistant":
            flush()
            out.append(_default_response(m))
        else:
            pending.append(_default_part(m, tool_names))
        i += 1
    flush()
    return out
