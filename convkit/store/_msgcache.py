"""Decoded messages a store keeps between windows (in memory, per store, thread-safe).

A chatbot asks for a window every turn, and consecutive windows of a
conversation keep nearly the same rows: decoding them again each time would
cost more than reading them. The store keeps, for its most recently windowed
conversations, the messages of the last window, keyed by seq and valid for
one *epoch* of the conversation (``convkit_conversations.epoch`` grows
whenever messages are removed, and stored messages never change otherwise),
so a later window reads and decodes only the rows it has not seen.

Memory is bounded by ``conversations`` times one window's messages; a
conversation seen again with another epoch starts afresh. Messages are frozen,
so sharing them between windows and threads is safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

from .._messages import Message

__all__ = ["MessageCache"]

_EMPTY: Mapping[int, Message] = {}


class MessageCache:
    """The last window's decoded messages of up to ``conversations`` conversations (LRU)."""

    def __init__(self, conversations: int) -> None:
        self._capacity = conversations
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[int, dict[int, Message]]] = OrderedDict()

    @property
    def capacity(self) -> int:
        return self._capacity

    def get(self, conversation_id: str, epoch: int) -> Mapping[int, Message]:
        """The kept messages by seq for this epoch of the conversation (empty when none)."""
        if not self._capacity:
            return _EMPTY
        with self._lock:
            entry = self._entries.get(conversation_id)
            if entry is None or entry[0] != epoch:
                return _EMPTY
            self._entries.move_to_end(conversation_id)
            return entry[1]

    def newest(self, conversation_id: str) -> int | None:
        """The newest seq held for the conversation, whatever its epoch (``None``: nothing held).

        A window asks for the bodies after it in its first statement, before it knows the epoch.
        """
        if not self._capacity:
            return None
        with self._lock:
            entry = self._entries.get(conversation_id)
            return max(entry[1], default=None) if entry is not None else None

    def put(self, conversation_id: str, epoch: int, messages: dict[int, Message]) -> None:
        """Keep exactly ``messages`` (seq -> message) for this epoch; evict the least recent."""
        if not self._capacity:
            return
        with self._lock:
            self._entries[conversation_id] = (epoch, messages)
            self._entries.move_to_end(conversation_id)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def discard(self, conversation_id: str) -> None:
        with self._lock:
            self._entries.pop(conversation_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
