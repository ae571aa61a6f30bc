"""The session's turn, written once: configuration, checks and sans-I/O flows for both twins.

Every public method of :class:`~convkit.Session` and
:class:`~convkit.AsyncSession` is a flow here: a generator that yields
steps and receives their results (or has their errors thrown in), doing no
I/O itself. The twins only perform the steps, one by ``await``-less calls,
the other by ``await``:

=====================  =====================================================
step                   performed as
=====================  =====================================================
:class:`Call`          ``store.<method>(*args, **kwargs)``
:class:`Run`           the store's internal flow ``store._<method>(*args)``
:class:`Chat`          ``client.chat(messages, **kw)``
:class:`Open`          ``client.stream(messages, **kw)`` (kept open; the one
                       before it is closed)
:class:`Next`          the open stream's next event, ``None`` at its end
:class:`Emit`          hand ``event`` to the caller of a streaming method
=====================  =====================================================

Invariants: a turn stores the user's message once, even when sent again
after a failure (the same message waiting for its reply is a retry, not a
new turn); the reply and its usage row are stored in one transaction, and a
streamed reply is stored before its ``Done`` is handed out; a prompt xAI
still finds too long is re-fitted once after recalibrating; the margin in
force is the counter's, widened (never narrowed) by calibration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, Literal, TypeAlias, TypeVar

import attrs

from ._counting import EstimateCounter, ImagePolicy, TokenCounter
from ._engine.settings import Policy, WindowSettings, default_reserve
from ._errors import InvalidConversationError, PromptTooLongError, ValidationError
from ._fitting import FitResult, Strategy
from ._messages import Message, MessageLike, Part, as_message
from ._models import ModelSpec, get_model
from ._results import Calibration, UsageTotals
from ._summarize import AsyncSummarizer, Summarizer
from .xai._headers import conv_headers
from .xai._protocol import Completion, Done, StreamEvent

__all__ = ["MAX_MARGIN", "Call", "Chat", "Emit", "Flow", "Next", "Open", "Run", "SessionBase", "Step"]

#: The most a calibration may widen the margin (xAI counting 3x the local count).
MAX_MARGIN = 2.0
T = TypeVar("T")
StoreT = TypeVar("StoreT")
ClientT = TypeVar("ClientT")


@attrs.frozen
class Call:
    """Call ``store.<method>(*args, **kwargs)``."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Run:
    """Run the store's internal flow ``store._<method>(*args)`` (the turn's combined transactions)."""

    method: str
    args: tuple[Any, ...] = ()


@attrs.frozen
class Chat:
    """Send ``messages`` with ``client.chat``."""

    messages: tuple[Message, ...]
    kw: Mapping[str, Any]


@attrs.frozen
class Open:
    """Open a stream of ``messages`` with ``client.stream`` (closing one still open)."""

    messages: tuple[Message, ...]
    kw: Mapping[str, Any]


@attrs.frozen
class Next:
    """The open stream's next event (``None`` at its end)."""


@attrs.frozen
class Emit:
    """Hand ``event`` to the caller."""

    event: StreamEvent


Step: TypeAlias = Call | Run | Chat | Open | Next | Emit
#: A flow: the steps of one public method, and its result.
Flow: TypeAlias = Generator[Step, Any, T]


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


def _answered(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """``messages``, when every tool call among them has its results; else InvalidConversationError.

    A window holds one when the results are not stored yet: another writer's turn (in another
    thread or process) is between its reply and ``add_tool_results``, or this session sent a new
    message before adding them. Nothing is sent; the turn's message stays stored (a failed turn),
    and ``resume()`` completes it once the results are stored.
    """
    answered = {m.tool_call_id for m in messages if m.role == "tool"}
    pending = [c.id for m in messages for c in m.tool_calls if c.id not in answered]
    if pending:
        raise InvalidConversationError(
            f"the conversation holds tool call(s) {', '.join(map(repr, pending))} without their results, "
            "and a request must carry each call's results: store them with add_tool_results (from the "
            "writer that got the call), then resume(); nothing was sent, your message stays stored"
        )
    return messages


def default_conv_id(conversation_id: str) -> str:
    """A conversation's cache-routing key: a hash of its id (the same in every process)."""
    return "convkit-" + hashlib.sha256(conversation_id.encode("utf-8")).hexdigest()[:32]


class SessionBase(Generic[StoreT, ClientT]):
    """What both twins share: settings, checks, and every public method as a flow."""

    #: The summarizer a session makes over its client when none is given.
    _summarizer_type: ClassVar[type[Any]]

    def __init__(
        self,
        store: StoreT,
        conversation_id: str,
        *,
        model: str | ModelSpec,
        client: ClientT,
        counter: TokenCounter | None = None,
        strategy: Strategy = "trim",
        reserve: int | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        images: ImagePolicy = "error",
        calibrate: bool = True,
        summarizer: Summarizer | AsyncSummarizer | None = None,
        fallback: Literal["error", "trim"] = "error",
        low_water: float = 0.6,
        summary_tokens: int | None = None,
        conv_id: str | None = None,
        policy: Policy = "stable",
    ) -> None:
        if strategy not in ("trim", "summarize"):
            raise ValidationError(f"unknown strategy {strategy!r}; use 'trim' or 'summarize'")
        self.spec = get_model(model)
        reserve = default_reserve(self.spec) if reserve is None else reserve
        if isinstance(reserve, bool) or not isinstance(reserve, int) or reserve < 0:
            raise ValidationError(
                f"reserve (the reply's max_tokens) must be a non-negative integer, got {reserve!r}"
            )
        self.store = store
        self.client = client
        self.conversation_id = conversation_id
        #: sent as ``x-grok-conv-id`` with every chat request, so xAI routes the turns of this
        #: conversation to the server holding its prompt cache: by default a hash of the
        #: conversation's id (stable across processes, opaque, never the namespace or a secret)
        self.conv_id = conv_id if conv_id is not None else default_conv_id(conversation_id)
        conv_headers(self.conv_id)  # checked now
        counters: tuple[TokenCounter, ...] = getattr(store, "counters", ())
        self.counter = counter or (counters[0] if counters else EstimateCounter())
        self.strategy = strategy
        self.reserve = reserve
        self.tools = list(tools) if tools else None
        self.images = images
        self.calibrate_enabled = calibrate
        self.summarizer: Summarizer | AsyncSummarizer = (
            summarizer if summarizer is not None else type(self)._summarizer_type(client)
        )
        self.fallback = fallback
        self.low_water = low_water
        self.summary_tokens = summary_tokens
        # every window setting checked now, not after the user's message is stored; the one value
        # every turn's window is decided from (with the margin calibration puts in force)
        self.settings = WindowSettings.of(
            self.spec,
            counter=self.counter,
            reserve=reserve,
            strategy=strategy,
            tools=tools,
            images=images,
            fallback=fallback,
            low_water=low_water,
            summary_tokens=summary_tokens,
            policy=policy,
        )
        self._opened()

    def _opened(self) -> None:
        """Checks a twin can make at once (the sync one: that the conversation exists)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.conversation_id!r}, model={self.spec.name!r})"

    def _window_kw(self, margin: float) -> dict[str, Any]:
        kw: dict[str, Any] = {"settings": self.settings.with_margin(margin)}
        if self.strategy == "summarize":
            kw["summarizer"] = self.summarizer
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
        kw: dict[str, Any] = {"model": self.spec, "tools": self.tools, "conv_id": self.conv_id, **options}
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

    # -- the public methods, as flows --------------------------------------------------------
    def _send(
        self, /, content_or_message: str | Sequence[Part | str] | MessageLike, **options: Any
    ) -> Flow[Completion]:
        """Append the user's message (once, even when retried) and complete the turn."""
        kw = self._chat_kw(options)  # a bad option is refused before anything is stored
        margin, calib = yield from self._begin(_as_user(content_or_message))
        return (yield from self._complete(margin, kw, calib))

    def _send_stream(
        self, /, content_or_message: str | Sequence[Part | str] | MessageLike, **options: Any
    ) -> Flow[None]:
        """As :meth:`send`, streaming the reply's events; the reply is stored at the end."""
        kw = self._chat_kw(options)  # a bad option is refused before anything is stored
        margin, calib = yield from self._begin(_as_user(content_or_message))
        yield from self._complete_stream(margin, kw, calib)

    def _add_tool_results(self, results: Mapping[str, str] | Iterable[MessageLike]) -> Flow[range]:
        """Store tool results (``{call_id: content}`` or tool messages); then :meth:`resume`."""
        if isinstance(results, Mapping):
            msgs: list[MessageLike] = [Message.tool(v, tool_call_id=k) for k, v in results.items()]
        else:
            msgs = list(results)
        done: range = yield Call("extend", (self.conversation_id, msgs))
        return done

    def _resume(self, /, **options: Any) -> Flow[Completion]:
        """Send the stored conversation as it is (after tool results, or to retry a failed turn)."""
        kw = self._chat_kw(options)
        margin = yield from self._margin()
        return (yield from self._complete(margin, kw))

    def _resume_stream(self, /, **options: Any) -> Flow[None]:
        """As :meth:`resume`, streaming; the reply is stored when ``Done`` arrives, before it is yielded."""
        kw = self._chat_kw(options)
        margin = yield from self._margin()
        yield from self._complete_stream(margin, kw)

    def _window(self) -> Flow[FitResult]:
        """The window the next request would send (folding a new summary when needed)."""
        margin = yield from self._margin()
        return (yield from self._window_at(margin))

    def _margin(self) -> Flow[float]:
        """The safety margin in force: the counter's, widened by calibration."""
        calib = (yield Call("calibration", (self.spec, self.counter))) if self.calibrate_enabled else None
        return _margin(self.counter, calib)

    def _usage(self) -> Flow[UsageTotals]:
        """Usage and cost summed over the conversation's recorded turns."""
        totals: UsageTotals = yield Call("usage", (self.conversation_id,))
        return totals

    def _messages(self) -> Flow[list[Message]]:
        """The conversation's stored messages."""
        msgs: list[Message] = yield Call("messages", (self.conversation_id,))
        return msgs

    # -- a turn: three transactions (the user's message; the window; the reply) ---------------
    def _begin(self, message: Message) -> Flow[tuple[float, Calibration | None]]:
        """Store the user's message (unless it waits for its reply already); the margin in force,
        and the calibration it comes from."""
        key = (self.spec, self.counter) if self.calibrate_enabled else None
        _, calib = yield Run("begin_turn", (self.conversation_id, message, key))
        return _margin(self.counter, calib), calib

    def _complete(
        self, margin: float, kw: Mapping[str, Any], calib: Calibration | None = None
    ) -> Flow[Completion]:
        window = yield from self._window_at(margin)
        try:
            completion: Completion = yield Chat(_answered(window.messages), kw)
        except PromptTooLongError as err:
            window = yield from self._refit(err, window)
            completion = yield Chat(_answered(window.messages), kw)
        yield from self._record(completion, window, calib)
        return completion

    def _complete_stream(
        self, margin: float, kw: Mapping[str, Any], calib: Calibration | None = None
    ) -> Flow[None]:
        window = yield from self._window_at(margin)
        try:
            yield Open(_answered(window.messages), kw)
            event: StreamEvent | None = yield Next()  # a refused request fails here, before any event
        except PromptTooLongError as err:
            window = yield from self._refit(err, window)
            yield Open(_answered(window.messages), kw)
            event = yield Next()
        while event is not None:
            # the reply is stored before its Done is handed out, so a consumer that stops at Done (or
            # reads usage() there) finds the turn complete
            if isinstance(event, Done):
                yield from self._record(event.completion, window, calib)
            yield Emit(event)
            event = yield Next()

    def _window_at(self, margin: float) -> Flow[FitResult]:
        before = self._summarizer_snapshot()
        result: FitResult = yield Call("window", (self.conversation_id,), self._window_kw(margin))
        spent = self._summarizer_usage(before)
        if spent is not None:
            yield Call("record_turn", (self.conversation_id, None, spent))
        return result

    def _refit(self, err: PromptTooLongError, window: FitResult) -> Flow[FitResult]:
        """xAI found the prompt too long: learn from its numbers, and take the window again."""
        calib = yield Call("calibrate", (self.spec, self.counter, self._overflow_ratio(err, window)))
        return (yield from self._window_at(_margin(self.counter, calib)))

    def _record(self, completion: Completion, window: FitResult, calib: Calibration | None) -> Flow[None]:
        from .store._calibration import teaches  # the store's rule; imported with the store

        ratio = self._observed_ratio(completion, window)
        seen = (self.spec, self.counter, ratio) if self.calibrate_enabled and ratio is not None else None
        if (
            seen is not None
            and ratio is not None
            and calib is not None
            and not teaches(calib.ratio_max, ratio)
        ):
            # the sample would leave the estimate as the turn read it: not writing it keeps the
            # namespace's one calibration row free for the turns that do teach something (every
            # concurrent session of a namespace queued on that row's lock, bench_load found)
            seen = None
        row = self._usage_row(completion, window)
        yield Run("end_turn", (self.conversation_id, completion.message, row, seen))
