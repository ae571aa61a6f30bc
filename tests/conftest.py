"""Shared fixtures: hypothesis profiles, counters, and a small registered model.

Hypothesis profiles: ``ci`` (300 examples a property, no deadline, failing
examples printed as reproduction blobs) and ``dev`` (a quick 30). The
profile comes from ``HYPOTHESIS_PROFILE``; otherwise ``ci`` when ``CI=true``
and ``dev`` elsewhere.

Counters: a byte-level BPE tokenizer trained in memory from a few sentences
(never downloaded), and the shared Grok-1 tokenizer from
``../shared/tokenizers/grok-1.tokenizer.json`` (or
``$CONVKIT_SHARED_DIR/tokenizers/grok-1.tokenizer.json``), skipped with a
reason when that file is absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import convkit
from convkit import models as convkit_models

settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=30,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
_default_profile = "ci" if os.environ.get("CI", "").lower() == "true" else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or _default_profile)

REPO_ROOT = Path(__file__).resolve().parents[1]

#: The registered custom model the fit properties also run on: small window,
#: zero overheads (so nothing hides behind the per-message constant), images.
CUSTOM_MODEL = convkit.ModelSpec(
    "convkit-test-small",
    4000,
    {"text", "image"},
    1.0,
    1.0,
    3.0,
    aliases=("test-small",),
    message_overhead=0,
    request_overhead=0,
)

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! How is the weather in Paris today?",
    "def add(x, y):\n    return x + y\n",
    '{"city": "Paris", "unit": "celsius", "days": 3}',
    "東京は日本の首都です。天気はどうですか",
    "Привет, мир! Как дела?",
    "naïve café résumé — emoji 😀 🇫🇷",
    "You are a helpful assistant. Use the tools to look things up.",
]


def shared_dir() -> Path:
    """Where the shared tokenizers live: $CONVKIT_SHARED_DIR, else ../shared beside the repo."""
    env = os.environ.get("CONVKIT_SHARED_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared"


GROK_TOKENIZER = shared_dir() / "tokenizers" / "grok-1.tokenizer.json"


def build_tiny_tokenizer(vocab_size: int = 400, corpus: list[str] | None = None) -> Any:
    """A byte-level BPE trained in memory (deterministic, covers every unicode string)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((corpus or _CORPUS) * 3, trainer)
    return tok


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Any:
    """The raw in-memory ``tokenizers.Tokenizer``."""
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_counter(tiny_tokenizer: Any) -> convkit.HFTokenCounter:
    """An exact HFTokenCounter over the in-memory byte-level BPE."""
    return convkit.HFTokenCounter(tiny_tokenizer, name="tiny-bpe")


@pytest.fixture(scope="session")
def grok_counter() -> convkit.HFTokenCounter:
    """HFTokenCounter over the shared Grok-1 tokenizer; skips when the file is absent."""
    if not GROK_TOKENIZER.is_file():
        pytest.skip(
            f"shared Grok-1 tokenizer not found at {GROK_TOKENIZER} "
            "(set CONVKIT_SHARED_DIR to the folder holding tokenizers/grok-1.tokenizer.json)"
        )
    return convkit.HFTokenCounter.from_file(GROK_TOKENIZER)


@pytest.fixture(scope="session")
def custom_model() -> Iterator[convkit.ModelSpec]:
    """CUSTOM_MODEL registered in the default registry for the session, then removed."""
    reg = convkit_models.default_registry
    with reg._lock:
        saved = (dict(reg._specs), dict(reg._alias))
    convkit.register_model(CUSTOM_MODEL, replace=True)
    yield CUSTOM_MODEL
    with reg._lock:
        reg._specs.clear()
        reg._specs.update(saved[0])
        reg._alias.clear()
        reg._alias.update(saved[1])
