"""Schema migrations: find convkit's Alembic scripts and bring a database to their head.

One linear Alembic history (top-level ``migrations/`` in the repository,
``convkit/_migrations`` inside the wheel) serves SQLite and PostgreSQL. Every
table it manages starts with ``convkit_`` and its version table is
``convkit_alembic_version``, so the schema lives beside a host application's
own tables, which are never touched or reported.

A *target* is a URL (``str`` or :class:`sqlalchemy.engine.URL`), an
:class:`~sqlalchemy.engine.Engine` or a :class:`~sqlalchemy.engine.Connection`
(from an ``AsyncEngine``: ``await conn.run_sync(convkit.upgrade)``).

Invariants:

* Transactions: on a URL or an Engine each call runs in its own transaction
  and commits it. A Connection already in a transaction is left for the caller
  to commit; one that is not gets its own transaction, committed on success
  and rolled back on error.
* Concurrent upgrades are safe: SQLite takes the write lock up front
  (``BEGIN IMMEDIATE`` on URL targets) and PostgreSQL a transaction-scoped
  advisory lock (in ``env.py``) before the version is read. Within one process
  Alembic runs one at a time (its ``context``/``op`` proxies are global):
  threads queue on a lock, and asyncio tasks (``run_sync``) first queue on a
  per-event-loop asyncio lock so that waiting never blocks their loop.
* SQLite files opened from a URL run in WAL mode. While a migration runs, SQLite
  foreign keys are switched off (when the connection allows it) so that batch
  table rebuilds cannot cascade deletes, then restored.
* Errors: SQLAlchemy and Alembic errors leave as :class:`~convkit._errors.DatabaseError`
  or :class:`~convkit._errors.SchemaError`; messages show URLs with the password
  hidden and never contain it.
"""

from __future__ import annotations

import asyncio
import shlex
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import NullPool
from sqlalchemy.util.concurrency import await_only, in_greenlet

from .._errors import ConvkitError, DatabaseError, SchemaError
from .._version import __version__
from ._db import ensure_wal, sqlalchemy_url

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = [
    "TABLE_PREFIX",
    "VERSION_TABLE",
    "SchemaStatus",
    "Target",
    "current_revision",
    "downgrade",
    "ensure_schema",
    "head_revision",
    "include_name",
    "include_object",
    "migration_engine",
    "schema_status",
    "script_location",
    "upgrade",
]

TABLE_PREFIX = "convkit_"
VERSION_TABLE = "convkit_alembic_version"

Target: TypeAlias = "str | URL | Engine | Connection"
SchemaStatus: TypeAlias = Literal["empty", "current", "behind", "ahead", "unknown"]

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
_RUN_LOCK = threading.Lock()
_LOOP_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
_LOOP_LOCKS_GUARD = threading.Lock()
_SQLITE_TIMEOUT_S = 30.0


# -- locating the scripts -------------------------------------------------------------------


def script_location() -> str:
    """The directory holding ``env.py`` and ``versions/``.

    ``convkit/_migrations`` when installed from a wheel; the repository's
    top-level ``migrations/`` in a source checkout (editable install).
    """
    packaged = _PACKAGE_DIR / "_migrations"
    source = _PACKAGE_DIR.parent / "migrations"
    if (packaged / "env.py").is_file():
        return str(packaged)
    if (source / "env.py").is_file() and (_PACKAGE_DIR.parent / "pyproject.toml").is_file():
        return str(source)
    raise SchemaError(
        f"convkit's migration scripts are missing (looked in {packaged} and {source}); reinstall convkit"
    )


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", script_location().replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=4)
def _scripts(location: str) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    cfg = _config()
    cfg.set_main_option("script_location", location.replace("%", "%%"))
    return ScriptDirectory.from_config(cfg)


def head_revision() -> str:
    """The newest revision this version of convkit knows (there is exactly one head)."""
    heads = _scripts(script_location()).get_heads()
    if len(heads) != 1:
        raise SchemaError(f"convkit's migrations must have exactly one head, found {sorted(heads)}")
    return heads[0]


def _is_known(revision: str) -> bool:
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    try:
        return _scripts(script_location()).get_revision(revision) is not None
    except (RevisionError, CommandError):
        return False


# -- autogenerate filters (env.py uses these) -----------------------------------------------


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic ``include_name`` hook: reflect only ``convkit_`` tables."""
    if type_ == "table":
        return name is not None and name.startswith(TABLE_PREFIX)
    return True


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic ``include_object`` hook: consider only ``convkit_`` tables and what belongs to them."""
    if type_ == "table":
        return name is not None and name.startswith(TABLE_PREFIX)
    table = getattr(obj, "table", None)
    table_name = getattr(table, "name", None)
    return table_name is None or str(table_name).startswith(TABLE_PREFIX)


# -- engines and connections ----------------------------------------------------------------


def _parse_url(url: str | URL) -> URL:
    """Normalized sync URL (see :func:`convkit.store._db.sqlalchemy_url`); ValidationError if bad."""
    return sqlalchemy_url(url, is_async=False)


def _sqlite_file(u: URL) -> Path | None:
    """The database file of an SQLite URL; None for in-memory and ``uri=true`` URLs."""
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return None
    if str(u.query.get("uri", "")).lower() in ("true", "1"):
        return None
    return Path(u.database)


def migration_engine(url: str | URL, *, write: bool = True) -> Engine:
    """A pool-less engine for running migrations against ``url``.

    Async driver names map to their sync twins (aiosqlite -> pysqlite, asyncpg
    -> psycopg), as does a bare ``postgresql://``. SQLite files get WAL mode and
    a busy timeout; transactions start with ``BEGIN IMMEDIATE`` when ``write``
    (so concurrent upgrades queue) and ``BEGIN`` otherwise, which also makes
    SQLite DDL transactional: a failed migration leaves nothing behind.
    """
    u = _parse_url(url)
    try:
        if u.get_backend_name() != "sqlite":
            return sa.create_engine(u, poolclass=NullPool)
        connect_args: dict[str, Any] = {}
        if "timeout" not in u.query:
            connect_args["timeout"] = _SQLITE_TIMEOUT_S
        engine = sa.create_engine(u, poolclass=NullPool, connect_args=connect_args)
    except sa.exc.SQLAlchemyError as exc:
        raise DatabaseError(f"cannot use {_safe(u)}: {_detail(exc, u)}") from exc
    wal = _sqlite_file(u) is not None
    begin = "BEGIN IMMEDIATE" if write else "BEGIN"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event below starts transactions
        if wal:
            ensure_wal(dbapi_conn)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


def _url_of(target: Target) -> URL:
    if isinstance(target, Connection):
        return target.engine.url
    if isinstance(target, Engine):
        return target.url
    if isinstance(target, (str, URL)):
        return _parse_url(target)
    raise TypeError(
        f"expected a database URL, an Engine or a Connection, not {type(target).__name__}; "
        "from async code use `await conn.run_sync(convkit.upgrade)`"
    )


def _sqlite_foreign_keys(conn: Connection, on: bool | None = None) -> bool:
    """Read SQLite's foreign_keys flag, or set it (outside any transaction only) and return it."""
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if on is not None:
            cur.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
        cur.execute("PRAGMA foreign_keys")
        row = cur.fetchone()
    finally:
        cur.close()
    return bool(row and row[0])


@contextmanager
def _connect(target: Target, *, write: bool) -> Iterator[Connection]:
    """A connection in a transaction; commits it on success unless the caller owns it."""
    if isinstance(target, Connection):
        with _transaction(target, write=write):
            yield target
    elif isinstance(target, Engine):
        with target.connect() as conn, _transaction(conn, write=write):
            yield conn
    else:
        engine = migration_engine(target, write=write)
        try:
            with engine.connect() as conn, _transaction(conn, write=write):
                yield conn
        finally:
            engine.dispose()


@contextmanager
def _transaction(conn: Connection, *, write: bool) -> Iterator[None]:
    if conn.in_transaction():  # the caller's transaction: the caller commits
        yield
        return
    restore_fk = False
    if write and conn.dialect.name == "sqlite" and _sqlite_foreign_keys(conn):
        restore_fk = not _sqlite_foreign_keys(conn, on=False)
    try:
        with conn.begin():
            yield
    finally:
        if restore_fk:
            _sqlite_foreign_keys(conn, on=True)


# -- messages and errors --------------------------------------------------------------------


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _detail(exc: BaseException, url: URL | None) -> str:
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    text = f"{type(orig or exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    if url is not None and url.password and len(str(url.password)) >= 3:
        text = text.replace(str(url.password), "***")
    return text


@contextmanager
def _errors(action: str, url: URL | None) -> Iterator[None]:
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    where = f" {_safe(url)}" if url is not None else ""
    try:
        yield
    except ConvkitError:
        raise
    except (CommandError, RevisionError) as exc:
        raise SchemaError(f"cannot {action}{where}: {_detail(exc, url)}") from exc
    except sa.exc.SQLAlchemyError as exc:
        raise DatabaseError(f"cannot {action}{where}: {_detail(exc, url)}") from exc


def _upgrade_hint(url: URL) -> str:
    password = " (with your password in place of ***)" if url.password else ""
    return (
        f"Upgrade it with `convkit db upgrade --url {shlex.quote(_safe(url))}`{password}, "
        "or from Python with `convkit.upgrade(url)`, or pass upgrade=True to the store."
    )


def _status_error(status: SchemaStatus, revision: str | None, url: URL) -> SchemaError:
    head = head_revision()
    where = f"the database {_safe(url)}"
    if status == "empty":
        msg = f"{where} has no convkit schema yet (this convkit needs revision {head}). {_upgrade_hint(url)}"
    elif status == "behind":
        msg = (
            f"{where} has convkit schema revision {revision}, behind this convkit's {head}. "
            f"{_upgrade_hint(url)}"
        )
    elif status == "ahead":
        msg = (
            f"{where} has convkit schema revision {revision}, which convkit {__version__} "
            f"(newest revision {head}) does not know: the code is older than the database. "
            "Upgrade convkit (pip install -U convkit-grok, or git pull in a checkout) or use the version "
            "that migrated it."
        )
    else:
        msg = (
            f"{where} has convkit_ tables but no revision in {VERSION_TABLE}, so convkit cannot tell "
            "their version (were they created outside convkit's migrations?). Back them up, drop the "
            "convkit_ tables, then run `convkit db upgrade --url ...`."
        )
    return SchemaError(msg)


@contextmanager
def _one_alembic_run() -> Iterator[None]:
    """Serialize Alembic runs in this process without ever blocking an event loop on itself."""
    if not in_greenlet():
        with _RUN_LOCK:
            yield
        return
    loop = asyncio.get_running_loop()
    with _LOOP_LOCKS_GUARD:
        loop_lock = _LOOP_LOCKS.setdefault(loop, asyncio.Lock())
    await_only(loop_lock.acquire())
    try:
        with _RUN_LOCK:  # only another thread can hold it, and it does not need this loop
            yield
    finally:
        loop_lock.release()


# -- reading the version --------------------------------------------------------------------


def _current(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    heads = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_heads()
    if len(heads) > 1:
        raise SchemaError(f"{VERSION_TABLE} holds several revisions {sorted(heads)}; convkit expects one")
    return heads[0] if heads else None


def _status(conn: Connection) -> tuple[SchemaStatus, str | None]:
    try:
        revision = _current(conn)
    except SchemaError:
        return "unknown", None
    if revision is None:
        names = sa.inspect(conn).get_table_names()
        ours = [n for n in names if n.startswith(TABLE_PREFIX) and n != VERSION_TABLE]
        return ("unknown" if ours else "empty"), None
    if revision == head_revision():
        return "current", revision
    return ("behind" if _is_known(revision) else "ahead"), revision


def _absent_sqlite_file(target: Target) -> bool:
    """A URL naming an SQLite file that does not exist (reading it must not create it)."""
    if not isinstance(target, (str, URL)):
        return False
    path = _sqlite_file(_parse_url(target))
    return path is not None and not path.exists()


def current_revision(target: Target) -> str | None:
    """The database's convkit revision, or None when it has no convkit schema."""
    url = _url_of(target)
    if _absent_sqlite_file(target):
        return None
    with _errors("read the schema revision of", url), _connect(target, write=False) as conn:
        return _current(conn)


def schema_status(target: Target) -> SchemaStatus:
    """Where the database stands against this convkit's migrations.

    ``empty``: no convkit tables; ``current``: at head; ``behind``: at an older
    revision (upgrade it); ``ahead``: at a revision this code does not know (a
    newer convkit migrated it); ``unknown``: convkit tables without a recorded
    revision.
    """
    url = _url_of(target)
    if _absent_sqlite_file(target):
        return "empty"
    with _errors("check the schema of", url), _connect(target, write=False) as conn:
        return _status(conn)[0]


# -- changing the schema --------------------------------------------------------------------


def _migrate(conn: Connection, direction: Literal["upgrade", "downgrade"], revision: str) -> None:
    from alembic import command

    status, current = _status(conn)
    if status in ("ahead", "unknown"):
        raise _status_error(status, current, conn.engine.url)
    cfg = _config(conn)
    with _one_alembic_run():
        if direction == "upgrade":
            command.upgrade(cfg, revision)
        else:
            command.downgrade(cfg, revision)


def upgrade(target: Target, revision: str = "head") -> None:
    """Upgrade the database's convkit schema to ``revision`` (default: the newest).

    Creates the tables in an empty database (an SQLite file is created if
    missing); a database already there is left as it is. Raises SchemaError when
    the database is ahead of this code or its convkit tables carry no revision.
    """
    url = _url_of(target)
    with _errors(f"upgrade to {revision}", url), _connect(target, write=True) as conn:
        _migrate(conn, "upgrade", revision)


def downgrade(target: Target, revision: str) -> None:
    """Downgrade the database's convkit schema to ``revision`` (``"base"`` drops every convkit table)."""
    url = _url_of(target)
    with _errors(f"downgrade to {revision}", url), _connect(target, write=True) as conn:
        _migrate(conn, "downgrade", revision)


def ensure_schema(target: Target, *, upgrade: bool) -> None:
    """Make sure the database is at this convkit's head revision.

    An empty or behind database is upgraded when ``upgrade`` is true; otherwise
    SchemaError says how to upgrade it (CLI command with the password hidden,
    ``convkit.upgrade(url)``, or ``upgrade=True``). A database ahead of this
    code, or with unversioned convkit tables, always raises SchemaError.
    """
    url = _url_of(target)
    if not upgrade and _absent_sqlite_file(target):
        raise _status_error("empty", None, url)
    with _errors("check the schema of", url), _connect(target, write=upgrade) as conn:
        status, current = _status(conn)
        if status == "current":
            return
        if upgrade and status in ("empty", "behind"):
            _migrate(conn, "upgrade", "head")
            return
        raise _status_error(status, current, url)
