"""``convkit fit``: fit a JSONL conversation into a model's window.

``--model M --context-window N`` fits against a model convkit does not know
(``--price-in``/``--price-out`` price it). With ``--json`` the result is one
JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO, overload

import attrs

from ._cli_args import (
    add_images,
    add_reserve,
    add_tokenizer,
    check_reserve,
    counter_for,
    model_flag,
    positive_int,
    price,
)
from ._engine.settings import WindowSettings
from ._errors import ContextWindowError, UnknownModelError, ValidationError
from ._file_window import fit_file
from ._messages import Message
from ._models import ModelSpec, get_model
from ._progress import progress
from ._view import render, rows_for, window_view

__all__ = ["add_parser"]


_UNKNOWN_HINT = (
    "Pass --context-window N (with --price-in/--price-out for a cost estimate, --vision if it takes images) "
    "to fit against a model convkit does not know, or run `convkit models --refresh` to fetch xAI's current "
    "list."
)


def _priced(args: argparse.Namespace) -> bool:
    """Whether the model's prices are known: a model convkit knows, or --price-in/--price-out."""
    try:
        get_model(args.model)
    except UnknownModelError:
        return args.price_in is not None or args.price_out is not None
    return True


def _fit_spec(args: argparse.Namespace) -> ModelSpec:
    """The model to fit against: ``--model``, with what ``--context-window``/``--price-*`` change."""
    try:
        spec = get_model(args.model)
    except UnknownModelError:
        if args.context_window is None:
            model_flag(args.model, hint=_UNKNOWN_HINT)  # raises, in the CLI's terms
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


def _check_flags(args: argparse.Namespace, spec: ModelSpec) -> None:
    """Flag values that cannot work with this model, said in flags, before any file is read."""
    check_reserve(spec, args.reserve)
    if args.margin is not None and not 0 <= args.margin < 10:
        raise ValidationError(f"--margin is a relative undercount from 0 up to 10, got {args.margin:g}")


def _cmd_fit(args: argparse.Namespace, out: TextIO) -> int:
    spec = _fit_spec(args)
    _check_flags(args, spec)
    counter = counter_for(args.tokenizer)
    settings = WindowSettings.of(
        spec, counter=counter, reserve=args.reserve, images=args.images, margin=args.margin
    )
    if args.file == "-" and sys.stdin.isatty():
        print("convkit fit: reading messages from standard input (end with Ctrl-D)", file=sys.stderr)
    try:
        window = fit_file(
            args.file, settings, steps=lambda what, total, unit: progress(what, total, unit=unit)
        )
    except ContextWindowError as exc:
        raise _cannot_fit(exc, args) from None
    result = window.part.result
    priced = _priced(args)
    cost = result.estimate_cost(result.reserve) if priced else None
    lines = window.lines
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
                "kept_lines": [lines[i] for i in result.kept],
                "messages": result.input_length,
                "counted": len(window.part.counts),
                "counter": counter.identity,
                "cost_estimate_usd": cost,
            },
            out,
        )
        out.write("\n")
        return 0
    n = result.input_length
    counts: list[int | None] = [None] * n
    for s, c in window.part.counts.items():
        counts[s - 1] = c
    rows = rows_for(result, _Read(window.messages, n), counts, numbers=lines)
    title = (
        f"{window.source}: {n:,} messages, {len(window.part.counts):,} counted (newest first, "
        "down to the cut); numbers are file lines"
    )
    view = window_view(
        result,
        rows,
        title=title,
        numbering="line",
        counter=counter,
        priced=priced,
        unpriced_note="no prices for this model: pass --price-in and --price-out",
    )
    render(view, out)
    return 0


def _cannot_fit(exc: ContextWindowError, args: argparse.Namespace) -> ContextWindowError:
    """The library's error, with advice in flags (the same numbers, for --json too)."""
    err = ContextWindowError(
        required=exc.required,
        available=exc.available,
        model=exc.model,
        context_window=exc.context_window,
        reserve=exc.reserve,
    )
    if exc.context_window and exc.reserve >= exc.context_window:
        return err  # said in words already
    levers = ["shorten the leading system, pinned or newest messages"]
    if exc.reserve:
        levers.append(f"pass a smaller --reserve (now {exc.reserve})")
    levers.append("choose a --model (or --context-window) with a larger window")
    err.args = (
        f"{exc.model}: the messages that must be kept (the leading system messages, pinned messages and "
        f"the newest turn with its tool results) need {exc.required} tokens, but the budget is "
        f"{exc.available} (window {exc.context_window}, --reserve {exc.reserve}"
        + (f", --margin {args.margin:g}" if args.margin else "")
        + "); "
        + ", or ".join(levers)
        + ".",
    )
    return err


class _Read(Sequence[Message]):
    """The file's messages by 0-based index, holding only those read back."""

    def __init__(self, read: Mapping[int, Message], n: int) -> None:
        self._read, self._n = read, n

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> Message: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Message]: ...
    def __getitem__(self, i: int | slice) -> Message | Sequence[Message]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._n))]
        return self._read[i + 1]


def add_parser(sub: Any) -> None:
    """Register ``convkit fit`` on the subcommand set ``sub``."""
    f = sub.add_parser("fit", help="fit a JSONL conversation into a model's window")
    f.add_argument("file", help="JSONL file, one OpenAI/xAI-shaped message per line ('-': standard input)")
    f.add_argument("--model", required=True, help="model name or alias, e.g. grok-2")
    f.add_argument(
        "--context-window",
        type=positive_int,
        metavar="N",
        help="the model's context window in tokens: fits against a model convkit does not know, or "
        "overrides a known model's window",
    )
    f.add_argument("--price-in", type=price, metavar="USD", help="input price, US dollars per 1M tokens")
    f.add_argument("--price-out", type=price, metavar="USD", help="output price, US dollars per 1M tokens")
    f.add_argument("--vision", action="store_true", help="the model takes images as well as text")
    add_reserve(f, "the completion")
    add_tokenizer(f)
    add_images(f)
    f.add_argument("--margin", type=float, default=None, help="override the counter's safety margin")
    f.add_argument("--json", action="store_true", help="print one JSON object")
    f.set_defaults(func=_cmd_fit)
