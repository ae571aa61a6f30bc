"""Messages and their parts, as frozen values, and their OpenAI/xAI dict shape.

A :class:`Message` has a role (system, user, assistant, tool), an ordered
tuple of parts (:class:`TextPart`, :class:`ImagePart`, in any order), the
assistant's :class:`ToolCall` s (``arguments`` kept as the exact JSON text
received), the ``tool_call_id`` a tool message answers, an optional ``name``,
a ``pinned`` flag (convkit's: pinned messages are never trimmed) and free
JSON ``metadata``.

Invariants, checked when a value is built (so a Message that exists is
valid): the role is known; the message is not empty, except an assistant
reply cut off by ``max_tokens`` before any text (``metadata`` holding
``{"finish_reason": "length"}``, see :data:`CUT_OFF`: xAI billed it, so it is
kept as the empty reply it is; it is sent as ``content: ""``, and an assistant
dict with ``content: ""`` reads back as one); only assistants carry
tool calls, whose ids are unique and whose arguments parse as JSON; only tool
messages carry (and must carry) ``tool_call_id``; image bytes are a JPEG or
PNG of at most 10 MiB. ``Message.from_openai(m.to_openai()) == m`` for any
message without convkit's own fields, and ``Message.from_dict(m.to_dict())
== m`` for every message.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeAlias, cast

import attrs

from ._errors import InvalidImageError, InvalidMessageError
from ._images import decode_data_url, encode_data_url, image_tokens, inspect_image

__all__ = [
    "CUT_OFF",
    "CUT_OFF_KEY",
    "EMPTY_MESSAGE",
    "ROLES",
    "ImagePart",
    "Message",
    "MessageLike",
    "Part",
    "Role",
    "TextPart",
    "ToolCall",
    "as_message",
    "as_messages",
]

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
_DETAILS = (None, "auto", "low", "high")


def _check_encodable(value: str, what: str) -> None:
    """Refuse text that is not valid Unicode (lone surrogates cannot be sent, stored or counted)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidMessageError(
            f"{what} holds a lone surrogate at position {exc.start} (text decoded with errors="
            "'surrogateescape' or from broken UTF-16?); decode it properly first"
        ) from None


@attrs.frozen
class TextPart:
    """A piece of text in a message."""

    text: str = attrs.field()

    @text.validator
    def _check(self, _a: object, value: object) -> None:
        if not isinstance(value, str):
            raise InvalidMessageError(f"text part must hold a str, got {type(value).__name__}")
        _check_encodable(value, "text")

    def to_openai(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}


@attrs.frozen(cache_hash=True)
class ImagePart:
    """An image: raw bytes (JPEG/PNG, at most 10 MiB) or an http(s) URL xAI fetches.

    Build one with :meth:`from_bytes` or :meth:`from_url`. ``width`` and
    ``height`` are read from the bytes; for a URL they are optional and, when
    unknown, the image costs the maximum 1792 tokens.
    """

    data: bytes | None = attrs.field(default=None, repr=lambda d: f"<{len(d)} bytes>" if d else "None")
    url: str | None = None
    media_type: str | None = None
    width: int | None = None
    height: int | None = None
    detail: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.data is None) == (self.url is None):
            raise InvalidImageError(
                "an image part holds either bytes (data=) or a URL (url=), not both or neither"
            )
        if self.detail not in _DETAILS:
            raise InvalidImageError(f"image detail must be one of auto, low, high; got {self.detail!r}")
        if self.data is not None:
            if not isinstance(self.data, bytes):
                raise InvalidImageError(f"image data must be bytes, got {type(self.data).__name__}")
            media, width, height = inspect_image(self.data)
            object.__setattr__(self, "media_type", media)
            object.__setattr__(self, "width", width)
            object.__setattr__(self, "height", height)
        else:
            assert self.url is not None
            if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
                raise InvalidImageError(
                    "an image URL must start with http:// or https://; pass image bytes with "
                    "ImagePart.from_bytes() or a base64 data URL through Message.from_openai()"
                )
            _check_encodable(self.url, "image URL")
            for dim in (self.width, self.height):
                if dim is not None and (not isinstance(dim, int) or dim <= 0):
                    raise InvalidImageError(f"image width and height must be positive integers, got {dim!r}")
            if (self.width is None) != (self.height is None):
                raise InvalidImageError("give both width and height of a URL image, or neither")

    @classmethod
    def from_bytes(cls, data: bytes, *, detail: str | None = None) -> ImagePart:
        """An image from its file bytes; raises InvalidImageError for non-images or over 10 MiB."""
        return cls(data=data, detail=detail)

    @classmethod
    def from_url(
        cls, url: str, *, width: int | None = None, height: int | None = None, detail: str | None = None
    ) -> ImagePart:
        """An image xAI fetches itself; a ``data:`` URL is decoded and checked instead."""
        if isinstance(url, str) and url.startswith("data:"):
            _media, data = decode_data_url(url)
            return cls(data=data, detail=detail)
        return cls(url=url, width=width, height=height, detail=detail)

    @property
    def tokens(self) -> int:
        """Prompt tokens this image costs (tile rule)."""
        return image_tokens(self.width, self.height)

    @property
    def sha256(self) -> str:
        """Hex digest of the bytes (or of the URL for a URL image): its storage key."""
        payload = self.data if self.data is not None else (self.url or "").encode()
        return hashlib.sha256(payload).hexdigest()

    def openai_url(self) -> str:
        if self.data is not None:
            return encode_data_url(self.media_type or "image/png", self.data)
        assert self.url is not None
        return self.url

    def to_openai(self) -> dict[str, Any]:
        image_url: dict[str, Any] = {"url": self.openai_url()}
        if self.detail is not None:
            image_url["detail"] = self.detail
        return {"type": "image_url", "image_url": image_url}


Part: TypeAlias = TextPart | ImagePart


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


@attrs.frozen
class ToolCall:
    """A function call the assistant asked for; ``arguments`` is the JSON text, verbatim."""

    id: str
    name: str
    arguments: str = "{}"
    type: str = "function"

    def __attrs_post_init__(self) -> None:
        for field in ("id", "name"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value:
                raise InvalidMessageError(f"tool call {field} must be a non-empty string, got {value!r}")
        for field in ("id", "name"):
            _check_encodable(getattr(self, field), f"tool call {field}")
        if not isinstance(self.type, str) or not self.type:
            raise InvalidMessageError(f"tool call type must be a non-empty string, got {self.type!r}")
        _check_encodable(self.type, "tool call type")
        if isinstance(self.arguments, str):
            _check_encodable(self.arguments, "tool call arguments")
        if not isinstance(self.arguments, str):
            raise InvalidMessageError(
                f"tool call {self.id!r}: arguments must be JSON text (a str), got "
                f"{type(self.arguments).__name__}; pass json.dumps(arguments)"
            )
        try:
            json.loads(self.arguments, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise InvalidMessageError(
                f"tool call {self.id!r} ({self.name}): arguments are not valid JSON ({exc.msg} at "
                f"position {exc.pos}); send the exact JSON text of the arguments"
            ) from None
        except ValueError as exc:  # NaN / Infinity: Python accepts them, JSON (RFC 8259) does not
            raise InvalidMessageError(
                f"tool call {self.id!r} ({self.name}): arguments are not valid JSON ({exc}); "
                "send the exact JSON text of the arguments"
            ) from None

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "function": {"name": self.name, "arguments": self.arguments},
        }

    @classmethod
    def from_openai(cls, d: object) -> ToolCall:
        if not isinstance(d, Mapping):
            raise InvalidMessageError(f"a tool call is a dict, got {type(d).__name__}")
        fn = d.get("function")
        if not isinstance(fn, Mapping):
            raise InvalidMessageError("a tool call needs a 'function' object with 'name' and 'arguments'")
        kind = d.get("type") or "function"
        return cls(
            id=cast(str, d.get("id")),
            name=cast(str, fn.get("name")),
            arguments=cast(str, fn.get("arguments", "{}")),
            type=str(kind),
        )


def _to_parts(value: object) -> tuple[Part, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (TextPart(value),)
    if isinstance(value, TextPart | ImagePart):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        parts: list[Part] = []
        for item in value:
            if isinstance(item, str):
                parts.append(TextPart(item))
            elif isinstance(item, TextPart | ImagePart):
                parts.append(item)
            else:
                raise InvalidMessageError(
                    f"message content parts are str, TextPart or ImagePart; got {type(item).__name__}"
                )
        return tuple(parts)
    raise InvalidMessageError(f"message content must be a str or a list of parts, got {type(value).__name__}")


def _to_calls(value: object) -> tuple[ToolCall, ...]:
    if value is None:
        return ()
    if isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
        calls = tuple(value)
        for c in calls:
            if not isinstance(c, ToolCall):
                raise InvalidMessageError(f"tool_calls holds ToolCall values, got {type(c).__name__}")
        return cast(tuple[ToolCall, ...], calls)
    raise InvalidMessageError("tool_calls must be a list of ToolCall")


#: How deep metadata may nest (objects and arrays); deeper cannot be read back by every JSON parser.
MAX_METADATA_DEPTH = 64


def check_json_value(value: object, path: str, depth: int = 0) -> None:
    """Refuse what would not come back equal from JSON: non-str keys, tuples, sets, NaN/inf, other types."""
    if depth > MAX_METADATA_DEPTH:
        raise InvalidMessageError(
            f"{path} is nested more than {MAX_METADATA_DEPTH} levels deep; flatten the metadata"
        )
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        _check_encodable(value, path)
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMessageError(
                f"{path} is {value!r}, which JSON cannot hold; store a finite number, a string or null"
            )
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidMessageError(
                    f"{path}[{key!r}]: metadata keys must be strings, got {type(key).__name__} "
                    "(JSON would turn it into a string, so it would not come back equal); use str keys"
                )
            _check_encodable(key, f"{path} key {key!r}")
            check_json_value(item, f"{path}[{key!r}]", depth + 1)
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_json_value(item, f"{path}[{i}]", depth + 1)
        return
    hint = " (JSON would make it a list)" if isinstance(value, tuple) else ""
    raise InvalidMessageError(
        f"{path} is of type {type(value).__name__}{hint}, which does not round-trip as JSON; "
        "metadata must be JSON-serializable: dicts with str keys, lists, str, int, finite float, "
        "bool and None"
    )


def _to_metadata(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidMessageError(f"metadata must be a dict, got {type(value).__name__}")
    check_json_value(value, "metadata")
    return dict(value)


#: The metadata key, and the metadata, of an assistant reply xAI cut off (``finish_reason:
#: "length"``, the ``max_tokens`` budget spent) before any text or tool call: the one empty
#: message a Message may be, so that a billed, truncated reply is stored as what it is.
CUT_OFF_KEY = "finish_reason"
#: How the error of a message with nothing to send says so (adapters recognise it).
EMPTY_MESSAGE = "message is empty"
CUT_OFF: Mapping[str, Any] = {CUT_OFF_KEY: "length"}

_OPENAI_KEYS = frozenset({"role", "content", "tool_calls", "tool_call_id", "name"})
_EXTRA_KEYS = frozenset({"pinned", "metadata"})


@attrs.frozen(cache_hash=True)
class Message:
    """One message of a conversation (see the module docstring for its invariants)."""

    role: Role
    content: tuple[Part, ...] = attrs.field(default=(), converter=_to_parts)
    tool_calls: tuple[ToolCall, ...] = attrs.field(default=(), converter=_to_calls)
    tool_call_id: str | None = None
    name: str | None = None
    pinned: bool = False
    metadata: dict[str, Any] = attrs.field(factory=dict, converter=_to_metadata, hash=False)

    def __attrs_post_init__(self) -> None:
        role = self.role
        if role not in ROLES:
            raise InvalidMessageError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        if not isinstance(self.pinned, bool):
            raise InvalidMessageError(f"pinned must be true or false (a JSON boolean), got {self.pinned!r}")
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise InvalidMessageError(f"name must be a non-empty string when given, got {self.name!r}")
        if self.name is not None:
            _check_encodable(self.name, "name")
        if self.tool_calls:
            if role != "assistant":
                raise InvalidMessageError(f"only assistant messages carry tool_calls, not {role!r} messages")
            ids = [c.id for c in self.tool_calls]
            if len(set(ids)) != len(ids):
                raise InvalidMessageError(f"tool call ids within a message must be unique: {ids}")
        if role == "tool":
            if not isinstance(self.tool_call_id, str) or not self.tool_call_id:
                raise InvalidMessageError(
                    "a tool message needs tool_call_id: the id of the assistant's tool call it answers"
                )
            _check_encodable(self.tool_call_id, "tool_call_id")
        elif self.tool_call_id is not None:
            raise InvalidMessageError(f"only tool messages carry tool_call_id, not {role!r} messages")
        if (
            not self.tool_calls
            and not any(isinstance(p, ImagePart) or p.text.strip() for p in self.content)
            and not (role == "assistant" and not self.content and self.metadata.get(CUT_OFF_KEY) == "length")
        ):
            raise InvalidMessageError(
                f"{role} {EMPTY_MESSAGE}: give it text, an image, or (assistant) tool calls"
            )

    # -- convenience constructors -------------------------------------------------
    @classmethod
    def system(cls, content: str | Sequence[Part | str], **kw: Any) -> Message:
        return cls("system", content, **kw)

    @classmethod
    def user(cls, content: str | Sequence[Part | str], **kw: Any) -> Message:
        return cls("user", content, **kw)

    @classmethod
    def assistant(
        cls,
        content: str | Sequence[Part | str] | None = None,
        *,
        tool_calls: Sequence[ToolCall] = (),
        **kw: Any,
    ) -> Message:
        return cls("assistant", content, tool_calls, **kw)

    @classmethod
    def tool(cls, content: str | Sequence[Part | str], *, tool_call_id: str, **kw: Any) -> Message:
        return cls("tool", content, tool_call_id=tool_call_id, **kw)

    # -- views --------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The text parts joined by newlines."""
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(p for p in self.content if isinstance(p, ImagePart))

    # -- dict shapes ----------------------------------------------------------------
    def to_openai(self) -> dict[str, Any]:
        """The OpenAI/xAI request shape (no convkit-only fields)."""
        out: dict[str, Any] = {"role": self.role}
        content = self.content
        if not content:
            out["content"] = None if self.tool_calls else ""  # "": an empty reply cut off (CUT_OFF)
        elif len(content) == 1 and isinstance(content[0], TextPart):
            out["content"] = content[0].text
        else:
            out["content"] = [p.to_openai() for p in content]
        if self.tool_calls:
            out["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        return out

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI shape plus convkit's ``pinned``, ``metadata`` and known URL-image sizes."""
        out = self.to_openai()
        if isinstance(out["content"], list):
            for part, d in zip(self.content, out["content"], strict=True):
                if isinstance(part, ImagePart) and part.url is not None and part.width is not None:
                    d["width"], d["height"] = part.width, part.height
        if self.pinned:
            out["pinned"] = True
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out

    @classmethod
    def from_openai(cls, d: Mapping[str, Any]) -> Message:
        """Build from an OpenAI/xAI-shaped dict (convkit's ``pinned``/``metadata`` keys accepted)."""
        if not isinstance(d, Mapping):
            raise InvalidMessageError(
                f"a message is a dict with 'role' and 'content', got {type(d).__name__}"
            )
        allowed = _OPENAI_KEYS | _EXTRA_KEYS
        unknown = [k for k, v in d.items() if k not in allowed and v is not None]
        if unknown:
            raise InvalidMessageError(
                f"unknown message field(s) {sorted(unknown)}; accepted: "
                f"{', '.join(sorted(_OPENAI_KEYS | _EXTRA_KEYS))}"
            )
        if "role" not in d:
            raise InvalidMessageError("message has no 'role'")
        content = d.get("content")
        parts: tuple[Part, ...]
        if isinstance(content, list):
            parts = tuple(_part_from_openai(p) for p in content)
        elif content is None or isinstance(content, str):
            parts = _to_parts(content)
        else:
            raise InvalidMessageError(
                f"message content must be a string or a list of parts, got {type(content).__name__}"
            )
        raw_calls = d.get("tool_calls")
        if raw_calls is not None and not isinstance(raw_calls, list):
            raise InvalidMessageError("tool_calls must be a list")
        calls = tuple(ToolCall.from_openai(c) for c in raw_calls or ())
        metadata = d.get("metadata")
        if d["role"] == "assistant" and content == "" and not calls and isinstance(metadata, Mapping | None):
            parts, metadata = (), {**CUT_OFF, **(metadata or {})}  # to_openai's form of a cut-off reply
        return cls(
            role=d["role"],
            content=parts,
            tool_calls=calls,
            tool_call_id=d.get("tool_call_id"),
            name=d.get("name"),
            pinned=d.get("pinned", False) or False,
            metadata=metadata,
        )

    from_dict = from_openai


def _part_from_openai(p: object) -> Part:
    if isinstance(p, str):
        return TextPart(p)
    if not isinstance(p, Mapping):
        raise InvalidMessageError(f"a content part is a dict with a 'type', got {type(p).__name__}")
    kind = p.get("type")
    if kind == "text":
        text = p.get("text")
        if not isinstance(text, str):
            raise InvalidMessageError("a text part needs a string 'text'")
        return TextPart(text)
    if kind == "image_url":
        spec = p.get("image_url")
        if isinstance(spec, str):
            url, detail = spec, None
        elif isinstance(spec, Mapping) and isinstance(spec.get("url"), str):
            url, detail = spec["url"], spec.get("detail")
        else:
            raise InvalidMessageError("an image_url part needs {'image_url': {'url': ...}}")
        return ImagePart.from_url(url, width=p.get("width"), height=p.get("height"), detail=detail)
    raise InvalidMessageError(f"unknown content part type {kind!r}; convkit takes 'text' and 'image_url'")


MessageLike: TypeAlias = Message | Mapping[str, Any]


def as_message(m: MessageLike, index: int | None = None) -> Message:
    """A Message from a Message or an OpenAI-shaped dict; errors name the index."""
    if isinstance(m, Message):
        return m
    try:
        return Message.from_openai(m)
    except InvalidMessageError as exc:
        if index is None:
            raise
        raise type(exc)(f"message {index}: {exc}") from None


def as_messages(messages: Iterable[MessageLike]) -> list[Message]:
    """Convert every item; the first bad one raises with its index."""
    return [m if isinstance(m, Message) else as_message(m, i) for i, m in enumerate(messages)]
