"""Image garbage collection: delete the image bytes no message refers to any more.

Images are stored once by content hash (``convkit_images``) and shared by every
message, conversation and namespace that holds the same bytes, so removing
messages (:func:`delete_conversation`, ``truncate``, ``pop``) must delete the
images only they referred to, and keep the rest.
"""

from __future__ import annotations

import sqlalchemy as sa

from . import _schema as t
from ._codec import IMAGE_MARKER, image_shas
from ._conversations import delete_conversation as _delete_rows
from ._conversations import lock_conversation
from ._ops_core import Exec, Op

__all__ = ["delete_conversation", "drop_unreferenced_images", "images_of"]


def delete_conversation(ns: str, cid: str) -> Op[None]:
    """Delete the conversation with its rows, and the images no other message refers to."""
    yield from lock_conversation(ns, cid, for_update=True)
    shas = yield from images_of(cid)
    yield from _delete_rows(ns, cid)
    yield from drop_unreferenced_images(shas)
    return None


def images_of(cid: str, after_seq: int = 0) -> Op[set[str]]:
    """The hashes of the stored images the conversation's messages past ``after_seq`` refer to."""
    m = t.messages
    rows = (
        yield Exec(
            sa.select(m.c.content).where(
                m.c.conversation_id == cid, m.c.seq > after_seq, m.c.content.contains(IMAGE_MARKER)
            )
        )
    ).all()
    return {sha for (content,) in rows for sha in image_shas(content)}


def drop_unreferenced_images(shas: set[str]) -> Op[None]:
    """Delete the images of ``shas`` that no message (of any conversation, any namespace) refers to.

    Images are stored once by content hash and shared, so each is looked for in every message
    row (a ``LIKE`` on ``{"image":"<sha256>"``: text is JSON-escaped, so never matches).
    Race-free: on PostgreSQL the image rows are locked first (``FOR UPDATE``) and an append
    that reuses an image upserts its row (``ON CONFLICT DO UPDATE``, which waits for that
    lock), so an image is never deleted under a message committed after the check, and an
    append that waited re-inserts a row deleted meanwhile; SQLite has one writer at a time.
    """
    m, i = t.messages, t.images
    for sha in sorted(shas):
        locked = (yield Exec(sa.select(i.c.sha256).where(i.c.sha256 == sha).with_for_update())).first()
        if locked is None:
            continue
        ref = f'{IMAGE_MARKER}"{sha}"'  # how encode_message writes an image part, never inside text
        used = (yield Exec(sa.select(m.c.id).where(m.c.content.contains(ref)).limit(1))).first()
        if used is None:
            yield Exec(sa.delete(i).where(i.c.sha256 == sha))
    return None
