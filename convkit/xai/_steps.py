"""Stepping a sans-I/O flow: the one loop that every driver in convkit.xai shares.

A flow is a generator that yields actions, receives the outcome of each, and
returns its result. :class:`Steps` makes it an iterator of actions: a driver
performs each action it is given, hands the outcome back with
:meth:`Steps.answer`, and takes the next; when the flow returns, the
iteration stops and :attr:`Steps.result` holds the return value. So a sync
driver and an async driver are the same three lines but for ``await``::

    steps = Steps(flow)
    for action in steps:
        steps.answer(perform(action))  # or: await perform(action)
    return steps.result

Invariants: the flow receives exactly one answer per action (``None`` for an
action the driver did not answer); the flow's exceptions pass through
unchanged; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Generic, TypeVar

__all__ = ["Steps"]

A = TypeVar("A")
T = TypeVar("T")


class Steps(Generic[A, T]):
    """The actions of ``flow``, one at a time; ``result`` is its return value once iteration ends."""

    result: T

    def __init__(self, flow: Generator[A, Any, T]) -> None:
        self._flow = flow
        self._answer: Any = None

    def __iter__(self) -> Steps[A, T]:
        return self

    def __next__(self) -> A:
        answer, self._answer = self._answer, None
        try:
            return self._flow.send(answer)
        except StopIteration as stop:
            self.result = stop.value
            raise StopIteration from None

    def answer(self, outcome: Any) -> None:
        """The outcome of the action last taken, sent to the flow with the next step."""
        self._answer = outcome
