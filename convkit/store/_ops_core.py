"""The vocabulary of the store's operations: requests, the stepping of generators, shared helpers.

Every operation of the store is written once, as a generator ("sans-I/O"): it
yields :class:`Exec` requests (a statement and its parameters) and receives each
statement's result; its return value is the operation's result. The sync driver
(:func:`convkit.store._sync.drive`) runs it on a ``Connection`` and the async one
(:func:`convkit.store._aio.adrive`) on an ``AsyncConnection``, each inside one
transaction per operation, so the two twins cannot drift apart. The operations
themselves live in the modules named for their jobs: ``_conversations``,
``_appends``, ``_totals``, ``_windows``, ``_forks`` and ``_turns``.

Here: :class:`Exec`, :data:`Op`, :class:`Rows` and :func:`run_raw` (the window's
``raw`` requests, run on the driver's cursor with SQL compiled once per dialect),
and what several operations share (the drivers step them with
:class:`convkit._stepper.Stepper`): the decoding of message rows read in the same transaction, timestamps,
the dialect's INSERT, the batch size.

Invariants: no function here does I/O itself (except :func:`run_raw`, which the
drivers call); a request's result is exactly what the driver's ``execute``
returns (or :class:`Rows` for ``raw`` ones); every operation runs inside the one
transaction its driver opened, so what it reads and writes is consistent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sqlite_dialect

from .._messages import Message
from . import _schema as t
from ._codec import BODY_COLUMNS, decode_rows, image_shas

__all__ = ["CHUNK", "Exec", "Op", "Rows", "decode_body", "driver_sql", "run_raw"]

#: Rows per INSERT batch (well under SQLite's bound-parameter limit).
CHUNK = 2000


@attrs.frozen
class Exec:
    """One statement to run, with optional parameters (a list means executemany).

    ``raw``: run the statement's SQL (compiled once per dialect) on the driver's cursor, inside
    the operation's transaction; the result is :class:`Rows` of plain tuples, without
    SQLAlchemy's result and type processing (the window's statements: their parameters are
    strings and integers, and booleans may come back as 0/1).
    """

    stmt: sa.Executable
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    raw: bool = False


T = TypeVar("T")
S = TypeVar("S")
Op: TypeAlias = Generator[Exec, Any, T]


@attrs.frozen
class Rows:
    """The rows of a ``raw`` request (tuples), with the two accessors operations use."""

    rows: list[Any]

    def all(self) -> list[Any]:
        return self.rows

    def first(self) -> Any:
        return self.rows[0] if self.rows else None


def run_raw(conn: sa.Connection, req: Exec) -> Rows:
    """Run a ``raw`` request on the connection's driver cursor (driver errors wrapped as SQLAlchemy's)."""
    sql, params = driver_sql(conn.dialect, req)
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        cur.execute(sql, params)
        rows = cur.fetchall()
    except conn.dialect.loaded_dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, params, exc, conn.dialect.loaded_dbapi.Error) from exc
    finally:
        cur.close()
    if rows and type(rows[0]) is not tuple:  # asyncpg's records
        rows = [tuple(r) for r in rows]
    return Rows(list(rows))


_DRIVER_SQL: dict[tuple[str, str, sa.Executable], tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}


def driver_sql(dialect: sa.Dialect, req: Exec) -> tuple[str, tuple[Any, ...] | dict[str, Any] | None]:
    """The SQL string and driver parameters of a ``raw`` request, for ``exec_driver_sql``.

    Compiled once per (dialect, driver, statement): raw statements are built once and kept.
    """
    key = (dialect.name, dialect.driver, req.stmt)
    got = _DRIVER_SQL.get(key)
    if got is None:
        assert isinstance(req.stmt, sa.ClauseElement)
        compiled = req.stmt.compile(dialect=dialect)
        names = tuple(getattr(compiled, "positiontup", None) or ()) if dialect.positional else None
        got = _DRIVER_SQL[key] = (compiled.string, names, dict(compiled.params))
    sql, names, defaults = got
    assert req.params is None or isinstance(req.params, Mapping), "raw requests run one parameter set"
    params = {**defaults, **req.params} if req.params else defaults
    if names is None:
        return sql, params
    return sql, tuple(params[name] for name in names)


def utc_now() -> dt.datetime:
    """Now, timezone-aware (UTC): every stored timestamp."""
    return dt.datetime.now(dt.timezone.utc)


def insert_for(dialect: str, table: sa.Table) -> Any:
    """The dialect's INSERT (with ``on_conflict_do_*``) of ``table``."""
    return (pg.insert if dialect == "postgresql" else sqlite_dialect.insert)(table)


def body() -> list[sa.Column[Any]]:
    """The columns of :data:`BODY_COLUMNS` (what decoding a message reads), in that order."""
    return [t.messages.c[name] for name in BODY_COLUMNS]


def _load_images(shas: set[str]) -> Op[dict[str, bytes]]:
    out: dict[str, bytes] = {}
    ordered = sorted(shas)
    for i in range(0, len(ordered), 500):
        rows = (
            yield Exec(
                sa.select(t.images.c.sha256, t.images.c.data).where(
                    t.images.c.sha256.in_(ordered[i : i + 500])
                )
            )
        ).all()
        out.update({r.sha256: bytes(r.data) for r in rows})
    return out


def decode_body(rows: Sequence[Any], images: bool = True) -> Op[list[Message]]:
    """Decode positional rows of :data:`BODY_COLUMNS` (image bytes read in the same transaction).

    ``images=False``: the conversation holds no image, so no row is searched for one.
    """
    shas = {s for r in rows for s in image_shas(r[2])} if images else None
    imgs: dict[str, bytes] = (yield from _load_images(shas)) if shas else {}
    return decode_rows(rows, imgs)
