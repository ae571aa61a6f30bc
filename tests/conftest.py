"""Shared fixtures: hypothesis profiles, counters, a small registered model, databases, the stand-in.

Hypothesis profiles: ``ci`` (300 examples a property, no deadline, failing
examples printed as reproduction blobs) and ``dev`` (a quick 30). The
profile comes from ``HYPOTHESIS_PROFILE``; otherwise ``ci`` when ``CI=true``
and ``dev`` elsewhere.

Counters: a byte-level BPE tokenizer trained in memory from a few sentences
(never downloaded), and the shared Grok-1 tokenizer from
``../shared/tokenizers/grok-1.tokenizer.json`` (or
``$CONVKIT_SHARED_DIR/tokenizers/grok-1.tokenizer.json``), skipped with a
reason when that file is absent.

Models: ``custom_model`` registers ``CUSTOM_MODEL`` for the session;
``default_registry_restored`` puts the default registry back as it was
after a test that changes it.

Databases (helpers in ``_store_support.py`` and ``_pg.py``): ``backend``
(``sqlite``, ``postgresql``) and ``flavour`` (``sync``, ``async``) parametrize
every test that asks for them; ``db_url`` is an empty database of
``backend`` at the schema's head for one test: a new SQLite file (a copy of
a template migrated once per run), or the module's PostgreSQL database
(``pg_module_url``: created and migrated once per module, dropped after it)
with every convkit table emptied; ``open_store`` opens
Stores or AsyncStores of ``flavour`` on it and closes them afterwards;
``sqlite_store`` is one Store on an SQLite file for a whole module (for
property tests whose examples each make a conversation of their own).

The xAI stand-in: ``xai`` is an :class:`~convkit.testing.XAIStandIn` for one
test. A module sets its arguments with ``pytestmark =
pytest.mark.standin(api_key=KEY, ...)`` (``check_requests=False`` skips
:func:`tests._xai_support.check_requests`, for tests that send bad requests
on purpose); at the end it must have raised nothing internally.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import convkit
from convkit import _models as convkit_models
from convkit.testing import XAIStandIn

from . import _store_support as sup
from . import _xai_support as xs

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


@contextmanager
def _registry_restored() -> Iterator[convkit_models.ModelRegistry]:
    """The default registry, put back as it was (models and aliases) afterwards."""
    reg = convkit_models.default_registry
    with reg._lock:
        saved = (dict(reg._specs), dict(reg._alias))
    try:
        yield reg
    finally:
        with reg._lock:
            reg._specs.clear()
            reg._specs.update(saved[0])
            reg._alias.clear()
            reg._alias.update(saved[1])


@pytest.fixture(scope="session")
def custom_model() -> Iterator[convkit.ModelSpec]:
    """CUSTOM_MODEL registered in the default registry for the session, then removed."""
    with _registry_restored():
        convkit.register_model(CUSTOM_MODEL, replace=True)
        yield CUSTOM_MODEL


@pytest.fixture
def default_registry_restored() -> Iterator[convkit_models.ModelRegistry]:
    """The default registry, put back as it was after the test."""
    with _registry_restored() as reg:
        yield reg


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "standin(**kwargs): XAIStandIn arguments for the xai fixture "
        "(check_requests=False: do not check the requests it received)",
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    sup.close_run_databases()


# A developer's refreshed model list (``convkit models --refresh``) must not change the
# registry the tests see: the cache file is looked up in an empty folder of this run.
os.environ["CONVKIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="convkit-test-cache-")


# -- databases -------------------------------------------------------------------------------


@pytest.fixture(params=sup.BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=sup.FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pg_module_url() -> Iterator[str]:
    """One PostgreSQL database per module, at the schema's head (see ``db_url``)."""
    with sup.pg_database() as url:
        yield url


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database of ``backend`` at head: a new SQLite file, or ``pg_module_url`` emptied."""
    return sup.database(backend, tmp_path, request)


@pytest.fixture
def open_store(db_url: str, flavour: str, backend: str) -> Iterator[sup.StoreOpener]:
    opener = sup.StoreOpener(db_url, flavour, backend)
    try:
        yield opener
    finally:
        opener.close()


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[convkit.Store]:
    """One Store on a new SQLite file, shared by a module's tests."""
    store = convkit.Store(f"sqlite:///{tmp_path_factory.mktemp('store') / 'shared.db'}")
    yield store
    store.close()


# -- the xAI stand-in ---------------------------------------------------------------------------


@pytest.fixture
def xai(request: pytest.FixtureRequest) -> Iterator[XAIStandIn]:
    marker = request.node.get_closest_marker("standin")
    kw = dict(marker.kwargs) if marker is not None else {}
    check = kw.pop("check_requests", True)
    with XAIStandIn(**kw) as server:
        yield server
        assert server.errors == [], "the stand-in raised internally"
        if check:
            xs.check_requests(server)
