"""Messages: lossless round trips, and validation errors that are typed and say what to fix."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import attrs
import pytest
from hypothesis import given
from PIL import Image

import convkit
from convkit import (
    ImagePart,
    InvalidImageError,
    InvalidMessageError,
    Message,
    TextPart,
    ToolCall,
    UnsupportedInputError,
    ValidationError,
)
from convkit._messages import as_messages
from convkit.testing.strategies import conversations, image_bytes, messages


def png(width: int = 8, height: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buf, format="PNG")
    return buf.getvalue()


def without_convkit_fields(m: Message) -> Message:
    """The message as the OpenAI shape can carry it: no pinned, metadata or URL-image sizes."""
    content = tuple(
        attrs.evolve(p, width=None, height=None) if isinstance(p, ImagePart) and p.url is not None else p
        for p in m.content
    )
    return attrs.evolve(m, pinned=False, metadata={}, content=content)


# -- round trips -----------------------------------------------------------------------------


@given(messages())
def test_to_dict_from_dict_round_trip_is_lossless(m: Message) -> None:
    d = m.to_dict()
    assert Message.from_dict(d) == m
    # and through JSON text, as the CLI and the store see it
    assert Message.from_dict(json.loads(json.dumps(d))) == m


@given(messages())
def test_to_openai_from_openai_round_trip(m: Message) -> None:
    plain = without_convkit_fields(m)
    d = m.to_openai()
    assert set(d) <= {"role", "content", "tool_calls", "tool_call_id", "name"}
    assert Message.from_openai(d) == plain
    assert Message.from_openai(json.loads(json.dumps(d))) == plain
    assert plain.to_openai() == d


@given(messages())
def test_openai_shape(m: Message) -> None:
    d = m.to_openai()
    assert d["role"] == m.role
    if m.tool_calls:
        assert [c["function"]["arguments"] for c in d["tool_calls"]] == [c.arguments for c in m.tool_calls]
        assert all(c["type"] == "function" for c in d["tool_calls"])
    else:
        assert "tool_calls" not in d
    content = d["content"]
    if isinstance(content, list):
        for part, out in zip(m.content, content, strict=True):
            if isinstance(part, TextPart):
                assert out == {"type": "text", "text": part.text}
            else:
                assert out["type"] == "image_url"
                url = out["image_url"]["url"]
                if part.data is not None:  # bytes go out as a base64 data URL of their real type
                    head, _, payload = url.partition(",")
                    assert head == f"data:{part.media_type};base64"
                    assert base64.b64decode(payload) == part.data
                else:
                    assert url == part.url
    elif isinstance(content, str):
        assert m.content == (TextPart(content),)
    else:
        assert content is None
        assert m.tool_calls


@given(conversations(max_size=12))
def test_conversations_round_trip_through_dicts(conv: list[Message]) -> None:
    assert as_messages([m.to_dict() for m in conv]) == conv


def test_tool_call_arguments_are_kept_verbatim() -> None:
    text = '{ "city" : "Paris",\n  "days": 3 }'
    m = Message.from_openai(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": text}}],
        }
    )
    assert m.tool_calls[0].arguments == text
    assert m.to_openai()["tool_calls"][0]["function"]["arguments"] == text


def test_data_url_images_are_decoded_and_checked() -> None:
    data = png(500, 20)
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    m = Message.from_openai(
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url, "detail": "high"}}]}
    )
    (img,) = m.images
    assert img.data == data
    assert (img.media_type, img.width, img.height, img.detail) == ("image/png", 500, 20, "high")
    assert img.url is None


@given(image_bytes())
def test_image_facts_come_from_the_bytes(data: bytes) -> None:
    part = ImagePart.from_bytes(data)
    with Image.open(io.BytesIO(data)) as img:
        assert (part.width, part.height) == img.size
        assert part.media_type == {"PNG": "image/png", "JPEG": "image/jpeg"}[img.format or ""]
    assert part.tokens == convkit.image_tokens(part.width, part.height)


# -- validation: typed errors that say what to fix ---------------------------------------------

BAD_MESSAGES: dict[str, tuple[dict[str, Any], type[Exception], str]] = {
    "unknown role": ({"role": "robot", "content": "hi"}, InvalidMessageError, r"unknown role 'robot'.*user"),
    "no role": ({"content": "hi"}, InvalidMessageError, r"no 'role'"),
    "empty string": ({"role": "user", "content": ""}, InvalidMessageError, r"empty.*give it text"),
    "blank string": ({"role": "user", "content": " \n\t"}, InvalidMessageError, r"empty"),
    "no content": ({"role": "user"}, InvalidMessageError, r"empty"),
    "empty parts": ({"role": "assistant", "content": []}, InvalidMessageError, r"empty.*tool calls"),
    "blank text part": (
        {"role": "user", "content": [{"type": "text", "text": "  "}]},
        InvalidMessageError,
        r"empty",
    ),
    "tool without id": ({"role": "tool", "content": "42"}, InvalidMessageError, r"needs tool_call_id"),
    "tool with empty id": (
        {"role": "tool", "content": "42", "tool_call_id": ""},
        InvalidMessageError,
        r"needs tool_call_id",
    ),
    "tool_call_id on a user": (
        {"role": "user", "content": "x", "tool_call_id": "c1"},
        InvalidMessageError,
        r"only tool messages carry tool_call_id",
    ),
    "invalid JSON arguments": (
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{'a': 1}"}}],
        },
        InvalidMessageError,
        r"'c1'.*arguments are not valid JSON.*exact JSON text",
    ),
    "arguments as a dict": (
        {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": {"a": 1}}}]},
        InvalidMessageError,
        r"arguments must be JSON text.*json.dumps",
    ),
    "tool call without id": (
        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
        InvalidMessageError,
        r"tool call id must be a non-empty string",
    ),
    "tool call without function": (
        {"role": "assistant", "tool_calls": [{"id": "c1"}]},
        InvalidMessageError,
        r"needs a 'function' object",
    ),
    "tool calls on a user": (
        {"role": "user", "content": "x", "tool_calls": [{"id": "c", "function": {"name": "f"}}]},
        InvalidMessageError,
        r"only assistant messages carry tool_calls",
    ),
    "duplicate call ids": (
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c", "function": {"name": "f", "arguments": "{}"}},
                {"id": "c", "function": {"name": "g", "arguments": "{}"}},
            ],
        },
        InvalidMessageError,
        r"ids within a message must be unique",
    ),
    "unknown field": (
        {"role": "user", "content": "x", "colour": "red"},
        InvalidMessageError,
        r"unknown message field\(s\) \['colour'\]",
    ),
    "content is a dict": (
        {"role": "user", "content": {"text": "x"}},
        InvalidMessageError,
        r"content must be",
    ),
    "unknown part type": (
        {"role": "user", "content": [{"type": "audio", "data": "..."}]},
        InvalidMessageError,
        r"unknown content part type 'audio'",
    ),
    "image part without url": (
        {"role": "user", "content": [{"type": "image_url", "image_url": {}}]},
        InvalidMessageError,
        r"needs \{'image_url': \{'url'",
    ),
    "non-http image url": (
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]},
        InvalidImageError,
        r"http:// or https://",
    ),
    "data url that is not base64": (
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}],
        },
        InvalidImageError,
        r"not hold valid base64",
    ),
    "data url of text": (
        {
            "role": "user",
            "content": [
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64," + base64.b64encode(b"hello").decode()},
                }
            ],
        },
        InvalidImageError,
        r"not a readable JPEG or PNG",
    ),
    "bad detail": (
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "max"}}],
        },
        InvalidImageError,
        r"detail must be one of auto, low, high",
    ),
    "pinned not a bool": (
        {"role": "user", "content": "x", "pinned": "yes"},
        InvalidMessageError,
        r"pinned must",
    ),
    "metadata not JSON": (
        {"role": "user", "content": "x", "metadata": {"when": object()}},
        InvalidMessageError,
        r"metadata must be JSON-serializable",
    ),
    "empty name": ({"role": "user", "content": "x", "name": ""}, InvalidMessageError, r"name must be"),
}


@pytest.mark.parametrize("case", sorted(BAD_MESSAGES))
def test_invalid_messages_raise_typed_errors_that_say_what_to_fix(case: str) -> None:
    payload, error, pattern = BAD_MESSAGES[case]
    with pytest.raises(error, match=pattern) as info:
        Message.from_openai(payload)
    assert isinstance(info.value, ValidationError)
    assert isinstance(info.value, ValueError)  # callers that catch ValueError keep working
    # in a list, the error names the index of the offending message
    with pytest.raises(error, match=r"^message 2: "):
        as_messages([{"role": "user", "content": "ok"}, Message.assistant("fine"), payload])


def test_invalid_image_bytes() -> None:
    with pytest.raises(InvalidImageError, match="not a readable JPEG or PNG"):
        ImagePart.from_bytes(b"GIF89a not really")
    with pytest.raises(InvalidImageError, match="not a readable JPEG or PNG"):
        ImagePart.from_bytes(png()[:-20])  # truncated
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="GIF")
    with pytest.raises(InvalidImageError, match="format GIF is not accepted; send a JPEG or PNG"):
        ImagePart.from_bytes(buf.getvalue())
    with pytest.raises(InvalidImageError, match="bytes"):
        ImagePart(data="not bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidImageError, match="either bytes"):
        ImagePart()
    with pytest.raises(InvalidImageError, match="either bytes"):
        ImagePart(data=png(), url="https://x/a.png")


def test_images_over_10_mib_are_refused_before_decoding() -> None:
    big = png() + b"\0" * (10 * 1024 * 1024)
    with pytest.raises(InvalidImageError, match=r"at most 10485760 bytes \(10 MiB\).*Downscale"):
        ImagePart.from_bytes(big)
    url = "data:image/png;base64," + base64.b64encode(big).decode()
    with pytest.raises(InvalidImageError, match="10 MiB"):
        ImagePart.from_url(url)
    exactly = png()
    assert ImagePart.from_bytes(exactly).width == 8  # small ones pass


def test_url_image_sizes() -> None:
    with pytest.raises(InvalidImageError, match="both width and height"):
        ImagePart.from_url("https://x/a.png", width=10)
    with pytest.raises(InvalidImageError, match="positive integers"):
        ImagePart.from_url("https://x/a.png", width=0, height=5)
    assert ImagePart.from_url("https://x/a.png", width=896, height=400).tokens == (2 * 1 + 1) * 256
    assert ImagePart.from_url("https://x/a.png", width=897, height=400).tokens == (3 * 1 + 1) * 256
    assert ImagePart.from_url("https://x/a.png").tokens == 1792  # not fetched: the maximum


def test_images_for_text_only_models(tiny_counter: convkit.HFTokenCounter) -> None:
    conv = [Message.user(["what is this?", ImagePart.from_bytes(png())])]
    with pytest.raises(
        UnsupportedInputError, match=r"message 0 has an image but grok-2-1212 takes text only"
    ):
        convkit.fit(conv, model="grok-2", counter=tiny_counter)
    with pytest.raises(UnsupportedInputError, match=r"images='drop'"):
        tiny_counter.count_messages(conv, model="grok-beta")
    dropped = convkit.fit(conv, model="grok-2", counter=tiny_counter, images="drop")
    assert dropped.messages[0].content[1] == TextPart("[image omitted: grok-2-1212 does not accept images]")
    note_tokens = tiny_counter.count_text("[image omitted: grok-2-1212 does not accept images]")
    assert dropped.prompt_tokens == tiny_counter.count_messages(dropped.messages, model="grok-2")
    assert note_tokens > 0
    # vision models take them, counted by the tile rule
    kept = convkit.fit(conv, model="grok-2-vision-1212", counter=tiny_counter)
    assert kept.messages == tuple(conv)
    assert kept.image_tokens == 512


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(InvalidMessageError, match="unknown role"):
        Message("narrator", "x")  # type: ignore[arg-type]
    with pytest.raises(InvalidMessageError, match="text part must hold a str"):
        TextPart(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidMessageError, match="content parts are str, TextPart or ImagePart"):
        Message.user([3])  # type: ignore[list-item]
    with pytest.raises(InvalidMessageError, match="tool_calls holds ToolCall values"):
        Message.assistant(tool_calls=[{"id": "x"}])  # type: ignore[list-item]
    with pytest.raises(InvalidMessageError, match="not valid JSON"):
        ToolCall("c1", "f", "{")
    with pytest.raises(InvalidMessageError, match="must be a non-empty string"):
        ToolCall("", "f")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Message.user("x").role = "system"  # type: ignore[misc]


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", '{"a": NaN}', "[1, Infinity]"])
def test_non_standard_json_constants_are_not_valid_arguments(text: str) -> None:
    # Python's json module accepts these, but they are not JSON (RFC 8259): strict parsers reject them
    with pytest.raises(InvalidMessageError, match=r"not valid JSON.*is not a JSON value"):
        ToolCall("c1", "f", text)


def test_assistant_with_tool_calls_only_and_empty_text() -> None:
    call = ToolCall("c1", "f", "{}")
    for content in (None, "", []):
        m = Message.assistant(content, tool_calls=[call])  # type: ignore[arg-type]
        assert Message.from_openai(m.to_openai()) == m


def test_metadata_is_not_part_of_the_hash_but_of_equality() -> None:
    a = Message.user("x", metadata={"k": 1})
    b = Message.user("x", metadata={"k": 2})
    assert hash(a) == hash(b)
    assert a != b
    assert a == Message.user("x", metadata={"k": 1})
