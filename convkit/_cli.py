"""The ``convkit`` command line: ``models``, ``fit`` and ``db`` (more commands join later).

``models`` prints the model table with its date; ``models --refresh`` fetches
``GET /v1/language-models`` (key from ``$XAI_API_KEY``, never printed or
stored) and keeps the answer in the user cache file of :mod:`convkit._catalog`,
which later processes apply. ``fit --model M --context-window N`` fits against
a model convkit does not know (``--price-in``/``--price-out`` price it).

Exit codes: 0 success; 1 the conversation cannot fit (ContextWindowError),
or ``db check`` found the schema not at head; 2 bad usage or bad input
(unreadable file, invalid message, unknown model, bad URL, database error,
a ``models --refresh`` the API or the cache file refused).
With ``--json`` the result (or the error) is one JSON object on stdout.
``db`` commands take ``--url`` (default ``$CONVKIT_DATABASE_URL``, else
``sqlite:///convkit.db``) and print URLs with the password hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import attrs

from . import _catalog
from ._counting import EstimateCounter, HFTokenCounter, TokenCounter, apply_image_policy
from ._engine.settings import DEFAULT_RESERVE
from ._errors import (
    AuthenticationError,
    ContextWindowError,
    ConvkitError,
    SchemaError,
    UnknownModelError,
    UnsupportedInputError,
)
from ._fitting import fit
from ._jsonl import read_jsonl
from ._messages import Message
from ._models import (
    CATALOG_DATE,
    CATALOG_URL,
    ModelRegistry,
    ModelSpec,
    default_registry,
    get_model,
    list_models,
)
from ._version import __version__

__all__ = ["main", "read_jsonl"]


def _counter(path: str | None) -> TokenCounter:
    if path is None:
        return EstimateCounter()
    return HFTokenCounter.from_file(path)


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


def _preview(m: Message, width: int = 48) -> str:
    text = m.text.replace("\n", " ")
    if m.tool_calls:
        text = (text + " " if text else "") + "calls " + ", ".join(c.name for c in m.tool_calls)
    if m.images:
        text = f"[{len(m.images)} image(s)] " + text
    return text if len(text) <= width else text[: width - 1] + "…"


class _UnknownModelFlagError(UnknownModelError):
    """An unknown ``--model``, said in the CLI's terms."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(name, known)
        models = ", ".join(s.name for s in list_models())
        self.args = (
            f"unknown model {name!r} (known models: {models}; `convkit models` lists their aliases). "
            "Pass --context-window N (with --price-in/--price-out for a cost estimate, --vision if it takes "
            "images) to fit against a model convkit does not know, or run `convkit models --refresh` to "
            "fetch xAI's current list.",
        )


def _fit_spec(args: argparse.Namespace) -> ModelSpec:
    """The model to fit against: ``--model``, with what ``--context-window``/``--price-*`` change."""
    try:
        spec = get_model(args.model)
    except UnknownModelError as exc:
        if args.context_window is None:
            raise _UnknownModelFlagError(exc.name, exc.known) from None
        return ModelSpec(
            args.model,
            args.context_window,
            {"text", "image"} if args.vision else {"text"},
            price_text_in=args.price_in or 0.0,
            price_completion=args.price_out or 0.0,
        )
    changes: dict[str, Any] = {}
    if args.vision:
        changes["input_modalities"] = spec.input_modalities | {"image"}
    for field, value in (
        ("context_window", args.context_window),
        ("price_text_in", args.price_in),
        ("price_completion", args.price_out),
    ):
        if value is not None:
            changes[field] = value
    return attrs.evolve(spec, **changes) if changes else spec


def _cmd_fit(args: argparse.Namespace, out: TextIO) -> int:
    messages = read_jsonl(args.file)
    spec = _fit_spec(args)
    counter = _counter(args.tokenizer)
    try:
        result = fit(
            messages,
            model=spec,
            counter=counter,
            reserve=args.reserve,
            images=args.images,
            margin=args.margin,
        )
    except UnsupportedInputError as exc:  # the library's advice, in flags
        raise UnsupportedInputError(str(exc).replace("pass images='drop'", "pass --images drop")) from None
    cost = result.estimate_cost(result.reserve)
    if args.json:
        json.dump(
            {
                "model": result.model,
                "context_window": result.context_window,
                "reserve": result.reserve,
                "margin": result.margin,
                "budget": result.budget,
                "prompt_tokens": result.prompt_tokens,
                "kept": result.kept,
                "dropped": result.dropped,
                "counter": counter.identity,
                "cost_estimate_usd": cost,
            },
            out,
        )
        out.write("\n")
        return 0
    kept = set(result.kept)
    counts = counter.content_tokens(apply_image_policy(messages, spec, args.images))  # what is sent
    out.write(f"{'#':>4}  {'role':<9} {'tokens':>6}  {'':<7} preview\n")
    for i, (m, c) in enumerate(zip(messages, counts, strict=True)):
        state = "kept" if i in kept else "dropped"
        pin = "*" if m.pinned else " "
        out.write(f"{i:>4}{pin} {m.role:<9} {c + spec.message_overhead:>6}  {state:<7} {_preview(m)}\n")
    out.write(
        f"\nmodel {result.model}: {len(result.kept)} kept, {len(result.dropped)} dropped; "
        f"{result.prompt_tokens} of {result.budget} budget tokens "
        f"(window {result.context_window}, reserve {result.reserve}, margin {result.margin:g}); "
        f"counter {counter!r}\n"
        f"estimated cost: ${cost:.6f} (prompt{' + reserve as completion' if result.reserve else ''})\n"
    )
    return 0


def _db_url(args: argparse.Namespace) -> str:
    return str(args.url or os.environ.get("CONVKIT_DATABASE_URL") or "sqlite:///convkit.db")


def _cmd_db_upgrade(args: argparse.Namespace, out: TextIO) -> int:
    from .store import _db as engine
    from .store import _migrate as migrate

    url = _db_url(args)
    before = migrate.current_revision(url)
    migrate.upgrade(url, args.revision)
    after = migrate.current_revision(url)
    where = engine.safe_url(url)
    if before == after:
        out.write(f"{where}: convkit schema already at {after or 'base'}\n")
    else:
        out.write(f"{where}: convkit schema upgraded from {before or 'base'} to {after or 'base'}\n")
    return 0


def _cmd_db_current(args: argparse.Namespace, out: TextIO) -> int:
    from .store import _db as engine
    from .store import _migrate as migrate

    url = _db_url(args)
    revision = migrate.current_revision(url)
    status = migrate.schema_status(url)
    out.write(
        f"{engine.safe_url(url)}: revision {revision or 'none'} ({status}; "
        f"this convkit's head is {migrate.head_revision()})\n"
    )
    return 0


def _cmd_db_check(args: argparse.Namespace, out: TextIO) -> int:
    from .store import _db as engine
    from .store import _migrate as migrate

    url = _db_url(args)
    try:
        migrate.ensure_schema(url, upgrade=False)
    except SchemaError as exc:
        out.write(f"{exc}\n")
        return 1
    out.write(f"{engine.safe_url(url)}: convkit schema is at head ({migrate.head_revision()})\n")
    return 0


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from ._demo import run_demo

    run_demo(args.db, out, tokenizer=args.tokenizer, reserve=args.reserve)
    return 0


def _cmd_chat(args: argparse.Namespace, out: TextIO) -> int:
    from ._chat import run_chat

    return run_chat(
        model=args.model,
        db=args.db,
        conversation=args.conversation,
        base_url=args.base_url,
        reserve=args.reserve,
        tokenizer=args.tokenizer,
        stdin=sys.stdin,
        out=out,
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of tokens, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _price(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected US dollars per 1M tokens, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite price of 0 or more, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convkit", description="Conversations that fit Grok's context window.")
    p.add_argument("--version", action="version", version=f"convkit {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="store a demo conversation in SQLite and show its windows")
    d.add_argument("--db", default="convkit-demo.db", help="SQLite file to use (default: ./convkit-demo.db)")
    d.add_argument("--tokenizer", help="tokenizer.json to count with (default: conservative estimate)")
    d.add_argument(
        "--reserve",
        type=int,
        default=None,
        help=f"tokens kept free for the reply (default {DEFAULT_RESERVE})",
    )
    d.set_defaults(func=_cmd_demo)

    c = sub.add_parser("chat", help="chat with Grok in the terminal; the conversation is stored")
    c.add_argument("--model", default="grok-2-1212", help="model name or alias (default grok-2-1212)")
    c.add_argument("--db", default="convkit-chat.db", help="SQLite file (default ./convkit-chat.db)")
    c.add_argument("--conversation", help="continue this conversation id")
    c.add_argument("--base-url", help="API base URL (default https://api.x.ai/v1)")
    c.add_argument(
        "--reserve",
        type=int,
        default=None,
        help=f"max_tokens for each reply (default {DEFAULT_RESERVE}, or a quarter of a smaller window)",
    )
    c.add_argument("--tokenizer", help="tokenizer.json to count with (default: conservative estimate)")
    c.set_defaults(func=_cmd_chat)

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

    f = sub.add_parser("fit", help="fit a JSONL conversation into a model's window")
    f.add_argument("file", help="JSONL file, one OpenAI/xAI-shaped message per line")
    f.add_argument("--model", required=True, help="model name or alias, e.g. grok-2")
    f.add_argument(
        "--context-window",
        type=_positive_int,
        metavar="N",
        help="the model's context window in tokens: fits against a model convkit does not know, or "
        "overrides a known model's window",
    )
    f.add_argument("--price-in", type=_price, metavar="USD", help="input price, US dollars per 1M tokens")
    f.add_argument("--price-out", type=_price, metavar="USD", help="output price, US dollars per 1M tokens")
    f.add_argument("--vision", action="store_true", help="the model takes images as well as text")
    f.add_argument(
        "--reserve",
        type=int,
        default=None,
        help=f"tokens kept free for the completion (default {DEFAULT_RESERVE}, or a quarter of a smaller "
        "window; 0 fills the window)",
    )
    f.add_argument("--tokenizer", help="tokenizer.json to count with (default: conservative estimate)")
    f.add_argument(
        "--images",
        choices=("error", "drop"),
        default="error",
        help="for text-only models: fail on images (default) or replace them with a note",
    )
    f.add_argument("--margin", type=float, default=None, help="override the counter's safety margin")
    f.add_argument("--json", action="store_true", help="print one JSON object")
    f.set_defaults(func=_cmd_fit)

    db = sub.add_parser("db", help="create, upgrade or check convkit's tables in a database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    url_help = "database URL (default: $CONVKIT_DATABASE_URL, else sqlite:///convkit.db)"
    up = db_sub.add_parser("upgrade", help="upgrade the schema (creates the tables in an empty database)")
    up.add_argument("--url", help=url_help)
    up.add_argument("--revision", default="head", help="target revision (default: head)")
    up.set_defaults(func=_cmd_db_upgrade)
    cur = db_sub.add_parser("current", help="print the database's schema revision and status")
    cur.add_argument("--url", help=url_help)
    cur.set_defaults(func=_cmd_db_current)
    chk = db_sub.add_parser("check", help="exit 0 when the schema is at head, else 1 saying how to upgrade")
    chk.add_argument("--url", help=url_help)
    chk.set_defaults(func=_cmd_db_check)
    return p


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code."""
    out = stdout or sys.stdout
    args = _parser().parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        return int(args.func(args, out))
    except BrokenPipeError:  # the reader left early (`convkit demo | head`): stop quietly
        if out is sys.stdout:
            # nothing more reaches the closed pipe, not even the interpreter's final flush
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE
    except ContextWindowError as exc:
        _report(
            exc,
            as_json,
            out,
            {
                "error": "context_window",
                "required": exc.required,
                "available": exc.available,
                "model": exc.model,
            },
        )
        return 1
    except (UnknownModelError, ConvkitError) as exc:
        kind = "unknown_model" if isinstance(exc, UnknownModelError) else type(exc).__name__
        _report(exc, as_json, out, {"error": kind})
        return 2


def _report(exc: Exception, as_json: bool, out: TextIO, payload: dict[str, Any]) -> None:
    if as_json:
        json.dump({**payload, "message": str(exc)}, out)
        out.write("\n")
    print(f"convkit: error: {exc}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
