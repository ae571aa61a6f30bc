"""JSONL of OpenAI-shaped messages: one message object per line.

Reading is all-or-nothing: the first bad line raises an
:class:`~convkit._errors.InvalidMessageError` naming the source and line, and
no messages are returned. Writing uses :meth:`Message.to_dict`, so convkit's
``pinned`` and ``metadata`` survive a round trip.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from ._errors import InvalidMessageError, StoreError
from ._messages import Message, MessageLike, as_message

__all__ = ["dumps_jsonl", "loads_jsonl", "read_jsonl", "write_jsonl_text"]


def loads_jsonl(text: str, *, source: str = "<jsonl>", allow_empty: bool = False) -> list[Message]:
    """Messages from JSONL text; blank lines are skipped."""
    out: list[Message] = []
    # lines end at "\n" only: str.splitlines() would also split inside JSON strings that hold
    # U+0085, U+2028, U+2029 or other separators, which json.dumps(ensure_ascii=False) leaves raw
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise InvalidMessageError(f"{source}:{lineno}: not valid JSON ({exc})") from None
        except RecursionError:  # json's decoder recurses once per [ or {
            raise InvalidMessageError(
                f"{source}:{lineno}: JSON nested too deeply to read (arrays/objects inside each other "
                "thousands of levels deep); a message is one flat JSON object per line"
            ) from None
        try:
            out.append(as_message(obj))
        except InvalidMessageError as exc:
            raise type(exc)(f"{source}:{lineno}: {exc}") from None
    if not out and not allow_empty:
        raise InvalidMessageError(f"{source} holds no messages (one JSON object per line expected)")
    return out


def read_jsonl(path: str | os.PathLike[str], *, allow_empty: bool = False) -> list[Message]:
    """Messages from a JSONL file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidMessageError(f"cannot read {p}: {exc}") from None
    return loads_jsonl(text, source=str(p), allow_empty=allow_empty)


def dumps_jsonl(messages: Iterable[MessageLike]) -> str:
    """JSONL text for the messages (with convkit's own fields)."""
    return "".join(json.dumps(as_message(m).to_dict(), ensure_ascii=False) + "\n" for m in messages)


def write_jsonl_text(text: str, dest: str | os.PathLike[str] | IO[str]) -> None:
    """Write JSONL ``text`` to an open file, or to a path atomically (a temporary file, then a rename).

    A failed write (a full disk, a missing folder, no permission) raises
    :class:`~convkit._errors.StoreError` naming the destination; the temporary
    file is removed and an existing file at the path is left as it was.
    """
    if not isinstance(dest, str | os.PathLike):
        try:
            dest.write(text)
        except OSError as exc:
            where = getattr(dest, "name", None) or type(dest).__name__
            raise StoreError(f"cannot write the export to {where}: {exc.strerror or exc}") from None
        return
    path = os.fspath(dest)
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise StoreError(
            f"cannot write the export to {path}: {exc.strerror or exc}; the file was left as it was "
            "(check the free space, that the folder exists, and permissions)"
        ) from None
