"""The store's row codec: decoding rebuilds messages equal to (and hashing like) the ones written.

Decoding skips re-validation for speed (rows were checked when written); these tests pin
that the values it builds are indistinguishable from checked ones, on the fast path and on
the checked fallback, and that a corrupt row is a DatabaseError.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings

from convkit.errors import DatabaseError
from convkit.messages import ImagePart, Message, TextPart, ToolCall
from convkit.store import codec
from convkit.testing import strategies


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (3, 2), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _roundtrip(m: Message) -> Message:
    row: dict[str, Any] = {"seq": 1, **codec.encode_message(m)}
    images = {p.sha256: p.data for p in m.content if isinstance(p, ImagePart) and p.data is not None}
    return codec.decode_message(row, images, {})


def _examples() -> list[Message]:
    img = ImagePart.from_bytes(_png(), detail="low")
    return [
        Message.system("be brief"),
        Message.user(["look", img, "and this"], pinned=True, metadata={"k": [1, "x"]}),
        Message.user([ImagePart.from_url("https://example.com/a.png", width=20, height=10)]),
        Message.assistant("calling", tool_calls=[ToolCall("c1", "f", '{"a": 1}'), ToolCall("c2", "g")]),
        Message.assistant(tool_calls=[ToolCall("c3", "h", "[]")], name="bot"),
        Message.tool('{"ok": true}', tool_call_id="c1"),
    ]


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "checked"])
def test_decode_equals_and_hashes_like_the_original(monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    if not fast:
        monkeypatch.setattr(codec, "_text", TextPart)
        monkeypatch.setattr(codec, "_call", ToolCall)
        monkeypatch.setattr(codec, "_message", Message)
    for m in _examples():
        got = _roundtrip(m)
        assert got == m
        assert hash(got) == hash(m)
        assert got.to_dict() == m.to_dict()
        assert {got: 1}[m] == 1


def test_fast_path_is_in_use() -> None:
    assert codec._FAST, "decoding fell back to the checked constructors: the Message layout changed"


@settings(max_examples=200, deadline=None)
@given(strategies.messages())
def test_decode_roundtrip_property(m: Message) -> None:
    got = _roundtrip(m)
    assert got == m
    assert hash(got) == hash(m)


@pytest.mark.parametrize(
    "change",
    [
        {"role": "robot"},
        {"content": "not json"},
        {"content": json.dumps([{"text": 3}])},
        {"content": json.dumps([{"image": "0" * 64}])},
        {"tool_calls": json.dumps([{"name": "f"}])},
    ],
)
def test_corrupt_rows_are_database_errors(change: dict[str, Any]) -> None:
    row = {"seq": 7, **codec.encode_message(Message.assistant("hi")), **change}
    with pytest.raises(DatabaseError, match="seq 7"):
        codec.decode_message(row, {}, {})
