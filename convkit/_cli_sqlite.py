"""The one check of an SQLite file a CLI command is given (``--db PATH``), before it opens it.

:func:`sqlite_file` reads only: it refuses, naming the path and the flag and
saying what to do, a directory, a missing folder, a missing file (unless the
command creates it), something that is not a regular file, an unreadable
file, a file that is not SQLite, another application's SQLite database (a
command that writes would add convkit's tables to it) and a read-only file
a command must write. So ``demo``, ``chat`` and ``show`` fail before they
create or change anything.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from ._errors import ValidationError

__all__ = ["convkit_tables", "sqlite_file"]

_HEADER = b"SQLite format 3\x00"


def sqlite_file(given: str, *, writes: bool, flag: str = "--db", missing: str = "") -> str:
    """The absolute path of ``given``, refused unless the command can use it.

    ``writes``: the command creates a missing file (in a folder that exists) and writes to it;
    otherwise the file must exist, may be read-only, and must already hold convkit's tables
    (opening any other file would change it: SQLite writes its journal mode into the file).
    ``missing``: advice added when a file that must exist does not.
    """
    path = os.path.abspath(given)
    file, folder = Path(path), Path(path).parent
    if file.is_dir():
        raise ValidationError(f"{flag} {path} is a directory; pass the path of an SQLite file")
    if not file.exists():
        if not folder.is_dir():
            raise ValidationError(
                f"{flag} {path}: the folder {folder} does not exist; create it first, or pass {flag} a "
                "file in an existing folder"
            )
        if not writes:
            raise ValidationError(f"{flag} {path}: no such file" + (f"; {missing}" if missing else ""))
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ValidationError(
                f"{flag} {path}: cannot create a file in {folder}; pass {flag} a file in a folder you can "
                "write to"
            )
        return path
    if not file.is_file():
        raise ValidationError(f"{flag} {path} is not a regular file; pass {flag} an SQLite file")
    try:
        with file.open("rb") as f:
            head = f.read(len(_HEADER))
    except OSError as exc:
        raise ValidationError(
            f"{flag} {path} cannot be read ({exc.strerror or exc}); check its permissions"
        ) from None
    if head and head != _HEADER:
        wanted = "a new file name or a convkit database" if writes else "a database convkit wrote"
        raise ValidationError(f"{flag} {path} is not an SQLite database; pass {flag} {wanted}")
    if not writes and (not head or not convkit_tables(path, flag)):
        raise ValidationError(
            f"{flag} {path} holds no convkit conversations (it has no convkit tables); pass the database "
            "convkit wrote" + (f", or: {missing}" if missing else "")
        )
    if writes:
        tables = _tables(path, flag) if head else []
        if tables and not any(t.startswith("convkit_") for t in tables):
            raise ValidationError(
                f"{flag} {path} is another application's SQLite database (tables {', '.join(tables[:5])}); "
                f"convkit adds its tables only to a new file or a convkit database: pass {flag} another file"
            )
        if not os.access(file, os.W_OK) or not os.access(folder, os.W_OK | os.X_OK):
            raise ValidationError(
                f"{flag} {path} is read-only here (SQLite also writes {file.name}-wal beside it in "
                f"{folder}); pass {flag} a file in a folder you can write to"
            )
    return path


def convkit_tables(path: str, flag: str = "--db") -> list[str]:
    """convkit's tables in the SQLite file (opened read-only)."""
    return [t for t in _tables(path, flag) if t.startswith("convkit_")]


def _tables(path: str, flag: str) -> list[str]:
    try:
        with closing(sqlite3.connect(f"{Path(path).as_uri()}?mode=ro", uri=True)) as db:
            names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    except sqlite3.Error as exc:
        raise ValidationError(
            f"{flag} {path} cannot be read as an SQLite database ({exc}); pass {flag} a new file name or "
            "a convkit database"
        ) from None
    return sorted(names)
