"""The actions an xAI flow yields, and what a driver answers to each.

A flow (see :mod:`convkit.xai._flows`) is a generator that does no I/O: it
yields one of these values, and the driver (:mod:`convkit.xai._drive`, one
sync and one async) performs it and sends back the outcome:

========================  =====================================================
action                    answer
========================  =====================================================
:class:`Send`             the ``httpx.Response`` (body read unless ``stream``),
                          or the ``httpx.HTTPError`` that sending raised
:class:`ReadBody`         ``None`` once the open response's body is read, or
                          the ``httpx.HTTPError`` that reading raised
:class:`ReadLine`         the open response's next line, ``None`` at its end,
                          or the ``httpx.HTTPError`` that reading raised
:class:`Emit`             ``None`` (the driver hands ``event`` to its caller)
:class:`Sleep`            ``None``, after ``seconds``
========================  =====================================================

Invariants: a driver never raises an ``httpx.HTTPError`` out of an action,
it answers it, so every decision about a failure is the flow's; at most one
response is open at a time (the last one a :class:`Send` opened), and the
driver closes it before the next :class:`Send` and when the flow ends.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any, TypeAlias, TypeVar

import attrs

from ._protocol import StreamEvent

__all__ = ["Action", "Emit", "Flow", "ReadBody", "ReadLine", "Send", "Sleep"]


@attrs.frozen
class Send:
    """Send a request (``body`` as JSON); ``stream``: leave the body open to :class:`ReadLine`.

    ``headers``: extra request headers (the cache-routing ``x-grok-conv-id``).
    """

    method: str
    path: str
    body: Any = None
    stream: bool = False
    headers: Mapping[str, str] | None = None


@attrs.frozen
class ReadBody:
    """Read the rest of the open response's body (to build an error from it)."""


@attrs.frozen
class ReadLine:
    """Read the open response's next line."""


@attrs.frozen
class Emit:
    """Hand a stream event to the caller."""

    event: StreamEvent


@attrs.frozen
class Sleep:
    """Wait ``seconds`` (between attempts)."""

    seconds: float


Action: TypeAlias = Send | ReadBody | ReadLine | Emit | Sleep
T = TypeVar("T")
#: A flow: yields actions, receives their answers, returns its result.
Flow: TypeAlias = Generator[Action, Any, T]
