"""The model registry: what convkit knows about each Grok model.

A :class:`ModelSpec` is a frozen value: name, aliases, context window, input
modalities, prices (US dollars per million tokens: input, image input,
cached input, completion, and :class:`PriceTier` rates above a prompt-size
threshold), a reasoning flag, a deprecation flag, and the per-model
formatting overhead used by the token counters. A :class:`ModelRegistry`
maps names and aliases to specs; the module-level default registry backs
:func:`get_model`, :func:`register_model` and :func:`override_model`.

The built-in table is DESIGN section 1 (the seed's four models, with the
conservative 8192-token window for grok-2-vision-1212, exactly as specified)
plus a dated snapshot of xAI's current models (:data:`CATALOG_DATE`,
:data:`CATALOG_URL`; each model's own page in :data:`CATALOG_PAGES`). Every
figure of the snapshot was read on an xAI page (docs.x.ai); a figure no xAI
page gave is left out (``None``), never guessed:

* ``grok-4.7`` and ``grok-4.6``: xAI's pages give the window (500,000), the
  modalities and the input/output prices, not a cached-input price nor a
  long-prompt tier, so ``price_cached_in`` is ``None`` (cached tokens are
  estimated at the input price, an upper bound) and ``tiers`` is empty.
* ``grok-4.3`` and ``grok-4.20-0309-reasoning``: every figure, with the tier
  "requests whose prompt reaches 200k tokens are billed at the higher rate
  for all tokens in the request". ``grok-4.3`` also carries the slugs xAI
  retired on 2026-05-15 (``grok-4``, ``grok-4-0709``, ``grok-3``,
  ``grok-code-fast-1``, the ``grok-4-fast``/``grok-4-1-fast`` variants...) as
  aliases: xAI serves and bills them as grok-4.3 since that day.
* Left out for want of an xAI page with the figures: ``grok-4.5`` (its page
  gives no context window), ``grok-4.20-0309-non-reasoning``, the
  ``grok-4.20`` multi-agent model and ``grok-build-0.1``. Register them with
  :func:`register_model`, or run ``convkit models --refresh``.

``GET /v1/language-models`` is the source of truth at run time:
:meth:`ModelRegistry.update_from_language_models` applies its body (the
CLI's ``convkit models --refresh`` keeps one in a user cache file that later
processes apply on the default registry's first use; :mod:`convkit._catalog`).

Invariants: every alias resolves to exactly one spec; a spec's own name is
never an alias of another; names and aliases are unique ignoring case, and
lookups ignore case (``get_model("GROK-2")``) but never guess otherwise (an
unknown name raises :class:`~convkit._errors.UnknownModelError`); a change
that would break an invariant is refused whole and changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from ._errors import UnknownModelError, ValidationError

__all__ = [
    "CATALOG_DATE",
    "CATALOG_PAGES",
    "CATALOG_URL",
    "DEFAULT_MESSAGE_OVERHEAD",
    "DEFAULT_REQUEST_OVERHEAD",
    "UNKNOWN_MODEL_CONTEXT_WINDOW",
    "ModelRegistry",
    "ModelSpec",
    "PriceTier",
    "default_registry",
    "get_model",
    "list_models",
    "override_model",
    "register_model",
]

#: Tokens added per message by the chat template (``Human: ...<|separator|>\n\n``
#: is about 5 Grok-1 tokens around the content). Undocumented by xAI; calibratable.
DEFAULT_MESSAGE_OVERHEAD = 5
#: Tokens added once per request for the reply primer (``Assistant:``).
DEFAULT_REQUEST_OVERHEAD = 2

#: The day the built-in snapshot of xAI's models was read.
CATALOG_DATE = "2026-12-02"
#: xAI's "Models and Pricing" page; each model's own page is in :data:`CATALOG_PAGES`.
CATALOG_URL = "https://docs.x.ai/developers/models"
#: The xAI pages each current model's built-in figures came from (for grok-4.3:
#: its page, the retirement notice that makes the retired slugs its aliases, and
#: the page that lists them as such).
CATALOG_PAGES: Mapping[str, tuple[str, ...]] = {
    "grok-4.7": ("https://docs.x.ai/developers/grok-4-7",),
    "grok-4.6": ("https://docs.x.ai/developers/grok-4-6",),
    "grok-4.3": (
        "https://docs.x.ai/developers/models/grok-4.3-latest.md",
        "https://docs.x.ai/developers/migration/may-15-retirement",
        "https://docs.x.ai/developers/models/grok-3-fast.md",
    ),
    "grok-4.20-0309-reasoning": ("https://docs.x.ai/developers/models/grok-4.20-0309.md",),
}

#: The window given to a model ``GET /v1/language-models`` lists that convkit
#: does not know and that shares no family with a known model: the smallest
#: window of any Grok chat model (DESIGN section 1), so a prompt fitted to it
#: fits whatever the model's real window is. Override it once you know better.
UNKNOWN_MODEL_CONTEXT_WINDOW = 8192


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value <= 0:
        raise ValidationError(f"{type(_inst).__name__}.{attribute.name} must be positive, got {value!r}")


#: The most characters a model name may have: the store keys usage, calibration, summaries and
#: window starts by it in ``String(128)`` columns (refused here alike on every database).
MAX_MODEL_NAME = 128


def _model_name(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_MODEL_NAME or "\x00" in value:
        raise ValidationError(
            f"ModelSpec.name must be a non-empty string of at most {MAX_MODEL_NAME} characters without "
            f"NUL, got {value!r}"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"ModelSpec.name {value!r} holds a lone surrogate; pass valid text") from None


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value < 0:
        raise ValidationError(f"{type(_inst).__name__}.{attribute.name} must not be negative, got {value!r}")


def _modalities(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _aliases(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class PriceTier:
    """The rates of every token of a request whose prompt reaches ``min_prompt_tokens``.

    US dollars per million tokens, like :class:`ModelSpec`'s own prices. xAI
    bills a request whose prompt reaches the threshold at the tier's rates for
    all its tokens (input, cached input, output), not only the tokens past it.
    ``price_cached_in`` ``None``: cached tokens at the tier's input price;
    ``price_image_in`` ``None``: image tokens at the tier's input price.
    """

    min_prompt_tokens: int = attrs.field(validator=_positive)
    price_text_in: float = attrs.field(validator=_non_negative)
    price_completion: float = attrs.field(validator=_non_negative)
    price_cached_in: float | None = attrs.field(default=None, validator=_non_negative)
    price_image_in: float | None = attrs.field(default=None, validator=_non_negative)


def _tiers(value: Iterable[PriceTier]) -> tuple[PriceTier, ...]:
    tiers = tuple(value)
    for tier in tiers:
        if not isinstance(tier, PriceTier):
            raise ValidationError(f"ModelSpec.tiers holds PriceTier values, got {type(tier).__name__}")
    return tuple(sorted(tiers, key=lambda t: t.min_prompt_tokens))


def _distinct_thresholds(
    _inst: object, _attribute: attrs.Attribute[Any], value: tuple[PriceTier, ...]
) -> None:
    thresholds = [t.min_prompt_tokens for t in value]
    if len(set(thresholds)) != len(thresholds):
        raise ValidationError(f"ModelSpec.tiers has two tiers at the same threshold: {thresholds}")


@attrs.frozen
class _Rates:
    text: float
    image: float
    cached: float
    completion: float


@attrs.frozen
class ModelSpec:
    """One model: its limits, prices and formatting constants.

    Prices are US dollars per million tokens; ``price_image_in`` is ``None``
    for a model that takes no images; ``price_cached_in`` is the price of a
    prompt token served from xAI's prompt cache (``None``: not known, billed
    at ``price_text_in``). ``tiers`` are the rates of requests whose prompt
    reaches a threshold (:class:`PriceTier`). ``reasoning``: the model thinks
    before answering, and its reasoning tokens are billed as completion
    tokens. ``window_inferred``: convkit guessed the context window (a model
    a ``GET /v1/language-models`` body listed without one); override it once
    known. Fields after ``request_overhead`` are keyword-friendly additions.
    """

    name: str = attrs.field(validator=_model_name)
    context_window: int = attrs.field(validator=_positive)
    input_modalities: frozenset[str] = attrs.field(default=frozenset({"text"}), converter=_modalities)
    price_text_in: float = attrs.field(default=0.0, validator=_non_negative)
    price_image_in: float | None = attrs.field(default=None, validator=_non_negative)
    price_completion: float = attrs.field(default=0.0, validator=_non_negative)
    aliases: tuple[str, ...] = attrs.field(default=(), converter=_aliases)
    deprecated: bool = False
    message_overhead: int = attrs.field(default=DEFAULT_MESSAGE_OVERHEAD, validator=_non_negative)
    request_overhead: int = attrs.field(default=DEFAULT_REQUEST_OVERHEAD, validator=_non_negative)
    price_cached_in: float | None = attrs.field(default=None, validator=_non_negative)
    tiers: tuple[PriceTier, ...] = attrs.field(default=(), converter=_tiers, validator=_distinct_thresholds)
    reasoning: bool = False
    window_inferred: bool = False

    @property
    def supports_images(self) -> bool:
        """True when the model accepts image parts."""
        return "image" in self.input_modalities

    def tier_for(self, prompt_tokens: int) -> PriceTier | None:
        """The tier whose rates bill a request of ``prompt_tokens`` (``None``: the base prices)."""
        chosen = None
        for tier in self.tiers:
            if prompt_tokens >= tier.min_prompt_tokens:
                chosen = tier
        return chosen

    def _rates(self, prompt_tokens: int) -> _Rates:
        tier = self.tier_for(prompt_tokens)
        if tier is None:
            text, image, cached, completion = (
                self.price_text_in,
                self.price_image_in,
                self.price_cached_in,
                self.price_completion,
            )
        else:
            text, image, cached, completion = (
                tier.price_text_in,
                tier.price_image_in,
                tier.price_cached_in,
                tier.price_completion,
            )
        return _Rates(
            text=text,
            image=image if image is not None else text,
            cached=cached if cached is not None else text,
            completion=completion,
        )

    def estimate_cost(
        self,
        prompt_tokens: int,
        completion_tokens: int = 0,
        *,
        image_tokens: int = 0,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> float:
        """US dollars for a turn, as xAI bills it.

        ``image_tokens`` and ``cached_tokens`` are parts of ``prompt_tokens``
        (each capped at it): cached tokens are billed at the cached-input
        price, taken from the text part first, then from the image part; the
        rest of the text and images at their prices. ``reasoning_tokens``
        (reported apart from ``completion_tokens``) are billed as completion
        tokens. When the prompt reaches a tier's threshold, the tier's rates
        bill every token of the request.
        """
        counts = (prompt_tokens, completion_tokens, image_tokens, cached_tokens, reasoning_tokens)
        if min(counts) < 0:
            raise ValidationError("token counts for a cost estimate must not be negative")
        rates = self._rates(prompt_tokens)
        image = min(image_tokens, prompt_tokens)
        text = prompt_tokens - image
        cached = min(cached_tokens, prompt_tokens)
        cached_text = min(cached, text)
        cached_image = cached - cached_text
        return (
            (text - cached_text) * rates.text
            + (image - cached_image) * rates.image
            + cached * rates.cached
            + (completion_tokens + reasoning_tokens) * rates.completion
        ) / 1_000_000

    def cache_savings(self, prompt_tokens: int, cached_tokens: int, *, image_tokens: int = 0) -> float:
        """US dollars the prompt cache saved on a request: its cost uncached minus its cost as billed."""
        uncached = self.estimate_cost(prompt_tokens, image_tokens=image_tokens)
        billed = self.estimate_cost(prompt_tokens, image_tokens=image_tokens, cached_tokens=cached_tokens)
        return uncached - billed


def _long_prompt_tier(text_in: float, cached_in: float, completion: float) -> tuple[PriceTier, ...]:
    # xAI: "Requests whose prompt reaches 200k tokens are billed at the higher rate for all tokens"
    return (PriceTier(200_000, text_in, completion, price_cached_in=cached_in),)


#: xAI's slugs retired on 2026-05-15 (and the aliases its grok-4.3 page lists
#: for them): requests to them are served and billed as grok-4.3 since then.
_RETIRED_INTO_GROK_4_3 = (
    "grok-latest",
    "grok-3",
    "grok-3-latest",
    "grok-3-beta",
    "grok-3-fast",
    "grok-3-fast-latest",
    "grok-3-fast-beta",
    "grok-3-mini",
    "grok-3-mini-latest",
    "grok-3-mini-beta",
    "grok-3-mini-fast",
    "grok-3-mini-fast-latest",
    "grok-3-mini-fast-beta",
    "grok-3-mini-high",
    "grok-3-mini-high-beta",
    "grok-3-mini-fast-high",
    "grok-3-mini-fast-high-beta",
    "grok-code-fast-1",
    "grok-code-fast",
    "grok-code-fast-1-0825",
    "grok-4-0709",
    "grok-4",
    "grok-4-latest",
    "grok-4-fast-reasoning",
    "grok-4-fast",
    "grok-4-fast-reasoning-latest",
    "grok-4-fast-non-reasoning",
    "grok-4-fast-non-reasoning-latest",
    "grok-4-1-fast-reasoning",
    "grok-4-1-fast",
    "grok-4-1-fast-reasoning-latest",
    "grok-4-1-fast-non-reasoning",
    "grok-4-1-fast-non-reasoning-latest",
)

_BUILTIN = (
    # -- DESIGN section 1, exactly as specified --------------------------------------------
    ModelSpec(
        "grok-2-vision-1212",
        8192,
        {"text", "image"},
        2.00,
        2.00,
        10.00,
    ),
    ModelSpec(
        "grok-2-1212",
        131072,
        {"text"},
        2.00,
        None,
        10.00,
        aliases=("grok-2", "grok-2-latest"),
    ),
    ModelSpec(
        "grok-vision-beta",
        8192,
        {"text", "image"},
        5.00,
        5.00,
        15.00,
        deprecated=True,
    ),
    ModelSpec("grok-beta", 131072, {"text"}, 5.00, None, 15.00, deprecated=True),
    # -- xAI's models on CATALOG_DATE, from CATALOG_PAGES ------------------------------------
    ModelSpec(
        "grok-4.7",
        500_000,
        {"text", "image"},
        2.00,
        None,  # the page gives no image price: image tokens at the input price
        6.00,
        reasoning=True,
    ),
    ModelSpec("grok-4.6", 500_000, {"text", "image"}, 2.00, None, 6.00, reasoning=True),
    ModelSpec(
        "grok-4.3",
        1_000_000,
        {"text", "image"},
        1.25,
        None,
        2.50,
        aliases=("grok-4.3-latest", *_RETIRED_INTO_GROK_4_3),
        price_cached_in=0.20,
        tiers=_long_prompt_tier(2.50, 0.40, 5.00),
        reasoning=True,
    ),
    ModelSpec(
        "grok-4.20-0309-reasoning",
        1_000_000,
        {"text", "image"},
        1.25,
        None,
        2.50,
        aliases=(
            "grok-4.20-reasoning-latest",
            "grok-4.20",
            "grok-4.20-reasoning",
            "grok-4.20-0309",
            "grok-4.20-beta-0309-reasoning",
            "grok-4.20-beta",
            "grok-4.20-beta-0309",
            "grok-4.20-beta-latest",
            "grok-4.20-beta-latest-reasoning",
            "grok-4.20-beta-reasoning",
            "grok-4.20-experimental-beta-0304-reasoning",
            "grok-4.20-experimental-beta-0304",
            "grok-4.20-experimental-beta-reasoning-latest",
            "grok-4.20-experimental-beta-latest",
            "grok-4.20-reasoning-gv2",
        ),
        price_cached_in=0.20,
        tiers=_long_prompt_tier(2.50, 0.40, 5.00),
        reasoning=True,
    ),
)


def _index(specs: Mapping[str, ModelSpec]) -> dict[str, str]:
    """The alias map of ``specs``, checking every invariant; raises :class:`ValidationError`."""
    alias: dict[str, str] = {}
    folded: dict[str, str] = {}  # casefolded name or alias -> how it is spelt
    for name in specs:
        other = folded.setdefault(name.casefold(), name)
        if other != name:
            raise ValidationError(f"model {name!r} differs from model {other!r} only in case")
    for name, spec in specs.items():
        if spec.name != name:
            raise ValidationError(f"model {spec.name!r} is registered under another name, {name!r}")
        for a in spec.aliases:
            if a == name:
                raise ValidationError(f"model {name!r} cannot be an alias of itself")
            if a in specs:
                raise ValidationError(f"alias {a!r} of {name!r} already names {a!r}")
            owner = alias.get(a)
            if owner is not None and owner != name:
                raise ValidationError(f"alias {a!r} of {name!r} already names {owner!r}")
            other = folded.setdefault(a.casefold(), a)
            if other != a:
                raise ValidationError(f"alias {a!r} of {name!r} differs from {other!r} only in case")
            alias[a] = name
    return alias


class ModelRegistry:
    """A thread-safe map of model names and aliases to :class:`ModelSpec`.

    ``on_first_use`` (optional) runs once, under the registry's lock, before
    the first lookup or change; the default registry applies the user's
    cached ``GET /v1/language-models`` body with it (:mod:`convkit._catalog`).
    """

    def __init__(
        self,
        specs: Iterable[ModelSpec] = _BUILTIN,
        *,
        on_first_use: Callable[[ModelRegistry], None] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._specs: dict[str, ModelSpec] = {}
        self._alias: dict[str, str] = {}
        self._on_first_use: Callable[[ModelRegistry], None] | None = None
        for spec in specs:
            self.register(spec)
        self._on_first_use = on_first_use

    def __repr__(self) -> str:
        return f"ModelRegistry({sorted(self._specs)!r})"

    def _first_use(self) -> None:
        hook = self._on_first_use
        if hook is not None:
            with self._lock:
                hook, self._on_first_use = self._on_first_use, None
                if hook is not None:
                    hook(self)

    def _canonical(self, name: str) -> str | None:
        """The registered name ``name`` means (exactly, else ignoring case), or ``None``."""
        if name in self._specs:
            return name
        if name in self._alias:
            return self._alias[name]
        key = name.casefold()
        for known in self._specs:
            if known.casefold() == key:
                return known
        for a, owner in self._alias.items():
            if a.casefold() == key:
                return owner
        return None

    def get(self, name: str | ModelSpec) -> ModelSpec:
        """The spec for a name or alias, ignoring case; a :class:`ModelSpec` is returned as is."""
        if isinstance(name, ModelSpec):
            return name
        if not isinstance(name, str):
            raise ValidationError(f"a model is named by a string, got {type(name).__name__}")
        self._first_use()
        with self._lock:
            canonical = self._canonical(name)
            if canonical is None:
                raise UnknownModelError(name, [*self._specs, *self._alias])
            return self._specs[canonical]

    def __contains__(self, name: object) -> bool:
        self._first_use()
        with self._lock:
            return isinstance(name, str) and self._canonical(name) is not None

    def specs(self) -> list[ModelSpec]:
        """All specs, sorted by name."""
        self._first_use()
        with self._lock:
            return [self._specs[k] for k in sorted(self._specs)]

    def _swap(self, specs: dict[str, ModelSpec]) -> None:
        """Make ``specs`` the registry's state, or raise and change nothing (lock held)."""
        alias = _index(specs)
        self._specs.clear()
        self._specs.update(specs)
        self._alias.clear()
        self._alias.update(alias)

    def register(self, spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
        """Add ``spec``; with ``replace=True`` an existing model of that name is overwritten."""
        if not isinstance(spec, ModelSpec):
            raise ValidationError(f"register takes a ModelSpec, got {type(spec).__name__}")
        self._first_use()
        with self._lock:
            if spec.name in self._alias:
                raise ValidationError(
                    f"{spec.name!r} is already an alias of {self._alias[spec.name]!r}; "
                    "choose another name or override that model"
                )
            if spec.name in self._specs and not replace:
                raise ValidationError(
                    f"model {spec.name!r} is already registered; pass replace=True or use override_model()"
                )
            specs = dict(self._specs)
            specs[spec.name] = spec
            self._swap(specs)
            return spec

    def override(self, name: str, **changes: Any) -> ModelSpec:
        """Replace fields of a registered model (e.g. ``context_window=32768``)."""
        with self._lock:
            spec = self.get(name)
            try:
                new = attrs.evolve(spec, **changes)
            except TypeError as exc:
                raise ValidationError(f"cannot override {spec.name!r}: {exc}") from None
            return self.register(new, replace=True)

    def update_from_language_models(
        self,
        payload: Mapping[str, Any],
        *,
        context_windows: Mapping[str, int] | None = None,
    ) -> list[ModelSpec]:
        """Apply a ``GET /v1/language-models`` body: prices, aliases, modalities, new models.

        Prices there are US cents per 100 million tokens; they become dollars
        per million (a cached or image price of 0 reads as "not reported", as
        the endpoint fills them for models without one). What an entry leaves out stays as
        it is; the endpoint reports neither context windows nor price tiers,
        so a known model keeps its own. An alias the body gives to another
        model moves there. A model convkit does not know is registered: its
        window comes from ``context_windows`` (name -> tokens) when given,
        else from the known model of its family (the longest shared run of
        ``-``-separated name parts, at least two, smallest window on a tie),
        else :data:`UNKNOWN_MODEL_CONTEXT_WINDOW`; a guessed window is marked
        ``window_inferred``. Returns the updated and new specs, in the body's
        order.

        The new state is built apart and checked whole: a body that is
        malformed or would break an invariant raises :class:`ValidationError`
        and changes nothing.
        """
        if not isinstance(payload, Mapping):
            raise ValidationError("a language-models body is a JSON object with a 'models' list")
        models = payload.get("models")
        if not isinstance(models, list):
            raise ValidationError("a language-models body has a 'models' list")
        windows = dict(context_windows or {})
        for key, value in windows.items():
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValidationError(f"context_windows[{key!r}] must be a positive integer, got {value!r}")
        from ._language_models import apply_entry, check_body, new_spec, take_aliases

        ids = check_body(models)
        self._first_use()
        with self._lock:
            specs = dict(self._specs)
            known = dict(self._specs)  # families are judged against the models known before the body
            for entry in models:
                name = entry["id"]
                current = specs.get(name) or new_spec(name, known, windows)
                spec = apply_entry(current, entry)
                take_aliases(specs, spec)
                specs[name] = spec
            self._swap(specs)  # raises, changing nothing, when the whole is inconsistent
            return [self._specs[n] for n in ids]


def _apply_user_catalog(registry: ModelRegistry) -> None:
    from ._catalog import apply_user_cache

    apply_user_cache(registry)


#: The registry behind :func:`get_model`; on first use it applies the user's
#: cached ``GET /v1/language-models`` body, if any (:mod:`convkit._catalog`).
default_registry = ModelRegistry(on_first_use=_apply_user_catalog)


def get_model(name: str | ModelSpec, registry: ModelRegistry | None = None) -> ModelSpec:
    """Resolve a model name or alias, ignoring case (``"GROK-2"`` -> ``grok-2-1212``)."""
    return (registry or default_registry).get(name)


def register_model(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Register a new model in the default registry."""
    return default_registry.register(spec, replace=replace)


def override_model(name: str, **changes: Any) -> ModelSpec:
    """Change fields of a model in the default registry, e.g. its context window."""
    return default_registry.override(name, **changes)


def list_models() -> list[ModelSpec]:
    """Every model of the default registry, sorted by name."""
    return default_registry.specs()
