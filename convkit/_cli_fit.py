"""``convkit fit``: fit a JSONL conversation into a model's window.

``--model M --context-window N`` fits against a model convkit does not know
(``--price-in``/``--price-out`` price it). With ``--json`` the result is one
JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from typing import Any, TextIO

import attrs

from ._cli_args import add_reserve, add_tokenizer, counter_for, positive_int, price
from ._counting import apply_image_policy
from ._errors import UnknownModelError, UnsupportedInputError
from ._fitting import fit
from ._jsonl import read_jsonl
from ._messages import Message
from ._models import ModelSpec, get_model, list_models

__all__ = ["add_parser"]


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
    counter = counter_for(args.tokenizer)
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


def add_parser(sub: Any) -> None:
    """Register ``convkit fit`` on the subcommand set ``sub``."""
    f = sub.add_parser("fit", help="fit a JSONL conversation into a model's window")
    f.add_argument("file", help="JSONL file, one OpenAI/xAI-shaped message per line")
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
    f.add_argument(
        "--images",
        choices=("error", "drop"),
        default="error",
        help="for text-only models: fail on images (default) or replace them with a note",
    )
    f.add_argument("--margin", type=float, default=None, help="override the counter's safety margin")
    f.add_argument("--json", action="store_true", help="print one JSON object")
    f.set_defaults(func=_cmd_fit)
