"""Engines for the store: URL handling, SQLite set-up, and error translation.

SQLite files run in WAL mode with a busy timeout, foreign keys on, and every
transaction opened with ``BEGIN IMMEDIATE`` so that concurrent writers queue
for the write lock instead of failing half-way. PostgreSQL runs through
psycopg 3 (sync) and psycopg or asyncpg (async). SQLAlchemy errors become
:class:`~convkit._errors.DatabaseError` with the URL's password hidden.
"""

from __future__ import annotations

import contextlib
import math
import re
import weakref
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from .._errors import DatabaseError, PoolTimeoutError, StatementTimeoutError, ValidationError

__all__ = [
    "DEFAULT_URL",
    "PoolOptions",
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


class PoolOptions:
    """A store's connection pool and timeouts (see ``Store``'s ``pool_size``, ``pool_timeout``,
    ``statement_timeout``); checked here, applied by :func:`create_sync` and :func:`create_async`.

    Defaults fit a web server: 10 connections at most, a call that finds none free within
    10 s fails with :class:`~convkit.PoolTimeoutError`, and a statement that runs (or waits
    for a lock) over 30 s fails with :class:`~convkit.StatementTimeoutError`.
    """

    __slots__ = ("pool_size", "pool_timeout", "statement_timeout")

    def __init__(
        self, pool_size: int = 10, pool_timeout: float = 10.0, statement_timeout: float | None = 30.0
    ) -> None:
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValidationError(
                f"pool_size is how many database connections the store may hold at once: "
                f"an integer >= 1, got {pool_size!r}"
            )
        self.pool_size = pool_size
        self.pool_timeout = _seconds("pool_timeout", pool_timeout, "to wait for a free connection")
        self.statement_timeout = (
            None
            if statement_timeout is None
            else _seconds("statement_timeout", statement_timeout, "a statement may run or wait for a lock")
        )

    @property
    def busy_timeout_s(self) -> float:
        """SQLite's wait for the write lock: the statement timeout (60 s when that is None)."""
        return SQLITE_BUSY_TIMEOUT_S if self.statement_timeout is None else self.statement_timeout

    @property
    def connect_timeout_s(self) -> int:
        """The wait for a new PostgreSQL connection: the pool timeout, whole seconds, at least 2."""
        return max(2, math.ceil(self.pool_timeout))

    def pool_args(self) -> dict[str, Any]:
        return {"pool_size": self.pool_size, "max_overflow": 0, "pool_timeout": self.pool_timeout}

    def postgres_args(self, driver: str) -> dict[str, Any]:
        """``connect_args`` for PostgreSQL: the connect timeout and the server's statement_timeout."""
        ms = None if self.statement_timeout is None else max(1, round(self.statement_timeout * 1000))
        if driver == "asyncpg":
            args: dict[str, Any] = {"timeout": self.connect_timeout_s}
            if ms is not None:
                args["server_settings"] = {"statement_timeout": str(ms)}
            return args
        args = {"connect_timeout": self.connect_timeout_s}
        if ms is not None:
            args["options"] = f"-c statement_timeout={ms}"
        return args


def _seconds(name: str, value: object, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValidationError(f"{name} is how many seconds {what}: a number > 0, got {value!r}")
    return float(value)


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


def _sqlite_setup(sync_engine: Engine, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> None:
    _CONFIGURED.add(sync_engine)

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below own transaction start.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {max(1, round(busy_timeout_s * 1000))}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()
        ensure_wal(dbapi_conn)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # writers take the write lock up front (no lock-upgrade deadlocks); readers do not
        read_only = conn.get_execution_options().get("convkit_read", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def create_sync(url: str | URL, options: PoolOptions | None = None, **kw: Any) -> Engine:
    u = sqlalchemy_url(url, is_async=False)
    opts = options or PoolOptions()
    if u.get_backend_name() == "sqlite":
        args: dict[str, Any] = {"timeout": opts.busy_timeout_s, "check_same_thread": False}
        if _is_memory(u):
            engine = sa.create_engine(u, connect_args=args, poolclass=StaticPool, **kw)
        else:
            engine = sa.create_engine(u, connect_args=args, **opts.pool_args(), **kw)
        _sqlite_setup(engine, opts.busy_timeout_s)
        return engine
    args = opts.postgres_args(u.get_driver_name())
    return sa.create_engine(u, pool_pre_ping=True, connect_args=args, **opts.pool_args(), **kw)


def create_async(url: str | URL, options: PoolOptions | None = None, **kw: Any) -> AsyncEngine:
    u = sqlalchemy_url(url, is_async=True)
    opts = options or PoolOptions()
    if u.get_backend_name() == "sqlite":
        args: dict[str, Any] = {"timeout": opts.busy_timeout_s, "check_same_thread": False}
        if _is_memory(u):
            engine = create_async_engine(u, connect_args=args, poolclass=StaticPool, **kw)
        else:
            engine = create_async_engine(u, connect_args=args, **opts.pool_args(), **kw)
        _sqlite_setup(engine.sync_engine, opts.busy_timeout_s)
        return engine
    args = opts.postgres_args(u.get_driver_name())
    return create_async_engine(u, pool_pre_ping=True, connect_args=args, **opts.pool_args(), **kw)


#: PostgreSQL's SQLSTATE for a statement cancelled by ``statement_timeout`` (query_canceled).
_QUERY_CANCELED = "57014"


def _timed_out_statement(orig: object) -> bool:
    """Whether a driver error is a statement over its time: PostgreSQL's statement_timeout, or
    SQLite's busy timeout running out while waiting for the write lock."""
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code == _QUERY_CANCELED:
        return True
    return type(orig).__name__ == "OperationalError" and "database is locked" in str(orig)


@contextlib.contextmanager
def db_errors(what: str) -> Iterator[None]:
    """Turn SQLAlchemy (and driver) errors into DatabaseError; the message names the operation."""
    try:
        yield
    except sa.exc.TimeoutError as exc:  # the pool's: every connection busy for pool_timeout
        raise PoolTimeoutError(
            f"{what} failed: no free database connection within the pool timeout ({exc}). Raise "
            "pool_size or pool_timeout, or hold fewer connections at once"
        ) from None
    except sa.exc.SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        detail = str(orig if orig is not None else exc).strip().splitlines()
        first = detail[0] if detail else type(exc).__name__
        if orig is not None and _timed_out_statement(orig):
            raise StatementTimeoutError(
                f"{what} failed: the database did not finish within the statement timeout "
                f"({type(orig).__name__}: {first}); nothing was written. Retry later, or raise "
                "statement_timeout"
            ) from None
        raise DatabaseError(f"{what} failed: {type(orig or exc).__name__}: {first}") from None
    except UnicodeEncodeError as exc:  # e.g. a title with a lone surrogate: no UTF-8 encoding
        raise ValidationError(
            f"{what} failed: text holds {exc.object[exc.start : exc.end]!r}, a lone surrogate that is not "
            "valid Unicode; decode the text correctly (or replace the surrogate) before storing it"
        ) from None
    except OSError as exc:  # drivers that let connection failures through unwrapped (asyncpg)
        raise DatabaseError(f"{what} failed: {type(exc).__name__}: {exc}") from None
