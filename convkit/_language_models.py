"""Reading xAI's ``GET /v1/language-models`` body into model specs.

:meth:`convkit.ModelRegistry.update_from_language_models` checks a body whole
(:func:`check_body`), builds a spec for each model (a known one updated
by :func:`apply_entry`, an unknown one from :func:`new_spec`, its window from
``context_windows=``, else its family's, else a conservative default, marked
``window_inferred``) and hands aliases over (:func:`take_aliases`); the
registry swaps the result in only when all of it is valid.

Prices on the wire are in cents per 100 million tokens; a price of 0 means
"not reported".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._errors import ValidationError
from ._models import UNKNOWN_MODEL_CONTEXT_WINDOW, ModelSpec

__all__ = ["apply_entry", "check_body", "new_spec", "take_aliases"]


def _cents_per_100m(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value < 0:
        raise ValidationError(f"a language-models price must not be negative, got {value!r}")
    # cents per 100M tokens -> dollars per 1M tokens: / 100 (cents) / 100 (100M -> 1M)
    return float(value) / 10_000


def family_window(name: str, known: Mapping[str, ModelSpec]) -> int | None:
    parts = name.casefold().split("-")
    best, windows = 1, []  # a family shares at least two parts ("grok-4.3-...")
    for spec in known.values():
        other = spec.name.casefold().split("-")
        shared = 0
        for a, b in zip(parts, other, strict=False):
            if a != b:
                break
            shared += 1
        if shared > best:
            best, windows = shared, [spec.context_window]
        elif shared == best and shared > 1:
            windows.append(spec.context_window)
    return min(windows) if windows else None


def new_spec(name: str, known: Mapping[str, ModelSpec], windows: Mapping[str, int]) -> ModelSpec:
    if name in windows:
        return ModelSpec(name, windows[name])
    window = family_window(name, known)
    return ModelSpec(name, window or UNKNOWN_MODEL_CONTEXT_WINDOW, window_inferred=True)


def apply_entry(current: ModelSpec, entry: Mapping[str, Any]) -> ModelSpec:
    name = current.name
    changes: dict[str, Any] = {}
    for field, key in (
        ("price_text_in", "prompt_text_token_price"),
        ("price_completion", "completion_text_token_price"),
    ):
        price = _cents_per_100m(entry.get(key))
        if price is not None:
            changes[field] = price
    if "cached_prompt_text_token_price" in entry:
        cached = _cents_per_100m(entry.get("cached_prompt_text_token_price"))
        changes["price_cached_in"] = cached or None
    modalities = entry.get("input_modalities")
    if isinstance(modalities, list) and modalities:
        changes["input_modalities"] = frozenset(str(m) for m in modalities)
    # modalities or image price left out of the entry stay as they are
    supports_images = "image" in changes.get("input_modalities", current.input_modalities)
    image_price = _cents_per_100m(entry.get("prompt_image_token_price")) or None  # 0: not reported
    if not supports_images:
        changes["price_image_in"] = None
    elif image_price is not None:
        changes["price_image_in"] = image_price
    aliases = entry.get("aliases")
    if isinstance(aliases, list):
        changes["aliases"] = tuple(
            dict.fromkeys(a for a in aliases if isinstance(a, str) and a and a != name)
        )
    try:
        return attrs.evolve(current, **changes)
    except TypeError as exc:  # pragma: no cover - the fields above all exist
        raise ValidationError(f"cannot apply the language-models entry {name!r}: {exc}") from None


def check_body(models: list[Any]) -> list[str]:
    """The ids of a language-models list, refusing entries without one and a list at odds with itself."""
    ids: list[str] = []
    aliases: dict[str, str] = {}
    for i, entry in enumerate(models):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str) or not entry["id"]:
            raise ValidationError(f"each language model needs a string 'id' (entry {i})")
        if entry["id"] in ids:
            raise ValidationError(f"the language-models body lists {entry['id']!r} twice")
        ids.append(entry["id"])
        listed = entry.get("aliases")
        for a in listed if isinstance(listed, list) else ():
            if isinstance(a, str) and a != entry["id"]:
                owner = aliases.setdefault(a, entry["id"])
                if owner != entry["id"]:
                    raise ValidationError(
                        f"the language-models body gives alias {a!r} to {owner!r} and {entry['id']!r}"
                    )
    for a, owner in aliases.items():
        if a in ids:
            raise ValidationError(
                f"the language-models body lists {a!r} both as a model and as an alias of {owner!r}"
            )
    return ids


def take_aliases(specs: dict[str, ModelSpec], spec: ModelSpec) -> None:
    """What ``spec`` claims moves to it: the server decides.

    An alias (or the name) of ``spec`` that another model holds leaves that
    model; a registered model the body names as an alias of ``spec`` (the
    body does not list it as a model, :func:`check_body`) becomes that alias.
    """
    claimed = {spec.name, *spec.aliases}
    for owner, other in list(specs.items()):
        if owner == spec.name:
            continue
        if owner in spec.aliases:
            del specs[owner]
        elif claimed.intersection(other.aliases):
            specs[owner] = attrs.evolve(other, aliases=tuple(a for a in other.aliases if a not in claimed))
