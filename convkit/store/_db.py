"""Engines for the store: URL handling, SQLite set-up, and error translation.

SQLite files run in WAL mode with a busy timeout, foreign keys on, and every
transaction opened with ``BEGIN IMMEDIATE`` so that concurrent writers queue
for the write lock instead of failing half-way. PostgreSQL runs through
psycopg 3 (sync) and psycopg or asyncpg (async). SQLAlchemy errors become
:class:`~convkit._errors.DatabaseError` with the URL's password hidden.
"""

from __future__ import annotations

import contextlib
import re
import weakref
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from .._errors import DatabaseError, ValidationError

__all__ = [
    "DEFAULT_URL",
    "create_async",
    "create_sync",
    "db_errors",
    "needs_write_lock",
    "safe_url",
    "sqlalchemy_url",
    "take_write_lock",
]

DEFAULT_URL = "sqlite:///convkit.db"
SQLITE_BUSY_TIMEOUT_S = 60.0


def sqlalchemy_url(url: str | URL, *, is_async: bool) -> URL:
    """Normalize a database URL: plain ``postgresql://`` gets psycopg, async SQLite gets aiosqlite."""
    try:
        u = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise ValidationError(f"not a database URL ({exc}); e.g. sqlite:///convkit.db") from None
    backend, _, driver = u.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if not driver or (driver not in ("psycopg", "asyncpg")):
            u = u.set(drivername="postgresql+psycopg")
        if not is_async and driver == "asyncpg":
            u = u.set(drivername="postgresql+psycopg")
    elif backend == "sqlite":
        u = u.set(drivername="sqlite+aiosqlite" if is_async else "sqlite")
    else:
        raise ValidationError(f"convkit stores conversations in SQLite or PostgreSQL, not {backend!r}")
    return u


def safe_url(url: str | URL) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", str(url))


def _is_memory(u: URL) -> bool:
    return u.get_backend_name() == "sqlite" and u.database in (None, "", ":memory:")


def ensure_wal(dbapi_conn: Any) -> None:
    """Put an SQLite file in WAL mode; tolerate other connections doing the same at once.

    Changing the journal mode needs a lock that SQLite's busy handler does not
    always wait for, so a new file opened by many processes at once can answer
    "database is locked": retry briefly (bounded), and skip when already WAL.
    """
    import time

    cur = dbapi_conn.cursor()
    try:
        for attempt in range(50):
            try:
                cur.execute("PRAGMA journal_mode")
                mode = cur.fetchone()
                if mode and str(mode[0]).lower() in ("wal", "memory"):
                    return
                cur.execute("PRAGMA journal_mode = WAL")
                return
            except Exception as exc:  # sqlite3's, or the async adapter's OperationalError
                if "locked" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.01 * (attempt + 1))
    finally:
        cur.close()


#: SQLite engines that :func:`_sqlite_setup` configured (every write transaction opens with
#: ``BEGIN IMMEDIATE``); a user's own engine is not among them.
_CONFIGURED: weakref.WeakSet[Engine] = weakref.WeakSet()


def needs_write_lock(sync_engine: Engine) -> bool:
    """Whether the store must take SQLite's write lock itself (:func:`take_write_lock`).

    True for an SQLite engine convkit did not make: its connections begin transactions the
    driver's way (pysqlite's deferred ``BEGIN`` before the first INSERT, after the reads), so
    two writers could both read the same last seq and one pop or append would be repeated.
    """
    return sync_engine.dialect.name == "sqlite" and sync_engine not in _CONFIGURED


def take_write_lock(conn: sa.Connection) -> None:
    """Take SQLite's write lock as the first statement of a write transaction (on any engine).

    Outside a driver transaction: ``BEGIN IMMEDIATE``. Already inside one (a user's engine that
    emits its own ``BEGIN``): a write that changes nothing, which still takes the lock, so the
    reads that follow see the newest commit and no other writer can run until this one ends.
    """
    dbapi_conn: Any = conn.connection.dbapi_connection
    raw = getattr(dbapi_conn, "_connection", dbapi_conn)  # the aiosqlite adapter wraps its connection
    try:
        in_txn = getattr(raw, "in_transaction", None)
    except Exception:  # sqlite3 refusing a read from another thread: fall back to the no-op write
        in_txn = None
    if in_txn is False:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("UPDATE convkit_conversations SET namespace = namespace WHERE 0")


def _sqlite_setup(sync_engine: Engine) -> None:
    _CONFIGURED.add(sync_engine)

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below own transaction start.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()
        ensure_wal(dbapi_conn)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # writers take the write lock up front (no lock-upgrade deadlocks); readers do not
        read_only = conn.get_execution_options().get("convkit_read", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def create_sync(url: str | URL, **kw: Any) -> Engine:
    u = sqlalchemy_url(url, is_async=False)
    if u.get_backend_name() == "sqlite":
        args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
        if _is_memory(u):
            engine = sa.create_engine(u, connect_args=args, poolclass=StaticPool, **kw)
        else:
            engine = sa.create_engine(u, connect_args=args, **kw)
        _sqlite_setup(engine)
        return engine
    return sa.create_engine(u, pool_pre_ping=True, **kw)


def create_async(url: str | URL, **kw: Any) -> AsyncEngine:
    u = sqlalchemy_url(url, is_async=True)
    if u.get_backend_name() == "sqlite":
        args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
        if _is_memory(u):
            engine = create_async_engine(u, connect_args=args, poolclass=StaticPool, **kw)
        else:
            engine = create_async_engine(u, connect_args=args, **kw)
        _sqlite_setup(engine.sync_engine)
        return engine
    return create_async_engine(u, pool_pre_ping=True, **kw)


@contextlib.contextmanager
def db_errors(what: str) -> Iterator[None]:
    """Turn SQLAlchemy (and driver) errors into DatabaseError; the message names the operation."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        detail = str(orig if orig is not None else exc).strip().splitlines()
        first = detail[0] if detail else type(exc).__name__
        raise DatabaseError(f"{what} failed: {type(orig or exc).__name__}: {first}") from None
    except UnicodeEncodeError as exc:  # e.g. a title with a lone surrogate: no UTF-8 encoding
        raise ValidationError(
            f"{what} failed: text holds {exc.object[exc.start : exc.end]!r}, a lone surrogate that is not "
            "valid Unicode; decode the text correctly (or replace the surrogate) before storing it"
        ) from None
    except OSError as exc:  # drivers that let connection failures through unwrapped (asyncpg)
        raise DatabaseError(f"{what} failed: {type(exc).__name__}: {exc}") from None
