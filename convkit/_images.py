"""Image facts: reading image bytes and the token cost of an image.

xAI's rule (DESIGN section 4): an image is cut into 448x448 tiles of 256
tokens each, at most 6 tiles count, plus one extra tile, so an image costs
``(min(tiles, 6) + 1) * 256`` tokens, at most 1792. Dimensions come from the
image bytes (read with Pillow, which also proves the bytes are a JPEG or PNG).
An image given by http(s) URL is not fetched: it costs the maximum unless its
dimensions are supplied.

Decompression bombs (a few bytes declaring a huge image) are refused by an
explicit check of the declared width x height against :data:`MAX_IMAGE_PIXELS`,
read from the PNG/JPEG header before Pillow decodes anything, and again from
the size Pillow reports. The check never depends on :mod:`warnings` filters,
which are process-wide and not thread-safe (``warnings.catch_warnings`` from
several threads let bombs through).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import struct

from ._errors import InvalidImageError

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_TOKENS",
    "TILE_SIZE",
    "TOKENS_PER_TILE",
    "decode_data_url",
    "encode_data_url",
    "image_tokens",
    "inspect_image",
]

MAX_IMAGE_BYTES = 10 * 1024 * 1024
TILE_SIZE = 448
TOKENS_PER_TILE = 256
MAX_TILES = 6
MAX_IMAGE_TOKENS = (MAX_TILES + 1) * TOKENS_PER_TILE
#: Most pixels (width x height) an image may declare: Pillow's own default decompression-bomb limit.
MAX_IMAGE_PIXELS = 89_478_485

_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}


def image_tokens(width: int | None, height: int | None) -> int:
    """Tokens for an image of that size; unknown size costs the maximum (1792)."""
    if width is None or height is None:
        return MAX_IMAGE_TOKENS
    tiles = math.ceil(width / TILE_SIZE) * math.ceil(height / TILE_SIZE)
    return (min(tiles, MAX_TILES) + 1) * TOKENS_PER_TILE


def inspect_image(data: bytes) -> tuple[str, int, int]:
    """Check that ``data`` is a JPEG or PNG of at most 10 MiB; return (media type, width, height)."""
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidImageError(
            f"image is {len(data)} bytes; xAI takes at most {MAX_IMAGE_BYTES} bytes (10 MiB) per image. "
            "Downscale or recompress it."
        )
    declared = _declared_size(data)
    if declared is not None:
        _check_pixels(*declared)
    if data.startswith(_PNG_SIGNATURE) and b"IDAT" not in data:
        raise InvalidImageError(
            "image bytes are not a readable PNG: it holds no image data (no IDAT chunk); "
            "send a complete PNG or JPEG file"
        )
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            width, height = img.size
            _check_pixels(width, height)  # before verify: the header is all Pillow has read
            img.verify()
    except InvalidImageError:
        raise
    except UnidentifiedImageError:  # its text names a Python object, not the image
        raise InvalidImageError(
            f"image bytes are not a readable JPEG or PNG (their first bytes, in hex: {data[:8].hex(' ')}); "
            "send a JPEG or PNG"
        ) from None
    except Exception as exc:  # Pillow raises many kinds on bad bytes (IndexError, struct.error...)
        detail = re.sub(r"<[^<>]* object at 0x[0-9a-fA-F]+>", "the image", str(exc)) or "no detail"
        raise InvalidImageError(
            f"image bytes are not a readable JPEG or PNG ({type(exc).__name__}: {detail}); "
            "send a complete JPEG or PNG file"
        ) from None
    media = _FORMATS.get(fmt or "")
    if media is None:
        raise InvalidImageError(f"image format {fmt} is not accepted; send a JPEG or PNG")
    return media, width, height


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: JPEG start-of-frame markers (they carry the image's height and width); not DHT, JPG or DAC.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise InvalidImageError(
            f"image declares {width}x{height} = {width * height} pixels, over the limit of "
            f"{MAX_IMAGE_PIXELS} pixels (a decompression bomb?); downscale it"
        )


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the PNG IHDR or the JPEG start-of-frame declares them; None if not found."""
    if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if not data.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers carry no length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        if marker == 0xDA or length < 2:  # start of scan before any frame header: give up
            return None
        pos += 2 + length
    return None


def decode_data_url(url: str) -> tuple[str, bytes]:
    """Split a ``data:image/...;base64,...`` URL into (declared media type, bytes)."""
    head, sep, payload = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        raise InvalidImageError(
            "an image URL must be http(s) or a base64 data URL like 'data:image/png;base64,...'"
        )
    media = head[5:-7]
    # cheap size check before decoding: 4 base64 chars carry 3 bytes
    if len(payload) * 3 // 4 > MAX_IMAGE_BYTES + 3:
        raise InvalidImageError(
            f"image is over {MAX_IMAGE_BYTES} bytes (10 MiB), the most xAI takes per image"
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImageError("image data URL does not hold valid base64") from None
    return media, data


def encode_data_url(media_type: str, data: bytes) -> str:
    """The base64 data URL for image bytes."""
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
