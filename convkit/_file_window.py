"""The window of a JSONL file, read once and counted newest first (``convkit fit FILE``).

A file may hold far more messages than any window. :func:`fit_file` reads it
once, front to back, checking every line (UTF-8, JSON, a valid message, tool
links) and noting where each message starts, the leading system run and the
pinned units, but keeps no message. Then it reads the newest messages back,
in chunks that double, and plans over them with :mod:`convkit._scan`: it
counts about what the window keeps, and memory holds what it read back (at
most about twice the kept part, plus the pinned messages), the per-message
indexes and the file's tool-call ids (to check tool links). Standard input
(``-``) and other streams that cannot seek (a FIFO, ``<(...)``) are copied to
a temporary file as they are read, so they are read once too.

Messages are numbered as the file numbers them: errors name the line, and
:attr:`FileWindow.lines` maps each message to its line. A UTF-8 byte-order
mark at the start is accepted; blank lines are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from array import array
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import BinaryIO

import attrs

from ._engine.settings import WindowSettings
from ._engine.units import Units
from ._errors import InvalidConversationError, InvalidMessageError, UnsupportedInputError
from ._messages import Message, as_message
from ._scan import FIRST_CHUNK, Part, part_start, plan_part

__all__ = ["FileWindow", "fit_file"]

_REPORT_EVERY = 1 << 20  # bytes between progress reports


@attrs.frozen
class FileWindow:
    """A file's window: the plan, the messages it read back, and where each message is."""

    part: Part  # the window (0-based message positions) and, by 1-based position, what was counted
    messages: Mapping[int, Message]  # by 1-based position: every message read back
    lines: array[int]  # lines[i]: the file line of message i (0-based)
    keep: frozenset[int]  # 1-based positions of the leading system run and the pinned units
    source: str


@attrs.frozen
class _Index:
    offsets: array[int]  # byte offset of each message's line
    lines: array[int]
    units: Units
    prefix: int  # leading system messages
    size: int  # bytes read


#: Opens the report of one step: ``steps(description, total, unit)`` -> a ``report(done)`` context.
Steps = Callable[[str, int | None, str], AbstractContextManager[Callable[[int], None]]]


def _quiet(description: str, total: int | None, unit: str) -> AbstractContextManager[Callable[[int], None]]:
    return nullcontext(lambda done: None)


def fit_file(
    path: str, settings: WindowSettings, *, stdin: BinaryIO | None = None, steps: Steps = _quiet
) -> FileWindow:
    """The window of the JSONL file at ``path`` (``-``: ``stdin``, default the process's).

    ``steps`` reports the two passes, one after the other: reading (bytes) and counting
    (messages read back).
    """
    with _opened(path, stdin) as (f, source):
        with steps(f"reading {source}", os.fstat(f.fileno()).st_size, "bytes") as report:
            index = _read_index(f, source, settings, report)
        with steps("counting newest first", None, "messages") as counted:
            return _plan(f, source, index, settings, counted)


@contextmanager
def _opened(path: str, stdin: BinaryIO | None) -> Iterator[tuple[BinaryIO, str]]:
    if path == "-":
        with _spooled(stdin if stdin is not None else sys.stdin.buffer) as spool:
            yield spool, "<stdin>"
        return
    if os.path.isdir(path):
        raise InvalidMessageError(f"cannot read {path}: it is a directory, not a JSONL file")
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the caller's block
    except OSError as exc:
        raise InvalidMessageError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        if f.seekable():
            yield f, path
        else:  # a pipe (a FIFO, <(...), /dev/stdin): read it once, into a file that can seek
            with _spooled(f) as spool:
                yield spool, path


@contextmanager
def _spooled(stream: BinaryIO) -> Iterator[BinaryIO]:
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(stream, spool)
        spool.seek(0)
        yield spool


def _message(raw: bytes, source: str, lineno: int, *, first: bool) -> Message | None:
    """The message on one line, or ``None`` for a blank line (of any whitespace)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessageError(
            f"{source}:{lineno}: not UTF-8 text (byte {raw[exc.start]:#04x} at column {exc.start + 1}); "
            "save the file as UTF-8"
        ) from None
    if first:
        text = text.removeprefix("\ufeff")
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except RecursionError:
        raise InvalidMessageError(f"{source}:{lineno}: JSON nested too deeply") from None
    except ValueError as exc:
        raise InvalidMessageError(f"{source}:{lineno}: not valid JSON ({exc})") from None
    try:
        return as_message(obj)
    except InvalidMessageError as exc:
        raise type(exc)(f"{source}:{lineno}: {exc}") from None


def _read_index(f: BinaryIO, source: str, settings: WindowSettings, report: Callable[[int], None]) -> _Index:
    """Check every line and index the messages; keep none of them."""
    refuse_images = not settings.spec.supports_images and settings.images == "error"
    offsets, lines = array("q"), array("q")
    units = Units()
    owner_of: dict[str, int] = {}
    prefix, leading = 0, True
    offset, lineno, reported = 0, 0, 0
    for raw in f:
        lineno += 1
        at, offset = offset, offset + len(raw)
        if offset - reported >= _REPORT_EVERY:
            report(offset)
            reported = offset
        if not raw.strip():
            continue
        m = _message(raw, source, lineno, first=at == 0)
        if m is None:
            continue
        if refuse_images and m.images:
            raise UnsupportedInputError(
                f"{source}:{lineno}: the message holds an image, but {settings.spec.name} takes text only; "
                "pass --images drop to replace each image by a note, or choose a model that takes images "
                "(e.g. grok-2-vision-1212)"
            )
        i = len(offsets)
        owner = None
        if m.role == "tool":
            owner = owner_of.get(m.tool_call_id) if m.tool_call_id is not None else None
            if owner is None:
                raise InvalidConversationError(
                    f"{source}:{lineno}: a tool result for call id {m.tool_call_id!r}, which no earlier "
                    "line's assistant message made; put the assistant message with that tool call first"
                )
        leading = leading and m.role == "system"
        prefix += leading
        units.add(i, owner=owner, pin=m.pinned or leading)
        for c in m.tool_calls:
            owner_of[c.id] = i
        offsets.append(at)
        lines.append(lineno)
    report(offset)
    if not offsets:
        raise InvalidMessageError(f"{source} holds no messages (one JSON object per line expected)")
    return _Index(offsets, lines, units, prefix, offset)


def _plan(
    f: BinaryIO, source: str, index: _Index, settings: WindowSettings, counted: Callable[[int], None]
) -> FileWindow:
    """Read the newest messages back, chunk by chunk, until the plan no longer depends on older ones."""
    n = len(index.offsets)
    starts = index.units.starts
    bounds = [*starts, n]
    keep = frozenset(s + 1 for u in index.units.pinned for s in range(bounds[u], bounds[u + 1]))
    read: dict[int, Message] = {}

    def read_at(s: int) -> Message:
        f.seek(index.offsets[s - 1])
        m = _message(f.readline(), source, index.lines[s - 1], first=index.offsets[s - 1] == 0)
        assert m is not None  # the index holds message lines only
        return m

    def unit_start(s: int) -> int:
        return starts[index.units.unit_of(s - 1)] + 1

    for s in sorted(keep):
        read[s] = read_at(s)
    lo, chunk = n + 1, FIRST_CHUNK
    while True:
        a = max(1, lo - chunk)
        for s in range(a, lo):
            if s not in read:
                read[s] = read_at(s)
        lo, chunk = a, chunk * 2
        counted(len(read))
        start = part_start(n, lo, index.prefix, unit_start, lambda s: read[s].role)
        if start is None:
            continue
        positions = [s for s in sorted(read) if s >= start or s in keep]
        part = plan_part(settings, n, start, positions, [read[s] for s in positions])
        if part is not None:
            prev = 0  # a dropped run of one message is shown as that message: read it too
            for a, b in [*part.result.kept_spans, (n, n)]:
                if a - prev == 1 and a not in read:
                    read[a] = read_at(a)
                prev = b
            return FileWindow(part, read, index.lines, keep, source)
