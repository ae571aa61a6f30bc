"""The user's cached model list: a ``GET /v1/language-models`` body kept between processes.

``convkit models --refresh`` fetches the body and keeps it in
:func:`cache_path` (``$CONVKIT_CACHE_DIR/models.json``, else
``$XDG_CACHE_HOME/convkit/models.json``, else ``~/.cache/convkit/models.json``),
written atomically (a temporary file in the same folder, then a rename), as
``{"format": 1, "fetched_at": ISO-8601 UTC, "base_url": ..., "body": {...}}``.
The API key is never written. Later processes apply the body to the default
registry on its first use (:func:`apply_user_cache`, the registry's
``on_first_use`` hook), through
:meth:`~convkit._models.ModelRegistry.update_from_language_models`: prices,
aliases and modalities follow the server, models it lists that convkit does
not know are registered, and what the endpoint does not report (context
windows, price tiers) stays as the built-in table has it.

A missing file is no news. A file that cannot be read, is not this format,
or holds a body the registry refuses is ignored with a
:class:`ModelsCacheWarning`, never an error: the built-in table stays in
force. Nothing here imports httpx.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import warnings
import weakref
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs

from ._errors import ConvkitError, ValidationError
from ._models import ModelRegistry

__all__ = [
    "CACHE_FORMAT",
    "CachedModels",
    "ModelsCacheWarning",
    "apply_user_cache",
    "cache_path",
    "in_use",
    "load_cache",
    "save_cache",
]

#: The version of the cache file's layout.
CACHE_FORMAT = 1

_state_lock = threading.Lock()
_in_use: weakref.WeakKeyDictionary[ModelRegistry, CachedModels] = weakref.WeakKeyDictionary()


class ModelsCacheWarning(UserWarning):
    """The cached model list was not used (unreadable, not convkit's format, or refused)."""


@attrs.frozen
class CachedModels:
    """A cached ``GET /v1/language-models`` body, where and when it came from."""

    body: Mapping[str, Any]
    fetched_at: str
    base_url: str
    path: Path

    @property
    def model_count(self) -> int:
        models = self.body.get("models")
        return len(models) if isinstance(models, list) else 0


def cache_path() -> Path:
    """Where the model list is cached (see the module docstring for the order of the choices)."""
    folder = os.environ.get("CONVKIT_CACHE_DIR")
    if folder:
        return Path(folder).expanduser() / "models.json"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "convkit" / "models.json"


def _public_url(base_url: str) -> str:
    """``base_url`` without user info, query or fragment: nothing secret reaches the file."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def save_cache(body: Mapping[str, Any], *, base_url: str, path: Path | None = None) -> CachedModels:
    """Write ``body`` to the cache file atomically; returns what was written.

    Raises :class:`~convkit._errors.ValidationError` when ``body`` is not a
    language-models object, and :class:`~convkit._errors.ConvkitError` when
    the file cannot be written (the previous file, if any, is left whole).
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("models"), list):
        raise ValidationError("only a language-models body (an object with a 'models' list) is cached")
    target = path or cache_path()
    cached = CachedModels(
        dict(body), datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), _public_url(base_url), target
    )
    record = {
        "format": CACHE_FORMAT,
        "fetched_at": cached.fetched_at,
        "base_url": cached.base_url,
        "body": cached.body,
    }
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".models.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record, f, indent=1, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConvkitError(f"cannot write the model cache {target}: {exc.strerror or exc}") from None
    return cached


def load_cache(path: Path | None = None) -> CachedModels | None:
    """The cached body, or ``None`` when there is none or it is unusable (with a warning)."""
    target = path or cache_path()
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        _warn(f"cannot read the model cache {target} ({exc.strerror or exc}); using the built-in table")
        return None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested thousands of levels deep
        _warn(f"the model cache {target} is not valid JSON; using the built-in table")
        return None
    if (
        not isinstance(record, dict)
        or record.get("format") != CACHE_FORMAT
        or not isinstance(record.get("body"), dict)
        or not isinstance(record["body"].get("models"), list)
    ):
        _warn(f"the model cache {target} is not a convkit model cache; using the built-in table")
        return None
    return CachedModels(
        record["body"], str(record.get("fetched_at") or "?"), str(record.get("base_url") or "?"), target
    )


def apply_user_cache(registry: ModelRegistry, path: Path | None = None) -> CachedModels | None:
    """Apply the cached body to ``registry``; returns it, or ``None`` (no file, or unusable: warned)."""
    cached = load_cache(path)
    if cached is None:
        return None
    try:
        registry.update_from_language_models(cached.body)
    except ValidationError as exc:
        _warn(f"the model cache {cached.path} was refused ({exc}); using the built-in table")
        return None
    mark_in_use(registry, cached)
    return cached


def mark_in_use(registry: ModelRegistry, cached: CachedModels) -> None:
    """Remember that ``registry`` holds ``cached``'s body (what ``convkit models`` reports)."""
    with _state_lock:
        _in_use[registry] = cached


def in_use(registry: ModelRegistry) -> CachedModels | None:
    """The cached body applied to ``registry`` in this process, if any."""
    registry.specs()  # its first use applies the cache, when it has not happened yet
    with _state_lock:
        return _in_use.get(registry)


def _warn(message: str) -> None:
    warnings.warn(message, ModelsCacheWarning, stacklevel=3)
