"""The ``convkit`` command line: ``models``, ``fit`` and ``db`` (more commands join later).

Exit codes: 0 success; 1 the conversation cannot fit (ContextWindowError),
or ``db check`` found the schema not at head; 2 bad usage or bad input
(unreadable file, invalid message, unknown model, bad URL, database error).
With ``--json`` the result (or the error) is one JSON object on stdout.
``db`` commands take ``--url`` (default ``$CONVKIT_DATABASE_URL``, else
``sqlite:///convkit.db``) and print URLs with the password hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ._counting import EstimateCounter, HFTokenCounter, TokenCounter, apply_image_policy
from ._engine.settings import DEFAULT_RESERVE
from ._errors import ContextWindowError, ConvkitError, SchemaError, UnknownModelError
from ._fitting import fit
from ._jsonl import read_jsonl
from ._messages import Message
from ._models import get_model, list_models
from ._version import __version__

__all__ = ["main", "read_jsonl"]


def _counter(path: str | None) -> TokenCounter:
    if path is None:
        return EstimateCounter()
    return HFTokenCounter.from_file(path)


def _cmd_models(args: argparse.Namespace, out: TextIO) -> int:
    specs = list_models()
    if args.json:
        rows = [
            {
                "name": s.name,
                "aliases": list(s.aliases),
                "context_window": s.context_window,
                "input_modalities": sorted(s.input_modalities),
                "price_text_in": s.price_text_in,
                "price_image_in": s.price_image_in,
                "price_completion": s.price_completion,
                "deprecated": s.deprecated,
            }
            for s in specs
        ]
        json.dump(rows, out)
        out.write("\n")
        return 0
    out.write(
        f"{'model':<20} {'context':>8}  {'input':<11} {'$/M in':>7} {'$/M img':>7} {'$/M out':>7}  aliases\n"
    )
    for s in specs:
        img = f"{s.price_image_in:.2f}" if s.price_image_in is not None else "-"
        flag = "  (deprecated)" if s.deprecated else ""
        aliases = ", ".join(s.aliases) or "-"
        out.write(
            f"{s.name:<20} {s.context_window:>8}  {','.join(sorted(s.input_modalities)):<11} "
            f"{s.price_text_in:>7.2f} {img:>7} {s.price_completion:>7.2f}  {aliases}{flag}\n"
        )
    return 0


def _preview(m: Message, width: int = 48) -> str:
    text = m.text.replace("\n", " ")
    if m.tool_calls:
        text = (text + " " if text else "") + "calls " + ", ".join(c.name for c in m.tool_calls)
    if m.images:
        text = f"[{len(m.images)} image(s)] " + text
    return text if len(text) <= width else text[: width - 1] + "…"


def _cmd_fit(args: argparse.Namespace, out: TextIO) -> int:
    messages = read_jsonl(args.file)
    spec = get_model(args.model)
    counter = _counter(args.tokenizer)
    result = fit(
        messages, model=spec, counter=counter, reserve=args.reserve, images=args.images, margin=args.margin
    )
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
        default=DEFAULT_RESERVE,
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
        default=DEFAULT_RESERVE,
        help=f"max_tokens for each reply (default {DEFAULT_RESERVE})",
    )
    c.add_argument("--tokenizer", help="tokenizer.json to count with (default: conservative estimate)")
    c.set_defaults(func=_cmd_chat)

    m = sub.add_parser("models", help="list the known models, aliases and prices")
    m.add_argument("--json", action="store_true", help="print JSON")
    m.set_defaults(func=_cmd_models)

    f = sub.add_parser("fit", help="fit a JSONL conversation into a model's window")
    f.add_argument("file", help="JSONL file, one OpenAI/xAI-shaped message per line")
    f.add_argument("--model", required=True, help="model name or alias, e.g. grok-2")
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
