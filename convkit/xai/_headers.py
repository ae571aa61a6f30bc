"""Request headers xAI reads besides authentication: the prompt cache's routing key.

``x-grok-conv-id`` routes requests carrying the same value to the server that
holds that conversation's prompt cache (DESIGN section 9). The client sends it
when given a ``conv_id``; the stand-in (:mod:`convkit.testing`) caches by it.
Standard library only, so the stand-in can import it without httpx.
"""

from __future__ import annotations

from .._errors import ValidationError

__all__ = ["CONV_ID_HEADER", "conv_headers"]

#: The header that routes requests to the server holding a conversation's prompt cache.
CONV_ID_HEADER = "x-grok-conv-id"


def conv_headers(conv_id: str | None) -> dict[str, str] | None:
    """The cache-routing header for ``conv_id`` (checked: a header value, not anything else)."""
    if conv_id is None:
        return None
    if (
        not isinstance(conv_id, str)
        or not 0 < len(conv_id) <= 128
        or not all(33 <= ord(ch) < 127 for ch in conv_id)
    ):
        raise ValidationError(
            "conv_id is an opaque key of 1-128 printable ASCII characters without spaces (sent as the "
            f"{CONV_ID_HEADER} header), got {conv_id!r}"
        )
    return {CONV_ID_HEADER: conv_id}
