"""``fit_messages``: LangChain's ``trim_messages(strategy="last")`` run through :func:`convkit.fit`.

Private to :mod:`convkit.integrations.langchain`, which re-exports
:func:`fit_messages`. Counts either with convkit's rules for a model or with a
LangChain ``token_counter`` (whose verdict on the result is final).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast, overload

import attrs
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, convert_to_messages
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.runnables import Runnable, RunnableLambda

from .._counting import BaseCounter, EstimateCounter, ImagePolicy, TokenCounter
from .._engine.units import drop_leading_units, must_keep_units, unit_lists, unit_starts
from .._errors import ContextWindowError, InvalidMessageError, ValidationError
from .._fitting import fit
from .._history import History
from .._messages import CUT_OFF, EMPTY_MESSAGE, Message
from .._models import ModelSpec, get_model
from ._langchain_convert import _convert, to_langchain

if TYPE_CHECKING:
    from langchain_core.messages.utils import MessageLikeRepresentation
    from langchain_core.prompt_values import PromptValue

LangChainTokenCounter: TypeAlias = (
    "Callable[[list[BaseMessage]], int] | Callable[[BaseMessage], int] | Any | Literal['approximate']"
)
MessageTypes: TypeAlias = "str | type[BaseMessage] | Sequence[str | type[BaseMessage]]"


def _list_counter(token_counter: Any) -> Callable[[list[BaseMessage]], int]:
    """A list token counter, resolved as ``trim_messages`` resolves its ``token_counter``."""
    if token_counter == "approximate":
        return count_tokens_approximately
    if hasattr(token_counter, "get_num_tokens_from_messages"):
        return cast(Callable[[list[BaseMessage]], int], token_counter.get_num_tokens_from_messages)
    if not callable(token_counter):
        raise ValidationError(
            "token_counter is a function of a list of messages (or of one message), a LangChain chat "
            f"model, or 'approximate'; got {type(token_counter).__name__}"
        )
    import inspect

    params = list(inspect.signature(token_counter).parameters.values())
    if params and params[0].annotation in (BaseMessage, "BaseMessage"):
        per_message = cast(Callable[[BaseMessage], int], token_counter)
        return lambda msgs: sum(per_message(m) for m in msgs)
    return cast(Callable[[list[BaseMessage]], int], token_counter)


class _CallableCounter(BaseCounter):
    """A convkit counter over a LangChain token counter (used with counts known in advance)."""

    def __init__(self, count: Callable[[list[BaseMessage]], int], base: int) -> None:
        super().__init__()
        self._count = count
        self._base = base

    @property
    def identity(self) -> str:
        return f"langchain-token-counter:{id(self._count)}"

    def _encode(self, texts: list[str]) -> list[int]:
        return [max(0, int(self._count([HumanMessage(t)])) - self._base) for t in texts]

    def content_tokens(self, messages: Sequence[Message]) -> list[int]:
        return [max(0, int(self._count([to_langchain(m)])) - self._base) for m in messages]


def _matches(msg: BaseMessage, types: MessageTypes) -> bool:
    wanted = [types] if isinstance(types, str | type) else list(types)
    names = [t for t in wanted if isinstance(t, str)]
    classes = tuple(t for t in wanted if isinstance(t, type))
    return msg.type in names or isinstance(msg, classes)


def _must_keep(messages: Sequence[Message]) -> list[int]:
    """Indices fit always keeps: units with a leading system or pinned message, and the newest turn."""
    units = unit_starts(messages)
    keep = must_keep_units(messages, units)
    return [i for u, unit in enumerate(unit_lists(units, len(messages))) if keep[u] for i in unit]


def _start_on(
    kept: list[int], messages: Sequence[Message], start_on: MessageTypes, lc: Sequence[BaseMessage]
) -> list[int]:
    """Drop the oldest kept droppable units until the oldest one starts with a ``start_on`` message."""
    return drop_leading_units(messages, kept, lambda i: not _matches(lc[i], start_on))


def _without_images(msg: BaseMessage, note: str) -> BaseMessage:
    if not isinstance(msg.content, list):
        return msg
    content: list[Any] = []
    for block in msg.content:
        is_image = isinstance(block, Mapping) and block.get("type") in ("image_url", "image")
        content.append({"type": "text", "text": note} if is_image else block)
    return msg.model_copy(update={"content": content})


_Input: TypeAlias = "Iterable[MessageLikeRepresentation] | PromptValue"


@overload
def fit_messages(
    messages: None = None,
    *,
    max_tokens: int,
    model: str | ModelSpec | None = None,
    counter: TokenCounter | None = None,
    token_counter: LangChainTokenCounter | None = None,
    strategy: Literal["last"] = "last",
    allow_partial: bool = False,
    end_on: MessageTypes | None = None,
    start_on: MessageTypes | None = None,
    include_system: bool = True,
    text_splitter: Any = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    images: ImagePolicy = "error",
) -> Runnable[_Input, list[BaseMessage]]: ...


@overload
def fit_messages(
    messages: _Input,
    *,
    max_tokens: int,
    model: str | ModelSpec | None = None,
    counter: TokenCounter | None = None,
    token_counter: LangChainTokenCounter | None = None,
    strategy: Literal["last"] = "last",
    allow_partial: bool = False,
    end_on: MessageTypes | None = None,
    start_on: MessageTypes | None = None,
    include_system: bool = True,
    text_splitter: Any = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    images: ImagePolicy = "error",
) -> list[BaseMessage]: ...


def fit_messages(
    messages: _Input | None = None,
    *,
    max_tokens: int,
    model: str | ModelSpec | None = None,
    counter: TokenCounter | None = None,
    token_counter: LangChainTokenCounter | None = None,
    strategy: Literal["last"] = "last",
    allow_partial: bool = False,
    end_on: MessageTypes | None = None,
    start_on: MessageTypes | None = None,
    include_system: bool = True,
    text_splitter: Any = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    images: ImagePolicy = "error",
) -> list[BaseMessage] | Runnable[_Input, list[BaseMessage]]:
    """``trim_messages(strategy="last")``, but through :func:`convkit.fit`: the newest that fit, safely.

    Without ``messages`` it returns a ``Runnable`` doing the same to its input,
    as ``trim_messages`` does, to compose in a chain:
    ``fit_messages(max_tokens=..., model="grok-...") | chat_model``. Its
    options are checked now, so a bad one fails where the chain is built.

    Returns the input's own message objects (a subset, in order) whose count
    is at most ``max_tokens``:

    * with ``token_counter`` (what ``trim_messages`` takes: a function of a
      list of messages or of one message, a chat model, or
      ``"approximate"``), counted by it: ``token_counter(result) <=
      max_tokens`` is checked on the result, so a counter that is not
      additive over messages is still obeyed;
    * else with convkit's rules for ``model`` (``counter``: a convkit token
      counter, default :class:`~convkit.EstimateCounter`; images by the tile
      rule; ``tools`` count too), within ``min(max_tokens, context window)``
      less the counter's safety margin. ``model=None`` means Grok's chat
      template with images allowed and ``max_tokens`` as the window.

    Unlike ``trim_messages``, leading system messages and messages pinned
    through ``additional_kwargs["convkit"]["pinned"]`` are always kept, a
    tool call and its results are kept or dropped together, and when the
    must-keep messages cannot fit a :class:`~convkit.ContextWindowError` is
    raised. So ``include_system`` defaults to ``True`` here (in
    ``trim_messages`` it defaults to ``False``) and ``include_system=False``
    (``trim_messages``: the system message is an ordinary message, dropped
    first when older messages go) is refused with a
    :class:`~convkit.ValidationError` rather than ignored: convkit never sends
    a request without its instructions. To let the system prompt go, fit the
    messages after it and add it back yourself. ``text_splitter`` is accepted
    and unused, as in ``trim_messages`` without ``allow_partial``. ``end_on`` drops
    trailing messages first, as in ``trim_messages``; ``start_on`` then drops
    the oldest kept droppable units until the oldest starts with such a
    message. ``strategy="first"`` and ``allow_partial=True`` are refused
    (:class:`~convkit.ValidationError`): convkit keeps the newest messages
    and never splits one. A tool result whose call is not in ``messages``
    raises :class:`~convkit.InvalidConversationError`.
    """
    del text_splitter  # accepted for compatibility with trim_messages (used only with allow_partial)
    options: dict[str, Any] = {
        "max_tokens": max_tokens,
        "model": model,
        "counter": counter,
        "token_counter": token_counter,
        "end_on": end_on,
        "start_on": start_on,
        "tools": tools,
        "images": images,
    }
    _check_options(include_system, strategy, allow_partial, max_tokens)
    _check_kinds(options)
    if messages is None:
        if model is not None:
            get_model(model)  # an unknown model fails where the chain is built
        return RunnableLambda(partial(_fit, **options), name="fit_messages")
    return _fit(messages, **options)


def _check_options(include_system: bool, strategy: str, allow_partial: bool, max_tokens: int) -> None:
    if include_system is not True:
        raise ValidationError(
            "fit_messages always keeps the leading system messages (convkit's rule): include_system must "
            f"be True, got {include_system!r}; to drop the system prompt, fit the messages after it"
        )
    if strategy != "last":
        raise ValidationError("fit_messages keeps the newest messages: strategy must be 'last'")
    if allow_partial:
        raise ValidationError("fit_messages never splits a message: allow_partial must be False")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        raise ValidationError(f"max_tokens is a non-negative number of tokens, got {max_tokens!r}")


def _check_kinds(options: Mapping[str, Any]) -> None:
    """The options' types, checked before any message is (so a chain fails where it is built)."""
    if options["images"] not in ("error", "drop"):
        raise ValidationError(f"images is 'error' or 'drop', got {options['images']!r}")
    counter = options["counter"]
    if counter is not None and not isinstance(getattr(counter, "identity", None), str):
        raise ValidationError(
            "counter is a convkit token counter (EstimateCounter, HFTokenCounter...), "
            f"got {type(counter).__name__}"
        )
    if options["token_counter"] is not None:
        _list_counter(options["token_counter"])
    for name in ("end_on", "start_on"):
        types = options[name]
        if types is None:
            continue
        wanted = [types] if isinstance(types, str | type) else types
        if not isinstance(wanted, Sequence) or not all(
            isinstance(t, str) or (isinstance(t, type) and issubclass(t, BaseMessage)) for t in wanted
        ):
            raise ValidationError(
                f"{name} is a message type name ('human', 'ai', 'tool'...), a BaseMessage class, or a list "
                f"of them; got {types!r}"
            )
    tools = options["tools"]
    if tools is not None and (
        isinstance(tools, str | Mapping)
        or not isinstance(tools, Sequence)
        or not all(isinstance(t, Mapping) for t in tools)
    ):
        raise ValidationError(f"tools is a list of tool definitions (dicts), got {type(tools).__name__}")


def _fit(
    messages: _Input,
    *,
    max_tokens: int,
    model: str | ModelSpec | None,
    counter: TokenCounter | None,
    token_counter: LangChainTokenCounter | None,
    end_on: MessageTypes | None,
    start_on: MessageTypes | None,
    tools: Sequence[Mapping[str, Any]] | None,
    images: ImagePolicy,
) -> list[BaseMessage]:
    lc = convert_to_messages(messages)
    if end_on is not None:
        while lc and not _matches(lc[-1], end_on):
            lc.pop()
    if not lc:
        return []
    converted: list[Message] = []
    for i, msg in enumerate(lc):
        try:
            converted.append(_convert(msg, with_info=False))
        except InvalidMessageError as exc:
            if isinstance(msg, AIMessage) and EMPTY_MESSAGE in str(exc):
                # a reply with nothing convkit sends (AIMessage(""), reasoning only): models do
                # give them, and a graph's state keeps them; counted as an empty reply, not refused
                converted.append(Message("assistant", metadata=CUT_OFF))
                continue
            raise type(exc)(f"message {i}: {exc}") from None
    if token_counter is not None:
        return _fit_counted(lc, converted, max_tokens, _list_counter(token_counter), start_on, tools)
    spec = (
        get_model(model)
        if model is not None
        else ModelSpec("langchain", max(1, max_tokens), {"text", "image"})
    )
    window = min(max_tokens, spec.context_window) if model is not None else max_tokens
    spec = attrs.evolve(spec, context_window=max(1, window))
    result = fit(
        converted,
        model=spec,
        counter=counter if counter is not None else EstimateCounter(),
        reserve=spec.context_window - window,
        tools=tools,
        images=images,
    )
    kept = result.kept if start_on is None else _start_on(result.kept, converted, start_on, lc)
    if result.messages == tuple(converted[i] for i in result.kept):
        return [lc[i] for i in kept]
    sent = dict(zip(result.kept, result.messages, strict=True))
    note = f"[image omitted: {spec.name} does not accept images]"
    return [lc[i] if sent[i] == converted[i] else _without_images(lc[i], note) for i in kept]


def _fit_counted(
    lc: list[BaseMessage],
    converted: list[Message],
    max_tokens: int,
    count: Callable[[list[BaseMessage]], int],
    start_on: MessageTypes | None,
    tools: Sequence[Mapping[str, Any]] | None,
) -> list[BaseMessage]:
    """fit with counts from a LangChain token counter; shrink the budget until it obeys the counter."""
    base = max(0, int(count([])))
    counts = [max(0, int(count([m])) - base) for m in lc]
    counter = _CallableCounter(count, base)
    spec = ModelSpec(
        "token_counter", max(1, max_tokens), {"text", "image"}, message_overhead=0, request_overhead=base
    )
    history = History(converted, counter=counter, counts=counts)
    reserve = spec.context_window - max_tokens
    while True:
        try:
            result = fit(history, model=spec, counter=counter, reserve=reserve, tools=tools)
        except ContextWindowError:
            # decide by the token counter itself (per-message counts may round up where it does not)
            must = [lc[i] for i in _must_keep(converted)]
            required = int(count(must))
            if required <= max_tokens:
                return must
            raise ContextWindowError(
                required=required,
                available=max_tokens,
                model="token_counter",
                detail="counted by the given token_counter; the must-keep part is the leading system and "
                "pinned messages and the newest message with its tool group",
            ) from None
        kept = result.kept if start_on is None else _start_on(result.kept, converted, start_on, lc)
        out = [lc[i] for i in kept]
        actual = int(count(out))
        if actual <= max_tokens:
            return out
        reserve += actual - max_tokens
