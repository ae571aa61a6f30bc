"""Argument types and flags the ``convkit`` commands share (argparse ``type=`` callables).

Each type refuses a bad value with a message argparse prints after the flag's
name (``argument --reserve: must be 0 or more, got -5``), before a command
reads or writes anything.
"""

from __future__ import annotations

import argparse
import os

from ._counting import EstimateCounter, HFTokenCounter, TokenCounter
from ._engine.settings import DEFAULT_RESERVE
from ._errors import TokenizerError, UnknownModelError, ValidationError
from ._models import ModelSpec, get_model, list_models

__all__ = [
    "add_images",
    "add_reserve",
    "add_tokenizer",
    "check_reserve",
    "model_flag",
    "counter_for",
    "positive_int",
    "price",
    "tokens",
]


def positive_int(text: str) -> int:
    """A whole number of tokens above 0."""
    value = _whole(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def tokens(text: str) -> int:
    """A whole number of tokens, 0 or more."""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of tokens, got {text!r}") from None


def price(text: str) -> float:
    """US dollars per million tokens: finite, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected US dollars per 1M tokens, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite price of 0 or more, got {text}")
    return value


def add_reserve(p: argparse.ArgumentParser, what: str = "the reply") -> None:
    p.add_argument(
        "--reserve",
        type=tokens,
        default=None,
        metavar="N",
        help=f"tokens kept free for {what} (default {DEFAULT_RESERVE}, or a quarter of a smaller window; "
        "0 fills the window)",
    )


def add_tokenizer(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="a HuggingFace tokenizer.json to count with (default: convkit's estimate, which never "
        "counts below Grok-1's tokenizer)",
    )


def add_images(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--images",
        choices=("error", "drop"),
        default="error",
        help="for text-only models: fail on images (default) or replace them with a note",
    )


def counter_for(path: str | None) -> TokenCounter:
    """The counter ``--tokenizer`` names, or the default estimate."""
    if path is None:
        return EstimateCounter()
    if not os.path.isfile(path):
        what = "a directory" if os.path.isdir(path) else "no such file"
        raise TokenizerError(
            f"--tokenizer {path}: {what}; pass the path of a HuggingFace tokenizer.json "
            "(or leave --tokenizer out to count with convkit's estimate)"
        )
    try:
        return HFTokenCounter.from_file(path)
    except TokenizerError as exc:  # the library's message names the path; say it as a flag
        detail = str(exc).split("': ", 1)[-1]
        raise TokenizerError(
            f"--tokenizer {path}: not a tokenizer.json HuggingFace tokenizers can load ({detail})"
        ) from None


def check_reserve(spec: ModelSpec, reserve: int | None) -> None:
    """Refuse a ``--reserve`` that leaves no room for a prompt in ``spec``'s window, in flag words."""
    if reserve is not None and reserve >= spec.context_window:
        raise ValidationError(
            f"--reserve {reserve} is not smaller than {spec.name}'s context window of "
            f"{spec.context_window} tokens, so no room is left for the prompt; pass a smaller --reserve"
        )


def model_flag(name: str, *, hint: str = "") -> ModelSpec:
    """The model ``--model`` names; an unknown one is refused in the CLI's terms (``hint`` added)."""
    try:
        return get_model(name)
    except UnknownModelError as exc:
        models = ", ".join(s.name for s in list_models())
        err = UnknownModelError(exc.name, exc.known)
        err.args = (
            f"unknown model {exc.name!r} (known models: {models}; `convkit models` lists their aliases). "
            + (hint or "Run `convkit models --refresh` to fetch xAI's current list."),
        )
        raise err from None
