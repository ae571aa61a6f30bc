"""The two drivers of the xAI flows: one over ``httpx.Client``, one over ``httpx.AsyncClient``.

A driver performs the actions of :mod:`convkit.xai._actions` that a flow of
:mod:`convkit.xai._flows` yields, and decides nothing: it sends, reads,
sleeps and hands events on, and answers an ``httpx.HTTPError`` to the flow
instead of raising it. :func:`call` / :func:`acall` run a flow to its
result; :func:`events` / :func:`aevents` run a streaming flow and yield the
events it emits.

Invariants: at most one response is open (the last :class:`Send`'s); it is
closed before the next request is sent, and when the flow returns or
raises or its consumer abandons it; errors while closing a response
nobody reads any more are ignored, so no httpx exception escapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any, TypeVar

import httpx

from ._actions import Action, Emit, Flow, ReadBody, ReadLine, Send, Sleep
from ._protocol import StreamEvent
from ._steps import Steps

__all__ = ["acall", "aevents", "call", "events"]

T = TypeVar("T")


class _Sync:
    """Performs actions on an ``httpx.Client``; holds the open response."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.open: httpx.Response | None = None
        self.lines: Iterator[str] | None = None

    def perform(self, action: Action) -> Any:
        try:
            if isinstance(action, Send):
                self.close()
                request = self.http.build_request(
                    action.method, action.path, json=action.body, headers=action.headers
                )
                self.open = self.http.send(request, stream=action.stream)
                return self.open
            if isinstance(action, Sleep):
                time.sleep(action.seconds)
            elif isinstance(action, ReadBody) and self.open is not None:
                self.open.read()
            elif isinstance(action, ReadLine) and self.open is not None:
                self.lines = self.lines if self.lines is not None else self.open.iter_lines()
                return next(self.lines, None)
            else:
                raise TypeError(f"the driver cannot perform {action!r} here")
        except httpx.HTTPError as exc:
            return exc
        return None

    def __enter__(self) -> _Sync:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.open is not None:
            with contextlib.suppress(httpx.HTTPError):
                self.open.close()
        self.open = self.lines = None


class _Async:
    """Performs actions on an ``httpx.AsyncClient``; holds the open response."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.open: httpx.Response | None = None
        self.lines: AsyncIterator[str] | None = None

    async def perform(self, action: Action) -> Any:
        try:
            if isinstance(action, Send):
                await self.aclose()
                request = self.http.build_request(
                    action.method, action.path, json=action.body, headers=action.headers
                )
                self.open = await self.http.send(request, stream=action.stream)
                return self.open
            if isinstance(action, Sleep):
                await asyncio.sleep(action.seconds)
            elif isinstance(action, ReadBody) and self.open is not None:
                await self.open.aread()
            elif isinstance(action, ReadLine) and self.open is not None:
                self.lines = self.lines if self.lines is not None else self.open.aiter_lines()
                return await anext(self.lines, None)
            else:
                raise TypeError(f"the driver cannot perform {action!r} here")
        except httpx.HTTPError as exc:
            return exc
        return None

    async def __aenter__(self) -> _Async:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self.open is not None:
            with contextlib.suppress(httpx.HTTPError):
                await self.open.aclose()
        self.open = self.lines = None


def call(http: httpx.Client, flow: Flow[T]) -> T:
    """Run ``flow`` (one that emits no events) on ``http``; its result."""
    steps = Steps(flow)
    with _Sync(http) as io:
        for action in steps:
            steps.answer(io.perform(action))
    return steps.result


def events(http: httpx.Client, flow: Flow[None]) -> Iterator[StreamEvent]:
    """Run streaming ``flow`` on ``http``, yielding the events it emits."""
    steps = Steps(flow)
    with _Sync(http) as io:
        for action in steps:
            if isinstance(action, Emit):
                yield action.event
            else:
                steps.answer(io.perform(action))


async def acall(http: httpx.AsyncClient, flow: Flow[T]) -> T:
    """Run ``flow`` (one that emits no events) on ``http``; its result."""
    steps = Steps(flow)
    async with _Async(http) as io:
        for action in steps:
            steps.answer(await io.perform(action))
    return steps.result


async def aevents(http: httpx.AsyncClient, flow: Flow[None]) -> AsyncGenerator[StreamEvent, None]:
    """Run streaming ``flow`` on ``http``, yielding the events it emits."""
    steps = Steps(flow)
    async with _Async(http) as io:
        for action in steps:
            if isinstance(action, Emit):
                yield action.event
            else:
                steps.answer(await io.perform(action))
