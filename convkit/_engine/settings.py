"""The window settings: one checked, frozen value that every layer hands on.

``fit``, ``Store.window`` and the session decide a window from the same
settings: the model, the counter, the reserve for the reply, the margin in
force, the strategy, the image policy, the tool definitions, the summary
options and the cut ``policy`` (``"maximal"``, or ``"stable"``: cut down to
the ``low_water`` fraction of the budget, then keep that start while the newer
messages fit, so xAI can serve the repeated prefix from its prompt cache).
:meth:`WindowSettings.of` checks them all in one place (each bad value is a
:class:`~convkit._errors.ValidationError` that names it); ``budget`` is the
room the prompt must fit:
``floor((context_window - reserve) / (1 + margin))``.

:func:`default_reserve` is the one default for the reply's room: ``fit``,
``Store.window``, ``Session`` (its ``max_tokens``), the integrations and the
CLI all keep :data:`DEFAULT_RESERVE` (1024) tokens free when no reserve is
given, or a quarter of a window smaller than four times that (``reserve=0``
fills the window, leaving the model no room to answer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

import attrs

from .._counting import EstimateCounter, ImagePolicy, TokenCounter
from .._errors import ValidationError
from .._models import ModelSpec, get_model

__all__ = [
    "DEFAULT_RESERVE",
    "Fallback",
    "Policy",
    "Strategy",
    "WindowSettings",
    "compute_budget",
    "default_reserve",
]

#: Tokens kept free for the reply unless a caller says otherwise (the reply's ``max_tokens``).
DEFAULT_RESERVE = 1024


def default_reserve(spec: ModelSpec) -> int:
    """The reserve when none is given: :data:`DEFAULT_RESERVE`, or a quarter of a small window."""
    return min(DEFAULT_RESERVE, spec.context_window // 4)


Strategy: TypeAlias = Literal["trim", "summarize"]
#: How a trim window cuts: as much as fits every time ("maximal"), or down to the low-water
#: mark and then not again while the newer messages fit ("stable": a prefix xAI can cache).
Policy: TypeAlias = Literal["maximal", "stable"]
Fallback: TypeAlias = Literal["error", "trim"]


def compute_budget(spec: ModelSpec, reserve: int, margin: float) -> int:
    """``(context_window - reserve) / (1 + margin)``, rounded down."""
    if isinstance(reserve, bool) or not isinstance(reserve, int) or reserve < 0:
        raise ValidationError(f"reserve is a non-negative number of tokens, got {reserve!r}")
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not (0 <= margin < 10):
        raise ValidationError(f"margin is a relative undercount between 0 and 10, got {margin!r}")
    return math.floor((spec.context_window - reserve) / (1 + margin))


@attrs.frozen
class WindowSettings:
    """How to decide a window (see module docstring); build it with :meth:`of`."""

    spec: ModelSpec
    counter: TokenCounter
    reserve: int
    #: the margin in force: the counter's unless overridden
    margin: float
    budget: int
    strategy: Strategy = "trim"
    images: ImagePolicy = "error"
    tools: tuple[Mapping[str, Any], ...] | None = None
    fallback: Fallback = "error"
    low_water: float = 0.6
    summary_tokens: int | None = None
    policy: Policy = "maximal"

    @classmethod
    def of(
        cls,
        model: str | ModelSpec,
        *,
        counter: TokenCounter | None = None,
        reserve: int | None = None,
        strategy: Strategy = "trim",
        tools: Sequence[Mapping[str, Any]] | None = None,
        images: ImagePolicy = "error",
        margin: float | None = None,
        fallback: Fallback = "error",
        low_water: float = 0.6,
        summary_tokens: int | None = None,
        policy: Policy = "maximal",
    ) -> WindowSettings:
        """Checked settings (``counter`` defaults to :class:`~convkit.EstimateCounter`, ``reserve``
        to :func:`default_reserve`)."""
        spec = get_model(model)
        if strategy not in ("trim", "summarize"):
            raise ValidationError(f"unknown strategy {strategy!r}; use 'trim' or 'summarize'")
        if images not in ("error", "drop"):
            raise ValidationError(f"images= must be 'error' or 'drop', got {images!r}")
        if policy not in ("maximal", "stable"):
            raise ValidationError(f"policy must be 'maximal' or 'stable', got {policy!r}")
        if fallback not in ("error", "trim"):
            raise ValidationError(f"fallback must be 'error' or 'trim', got {fallback!r}")
        if isinstance(low_water, bool) or not isinstance(low_water, int | float) or not 0 < low_water <= 1:
            raise ValidationError(f"low_water is a fraction of the budget in (0, 1], got {low_water!r}")
        if summary_tokens is not None and (
            isinstance(summary_tokens, bool) or not isinstance(summary_tokens, int) or summary_tokens < 1
        ):
            raise ValidationError(f"summary_tokens must be positive, got {summary_tokens!r}")
        counter = counter if counter is not None else EstimateCounter()
        reserve = default_reserve(spec) if reserve is None else reserve
        used = counter.margin if margin is None else margin
        budget = compute_budget(spec, reserve, used)
        return cls(
            spec,
            counter,
            reserve,
            float(used),
            budget,
            strategy,
            images,
            tuple(tools) if tools else None,
            fallback,
            float(low_water),
            summary_tokens,
            policy,
        )

    @property
    def tools_tokens(self) -> int:
        """Tokens of the tool definitions sent with the request."""
        return self.counter.tools_tokens(self.tools)

    def with_margin(self, margin: float) -> WindowSettings:
        """These settings with another margin in force (the budget follows)."""
        budget = compute_budget(self.spec, self.reserve, margin)  # checks the margin first
        return attrs.evolve(self, margin=float(margin), budget=budget)

    @classmethod
    def given(
        cls,
        settings: WindowSettings | None,
        model: str | ModelSpec | None,
        *,
        default_counter: TokenCounter | None = None,
        **kw: Any,
    ) -> WindowSettings:
        """``settings`` as given, or built from ``model`` and the other window arguments ``kw``.

        What ``fit`` and ``Store.window`` take: either ``settings=`` (one value carried from
        layer to layer) or the arguments themselves, not both. ``default_counter`` stands in for
        ``counter=None`` when building (a store's configured counter).
        """
        if settings is None:
            if model is None:
                raise ValidationError(
                    "a window needs model=... (or settings=convkit.WindowSettings.of(model, ...))"
                )
            if kw.get("counter") is None:
                kw["counter"] = default_counter
            return cls.of(model, **kw)
        if not isinstance(settings, WindowSettings):
            raise ValidationError(f"settings= takes a convkit.WindowSettings, got {type(settings).__name__}")
        extra = [k for k, v in kw.items() if v != _ARG_DEFAULTS[k] and not (k == "tools" and not v)]
        if model is not None:
            extra.insert(0, "model")
        if extra:
            raise ValidationError(
                f"settings= already holds the window's settings; leave out {', '.join(extra)} "
                "(or build the settings with them)"
            )
        return settings


#: The window arguments' defaults, for :meth:`WindowSettings.given`.
_ARG_DEFAULTS: dict[str, Any] = {
    "counter": None,
    "reserve": None,
    "strategy": "trim",
    "tools": None,
    "images": "error",
    "margin": None,
    "fallback": "error",
    "low_water": 0.6,
    "summary_tokens": None,
    "policy": "maximal",
}
