"""A plain list's index, kept by the identity of its messages.

``fit(messages_list, ...)`` used to validate the list and rebuild its
:class:`~convkit.History` (units, counts, prefix sums) on every call: linear
in the length even when every count is cached. A chatbot passes the same
list, grown by a message or two, on every turn. This cache keeps the last
few lists' indexes, keyed by the counter and the image policy in force, and
recognizes a list by the identity of its :class:`~convkit.Message` objects
(which are immutable): the same objects in the same order reuse the index;
the same objects followed by new ones extend it with the new ones only; any
other list builds a new index. The cache holds the messages it indexed, so
an identity can never be reused by another object while its entry lives.

Thread-safe: lookups, extensions and the reads of a window over a cached
index happen under one lock (a trim over an index takes microseconds).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import attrs

from ..counting import ImagePolicy, TokenCounter, apply_image_policy
from ..history import History
from ..messages import Message
from ..models import ModelSpec

__all__ = ["CAPACITY", "clear", "with_index"]

#: How many lists' indexes are kept (least recently used first out).
CAPACITY = 4

T = TypeVar("T")


@attrs.define
class _Entry:
    messages: list[Message]  # the input objects, held so their ids stay theirs
    ids: tuple[int, ...]
    history: History


_lock = threading.Lock()
_entries: OrderedDict[tuple[str, str, str, int], _Entry] = OrderedDict()


def clear() -> None:
    """Forget every cached index."""
    with _lock:
        _entries.clear()


@contextmanager
def _locked() -> Iterator[None]:
    with _lock:
        yield


def with_index(
    messages: list[Message],
    counter: TokenCounter,
    spec: ModelSpec,
    images: ImagePolicy,
    use: Callable[[History], T],
) -> T | None:
    """``use(index)`` over the index of ``messages`` (a non-empty list), under the lock.

    ``None`` when the list holds anything but :class:`Message` objects (a dict can change in
    place without changing its identity, so it is never cached).

    Counters with the same identity count alike (that is what an identity means), so an index
    built with one serves another.
    """
    ids = tuple(map(id, messages))
    # a conversation keeps its first message; a text-only model's note for a dropped image names it
    key = (counter.identity, "" if spec.supports_images else spec.name, images, ids[0])
    with _locked():
        entry = _entries.get(key)
        if entry is not None and len(ids) >= len(entry.ids) and ids[: len(entry.ids)] == entry.ids:
            if len(ids) > len(entry.ids):
                new = messages[len(entry.ids) :]
                if not all(type(m) is Message for m in new):
                    return None
                start = len(entry.ids)
                entry.history.extend(apply_image_policy(new, spec, images, start=start))  # all or nothing
                entry.messages.extend(new)
                entry.ids = ids
            _entries.move_to_end(key)
        else:
            if not all(type(m) is Message for m in messages):
                return None
            history = History(apply_image_policy(messages, spec, images), counter=counter)
            entry = _Entry(list(messages), ids, history)
            _entries[key] = entry
            while len(_entries) > CAPACITY:
                _entries.popitem(last=False)
        return use(entry.history)
