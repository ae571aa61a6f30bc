"""Hypothesis strategies for convkit's values, for property tests in your CI.

Every strategy draws *valid* values, ready to hand to convkit:

* :func:`texts` -- unicode text (CJK, emoji, combining marks, RTL, control
  characters, newlines), non-blank by default;
* :func:`image_bytes` -- real, tiny PNG or JPEG files made with Pillow in
  memory (never read from disk), of sizes that cross the 448-pixel tile
  boundaries;
* :func:`images` -- :class:`~convkit.ImagePart` values: image bytes, and
  http(s) URL images with or without their dimensions;
* :func:`tool_calls` -- :class:`~convkit.ToolCall` values whose ``arguments``
  is JSON text in assorted spellings (kept verbatim by convkit);
* :func:`messages` -- single valid messages of any role, with every optional
  field (name, pinned, metadata, tool calls, images);
* :func:`conversations` -- whole valid conversations: every tool message
  answers a tool call of an earlier assistant message, calls come in
  multi-call groups whose results may arrive in any order and with other
  messages (user, system, even other tool groups) in between; leading system
  messages, later system messages, pinned messages; at least one message
  that is not a system message;
* :func:`budgets` -- token budgets from 0 to huge, weighted towards the
  interesting edges (0, 1, 8192, 131072 and their neighbours).

Example::

    from hypothesis import given
    import convkit
    from convkit.testing.strategies import conversations

    @given(conversations(max_size=20))
    def test_my_window_fits(conv):
        result = convkit.fit(conv, model="grok-2-vision-1212", reserve=1024)
        assert result.prompt_tokens <= result.budget

This module is the only one in convkit that imports hypothesis.
"""

from __future__ import annotations

import functools
import io
import json
from typing import Any

from hypothesis import strategies as st

from .._messages import ROLES, ImagePart, Message, Part, TextPart, ToolCall

__all__ = [
    "budgets",
    "conversations",
    "image_bytes",
    "images",
    "json_values",
    "messages",
    "texts",
    "tool_calls",
]

_WORDS = (
    "the",
    "weather",
    "in",
    "Paris",
    "is",
    "sunny",
    "东京",
    "日本語のテキスト",
    "Привет",
    "мир",
    "مرحبا",
    "שלום",
    "naïve",
    "e\u0301",
    "ß",
    "😀",
    "👩‍👩‍👧",
    "🇫🇷",
    "def f(x):",
    "return x + 1",
    '{"a": 1}',
    "<|separator|>",
    "Human:",
    "\n",
    "\t",
    "\u200b",
    "\x00",
    "1234567890",
)

_TOOL_NAMES = ("get_weather", "search_web", "lookup_order", "run_sql", "send_email", "calc")
_NAMES = ("alice", "bob", "support_bot", "Ada", "user-42")
_IMAGE_SIDES = (1, 2, 447, 448, 449, 895, 896, 897, 1344, 1345, 1792, 2048)
_BUDGET_EDGES = (0, 1, 2, 7, 8, 64, 511, 512, 1792, 8191, 8192, 8193, 131071, 131072, 131073)


@functools.cache
def texts(*, min_size: int = 1, max_size: int = 80, non_blank: bool = True) -> st.SearchStrategy[str]:
    """Unicode text of ``min_size`` to ``max_size`` characters.

    Mixes arbitrary unicode (every plane, no surrogates) with runs of words in
    several scripts, emoji sequences and chat-template look-alikes. With
    ``non_blank`` (the default) the text has a non-whitespace character, as a
    message's text must.
    """
    if min_size < 0 or max_size < max(min_size, 1):
        raise ValueError("texts() needs 0 <= min_size <= max_size and max_size >= 1")
    words = st.lists(st.sampled_from(_WORDS), min_size=1, max_size=max(1, max_size // 3)).map(
        lambda ws: " ".join(ws)[:max_size]
    )
    strategy = st.one_of(
        st.text(min_size=min_size, max_size=max_size),
        words.filter(lambda s: len(s) >= min_size),
        st.text(st.characters(codec="ascii"), min_size=min_size, max_size=max_size),
    )
    if non_blank:
        strategy = strategy.filter(lambda s: bool(s.strip()))
    return strategy


@functools.cache
def json_values(*, max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """JSON-compatible values (no NaN or infinity), nested lists and objects."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**12), 10**12),
        st.floats(allow_nan=False, allow_infinity=False),
        texts(min_size=0, max_size=16, non_blank=False),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(texts(min_size=0, max_size=8, non_blank=False), children, max_size=3),
        ),
        max_leaves=max_leaves,
    )


def _dump(value: Any, style: int) -> str:
    if style == 0:
        return json.dumps(value)
    if style == 1:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if style == 2:
        return json.dumps(value, indent=2, ensure_ascii=False)
    return " " + json.dumps(value, sort_keys=True) + "\n"


@functools.cache
def _arguments() -> st.SearchStrategy[str]:
    objects = st.dictionaries(
        st.sampled_from(("city", "query", "id", "sql", "unit", "ünïcode", "n")) | texts(max_size=12),
        json_values(max_leaves=4),
        max_size=4,
    )
    return st.builds(_dump, objects, st.integers(0, 3))


@functools.cache
def _tool_names() -> st.SearchStrategy[str]:
    return st.sampled_from(_TOOL_NAMES) | st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)


@functools.cache
def _call_ids() -> st.SearchStrategy[str]:
    return st.from_regex(r"call_[A-Za-z0-9]{1,12}", fullmatch=True)


def tool_calls(*, ids: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[ToolCall]:
    """Tool calls with JSON ``arguments`` text (compact, spaced, indented or padded)."""
    return st.builds(
        ToolCall, id=ids if ids is not None else _call_ids(), name=_tool_names(), arguments=_arguments()
    )


@functools.lru_cache(maxsize=512)
def _encode_image(fmt: str, width: int, height: int, color: int) -> bytes:
    from PIL import Image

    mode = "L" if color % 3 == 0 else "RGB"
    fill: int | tuple[int, int, int] = color if mode == "L" else (color, 255 - color, (color * 7) % 256)
    img = Image.new(mode, (width, height), fill)
    if width > 1 and height > 1:  # a little structure, so the files are not all alike
        img.putpixel((width // 2, height // 2), 0 if mode == "L" else (0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@functools.cache
def image_bytes(
    *, formats: tuple[str, ...] = ("PNG", "JPEG"), max_side: int = 2048
) -> st.SearchStrategy[bytes]:
    """The bytes of a real PNG or JPEG file, 1 to ``max_side`` pixels a side."""
    sides = st.one_of(
        st.sampled_from([s for s in _IMAGE_SIDES if s <= max_side] or [1]),
        st.integers(1, max_side),
    )
    return st.builds(
        _encode_image,
        st.sampled_from(formats),
        sides,
        sides,
        st.sampled_from((0, 17, 128, 200, 255)),
    )


@functools.cache
def _url_images() -> st.SearchStrategy[ImagePart]:
    urls = st.builds(
        "{}://img.example.com/{}.{}".format,
        st.sampled_from(("http", "https")),
        st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True),
        st.sampled_from(("png", "jpg", "jpeg")),
    )
    dims = st.one_of(
        st.just((None, None)),
        st.tuples(st.integers(1, 5000), st.integers(1, 5000)),
    )
    details = st.sampled_from((None, "auto", "low", "high"))
    return st.builds(
        lambda url, wh, detail: ImagePart.from_url(url, width=wh[0], height=wh[1], detail=detail),
        urls,
        dims,
        details,
    )


@functools.cache
def images(*, data: bool = True, urls: bool = True, max_side: int = 2048) -> st.SearchStrategy[ImagePart]:
    """Image parts: real image bytes (``data``) and/or http(s) URLs with or without dimensions."""
    options: list[st.SearchStrategy[ImagePart]] = []
    if data:
        options.append(
            st.builds(
                lambda b, detail: ImagePart.from_bytes(b, detail=detail),
                image_bytes(max_side=max_side),
                st.sampled_from((None, "auto", "low", "high")),
            )
        )
    if urls:
        options.append(_url_images())
    if not options:
        raise ValueError("images() needs data=True or urls=True")
    return st.one_of(options)


@functools.cache
def _content(
    *, with_images: bool, may_be_empty: bool, text: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[tuple[Part, ...]]:
    """Message content: one text, or a list of text and image parts in any order."""
    body = text if text is not None else texts()
    single = body.map(lambda s: (TextPart(s),))
    part: st.SearchStrategy[Part] = body.map(TextPart) | texts(min_size=0, max_size=5, non_blank=False).map(
        TextPart
    )
    if with_images:
        part = part | images()
    many = st.lists(part, min_size=1, max_size=4).map(tuple)
    if not may_be_empty:
        many = many.filter(lambda ps: any(isinstance(p, ImagePart) or p.text.strip() for p in ps))
    options: list[st.SearchStrategy[tuple[Part, ...]]] = [single, many]
    if with_images:
        options.append(st.tuples(images(), body.map(TextPart)))
        options.append(st.tuples(body.map(TextPart), images(), images()))
    if may_be_empty:
        options += [st.just(()), st.just((TextPart(""),))]
    return st.one_of(options)


@st.composite
def _message(draw: st.DrawFn, roles: tuple[str, ...], with_images: bool) -> Message:
    role = draw(st.sampled_from(roles))
    calls: tuple[ToolCall, ...] = ()
    if role == "assistant":
        calls = tuple(draw(st.lists(tool_calls(), max_size=3, unique_by=lambda c: c.id)))
    content = draw(_content(with_images=with_images and role == "user", may_be_empty=bool(calls)))
    call_id = draw(_call_ids()) if role == "tool" else None
    return Message(
        role,  # type: ignore[arg-type]
        content,
        calls,
        tool_call_id=call_id,
        name=draw(st.none() | st.sampled_from(_NAMES)),
        pinned=draw(st.booleans()),
        metadata=draw(
            st.just({}) | st.dictionaries(texts(max_size=10), json_values(max_leaves=4), max_size=3)
        ),
    )


def messages(*, roles: tuple[str, ...] = ROLES, images: bool = True) -> st.SearchStrategy[Message]:
    """Single valid messages of the given roles with every optional field exercised.

    A tool message's ``tool_call_id`` is arbitrary here; use
    :func:`conversations` for messages whose links are valid as a sequence.
    Images appear in user messages only (when ``images``).
    """
    bad = set(roles) - set(ROLES)
    if bad or not roles:
        raise ValueError(f"roles must be a non-empty subset of {ROLES}, got {roles!r}")
    return _message(tuple(roles), images)


@functools.cache
def _bodies() -> st.SearchStrategy[str]:
    """Message texts, sometimes long (a short text repeated) so budgets bite."""
    return st.one_of(
        texts(max_size=60),
        st.builds(lambda s, k: " ".join([s] * k), texts(max_size=40), st.integers(2, 30)),
    )


_ONE_IN_TEN = st.sampled_from((False,) * 9 + (True,))
_THREE_IN_FOUR = st.sampled_from((True, True, True, False))
_MAYBE_NAME: st.SearchStrategy[str | None] = st.sampled_from((None,) * 6 + _NAMES)


@functools.cache
def _tool_results() -> st.SearchStrategy[str]:
    return _bodies() | json_values(max_leaves=6).map(json.dumps)


@functools.cache
def _call_texts() -> st.SearchStrategy[str | None]:
    return st.none() | st.just("") | _bodies()


@st.composite
def _conversation(
    draw: st.DrawFn,
    min_size: int,
    max_size: int,
    tool_groups: bool,
    with_images: bool,
    pinned: bool,
    system_interleaved: bool,
) -> list[Message]:
    n = draw(st.integers(min_size, max_size))
    out: list[Message] = []

    def pin() -> bool:
        return pinned and draw(_ONE_IN_TEN)

    def name() -> str | None:
        return draw(_MAYBE_NAME)

    leading = draw(st.integers(0, min(3, n - 1)))
    for _ in range(leading):
        out.append(Message("system", draw(_bodies()), pinned=pin()))

    prefix = draw(st.sampled_from(("call_", "toolu_", "fc-", "")))
    next_id = 0
    pending: list[ToolCall] = []  # calls made but not yet answered
    kinds = ["user", "user", "assistant"]
    if system_interleaved:
        kinds.append("system")
    if tool_groups:
        kinds += ["tools", "tools"]
    while len(out) + len(pending) < n or pending:
        room = n - len(out) - len(pending)  # slots free beyond the results still owed
        if pending and (room == 0 or draw(_THREE_IN_FOUR)):
            call = pending.pop(draw(st.integers(0, len(pending) - 1)))
            result = draw(_tool_results())
            out.append(Message("tool", result, tool_call_id=call.id, pinned=pin()))
            continue
        allowed = [k for k in kinds if (k != "tools" or room >= 2) and (k != "system" or len(out) > leading)]
        kind = draw(st.sampled_from(allowed))
        if kind == "user":
            content = draw(_content(with_images=with_images, may_be_empty=False, text=_bodies()))
            out.append(Message("user", content, name=name(), pinned=pin()))
        elif kind == "assistant":
            out.append(Message("assistant", draw(_bodies()), name=name(), pinned=pin()))
        elif kind == "system":
            out.append(Message("system", draw(_bodies()), pinned=pin()))
        else:
            k = draw(st.integers(1, min(3, room - 1)))
            calls = []
            for _ in range(k):
                calls.append(ToolCall(f"{prefix}{next_id}", draw(_tool_names()), draw(_arguments())))
                next_id += 1
            text = draw(_call_texts())
            out.append(Message("assistant", text, calls, pinned=pin()))
            pending.extend(calls)
    return out


def conversations(
    min_size: int = 1,
    max_size: int = 24,
    *,
    tool_groups: bool = True,
    images: bool = True,
    pinned: bool = True,
    system_interleaved: bool = True,
) -> st.SearchStrategy[list[Message]]:
    """Valid conversations of ``min_size`` to ``max_size`` messages.

    * up to three leading system messages, then user, assistant, later
      system (``system_interleaved``) messages and tool groups;
    * ``tool_groups``: an assistant message with one to three tool calls
      (unique ids across the conversation) and one tool message answering
      each call; results come in any order, and other messages -- a user
      turn, a system note, another tool group -- may arrive between a call
      and its results;
    * ``images``: user messages may carry image parts (bytes or URLs);
    * ``pinned``: about one message in ten is marked pinned;
    * there is always at least one message that is not a system message.
    """
    if min_size < 1 or max_size < min_size:
        raise ValueError("conversations() needs 1 <= min_size <= max_size")
    return _conversation(min_size, max_size, tool_groups, images, pinned, system_interleaved)


@functools.cache
def budgets(*, min_value: int = 0, max_value: int = 1 << 20) -> st.SearchStrategy[int]:
    """Token budgets from tiny to huge, with the edges (0, 1, 8192, 131072, ...) favoured."""
    if min_value < 0 or max_value < min_value:
        raise ValueError("budgets() needs 0 <= min_value <= max_value")
    edges = [e for e in _BUDGET_EDGES if min_value <= e <= max_value] or [min_value]
    options = [st.sampled_from(edges)]
    for cap in (64, 4096):
        if cap >= min_value:
            options.append(st.integers(min_value, min(cap, max_value)))
    options.append(st.integers(min_value, max_value))
    return st.one_of(options)
