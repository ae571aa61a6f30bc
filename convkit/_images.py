"""Image facts: reading image bytes and the token cost of an image.

xAI's rule (DESIGN section 4): an image is cut into 448x448 tiles of 256
tokens each, at most 6 tiles count, plus one extra tile, so an image costs
``(min(tiles, 6) + 1) * 256`` tokens, at most 1792. Dimensions come from the
image bytes (read with Pillow, which also proves the bytes are a JPEG or PNG).
An image given by http(s) URL is not fetched: it costs the maximum unless its
dimensions are supplied.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import warnings

from ._errors import InvalidImageError

__all__ = [
    "MAX_IMAGE_BYTES",
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
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format
                width, height = img.size
                img.verify()
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        if isinstance(exc, UnidentifiedImageError):  # its text names a Python object, not the image
            raise InvalidImageError(
                f"image bytes are not a readable JPEG or PNG (they start with {data[:8]!r}); "
                "send a JPEG or PNG"
            ) from None
        detail = re.sub(r"<[^<>]* object at 0x[0-9a-fA-F]+>", "the image", str(exc))
        raise InvalidImageError(f"image bytes are not a readable JPEG or PNG ({detail})") from None
    media = _FORMATS.get(fmt or "")
    if media is None:
        raise InvalidImageError(f"image format {fmt} is not accepted; send a JPEG or PNG")
    return media, width, height


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
