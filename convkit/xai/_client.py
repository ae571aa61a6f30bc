"""``XAIClient`` and ``AsyncXAIClient``: the xAI HTTP API over httpx.

Thin I/O twins with identical method names, signatures and docstrings
(``chat``, ``stream``, ``tokenize``, ``language_models``,
``refresh_models``). Each call is written once, as a sans-I/O flow in
:mod:`convkit.xai._flows`; a twin's method only runs that flow on the twin's
driver (:mod:`convkit.xai._drive`), so the twins differ by ``await`` alone.
The wire format lives in :mod:`convkit.xai._protocol`, the retry policy in
:mod:`convkit.xai._retry`, construction in :mod:`convkit.xai._base`.

Guarantees: the API key comes from ``api_key=`` or ``$XAI_API_KEY`` and never
appears in a repr, log record or exception; timeouts are explicit; 429, 5xx,
timeouts and connection failures are retried with bounded exponential
backoff and full jitter (xAI documents no rate-limit headers), other errors
are raised at once as the typed tree of :mod:`convkit._errors`; a stream is
retried only before its first event (also when the connection closed
cleanly before it), and a stream cut off mid-way raises
:class:`ResponseFormatError` instead of returning a partial message. httpx
exceptions never escape.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx

from . import _drive, _flows
from ._actions import Flow
from ._base import DEFAULT_BASE_URL, ClientBase
from ._protocol import StreamEvent
from ._retry import Backoff

__all__ = ["DEFAULT_BASE_URL", "AsyncXAIClient", "Backoff", "XAIClient"]

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
#: A flow of :mod:`convkit.xai._flows` (its wire first), made a method by the binders below.
FlowOf = Callable[Concatenate[_flows.Wire, P], Flow[T]]


def _like(flow: Callable[..., Any], method: F, returns: str | None = None) -> F:
    """``method`` named, documented and signed as ``flow``: ``self`` for its wire, ``returns`` for its flow.

    ``returns`` defaults to the flow's result (``X`` of ``Flow[X]``).
    """
    signature = inspect.signature(flow)
    wire, *params = signature.parameters.values()
    result = str(signature.return_annotation).removeprefix("Flow[").removesuffix("]")
    method.__name__ = method.__qualname__ = flow.__name__
    method.__doc__ = flow.__doc__
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[inspect.Parameter("self", wire.POSITIONAL_OR_KEYWORD), *params],
        return_annotation=result if returns is None else returns,
    )
    return method


def _call(flow: FlowOf[P, T]) -> Callable[Concatenate[XAIClient, P], T]:
    """``flow`` as a method of :class:`XAIClient`, returning the flow's result."""

    def method(self: XAIClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return _drive.call(self._http, flow(self._wire(), *args, **kwargs))

    return _like(flow, method)


def _events(flow: FlowOf[P, None]) -> Callable[Concatenate[XAIClient, P], Iterator[StreamEvent]]:
    """Streaming ``flow`` as a method of :class:`XAIClient`, a generator of the events it emits."""

    def method(self: XAIClient, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[StreamEvent]:
        yield from _drive.events(self._http, flow(self._wire(), *args, **kwargs))

    return _like(flow, method, "Iterator[StreamEvent]")


def _acall(flow: FlowOf[P, T]) -> Callable[Concatenate[AsyncXAIClient, P], Coroutine[Any, Any, T]]:
    """``flow`` as a coroutine method of :class:`AsyncXAIClient`, returning the flow's result."""

    async def method(self: AsyncXAIClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await _drive.acall(self._http, flow(self._wire(), *args, **kwargs))

    return _like(flow, method)


def _aevents(flow: FlowOf[P, None]) -> Callable[Concatenate[AsyncXAIClient, P], AsyncIterator[StreamEvent]]:
    """Streaming ``flow`` as a method of :class:`AsyncXAIClient`, an async generator of its events."""

    async def method(
        self: AsyncXAIClient, /, *args: P.args, **kwargs: P.kwargs
    ) -> AsyncIterator[StreamEvent]:
        events = _drive.aevents(self._http, flow(self._wire(), *args, **kwargs))
        async with contextlib.aclosing(events):  # closed with this generator, as ``yield from`` does
            async for event in events:
                yield event

    return _like(flow, method, "AsyncIterator[StreamEvent]")


class XAIClient(ClientBase[httpx.BaseTransport, httpx.Client]):
    """Synchronous xAI client. Close it (or use ``with``) to release connections."""

    def _connect(self, transport: httpx.BaseTransport | None, **options: Any) -> httpx.Client:
        return httpx.Client(transport=transport, **options)

    def close(self) -> None:
        """Release the client's connections."""
        self._http.close()

    def __enter__(self) -> XAIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    chat = _call(_flows.chat)
    stream = _events(_flows.stream)
    tokenize = _call(_flows.tokenize)
    language_models = _call(_flows.language_models)
    refresh_models = _call(_flows.refresh_models)


class AsyncXAIClient(ClientBase[httpx.AsyncBaseTransport, httpx.AsyncClient]):
    """Asynchronous twin of :class:`XAIClient` (same methods, awaitable). Close it with ``aclose``."""

    def _connect(self, transport: httpx.AsyncBaseTransport | None, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=transport, **options)

    async def aclose(self) -> None:
        """Release the client's connections."""
        await self._http.aclose()

    close = aclose  #: the name this method had before ``aclose``, kept for compatibility

    async def __aenter__(self) -> AsyncXAIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    chat = _acall(_flows.chat)
    stream = _aevents(_flows.stream)
    tokenize = _acall(_flows.tokenize)
    language_models = _acall(_flows.language_models)
    refresh_models = _acall(_flows.refresh_models)
