"""The model registry: built-in table, aliases, overrides, registration, refresh, cost."""

from __future__ import annotations

import pickle
import re
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convkit
from convkit import ModelRegistry, ModelSpec, UnknownModelError, ValidationError, get_model
from convkit import _models as convkit_models
from convkit._models import PriceTier

from ._integrations import readme_block

BUILTIN = {
    # the seed (DESIGN section 1), exactly as specified
    # name: (window, modalities, $/M text in, $/M image in, $/M completion, aliases, deprecated)
    "grok-2-vision-1212": (8192, {"text", "image"}, 2.00, 2.00, 10.00, (), False),
    "grok-2-1212": (131072, {"text"}, 2.00, None, 10.00, ("grok-2", "grok-2-latest"), False),
    "grok-vision-beta": (8192, {"text", "image"}, 5.00, 5.00, 15.00, (), True),
    "grok-beta": (131072, {"text"}, 5.00, None, 15.00, (), True),
}

# xAI's models on CATALOG_DATE, with the figures of their docs.x.ai pages
# name: (window, $/M in, $/M cached in, $/M out, (tier threshold, in, cached, out) or None, reasoning)
CURRENT = {
    "grok-4.7": (500_000, 2.00, None, 6.00, None, True),
    "grok-4.6": (500_000, 2.00, None, 6.00, None, True),
    "grok-4.3": (1_000_000, 1.25, 0.20, 2.50, (200_000, 2.50, 0.40, 5.00), True),
    "grok-4.20-0309-reasoning": (1_000_000, 1.25, 0.20, 2.50, (200_000, 2.50, 0.40, 5.00), True),
}


def registry_state(reg: ModelRegistry) -> tuple[list[ModelSpec], dict[str, str]]:
    """Every spec, and what every name and alias resolves to."""
    specs = reg.specs()
    names = {n: reg.get(n).name for s in specs for n in (s.name, *s.aliases)}
    return specs, names


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
    assert [s.name for s in ModelRegistry().specs()] == sorted({*BUILTIN, *CURRENT})
    assert {s.name for s in convkit.list_models()} >= set(BUILTIN)
    names = [s.name for s in convkit.list_models()]
    assert names == sorted(names)


@pytest.mark.parametrize("name", sorted(CURRENT))
def test_current_catalogue(name: str) -> None:
    window, text_in, cached_in, completion, tier, reasoning = CURRENT[name]
    spec = ModelRegistry().get(name)
    assert spec.context_window == window
    assert spec.input_modalities == {"text", "image"}
    assert (spec.price_text_in, spec.price_cached_in, spec.price_completion) == (
        text_in,
        cached_in,
        completion,
    )
    assert spec.price_image_in is None  # no xAI page gives one: image tokens at the input price
    assert spec.reasoning is reasoning
    assert not spec.deprecated
    assert not spec.window_inferred
    if tier is None:
        assert spec.tiers == ()
    else:
        (only,) = spec.tiers
        assert (
            only.min_prompt_tokens,
            only.price_text_in,
            only.price_cached_in,
            only.price_completion,
        ) == tier


def test_the_seed_models_carry_no_new_figures() -> None:
    for name in BUILTIN:
        spec = ModelRegistry().get(name)
        assert (spec.price_cached_in, spec.tiers, spec.reasoning, spec.window_inferred) == (
            None,
            (),
            False,
            False,
        )


def test_catalogue_is_dated_and_sourced() -> None:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", convkit_models.CATALOG_DATE)
    assert convkit_models.CATALOG_URL.startswith("https://docs.x.ai/")
    assert set(CURRENT) == set(convkit_models.CATALOG_PAGES)
    urls = [url for pages in convkit_models.CATALOG_PAGES.values() for url in pages]
    assert urls
    assert all(url.startswith("https://docs.x.ai/") for url in urls)


@pytest.mark.parametrize(
    "retired",
    ["grok-4", "grok-4-0709", "grok-3", "grok-code-fast-1", "grok-4-1-fast-reasoning", "grok-3-mini"],
)
def test_models_xai_retired_resolve_to_what_serves_them(retired: str) -> None:
    # docs.x.ai/developers/migration/may-15-retirement: served and billed as grok-4.3 since 2026-05-15
    spec = get_model(retired)
    assert (spec.name, spec.context_window, spec.price_text_in) == ("grok-4.3", 1_000_000, 1.25)


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
    assert set(err.known) == {n for s in ModelRegistry().specs() for n in (s.name, *s.aliases)}
    assert {*BUILTIN, *CURRENT, "grok-2", "grok-2-latest"} <= set(err.known)
    assert "grok-2-vision-1212" in str(err)
    assert "register_model" in str(err)  # says how to fix it
    again = pickle.loads(pickle.dumps(err))
    assert (again.name, again.known, str(again)) == (err.name, err.known, str(err))


def test_models_are_named_by_strings() -> None:
    with pytest.raises(ValidationError, match="named by a string"):
        get_model(131072)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("GROK-2", "grok-2-1212"),
        ("Grok-2-Latest", "grok-2-1212"),
        ("GROK-4.3", "grok-4.3"),
        ("Grok-Beta", "grok-beta"),
    ],
)
def test_names_resolve_ignoring_case(name: str, canonical: str) -> None:
    assert get_model(name).name == canonical
    assert name in ModelRegistry()
    assert ModelRegistry().get(name) == ModelRegistry().get(canonical)


def test_model_names_are_never_guessed() -> None:
    for near_miss in ("grok-2 ", "grok2", "grok-2-vision", "grok-5", "grok-4.8", "grok_2"):
        with pytest.raises(UnknownModelError):
            get_model(near_miss)
        assert near_miss not in ModelRegistry()


def test_names_are_unique_ignoring_case() -> None:
    reg = ModelRegistry()
    before = registry_state(reg)
    with pytest.raises(ValidationError, match="only in case"):
        reg.register(ModelSpec("GROK-BETA", 10))
    with pytest.raises(ValidationError, match="only in case"):
        reg.register(ModelSpec("mine", 10, aliases=("Grok-2",)))
    assert registry_state(reg) == before


def test_spec_positional_order_is_unchanged_and_new_fields_default() -> None:
    spec = ModelSpec("m", 100, {"text", "image"}, 1.0, 2.0, 3.0, ("a",), True, 6, 3)
    assert (spec.price_text_in, spec.price_image_in, spec.price_completion) == (1.0, 2.0, 3.0)
    assert (spec.aliases, spec.deprecated, spec.message_overhead, spec.request_overhead) == (
        ("a",),
        True,
        6,
        3,
    )
    assert (spec.price_cached_in, spec.tiers, spec.reasoning, spec.window_inferred) == (
        None,
        (),
        False,
        False,
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        spec.price_cached_in = 1.0  # type: ignore[misc]


def test_price_tiers_are_validated_and_sorted() -> None:
    high, low = PriceTier(300, 3.0, 9.0), PriceTier(100, 2.0, 6.0)
    spec = ModelSpec("m", 1000, tiers=[high, low])
    assert spec.tiers == (low, high)
    assert [spec.tier_for(n) for n in (0, 99, 100, 299, 300, 10**6)] == [None, None, low, low, high, high]
    with pytest.raises(ValidationError, match="same threshold"):
        ModelSpec("m", 1000, tiers=(low, PriceTier(100, 1.0, 1.0)))
    with pytest.raises(ValidationError, match=r"PriceTier\.min_prompt_tokens must be positive"):
        PriceTier(0, 1.0, 1.0)
    with pytest.raises(ValidationError, match=r"PriceTier\.price_cached_in must not be negative"):
        PriceTier(10, 1.0, 1.0, price_cached_in=-1.0)
    with pytest.raises(ValidationError, match="holds PriceTier values"):
        ModelSpec("m", 1000, tiers=[(100, 1.0, 1.0)])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="price_cached_in must not be negative"):
        ModelSpec("m", 1000, price_cached_in=-0.5)


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
        **dict.fromkeys(CURRENT, False),
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
                language_model("grok-7-unknown"),  # no context window known: registered, conservatively
            ]
        }
    )
    assert [s.name for s in updated] == ["grok-2-vision-1212", "grok-2-1212", "grok-7-unknown"]
    vision = reg.get("grok-2-vision-latest")
    assert vision.name == "grok-2-vision-1212"
    # 25000 cents per 100M tokens = $250 per 100M = $2.50 per 1M
    assert (vision.price_text_in, vision.price_image_in, vision.price_completion) == (2.5, 3.0, 12.5)
    assert vision.context_window == 8192  # the endpoint does not report windows: kept
    text = reg.get("grok-2")
    assert (text.price_text_in, text.price_image_in, text.price_completion) == (2.0, None, 10.0)
    unknown = reg.get("grok-7-unknown")
    assert (unknown.context_window, unknown.window_inferred) == (
        convkit_models.UNKNOWN_MODEL_CONTEXT_WINDOW,
        True,
    )
    assert (unknown.price_text_in, unknown.price_completion, unknown.price_cached_in) == (2.0, 10.0, None)


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


def test_cached_tokens_are_billed_at_the_cached_price() -> None:
    # docs.x.ai grok-4.3: $1.25 in, $0.20 cached in, $2.50 out per 1M below 200k prompt tokens
    spec = get_model("grok-4.3")
    cost = spec.estimate_cost(100_000, 1_000, cached_tokens=60_000)
    assert cost == pytest.approx((40_000 * 1.25 + 60_000 * 0.20 + 1_000 * 2.50) / 1e6)
    assert cost < spec.estimate_cost(100_000, 1_000)
    # cached tokens cannot exceed the prompt
    assert spec.estimate_cost(1000, cached_tokens=5000) == pytest.approx(1000 * 0.20 / 1e6)
    # a model with no known cached price bills cached tokens at the input price (grok-4.7: $2.00)
    g47 = get_model("grok-4.7")
    assert g47.estimate_cost(100_000, cached_tokens=60_000) == pytest.approx(100_000 * 2.00 / 1e6)


def test_reasoning_tokens_are_billed_as_completion_tokens() -> None:
    spec = get_model("grok-4.3")
    assert spec.estimate_cost(1000, 200, reasoning_tokens=800) == pytest.approx(
        (1000 * 1.25 + 1000 * 2.50) / 1e6
    )
    assert spec.estimate_cost(1000, 200, reasoning_tokens=800) == spec.estimate_cost(1000, 1000)


@pytest.mark.parametrize("name", ["grok-4.3", "grok-4.20-0309-reasoning"])
def test_a_prompt_reaching_200k_bills_every_token_at_the_tier(name: str) -> None:
    # docs.x.ai: "Requests whose prompt reaches 200k tokens are billed at the higher rate for all tokens"
    spec = get_model(name)
    below = spec.estimate_cost(199_999, 1_000, cached_tokens=150_000, reasoning_tokens=500)
    assert below == pytest.approx((49_999 * 1.25 + 150_000 * 0.20 + 1_500 * 2.50) / 1e6)
    at = spec.estimate_cost(200_000, 1_000, cached_tokens=150_000, reasoning_tokens=500)
    assert at == pytest.approx((50_000 * 2.50 + 150_000 * 0.40 + 1_500 * 5.00) / 1e6)
    assert spec.estimate_cost(300_000) == pytest.approx(300_000 * 2.50 / 1e6)
    assert spec.estimate_cost(200_000) == pytest.approx(2 * spec.estimate_cost(199_999) * 200_000 / 199_999)


def test_cached_tokens_come_from_the_text_part_first() -> None:
    spec = ModelSpec("m", 10**6, {"text", "image"}, 1.0, 4.0, 0.0, price_cached_in=0.5)
    # 600 text + 400 image tokens; 700 cached: all 600 text, then 100 of the image tokens
    assert spec.estimate_cost(1000, image_tokens=400, cached_tokens=700) == pytest.approx(
        (300 * 4.0 + 700 * 0.5) / 1e6
    )
    assert spec.estimate_cost(1000, image_tokens=400, cached_tokens=100) == pytest.approx(
        (500 * 1.0 + 400 * 4.0 + 100 * 0.5) / 1e6
    )


def test_cache_savings() -> None:
    spec = get_model("grok-4.3")
    assert spec.cache_savings(100_000, 60_000) == pytest.approx(60_000 * (1.25 - 0.20) / 1e6)
    assert spec.cache_savings(100_000, 0) == 0
    assert get_model("grok-2-1212").cache_savings(100_000, 60_000) == 0  # no cached price known


@given(st.integers(0, 10**7), st.integers(0, 10**6), st.integers(0, 10**7), st.integers(0, 10**6))
def test_caching_never_costs_more_and_tiers_only_raise_the_bill(
    prompt: int, completion: int, cached: int, reasoning: int
) -> None:
    spec = get_model("grok-4.3")
    with_cache = spec.estimate_cost(prompt, completion, cached_tokens=cached, reasoning_tokens=reasoning)
    without = spec.estimate_cost(prompt, completion + reasoning)
    assert 0 <= with_cache <= without + 1e-12
    untiered = attrs.evolve(spec, tiers=())
    assert (
        with_cache
        >= untiered.estimate_cost(prompt, completion, cached_tokens=cached, reasoning_tokens=reasoning)
        - 1e-12
    )


def test_estimate_cost_refuses_negative_counts() -> None:
    spec = get_model("grok-4.3")
    for kwargs in ({"cached_tokens": -1}, {"reasoning_tokens": -1}):
        with pytest.raises(ValidationError, match="must not be negative"):
            spec.estimate_cost(10, 10, **kwargs)


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


# -- unknown models, refused bodies ----------------------------------------------------------------


def test_update_registers_models_it_does_not_know() -> None:
    reg = ModelRegistry()
    updated = reg.update_from_language_models(
        {
            "models": [
                language_model(
                    "grok-4.3-mini",  # family grok-4.3: its window, marked as inferred
                    input_modalities=["text", "image"],
                    prompt_text_token_price=5000,
                    cached_prompt_text_token_price=1250,
                    prompt_image_token_price=5000,
                    completion_text_token_price=10000,
                    aliases=["grok-4.3-mini-latest"],
                ),
                language_model(
                    "grok-4.20-0309-non-reasoning", prompt_text_token_price=12500
                ),  # family grok-4.20-0309
                language_model("grok-build-0.1"),  # no family: the conservative window
                language_model("grok-9", aliases=["grok-9-latest"]),  # told by the caller
            ]
        },
        context_windows={"grok-9": 2_000_000},
    )
    assert [s.name for s in updated] == [
        "grok-4.3-mini",
        "grok-4.20-0309-non-reasoning",
        "grok-build-0.1",
        "grok-9",
    ]
    mini = reg.get("GROK-4.3-MINI-LATEST")
    assert mini.name == "grok-4.3-mini"
    assert (mini.context_window, mini.window_inferred) == (1_000_000, True)
    assert mini.input_modalities == {"text", "image"}
    # cents per 100M tokens -> dollars per 1M: 5000 -> 0.50, 1250 -> 0.125, 10000 -> 1.00
    assert (mini.price_text_in, mini.price_cached_in, mini.price_image_in, mini.price_completion) == (
        0.5,
        0.125,
        0.5,
        1.0,
    )
    assert (mini.tiers, mini.reasoning, mini.deprecated) == ((), False, False)  # not reported: not invented
    assert reg.get("grok-4.20-0309-non-reasoning").context_window == 1_000_000
    build = reg.get("grok-build-0.1")
    assert (build.context_window, build.window_inferred) == (
        convkit_models.UNKNOWN_MODEL_CONTEXT_WINDOW,
        True,
    )
    nine = reg.get("grok-9-latest")
    assert (nine.name, nine.context_window, nine.window_inferred) == ("grok-9", 2_000_000, False)
    # the known models keep what the endpoint does not report
    assert reg.get("grok-4.3") == ModelRegistry().get("grok-4.3")


def test_update_keeps_windows_and_tiers_and_reads_the_cached_price() -> None:
    reg = ModelRegistry()
    entry = language_model(
        "grok-4.3",
        input_modalities=["text", "image"],
        prompt_text_token_price=15000,
        cached_prompt_text_token_price=3000,
        prompt_image_token_price=0,  # 0: not reported, as the endpoint fills it
    )
    (spec,) = reg.update_from_language_models({"models": [entry]})
    assert (spec.price_text_in, spec.price_cached_in, spec.price_completion) == (1.5, 0.3, 10.0)
    assert spec.price_image_in is None
    assert spec.context_window == 1_000_000
    assert spec.tiers == ModelRegistry().get("grok-4.3").tiers
    assert spec.aliases == ()  # the server lists none: the server decides
    assert "grok-4" not in reg
    # a cached price of 0 reads as "not reported" too: cached tokens at the input price
    (spec,) = reg.update_from_language_models({"models": [{**entry, "cached_prompt_text_token_price": 0}]})
    assert spec.price_cached_in is None


def test_a_registered_model_the_server_names_as_an_alias_becomes_that_alias() -> None:
    reg = ModelRegistry()
    reg.update_from_language_models({"models": [language_model("grok-4.3", aliases=["grok-beta"])]})
    assert reg.get("grok-beta").name == "grok-4.3"
    assert "grok-beta" not in [s.name for s in reg.specs()]


def test_a_refused_body_changes_nothing() -> None:
    reg = ModelRegistry()
    before = registry_state(reg)
    moves_an_alias = language_model("grok-beta", aliases=["grok-2-latest"], prompt_text_token_price=1)
    new_model = language_model("grok-new", aliases=["grok-new-latest"])
    bad_bodies = [
        {"models": [moves_an_alias, new_model, {"name": "no id"}]},
        {
            "models": [
                moves_an_alias,
                new_model,
                language_model("grok-2-1212", completion_text_token_price=-5),
            ]
        },
        {"models": [moves_an_alias, language_model("grok-2-1212", aliases=["grok-2-latest"])]},  # alias twice
        {"models": [moves_an_alias, new_model, language_model("grok-new")]},  # a model twice
        {"models": [moves_an_alias, language_model("grok-x", aliases=["grok-beta"])]},  # listed and an alias
        {"models": [new_model, language_model("grok-other", aliases=["Grok-New"])]},  # differs only in case
    ]
    for body in bad_bodies:
        with pytest.raises(ValidationError):
            reg.update_from_language_models(body)
        assert registry_state(reg) == before, body
        assert reg.get("grok-2-latest").name == "grok-2-1212"  # the alias still resolves where it did
        assert "grok-new" not in reg
    with pytest.raises(ValidationError, match="positive integer"):
        reg.update_from_language_models({"models": [new_model]}, context_windows={"grok-new": 0})
    assert registry_state(reg) == before


_IDS = ["grok-2-1212", "grok-beta", "grok-4.3", "grok-new", "GROK-NEW", "grok-4.3-x"]
_ALIASES = ["grok-2", "grok-2-latest", "grok-4", "grok-beta", "grok-new", "alias-a", "ALIAS-A", "grok-2-1212"]


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "id": st.sampled_from(_IDS),
                "aliases": st.lists(st.sampled_from(_ALIASES), max_size=3),
                "prompt_text_token_price": st.integers(-1, 50_000),
            }
        ),
        max_size=4,
    )
)
def test_an_update_is_applied_whole_or_not_at_all(entries: list[dict[str, Any]]) -> None:
    reg = ModelRegistry()
    before = registry_state(reg)
    try:
        updated = reg.update_from_language_models({"models": entries})
    except ValidationError:
        assert registry_state(reg) == before
        return
    assert [s.name for s in updated] == [e["id"] for e in entries]
    _, names = registry_state(reg)  # every name and alias resolves
    for entry in entries:
        spec = reg.get(entry["id"])
        assert spec.name == entry["id"]
        assert spec.price_text_in == entry["prompt_text_token_price"] / 10_000
        for alias in entry["aliases"]:
            if alias != entry["id"]:
                assert names[alias] == entry["id"]
    folded = [n.casefold() for n in names]
    assert len(folded) == len(set(folded))


# -- the default registry's first use --------------------------------------------------------------


def test_the_first_use_hook_runs_once_before_any_lookup() -> None:
    calls: list[ModelRegistry] = []

    def hook(reg: ModelRegistry) -> None:
        calls.append(reg)
        reg.update_from_language_models({"models": [language_model("grok-hooked")]})

    reg = ModelRegistry(on_first_use=hook)
    assert calls == []
    assert reg.get("grok-hooked").name == "grok-hooked"
    assert "grok-2" in reg
    reg.specs()
    assert calls == [reg]


def test_readme_models_example(default_registry_restored: ModelRegistry) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(readme_block("models"), "README.md:models", "exec"), namespace)
    assert get_model("grok-2-vision-1212").context_window == 32768
    assert get_model("my-grok").context_window == 65536


# -- a completion's recorded cost ------------------------------------------------------------------


def chat_response(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "r1",
        "model": "grok-4.3",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": usage,
    }


USAGE = {
    "prompt_tokens": 210_000,
    "completion_tokens": 300,
    "prompt_tokens_details": {"text_tokens": 210_000, "image_tokens": 0, "cached_tokens": 180_000},
    "completion_tokens_details": {"reasoning_tokens": 700},
}
# grok-4.3 at or above 200k prompt tokens: $2.50 in, $0.40 cached in, $5.00 out (reasoning included)
USAGE_COST = (30_000 * 2.50 + 180_000 * 0.40 + 1_000 * 5.00) / 1e6


def test_a_completion_costs_what_xai_bills() -> None:
    from convkit.xai._protocol import parse_completion

    completion = parse_completion(chat_response(USAGE), get_model("grok-4.3"))
    assert completion.usage.cached_tokens == 180_000
    assert completion.cost_usd == pytest.approx(USAGE_COST)


def test_a_streamed_completion_costs_what_xai_bills() -> None:
    import json

    from convkit.xai._protocol import StreamAssembler

    assembler = StreamAssembler(get_model("grok-4.3"))
    chunk = {"id": "r1", "model": "grok-4.3", "choices": [{"index": 0, "delta": {"content": "hi"}}]}
    for line in (
        f"data: {json.dumps(chunk)}",
        f"data: {json.dumps({'choices': [], 'usage': USAGE})}",
        "data: [DONE]",
    ):
        list(assembler.feed_line(line))
    assert assembler.result().cost_usd == pytest.approx(USAGE_COST)


def test_readers_never_see_a_half_applied_update() -> None:
    import threading

    reg = ModelRegistry()
    refused = {"models": [language_model("grok-beta", aliases=["grok-2-latest"]), {"id": 7}]}
    accepted = {"models": [language_model("grok-2-1212", aliases=["grok-2", "grok-2-latest"])]}
    stop = threading.Event()
    seen: list[str] = []
    failures: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                seen.append(reg.get("grok-2-latest").name)
        except BaseException as exc:  # pragma: no cover - the failure this test looks for
            failures.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
    try:
        for _ in range(200):
            with pytest.raises(ValidationError):
                reg.update_from_language_models(refused)
            reg.update_from_language_models(accepted)
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert failures == []
    assert seen
    assert set(seen) == {"grok-2-1212"}
