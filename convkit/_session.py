"""``Session`` and ``AsyncSession``: fit, send and record every turn of a stored conversation.

One turn: the user's message is appended to the store; the window is taken
(``Store.window``, with the safety margin widened by calibration, and by default
the cache-stable policy: ``policy="stable"`` keeps the window's start, so its
prefix, while the newer messages fit, and every request carries the
conversation's ``x-grok-conv-id``, so xAI bills the repeated prefix at the
cached price; ``policy="maximal"`` trims as little as possible every turn); the window
is sent with the client; the reply (with any tool calls) and the turn's
usage and cost are written in one transaction; the ratio of xAI's
``usage.prompt_tokens`` to the local count is recorded per (model, counter)
and widens later margins. When xAI still says the prompt is too long, the
session recalibrates from the numbers in the error, re-fits and retries once.

Failure keeps the data: the user's message stays stored, no assistant
message is written, and sending the same message again (or :meth:`resume`)
retries the turn without storing the message twice.

Each public method is written once, as a flow of
:class:`~convkit._session_flows.SessionBase`; the twins here only perform
its steps (:mod:`convkit._session_flows`), and differ by ``await``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from ._fitting import FitResult
from ._messages import Message
from ._results import UsageTotals
from ._session_flows import MAX_MARGIN, Call, Chat, Emit, Flow, Next, Open, Run, SessionBase, Step
from ._stepper import Stepper, runs
from .store import AsyncStore, Store
from .xai._client import AsyncXAIClient, XAIClient
from .xai._protocol import Completion, StreamEvent
from .xai._summarizer import AsyncXAISummarizer, XAISummarizer

__all__ = ["MAX_MARGIN", "AsyncSession", "Session"]


class Session(SessionBase[Store, XAIClient]):
    """A conversation with Grok, stored turn by turn (synchronous).

    A turn runs the store's own combined transactions (its message with the
    calibration read, the window, the reply with its usage), so it needs a
    :class:`~convkit.Store`, not a look-alike: a subclass that overrides
    ``append`` or ``record_turn`` is not called by ``send``.

    Several writers on one conversation (sessions in other threads or processes, on other
    ``Store`` instances) are not serialized; each turn is three transactions, so turns
    interleave, as follows. Every message is stored once, in the order its transaction
    commits (seqs stay contiguous). A turn's window is one consistent snapshot of the
    conversation, read after the turn's own message was stored: it holds that message and
    every message committed before the read, so it may hold another writer's message and
    even that writer's reply (then the request ends with that reply). A reply is stored,
    with its usage row, after every message stored when it arrives: replies follow the
    messages that were stored before they were requested, in order of completion, so two
    turns at once may read user, user, assistant, assistant. A tool call's results may be
    stored after another writer's messages; windows keep a call, its results and whatever
    arrived between them together (as ``fit`` does). No request carries a tool call without
    its results: a turn whose window holds a call still waiting for them (another writer's,
    or this session's own before ``add_tool_results``) sends nothing and raises
    :class:`~convkit.InvalidConversationError`, its message staying stored (a failed turn);
    ``resume()`` completes it once the results are stored. The same message sent by two
    writers while the first waits for its reply is one message (a retry, see above),
    answered twice. To keep one reply per user message in strict alternation, send a
    conversation's turns from one writer at a time.
    """

    _summarizer_type = XAISummarizer

    def _opened(self) -> None:
        self.store.get_conversation(self.conversation_id)  # fail early on a wrong id or namespace

    # -- the driver -----------------------------------------------------------------------
    def _perform(self, step: Step, streams: list[Iterator[StreamEvent]]) -> Any:
        if isinstance(step, Call):
            return getattr(self.store, step.method)(*step.args, **step.kwargs)
        if isinstance(step, Run):
            return self.store._call(getattr(self.store, f"_{step.method}")(*step.args))
        if isinstance(step, Chat):
            return self.client.chat(step.messages, **step.kw)
        if isinstance(step, Open):
            for stream in streams:
                stream.close()  # type: ignore[attr-defined]
            streams[:] = [self.client.stream(step.messages, **step.kw)]
            return None
        assert isinstance(step, Next)
        return next(streams[0], None)

    def _call(self, flow: Flow[Any]) -> Any:
        out: list[Any] = []
        for _ in self._events(flow, out):
            pass  # a flow that is not a stream emits nothing
        return out[0]

    def _events(self, flow: Flow[Any], out: list[Any] | None = None) -> Iterator[StreamEvent]:
        run, streams = Stepper(flow), list[Iterator[StreamEvent]]()
        try:
            while run.step is not None:
                if isinstance(run.step, Emit):
                    yield run.step.event
                    run.send(None)
                    continue
                with run:
                    run.result = self._perform(run.step, streams)
            if out is not None:
                out.append(run.value)
        finally:
            for stream in streams:
                stream.close()  # type: ignore[attr-defined]

    # -- turns ----------------------------------------------------------------------------
    @runs(SessionBase._send)
    def send(self, *args: Any, **kwargs: Any) -> Completion:
        return self._call(self._send(*args, **kwargs))  # type: ignore[no-any-return]

    @runs(SessionBase._send_stream)
    def send_stream(self, *args: Any, **kwargs: Any) -> Iterator[StreamEvent]:
        return self._events(self._send_stream(*args, **kwargs))

    @runs(SessionBase._add_tool_results)
    def add_tool_results(self, *args: Any, **kwargs: Any) -> range:
        return self._call(self._add_tool_results(*args, **kwargs))  # type: ignore[no-any-return]

    @runs(SessionBase._resume)
    def resume(self, *args: Any, **kwargs: Any) -> Completion:
        return self._call(self._resume(*args, **kwargs))  # type: ignore[no-any-return]

    @runs(SessionBase._resume_stream)
    def resume_stream(self, *args: Any, **kwargs: Any) -> Iterator[StreamEvent]:
        return self._events(self._resume_stream(*args, **kwargs))

    # -- reading --------------------------------------------------------------------------
    @runs(SessionBase._window)
    def window(self, *args: Any, **kwargs: Any) -> FitResult:
        return self._call(self._window(*args, **kwargs))  # type: ignore[no-any-return]

    @runs(SessionBase._margin)
    def margin(self, *args: Any, **kwargs: Any) -> float:
        return self._call(self._margin(*args, **kwargs))  # type: ignore[no-any-return]

    @runs(SessionBase._usage)
    def usage(self, *args: Any, **kwargs: Any) -> UsageTotals:
        return self._call(self._usage(*args, **kwargs))  # type: ignore[no-any-return]

    @runs(SessionBase._messages)
    def messages(self, *args: Any, **kwargs: Any) -> list[Message]:
        return self._call(self._messages(*args, **kwargs))  # type: ignore[no-any-return]


class AsyncSession(SessionBase[AsyncStore, AsyncXAIClient]):
    """The asyncio twin of :class:`Session` (same methods, awaitable), over an ``AsyncStore``."""

    _summarizer_type = AsyncXAISummarizer

    # -- the driver -----------------------------------------------------------------------
    async def _perform(self, step: Step, streams: list[AsyncIterator[StreamEvent]]) -> Any:
        if isinstance(step, Call):
            return await getattr(self.store, step.method)(*step.args, **step.kwargs)
        if isinstance(step, Run):
            return await self.store._call(getattr(self.store, f"_{step.method}")(*step.args))
        if isinstance(step, Chat):
            return await self.client.chat(step.messages, **step.kw)
        if isinstance(step, Open):
            for stream in streams:
                await stream.aclose()  # type: ignore[attr-defined]
            streams[:] = [self.client.stream(step.messages, **step.kw)]
            return None
        assert isinstance(step, Next)
        return await anext(streams[0], None)

    async def _call(self, flow: Flow[Any]) -> Any:
        out: list[Any] = []
        async for _ in self._events(flow, out):
            pass  # a flow that is not a stream emits nothing
        return out[0]

    async def _events(self, flow: Flow[Any], out: list[Any] | None = None) -> AsyncIterator[StreamEvent]:
        run, streams = Stepper(flow), list[AsyncIterator[StreamEvent]]()
        try:
            while run.step is not None:
                if isinstance(run.step, Emit):
                    yield run.step.event
                    run.send(None)
                    continue
                with run:
                    run.result = await self._perform(run.step, streams)
            if out is not None:
                out.append(run.value)
        finally:
            for stream in streams:
                await stream.aclose()  # type: ignore[attr-defined]

    # -- turns ----------------------------------------------------------------------------
    @runs(SessionBase._send)
    async def send(self, *args: Any, **kwargs: Any) -> Completion:
        return await self._call(self._send(*args, **kwargs))  # type: ignore[no-any-return]

    @runs(SessionBase._send_stream)
    def send_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[StreamEvent]:
        return self._events(self._send_stream(*args, **kwargs))

    @runs(SessionBase._add_tool_results)
    async def add_tool_results(self, *args: Any, **kwargs: Any) -> range:
        return await self._call(self._add_tool_results(*args, **kwargs))  # type: ignore[no-any-return]

    @runs(SessionBase._resume)
    async def resume(self, *args: Any, **kwargs: Any) -> Completion:
        return await self._call(self._resume(*args, **kwargs))  # type: ignore[no-any-return]

    @runs(SessionBase._resume_stream)
    def resume_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[StreamEvent]:
        return self._events(self._resume_stream(*args, **kwargs))

    # -- reading --------------------------------------------------------------------------
    @runs(SessionBase._window)
    async def window(self, *args: Any, **kwargs: Any) -> FitResult:
        return await self._call(self._window(*args, **kwargs))  # type: ignore[no-any-return]

    @runs(SessionBase._margin)
    async def margin(self, *args: Any, **kwargs: Any) -> float:
        return await self._call(self._margin(*args, **kwargs))  # type: ignore[no-any-return]

    @runs(SessionBase._usage)
    async def usage(self, *args: Any, **kwargs: Any) -> UsageTotals:
        return await self._call(self._usage(*args, **kwargs))  # type: ignore[no-any-return]

    @runs(SessionBase._messages)
    async def messages(self, *args: Any, **kwargs: Any) -> list[Message]:
        return await self._call(self._messages(*args, **kwargs))  # type: ignore[no-any-return]
