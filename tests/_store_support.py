"""Helpers for the store's tests: both twins behind one interface, counting counters, raw SQL.

* :func:`open_store` opens a :class:`~convkit.store.Store` ("sync") or an
  :class:`~convkit.store.AsyncStore` behind :class:`SyncedAsyncStore`
  ("async"), so one test body checks a behaviour on both twins.
  :class:`SyncedAsyncStore` runs every coroutine on one private event loop
  (asyncpg and aiosqlite connections belong to the loop that opened them,
  so ``asyncio.run`` per call would not do).
* :class:`CountingEstimate` and :class:`CountingHF` count the texts that reach
  the tokenizer (``_encode``); a fresh instance has an empty in-memory cache,
  so zero encode calls proves that counts came from the database.
* :func:`raw_engine` and :func:`scalar` read the tables directly (sync engine,
  no pool), for facts the API does not show (rows in ``convkit_images``...).
* :func:`outcome` turns a call into a comparable value: the result, or the
  error's class with what must agree (``required``/``available`` for
  :class:`~convkit.ContextWindowError`).

The PostgreSQL URL for the async twin uses asyncpg (DESIGN section 5); the
sync twin uses psycopg 3.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import io
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from convkit import ContextWindowError, ConvkitError, EstimateCounter, HFTokenCounter, TokenCounter
from convkit.store import AsyncStore, Store

from . import _pg

BACKENDS = ("sqlite", "postgresql")
FLAVOURS = ("sync", "async")


class SyncedAsyncStore:
    """An AsyncStore with Store's (sync) call shape: each coroutine runs on a private loop."""

    def __init__(self, url: str, **kw: Any) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self.inner = AsyncStore(url, **kw)
            self._loop.run_until_complete(self.inner._ensure_ready())
        except BaseException:
            inner = self.__dict__.get("inner")
            if inner is not None:
                self._loop.run_until_complete(inner.close())
            self._loop.close()
            raise

    def run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("inner", "_loop"):
            raise AttributeError(name)
        attr = getattr(self.inner, name)
        if inspect.iscoroutinefunction(attr):

            def call(*args: Any, **kwargs: Any) -> Any:
                return self._loop.run_until_complete(attr(*args, **kwargs))

            return call
        return attr

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._loop.run_until_complete(self.inner.close())
        finally:
            self._loop.close()


AnyStore = Store | SyncedAsyncStore


def async_url(url: str) -> str:
    """The async twin's URL: asyncpg for PostgreSQL (SQLite URLs are normalized by the store)."""
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        u = u.set(drivername="postgresql+asyncpg")
    return u.render_as_string(hide_password=False)


def open_store(
    url: str,
    flavour: str,
    *,
    namespace: str = "default",
    counters: Iterable[TokenCounter] = (),
    upgrade: bool | None = True,
    **kw: Any,
) -> Any:
    """A Store ("sync") or a SyncedAsyncStore ("async") on ``url``; ``kw``: more store arguments."""
    if flavour == "sync":
        return Store(url, namespace=namespace, counters=counters, upgrade=upgrade, **kw)
    assert flavour == "async", flavour
    return SyncedAsyncStore(async_url(url), namespace=namespace, counters=counters, upgrade=upgrade, **kw)


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database (``tests/_pg.py``: skip or fail rules) upgraded to head."""
    import convkit

    with _pg.fresh_database() as url:
        convkit.upgrade(url)
        yield url


_RUN_DATABASES = ExitStack()
_run_pg_url: list[str] = []


def pg_run_database() -> str:
    """One PostgreSQL database at head for the whole run (:func:`pg_database`), emptied on each call.

    Created on first use; dropped by :func:`close_run_databases` (``pytest_sessionfinish`` in conftest.py).
    """
    if not _run_pg_url:
        _run_pg_url.append(_RUN_DATABASES.enter_context(pg_database()))
    clean(_run_pg_url[0])
    return _run_pg_url[0]


def close_run_databases() -> None:
    _run_pg_url.clear()
    _RUN_DATABASES.close()


def clean(url: str) -> None:
    """Empty every convkit table (not the version table): a database as good as fresh, faster."""
    from convkit.store import _schema as schema

    names = ", ".join(t.name for t in schema.metadata.sorted_tables)
    with raw_engine(url) as engine, engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@cache
def sqlite_template() -> Path:
    """An SQLite file upgraded to head once per process; tests copy it (Alembic runs once)."""
    folder = Path(tempfile.mkdtemp(prefix="convkit-tests-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "template.db"
    Store(f"sqlite:///{path}", upgrade=True).close()
    return path


def sqlite_database(path: Path) -> str:
    """The URL of a new SQLite file at ``path``, at the schema's head (a copy of the template)."""
    shutil.copyfile(sqlite_template(), path)
    return f"sqlite:///{path}"


def database(backend: str, tmp_path: Path, request: Any) -> str:
    """An empty database at the schema's head for one test: a new SQLite file, or PostgreSQL's emptied.

    The SQLite file is a copy of :func:`sqlite_template`. ``request`` resolves the
    module-scoped ``pg_module_url`` fixture (see :func:`pg_database`), so one PostgreSQL
    database (created, migrated and dropped once per module) serves the module's tests;
    each starts with every convkit table empty.
    """
    if backend == "sqlite":
        return sqlite_database(tmp_path / "store.db")
    url = str(request.getfixturevalue("pg_module_url"))
    clean(url)
    return url


class StoreOpener:
    """Opens stores on one database and closes them all at the end of a test."""

    def __init__(self, url: str, flavour: str, backend: str) -> None:
        self.url = url
        self.flavour = flavour
        self.backend = backend
        self._opened: list[Any] = []

    def __call__(
        self, namespace: str = "default", counters: Iterable[TokenCounter] | None = None, **kw: Any
    ) -> Any:
        store = open_store(
            self.url,
            self.flavour,
            namespace=namespace,
            counters=(EstimateCounter(),) if counters is None else counters,
            **kw,
        )
        self._opened.append(store)
        return store

    def close(self) -> None:
        for store in reversed(self._opened):
            store.close()
        self._opened.clear()


# -- counting counters ------------------------------------------------------------------------


class _Counting:
    """Mixin: record every batch of texts that reaches the tokenizer."""

    def _init_counting(self) -> None:
        self.encode_calls = 0
        self.encoded_texts = 0
        self._count_lock = threading.Lock()

    def _encode(self, texts: list[str]) -> list[int]:
        with self._count_lock:
            self.encode_calls += 1
            self.encoded_texts += len(texts)
        return super()._encode(texts)  # type: ignore[misc, no-any-return]


class CountingEstimate(_Counting, EstimateCounter):
    """EstimateCounter (same identity as ``EstimateCounter(bytes_per_token)``) that counts encodes."""

    def __init__(self, bytes_per_token: float | None = None, *, margin: float | None = None) -> None:
        super().__init__(bytes_per_token, margin=margin)
        self._init_counting()


class CountingHF(_Counting, HFTokenCounter):
    """HFTokenCounter (same identity as over the same tokenizer) that counts encodes."""

    def __init__(self, tokenizer: Any, **kw: Any) -> None:
        super().__init__(tokenizer, **kw)
        self._init_counting()


def texts_of(messages: Iterable[Any]) -> int:
    """How many distinct texts the counting rules send to the tokenizer for these messages."""
    from convkit import TextPart

    texts: set[str] = set()
    for m in messages:
        texts.update(p.text for p in m.content if isinstance(p, TextPart))
        for c in m.tool_calls:
            texts.update((c.id, c.name, c.arguments))
        if m.tool_call_id is not None:
            texts.add(m.tool_call_id)
        if m.name is not None:
            texts.add(m.name)
    return len(texts)


# -- raw SQL ------------------------------------------------------------------------------


@contextmanager
def raw_engine(url: str) -> Iterator[sa.Engine]:
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    engine = sa.create_engine(u, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def scalar(url: str, sql: str, **params: Any) -> Any:
    with raw_engine(url) as engine, engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def rows(url: str, sql: str, **params: Any) -> list[Any]:
    with raw_engine(url) as engine, engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def table_counts(url: str, conversation_id: str | None = None) -> dict[str, int]:
    """Rows per convkit table (for one conversation where the table has one)."""
    out: dict[str, int] = {}
    with raw_engine(url) as engine, engine.connect() as conn:
        for table in (
            "convkit_messages",
            "convkit_tool_calls",
            "convkit_token_counts",
        ):
            q = f"SELECT count(*) FROM {table}"
            if conversation_id is not None:
                q += " WHERE conversation_id = :cid"
            out[table] = conn.execute(sa.text(q), {"cid": conversation_id}).scalar_one()
        out["convkit_images"] = conn.execute(sa.text("SELECT count(*) FROM convkit_images")).scalar_one()
        out["convkit_conversations"] = conn.execute(
            sa.text("SELECT count(*) FROM convkit_conversations")
        ).scalar_one()
    return out


def running_total_errors(conn: sa.Connection, conversation_ids: Iterable[str]) -> list[str]:
    """Stored running totals that differ from a recount of the counts and keep flags.

    Counts have no holes (a missing seq is an error) and every total equals the recount.
    """
    ids = sorted(conversation_ids)
    if not ids:
        return []
    stmt = sa.text(
        "SELECT c.conversation_id, c.counter_id, c.seq, c.tokens, c.run_tokens, c.run_msgs, m.keep "
        "FROM convkit_token_counts c "
        "JOIN convkit_messages m ON m.conversation_id = c.conversation_id AND m.seq = c.seq "
        "WHERE c.conversation_id IN :ids "
        "ORDER BY c.conversation_id, c.counter_id, c.seq"
    ).bindparams(sa.bindparam("ids", expanding=True))
    got = conn.execute(stmt, {"ids": ids}).all()
    errors: list[str] = []
    key: tuple[str, str] | None = None
    run_tokens = run_msgs = expect_seq = 0
    for cid, counter_id, seq, tokens, rt, rm, keep in got:
        if (cid, counter_id) != key:
            key, run_tokens, run_msgs, expect_seq = (cid, counter_id), 0, 0, 1
        if seq != expect_seq:
            errors.append(f"{cid}/{counter_id}: count of seq {expect_seq} missing (next is {seq})")
            expect_seq = seq
        if not keep:
            run_tokens += tokens
            run_msgs += 1
        if (rt, rm) != (run_tokens, run_msgs):
            errors.append(
                f"{cid}/{counter_id} seq {seq}: stored ({rt}, {rm}), recounted ({run_tokens}, {run_msgs})"
            )
        expect_seq += 1
    return errors


# -- comparing outcomes ---------------------------------------------------------------------


def outcome(call: Callable[[], Any]) -> Any:
    """The call's result, or a comparable summary of the convkit error it raised."""
    try:
        return ("ok", call())
    except ContextWindowError as exc:
        return ("ContextWindowError", exc.required, exc.available, exc.model)
    except ConvkitError as exc:
        return (type(exc).__name__, str(exc))


# -- images -------------------------------------------------------------------------------


def image(fmt: str = "PNG", size: tuple[int, int] = (16, 9), color: int = 100) -> bytes:
    """A real, tiny PNG or JPEG made with Pillow."""
    from PIL import Image

    img = Image.new("RGB", size, (color, 255 - color, 30))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()
