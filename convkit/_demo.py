"""``convkit demo``: the main job on the embedded SQLite default.

Stores a realistic support conversation (system prompt, tool calls, a
screenshot) in a local SQLite file, then prints the window convkit would send
to grok-2-vision-1212 (8192 tokens, takes images) and grok-2-1212 (131072,
text only, so the image becomes a visible note), with kept and dropped
messages, tokens, budget and cost estimate, and says where the database is.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, TextIO

from ._cli_args import add_reserve, add_tokenizer
from ._counting import EstimateCounter, HFTokenCounter, TokenCounter
from ._fitting import FitResult
from ._messages import ImagePart, Message, TextPart, ToolCall
from ._models import get_model
from ._summarize import ExtractiveSummarizer

__all__ = ["add_parser", "demo_conversation", "run_demo"]

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


def _print_window(out: TextIO, title: str, result: FitResult, messages: list[Message]) -> None:
    kept = set(result.kept)
    spec = get_model(result.model)
    out.write(f"\n== {title}\n")
    i = len(messages) if not result.dropped else 0
    if not result.dropped:
        out.write(f"   all {len(messages)} messages kept\n")
    while i < len(messages):
        if i not in kept:  # collapse a run of dropped messages into one line
            j = i
            while j + 1 < len(messages) and j + 1 not in kept:
                j += 1
            what = "dropped"
            if result.summary is not None and result.summary.first <= i <= result.summary.last:
                what = "summarized"
            out.write(f"   {'':>3}  {what:<9} messages {i + 1}-{j + 1} ({j - i + 1} messages)\n")
            i = j + 1
            continue
        m = messages[i]
        text = m.text.replace("\n", " ") or ", ".join(f"{c.name}()" for c in m.tool_calls)
        if m.images:
            text = f"[{len(m.images)} image] {text}"
        pin = "*" if m.pinned else " "
        out.write(f"   {i + 1:>3}{pin} kept {m.role:<9} {text[:64]}\n")
        i += 1
    out.write(
        f"   -> {len(result.kept)} kept, {len(result.dropped)} dropped; {result.prompt_tokens} of "
        f"{result.budget} budget tokens (window {result.context_window}, reserve {result.reserve}); "
        f"estimated cost ${result.estimate_cost(result.reserve):.5f} "
        f"(${spec.price_text_in:.2f}/M in, ${spec.price_completion:.2f}/M out, reserve counted as output)\n"
    )


def run_demo(db_path: str, out: TextIO, *, tokenizer: str | None = None, reserve: int | None = None) -> str:
    """Store the demo conversation in ``db_path`` and print its windows; returns the conversation id."""
    from .store import Store

    counter: TokenCounter = HFTokenCounter.from_file(tokenizer) if tokenizer else EstimateCounter()
    url = f"sqlite:///{os.path.abspath(db_path)}"
    messages = demo_conversation()
    # the demo owns its file: one written by an older convkit is upgraded, not refused
    with Store(url, counters=[counter], upgrade=True) as store:
        conv = store.create_conversation(title="Northwind support: acme-retail")
        store.extend(conv.id, messages)
        out.write(
            f"Stored {len(messages)} messages (tool calls, a screenshot, a pinned note) as conversation "
            f"{conv.id}\nin the SQLite database {os.path.abspath(db_path)}\ncounting with {counter!r}\n"
        )
        vision = store.window(conv.id, model="grok-2-vision-1212", counter=counter, reserve=reserve)
        _print_window(
            out,
            f"grok-2-vision-1212 (8192-token window, {vision.reserve} reserved for the reply)",
            vision,
            messages,
        )
        text = store.window(conv.id, model="grok-2-1212", counter=counter, reserve=reserve, images="drop")
        _print_window(
            out, "grok-2-1212 (131072-token window, text only: the image becomes a note)", text, messages
        )
        summarized = store.window(
            conv.id,
            model="grok-2-vision-1212",
            counter=counter,
            reserve=reserve,
            strategy="summarize",
            summarizer=ExtractiveSummarizer(),
        )
        _print_window(
            out,
            "grok-2-vision-1212, strategy='summarize' (offline extractive summarizer: it quotes, it does "
            "not write)",
            summarized,
            messages,
        )
        if summarized.summary is not None:
            first, last = summarized.summary.first + 1, summarized.summary.last + 1
            out.write(
                f"   the summary (stored with its range, messages {first}-{last}) starts:\n"
                + "".join(f"     | {line[:90]}\n" for line in summarized.summary.text.splitlines()[:4])
            )
        out.write(
            f"\nAll {store.get_conversation(conv.id).message_count} originals stay in the database "
            f"{os.path.abspath(db_path)} (* = pinned).\nRead them back with "
            f"convkit.Store({url!r}).messages({conv.id!r})\n"
        )
    return conv.id


def add_parser(sub: Any) -> None:
    """Register ``convkit demo`` on the subcommand set ``sub``."""
    d = sub.add_parser("demo", help="store a demo conversation in SQLite and show its windows")
    d.add_argument("--db", default="convkit-demo.db", help="SQLite file to use (default: ./convkit-demo.db)")
    add_tokenizer(d)
    add_reserve(d)
    d.set_defaults(func=_cmd_demo)


def _cmd_demo(args: Any, out: TextIO) -> int:
    run_demo(args.db, out, tokenizer=args.tokenizer, reserve=args.reserve)
    return 0
