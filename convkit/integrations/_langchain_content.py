"""LangChain content blocks <-> convkit parts, remembering each block's exact form for the way back.

Private to :mod:`convkit.integrations.langchain`: :func:`_parse_content` reads a
LangChain ``content`` (a string, or a list of strings and blocks: text,
``image_url``, LangChain's standard ``{"type": "image", ...}``, anything else
kept verbatim) into convkit parts plus the entries that remember its form;
:func:`_render` gives the default content of parts; :func:`_fill` rebuilds the
original content list from those entries and the (possibly stored) parts.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Mapping, Sequence
from typing import Any, cast

from .._errors import InvalidImageError, InvalidMessageError
from .._images import decode_data_url
from .._messages import ImagePart, Part, TextPart

_DETAILS = (None, "auto", "low", "high")


# -- helpers ------------------------------------------------------------------------------------


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
