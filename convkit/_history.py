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
message (else :class:`~convkit._errors.InvalidConversationError`, and the
History is unchanged); appends are all-or-nothing.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import accumulate

from ._counting import BaseCounter, TokenCounter
from ._engine.units import Units, leading_system, link_owners
from ._errors import InvalidConversationError
from ._messages import ImagePart, Message, MessageLike, as_messages

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
        from ._counting import EstimateCounter

        self.counter: TokenCounter = counter if counter is not None else EstimateCounter()
        self._messages: list[Message] = []
        self._content: list[int] = []
        self._units = Units()
        self._unit_start: list[int] = self._units.starts  # the same lists, named for fit's reads
        self._pinned_units: list[int] = self._units.pinned
        # prefix sums over units, length = units + 1
        self._cum_tok: list[int] = [0]
        self._cum_msg: list[int] = [0]
        self._cum_drop_tok: list[int] = [0]
        self._cum_drop_msg: list[int] = [0]
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
        self._commit(new, content, owners)

    # -- internals --------------------------------------------------------------------
    def _check_links(self, new: list[Message], base: int) -> list[int | None]:
        return link_owners(new, self._call_owner, base, describe=lambda k: f"message {base + k}")

    def _commit(self, new: list[Message], content: list[int], owners: list[int | None]) -> None:
        """Append validated messages and update the units and prefix sums (never raises).

        One pass assigns units (a tool message folds every unit from the one
        holding its call up to itself into one, as ``_unit_start`` stays
        sorted); then the prefix sums are recomputed from the first unit that
        changed, in bulk.
        """
        msgs, cont = self._messages, self._content
        base = len(msgs)
        msgs.extend(new)
        cont.extend(content)
        prefix = self._prefix_len
        if prefix == base:  # the leading system run may continue into the new messages
            prefix = self._prefix_len = leading_system(msgs, prefix)
        self._images += sum(isinstance(p, ImagePart) for m in new for p in m.content)
        units, call_owner = self._units, self._call_owner
        starts, pinned_units = units.starts, units.pinned
        dirty = len(starts)  # first unit whose prefix sums must be (re)computed
        for k, (i, m) in enumerate(enumerate(new, base)):
            dirty = min(dirty, units.add(i, owner=owners[k], pin=m.pinned or i < prefix))
            for c in m.tool_calls:
                call_owner[c.id] = i
        # prefix sums after units [dirty, units): all units, then droppable ones only
        cum_tok, cum_msg = self._cum_tok, self._cum_msg
        drop_tok, drop_msg = self._cum_drop_tok, self._cum_drop_msg
        for arr in (cum_tok, cum_msg, drop_tok, drop_msg):
            del arr[dirty + 1 :]
        n_units = len(starts)
        if dirty == n_units:
            return
        s0, t0, m0 = starts[dirty], cum_tok[-1], cum_msg[-1]
        ctok = list(accumulate(cont[s0:], initial=t0))  # ctok[j] = t0 + tokens of msgs [s0, s0 + j)
        ends = [*starts[dirty + 1 :], len(msgs)]
        all_tok = [ctok[e - s0] for e in ends]
        all_msg = [m0 + e - s0 for e in ends]
        # droppable sums = all sums - an offset that grows at each pinned unit
        off_t, off_m = t0 - drop_tok[-1], m0 - drop_msg[-1]
        lo = dirty
        for p in [*pinned_units[bisect_left(pinned_units, dirty) :], n_units]:
            drop_tok.extend([x - off_t for x in all_tok[lo - dirty : p - dirty]])
            drop_msg.extend([x - off_m for x in all_msg[lo - dirty : p - dirty]])
            if p == n_units:
                break
            drop_tok.append(drop_tok[-1])  # a pinned unit adds nothing droppable
            drop_msg.append(drop_msg[-1])
            off_t, off_m = all_tok[p - dirty] - drop_tok[-1], all_msg[p - dirty] - drop_msg[-1]
            lo = p + 1
        cum_tok.extend(all_tok)
        cum_msg.extend(all_msg)

    # -- queries used by fit ---------------------------------------------------------
    def unit_bounds(self, u: int) -> tuple[int, int]:
        """Message index range [start, stop) of unit ``u``."""
        stop = self._unit_start[u + 1] if u + 1 < len(self._unit_start) else len(self._messages)
        return self._unit_start[u], stop
