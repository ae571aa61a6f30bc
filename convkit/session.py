"""``Session`` and ``AsyncSession``: fit, send and record every turn of a stored conversation.

One turn: the user's message is appended to the store; the window is taken
(``Store.window``, with the safety margin widened by calibration); the window
is sent with the client; the reply (with any tool calls) and the turn's
usage and cost are written in one transaction; the ratio of xAI's
``usage.prompt_tokens`` to the local count is recorded per (model, counter)
and widens later margins. When xAI still says the prompt is too long, the
session recalibrates from the numbers in the error, re-fits and retries once.

Failure keeps the data: the user's message stays stored, no assistant
message is written, and sending the same message again (or :meth:`resume`)
retries the turn without storing the message twice.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

from .counting import EstimateCounter, ImagePolicy, TokenCounter
from .errors import PromptTooLongError, ValidationError
from .fitting import FitResult, Strategy
from .messages import Message, MessageLike, Part, as_message
from .models import ModelSpec, get_model
from .store import AsyncStore, Store
from .store.ops import Calibration, UsageTotals
from .summarize import AsyncSummarizer, Summarizer
from .xai.client import AsyncXAIClient, XAIClient
from .xai.protocol import Completion, Done, StreamEvent
from .xai.summarizer import AsyncXAISummarizer, XAISummarizer

__all__ = ["AsyncSession", "Session"]

#: The most a calibration may widen the margin (xAI counting 3x the local count).
MAX_MARGIN = 2.0


def _as_user(content_or_message: str | Sequence[Part | str] | MessageLike) -> Message:
    if isinstance(content_or_message, Message):
        return content_or_message
    if isinstance(content_or_message, Mapping):
        return as_message(content_or_message)
    return Message.user(content_or_message)


def _margin(counter: TokenCounter, calibration: Calibration | None) -> float:
    """The counter's own margin, widened (never narrowed) by what calibration learned, up to MAX_MARGIN."""
    learned = (calibration.ratio_max - 1.0) if calibration is not None else 0.0
    return max(counter.margin, min(MAX_MARGIN, learned))


class _SessionBase:
    def __init__(
        self,
        conversation_id: str,
        *,
        model: str | ModelSpec,
        counter: TokenCounter | None,
        strategy: Strategy,
        reserve: int,
        tools: Sequence[Mapping[str, Any]] | None,
        images: ImagePolicy,
        calibrate: bool,
        store_counters: tuple[TokenCounter, ...],
    ) -> None:
        if strategy not in ("trim", "summarize"):
            raise ValidationError(f"unknown strategy {strategy!r}; use 'trim' or 'summarize'")
        if isinstance(reserve, bool) or not isinstance(reserve, int) or reserve < 0:
            raise ValidationError(
                f"reserve (the reply's max_tokens) must be a non-negative integer, got {reserve!r}"
            )
        self.conversation_id = conversation_id
        self.spec = get_model(model)
        self.counter = counter or (store_counters[0] if store_counters else EstimateCounter())
        self.strategy = strategy
        self.reserve = reserve
        self.tools = list(tools) if tools else None
        self.images = images
        self.calibrate_enabled = calibrate

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.conversation_id!r}, model={self.spec.name!r})"

    summarizer: Summarizer | AsyncSummarizer
    fallback: Literal["error", "trim"]
    low_water: float
    summary_tokens: int | None

    def _window_kw(self, margin: float) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "model": self.spec,
            "counter": self.counter,
            "reserve": self.reserve,
            "tools": self.tools,
            "images": self.images,
            "margin": margin,
        }
        if self.strategy == "summarize":
            kw.update(
                strategy="summarize",
                summarizer=self.summarizer,
                fallback=self.fallback,
                low_water=self.low_water,
                summary_tokens=self.summary_tokens,
            )
        return kw

    def _summarizer_snapshot(self) -> tuple[int, int, int, float]:
        s = self.summarizer
        return (
            int(getattr(s, "calls", 0)),
            int(getattr(s, "prompt_tokens", 0)),
            int(getattr(s, "completion_tokens", 0)),
            float(getattr(s, "cost_usd", 0.0)),
        )

    def _summarizer_usage(self, before: tuple[int, int, int, float]) -> dict[str, Any] | None:
        after = self._summarizer_snapshot()
        if after[0] == before[0]:
            return None
        spec = getattr(self.summarizer, "spec", None)
        return {
            "model": spec.name if isinstance(spec, ModelSpec) else "summarizer",
            "counter_id": None,
            "local_prompt_tokens": None,
            "prompt_tokens": after[1] - before[1],
            "completion_tokens": after[2] - before[2],
            "cost_usd": after[3] - before[3],
        }

    def _chat_kw(self, options: Mapping[str, Any]) -> dict[str, Any]:
        kw: dict[str, Any] = {"model": self.spec, "tools": self.tools, **options}
        asked = kw.get("max_tokens")
        if isinstance(asked, int) and asked > self.reserve:
            raise ValidationError(
                f"max_tokens={asked} is more than the session's reserve ({self.reserve}), so the window "
                f"would not leave room for the reply; create the Session with reserve={asked}"
            )
        if self.reserve:
            kw.setdefault("max_tokens", self.reserve)
        return kw

    def _usage_row(self, completion: Completion, window: FitResult) -> dict[str, Any]:
        u = completion.usage
        return {
            "model": self.spec.name,
            "counter_id": self.counter.identity,
            "local_prompt_tokens": window.prompt_tokens,
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "image_tokens": u.image_tokens,
            "cached_tokens": u.cached_tokens,
            "reasoning_tokens": u.reasoning_tokens,
            "cost_usd": completion.cost_usd,
        }

    @staticmethod
    def _observed_ratio(completion: Completion, window: FitResult) -> float | None:
        if completion.usage.prompt_tokens <= 0 or window.prompt_tokens <= 0:
            return None
        return min(completion.usage.prompt_tokens / window.prompt_tokens, 1.0 + MAX_MARGIN)

    @staticmethod
    def _overflow_ratio(err: PromptTooLongError, window: FitResult) -> float:
        # conservative: M may include the reply's reservation, which only widens the margin more
        ratio = max(
            1.0 + 1e-6, err.requested / max(1, window.prompt_tokens), err.requested / max(1, err.limit)
        )
        return min(ratio, 1.0 + MAX_MARGIN)


class Session(_SessionBase):
    """A conversation with Grok, stored turn by turn (synchronous)."""

    def __init__(
        self,
        store: Store,
        conversation_id: str,
        *,
        model: str | ModelSpec,
        client: XAIClient,
        counter: TokenCounter | None = None,
        strategy: Strategy = "trim",
        reserve: int = 1024,
        tools: Sequence[Mapping[str, Any]] | None = None,
        images: ImagePolicy = "error",
        calibrate: bool = True,
        summarizer: Summarizer | AsyncSummarizer | None = None,
        fallback: Literal["error", "trim"] = "error",
        low_water: float = 0.6,
        summary_tokens: int | None = None,
    ) -> None:
        super().__init__(
            conversation_id,
            model=model,
            counter=counter,
            strategy=strategy,
            reserve=reserve,
            tools=tools,
            images=images,
            calibrate=calibrate,
            store_counters=store.counters,
        )
        self.store = store
        self.client = client
        self.summarizer = summarizer if summarizer is not None else XAISummarizer(client)
        self.fallback = fallback
        self.low_water = low_water
        self.summary_tokens = summary_tokens
        store.get_conversation(conversation_id)  # fail early on a wrong id or namespace

    # -- turns -----------------------------------------------------------------------------
    def send(
        self, content_or_message: str | Sequence[Part | str] | MessageLike, **options: Any
    ) -> Completion:
        """Append the user's message (once, even when retried) and complete the turn."""
        self._append_pending(_as_user(content_or_message))
        return self.resume(**options)

    def send_stream(
        self, content_or_message: str | Sequence[Part | str] | MessageLike, **options: Any
    ) -> Iterator[StreamEvent]:
        """As :meth:`send`, streaming the reply's events; the reply is stored at the end."""
        self._append_pending(_as_user(content_or_message))
        yield from self.resume_stream(**options)

    def add_tool_results(self, results: Mapping[str, str] | Iterable[MessageLike]) -> range:
        """Store tool results (``{call_id: content}`` or tool messages); then :meth:`resume`."""
        if isinstance(results, Mapping):
            msgs: list[MessageLike] = [Message.tool(v, tool_call_id=k) for k, v in results.items()]
        else:
            msgs = list(results)
        return self.store.extend(self.conversation_id, msgs)

    def resume(self, **options: Any) -> Completion:
        """Send the stored conversation as it is (after tool results, or to retry a failed turn)."""
        window = self.window()
        try:
            completion = self.client.chat(window.messages, **self._chat_kw(options))
        except PromptTooLongError as err:
            self.store.calibrate(self.spec, self.counter, self._overflow_ratio(err, window))
            window = self.window()
            completion = self.client.chat(window.messages, **self._chat_kw(options))
        self._record(completion, window)
        return completion

    def resume_stream(self, **options: Any) -> Iterator[StreamEvent]:
        """As :meth:`resume`, streaming; the reply is stored when ``Done`` arrives, before it is yielded."""
        window = self.window()
        stream = self.client.stream(window.messages, **self._chat_kw(options))
        try:
            first = next(stream, None)  # a refused request fails here, before any event
        except PromptTooLongError as err:
            self.store.calibrate(self.spec, self.counter, self._overflow_ratio(err, window))
            window = self.window()
            stream = self.client.stream(window.messages, **self._chat_kw(options))
            first = next(stream, None)
        # the reply is stored before its Done is handed out, so a consumer that stops at Done (or reads
        # usage() there) finds the turn complete
        for event in itertools.chain([first] if first is not None else [], stream):
            if isinstance(event, Done):
                self._record(event.completion, window)
            yield event

    # -- reading ---------------------------------------------------------------------------
    def window(self) -> FitResult:
        """The window the next request would send (folding a new summary when needed)."""
        before = self._summarizer_snapshot()
        result = self.store.window(self.conversation_id, **self._window_kw(self.margin()))
        spent = self._summarizer_usage(before)
        if spent is not None:
            self.store.record_turn(self.conversation_id, None, spent)
        return result

    def margin(self) -> float:
        """The safety margin in force: the counter's, widened by calibration."""
        calib = self.store.calibration(self.spec, self.counter) if self.calibrate_enabled else None
        return _margin(self.counter, calib)

    def usage(self) -> UsageTotals:
        return self.store.usage(self.conversation_id)

    def messages(self) -> list[Message]:
        return self.store.messages(self.conversation_id)

    # -- internals -------------------------------------------------------------------------
    def _append_pending(self, message: Message) -> None:
        count = self.store.get_conversation(self.conversation_id).message_count
        if count:
            (last,) = self.store.messages(self.conversation_id, start=count)
            if last == message:  # the same message is waiting for its reply: a retry, not a new turn
                return
        self.store.append(self.conversation_id, message)

    def _record(self, completion: Completion, window: FitResult) -> None:
        self.store.record_turn(self.conversation_id, completion.message, self._usage_row(completion, window))
        ratio = self._observed_ratio(completion, window)
        if self.calibrate_enabled and ratio is not None:
            self.store.calibrate(self.spec, self.counter, ratio)


class AsyncSession(_SessionBase):
    """The asyncio twin of :class:`Session` (same methods, awaitable)."""

    def __init__(
        self,
        store: AsyncStore,
        conversation_id: str,
        *,
        model: str | ModelSpec,
        client: AsyncXAIClient,
        counter: TokenCounter | None = None,
        strategy: Strategy = "trim",
        reserve: int = 1024,
        tools: Sequence[Mapping[str, Any]] | None = None,
        images: ImagePolicy = "error",
        calibrate: bool = True,
        summarizer: Summarizer | AsyncSummarizer | None = None,
        fallback: Literal["error", "trim"] = "error",
        low_water: float = 0.6,
        summary_tokens: int | None = None,
    ) -> None:
        super().__init__(
            conversation_id,
            model=model,
            counter=counter,
            strategy=strategy,
            reserve=reserve,
            tools=tools,
            images=images,
            calibrate=calibrate,
            store_counters=store.counters,
        )
        self.store = store
        self.client = client
        self.summarizer = summarizer if summarizer is not None else AsyncXAISummarizer(client)
        self.fallback = fallback
        self.low_water = low_water
        self.summary_tokens = summary_tokens

    async def send(
        self, content_or_message: str | Sequence[Part | str] | MessageLike, **options: Any
    ) -> Completion:
        await self._append_pending(_as_user(content_or_message))
        return await self.resume(**options)

    async def send_stream(
        self, content_or_message: str | Sequence[Part | str] | MessageLike, **options: Any
    ) -> AsyncIterator[StreamEvent]:
        await self._append_pending(_as_user(content_or_message))
        async for event in self.resume_stream(**options):
            yield event

    async def add_tool_results(self, results: Mapping[str, str] | Iterable[MessageLike]) -> range:
        if isinstance(results, Mapping):
            msgs: list[MessageLike] = [Message.tool(v, tool_call_id=k) for k, v in results.items()]
        else:
            msgs = list(results)
        return await self.store.extend(self.conversation_id, msgs)

    async def resume(self, **options: Any) -> Completion:
        window = await self.window()
        try:
            completion = await self.client.chat(window.messages, **self._chat_kw(options))
        except PromptTooLongError as err:
            await self.store.calibrate(self.spec, self.counter, self._overflow_ratio(err, window))
            window = await self.window()
            completion = await self.client.chat(window.messages, **self._chat_kw(options))
        await self._record(completion, window)
        return completion

    async def resume_stream(self, **options: Any) -> AsyncIterator[StreamEvent]:
        window = await self.window()
        stream = self.client.stream(window.messages, **self._chat_kw(options))
        try:
            first = await anext(stream, None)
        except PromptTooLongError as err:
            await self.store.calibrate(self.spec, self.counter, self._overflow_ratio(err, window))
            window = await self.window()
            stream = self.client.stream(window.messages, **self._chat_kw(options))
            first = await anext(stream, None)
        if first is not None:
            if isinstance(first, Done):
                await self._record(first.completion, window)
            yield first
        async for event in stream:
            if isinstance(event, Done):  # stored before it is handed out (see Session.resume_stream)
                await self._record(event.completion, window)
            yield event

    async def window(self) -> FitResult:
        before = self._summarizer_snapshot()
        result = await self.store.window(self.conversation_id, **self._window_kw(await self.margin()))
        spent = self._summarizer_usage(before)
        if spent is not None:
            await self.store.record_turn(self.conversation_id, None, spent)
        return result

    async def margin(self) -> float:
        calib = await self.store.calibration(self.spec, self.counter) if self.calibrate_enabled else None
        return _margin(self.counter, calib)

    async def usage(self) -> UsageTotals:
        return await self.store.usage(self.conversation_id)

    async def messages(self) -> list[Message]:
        return await self.store.messages(self.conversation_id)

    async def _append_pending(self, message: Message) -> None:
        count = (await self.store.get_conversation(self.conversation_id)).message_count
        if count:
            (last,) = await self.store.messages(self.conversation_id, start=count)
            if last == message:
                return
        await self.store.append(self.conversation_id, message)

    async def _record(self, completion: Completion, window: FitResult) -> None:
        await self.store.record_turn(
            self.conversation_id, completion.message, self._usage_row(completion, window)
        )
        ratio = self._observed_ratio(completion, window)
        if self.calibrate_enabled and ratio is not None:
            await self.store.calibrate(self.spec, self.counter, ratio)
