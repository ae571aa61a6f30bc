"""``Store``: the synchronous conversation store (SQLite or PostgreSQL).

A thin driver: every public method runs its flow of
:class:`~convkit.store._base.StoreBase` (argument checks, then the store's
operations, each inside one transaction; see :mod:`convkit.store._ops_core`)
on a ``Connection``. Its twin :class:`~convkit.store._aio.AsyncStore` has the
same method names, signatures and docstrings, and differs only by ``await``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine

from .._fitting import FitResult
from .._messages import Message
from .._results import Calibration, Conversation, StoredSummary, UsageTotals
from .._stepper import Stepper
from . import _migrate as migrate
from . import _ops_core
from ._base import Flow, Step, StoreBase, Txn, runs
from ._db import PoolOptions, create_sync, db_errors, needs_write_lock, take_write_lock
from ._ops_core import Op

T = TypeVar("T")

__all__ = ["Store", "drive"]


def drive(conn: Connection, op: Op[T]) -> T:
    """Run a sans-I/O operation on a connection."""
    run = Stepper(op)
    while (req := run.step) is not None:
        run.send(_ops_core.run_raw(conn, req) if req.raw else conn.execute(req.stmt, req.params))
    return run.value


class Store(StoreBase[Engine]):
    """Conversations in a database, scoped to one namespace.

    ``url``: ``sqlite:///path.db`` (created and upgraded on first use) or
    ``postgresql+psycopg://...``. ``counters``: token counters that count
    each message when it is written, so windows never re-tokenize.
    ``upgrade``: ``True`` upgrades the schema to this version's head,
    ``False`` only checks it, ``None`` (default) upgrades a new, empty SQLite
    file and checks everything else. ``engine``: run on this engine instead
    (the store then does not dispose of it). ``window_cache``: for how many
    conversations the store keeps the last window's messages decoded in
    memory, so the next window reads and decodes only rows it has not seen
    (0 keeps none; see :mod:`convkit.store._msgcache`).

    The connection pool and timeouts (defaults fit a web server; they apply to the engine the
    store makes, not to one passed as ``engine``): ``pool_size`` (default 10): the most
    database connections the store holds at once, each call using one at a time.
    ``pool_timeout`` (default 10.0 seconds): how long a call waits for a free connection
    before :class:`~convkit.PoolTimeoutError` (also the limit on opening a PostgreSQL
    connection). ``statement_timeout`` (default 30.0 seconds; ``None``: no limit on
    PostgreSQL, 60 s on SQLite): the longest a statement may run or wait for a lock
    (PostgreSQL's ``statement_timeout``; on SQLite the wait for the write lock) before
    :class:`~convkit.StatementTimeoutError`. Both errors are :class:`~convkit.DatabaseError`
    and leave nothing written. An in-memory SQLite store has one shared connection and no pool.
    """

    _synchronous = True

    def _create_engine(self, url: str, pool: PoolOptions) -> Engine:
        return create_sync(url, pool)

    def _opened(self) -> None:
        self._lock_writes = needs_write_lock(self._engine)
        # Checked in read transactions (on SQLite, BEGIN rather than BEGIN IMMEDIATE): opening a
        # store does not wait for another writer's transaction unless it has to upgrade.
        with db_errors("checking the schema"), self._engine.connect() as conn:
            conn.execution_options(convkit_read=True)
            status = migrate.schema_status(conn)
        upgrade = self._upgrades(status)
        if upgrade:
            migrate.ensure_schema(self._engine, upgrade=True)
            return
        with self._engine.connect() as conn:
            conn.execution_options(convkit_read=True)
            migrate.ensure_schema(conn, upgrade=False)

    def close(self) -> None:
        """Release the connection pool (when the store created the engine)."""
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, txn: Txn[T]) -> T:
        """Run a step's operation on a connection of its own (see ``StoreBase._options``)."""
        options, begin = self._options(txn)
        with db_errors(txn.what), self._engine.connect() as conn:
            if options:
                conn.execution_options(**options)
            if not begin:
                return drive(conn, txn.op)
            with conn.begin():
                if self._lock_writes and not txn.read:
                    take_write_lock(conn)
                return drive(conn, txn.op)

    def _perform(self, step: Step) -> Any:
        return self._run(step) if isinstance(step, Txn) else step.ask()

    def _call(self, flow: Flow[T]) -> T:
        """Run a flow: each step performed in turn, its result (or error) sent back into the flow."""
        run = Stepper(flow)
        while run.step is not None:
            with run:
                run.result = self._perform(run.step)
        return run.value

    # -- conversations ---------------------------------------------------------------------
    @runs(StoreBase._create_conversation)
    def create_conversation(self, *args: Any, **kwargs: Any) -> Conversation:
        return self._call(self._create_conversation(*args, **kwargs))

    @runs(StoreBase._conversation_for)
    def conversation_for(self, *args: Any, **kwargs: Any) -> Conversation:
        return self._call(self._conversation_for(*args, **kwargs))

    @runs(StoreBase._find_conversation)
    def find_conversation(self, *args: Any, **kwargs: Any) -> Conversation | None:
        return self._call(self._find_conversation(*args, **kwargs))

    @runs(StoreBase._get_conversation)
    def get_conversation(self, *args: Any, **kwargs: Any) -> Conversation:
        return self._call(self._get_conversation(*args, **kwargs))

    @runs(StoreBase._list_conversations)
    def list_conversations(self, *args: Any, **kwargs: Any) -> list[Conversation]:
        return self._call(self._list_conversations(*args, **kwargs))

    @runs(StoreBase._delete_conversation)
    def delete_conversation(self, *args: Any, **kwargs: Any) -> None:
        return self._call(self._delete_conversation(*args, **kwargs))

    # -- messages --------------------------------------------------------------------------
    @runs(StoreBase._append)
    def append(self, *args: Any, **kwargs: Any) -> int:
        return self._call(self._append(*args, **kwargs))

    @runs(StoreBase._extend)
    def extend(self, *args: Any, **kwargs: Any) -> range:
        return self._call(self._extend(*args, **kwargs))

    @runs(StoreBase._messages)
    def messages(self, *args: Any, **kwargs: Any) -> list[Message]:
        return self._call(self._messages(*args, **kwargs))

    @runs(StoreBase._fork)
    def fork(self, *args: Any, **kwargs: Any) -> Conversation:
        return self._call(self._fork(*args, **kwargs))

    @runs(StoreBase._export_jsonl)
    def export_jsonl(self, *args: Any, **kwargs: Any) -> str | None:
        return self._call(self._export_jsonl(*args, **kwargs))

    @runs(StoreBase._import_jsonl)
    def import_jsonl(self, *args: Any, **kwargs: Any) -> Conversation:
        return self._call(self._import_jsonl(*args, **kwargs))

    @runs(StoreBase._truncate)
    def truncate(self, *args: Any, **kwargs: Any) -> list[Message]:
        return self._call(self._truncate(*args, **kwargs))

    @runs(StoreBase._replace_messages)
    def replace_messages(self, *args: Any, **kwargs: Any) -> range:
        return self._call(self._replace_messages(*args, **kwargs))

    @runs(StoreBase._pop)
    def pop(self, *args: Any, **kwargs: Any) -> Message | None:
        return self._call(self._pop(*args, **kwargs))

    # -- turns, usage, calibration ---------------------------------------------------------
    @runs(StoreBase._record_turn)
    def record_turn(self, *args: Any, **kwargs: Any) -> int | None:
        return self._call(self._record_turn(*args, **kwargs))

    @runs(StoreBase._usage)
    def usage(self, *args: Any, **kwargs: Any) -> UsageTotals:
        return self._call(self._usage(*args, **kwargs))

    @runs(StoreBase._calibration)
    def calibration(self, *args: Any, **kwargs: Any) -> Calibration | None:
        return self._call(self._calibration(*args, **kwargs))

    @runs(StoreBase._calibrate)
    def calibrate(self, *args: Any, **kwargs: Any) -> Calibration:
        return self._call(self._calibrate(*args, **kwargs))

    @runs(StoreBase._summaries)
    def summaries(self, *args: Any, **kwargs: Any) -> list[StoredSummary]:
        return self._call(self._summaries(*args, **kwargs))

    # -- windows ---------------------------------------------------------------------------
    @runs(StoreBase._window)
    def window(self, *args: Any, **kwargs: Any) -> FitResult:
        return self._call(self._window(*args, **kwargs))
