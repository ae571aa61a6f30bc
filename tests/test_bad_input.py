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
