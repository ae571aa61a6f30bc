"""Progress on stderr for CLI steps that take longer than about a second.

:func:`progress` yields a ``report(done)`` callable for one step. Nothing is
shown unless the stream is a terminal and the step has run longer than
``delay`` seconds; then a transient ``rich`` bar appears and is removed when
the step ends, so piped or captured output never holds progress lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["progress"]


@contextmanager
def progress(
    description: str,
    total: int | None,
    *,
    unit: str = "bytes",
    stream: TextIO | None = None,
    delay: float = 1.0,
) -> Iterator[Callable[[int], None]]:
    """A ``report(done)`` callable for a step of ``total`` units (``None``: unknown); ``unit`` is
    ``"bytes"`` (shown as sizes) or a word for what is counted (``"messages"``)."""
    out = stream if stream is not None else sys.stderr
    if not out.isatty():
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    started = time.monotonic()
    bar: Progress | None = None
    task = None

    def report(done: int) -> None:
        nonlocal bar, task
        if bar is None:
            if time.monotonic() - started < delay:
                return
            amount: ProgressColumn = (
                DownloadColumn() if unit == "bytes" else TextColumn(f"{{task.completed:,.0f}} {unit}")
            )
            timing: ProgressColumn = TimeRemainingColumn() if total is not None else TimeElapsedColumn()
            bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                amount,
                timing,
                console=Console(file=out),
                transient=True,
            )
            bar.start()
            task = bar.add_task(description, total=total)
        assert task is not None
        bar.update(task, completed=done)

    try:
        yield report
    finally:
        if bar is not None:
            bar.stop()
