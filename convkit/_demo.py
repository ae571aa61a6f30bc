"""``convkit demo``: the main job on the embedded SQLite default.

Stores a realistic support conversation (system prompt, a pinned note, tool
calls, a screenshot) as a new conversation in a local SQLite file (each run
adds one), then draws the windows convkit would send (see
:mod:`convkit._view`): to grok-2-vision-1212 (8192 tokens, takes images),
trimmed and then summarized, and to grok-2-1212 (131072, text only, so the
image becomes a visible note). It says where the database is and how to see
the conversation again (``convkit show``). The conversation is long enough
that the vision window drops and summarizes messages with the default
estimate and with Grok-1's tokenizer alike. Every argument is checked before
the database is touched; a ``--db`` the demo cannot own (a directory, a
missing folder, a file that is not SQLite, another application's database)
is refused, naming the path.
"""

from __future__ import annotations

import io
import json
import os
import shlex
from functools import partial
from typing import Any, TextIO

import attrs

from ._cli_args import add_reserve, add_tokenizer, check_reserve, counter_for
from ._cli_show import latest_conversations
from ._cli_sqlite import sqlite_file
from ._counting import ImagePolicy, TokenCounter, apply_image_policy
from ._engine.settings import WindowSettings
from ._errors import DatabaseError
from ._fitting import FitResult, fit
from ._messages import ImagePart, Message, TextPart, ToolCall
from ._models import get_model
from ._summarize import ExtractiveSummarizer
from ._view import render, rows_for, window_view

__all__ = ["add_parser", "demo_conversation", "run_demo"]

_VISION = "grok-2-vision-1212"
_TEXT = "grok-2-1212"

_PRODUCTS = ["export", "billing", "sso", "webhooks", "backups", "dns", "alerts", "api keys"]


def _screenshot() -> ImagePart:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (960, 540), (245, 245, 250))
    draw = ImageDraw.Draw(img)
    draw.rectangle((40, 60, 920, 480), outline=(200, 30, 30), width=4)
    draw.text((60, 80), "Error 504: upstream timeout (export #8871)", fill=(200, 30, 30))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return ImagePart.from_bytes(buf.getvalue(), detail="high")


def demo_conversation(days: int = 24) -> list[Message]:
    """A support conversation over ``days`` days: tool calls, one screenshot, a pinned note."""
    msgs = [
        Message.system(
            "You are Ada, the support assistant of Northwind Cloud. Be precise, quote the customer's "
            "plan limits, never invent order numbers, and use the tools to look things up."
        ),
        Message.user(
            "Account acme-retail, Business plan. Please remember: our fiscal year starts in April.",
            pinned=True,
        ),
    ]
    for day in range(days):
        topic = _PRODUCTS[day % len(_PRODUCTS)]
        call = f"call_{day}_lookup"
        msgs.append(
            Message.user(
                f"Day {day + 1}: we have a question about {topic}. Yesterday's change worked, but the "
                f"{topic} dashboard now shows a warning we have not seen before. What does it mean and "
                "what should we do first?"
            )
        )
        msgs.append(
            Message.assistant(
                tool_calls=[
                    ToolCall(
                        call, "search_docs", json.dumps({"product": topic, "query": "dashboard warning"})
                    ),
                    ToolCall(f"{call}_acct", "get_account", json.dumps({"account": "acme-retail"})),
                ]
            )
        )
        msgs.append(
            Message.tool(
                json.dumps(
                    {"product": topic, "articles": [{"id": f"KB-{100 + day}", "title": f"{topic} warnings"}]}
                ),
                tool_call_id=call,
            )
        )
        msgs.append(
            Message.tool(
                json.dumps({"account": "acme-retail", "plan": "Business", "region": "eu-west-2"}),
                tool_call_id=f"{call}_acct",
            )
        )
        msgs.append(
            Message.assistant(
                f"The warning on the {topic} dashboard is described in KB-{100 + day}: it appears when a "
                "scheduled job runs close to its time limit. Nothing has failed yet. First, check the "
                f"last three {topic} runs for their duration; if any took more than 80% of the limit, "
                "split the job or move it out of the busy hour (02:00 to 03:00 UTC in eu-west-2). "
                "Your Business plan allows up to 4 parallel jobs, so splitting costs nothing extra. "
                "I have linked the article to your case so the next agent sees it."
            )
        )
        if day == days // 2:
            msgs.append(
                Message.user(
                    [TextPart("Here is what the export page shows right now."), _screenshot()],
                )
            )
            msgs.append(
                Message.assistant(
                    "The screenshot shows export #8871 failing with a 504 after the 300-second gateway "
                    "timeout; that matches the warning. Turn on chunked export (256 MB chunks) to keep "
                    "each upload under the limit."
                )
            )
    msgs.append(Message.user("Thanks! Can you summarize everything we changed for our change log?"))
    return msgs


def run_demo(
    db_path: str,
    out: TextIO,
    *,
    tokenizer: str | None = None,
    reserve: int | None = None,
    terminal: bool | None = None,
    width: int | None = None,
) -> str:
    """Store the demo conversation in ``db_path`` and draw its windows; returns the conversation id.

    Every argument is checked (the tokenizer loaded, the reserve fitted against both models,
    the database file inspected) before anything is written. ``terminal``/``width``: as
    :func:`convkit._view.render`.
    """
    from .store import Store

    counter = counter_for(tokenizer)
    check_reserve(get_model(_VISION), reserve)  # the smaller window of the two
    messages = demo_conversation()
    vision = WindowSettings.of(_VISION, counter=counter, reserve=reserve)
    text = WindowSettings.of(_TEXT, counter=counter, reserve=reserve, images="drop")
    summarize = attrs.evolve(vision, strategy="summarize")
    # a reserve that leaves too little room for any of the three windows fails here, before any write
    for settings in (vision, text, summarize):
        fit(messages, settings=settings, summarizer=ExtractiveSummarizer())
    path = sqlite_file(db_path, writes=True)  # the demo creates it, or adds to a convkit database
    url = f"sqlite:///{path}"
    try:  # the demo owns its file: one written by an older convkit is upgraded, not refused
        store = Store(url, counters=[counter], upgrade=True)
    except DatabaseError as exc:
        raise DatabaseError(f"--db {path}: {exc}") from None
    with store:
        conv = store.create_conversation(title="Northwind support: acme-retail")
        store.extend(conv.id, messages)
        _, total = latest_conversations(store, 1)
        out.write(
            f"Stored {len(messages)} messages (tool calls, a screenshot, a pinned note)\n"
            f"as conversation {conv.id}\nin the SQLite database {path}\n"
            f"Each run of `convkit demo` adds a new conversation: this database now holds {total}.\n"
            f"Counting with {counter!r}.\n"
        )
        draw = partial(_draw, out, messages, counter, terminal=terminal, width=width)
        draw(
            store.window(conv.id, settings=vision),
            f"{_VISION} ({vision.spec.context_window:,}-token window, {vision.reserve:,} reserved for the "
            "reply)",
            "error",
        )
        draw(
            store.window(conv.id, settings=text),
            f"{_TEXT} ({text.spec.context_window:,}-token window, text only: the image becomes a note)",
            "drop",
        )
        summarized = store.window(conv.id, settings=summarize, summarizer=ExtractiveSummarizer())
        draw(
            summarized,
            f"{_VISION}, strategy summarize (the offline extractive summarizer: it quotes, "
            "it does not write)",
            "error",
        )
        if summarized.summary is not None:
            first, last = summarized.summary.first + 1, summarized.summary.last + 1
            out.write(
                f"The summary (stored in the database with its range, seqs {first}-{last}) starts:\n"
                + "".join(f"  | {_cut(line, 74)}\n" for line in summarized.summary.text.splitlines()[:4])
            )
    again = f"convkit show --db {shlex.quote(path)} --conversation {conv.id} --model {_VISION}"
    if tokenizer:
        again += f" --tokenizer {shlex.quote(os.path.abspath(tokenizer))}"
    if reserve is not None:
        again += f" --reserve {reserve}"
    out.write(
        f"\nAll {len(messages)} originals stay in the database {path}.\n"
        f"See this conversation's window again with\n  {again}\n"
        f"(add --strategy summarize for the summary), or read its messages with\n"
        f"  convkit.Store({url!r}).messages({conv.id!r})\n"
    )
    return conv.id


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _draw(
    out: TextIO,
    messages: list[Message],
    counter: TokenCounter,
    result: FitResult,
    title: str,
    images: ImagePolicy,
    *,
    terminal: bool | None,
    width: int | None,
) -> None:
    spec = get_model(result.model)
    counts = counter.content_tokens(apply_image_policy(messages, spec, images))
    view = window_view(
        result, rows_for(result, messages, counts), title=title, numbering="seq", counter=counter
    )
    out.write("\n")
    render(view, out, terminal=terminal, width=width)


def add_parser(sub: Any) -> None:
    """Register ``convkit demo`` on the subcommand set ``sub``."""
    d = sub.add_parser(
        "demo",
        help="store a demo conversation in SQLite and show its windows",
        description="Store a demo support conversation in an SQLite file (each run adds a new "
        "conversation) and show the windows convkit would send to grok-2-vision-1212 and grok-2-1212.",
    )
    d.add_argument(
        "--db",
        default="convkit-demo.db",
        help="SQLite file to use, created if missing (default: ./convkit-demo.db)",
    )
    add_tokenizer(d)
    add_reserve(d)
    d.set_defaults(func=_cmd_demo)


def _cmd_demo(args: Any, out: TextIO) -> int:
    run_demo(args.db, out, tokenizer=args.tokenizer, reserve=args.reserve)
    return 0
