"""``convkit show``: a stored conversation's window, drawn as a picture (see :mod:`convkit._view`).

The database is ``--db PATH`` (an SQLite file) or ``--url URL`` (default
``$CONVKIT_DATABASE_URL``, else ``sqlite:///convkit.db``, as ``convkit db``);
the conversation is ``--conversation ID``, by default the one created last
in the namespace (the picture says which). Rows are numbered by stored seq.

``show`` only reads. An SQLite file that does not exist, or holds no convkit
tables, is reported and never opened (opening it would create it, or write
SQLite's journal mode into it); the schema is checked, never upgraded. The window is fitted in
memory from the stored messages (what ``Store.window`` returns, as its
contract says, without the token counts ``Store.window`` back-fills into the
database). ``--strategy summarize`` folds the oldest messages with the
offline :class:`~convkit.ExtractiveSummarizer`, starting from the summary the
conversation has stored, and by default does not store the new summary:
``Store.window(strategy="summarize")`` saves every summary it makes, so
``--save-summary`` asks for exactly that (the window then comes from
``Store.window``, which also stores the counts it needed).
"""

from __future__ import annotations

import argparse
import os
from typing import Any, TextIO

from ._cli_args import add_images, add_reserve, add_tokenizer, check_reserve, counter_for, model_flag
from ._cli_sqlite import sqlite_file
from ._counting import TokenCounter, apply_image_policy
from ._engine.settings import WindowSettings
from ._errors import (
    ConversationNotFoundError,
    DatabaseError,
    UnsupportedInputError,
    ValidationError,
)
from ._fitting import FitResult, fit
from ._results import Conversation
from ._summarize import ExtractiveSummarizer, Summary
from ._view import render, rows_for, window_view

__all__ = ["add_parser", "database_url", "latest_conversations"]

_MISSING = "`convkit show` never creates a database; `convkit demo --db PATH` stores one to look at"


def _missing() -> str:
    """The advice for a database that does not exist, naming the demo's file when it is here."""
    if os.path.isfile("convkit-demo.db"):
        return "`convkit demo` wrote ./convkit-demo.db here: pass --db convkit-demo.db"
    return _MISSING


#: Conversations read per page when looking for the newest.
_PAGE = 10_000


def database_url(db: str | None, url: str | None) -> tuple[str, str]:
    """The URL to open and how to name the database in messages; refuses a missing SQLite file.

    ``db``: an SQLite file (``--db``); ``url``: a database URL (``--url``); neither: as
    ``convkit db``, ``$CONVKIT_DATABASE_URL`` else ``sqlite:///convkit.db``.
    """
    if db is not None:
        path = sqlite_file(db, writes=False, missing=_missing())
        return f"sqlite:///{path}", path
    given = url or os.environ.get("CONVKIT_DATABASE_URL")
    target = given or "sqlite:///convkit.db"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from .store._db import safe_url

    try:
        parsed = make_url(target)
    except ArgumentError:
        raise ValidationError(f"not a database URL: {safe_url(target)!r}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        flag = "--url" if url else ("$CONVKIT_DATABASE_URL" if given else "the default URL")
        path = sqlite_file(str(parsed.database), writes=False, flag=flag, missing=_missing())
        return target, path
    return target, safe_url(target)


def latest_conversations(store: Any, count: int) -> tuple[list[Conversation], int]:
    """The ``count`` conversations created last (newest last) and how many there are."""
    newest: list[Conversation] = []
    total = 0
    after: str | None = None
    while True:
        page: list[Conversation] = store.list_conversations(limit=_PAGE, after=after)
        total += len(page)
        newest = (newest + page)[-count:]
        if len(page) < _PAGE:
            return newest, total
        after = page[-1].id


def _describe(c: Conversation) -> str:
    title = f" {c.title!r}," if c.title else ""
    return (
        f"{c.id} ({title.strip()} {c.message_count} messages, created {c.created_at:%Y-%m-%d %H:%M:%S} UTC)"
    )


def _settings(args: argparse.Namespace, counter: TokenCounter) -> WindowSettings:
    """The window's settings from the flags, refused in the flags' terms."""
    spec = model_flag(args.model)
    check_reserve(spec, args.reserve)
    return WindowSettings.of(
        spec, counter=counter, reserve=args.reserve, strategy=args.strategy, images=args.images
    )


def _cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    from .store import Store

    # every flag is checked before the database is opened
    if args.save_summary and args.strategy != "summarize":
        raise ValidationError("--save-summary stores the summary of --strategy summarize; add that flag")
    counter = counter_for(args.tokenizer)
    settings = _settings(args, counter)
    url, where = database_url(args.db, args.url)
    try:
        store = Store(url, namespace=args.namespace, upgrade=False)
    except DatabaseError as exc:
        raise DatabaseError(f"cannot read {where} as a convkit database: {exc}") from None
    with store:
        conv = _conversation(store, args.conversation, where, out)
        messages = store.messages(conv.id)
        if not messages:
            raise ValidationError(f"conversation {conv.id} in {where} holds no messages yet")
        try:  # numbered by seq, advice in flags
            sent = apply_image_policy(messages, settings.spec, settings.images, start=1)
        except UnsupportedInputError as exc:
            text = str(exc).replace("pass images='drop'", "pass --images drop")
            raise UnsupportedInputError(text.replace("message ", "the message at seq ", 1)) from None
        result, note = _window(store, conv, messages, settings, save=args.save_summary)
    counts = counter.content_tokens(sent)
    spec = settings.spec
    title = f"{spec.name} ({spec.context_window:,}-token window), strategy {args.strategy}"
    if note:
        title += f": {note}"
    rows = rows_for(result, messages, counts)
    render(window_view(result, rows, title=title, numbering="seq", counter=counter), out)
    return 0


def _conversation(store: Any, cid: str | None, where: str, out: TextIO) -> Conversation:
    """The conversation ``--conversation`` names, else the newest (saying which)."""
    ns = store.namespace
    if cid is None:
        newest, total = latest_conversations(store, 1)
        if not newest:
            raise ValidationError(
                f"no conversations in namespace {ns!r} of {where}; "
                "`convkit demo --db PATH` stores one to look at"
            )
        out.write(
            f"Conversation {_describe(newest[-1])}:\nthe newest of {total} in namespace {ns!r} of {where} "
            "(pick another with --conversation ID)\n"
        )
        return newest[-1]
    try:
        conv: Conversation = store.get_conversation(cid)
    except ConversationNotFoundError:
        newest, total = latest_conversations(store, 3)
        if newest:
            listed = "".join(f"\n  {_describe(c)}" for c in reversed(newest))
            hint = (
                f"; the newest of its {total}:{listed}\n"
                "(`convkit show` without --conversation shows the newest)"
            )
        else:
            hint = " (it holds none)"
        err = ConversationNotFoundError(cid, ns)
        err.args = (f"no conversation {cid!r} in namespace {ns!r} of {where}{hint}",)
        raise err from None
    out.write(f"Conversation {_describe(conv)} in {where}\n")
    return conv


def _window(
    store: Any, conv: Conversation, messages: list[Any], settings: WindowSettings, *, save: bool
) -> tuple[FitResult, str]:
    """The window, and a note on its summary (made, reused, saved or not)."""
    if settings.strategy == "trim":
        return fit(messages, settings=settings), ""
    summarizer = ExtractiveSummarizer()
    if save:
        result: FitResult = store.window(conv.id, settings=settings, summarizer=summarizer)
    else:
        stored = store.summaries(conv.id)  # the last one is what the store would start from
        last = stored[-1] if stored else None
        previous = Summary(last.text, last.first_seq - 1, last.last_seq - 1) if last else None
        result = fit(messages, settings=settings, summarizer=summarizer, summary=previous)
    s = result.summary
    if s is None:
        return result, "nothing to summarize, the conversation fits"
    seqs = f"seqs {s.first + 1}-{s.last + 1}"
    if not result.summary_is_new:
        return result, f"reuses the stored summary of {seqs}"
    if save:
        return result, f"new summary of {seqs}, saved in the database"
    return result, f"new summary of {seqs}, not saved (--save-summary stores it)"


def add_parser(sub: Any) -> None:
    """Register ``convkit show`` on the subcommand set ``sub``."""
    s = sub.add_parser(
        "show",
        help="show a stored conversation's window as a picture",
        description="Show the window convkit would send for a stored conversation: one bar per message "
        "(or run of messages) sized by its tokens, marked kept, pinned, dropped or summarized, with the "
        "budget line and the estimated cost. Reads only; nothing is written unless --save-summary.",
    )
    where = s.add_mutually_exclusive_group()
    where.add_argument("--db", metavar="PATH", help="an SQLite database file (never created)")
    where.add_argument(
        "--url",
        help="a database URL (default: $CONVKIT_DATABASE_URL, else sqlite:///convkit.db)",
    )
    s.add_argument(
        "--conversation", metavar="ID", help="the conversation's id (default: the one created last)"
    )
    s.add_argument("--namespace", default="default", help="the store's namespace (default: default)")
    s.add_argument("--model", required=True, help="model name or alias, e.g. grok-2")
    add_reserve(s)
    add_tokenizer(s)
    add_images(s)
    s.add_argument(
        "--strategy",
        choices=("trim", "summarize"),
        default="trim",
        help="trim (default) drops the oldest messages; summarize folds them into one summary with "
        "the offline extractive summarizer (not stored unless --save-summary)",
    )
    s.add_argument(
        "--save-summary",
        action="store_true",
        help="with --strategy summarize: store a new summary in the database, as Store.window does "
        "(later windows start from it)",
    )
    s.set_defaults(func=_cmd_show)
