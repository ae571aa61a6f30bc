"""``convkit chat``: an interactive terminal chat with Grok, stored in SQLite.

Reads one user message per line from standard input (``/quit`` or end of
input stops; ``/usage`` prints the conversation's totals), streams each reply,
and prints the turn's tokens and cost. The conversation is persisted; pass
``--conversation ID`` to continue one. Needs ``XAI_API_KEY`` (or
``--base-url`` of a stand-in plus a key); ``--stand-in`` instead starts
convkit's own stand-in for the xAI API (:class:`convkit.testing.XAIStandIn`,
standard library only) on 127.0.0.1 and chats with it: no network, no key,
echoed replies.

Every flag is checked before the database is touched: an unknown model, a
missing key, an unreadable tokenizer, a reserve that leaves no room, a
``--db`` that cannot be an SQLite file here, or a ``--conversation`` the
file does not hold exit 2 (``convkit: error: ...`` on stderr, from
:func:`convkit._cli.main`) without creating or changing the file.

A failed turn keeps the message (send it again to retry). With piped input
(standard input not a terminal) a run that had failed turns says how many on
stderr and exits 1; at a terminal the exit code stays 0. Ctrl-C leaves
(exit 130) without storing a reply cut short.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from ._cli_args import add_reserve, add_tokenizer, check_reserve, counter_for, model_flag
from ._cli_sqlite import convkit_tables, sqlite_file
from ._errors import (
    APIError,
    AuthenticationError,
    ConversationNotFoundError,
    ConvkitError,
    DatabaseError,
    StoreError,
)

if TYPE_CHECKING:
    from ._counting import TokenCounter
    from ._models import ModelSpec
    from ._session import Session
    from .store import Store
    from .xai._client import XAIClient

__all__ = ["add_parser", "run_chat"]

NO_KEY = (
    "no API key. Set XAI_API_KEY (create a key at https://console.x.ai) and run again, "
    "or try `convkit chat --stand-in` to chat offline with convkit's built-in stand-in (it echoes)."
)


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
    stand_in: bool = False,
) -> int:
    """Run the chat loop; returns the exit code (ConvkitError is left to the caller: exit 2)."""
    from .xai._client import DEFAULT_BASE_URL, XAIClient

    # every flag checked before the database is opened (nothing is created or changed before)
    spec = model_flag(model)
    key = None if stand_in else _api_key()
    counter = counter_for(tokenizer)
    check_reserve(spec, reserve)
    path = os.path.abspath(db)
    _check_db(path, conversation)
    interactive = stdin.isatty()
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(
            _stand_in() if stand_in else XAIClient(key, base_url=base_url or DEFAULT_BASE_URL)
        )
        store, conv_id = _open(stack, path, counter, conversation)
        session = _session(store, conv_id, spec, client, counter, reserve)
        out.write(f"convkit chat: {spec.name}, conversation {conv_id} in {path}\n")
        if stand_in:
            out.write(
                "Offline: replies come from convkit's built-in stand-in for the xAI API on 127.0.0.1, "
                "which echoes your message; no network, no API key (tokens and costs are its estimates). "
                f"The conversation is stored in {path}.\n"
            )
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


# -- checks before anything is written ------------------------------------------------------------------


def _api_key() -> str:
    key = os.environ.get("XAI_API_KEY", "").strip()
    if not key:
        raise AuthenticationError(NO_KEY)
    return key


def _check_db(path: str, conversation: str | None) -> None:
    """Refuse a ``--db`` that cannot work, or a ``--conversation`` it cannot hold; reads only."""
    sqlite_file(path, writes=True)
    if conversation is None:
        return
    if not os.path.exists(path):
        raise StoreError(
            f"no conversation {conversation!r}: {path} does not exist yet; leave out --conversation "
            "to start a new conversation, or pass the --db that holds it"
        )
    if not convkit_tables(path):
        raise StoreError(
            f"no conversation {conversation!r} in {path}: it holds no convkit conversations; leave out "
            "--conversation to start one, or pass the --db that holds it"
        )


# -- opening ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _stand_in() -> Iterator[XAIClient]:
    """The built-in stand-in on 127.0.0.1 and a client of it (never through a proxy from the environment)."""
    import secrets

    import httpx

    # convkit.testing's package imports only the standard library and convkit's core (not hypothesis
    # or jsonschema, which only its strategies and openapi modules need)
    from .testing._server import XAIStandIn
    from .xai._client import XAIClient

    with (
        XAIStandIn(api_key=secrets.token_urlsafe(16)) as xai,
        XAIClient(xai.api_key, base_url=xai.base_url, transport=httpx.HTTPTransport()) as client,
    ):
        yield client


def _open(
    stack: contextlib.ExitStack, path: str, counter: TokenCounter, conversation: str | None
) -> tuple[Store, str]:
    """The store on ``path`` and the conversation's id (a new one unless ``conversation``)."""
    from .store import Store

    try:
        store = stack.enter_context(Store(f"sqlite:///{path}", counters=[counter]))
        if conversation is None:
            return store, store.create_conversation(title="chat").id
        return store, store.get_conversation(conversation).id
    except ConversationNotFoundError:
        raise StoreError(
            f"no conversation {conversation!r} in {path}; leave out --conversation to start a new one"
        ) from None
    except DatabaseError as exc:
        reason = re.sub(r"^.*? failed: \w+: ", "", str(exc))
        raise DatabaseError(
            f"cannot use {path} as the chat database: {reason}; pass --db a new file name or a database "
            "convkit chat wrote before"
        ) from None


def _session(
    store: Store, conv_id: str, spec: ModelSpec, client: XAIClient, counter: TokenCounter, reserve: int | None
) -> Session:
    from ._session import Session

    return Session(store, conv_id, model=spec, client=client, counter=counter, reserve=reserve)


# -- the loop -----------------------------------------------------------------------------------------


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


# -- the command line ---------------------------------------------------------------------------------


def _base_url(text: str) -> str:
    """``--base-url``: an http(s) URL (checked before anything is opened)."""
    from .xai._base import DEFAULT_BASE_URL

    try:
        import httpx

        url = httpx.URL(text)
    except Exception:  # httpx.InvalidURL and friends
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(f"expected an http(s) URL such as {DEFAULT_BASE_URL}, got {text!r}")
    return text


def add_parser(sub: Any) -> None:
    """Register ``convkit chat`` on the subcommand set ``sub``."""
    c = sub.add_parser(
        "chat",
        help="chat with Grok in the terminal; the conversation is stored (--stand-in: offline)",
        description=(
            "Chat with Grok in the terminal: one message per line (/usage for totals, /quit or Ctrl-D to "
            "leave), each reply streamed with its tokens and cost, every turn stored in an SQLite file "
            "(--db) so that --conversation can continue it. Needs an xAI API key in the XAI_API_KEY "
            "environment variable (create one at https://console.x.ai); the key is never printed or "
            "stored. Without a key, --stand-in chats offline with convkit's built-in stand-in for the "
            "xAI API on 127.0.0.1, which echoes your messages."
        ),
        epilog=(
            "Exit codes: 0 done; 1 input was piped and some turns failed (the count is on stderr); "
            "2 a bad flag, no key or an unusable --db (nothing is written); 130 Ctrl-C."
        ),
    )
    c.add_argument("--model", default="grok-2-1212", help="model name or alias (default grok-2-1212)")
    c.add_argument(
        "--db",
        default=None,
        help="SQLite file (default ./convkit-chat.db, or ./convkit-stand-in.db with --stand-in, so echoed "
        "conversations stay apart from real ones)",
    )
    c.add_argument("--conversation", metavar="ID", help="continue this conversation id")
    where = c.add_mutually_exclusive_group()
    where.add_argument(
        "--base-url", type=_base_url, help="API base URL (default https://api.x.ai/v1); needs XAI_API_KEY"
    )
    where.add_argument(
        "--stand-in",
        action="store_true",
        help="offline: chat with convkit's built-in stand-in for the xAI API on 127.0.0.1 (echoed "
        "replies; no network, no XAI_API_KEY needed)",
    )
    add_reserve(c, "each reply (sent as max_tokens)")
    add_tokenizer(c)
    c.set_defaults(func=_cmd_chat)


def _cmd_chat(args: Any, out: TextIO) -> int:
    return run_chat(
        model=args.model,
        db=args.db or ("convkit-stand-in.db" if args.stand_in else "convkit-chat.db"),
        conversation=args.conversation,
        base_url=args.base_url,
        reserve=args.reserve,
        tokenizer=args.tokenizer,
        stdin=sys.stdin,
        out=out,
        stand_in=args.stand_in,
    )
