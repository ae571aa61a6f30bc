"""LangChain adapter: a chat message history on a convkit store, lossless conversion, ``fit_messages``.

Needs the ``langchain`` extra (``pip install 'convkit[langchain]'``,
``langchain-core>=0.3``).

* :func:`from_langchain` / :func:`to_langchain` convert one message each way
  (``SystemMessage``, ``HumanMessage``, ``AIMessage`` with tool calls,
  ``ToolMessage``, ``ChatMessage``; text, ``image_url`` blocks and
  LangChain's standard ``{"type": "image", ...}`` blocks, base64 or URL).
  Round trips are exact both ways: ``to_langchain(from_langchain(x)) == x``
  and ``from_langchain(to_langchain(m)) == m``. What convkit's message has no
  field for (LangChain ids, ``response_metadata``, other
  ``additional_kwargs``, the form of each content block, content blocks
  convkit does not send, such as reasoning) is kept in the convkit
  message's ``metadata["convkit.langchain"]`` -- without image data, which
  lives in the image parts (and, in a store, once per image). Tool-call
  arguments keep their exact JSON text: an ``AIMessage`` made by
  :func:`to_langchain` carries it in ``additional_kwargs["tool_calls"]``
  (the OpenAI form, as ``langchain-openai`` produces it), while
  ``tool_calls`` holds the parsed ``args`` LangChain wants; arguments that
  are JSON but not an object become ``invalid_tool_calls`` (LangChain's
  ``args`` must be a dict). convkit's ``pinned`` flag and ``metadata``
  travel in ``additional_kwargs["convkit"]`` (so
  ``AIMessage(..., additional_kwargs={"convkit": {"pinned": True}})`` pins a
  message).
* :class:`ConvkitChatMessageHistory` is a LangChain
  ``BaseChatMessageHistory`` over a :class:`~convkit.Store` (every method,
  sync and async; the async ones run the store in a worker thread) or an
  :class:`~convkit.AsyncStore` (the async methods ``aget_messages``,
  ``aadd_messages``, ``aclear`` and ``awindow`` only: an async engine cannot
  be driven from synchronous code, so the sync methods raise
  :class:`~convkit.ValidationError` saying so).
* :func:`fit_messages` is a drop-in for ``langchain_core.messages.trim_messages``
  (``strategy="last"``) that runs :func:`convkit.fit`: leading system and
  pinned messages stay, a tool call and its results are kept or dropped
  together, images are counted, and when the must-keep messages cannot fit a
  :class:`~convkit.ContextWindowError` says so instead of a broken history.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

import attrs
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    convert_to_messages,
    message_to_dict,
    messages_from_dict,
)
from langchain_core.messages.utils import count_tokens_approximately

from .._engine.units import must_keep_units, unit_lists, unit_starts
from ..counting import BaseCounter, EstimateCounter, ImagePolicy, TokenCounter
from ..errors import ContextWindowError, InvalidImageError, InvalidMessageError, ValidationError
from ..fitting import FitResult, fit
from ..history import History
from ..images import decode_data_url
from ..messages import ImagePart, Message, MessageLike, Part, TextPart, ToolCall, as_message
from ..models import ModelSpec, get_model

if TYPE_CHECKING:
    from langchain_core.messages.utils import MessageLikeRepresentation
    from langchain_core.prompt_values import PromptValue

    from ..store import AsyncStore, Store

__all__ = [
    "EXTRAS_KEY",
    "INFO_KEY",
    "ConvkitChatMessageHistory",
    "fit_messages",
    "from_langchain",
    "to_langchain",
]

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
_DETAILS = (None, "auto", "low", "high")


# -- helpers ------------------------------------------------------------------------------------


def _same(a: object, b: object) -> bool:
    """Equal as JSON, types included (``1 != 1.0 != True``); plain ``==`` for non-JSON values."""
    try:
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    except (TypeError, ValueError):
        try:
            return bool(a == b)
        except Exception:
            return False


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _decode_b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImageError("an image block's base64 data is not valid base64") from None


def _image_from_url(url: object, detail: object) -> ImagePart:
    if not isinstance(url, str):
        raise InvalidImageError(f"an image URL is a string, got {type(url).__name__}")
    return ImagePart.from_url(url, detail=detail if isinstance(detail, str) and detail in _DETAILS else None)


def _url_how(original: str, part: ImagePart) -> Any:
    """How to spell ``part`` as ``original`` again: None (its own URL), a data-URL prefix, or raw."""
    if part.openai_url() == original:
        return None
    if part.data is not None and original.startswith("data:"):
        head, _, payload = original.partition(",")
        if payload == _b64(part.data):
            return {"prefix": head + ","}
    return {"raw": original}


def _b64_how(original: str, part: ImagePart) -> Any:
    return None if part.data is not None and original == _b64(part.data) else {"raw": original}


# -- content blocks -----------------------------------------------------------------------------
#
# A LangChain content list is remembered as a list of entries, one per item:
#   "str"                                  a plain string item (the next part, a TextPart)
#   {"part": block, "at": [...], "enc": e, "how": h}
#                                          a block that became the next part; ``block`` is the
#                                          original with the payload (text, URL, base64) at
#                                          path ``at`` set to None; ``enc`` is text, url or b64
#   {"keep": block}                        a block convkit does not send (kept verbatim)


def _parse_block(block: Mapping[str, Any]) -> tuple[Part, dict[str, Any]] | None:
    """The part a content block holds and its entry, or None for a block convkit does not send."""
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        return TextPart(block["text"]), {"at": ["text"], "enc": "text", "how": None}
    if kind == "image_url":
        spec = block.get("image_url")
        if isinstance(spec, Mapping):
            part = _image_from_url(spec.get("url"), spec.get("detail"))
            return part, {"at": ["image_url", "url"], "enc": "url", "how": _url_how(spec["url"], part)}
        part = _image_from_url(spec, None)
        return part, {"at": ["image_url"], "enc": "url", "how": _url_how(cast(str, spec), part)}
    if kind == "image":
        for key in ("base64", "data"):
            raw = block.get(key)
            if isinstance(raw, str) and (key == "base64" or block.get("source_type") == "base64"):
                part = ImagePart.from_bytes(_decode_b64(raw))
                return part, {"at": [key], "enc": "b64", "how": _b64_how(raw, part)}
        if isinstance(block.get("url"), str):
            part = _image_from_url(block["url"], None)
            return part, {"at": ["url"], "enc": "url", "how": _url_how(block["url"], part)}
        raise InvalidImageError(
            "an image block needs its bytes (base64) or a URL; convkit cannot count or store an image "
            "given only by a file id"
        )
    return None


def _parse_content(content: object) -> tuple[list[Part], list[Any] | None]:
    """Parts of a LangChain ``content`` and, for a list, its entries (see above)."""
    if isinstance(content, str):
        return ([TextPart(content)] if content else []), None
    if not isinstance(content, list):
        raise InvalidMessageError(f"LangChain content is a str or a list, got {type(content).__name__}")
    parts: list[Part] = []
    entries: list[Any] = []
    for item in content:
        if isinstance(item, str):
            parts.append(TextPart(item))
            entries.append("str")
            continue
        if not isinstance(item, Mapping):
            raise InvalidMessageError(f"a content block is a str or a dict, got {type(item).__name__}")
        parsed = _parse_block(item)
        if parsed is None:
            entries.append({"keep": dict(item)})
            continue
        part, entry = parsed
        template = copy.deepcopy(dict(item))
        holder: Any = template
        for key in entry["at"][:-1]:
            holder = holder[key]
        holder[entry["at"][-1]] = None
        parts.append(part)
        entries.append({"part": template, **entry})
    return parts, entries


def _render(parts: Sequence[Part]) -> str | list[str | dict[str, Any]]:
    """The default LangChain content of convkit parts."""
    if not parts:
        return ""
    if len(parts) == 1 and isinstance(parts[0], TextPart) and parts[0].text:
        return parts[0].text
    return [{"type": "text", "text": p.text} if isinstance(p, TextPart) else p.to_openai() for p in parts]


def _payload(part: Part, enc: str, how: Any) -> str | None:
    raw = how.get("raw") if isinstance(how, Mapping) else None
    if enc == "text":
        return part.text if isinstance(part, TextPart) else None
    if not isinstance(part, ImagePart):
        return None
    if enc == "b64":
        if part.data is None:
            return None
        if isinstance(raw, str) and _decode_b64(raw) == part.data:
            return raw
        return _b64(part.data)
    if isinstance(raw, str):
        same = raw == part.url or (
            part.data is not None and raw.startswith("data:") and decode_data_url(raw)[1] == part.data
        )
        if same:
            return raw
    prefix = how.get("prefix") if isinstance(how, Mapping) else None
    if isinstance(prefix, str) and part.data is not None:
        return prefix + _b64(part.data)
    return part.openai_url()


def _fill(entries: object, parts: Sequence[Part]) -> list[Any] | None:
    """The original content list back from its entries, or None when they no longer match."""
    if not isinstance(entries, list):
        return None
    out: list[Any] = []
    queue = list(parts)
    try:
        for entry in entries:
            if entry == "str":
                part = queue.pop(0)
                if not isinstance(part, TextPart):
                    return None
                out.append(part.text)
            elif "keep" in entry:
                out.append(copy.deepcopy(entry["keep"]))
            else:
                block = copy.deepcopy(entry["part"])
                value = _payload(queue.pop(0), entry["enc"], entry.get("how"))
                if value is None:
                    return None
                holder = block
                for key in entry["at"][:-1]:
                    holder = holder[key]
                holder[entry["at"][-1]] = value
                out.append(block)
    except (IndexError, KeyError, TypeError, InvalidImageError):
        return None
    return out if not queue else None


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


# -- the chat message history ---------------------------------------------------------------------


class ConvkitChatMessageHistory(BaseChatMessageHistory):
    """A LangChain chat message history stored in a convkit conversation.

    ``store`` is a :class:`~convkit.Store` (every method works; the async
    ones run it in a worker thread) or an :class:`~convkit.AsyncStore` (only
    the async methods: ``aget_messages``, ``aadd_messages``, ``aclear``,
    ``awindow``). The conversation must exist (see :meth:`create`).
    ``add_messages`` is one transaction; ``clear`` empties the conversation
    (it stays, with its id). :meth:`window` / :meth:`awindow` give the
    messages that fit a Grok model, as ``store.window`` chooses them.
    """

    def __init__(self, store: Store | AsyncStore, conversation_id: str) -> None:
        from ..store import AsyncStore, Store

        if not isinstance(store, Store | AsyncStore):
            raise ValidationError(f"store must be a convkit Store or AsyncStore, got {type(store).__name__}")
        super().__init__()
        self.store = store
        self.conversation_id = conversation_id

    @classmethod
    def create(cls, store: Store, *, title: str | None = None) -> ConvkitChatMessageHistory:
        """A history on a new conversation of ``store``."""
        return cls(store, store.create_conversation(title=title).id)

    @classmethod
    async def acreate(
        cls, store: Store | AsyncStore, *, title: str | None = None
    ) -> ConvkitChatMessageHistory:
        """A history on a new conversation of ``store`` (async)."""
        sync = _sync_store(store)
        if sync is not None:
            conv = await asyncio.to_thread(sync.create_conversation, title=title)
        else:
            conv = await cast("AsyncStore", store).create_conversation(title=title)
        return cls(store, conv.id)

    def __repr__(self) -> str:
        return f"ConvkitChatMessageHistory({self.store!r}, {self.conversation_id!r})"

    def _sync(self, what: str) -> Store:
        store = _sync_store(self.store)
        if store is None:
            raise ValidationError(
                f"{what} is synchronous but this history is backed by an AsyncStore; use the async "
                "methods (aget_messages, aadd_messages, aclear, awindow) or back it with a Store"
            )
        return store

    # -- sync -----------------------------------------------------------------------------------
    @property
    def messages(self) -> list[BaseMessage]:
        """Every message of the conversation, as LangChain messages."""
        return [to_langchain(m) for m in self._sync("messages").messages(self.conversation_id)]

    @messages.setter
    def messages(self, value: Sequence[BaseMessage]) -> None:
        """Replace the conversation's messages (``clear`` then ``add_messages``)."""
        store = self._sync("messages")
        converted = [from_langchain(m) for m in value]
        store.truncate(self.conversation_id, 0)
        store.extend(self.conversation_id, converted)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append messages in one transaction (all or none)."""
        converted = [from_langchain(m) for m in messages]
        self._sync("add_messages").extend(self.conversation_id, converted)

    def clear(self) -> None:
        """Delete every message of the conversation (the conversation itself stays)."""
        self._sync("clear").truncate(self.conversation_id, 0)

    def window(self, *, model: str | ModelSpec, **kwargs: Any) -> list[BaseMessage]:
        """The messages to send to ``model`` now (``store.window(...)``, as LangChain messages)."""
        result = self._sync("window").window(self.conversation_id, model=model, **kwargs)
        return [to_langchain(m) for m in result.messages]

    # -- async ----------------------------------------------------------------------------------
    async def aget_messages(self) -> list[BaseMessage]:
        sync = _sync_store(self.store)
        if sync is not None:
            stored = await asyncio.to_thread(sync.messages, self.conversation_id)
        else:
            stored = await cast("AsyncStore", self.store).messages(self.conversation_id)
        return [to_langchain(m) for m in stored]

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        converted = [from_langchain(m) for m in messages]
        sync = _sync_store(self.store)
        if sync is not None:
            await asyncio.to_thread(sync.extend, self.conversation_id, converted)
        else:
            await cast("AsyncStore", self.store).extend(self.conversation_id, converted)

    async def aclear(self) -> None:
        sync = _sync_store(self.store)
        if sync is not None:
            await asyncio.to_thread(sync.truncate, self.conversation_id, 0)
        else:
            await cast("AsyncStore", self.store).truncate(self.conversation_id, 0)

    async def awindow(self, *, model: str | ModelSpec, **kwargs: Any) -> list[BaseMessage]:
        """The messages to send to ``model`` now (async)."""
        sync = _sync_store(self.store)
        result: FitResult
        if sync is not None:
            result = await asyncio.to_thread(lambda: sync.window(self.conversation_id, model=model, **kwargs))
        else:
            result = await cast("AsyncStore", self.store).window(self.conversation_id, model=model, **kwargs)
        return [to_langchain(m) for m in result.messages]


def _sync_store(store: object) -> Store | None:
    from ..store import Store

    return store if isinstance(store, Store) else None


# -- fit_messages ---------------------------------------------------------------------------------

LangChainTokenCounter: TypeAlias = (
    "Callable[[list[BaseMessage]], int] | Callable[[BaseMessage], int] | Any | Literal['approximate']"
)
MessageTypes: TypeAlias = "str | type[BaseMessage] | Sequence[str | type[BaseMessage]]"


def _list_counter(token_counter: Any) -> Callable[[list[BaseMessage]], int]:
    """A list token counter, resolved as ``trim_messages`` resolves its ``token_counter``."""
    if token_counter == "approximate":
        return count_tokens_approximately
    if hasattr(token_counter, "get_num_tokens_from_messages"):
        return cast(Callable[[list[BaseMessage]], int], token_counter.get_num_tokens_from_messages)
    if not callable(token_counter):
        raise ValidationError(
            "token_counter is a function of a list of messages (or of one message), a LangChain chat "
            f"model, or 'approximate'; got {type(token_counter).__name__}"
        )
    import inspect

    params = list(inspect.signature(token_counter).parameters.values())
    if params and params[0].annotation in (BaseMessage, "BaseMessage"):
        per_message = cast(Callable[[BaseMessage], int], token_counter)
        return lambda msgs: sum(per_message(m) for m in msgs)
    return cast(Callable[[list[BaseMessage]], int], token_counter)


class _CallableCounter(BaseCounter):
    """A convkit counter over a LangChain token counter (used with counts known in advance)."""

    def __init__(self, count: Callable[[list[BaseMessage]], int], base: int) -> None:
        super().__init__()
        self._count = count
        self._base = base

    @property
    def identity(self) -> str:
        return f"langchain-token-counter:{id(self._count)}"

    def _encode(self, texts: list[str]) -> list[int]:
        return [max(0, int(self._count([HumanMessage(t)])) - self._base) for t in texts]

    def content_tokens(self, messages: Sequence[Message]) -> list[int]:
        return [max(0, int(self._count([to_langchain(m)])) - self._base) for m in messages]


def _matches(msg: BaseMessage, types: MessageTypes) -> bool:
    wanted = [types] if isinstance(types, str | type) else list(types)
    names = [t for t in wanted if isinstance(t, str)]
    classes = tuple(t for t in wanted if isinstance(t, type))
    return msg.type in names or isinstance(msg, classes)


def _must_keep(messages: Sequence[Message]) -> list[int]:
    """Indices fit always keeps: units with a leading system or pinned message, and the newest turn."""
    units = unit_starts(messages)
    keep = must_keep_units(messages, units)
    return [i for u, unit in enumerate(unit_lists(units, len(messages))) if keep[u] for i in unit]


def _start_on(
    kept: list[int], messages: Sequence[Message], start_on: MessageTypes, lc: Sequence[BaseMessage]
) -> list[int]:
    """Drop the oldest kept droppable units until the oldest one starts with a ``start_on`` message."""
    units = unit_starts(messages)
    keep = must_keep_units(messages, units)
    kept_set = set(kept)
    out: list[int] = []
    dropping = True
    for u, unit in enumerate(unit_lists(units, len(messages))):
        mine = [i for i in unit if i in kept_set]
        if not mine:
            continue
        if dropping and not keep[u]:
            if not _matches(lc[mine[0]], start_on):
                continue
            dropping = False
        out.extend(mine)
    return out


def _without_images(msg: BaseMessage, note: str) -> BaseMessage:
    if not isinstance(msg.content, list):
        return msg
    content: list[Any] = []
    for block in msg.content:
        is_image = isinstance(block, Mapping) and block.get("type") in ("image_url", "image")
        content.append({"type": "text", "text": note} if is_image else block)
    return msg.model_copy(update={"content": content})


def fit_messages(
    messages: Iterable[MessageLikeRepresentation] | PromptValue,
    *,
    max_tokens: int,
    model: str | ModelSpec | None = None,
    counter: TokenCounter | None = None,
    token_counter: LangChainTokenCounter | None = None,
    strategy: Literal["last"] = "last",
    allow_partial: bool = False,
    end_on: MessageTypes | None = None,
    start_on: MessageTypes | None = None,
    include_system: bool = True,
    text_splitter: Any = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    images: ImagePolicy = "error",
) -> list[BaseMessage]:
    """``trim_messages(strategy="last")``, but through :func:`convkit.fit`: the newest that fit, safely.

    Returns the input's own message objects (a subset, in order) whose count
    is at most ``max_tokens``:

    * with ``token_counter`` (what ``trim_messages`` takes: a function of a
      list of messages or of one message, a chat model, or
      ``"approximate"``), counted by it: ``token_counter(result) <=
      max_tokens`` is checked on the result, so a counter that is not
      additive over messages is still obeyed;
    * else with convkit's rules for ``model`` (``counter``: a convkit token
      counter, default :class:`~convkit.EstimateCounter`; images by the tile
      rule; ``tools`` count too), within ``min(max_tokens, context window)``
      less the counter's safety margin. ``model=None`` means Grok's chat
      template with images allowed and ``max_tokens`` as the window.

    Unlike ``trim_messages``, leading system messages and messages pinned
    through ``additional_kwargs["convkit"]["pinned"]`` are always kept
    (``include_system`` is accepted and ignored), a tool call and its results
    are kept or dropped together, and when the must-keep messages cannot fit
    a :class:`~convkit.ContextWindowError` is raised. ``end_on`` drops
    trailing messages first, as in ``trim_messages``; ``start_on`` then drops
    the oldest kept droppable units until the oldest starts with such a
    message. ``strategy="first"`` and ``allow_partial=True`` are refused
    (:class:`~convkit.ValidationError`): convkit keeps the newest messages
    and never splits one. A tool result whose call is not in ``messages``
    raises :class:`~convkit.InvalidConversationError`.
    """
    del include_system, text_splitter  # accepted for compatibility with trim_messages
    if strategy != "last":
        raise ValidationError("fit_messages keeps the newest messages: strategy must be 'last'")
    if allow_partial:
        raise ValidationError("fit_messages never splits a message: allow_partial must be False")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        raise ValidationError(f"max_tokens is a non-negative number of tokens, got {max_tokens!r}")
    lc = convert_to_messages(messages)
    if end_on is not None:
        while lc and not _matches(lc[-1], end_on):
            lc.pop()
    if not lc:
        return []
    converted: list[Message] = []
    for i, msg in enumerate(lc):
        try:
            converted.append(_convert(msg, with_info=False))
        except InvalidMessageError as exc:
            raise type(exc)(f"message {i}: {exc}") from None
    if token_counter is not None:
        return _fit_counted(lc, converted, max_tokens, _list_counter(token_counter), start_on, tools)
    spec = (
        get_model(model)
        if model is not None
        else ModelSpec("langchain", max(1, max_tokens), {"text", "image"})
    )
    window = min(max_tokens, spec.context_window) if model is not None else max_tokens
    spec = attrs.evolve(spec, context_window=max(1, window))
    result = fit(
        converted,
        model=spec,
        counter=counter if counter is not None else EstimateCounter(),
        reserve=spec.context_window - window,
        tools=tools,
        images=images,
    )
    kept = result.kept if start_on is None else _start_on(result.kept, converted, start_on, lc)
    if result.messages == tuple(converted[i] for i in result.kept):
        return [lc[i] for i in kept]
    sent = dict(zip(result.kept, result.messages, strict=True))
    note = f"[image omitted: {spec.name} does not accept images]"
    return [lc[i] if sent[i] == converted[i] else _without_images(lc[i], note) for i in kept]


def _fit_counted(
    lc: list[BaseMessage],
    converted: list[Message],
    max_tokens: int,
    count: Callable[[list[BaseMessage]], int],
    start_on: MessageTypes | None,
    tools: Sequence[Mapping[str, Any]] | None,
) -> list[BaseMessage]:
    """fit with counts from a LangChain token counter; shrink the budget until it obeys the counter."""
    base = max(0, int(count([])))
    counts = [max(0, int(count([m])) - base) for m in lc]
    counter = _CallableCounter(count, base)
    spec = ModelSpec(
        "token_counter", max(1, max_tokens), {"text", "image"}, message_overhead=0, request_overhead=base
    )
    history = History(converted, counter=counter, counts=counts)
    reserve = spec.context_window - max_tokens
    while True:
        try:
            result = fit(history, model=spec, counter=counter, reserve=reserve, tools=tools)
        except ContextWindowError:
            # decide by the token counter itself (per-message counts may round up where it does not)
            must = [lc[i] for i in _must_keep(converted)]
            required = int(count(must))
            if required <= max_tokens:
                return must
            raise ContextWindowError(
                required=required,
                available=max_tokens,
                model="token_counter",
                detail="counted by the given token_counter; the must-keep part is the leading system and "
                "pinned messages and the newest message with its tool group",
            ) from None
        kept = result.kept if start_on is None else _start_on(result.kept, converted, start_on, lc)
        out = [lc[i] for i in kept]
        actual = int(count(out))
        if actual <= max_tokens:
            return out
        reserve += actual - max_tokens
