"""An append-only, indexed conversation: messages, their counts, and trim units.

:class:`History` is what makes :func:`convkit.fit` fast on long
conversations. It keeps, for one counter:

* each message's content tokens (counted once, in batches, on append);
* the *units* trimming works on: a message alone, or an assistant message with
  tool calls together with every message up to its last tool result (so a
  call and its results are kept or dropped together, and units stay
  contiguous);
* prefix sums over units of tokens and message counts, for all units and for
  droppable ones only, so the cost of any suffix is O(1) for any model and
  the trim point is found by bisection in O(log n).

A unit is *pinned* (never trimmed) when it holds a message marked pinned or a
leading system message (a system message before the first non-system one).
The unit holding the newest message is kept by :func:`convkit.fit` too.

Invariants: a tool message answers a call made by an earlier assistant
message (else :class:`~convkit.errors.InvalidConversationError`, and the
History is unchanged); appends are all-or-nothing.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence

from .counting import BaseCounter, TokenCounter
from .errors import InvalidConversationError
from .messages import ImagePart, Message, MessageLike, as_messages

__all__ = ["History"]


class History:
    """Messages plus the indexes :func:`convkit.fit` needs, for one counter."""

    def __init__(
        self,
        messages: Iterable[MessageLike] = (),
        *,
        counter: TokenCounter | None = None,
        counts: Sequence[int] | None = None,
    ) -> None:
        from .counting import EstimateCounter

        self.counter: TokenCounter = counter if counter is not None else EstimateCounter()
        self._messages: list[Message] = []
        self._content: list[int] = []
        self._unit_start: list[int] = []
        # prefix sums over units, length = units + 1
        self._cum_tok: list[int] = [0]
        self._cum_msg: list[int] = [0]
        self._cum_drop_tok: list[int] = [0]
        self._cum_drop_msg: list[int] = [0]
        self._pinned_units: list[int] = []
        self._call_owner: dict[str, int] = {}
        self._prefix_len = 0
        self._images = 0
        self.extend(messages, counts=counts)

    def __repr__(self) -> str:
        return f"History({len(self._messages)} messages, {self.units} units, counter={self.counter!r})"

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def messages(self) -> list[Message]:
        """The messages (a copy of the list; the messages themselves are frozen)."""
        return list(self._messages)

    @property
    def units(self) -> int:
        return len(self._unit_start)

    @property
    def has_images(self) -> bool:
        return self._images > 0

    @property
    def content_counts(self) -> list[int]:
        """Content tokens per message (without per-message overhead)."""
        return list(self._content)

    def append(self, message: MessageLike, *, count: int | None = None) -> None:
        self.extend([message], counts=None if count is None else [count])

    def extend(self, messages: Iterable[MessageLike], *, counts: Sequence[int] | None = None) -> None:
        """Append messages; validates tool links and counts new ones in one batch.

        ``counts`` (content tokens per message, as the same counter gives
        them) skips counting, e.g. for counts read back from a database.
        """
        new = as_messages(messages)
        if not new:
            return
        base = len(self._messages)
        owners = self._check_links(new, base)
        if counts is None:
            if isinstance(self.counter, BaseCounter) or hasattr(self.counter, "content_tokens"):
                content = list(self.counter.content_tokens(new))
            else:  # pragma: no cover - protocol guarantees content_tokens
                raise TypeError("counter lacks content_tokens")
        else:
            content = [int(c) for c in counts]
            if len(content) != len(new) or any(c < 0 for c in content):
                raise InvalidConversationError(
                    f"counts must give one non-negative count per message ({len(new)}), got {len(content)}"
                )
        # -- commit (nothing below raises) --
        for k, m in enumerate(new):
            i = base + k
            self._messages.append(m)
            self._content.append(content[k])
            if m.role == "system" and self._prefix_len == i:
                self._prefix_len = i + 1
            self._images += sum(1 for p in m.content if isinstance(p, ImagePart))
            pinned = m.pinned or i < self._prefix_len
            if m.role == "tool":
                owner = owners[k]
                self._merge_from(owner, i, pinned)
            else:
                self._push_unit(i, i, pinned)
            for c in m.tool_calls:
                self._call_owner[c.id] = i

    # -- internals --------------------------------------------------------------------
    def _check_links(self, new: list[Message], base: int) -> list[int]:
        known = dict(self._call_owner)
        owners: list[int] = []
        for k, m in enumerate(new):
            owner = -1
            if m.role == "tool":
                assert m.tool_call_id is not None
                owner = known.get(m.tool_call_id, -1)
                if owner < 0:
                    raise InvalidConversationError(
                        f"message {base + k} is a tool result for call id {m.tool_call_id!r}, which no "
                        "earlier assistant message made; add the assistant message with that tool call first"
                    )
            owners.append(owner)
            for c in m.tool_calls:
                known[c.id] = base + k
        return owners

    def _push_unit(self, start: int, end: int, pinned: bool) -> None:
        """Add a unit covering messages [start, end]."""
        tok = sum(self._content[start : end + 1])
        n = end + 1 - start
        u = len(self._unit_start)
        self._unit_start.append(start)
        self._cum_tok.append(self._cum_tok[-1] + tok)
        self._cum_msg.append(self._cum_msg[-1] + n)
        self._cum_drop_tok.append(self._cum_drop_tok[-1] + (0 if pinned else tok))
        self._cum_drop_msg.append(self._cum_drop_msg[-1] + (0 if pinned else n))
        if pinned:
            self._pinned_units.append(u)

    def _merge_from(self, owner: int, end: int, pinned: bool) -> None:
        """Fold every unit from the one holding message ``owner`` up to message ``end`` into one."""
        u0 = bisect_right(self._unit_start, owner) - 1
        start = self._unit_start[u0]
        units_pinned = bool(self._pinned_units) and self._pinned_units[-1] >= u0
        del self._unit_start[u0:]
        for arr in (self._cum_tok, self._cum_msg, self._cum_drop_tok, self._cum_drop_msg):
            del arr[u0 + 1 :]
        while self._pinned_units and self._pinned_units[-1] >= u0:
            self._pinned_units.pop()
        self._push_unit(start, end, pinned or units_pinned)

    # -- queries used by fit ---------------------------------------------------------
    def unit_bounds(self, u: int) -> tuple[int, int]:
        """Message index range [start, stop) of unit ``u``."""
        stop = self._unit_start[u + 1] if u + 1 < len(self._unit_start) else len(self._messages)
        return self._unit_start[u], stop
