"""Bad input gets a typed error that says what is wrong, never a raw Python exception (issue 14).

Each test here failed before its fix: a PNG without image data escaped as ``IndexError``; the
decompression-bomb check depended on process-wide warning filters and let huge images through
when run from threads.
"""

from __future__ import annotations

import base64
import struct
import sys
import threading
import zlib
from pathlib import Path

import pytest

import convkit
from convkit import ImagePart, InvalidImageError, Message


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png(width: int, height: int, *, idat: bool = True) -> bytes:
    """A PNG header declaring ``width`` x ``height`` (RGB); its IDAT holds one empty row at most."""
    body = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    if idat:
        body += _chunk(b"IDAT", zlib.compress(b"\x00" * (1 + 3 * min(width, 4))))
    return b"\x89PNG\r\n\x1a\n" + body + _chunk(b"IEND", b"")


# -- images -------------------------------------------------------------------------------------


def test_png_without_idat_is_an_invalid_image_error(tmp_path: Path) -> None:
    data = _png(1, 1, idat=False)
    assert len(data) == 45
    with pytest.raises(InvalidImageError, match="IDAT"):
        ImagePart.from_bytes(data)
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    with pytest.raises(InvalidImageError, match="IDAT"):
        ImagePart.from_url(url)
    with pytest.raises(InvalidImageError, match="IDAT"):
        Message.from_openai({"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]})
    with convkit.Store(f"sqlite:///{tmp_path / 'x.db'}") as store:
        conv = store.create_conversation()
        msg = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
        with pytest.raises(InvalidImageError, match="IDAT"):
            store.append(conv.id, msg)
        assert store.messages(conv.id) == []


def test_decompression_bomb_is_refused_from_many_threads_at_once() -> None:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often, as on a busy server
    try:
        _bombs_from_threads()
    finally:
        sys.setswitchinterval(old)


def _bombs_from_threads() -> None:
    bomb = _png(10_000, 10_000)  # 100 million pixels declared in a few dozen bytes
    small = _png(64, 64)
    outcomes: list[object] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def check(i: int) -> None:
        start.wait()
        for _ in range(100):
            data = bomb if i % 2 == 0 else small
            try:
                ImagePart.from_bytes(data)
                result: object = "accepted" if data is bomb else "ok"
            except InvalidImageError as exc:
                result = "refused" if data is bomb and "pixels" in str(exc) else f"wrong: {exc}"
            except Exception as exc:  # any other escape is the defect
                result = f"raw {type(exc).__name__}: {exc}"
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=check, args=(i,)) for i in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(set(map(str, outcomes))) == ["ok", "refused"]
    assert outcomes.count("refused") == 8 * 100


def test_decompression_bomb_is_refused_whatever_the_warning_filters() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InvalidImageError, match="100000000 pixels"):
            ImagePart.from_bytes(_png(10_000, 10_000))
    with pytest.raises(InvalidImageError, match="pixels"):
        ImagePart.from_bytes(_png(60_000, 60_000))


def test_jpeg_declaring_a_huge_frame_is_refused_before_decoding() -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 20_000, 20_000)  # height, width
    with pytest.raises(InvalidImageError, match="20000x20000 = 400000000 pixels"):
        ImagePart.from_bytes(bytes(data))


# -- text that cannot be encoded ------------------------------------------------------------------

SURROGATE = "a\ud800b"


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Message.user("hi", name=SURROGATE), "name"),
        (lambda: Message.user(SURROGATE), "text"),
        (lambda: Message.tool("ok", tool_call_id=SURROGATE), "tool_call_id"),
        (lambda: convkit.ToolCall(id=SURROGATE, name="f"), "tool call id"),
        (lambda: convkit.ToolCall(id="c1", name=SURROGATE), "tool call name"),
        (lambda: convkit.ToolCall(id="c1", name="f", arguments=f'"{SURROGATE}"'), "tool call arguments"),
        (lambda: convkit.ToolCall(id="c1", name="f", type=SURROGATE), "tool call type"),
        (lambda: Message.user("hi", metadata={"k": SURROGATE}), "metadata['k']"),
        (lambda: Message.user("hi", metadata={"k": [1, {SURROGATE: 1}]}), "metadata['k'][1]"),
        (lambda: ImagePart.from_url(f"https://example.com/{SURROGATE}.png"), "image URL"),
    ],
)
def test_text_that_is_not_utf8_is_refused_at_construction_naming_the_field(build: object, field: str) -> None:
    assert callable(build)
    with pytest.raises(convkit.InvalidMessageError, match="surrogate") as info:
        build()
    assert field in str(info.value)


def test_name_with_a_lone_surrogate_never_reaches_fit_or_the_client() -> None:
    bad = {"role": "user", "content": "hi", "name": SURROGATE}
    with pytest.raises(convkit.InvalidMessageError, match="name"):
        convkit.fit([bad], model="grok-3")
    client = convkit.XAIClient(api_key="xai-test", base_url="http://127.0.0.1:9", max_retries=0)
    with client, pytest.raises(convkit.InvalidMessageError, match="name"):
        client.chat([bad], model="grok-3")


# -- metadata must come back equal ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "path", "why"),
    [
        ({1: "a", "1": "b"}, "metadata[1]", "keys must be strings"),
        ({"k": (1, 2)}, "metadata['k']", "tuple"),
        ({"k": {"x": {1, 2}}}, "metadata['k']['x']", "set"),
        ({"k": [1.0, float("nan")]}, "metadata['k'][1]", "nan"),
        ({"k": float("inf")}, "metadata['k']", "inf"),
        ({"k": b"bytes"}, "metadata['k']", "bytes"),
        ({"k": {None: 1}}, "metadata['k'][None]", "keys must be strings"),
    ],
)
def test_metadata_that_cannot_round_trip_as_json_is_refused_naming_the_key_path(
    metadata: dict[object, object], path: str, why: str
) -> None:
    with pytest.raises(convkit.InvalidMessageError) as info:
        Message.user("hi", metadata=metadata)
    assert path in str(info.value)
    assert why in str(info.value)


def test_metadata_that_is_json_round_trips_through_to_dict_and_a_store(tmp_path: Path) -> None:
    meta = {"a": [1, 2.5, None, True, "x", {"b": []}], "c": {}, "d": -3}
    m = Message.user("hi", metadata=meta)
    assert Message.from_dict(m.to_dict()) == m
    with convkit.Store(f"sqlite:///{tmp_path / 'x.db'}") as store:
        conv = store.create_conversation()
        store.append(conv.id, m)
        assert store.messages(conv.id)[0].metadata == meta


def test_deeply_nested_metadata_is_refused_not_a_recursion_error() -> None:
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(convkit.InvalidMessageError, match="nested"):
        Message.user("hi", metadata={"k": deep})


def test_conversation_metadata_that_cannot_round_trip_is_refused_naming_the_key_path(tmp_path: Path) -> None:
    with convkit.Store(f"sqlite:///{tmp_path / 'x.db'}") as store:
        with pytest.raises(convkit.ValidationError, match=r"conversation metadata\['k'\].*tuple"):
            store.create_conversation(metadata={"k": (1, 2)})
        with pytest.raises(convkit.ValidationError, match=r"conversation metadata\[1\]"):
            store.create_conversation(metadata={1: "a", "1": "b"})
        assert store.list_conversations() == []


# -- usage rows, deep JSON, client timeouts ---------------------------------------------------------

GOOD_USAGE = {"model": "grok-3", "prompt_tokens": 10, "completion_tokens": 2, "cost_usd": 0.001}


@pytest.mark.parametrize(
    ("usage", "names"),
    [
        ("not a mapping", "usage"),
        ({**GOOD_USAGE, "prompt_tokens": "ten"}, "prompt_tokens"),
        ({**GOOD_USAGE, "completion_tokens": -1}, "completion_tokens"),
        ({**GOOD_USAGE, "cached_tokens": 2.5}, "cached_tokens"),
        ({**GOOD_USAGE, "reasoning_tokens": True}, "reasoning_tokens"),
        ({**GOOD_USAGE, "cost_usd": "cheap"}, "cost_usd"),
        ({**GOOD_USAGE, "cost_usd": float("nan")}, "cost_usd"),
        ({**GOOD_USAGE, "local_prompt_tokens": "x"}, "local_prompt_tokens"),
        ({**GOOD_USAGE, "model": ""}, "model"),
        ({**GOOD_USAGE, "model": "m" * 129}, "model"),
        ({**GOOD_USAGE, "counter_id": 5}, "counter_id"),
        ({**GOOD_USAGE, "prompt_tokens": 2**40}, "prompt_tokens"),
    ],
)
def test_record_turn_with_a_bad_usage_row_is_a_validation_error_and_writes_nothing(
    open_store: object, usage: object, names: str
) -> None:
    assert callable(open_store)
    store = open_store()
    conv = store.create_conversation()
    store.append(conv.id, Message.user("hi"))
    with pytest.raises(convkit.ValidationError, match=names) as info:
        store.record_turn(conv.id, Message.assistant("hello"), usage)
    assert not isinstance(info.value, convkit.StoreError)
    assert [m.role for m in store.messages(conv.id)] == ["user"]
    assert store.usage(conv.id).turns == 0
    assert store.record_turn(conv.id, Message.assistant("hello"), GOOD_USAGE) == 2


def test_loads_jsonl_of_deeply_nested_input_is_an_invalid_message_error() -> None:
    for text in ("[" * 100_000, '{"role": "user", "content": "x", "metadata": {"a": ' + "[" * 100_000):
        with pytest.raises(convkit.InvalidMessageError, match=r"<jsonl>:1: .*nested"):
            convkit.loads_jsonl(text)


@pytest.mark.parametrize("timeout", [-1, 0, -0.5, float("nan"), float("inf"), "5", True, [1]])
def test_a_client_timeout_that_is_not_a_positive_number_is_refused_at_construction(timeout: object) -> None:
    for cls in (convkit.XAIClient, convkit.AsyncXAIClient):
        with pytest.raises(convkit.ValidationError, match="timeout"):
            cls(api_key="xai-test", timeout=timeout)  # type: ignore[arg-type]


def test_an_httpx_timeout_with_a_negative_part_is_refused_naming_the_part() -> None:
    import httpx

    with pytest.raises(convkit.ValidationError, match="connect"):
        convkit.XAIClient(api_key="xai-test", timeout=httpx.Timeout(10.0, connect=-1.0))
    client = convkit.XAIClient(api_key="xai-test", timeout=httpx.Timeout(10.0, pool=None))
    client.close()


# -- the same answer on every database --------------------------------------------------------------


def _long_messages(n: int) -> dict[str, list[Message]]:
    call = convkit.ToolCall(id="c" * n, name="f")
    return {
        "tool call id": [Message.assistant(tool_calls=[call])],
        "tool_call_id": [
            Message.assistant(tool_calls=[convkit.ToolCall(id="t" * n, name="f")]),
            Message.tool("ok", tool_call_id="t" * n),
        ],
        "name": [Message.user("hi", name="n" * n)],
    }


@pytest.mark.parametrize("field", ["tool call id", "tool_call_id", "name"])
def test_strings_over_their_column_length_are_refused_alike_on_every_database(
    open_store: object, field: str
) -> None:
    assert callable(open_store)
    store = open_store()
    conv = store.create_conversation()
    store.append(conv.id, Message.user("start"))
    with pytest.raises(convkit.InvalidMessageError, match="at most 255 characters") as info:
        store.extend(conv.id, _long_messages(256)[field][-1:])  # the message holding the field
    assert field in str(info.value)
    assert not isinstance(info.value, convkit.StoreError)
    assert len(store.messages(conv.id)) == 1
    fits = _long_messages(255)[field]
    store.extend(conv.id, fits)
    assert store.messages(conv.id)[1:] == fits


# -- deeply nested JSON from the network ------------------------------------------------------------

DEEP = b"[" * 100_000


def _client_answering(status: int, body: bytes, content_type: str = "application/json") -> convkit.XAIClient:
    import httpx

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    return convkit.XAIClient(
        api_key="xai-test",
        base_url="http://xai.test/v1",
        max_retries=0,
        transport=httpx.MockTransport(answer),
    )


@pytest.mark.parametrize(
    ("status", "body", "content_type", "error"),
    [
        (200, DEEP, "application/json", convkit.ResponseFormatError),
        (200, b'{"choices": ' + DEEP, "application/json", convkit.ResponseFormatError),
        (400, b'{"a":' * 50_000, "application/json", convkit.BadRequestError),
        (200, b"data: " + DEEP + b"\n\n", "text/event-stream", convkit.ResponseFormatError),
    ],
)
def test_deeply_nested_json_from_xai_is_a_typed_error(
    status: int, body: bytes, content_type: str, error: type[Exception]
) -> None:
    with _client_answering(status, body, content_type) as client:
        if content_type == "text/event-stream":
            with pytest.raises(error):
                list(client.stream([Message.user("hi")], model="grok-3"))
        else:
            with pytest.raises(error):
                client.chat([Message.user("hi")], model="grok-3")
        if status == 200 and content_type == "application/json":
            with pytest.raises(convkit.ResponseFormatError):
                client.language_models()


def test_a_stored_row_too_deeply_nested_to_decode_is_a_database_error(tmp_path: Path) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'x.db'}"
    with convkit.Store(url) as store:
        conv = store.create_conversation()
        store.append(conv.id, Message.user("hi", metadata={"k": 1}))
    engine = sa.create_engine(url)
    with engine.begin() as db:
        db.execute(sa.text("UPDATE convkit_messages SET metadata = :m"), {"m": '{"k": ' + "[" * 100_000})
    engine.dispose()
    with convkit.Store(url) as store, pytest.raises(convkit.DatabaseError, match="seq 1"):
        store.messages(conv.id)


def test_a_model_cache_too_deeply_nested_to_read_is_ignored_with_a_warning(tmp_path: Path) -> None:
    from convkit import _catalog

    cache = tmp_path / "models.json"
    cache.write_text("[" * 100_000, encoding="utf-8")
    with pytest.warns(_catalog.ModelsCacheWarning, match="not valid JSON"):
        assert _catalog.load_cache(cache) is None


# -- a full disk ------------------------------------------------------------------------------------


def _full_disk(*_args: object) -> None:
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("fails", ["write", "fsync", "replace"])
def test_export_jsonl_to_a_full_disk_is_a_store_error_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    import io
    import os

    from convkit import _jsonl as jsonl_module

    with convkit.Store(f"sqlite:///{tmp_path / 'x.db'}") as store:
        conv = store.create_conversation()
        store.append(conv.id, Message.user("hi"))
        out = tmp_path / "out"
        out.mkdir()
        dest = out / "conv.jsonl"
        dest.write_text("the previous export\n", encoding="utf-8")
        if fails == "write":
            real_open = open

            class FullFile(io.StringIO):
                def __init__(self, path: str) -> None:
                    super().__init__()
                    real_open(path, "w").close()  # the temporary file exists, as on a real disk

                def write(self, text: str) -> int:
                    _full_disk()
                    return 0

            monkeypatch.setattr(jsonl_module, "open", lambda path, *a, **kw: FullFile(path), raising=False)
        else:
            monkeypatch.setattr(os, fails, _full_disk)
        with pytest.raises(convkit.StoreError, match="No space left on device") as info:
            store.export_jsonl(conv.id, dest)
        monkeypatch.undo()
        assert str(dest) in str(info.value)
        assert sorted(p.name for p in out.iterdir()) == ["conv.jsonl"]
        assert dest.read_text(encoding="utf-8") == "the previous export\n"


def test_export_jsonl_to_a_missing_folder_or_a_failing_stream_is_a_store_error(tmp_path: Path) -> None:
    class Full:
        name = "<full stream>"

        def write(self, text: str) -> int:
            _full_disk()
            return 0

    with convkit.Store(f"sqlite:///{tmp_path / 'x.db'}") as store:
        conv = store.create_conversation()
        store.append(conv.id, Message.user("hi"))
        with pytest.raises(convkit.StoreError, match="no/such/folder"):
            store.export_jsonl(conv.id, tmp_path / "no" / "such" / "folder" / "c.jsonl")
        with pytest.raises(convkit.StoreError, match="full stream"):
            store.export_jsonl(conv.id, Full())  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["m" * 129, "", "   ", "a\ud800", 5])
def test_a_model_name_the_store_cannot_key_by_is_refused_at_construction(name: object) -> None:
    with pytest.raises(convkit.ValidationError, match=r"at most 128 characters|lone surrogate"):
        convkit.ModelSpec(name=name, context_window=1000)  # type: ignore[arg-type]
    assert convkit.ModelSpec(name="m" * 128, context_window=1000).name == "m" * 128
