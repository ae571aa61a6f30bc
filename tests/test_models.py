"""The model registry: built-in table, aliases, overrides, registration, refresh, cost."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import convkit
from convkit import ModelRegistry, ModelSpec, UnknownModelError, ValidationError, get_model

BUILTIN = {
    # name: (window, modalities, $/M text in, $/M image in, $/M completion, aliases, deprecated)
    "grok-2-vision-1212": (8192, {"text", "image"}, 2.00, 2.00, 10.00, (), False),
    "grok-2-1212": (131072, {"text"}, 2.00, None, 10.00, ("grok-2", "grok-2-latest"), False),
    "grok-vision-beta": (8192, {"text", "image"}, 5.00, 5.00, 15.00, (), True),
    "grok-beta": (131072, {"text"}, 5.00, None, 15.00, (), True),
}


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_table(name: str) -> None:
    window, modalities, text_in, image_in, completion, aliases, deprecated = BUILTIN[name]
    spec = ModelRegistry().get(name)
    assert spec.name == name
    assert spec.context_window == window
    assert spec.input_modalities == modalities
    assert spec.supports_images == ("image" in modalities)
    assert (spec.price_text_in, spec.price_image_in, spec.price_completion) == (text_in, image_in, completion)
    assert spec.aliases == aliases
    assert spec.deprecated is deprecated
    assert spec.message_overhead == 5
    assert spec.request_overhead == 2
    assert get_model(name) == spec


def test_registry_holds_exactly_the_builtins() -> None:
    assert [s.name for s in ModelRegistry().specs()] == sorted(BUILTIN)
    assert {s.name for s in convkit.list_models()} >= set(BUILTIN)
    names = [s.name for s in convkit.list_models()]
    assert names == sorted(names)


@pytest.mark.parametrize("alias", ["grok-2", "grok-2-latest", "grok-2-1212"])
def test_aliases_resolve(alias: str) -> None:
    spec = get_model(alias)
    assert (spec.name, spec.context_window) == ("grok-2-1212", 131072)
    assert alias in ModelRegistry()


def test_a_spec_resolves_to_itself() -> None:
    spec = ModelSpec("anything", 10)
    assert get_model(spec) is spec


@given(st.text(max_size=30).filter(lambda s: s not in ModelRegistry()))
def test_unknown_model_lists_the_known_names(name: str) -> None:
    with pytest.raises(UnknownModelError) as info:
        ModelRegistry().get(name)
    err = info.value
    assert isinstance(err, LookupError)
    assert isinstance(err, convkit.ConvkitError)
    assert err.name == name
    assert set(err.known) == {*BUILTIN, "grok-2", "grok-2-latest"}
    assert "grok-2-vision-1212" in str(err)
    assert "register_model" in str(err)  # says how to fix it
    again = pickle.loads(pickle.dumps(err))
    assert (again.name, again.known, str(again)) == (err.name, err.known, str(err))


def test_models_are_named_by_strings() -> None:
    with pytest.raises(ValidationError, match="named by a string"):
        get_model(131072)  # type: ignore[arg-type]


def test_model_names_are_case_sensitive_and_never_guessed() -> None:
    for near_miss in ("Grok-2", "grok-2 ", "grok2", "grok-2-vision", "grok-3"):
        with pytest.raises(UnknownModelError):
            get_model(near_miss)


def test_override_in_a_registry() -> None:
    reg = ModelRegistry()
    new = reg.override("grok-2-vision-1212", context_window=32768)
    assert new.context_window == 32768
    assert reg.get("grok-2-vision-1212").context_window == 32768
    assert ModelRegistry().get("grok-2-vision-1212").context_window == 8192  # others untouched
    # overriding through an alias keeps the aliases
    reg.override("grok-2", message_overhead=7)
    assert reg.get("grok-2-latest").message_overhead == 7
    assert reg.get("grok-2-1212").aliases == ("grok-2", "grok-2-latest")
    with pytest.raises(ValidationError, match="cannot override 'grok-beta'"):
        reg.override("grok-beta", window=5)
    with pytest.raises(ValidationError, match="context_window must be positive"):
        reg.override("grok-beta", context_window=0)
    with pytest.raises(UnknownModelError):
        reg.override("grok-9", context_window=5)


def test_override_the_default_registry(default_registry_restored: ModelRegistry) -> None:
    convkit.override_model("grok-2-vision-1212", context_window=32768)
    assert get_model("grok-2-vision-1212").context_window == 32768
    result = convkit.fit([convkit.Message.user("hi")], model="grok-2-vision-1212", reserve=0)
    assert result.context_window == 32768
    assert result.budget == 32768  # the default estimate carries no margin


def test_register_a_new_model(default_registry_restored: ModelRegistry) -> None:
    spec = ModelSpec("grok-test", 1000, {"text"}, 1.0, None, 2.0, aliases=("gt",))
    assert convkit.register_model(spec) is spec
    assert get_model("gt") is spec
    result = convkit.fit([convkit.Message.user("hello")], model="gt")
    assert result.model == "grok-test"
    assert result.context_window == 1000


def test_registration_conflicts_are_refused() -> None:
    reg = ModelRegistry()
    with pytest.raises(ValidationError, match="already registered; pass replace=True"):
        reg.register(ModelSpec("grok-beta", 10))
    with pytest.raises(ValidationError, match="'grok-2' is already an alias of 'grok-2-1212'"):
        reg.register(ModelSpec("grok-2", 10))
    with pytest.raises(ValidationError, match="alias 'grok-2-latest' of 'x' already names 'grok-2-1212'"):
        reg.register(ModelSpec("x", 10, aliases=("grok-2-latest",)))
    with pytest.raises(ValidationError, match="alias 'grok-beta' of 'y'"):
        reg.register(ModelSpec("y", 10, aliases=("grok-beta",)))
    assert "x" not in reg
    assert "y" not in reg
    # replace=True swaps the spec and its aliases
    reg.register(ModelSpec("grok-2-1212", 5000, aliases=("g2",)), replace=True)
    assert reg.get("g2").context_window == 5000
    assert "grok-2" not in reg


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("context_window", 0, "context_window must be positive"),
        ("context_window", -5, "context_window must be positive"),
        ("price_text_in", -0.01, "price_text_in must not be negative"),
        ("price_image_in", -1.0, "price_image_in must not be negative"),
        ("message_overhead", -1, "message_overhead must not be negative"),
    ],
)
def test_spec_values_are_validated(field: str, value: Any, pattern: str) -> None:
    kwargs: dict[str, Any] = {"name": "m", "context_window": 100, field: value}
    with pytest.raises(ValidationError, match=pattern):
        ModelSpec(**kwargs)


def test_deprecated_flags() -> None:
    flags = {s.name: s.deprecated for s in ModelRegistry().specs()}
    assert flags == {
        "grok-2-vision-1212": False,
        "grok-2-1212": False,
        "grok-vision-beta": True,
        "grok-beta": True,
    }


# -- refresh from GET /v1/language-models (prices in US cents per 100M tokens) -------------------


def language_model(model_id: str, **over: Any) -> dict[str, Any]:
    """One entry shaped like the OpenAPI ``LanguageModel`` schema."""
    entry: dict[str, Any] = {
        "id": model_id,
        "fingerprint": "fp_0",
        "created": 1733961600,
        "object": "model",
        "owned_by": "xai",
        "version": "1.0.0",
        "input_modalities": ["text"],
        "output_modalities": ["text"],
        "prompt_text_token_price": 20000,
        "cached_prompt_text_token_price": 0,
        "prompt_image_token_price": 0,
        "completion_text_token_price": 100000,
        "search_price": 0,
        "aliases": [],
    }
    entry.update(over)
    return entry


def test_update_from_language_models_converts_cents_per_100m() -> None:
    reg = ModelRegistry()
    updated = reg.update_from_language_models(
        {
            "models": [
                language_model(
                    "grok-2-vision-1212",
                    input_modalities=["text", "image"],
                    prompt_text_token_price=25000,
                    prompt_image_token_price=30000,
                    completion_text_token_price=125000,
                    aliases=["grok-2-vision", "grok-2-vision-latest"],
                ),
                language_model("grok-2-1212", aliases=["grok-2", "grok-2-latest"]),
                language_model("grok-7-unknown"),  # no context window known: skipped
            ]
        }
    )
    assert [s.name for s in updated] == ["grok-2-vision-1212", "grok-2-1212"]
    vision = reg.get("grok-2-vision-latest")
    assert vision.name == "grok-2-vision-1212"
    # 25000 cents per 100M tokens = $250 per 100M = $2.50 per 1M
    assert (vision.price_text_in, vision.price_image_in, vision.price_completion) == (2.5, 3.0, 12.5)
    assert vision.context_window == 8192  # the endpoint does not report windows: kept
    text = reg.get("grok-2")
    assert (text.price_text_in, text.price_image_in, text.price_completion) == (2.0, None, 10.0)
    assert "grok-7-unknown" not in reg


def test_update_keeps_what_the_entry_does_not_say() -> None:
    reg = ModelRegistry()
    entry = {"id": "grok-2-vision-1212", "prompt_text_token_price": 30000}
    (spec,) = reg.update_from_language_models({"models": [entry]})
    assert spec.price_text_in == 3.0
    assert spec.price_completion == 10.0  # absent: unchanged
    assert spec.supports_images
    assert spec.price_image_in == 2.0  # absent modalities and image price: unchanged


def test_update_moves_an_alias_to_the_model_the_server_names() -> None:
    reg = ModelRegistry()
    reg.update_from_language_models({"models": [language_model("grok-beta", aliases=["grok-2-latest"])]})
    assert reg.get("grok-2-latest").name == "grok-beta"
    assert reg.get("grok-2-1212").aliases == ("grok-2",)
    assert reg.get("grok-2").name == "grok-2-1212"


@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        ({}, "'models' list"),
        ({"models": {"id": "x"}}, "'models' list"),
        ({"models": [{"name": "x"}]}, "string 'id'"),
        ({"models": ["grok-beta"]}, "string 'id'"),
    ],
)
def test_update_refuses_malformed_bodies(payload: dict[str, Any], pattern: str) -> None:
    reg = ModelRegistry()
    before = reg.specs()
    with pytest.raises(ValidationError, match=pattern):
        reg.update_from_language_models(payload)
    assert reg.specs() == before


# -- cost ----------------------------------------------------------------------------------------


def test_estimate_cost() -> None:
    vision = get_model("grok-2-vision-1212")
    assert vision.estimate_cost(1_000_000) == pytest.approx(2.0)
    assert vision.estimate_cost(1_000_000, 1_000_000) == pytest.approx(12.0)
    assert vision.estimate_cost(2_000_000, image_tokens=1_000_000) == pytest.approx(4.0)
    beta = get_model("grok-vision-beta")
    assert beta.estimate_cost(1_000_000, 1_000_000, image_tokens=500_000) == pytest.approx(5.0 + 15.0)
    text = get_model("grok-beta")
    assert text.estimate_cost(1000, 1000) == pytest.approx((1000 * 5 + 1000 * 15) / 1e6)
    # image tokens cannot exceed the prompt; a model without an image price uses the text price
    assert text.estimate_cost(10, image_tokens=99) == pytest.approx(10 * 5 / 1e6)
    for bad in ((-1, 0, 0), (0, -1, 0), (0, 0, -1)):
        with pytest.raises(ValidationError, match="must not be negative"):
            vision.estimate_cost(bad[0], bad[1], image_tokens=bad[2])


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9))
def test_cost_is_linear_and_non_negative(prompt: int, completion: int, images: int) -> None:
    spec = get_model("grok-2-vision-1212")
    cost = spec.estimate_cost(prompt, completion, image_tokens=images)
    assert cost >= 0
    assert cost == pytest.approx((prompt * 2.0 + completion * 10.0) / 1e6)  # equal text and image prices


def test_fit_result_cost_prices_images_apart() -> None:
    png = convkit.ImagePart.from_url("https://x/a.png")  # 1792 tokens
    result = convkit.fit([convkit.Message.user(["see", png])], model="grok-vision-beta")
    spec = get_model("grok-vision-beta")
    assert result.image_tokens == 1792
    assert result.estimate_cost(100) == pytest.approx(
        spec.estimate_cost(result.prompt_tokens, 100, image_tokens=1792)
    )


def test_cost_of_a_fit_against_an_unregistered_spec() -> None:
    spec = ModelSpec("private-model", 4000, {"text"}, price_text_in=3.0, price_completion=6.0)
    result = convkit.fit([convkit.Message.user("hello there")], model=spec)
    assert "private-model" not in convkit._models.default_registry
    assert result.estimate_cost(1000) == pytest.approx(spec.estimate_cost(result.prompt_tokens, 1000))
