"""A plain list's index, kept by the identity of its messages.

``fit(messages_list, ...)`` used to validate the list and rebuild its
:class:`~convkit.History` (units, counts, prefix sums) on every call: linear
in the length even when every count is cached. A chatbot passes the same
list, grown by a message or two, on every turn. This cache keeps the last
few lists' indexes, keyed by the counter and the image policy in force and
by the identities of the list's first two messages, and recognizes a list
by the identity of its :class:`~convkit.Message` objects (which are
immutable): the same objects in the same order reuse the index; the same
objects followed by new ones extend it with the new ones only (counted by
the caller's counter); any other list builds a new index. The cache holds
the messages it indexed, so an identity can never be reused by another
object while its entry lives. Only the public ``fit`` uses it: lists that
are new on every call (decoded rows, converted framework messages) would
only fill it.

Thread-safe: one lock guards the table, and each entry has its own lock for
extending its index and reading a window from it, so building or extending
one list's index (which counts) never holds up another list's ``fit``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import attrs

from .._counting import ImagePolicy, TokenCounter, apply_image_policy
from .._history import History
from .._messages import Message
from .._models import ModelSpec

__all__ = ["CAPACITY", "clear", "with_index"]

#: How many lists' indexes are kept (least recently used first out).
CAPACITY = 4

T = TypeVar("T")
_Key = tuple[str, str, str, int, int]


@attrs.define
class _Entry:
    messages: list[Message]  # the input objects, held so their ids stay theirs
    ids: tuple[int, ...]
    history: History
    lock: threading.RLock = attrs.field(factory=threading.RLock)


_lock = threading.Lock()
_entries: OrderedDict[_Key, _Entry] = OrderedDict()


def clear() -> None:
    """Forget every cached index."""
    with _lock:
        _entries.clear()


def with_index(
    messages: list[Message],
    counter: TokenCounter,
    spec: ModelSpec,
    images: ImagePolicy,
    use: Callable[[History], T],
) -> T | None:
    """``use(index)`` over the index of ``messages`` (a non-empty list).

    ``None`` when the list holds anything but :class:`Message` objects (a dict can change in
    place without changing its identity, so it is never cached). Counters with the same
    identity count alike (that is what an identity means), so an index built with one serves
    another; new messages are counted with the caller's.
    """
    snapshot = messages[:]  # one view of the list, whatever another thread appends meanwhile
    ids = tuple(map(id, snapshot))
    # a text-only model's note for a dropped image names the model
    key: _Key = (
        counter.identity,
        "" if spec.supports_images else spec.name,
        images,
        ids[0],
        ids[1] if len(ids) > 1 else 0,
    )
    with _lock:
        entry = _entries.get(key)
        if entry is not None:
            _entries.move_to_end(key)
    if entry is not None:
        with entry.lock:
            known = len(entry.ids)
            if len(ids) >= known and ids[:known] == entry.ids:
                if len(ids) > known:
                    new = snapshot[known:]
                    if not all(type(m) is Message for m in new):
                        return None
                    entry.history.counter = counter  # the caller's (same identity, live client)
                    entry.history.extend(apply_image_policy(new, spec, images, start=known))  # all or none
                    entry.messages.extend(new)
                    entry.ids = ids
                return use(entry.history)
    if not all(type(m) is Message for m in snapshot):
        return None
    fresh = _Entry(snapshot, ids, History(apply_image_policy(snapshot, spec, images), counter=counter))
    with fresh.lock:
        with _lock:
            _entries[key] = fresh
            _entries.move_to_end(key)
            while len(_entries) > CAPACITY:
                _entries.popitem(last=False)
        return use(fresh.history)
