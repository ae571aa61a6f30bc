"""The user's cached model list (convkit/_catalog.py): where it lives, how it is written, read and applied."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from convkit import ConvkitError, ModelRegistry, ValidationError
from convkit import _catalog as catalog

BODY: dict[str, Any] = {
    "models": [
        {
            "id": "grok-4.3",
            "input_modalities": ["text", "image"],
            "prompt_text_token_price": 10000,
            "cached_prompt_text_token_price": 2500,
            "completion_text_token_price": 20000,
            "aliases": ["grok-4.3-latest"],
        },
        {"id": "grok-4.3-fast", "prompt_text_token_price": 20000, "aliases": ["grok-fast"]},
    ]
}


def state(reg: ModelRegistry) -> tuple[list[Any], dict[str, str]]:
    specs = reg.specs()
    return specs, {n: reg.get(n).name for s in specs for n in (s.name, *s.aliases)}


def test_cache_path_choices(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONVKIT_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert catalog.cache_path() == tmp_path / "mine" / "models.json"
    monkeypatch.delenv("CONVKIT_CACHE_DIR")
    assert catalog.cache_path() == tmp_path / "xdg" / "convkit" / "models.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert catalog.cache_path() == tmp_path / "home" / ".cache" / "convkit" / "models.json"


def test_save_then_load(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "models.json"
    saved = catalog.save_cache(BODY, base_url="https://user:secret@api.example.test/v1?key=abc#x", path=path)
    assert saved.path == path
    assert saved.base_url == "https://api.example.test/v1"  # no user info, query or fragment
    text = path.read_text(encoding="utf-8")
    assert "secret" not in text
    assert "abc" not in text
    loaded = catalog.load_cache(path)
    assert loaded == saved
    assert loaded is not None
    assert loaded.model_count == 2
    assert [p.name for p in path.parent.iterdir()] == ["models.json"]


def test_save_replaces_the_file_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "models.json"
    catalog.save_cache(BODY, base_url="https://api.x.ai/v1", path=path)
    before = path.read_text(encoding="utf-8")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ConvkitError, match=r"cannot write the model cache .*No space left on device"):
        catalog.save_cache({"models": []}, base_url="https://api.x.ai/v1", path=path)
    assert path.read_text(encoding="utf-8") == before  # the old file is whole
    assert [p.name for p in tmp_path.iterdir()] == ["models.json"]  # the temporary file is gone
    with pytest.raises(ValidationError, match="only a language-models body"):
        catalog.save_cache({"data": []}, base_url="https://api.x.ai/v1", path=path)


def test_no_file_is_no_news(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    assert catalog.load_cache(tmp_path / "absent.json") is None
    assert catalog.apply_user_cache(ModelRegistry(), tmp_path / "absent.json") is None
    assert len(recwarn) == 0


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ('{"format": 1, "body": {"models": [', "is not valid JSON"),
        ("[]", "is not a convkit model cache"),
        ('{"format": 99, "body": {"models": []}}', "is not a convkit model cache"),
        ('{"format": 1, "body": {"data": []}}', "is not a convkit model cache"),
    ],
)
def test_an_unusable_file_is_ignored_with_a_warning(tmp_path: Path, content: str, pattern: str) -> None:
    path = tmp_path / "models.json"
    path.write_text(content, encoding="utf-8")
    reg = ModelRegistry()
    before = state(reg)
    with pytest.warns(catalog.ModelsCacheWarning, match=pattern):
        assert catalog.apply_user_cache(reg, path) is None
    assert state(reg) == before


def test_an_unreadable_file_is_ignored_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.mkdir()  # a folder where the file should be
    with pytest.warns(catalog.ModelsCacheWarning, match="cannot read the model cache"):
        assert catalog.load_cache(path) is None


def test_a_refused_body_is_ignored_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    bad = {"models": [*BODY["models"], {"id": "grok-other", "aliases": ["grok-fast"]}]}
    path.write_text(
        json.dumps({"format": 1, "fetched_at": "x", "base_url": "y", "body": bad}), encoding="utf-8"
    )
    reg = ModelRegistry()
    before = state(reg)
    with pytest.warns(catalog.ModelsCacheWarning, match=r"was refused .*'grok-fast'"):
        assert catalog.apply_user_cache(reg, path) is None
    assert state(reg) == before
    assert catalog.in_use(reg) is None


def test_apply_updates_the_registry_and_is_remembered(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    saved = catalog.save_cache(BODY, base_url="https://api.x.ai/v1", path=path)
    reg = ModelRegistry()
    assert catalog.apply_user_cache(reg, path) == saved
    assert catalog.in_use(reg) == saved
    assert catalog.in_use(ModelRegistry()) is None  # per registry
    fast = reg.get("grok-fast")
    assert (fast.name, fast.context_window, fast.window_inferred) == ("grok-4.3-fast", 1_000_000, True)
    g43 = reg.get("grok-4.3")
    assert (g43.price_text_in, g43.price_cached_in, g43.price_completion) == (1.0, 0.25, 2.0)
    assert g43.context_window == 1_000_000  # not reported: kept


def test_a_registry_applies_the_cache_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVKIT_CACHE_DIR", str(tmp_path))
    catalog.save_cache(BODY, base_url="https://api.x.ai/v1")
    reg = ModelRegistry(on_first_use=catalog.apply_user_cache)
    assert reg.get("GROK-FAST").name == "grok-4.3-fast"
    assert catalog.in_use(reg) is not None
