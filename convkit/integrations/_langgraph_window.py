"""The pre-model hook: the convkit window of a graph's ``messages`` for a Grok model (:class:`WindowHook`).

Private to :mod:`convkit.integrations.langgraph`, which re-exports the class.
The fitting itself is :func:`convkit.integrations.langchain.fit_messages`
(convkit's :func:`~convkit.fit` over LangChain messages); this module only
turns its settings into a ``max_tokens`` and reads and writes graph state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage, SystemMessage

from .._counting import ImagePolicy, TokenCounter
from .._engine.settings import WindowSettings
from .._errors import InvalidConversationError, ValidationError
from .._models import ModelSpec
from ._langchain_fit import fit_messages

#: The state key ``create_react_agent`` reads the model's input from when a pre-model hook gives it.
LLM_INPUT_KEY = "llm_input_messages"


def state_messages(state: object, key: str = "messages") -> list[BaseMessage]:
    """The ``key`` channel of a graph state (a dict, or an object such as a Pydantic state)."""
    value = state.get(key) if isinstance(state, Mapping) else getattr(state, key, None)
    if value is None:
        raise ValidationError(
            f"the graph state has no {key!r} (got {type(state).__name__}"
            + (f" with keys {sorted(map(str, state))}" if isinstance(state, Mapping) else "")
            + "); convkit reads the conversation from it"
        )
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ValidationError(f"the state's {key!r} must be a list of messages, got {type(value).__name__}")
    out: list[BaseMessage] = []
    for i, m in enumerate(value):
        if not isinstance(m, BaseMessage):
            raise ValidationError(
                f"the state's {key!r}[{i}] is a {type(m).__name__}, not a LangChain message (a graph's "
                "messages channel with LangGraph's add_messages reducer holds BaseMessage objects)"
            )
        out.append(m)
    return out


def _tool_schemas(tools: Sequence[Any] | None) -> tuple[Mapping[str, Any], ...] | None:
    """OpenAI-form tool definitions: dicts as given, LangChain tools and functions converted."""
    if not tools:
        return None
    from langchain_core.utils.function_calling import convert_to_openai_tool

    out: list[Mapping[str, Any]] = []
    for t in tools:
        if isinstance(t, Mapping):
            out.append(t)
            continue
        try:
            out.append(convert_to_openai_tool(t))
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"tools: cannot describe {t!r} as a tool definition ({exc}); pass LangChain tools, "
                "functions or OpenAI-form dicts"
            ) from None
    return tuple(out)


class WindowHook:
    """A LangGraph pre-model hook handing the model the convkit window of ``messages``.

    ``WindowHook("grok-4", reserve=2048)`` is a callable for
    ``create_react_agent(model, tools, pre_model_hook=...)``: given the state,
    it returns ``{"llm_input_messages": window}`` (``key``), which the agent
    sends to the model instead of ``messages``, leaving the state (and so a
    checkpointer's or convkit's copy of the thread) whole. The window is
    :func:`~convkit.integrations.langchain.fit_messages` with convkit's rules
    for ``model`` (``counter``: default :class:`~convkit.EstimateCounter`;
    ``reserve``: tokens kept free for the reply, default
    :data:`~convkit.DEFAULT_RESERVE` or a quarter of a small window; ``tools``:
    the definitions sent with each request, LangChain tools, functions or
    OpenAI-form dicts, which count too; ``images``: ``"error"`` or
    ``"drop"`` for text-only models): leading system and pinned messages
    stay, a tool call and its results are kept or dropped together, then the
    newest messages that fit. When even those cannot fit,
    :class:`~convkit.ContextWindowError` is raised rather than a request the
    API would refuse.

    ``prompt``: a system prompt placed first in the model's input (counted,
    always kept) but not written to the state. Use it instead of
    ``create_react_agent``'s own ``prompt=``, which the agent adds *after* the
    hook, outside the budget (or keep the system prompt as the thread's first
    message).

    Settings are checked when the hook is made (a bad model, reserve or
    counter raises :class:`~convkit.ValidationError` there, not mid-run); no
    I/O. For custom graphs, call :meth:`fit` on the messages in the node that
    calls the model, or use the hook as a node whose state has a ``key``
    channel.
    """

    def __init__(
        self,
        model: str | ModelSpec,
        *,
        reserve: int | None = None,
        counter: TokenCounter | None = None,
        tools: Sequence[Any] | None = None,
        images: ImagePolicy = "error",
        prompt: str | SystemMessage | None = None,
        key: str = LLM_INPUT_KEY,
    ) -> None:
        schemas = _tool_schemas(tools)
        self.settings = WindowSettings.of(
            model, counter=counter, reserve=reserve, tools=schemas, images=images
        )
        if prompt is not None and not isinstance(prompt, str | SystemMessage):
            raise ValidationError(f"prompt is a str or a SystemMessage, got {type(prompt).__name__}")
        if prompt == "":
            raise ValidationError("prompt is empty; leave it out (None) for no system prompt")
        self.prompt: SystemMessage | None = SystemMessage(prompt) if isinstance(prompt, str) else prompt
        if not isinstance(key, str) or not key:
            raise ValidationError(f"key is the state key to write the window to, got {key!r}")
        self.key = key

    def __repr__(self) -> str:
        s = self.settings
        return f"WindowHook({s.spec.name!r}, reserve={s.reserve}, counter={s.counter.identity!r})"

    @property
    def max_tokens(self) -> int:
        """The prompt's budget before the counter's margin: the context window less ``reserve``."""
        return self.settings.spec.context_window - self.settings.reserve

    def fit(self, messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """The messages to send now: ``prompt`` (if any) then the window of ``messages`` (their own objects).

        Messages that are all system messages (nothing to trim around) are returned as they are.
        """
        msgs = [*([self.prompt] if self.prompt is not None else []), *messages]
        s = self.settings
        try:
            return fit_messages(
                msgs,
                max_tokens=self.max_tokens,
                model=s.spec,
                counter=s.counter,
                tools=s.tools,
                images=s.images,
            )
        except InvalidConversationError:
            if all(isinstance(m, SystemMessage) for m in msgs):
                return msgs  # system messages only: fit wants a turn to trim around
            raise

    def __call__(self, state: Any) -> dict[str, list[BaseMessage]]:
        """The hook: ``{key: fit(state["messages"])}``; the state itself is not changed."""
        return {self.key: self.fit(state_messages(state))}
