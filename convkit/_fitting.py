"""``fit``: choose the messages to send so the prompt fits the model's window.

Strategy ``"trim"`` keeps the must-keep units (leading system messages,
pinned messages, and the newest turn: the unit of the newest non-system
message and everything after it, so a conversation ending with a system
note never becomes a system-only prompt; see :mod:`convkit._history`) and
then as many of the newest droppable units as fit, dropping the oldest first.
The fit invariants of DESIGN section 3 hold for every result:

1. ``counter.count_messages(result.messages, model=m) <= result.budget``;
2. kept messages stay in input order; 3. pinned and leading system messages
are kept; 4. the last message is kept; 5. tool calls and their results are
kept or dropped together; 6. the next older droppable unit would not have
fit; 7. ``fit(fit(x)) == fit(x)`` and a larger budget keeps a superset;
8. when the must-keep part cannot fit, :class:`ContextWindowError` carries
the required and available tokens; a conversation of system messages only is
refused (:class:`~convkit._errors.InvalidConversationError`): a prompt is
never empty or system-only.

With a :class:`~convkit._history.History` whose counts are known, ``fit``
does not touch the tokenizer and runs in O(log n + kept).
"""

from __future__ import annotations

import inspect
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ._counting import ImagePolicy, TokenCounter, apply_image_policy
from ._engine import listcache
from ._engine.cut import check_must_keep, find_cut, stable_cut
from ._engine.settings import Policy, Strategy, WindowSettings, compute_budget
from ._engine.spans import kept_spans
from ._errors import (
    ConvkitError,
    InvalidConversationError,
    SummarizerError,
    ValidationError,
)
from ._history import History
from ._messages import ImagePart, Message, MessageLike, as_messages
from ._models import ModelSpec, get_model

if TYPE_CHECKING:
    from ._summarize import FoldRequest, Summarizer, Summary

__all__ = ["FitResult", "Strategy", "compute_budget", "fit"]


@attrs.frozen
class FitResult:
    """What to send: the kept messages, their token count and the budget they fit."""

    messages: tuple[Message, ...]
    prompt_tokens: int
    budget: int
    model: str
    context_window: int
    reserve: int
    margin: float
    strategy: str
    input_length: int
    #: kept input indices as half-open ranges, in order
    kept_spans: tuple[tuple[int, int], ...] = attrs.field(repr=False)
    tools_tokens: int = 0
    #: under strategy "summarize": the summary in ``messages`` (right after the leading system messages)
    summary: Summary | None = None
    #: True when ``summary`` was made for this result (store it), False when it was reused
    summary_is_new: bool = False
    #: the spec fitted against (prices for :meth:`estimate_cost`, even for an unregistered spec)
    spec: ModelSpec | None = attrs.field(default=None, eq=False, repr=False)

    @classmethod
    def trimmed(
        cls,
        spec: ModelSpec,
        messages: Sequence[Message],
        *,
        prompt_tokens: int,
        budget: int,
        reserve: int,
        margin: float,
        input_length: int,
        kept_spans: tuple[tuple[int, int], ...],
        tools_tokens: int,
    ) -> FitResult:
        """A trim window for ``spec`` (what ``fit`` and ``Store.window`` return)."""
        return cls(
            messages=tuple(messages),
            prompt_tokens=prompt_tokens,
            budget=budget,
            model=spec.name,
            context_window=spec.context_window,
            reserve=reserve,
            margin=margin,
            strategy="trim",
            input_length=input_length,
            kept_spans=kept_spans,
            tools_tokens=tools_tokens,
            spec=spec,
        )

    @property
    def start(self) -> int:
        """The input position from which every message is kept (before it: pinned ones only).

        Pass it as ``fit(..., policy="stable", start=...)`` with the next turn's messages to keep
        the window's start, and so its prefix, while the newer messages fit.
        """
        return self.kept_spans[-1][0] if self.kept_spans else self.input_length

    @property
    def kept(self) -> list[int]:
        """Indices into the input of the kept messages, ascending."""
        out: list[int] = []
        for a, b in self.kept_spans:
            out.extend(range(a, b))
        return out

    @property
    def dropped(self) -> list[int]:
        """Indices into the input of the dropped messages, ascending."""
        out: list[int] = []
        prev = 0
        for a, b in self.kept_spans:
            out.extend(range(prev, a))
            prev = b
        out.extend(range(prev, self.input_length))
        return out

    @property
    def image_tokens(self) -> int:
        """The part of ``prompt_tokens`` spent on images."""
        return sum(p.tokens for m in self.messages for p in m.content if isinstance(p, ImagePart))

    def estimate_cost(self, completion_tokens: int = 0) -> float:
        """US dollars for sending this prompt (and ``completion_tokens`` back)."""
        spec = self.spec if self.spec is not None else get_model(self.model)
        return spec.estimate_cost(self.prompt_tokens, completion_tokens, image_tokens=self.image_tokens)

    def to_openai(self) -> list[dict[str, Any]]:
        """The messages as OpenAI/xAI dicts, ready for the request body."""
        return [m.to_openai() for m in self.messages]


def fit(
    messages: Iterable[MessageLike] | History,
    *,
    model: str | ModelSpec | None = None,
    counter: TokenCounter | None = None,
    reserve: int | None = None,
    strategy: Strategy = "trim",
    tools: Sequence[Mapping[str, Any]] | None = None,
    images: ImagePolicy = "error",
    margin: float | None = None,
    summarizer: Summarizer | None = None,
    summary: Summary | None = None,
    fallback: Literal["error", "trim"] = "error",
    low_water: float = 0.6,
    summary_tokens: int | None = None,
    policy: Policy = "maximal",
    start: int | None = None,
    settings: WindowSettings | None = None,
) -> FitResult:
    """Fit a conversation into ``model``'s context window (see module docstring).

    ``messages``: Message objects, OpenAI-shaped dicts, or a :class:`History`.
    ``reserve``: tokens kept free for the completion (your ``max_tokens``; by default
    :data:`~convkit.DEFAULT_RESERVE`, 1024, or a quarter of a smaller model's window;
    ``0`` lets the prompt fill the window).
    ``tools``: tool definitions sent with the request (they count too).
    ``images``: ``"error"`` (default) or ``"drop"`` for text-only models.
    ``margin``: override the counter's safety margin.

    Strategy ``"summarize"`` (see :mod:`convkit._summarize`) needs a
    ``summarizer``; ``summary`` is the previous one (reused while it
    suffices); ``fallback="trim"`` returns the trimmed window when the
    summarizer fails; ``low_water`` is the fraction of the budget a new
    summary folds down to; ``summary_tokens`` bounds the summary's length.

    ``policy="stable"`` (trim only) cuts down to ``low_water`` of the budget when the
    conversation no longer fits, then keeps that start while the newer messages fit, so
    consecutive requests share their prefix (xAI's prompt cache bills it at about a quarter
    of the input price); ``start`` is the previous window's :attr:`FitResult.start`.

    ``settings``: a :class:`~convkit.WindowSettings` holding all of the above but the
    summarizer, summary and start, instead of passing them one by one.
    """
    settings = WindowSettings.given(
        settings,
        model,
        default_counter=messages.counter if isinstance(messages, History) else None,
        counter=counter,
        reserve=reserve,
        strategy=strategy,
        tools=tools,
        images=images,
        margin=margin,
        fallback=fallback,
        low_water=low_water,
        summary_tokens=summary_tokens,
        policy=policy,
    )
    strategy, fallback = settings.strategy, settings.fallback
    if start is not None and (
        settings.policy != "stable" or isinstance(start, bool) or not isinstance(start, int) or start < 0
    ):
        raise ValidationError(
            f"start= is the previous window's FitResult.start (an index >= 0) and needs policy='stable', "
            f"got start={start!r} with policy={settings.policy!r}"
        )
    if strategy == "summarize" and summarizer is None and summary is None:
        raise ValidationError(
            "strategy='summarize' needs summarizer=... (e.g. convkit.ExtractiveSummarizer() offline, "
            "or an XAISummarizer)"
        )
    trimmed, step = plan_fit(messages, settings, summary=summary, cache=True, start=start)
    if isinstance(step, FitResult):
        return step
    if summarizer is None:
        raise ValidationError("the previous summary no longer suffices and no summarizer= was given")
    try:
        text: object = summarizer.summarize(
            list(step.messages), previous=step.previous, max_tokens=step.max_tokens
        )
    except Exception as exc:
        return fold_failed(exc, trimmed, fallback)
    text = sync_answer(text, "fit")  # a usage error, raised whatever the fallback
    try:
        return complete_fold(step, text)
    except ConvkitError as exc:
        return fold_failed(exc, trimmed, fallback, answer=True)


def plan_fit(
    messages: Iterable[MessageLike] | History,
    settings: WindowSettings,
    *,
    summary: Summary | None = None,
    cache: bool = False,
    origin: Sequence[tuple[int, int]] | None = None,
    length: int | None = None,
    start: int | None = None,
) -> tuple[FitResult, FitResult | FoldRequest]:
    """The trimmed window and, under "summarize", either the final window or what to fold.

    ``cache``: keep a plain list's index by the identity of its messages (see
    :mod:`convkit._engine.listcache`); for a caller's own list, never for one made afresh.
    ``origin``/``length``: ``messages`` is a part of the input standing for all of it (see
    :func:`convkit._summarize.plan`); the trimmed window is then the part's own.
    ``start``: the previous window's start, for ``policy="stable"``.
    """
    spec, counter = settings.spec, settings.counter
    if cache and settings.strategy == "trim" and type(messages) is list and messages:
        # the list's index is kept by the identity of its messages
        cached = listcache.with_index(
            messages, counter, spec, settings.images, lambda h: _trim(h, settings, start)
        )
        if cached is not None:
            return cached, cached
    history = _as_history(messages, counter, spec, settings.images)
    trimmed = _trim(history, settings, start)
    if settings.strategy == "trim":
        return trimmed, trimmed
    from . import _summarize as sm

    fr = frame(history, spec, counter, settings.budget, settings.reserve, settings.tools)
    step = sm.plan(
        history,
        spec,
        counter,
        settings.budget,
        settings.reserve,
        settings.margin,
        fr,
        trimmed,
        summary,
        low_water=settings.low_water,
        summary_tokens=settings.summary_tokens,
        origin=origin,
        length=length,
    )
    return trimmed, step


def complete_fold(step: FoldRequest, text: object) -> FitResult:
    """The window once the summarizer has answered ``step``."""
    from . import _summarize as sm

    return sm.complete(step, text)


def fold_failed(
    exc: Exception, trimmed: FitResult | None, fallback: str, *, answer: bool = False
) -> FitResult:
    """Fall back to ``trimmed`` when asked, else raise a typed error (nothing was written).

    ``exc`` is what the summarizer raised: any error (a timeout, an API error...) becomes a
    :class:`~convkit._errors.SummarizerError` with the cause chained, so a caller can tell the
    summarizer's failure from the chat request's. With ``answer=True`` it is what
    :func:`complete_fold` raised for the summarizer's answer (a SummarizerError for an empty one,
    a :class:`~convkit._errors.ContextWindowError` when the summary itself does not fit), raised as is.
    """
    if fallback == "trim" and trimmed is not None:
        return trimmed
    if answer or isinstance(exc, SummarizerError):
        raise exc
    raise SummarizerError(
        f"the summarizer failed ({type(exc).__name__}: {exc}); nothing was written"
    ) from exc


def sync_answer(text: object, where: str) -> object:
    """Refuse an awaitable answer (an async summarizer given to a synchronous caller).

    A usage error, so it is raised whatever the fallback; the coroutine is closed unawaited.
    """
    if inspect.isawaitable(text):
        close = getattr(text, "close", None)
        if callable(close):
            close()
        raise ValidationError(
            f"{where} takes a synchronous summarizer; an async one needs AsyncStore.window or AsyncSession"
        )
    return text


def _as_history(
    messages: Iterable[MessageLike] | History, counter: TokenCounter, spec: ModelSpec, images: ImagePolicy
) -> History:
    if images not in ("error", "drop"):  # also when a History is used as it is
        raise ValidationError(f"images= must be 'error' or 'drop', got {images!r}")
    if isinstance(messages, History):
        same = messages.counter is counter or messages.counter.identity == counter.identity
        if same and (spec.supports_images or not messages.has_images):
            return messages
        msgs: list[Message] = messages.messages
    else:
        msgs = as_messages(messages)
    return History(apply_image_policy(msgs, spec, images), counter=counter)


@attrs.frozen
class Frame:
    """The must-keep part of a History for one model and budget (internal to fit and summarize)."""

    fixed: int  # tokens of the must-keep part, request overhead and tools included
    tail: int  # first unit of the newest turn
    tools_tokens: int
    overhead: int  # per-message overhead of the model


def frame(
    h: History,
    spec: ModelSpec,
    counter: TokenCounter,
    budget: int,
    reserve: int,
    tools: Sequence[Mapping[str, Any]] | None,
) -> Frame:
    """Find the newest turn and the must-keep cost; raise when they cannot fit."""
    n = len(h)
    if n == 0:
        raise ValidationError("nothing to fit: the conversation has no messages")
    ovh = spec.message_overhead
    cum_tok, cum_msg = h._cum_tok, h._cum_msg
    dtok, dmsg = h._cum_drop_tok, h._cum_drop_msg
    units = h.units
    msgs = h._messages
    # the newest turn: from the unit of the newest non-system message to the end (trailing
    # system messages are rare and few, so this backwards scan is short)
    speaker = n - 1
    while speaker >= 0 and msgs[speaker].role == "system":
        speaker -= 1
    if speaker < 0:
        raise InvalidConversationError(
            "the conversation has only system messages, so there is nothing to answer; "
            "add the user message the model should reply to"
        )
    tail = bisect_right(h._unit_start, speaker) - 1
    tools_tok = counter.tools_tokens(tools)

    pinned_cost = (cum_tok[units] - dtok[units]) + ovh * (cum_msg[units] - dmsg[units])
    tail_cost = (dtok[units] - dtok[tail]) + ovh * (dmsg[units] - dmsg[tail])  # its droppable part
    fixed = spec.request_overhead + tools_tok + pinned_cost + tail_cost
    check_must_keep(spec, fixed, budget, reserve)
    return Frame(fixed, tail, tools_tok, ovh)


def _trim(h: History, settings: WindowSettings, start: int | None = None) -> FitResult:
    spec, budget, reserve, margin = settings.spec, settings.budget, settings.reserve, settings.margin
    fr = frame(h, spec, settings.counter, budget, reserve, settings.tools)
    n = len(h)
    msgs = h._messages
    dtok, dmsg = h._cum_drop_tok, h._cum_drop_msg
    fixed, tail, tools_tok, ovh = fr.fixed, fr.tail, fr.tools_tokens, fr.overhead

    # droppable units [0, tail); keeping nothing before unit u saves cost(u)
    def cost(u: int) -> int:
        return dtok[u] + ovh * dmsg[u]

    if settings.policy == "stable":
        previous = bisect_right(h._unit_start, start) - 1 if start is not None and start < n else None
        low_room = math.floor(settings.low_water * budget) - fixed
        cut = stable_cut(cost, tail, budget - fixed, low_room, previous)
    else:
        cut = find_cut(cost, tail, budget - fixed)
    kept_drop = cost(tail) - cost(cut)
    # kept = pinned units before the cut, then everything from the cut on
    pinned = h._pinned_units
    spans = kept_spans((h.unit_bounds(u) for u in pinned[: bisect_left(pinned, cut)]), h._unit_start[cut], n)
    if len(spans) == 1:
        kept_msgs = tuple(msgs[spans[0][0] :])
    else:
        out: list[Message] = []
        for a, b in spans:
            out.extend(msgs[a:b])
        kept_msgs = tuple(out)
    return FitResult.trimmed(
        spec,
        kept_msgs,
        prompt_tokens=fixed + kept_drop,
        budget=budget,
        reserve=reserve,
        margin=margin,
        input_length=n,
        kept_spans=spans,
        tools_tokens=tools_tok,
    )
