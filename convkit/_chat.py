"""``convkit chat``: an interactive terminal chat with Grok, stored in SQLite.

Reads one user message per line from standard input (``/quit`` or end of
input stops; ``/usage`` prints the conversation's totals), streams each reply,
and prints the turn's tokens and cost. The conversation is persisted; pass
``--conversation ID`` to continue one. Needs ``XAI_API_KEY`` (or
``--base-url`` of a stand-in plus a key); without a key it says so and exits 2.
A failed turn keeps the message (send it again to retry). With piped input
(standard input not a terminal) a run that had failed turns says how many on
stderr and exits 1; at a terminal the exit code stays 0. Ctrl-C leaves
(exit 130) without storing a reply cut short.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

from ._cli_args import add_reserve, add_tokenizer
from ._counting import EstimateCounter, HFTokenCounter, TokenCounter
from ._errors import APIError, ConvkitError

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["add_parser", "run_chat"]


def run_chat(
    *,
    model: str,
    db: str,
    conversation: str | None,
    base_url: str | None,
    reserve: int | None,
    tokenizer: str | None,
    stdin: TextIO,
    out: TextIO,
) -> int:
    """Run the chat loop; returns the exit code."""
    from ._models import get_model
    from ._session import Session
    from .store import Store
    from .xai._client import DEFAULT_BASE_URL, XAIClient

    spec = get_model(model)
    if not os.environ.get("XAI_API_KEY", "").strip():
        print(
            "convkit: error: no API key. Set XAI_API_KEY (from https://console.x.ai) and run again.",
            file=sys.stderr,
        )
        return 2
    counter: TokenCounter = HFTokenCounter.from_file(tokenizer) if tokenizer else EstimateCounter()
    interactive = stdin.isatty()
    with (
        Store(f"sqlite:///{os.path.abspath(db)}", counters=[counter]) as store,
        XAIClient(base_url=base_url or DEFAULT_BASE_URL) as client,
    ):
        conv = (
            store.get_conversation(conversation) if conversation else store.create_conversation(title="chat")
        )
        session = Session(store, conv.id, model=spec, client=client, counter=counter, reserve=reserve)
        out.write(f"convkit chat: {spec.name}, conversation {conv.id} in {os.path.abspath(db)}\n")
        out.write("Type a message; /usage for totals, /quit to leave.\n")
        out.flush()
        try:
            turns, failed = _loop(session, stdin, out, interactive)
        except KeyboardInterrupt:  # Ctrl-C: leave quietly; a reply cut short was not stored
            out.write("\n")
            out.flush()
            return 130
    if failed and not interactive:
        print(
            f"convkit: error: {failed} of {turns} turns failed (the [error: ...] lines of the transcript "
            "say why; the messages are stored, continue with --conversation to send them again)",
            file=sys.stderr,
        )
        return 1
    return 0


def _loop(session: Session, stdin: TextIO, out: TextIO, interactive: bool) -> tuple[int, int]:
    """One user message per line until /quit or end of input; returns (turns sent, turns failed)."""
    from .xai._protocol import Done, TextDelta, ToolCallDelta

    turns = failed = 0
    while True:
        if interactive:
            out.write("you> ")
            out.flush()
        line = stdin.readline()
        if not line:
            if interactive:  # Ctrl-D: end the prompt's line
                out.write("\n")
                out.flush()
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/usage":
            totals = session.usage()
            out.write(
                f"[{totals.turns} turns: {totals.prompt_tokens} prompt + {totals.completion_tokens} "
                f"completion tokens, ${totals.cost_usd:.6f}]\n"
            )
            continue
        out.write("grok> ")
        out.flush()
        turns += 1
        try:
            for event in session.send_stream(text):
                if isinstance(event, TextDelta):
                    out.write(event.text)
                    out.flush()
                elif isinstance(event, ToolCallDelta) and event.name:
                    out.write(f"[tool call: {event.name}]")
                elif isinstance(event, Done):
                    u = event.completion.usage
                    out.write(
                        f"\n[{u.prompt_tokens} prompt + {u.completion_tokens} completion tokens, "
                        f"${event.completion.cost_usd:.6f}]\n"
                    )
                    out.flush()
        except APIError as exc:
            failed += 1
            out.write(f"\n[error: {exc}; your message is kept, send it again to retry]\n")
        except ConvkitError as exc:
            failed += 1
            out.write(f"\n[error: {exc}]\n")
        out.flush()
    return turns, failed


def add_parser(sub: Any) -> None:
    """Register ``convkit chat`` on the subcommand set ``sub``."""
    c = sub.add_parser("chat", help="chat with Grok in the terminal; the conversation is stored")
    c.add_argument("--model", default="grok-2-1212", help="model name or alias (default grok-2-1212)")
    c.add_argument("--db", default="convkit-chat.db", help="SQLite file (default ./convkit-chat.db)")
    c.add_argument("--conversation", help="continue this conversation id")
    c.add_argument("--base-url", help="API base URL (default https://api.x.ai/v1)")
    add_reserve(c, "each reply (sent as max_tokens)")
    add_tokenizer(c)
    c.set_defaults(func=_cmd_chat)


def _cmd_chat(args: Any, out: TextIO) -> int:
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
