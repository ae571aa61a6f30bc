"""The ``convkit`` command line: the parser, exit codes and error reports.

Each command lives in its own module and registers its own flags
(``add_parser``): ``demo`` (:mod:`convkit._demo`), ``chat``
(:mod:`convkit._chat`), ``models`` (:mod:`convkit._cli_models`), ``fit``
(:mod:`convkit._cli_fit`), ``show`` (:mod:`convkit._cli_show`) and ``db``
(:mod:`convkit._cli_db`).

Exit codes: 0 success; 1 the conversation cannot fit (ContextWindowError),
or ``db check`` found the schema not at head; 2 bad usage or bad input
(unreadable file, invalid message, unknown model, bad URL, database error,
a ``models --refresh`` the API or the cache file refused); 130 interrupted
(Ctrl-C, quietly); 141 the reader of stdout left (``convkit fit ... | head``).
With ``--json`` the result (or the error) is one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ._errors import ContextWindowError, ConvkitError, UnknownModelError
from ._version import __version__

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from . import _chat, _cli_db, _cli_fit, _cli_models, _cli_show, _demo

    p = argparse.ArgumentParser(prog="convkit", description="Conversations that fit Grok's context window.")
    p.add_argument("--version", action="version", version=f"convkit {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (_demo, _chat, _cli_models, _cli_fit, _cli_show, _cli_db):
        module.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code."""
    out = stdout or sys.stdout
    try:
        args = _parser().parse_args(argv)
        as_json = bool(getattr(args, "json", False))
        try:
            return int(args.func(args, out))
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
        except ConvkitError as exc:
            kind = "unknown_model" if isinstance(exc, UnknownModelError) else type(exc).__name__
            _report(exc, as_json, out, {"error": kind})
            return 2
    except KeyboardInterrupt:  # Ctrl-C: no traceback; end the line the terminal echoed ^C on
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left early (`convkit demo | head`): stop quietly
        if out is sys.stdout:
            # nothing more reaches the closed pipe, not even the interpreter's final flush
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE


def _report(exc: Exception, as_json: bool, out: TextIO, payload: dict[str, Any]) -> None:
    if as_json:
        json.dump({**payload, "message": str(exc)}, out)
        out.write("\n")
    print(f"convkit: error: {exc}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
