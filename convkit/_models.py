"""The model registry: what convkit knows about each Grok model.

A :class:`ModelSpec` is a frozen value: name, aliases, context window, input
modalities, prices (US dollars per million tokens), a deprecation flag, and
the per-model formatting overhead used by the token counters. The built-in
table is DESIGN section 1 (the conservative 8192-token window for
grok-2-vision-1212). A :class:`ModelRegistry` maps names and aliases to specs;
the module-level default registry backs :func:`get_model`,
:func:`register_model` and :func:`override_model`.

Invariants: every alias resolves to exactly one spec; a spec's own name is
never an alias of another; lookups never guess (an unknown name raises
:class:`~convkit._errors.UnknownModelError`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ._errors import UnknownModelError, ValidationError

__all__ = [
    "DEFAULT_MESSAGE_OVERHEAD",
    "DEFAULT_REQUEST_OVERHEAD",
    "ModelRegistry",
    "ModelSpec",
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


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value <= 0:
        raise ValidationError(f"ModelSpec.{attribute.name} must be positive, got {value!r}")


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value < 0:
        raise ValidationError(f"ModelSpec.{attribute.name} must not be negative, got {value!r}")


def _modalities(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _aliases(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class ModelSpec:
    """One model: its limits, prices and formatting constants.

    Prices are US dollars per million tokens; ``price_image_in`` is ``None``
    for a model that takes no images.
    """

    name: str
    context_window: int = attrs.field(validator=_positive)
    input_modalities: frozenset[str] = attrs.field(default=frozenset({"text"}), converter=_modalities)
    price_text_in: float = attrs.field(default=0.0, validator=_non_negative)
    price_image_in: float | None = attrs.field(default=None, validator=_non_negative)
    price_completion: float = attrs.field(default=0.0, validator=_non_negative)
    aliases: tuple[str, ...] = attrs.field(default=(), converter=_aliases)
    deprecated: bool = False
    message_overhead: int = attrs.field(default=DEFAULT_MESSAGE_OVERHEAD, validator=_non_negative)
    request_overhead: int = attrs.field(default=DEFAULT_REQUEST_OVERHEAD, validator=_non_negative)

    @property
    def supports_images(self) -> bool:
        """True when the model accepts image parts."""
        return "image" in self.input_modalities

    def estimate_cost(
        self, prompt_tokens: int, completion_tokens: int = 0, *, image_tokens: int = 0
    ) -> float:
        """US dollars for a turn; ``image_tokens`` is the part of ``prompt_tokens`` spent on images."""
        if min(prompt_tokens, completion_tokens, image_tokens) < 0:
            raise ValidationError("token counts for a cost estimate must not be negative")
        image_tokens = min(image_tokens, prompt_tokens)
        image_price = self.price_image_in if self.price_image_in is not None else self.price_text_in
        return (
            (prompt_tokens - image_tokens) * self.price_text_in
            + image_tokens * image_price
            + completion_tokens * self.price_completion
        ) / 1_000_000


_BUILTIN = (
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
)


class ModelRegistry:
    """A thread-safe map of model names and aliases to :class:`ModelSpec`."""

    def __init__(self, specs: Iterable[ModelSpec] = _BUILTIN) -> None:
        self._lock = threading.RLock()
        self._specs: dict[str, ModelSpec] = {}
        self._alias: dict[str, str] = {}
        for spec in specs:
            self.register(spec)

    def __repr__(self) -> str:
        return f"ModelRegistry({sorted(self._specs)!r})"

    def get(self, name: str | ModelSpec) -> ModelSpec:
        """The spec for a name or alias; a :class:`ModelSpec` is returned as is."""
        if isinstance(name, ModelSpec):
            return name
        if not isinstance(name, str):
            raise ValidationError(f"a model is named by a string, got {type(name).__name__}")
        with self._lock:
            canonical = self._alias.get(name, name)
            spec = self._specs.get(canonical)
            if spec is None:
                raise UnknownModelError(name, [*self._specs, *self._alias])
            return spec

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return isinstance(name, str) and (name in self._specs or name in self._alias)

    def specs(self) -> list[ModelSpec]:
        """All specs, sorted by name."""
        with self._lock:
            return [self._specs[k] for k in sorted(self._specs)]

    def register(self, spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
        """Add ``spec``; with ``replace=True`` an existing model of that name is overwritten."""
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
            for alias in spec.aliases:
                owner = self._alias.get(alias)
                if alias in self._specs or (owner is not None and owner != spec.name):
                    raise ValidationError(
                        f"alias {alias!r} of {spec.name!r} already names {owner or alias!r}"
                    )
            old = self._specs.get(spec.name)
            if old is not None:
                for alias in old.aliases:
                    self._alias.pop(alias, None)
            self._specs[spec.name] = spec
            for alias in spec.aliases:
                self._alias[alias] = spec.name
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

    def update_from_language_models(self, payload: Mapping[str, Any]) -> list[ModelSpec]:
        """Refresh prices, aliases and modalities from a ``GET /v1/language-models`` body.

        Prices there are US cents per 100 million tokens; they become dollars
        per million. Models convkit does not know are registered with the
        context window of a known model of the same family when possible, or
        skipped (the endpoint does not report context windows).
        """
        models = payload.get("models")
        if not isinstance(models, list):
            raise ValidationError("a language-models body has a 'models' list")
        updated: list[ModelSpec] = []
        with self._lock:
            for entry in models:
                if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
                    raise ValidationError("each language model needs a string 'id'")
                changes: dict[str, Any] = {
                    "price_text_in": _cents_per_100m(entry.get("prompt_text_token_price")),
                    "price_completion": _cents_per_100m(entry.get("completion_text_token_price")),
                }
                modalities = entry.get("input_modalities")
                if isinstance(modalities, list) and modalities:
                    changes["input_modalities"] = frozenset(str(m) for m in modalities)
                name = entry["id"]
                current = self._specs.get(name)
                if current is None:
                    continue
                # modalities or image price left out of the entry stay as they are
                supports_images = "image" in changes.get("input_modalities", current.input_modalities)
                image_price = _cents_per_100m(entry.get("prompt_image_token_price"))
                if not supports_images:
                    changes["price_image_in"] = None
                elif image_price is not None:
                    changes["price_image_in"] = image_price
                aliases = entry.get("aliases")
                if isinstance(aliases, list):
                    changes["aliases"] = tuple(a for a in aliases if isinstance(a, str) and a != name)
                changes = {k: v for k, v in changes.items() if v is not None or k == "price_image_in"}
                spec = attrs.evolve(current, **changes)
                for alias in spec.aliases:  # an alias moving between models follows the server
                    owner = self._alias.get(alias)
                    if owner is not None and owner != name:
                        old = self._specs[owner]
                        self._specs[owner] = attrs.evolve(
                            old, aliases=tuple(a for a in old.aliases if a != alias)
                        )
                        del self._alias[alias]
                updated.append(self.register(spec, replace=True))
        return updated


def _cents_per_100m(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    # cents per 100M tokens -> dollars per 1M tokens: / 100 (cents) / 100 (100M -> 1M)
    return float(value) / 10_000


default_registry = ModelRegistry()


def get_model(name: str | ModelSpec, registry: ModelRegistry | None = None) -> ModelSpec:
    """Resolve a model name or alias (``"grok-2"`` -> ``grok-2-1212``)."""
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
