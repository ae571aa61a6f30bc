"""``AsyncStore``: the asyncio twin of :class:`~convkit.store._sync.Store`.

Same method names, signatures and docstrings, same flows
(:class:`~convkit.store._base.StoreBase`), run on an ``AsyncConnection``
(aiosqlite for SQLite; psycopg or asyncpg for PostgreSQL); a method differs
from its twin only by ``await``. The schema is checked (or upgraded) on first
use. Close with ``await store.aclose()`` (or ``close()``), or use
``async with AsyncStore(...) as store``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .._fitting import FitResult
from .._messages import Message
from .._results import Calibration, Conversation, StoredSummary, UsageTotals
from .._stepper import Stepper
from . import _migrate as migrate
from . import _ops_core
from ._base import Flow, Step, StoreBase, Txn, runs
from ._db import PoolOptions, create_async, db_errors, needs_write_lock, take_write_lock
from ._ops_core import Op

T = TypeVar("T")

__all__ = ["AsyncStore", "adrive"]


class _Abandoned(Exception):
    """Raised between a transaction's statements once its caller was cancelled: roll it back."""


class _Abandon:
    """Whether a transaction's caller was cancelled, and how to stop its statement in flight."""

    __slots__ = ("interrupt", "is_set")

    def __init__(self) -> None:
        self.is_set = False
        #: Stops the statement running now (SQLite's ``interrupt``), where the driver allows it.
        self.interrupt: Callable[[], object] | None = None

    def set(self) -> None:
        self.is_set = True
        if self.interrupt is not None:
            with contextlib.suppress(Exception):  # a connection closed meanwhile: nothing runs on it
                self.interrupt()


def _sqlite_interrupt(dbapi_conn: Any) -> Callable[[], object] | None:
    """``sqlite3.Connection.interrupt`` under SQLAlchemy's aiosqlite adapter, else None.

    ``interrupt`` is the one sqlite3 call meant to be made from another thread: the statement
    running on aiosqlite's worker thread ends with "interrupted", and the transaction then
    rolls back the ordinary way. Reaches through two private attributes (the adapter's
    ``_connection``: the ``aiosqlite.Connection``; its ``_connection``: the ``sqlite3`` one);
    when either is missing, the store waits for the statement to end instead.
    """
    raw = getattr(getattr(dbapi_conn, "_connection", None), "_connection", None)
    interrupt = getattr(raw, "interrupt", None)
    return interrupt if callable(interrupt) else None


async def adrive(conn: AsyncConnection, op: Op[T], abandon: _Abandon | None = None) -> T:
    """Run a sans-I/O operation on an async connection (``abandon``: stop between statements once set)."""
    run = Stepper(op)
    while (req := run.step) is not None:
        if abandon is not None and abandon.is_set:
            raise _Abandoned
        if req.raw:
            run.send(await conn.run_sync(_ops_core.run_raw, req))
        else:
            run.send(await conn.execute(req.stmt, req.params))
    return run.value


async def _settle(work: asyncio.Future[Any]) -> None:
    """Wait until ``work`` ends, through further cancellations; its outcome is dropped."""
    while not work.done():
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            continue
        except BaseException:
            break
    if not work.cancelled():
        work.exception()  # retrieved: an abandoned transaction's error is expected, not logged


class AsyncStore(StoreBase[AsyncEngine]):
    """Conversations in a database, scoped to one namespace (asyncio).

    Arguments as for :class:`~convkit.store._sync.Store`, including the pool and timeouts:
    ``pool_size`` (default 10 connections), ``pool_timeout`` (default 10.0 s, then
    :class:`~convkit.PoolTimeoutError`) and ``statement_timeout`` (default 30.0 s, then
    :class:`~convkit.StatementTimeoutError`). A cancelled call waits for its statement in
    flight to stop and its transaction to roll back, then raises ``CancelledError``.
    """

    def _create_engine(self, url: str, pool: PoolOptions) -> AsyncEngine:
        return create_async(url, pool)

    def _opened(self) -> None:
        self._lock_writes = needs_write_lock(self._engine.sync_engine)
        self._ready = False
        # A thread lock, not an asyncio.Lock: an asyncio.Lock belongs to the first event loop
        # that waits on it, and one store may be first used from several loops (threads each
        # running asyncio.run) at once. It is only ever tried without blocking (see below).
        self._ready_lock = threading.Lock()

    async def aclose(self) -> None:
        """Release the connection pool (when the store created the engine)."""
        if self._owns_engine:
            await self._engine.dispose()

    close = aclose

    async def __aenter__(self) -> AsyncStore:
        await self._ensure_ready()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _ensure_ready(self) -> None:
        if self._ready:
            return
        # Polled, never a blocking acquire: a task of this loop may hold the lock across an await,
        # and blocking would stop the loop that has to finish it.
        while not self._ready_lock.acquire(blocking=False):
            await asyncio.sleep(0.01)
        try:
            if self._ready:  # another task or loop finished it meanwhile
                return  # type: ignore[unreachable]
            # in read transactions unless upgrading (see Store._opened)
            with db_errors("checking the schema"):
                async with self._engine.connect() as conn:
                    await conn.execution_options(convkit_read=True)
                    status = await conn.run_sync(migrate.schema_status)
            upgrade = self._upgrades(status)
            with db_errors("upgrading the schema"):
                async with self._engine.connect() as conn:
                    if not upgrade:
                        await conn.execution_options(convkit_read=True)
                    await conn.run_sync(lambda c: migrate.ensure_schema(c, upgrade=upgrade))
                    await conn.commit()
            self._ready = True
        finally:
            self._ready_lock.release()

    async def _run(self, txn: Txn[T]) -> T:
        """Run a step's operation in a transaction of its own, safe to cancel.

        The transaction runs in a task of its own that the caller's cancellation never reaches:
        cancelled inside a driver call, SQLAlchemy invalidates the connection and closes it
        while the statement is still running. On aiosqlite that close queues behind the
        statement and the cancelled call never returned, holding SQLite's write lock (every
        later write waited); on asyncpg the close could wait forever on a connection whose
        protocol was cut mid-message, with PostgreSQL holding the conversation's row lock.
        Instead, a cancelled caller marks the transaction abandoned (on SQLite the statement in
        flight is also interrupted), the task rolls back between statements (or before its
        commit) the ordinary way and returns its connection to the pool, and the caller waits
        for that and then raises ``CancelledError``. So the database holds the whole call or
        none of it (all of it only when the cancellation came during the COMMIT itself).
        On PostgreSQL the statement in flight is not cancelled on the server (a cancel request
        arrives out of band and could hit the next statement on that connection), so a
        cancelled call may wait for it: at most ``statement_timeout``.

        Not covered: the event loop ending while a call is in flight. ``asyncio.run`` cancels
        every task left at its end, this transaction's own included, and that cancellation
        lands inside the driver (on SQLite the write lock may stay held). Await or cancel a
        store's calls before the loop ends.
        """
        abandon = _Abandon()
        work = asyncio.ensure_future(self._transaction(txn, abandon))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            if work.done():
                if not work.cancelled():
                    work.exception()  # retrieved: the caller was cancelled, asyncio need not log it
                raise
            abandon.set()
            await _settle(work)
            raise

    async def _transaction(self, txn: Txn[T], abandon: _Abandon) -> T:
        await self._ensure_ready()
        options, begin = self._options(txn)
        with db_errors(txn.what):
            async with self._engine.connect() as conn:
                try:
                    if self._dialect == "sqlite":
                        raw = (await conn.get_raw_connection()).dbapi_connection
                        abandon.interrupt = _sqlite_interrupt(raw)
                    if options:
                        await conn.execution_options(**options)
                    if not begin:
                        return await adrive(conn, txn.op, abandon)
                    async with conn.begin():
                        if self._lock_writes and not txn.read:
                            await conn.run_sync(take_write_lock)
                        result = await adrive(conn, txn.op, abandon)
                        if abandon.is_set:  # cancelled during the last statement: roll back, not commit
                            raise _Abandoned
                        return result
                finally:  # the connection goes back to the pool: a late cancel must not interrupt it
                    abandon.interrupt = None

    async def _perform(self, step: Step) -> Any:
        if isinstance(step, Txn):
            return await self._run(step)
        answer = step.ask()
        return await answer if inspect.isawaitable(answer) else answer

    async def _call(self, flow: Flow[T]) -> T:
        """Run a flow: each step performed in turn, its result (or error) sent back into the flow."""
        run = Stepper(flow)
        while run.step is not None:
            with run:
                run.result = await self._perform(run.step)
        return run.value

    # -- conversations ---------------------------------------------------------------------
    @runs(StoreBase._create_conversation)
    async def create_conversation(self, *args: Any, **kwargs: Any) -> Conversation:
        return await self._call(self._create_conversation(*args, **kwargs))

    @runs(StoreBase._conversation_for)
    async def conversation_for(self, *args: Any, **kwargs: Any) -> Conversation:
        return await self._call(self._conversation_for(*args, **kwargs))

    @runs(StoreBase._find_conversation)
    async def find_conversation(self, *args: Any, **kwargs: Any) -> Conversation | None:
        return await self._call(self._find_conversation(*args, **kwargs))

    @runs(StoreBase._get_conversation)
    async def get_conversation(self, *args: Any, **kwargs: Any) -> Conversation:
        return await self._call(self._get_conversation(*args, **kwargs))

    @runs(StoreBase._list_conversations)
    async def list_conversations(self, *args: Any, **kwargs: Any) -> list[Conversation]:
        return await self._call(self._list_conversations(*args, **kwargs))

    @runs(StoreBase._delete_conversation)
    async def delete_conversation(self, *args: Any, **kwargs: Any) -> None:
        return await self._call(self._delete_conversation(*args, **kwargs))

    # -- messages --------------------------------------------------------------------------
    @runs(StoreBase._append)
    async def append(self, *args: Any, **kwargs: Any) -> int:
        return await self._call(self._append(*args, **kwargs))

    @runs(StoreBase._extend)
    async def extend(self, *args: Any, **kwargs: Any) -> range:
        return await self._call(self._extend(*args, **kwargs))

    @runs(StoreBase._messages)
    async def messages(self, *args: Any, **kwargs: Any) -> list[Message]:
        return await self._call(self._messages(*args, **kwargs))

    @runs(StoreBase._fork)
    async def fork(self, *args: Any, **kwargs: Any) -> Conversation:
        return await self._call(self._fork(*args, **kwargs))

    @runs(StoreBase._export_jsonl)
    async def export_jsonl(self, *args: Any, **kwargs: Any) -> str | None:
        return await self._call(self._export_jsonl(*args, **kwargs))

    @runs(StoreBase._import_jsonl)
    async def import_jsonl(self, *args: Any, **kwargs: Any) -> Conversation:
        return await self._call(self._import_jsonl(*args, **kwargs))

    @runs(StoreBase._truncate)
    async def truncate(self, *args: Any, **kwargs: Any) -> list[Message]:
        return await self._call(self._truncate(*args, **kwargs))

    @runs(StoreBase._replace_messages)
    async def replace_messages(self, *args: Any, **kwargs: Any) -> range:
        return await self._call(self._replace_messages(*args, **kwargs))

    @runs(StoreBase._pop)
    async def pop(self, *args: Any, **kwargs: Any) -> Message | None:
        return await self._call(self._pop(*args, **kwargs))

    # -- turns, usage, calibration ---------------------------------------------------------
    @runs(StoreBase._record_turn)
    async def record_turn(self, *args: Any, **kwargs: Any) -> int | None:
        return await self._call(self._record_turn(*args, **kwargs))

    @runs(StoreBase._usage)
    async def usage(self, *args: Any, **kwargs: Any) -> UsageTotals:
        return await self._call(self._usage(*args, **kwargs))

    @runs(StoreBase._calibration)
    async def calibration(self, *args: Any, **kwargs: Any) -> Calibration | None:
        return await self._call(self._calibration(*args, **kwargs))

    @runs(StoreBase._calibrate)
    async def calibrate(self, *args: Any, **kwargs: Any) -> Calibration:
        return await self._call(self._calibrate(*args, **kwargs))

    @runs(StoreBase._summaries)
    async def summaries(self, *args: Any, **kwargs: Any) -> list[StoredSummary]:
        return await self._call(self._summaries(*args, **kwargs))

    # -- windows ---------------------------------------------------------------------------
    @runs(StoreBase._window)
    async def window(self, *args: Any, **kwargs: Any) -> FitResult:
        return await self._call(self._window(*args, **kwargs))
