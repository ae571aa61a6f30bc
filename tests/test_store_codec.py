"""The store's row codec: decoding rebuilds messages equal to (and hashing like) the ones written.

Decoding skips re-validation for speed (rows were checked when written); these tests pin
that the values it builds are indistinguishable from checked ones, on the fast path and on
the checked fallback, for rows in the current encoding and in the one written before (one
text part as ``[{"text": ...}]``), given as mappings or positional rows, and that a corrupt
row is a DatabaseError naming its seq.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from convkit._errors import DatabaseError
from convkit._messages import ImagePart, Message, TextPart, ToolCall
from convkit.store import _codec as codec
from convkit.testing import strategies


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (3, 2), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _images(messages: Sequence[Message]) -> dict[str, bytes]:
    return {
        p.sha256: p.data
        for m in messages
        for p in m.content
        if isinstance(p, ImagePart) and p.data is not None
    }


def _roundtrip(m: Message) -> Message:
    row: dict[str, Any] = {"seq": 1, **codec.encode_message(m)}
    return codec.decode_message(row, _images([m]), {})


def _old_content(content: str) -> str:
    """``content`` as written before one text part became a JSON string: ``[{"text": ...}]``."""
    value = json.loads(content)
    if isinstance(value, str):
        value = [{"text": value}]
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _rows(messages: Sequence[Message], *, old: bool = False) -> list[tuple[Any, ...]]:
    """Positional rows of BODY_COLUMNS as a driver returns them (``pinned`` as 0/1)."""
    rows = []
    for seq, m in enumerate(messages, 1):
        row = {"seq": seq, **codec.encode_message(m)}
        row["pinned"] = int(row["pinned"])
        if old:
            row["content"] = _old_content(row["content"])
        rows.append(tuple(row[c] for c in codec.BODY_COLUMNS))
    return rows


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
    examples = _examples()
    for m in examples:
        got = _roundtrip(m)
        assert got == m
        assert hash(got) == hash(m)
        assert got.to_dict() == m.to_dict()
        assert {got: 1}[m] == 1
    for old in (False, True):
        decoded = codec.decode_rows(_rows(examples, old=old), _images(examples))
        assert decoded == examples
        assert [hash(m) for m in decoded] == [hash(m) for m in examples]
        assert all(type(m.pinned) is bool for m in decoded)


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


# -- positional rows (decode_rows) ----------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(strategies.messages())
def test_decode_rows_roundtrip_property(m: Message) -> None:
    """encode -> positional row (pinned as 0/1) -> decode_rows gives an equal message, in both encodings."""
    for old in (False, True):
        [got] = codec.decode_rows(_rows([m], old=old), _images([m]))
        assert got == m
        assert hash(got) == hash(m)
        assert got.to_dict() == m.to_dict()


@settings(max_examples=50, deadline=None)
@given(strategies.conversations(max_size=12))
def test_decode_rows_is_decode_message_of_each_row(conv: list[Message]) -> None:
    rows = _rows(conv)
    images = _images(conv)
    cache: dict[Any, ImagePart] = {}
    one_by_one = [
        codec.decode_message(dict(zip(codec.BODY_COLUMNS, r, strict=True)), images, cache) for r in rows
    ]
    assert codec.decode_rows(rows, images) == one_by_one == conv
    assert codec.decode_rows(_rows(conv, old=True), images) == conv


@settings(max_examples=300, deadline=None)
@given(st.text().filter(str.strip), st.sampled_from(["system", "user", "assistant"]))
def test_one_text_part_is_stored_as_a_json_string(text: str, role: str) -> None:
    """Any text (quotes, backslashes, control characters, markers) survives the string form."""
    try:
        m = Message(role, text)  # type: ignore[arg-type]
    except ValueError:  # a lone surrogate: not a message
        return
    content = codec.encode_message(m)["content"]
    assert json.loads(content) == text
    assert codec.IMAGE_MARKER not in content
    assert '{"url":' not in content
    assert codec.image_shas(content) == []
    assert codec.decode_rows(_rows([m]), {}) == [m]
    assert codec.decode_rows(_rows([m], old=True), {}) == [m]


def test_encoding_forms() -> None:
    tricky = 'say {"image":"abc"} and {"url": "x"} \\ "quoted"\n'
    assert codec.encode_message(Message.user(tricky))["content"] == json.dumps(tricky, ensure_ascii=False)
    assert codec.encode_message(Message.assistant("", tool_calls=[ToolCall("c", "f")]))["content"] == '""'
    assert codec.encode_message(Message.user(["a", "b"]))["content"] == '[{"text":"a"},{"text":"b"}]'
    assert codec.encode_message(Message.assistant(tool_calls=[ToolCall("c", "f")]))["content"] == "[]"
    img = ImagePart.from_bytes(_png())
    content = codec.encode_message(Message.user([img]))["content"]
    assert codec.IMAGE_MARKER in content
    assert codec.image_shas(content) == [img.sha256]


def test_old_multi_part_rows_are_not_mistaken_for_one_text() -> None:
    """Rows that begin and end like the old one-text form but hold several parts."""
    for parts in (["a", "b"], ["x\n", 'say "hi"'], ["}]", '"}]'], ['a"}]', "b"]):
        m = Message.user(parts)
        content = codec.encode_message(m)["content"]
        assert content.startswith('[{"text":"')
        assert content.endswith('"}]')
        assert codec.decode_rows(_rows([m]), {}) == [m]


def test_image_parts_are_built_once_per_call() -> None:
    img = ImagePart.from_bytes(_png(), detail="low")
    url = ImagePart.from_url("https://example.com/a.png", width=20, height=10)
    conv = [Message.user(["one", img, url]), Message.user([img, "two", url]), Message.user([img])]
    decoded = codec.decode_rows(_rows(conv), _images(conv))
    assert decoded == conv
    assert decoded[0].content[1] is decoded[1].content[0] is decoded[2].content[0]
    assert decoded[0].content[2] is decoded[1].content[2]


def test_decode_rows_takes_database_rows() -> None:
    """Tuples from sqlite3 (pinned as 0/1) and SQLAlchemy Row objects, in BODY_COLUMNS order."""
    conv = _examples()
    images = _images(conv)
    columns = ", ".join(codec.BODY_COLUMNS)
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TABLE m ({columns})")
    db.executemany(f"INSERT INTO m VALUES ({', '.join('?' * len(codec.BODY_COLUMNS))})", _rows(conv))
    db.commit()
    raw = db.execute(f"SELECT {columns} FROM m ORDER BY seq").fetchall()
    assert codec.decode_rows(raw, images) == conv
    engine = sa.create_engine("sqlite://", creator=lambda: db)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT {columns} FROM m ORDER BY seq")).all()
    assert isinstance(rows[0], sa.Row)
    assert codec.decode_rows(rows, images) == conv
    assert codec.decode_rows([], {}) == []


_JSONISH = st.lists(
    st.sampled_from(
        [
            *('"', "\\", '\\"', "\\n", "\\\\", "\\u0041", "\\q", "a", "é", "😀", " ", "3"),
            *("[", "]", "{", "}", ":", ",", '"text"', '[{"text":"', '"}]', '"},{"text":"', '""', '"x"'),
        ]
    ),
    max_size=12,
).map("".join)


def _reference_parts(content: str) -> tuple[TextPart, ...] | None:
    """The text parts json.loads finds in ``content``, or None when it is not text content."""
    try:
        value = json.loads(content)
    except ValueError:
        return None
    if isinstance(value, str):
        value = [{"text": value}]
    if isinstance(value, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in value):
        return tuple(TextPart(p["text"]) for p in value)
    return None


@settings(max_examples=1000, deadline=None)
@given(_JSONISH)
def test_content_decodes_exactly_as_json_loads_reads_it(content: str) -> None:
    """The fast paths agree with json.loads on JSON-like text, valid or not."""
    row = (1, "user", content, None, None, None, 0, None)
    expected = _reference_parts(content)
    if expected is None:
        with pytest.raises(DatabaseError, match="seq 1 "):
            codec.decode_rows([row], {})
    else:
        [got] = codec.decode_rows([row], {})
        assert got.content == expected


_GOOD: dict[str, Any] = {
    "seq": 7,
    "role": "assistant",
    "content": '"hi"',
    "tool_calls": None,
    "tool_call_id": None,
    "name": None,
    "pinned": 0,
    "metadata": None,
}


@pytest.mark.parametrize(
    "change",
    [
        {"role": "robot"},
        {"role": None},
        {"content": "not json"},
        {"content": ""},
        {"content": None},
        {"content": 3},
        {"content": '"'},
        {"content": '"hi'},
        {"content": '"h"i"'},
        {"content": '"hi\\"'},
        {"content": '"h\\qi"'},
        {"content": '"h\\"i'},
        {"content": '""x"'},
        {"content": "3"},
        {"content": '{"text":"hi"}'},
        {"content": '["hi"]'},
        {"content": '[{"text":"hi"}'},
        {"content": '[{"text":"hi}]'},
        {"content": '[{"text":"h"i"}]'},
        {"content": json.dumps([{"text": 3}])},
        {"content": json.dumps([{"image": "0" * 64}])},
        {"content": json.dumps([{"url": "ftp://example.com/a.png"}])},
        {"tool_calls": json.dumps([{"name": "f"}])},
        {"tool_calls": "[{"},
        {"tool_calls": "[1]"},
        {"tool_calls": "{}"},
        {"tool_calls": '{"id": "c", "name": "f"}'},
        {"metadata": "[1]"},
        {"metadata": "{"},
    ],
)
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "checked"])
def test_corrupt_positional_rows_are_database_errors(
    monkeypatch: pytest.MonkeyPatch, change: dict[str, Any], fast: bool
) -> None:
    if not fast:
        monkeypatch.setattr(codec, "_text", TextPart)
        monkeypatch.setattr(codec, "_call", ToolCall)
        monkeypatch.setattr(codec, "_message", Message)
    row = {**_GOOD, **change}
    good = tuple(_GOOD[c] for c in codec.BODY_COLUMNS)
    assert codec.decode_rows([good], {}) == [Message.assistant("hi")]
    with pytest.raises(DatabaseError, match="seq 7 "):
        codec.decode_rows([good, tuple(row[c] for c in codec.BODY_COLUMNS), good], {})
    with pytest.raises(DatabaseError, match="seq 7 "):
        codec.decode_message(row, {}, None)


def test_corrupt_row_errors_say_what_is_wrong() -> None:
    with pytest.raises(DatabaseError, match=r"seq 3 cannot be decoded \(unknown role 'robot'\)"):
        codec.decode_rows([(3, "robot", '"hi"', None, None, None, 0, None)], {})
    with pytest.raises(DatabaseError, match=r"seq None cannot be decoded \(.*8 BODY_COLUMNS, got 3 values\)"):
        codec.decode_rows([(3, "user", '"hi"')], {})
    with pytest.raises(DatabaseError, match=r"seq None cannot be decoded \(.*got a int\)"):
        codec.decode_rows([3], {})  # type: ignore[list-item]
    with pytest.raises(DatabaseError, match=r"seq 5 cannot be decoded \(KeyError: '0{64}'\)"):
        codec.decode_rows([(5, "user", json.dumps([{"image": "0" * 64}]), None, None, None, 0, None)], {})
    with pytest.raises(DatabaseError, match=r"seq 4 cannot be decoded \(no column 'pinned'\)"):
        codec.decode_message({k: v for k, v in {**_GOOD, "seq": 4}.items() if k != "pinned"}, {})
