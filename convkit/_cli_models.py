"""``convkit models``: the model table with its date, or ``--refresh`` from xAI's API.

``--refresh`` fetches ``GET /v1/language-models`` (key from ``$XAI_API_KEY``,
never printed or stored) and keeps the answer in the user cache file of
:mod:`convkit._catalog`, which later processes apply.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, TextIO

import attrs

from . import _catalog
from ._errors import AuthenticationError
from ._models import (
    CATALOG_DATE,
    CATALOG_URL,
    ModelRegistry,
    ModelSpec,
    default_registry,
    list_models,
)

__all__ = ["add_parser"]


def _spec_row(s: ModelSpec) -> dict[str, Any]:
    return {
        "name": s.name,
        "aliases": list(s.aliases),
        "context_window": s.context_window,
        "input_modalities": sorted(s.input_modalities),
        "price_text_in": s.price_text_in,
        "price_image_in": s.price_image_in,
        "price_completion": s.price_completion,
        "deprecated": s.deprecated,
        "price_cached_in": s.price_cached_in,
        "tiers": [attrs.asdict(t) for t in s.tiers],
        "reasoning": s.reasoning,
        "window_inferred": s.window_inferred,
    }


def _refresh(base_url: str | None) -> tuple[ModelRegistry, _catalog.CachedModels]:
    """Fetch ``GET /v1/language-models``, check it applies, keep it in the cache file."""
    from .xai._base import DEFAULT_BASE_URL
    from .xai._client import XAIClient

    if not (os.environ.get("XAI_API_KEY") or "").strip():
        raise AuthenticationError(
            "convkit models --refresh needs an xAI API key in the XAI_API_KEY environment variable "
            "(it is only sent to the API, never printed or stored)"
        )
    url = base_url or DEFAULT_BASE_URL
    with XAIClient(base_url=url, max_retries=2) as client:
        body = client.language_models()
    registry = ModelRegistry()  # what later processes will see: the built-in table and this body
    registry.update_from_language_models(body)  # a body it refuses is neither used nor kept
    return registry, _catalog.save_cache(body, base_url=url)


def _money(value: float) -> str:
    """Dollars with two decimals, or as many as the price has (0.075), up to six."""
    text = f"{value:.6f}".rstrip("0")
    return f"{value:.2f}" if len(text.split(".")[1]) <= 2 else text


def _aliases_text(aliases: tuple[str, ...], shown: int = 3) -> str:
    if not aliases:
        return "-"
    more = len(aliases) - shown
    return ", ".join(aliases[:shown]) + (f" (+{more} more)" if more > 0 else "")


def _cmd_models(args: argparse.Namespace, out: TextIO) -> int:
    if args.refresh:
        registry, cached = _refresh(args.base_url)
        refreshed: _catalog.CachedModels | None = cached
        specs = registry.specs()
    else:
        specs = list_models()
        refreshed = _catalog.in_use(default_registry)
    if args.json:
        json.dump([_spec_row(s) for s in specs], out)
        out.write("\n")
        return 0
    out.write(f"convkit's built-in model table of {CATALOG_DATE} ({CATALOG_URL})\n")
    if refreshed is not None:
        out.write(
            f"updated by the refreshed list from {refreshed.base_url} of {refreshed.fetched_at} "
            f"({refreshed.model_count} models, kept in {refreshed.path}; `convkit models --refresh` "
            "fetches it again)\n"
        )
    else:
        out.write("no refreshed list in use (`convkit models --refresh` fetches one from the API)\n")
    width = max([len("model"), *(len(s.name) for s in specs)])
    out.write(
        f"\n{'model':<{width}} {'context':>9}  {'input':<10} {'$/M in':>7} {'cached':>7} {'$/M img':>7} "
        f"{'$/M out':>7}  aliases\n"
    )
    for s in specs:
        img = _money(s.price_image_in) if s.price_image_in is not None else "-"
        cached_in = _money(s.price_cached_in) if s.price_cached_in is not None else "-"
        window = f"~{s.context_window}" if s.window_inferred else str(s.context_window)
        flags = "".join(
            f"  ({flag})"
            for flag, on in (
                ("reasoning", s.reasoning),
                ("deprecated", s.deprecated),
                ("window guessed", s.window_inferred),
            )
            if on
        )
        out.write(
            f"{s.name:<{width}} {window:>9}  {','.join(sorted(s.input_modalities)):<10} "
            f"{_money(s.price_text_in):>7} {cached_in:>7} {img:>7} {_money(s.price_completion):>7}  "
            f"{_aliases_text(s.aliases)}{flags}\n"
        )
        for t in s.tiers:
            tier_cached = f", cached {_money(t.price_cached_in)}" if t.price_cached_in is not None else ""
            out.write(
                f"{'':<{width}}   from {t.min_prompt_tokens} prompt tokens, every token: "
                f"in {_money(t.price_text_in)}{tier_cached}, out {_money(t.price_completion)}\n"
            )
    return 0


def add_parser(sub: Any) -> None:
    """Register ``convkit models`` on the subcommand set ``sub``."""
    m = sub.add_parser(
        "models",
        help="list the known models, aliases and prices (--refresh: fetch xAI's current list)",
        description=(
            f"List the models convkit knows: the built-in table (xAI's models as of {CATALOG_DATE}), "
            "updated by the list last fetched with --refresh, if any. --refresh fetches "
            "GET /v1/language-models with the key in $XAI_API_KEY (never printed or stored) and keeps the "
            "answer in $CONVKIT_CACHE_DIR/models.json (else $XDG_CACHE_HOME/convkit/models.json, else "
            "~/.cache/convkit/models.json), which every later convkit process applies; delete that file "
            "to go back to the built-in table."
        ),
    )
    m.add_argument("--json", action="store_true", help="print JSON")
    m.add_argument(
        "--refresh",
        action="store_true",
        help="fetch xAI's current model list (needs XAI_API_KEY) and keep it",
    )
    m.add_argument("--base-url", help="API base URL for --refresh (default https://api.x.ai/v1)")
    m.set_defaults(func=_cmd_models)
