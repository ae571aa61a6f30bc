"""``Store``: the synchronous conversation store (SQLite or PostgreSQL).

A thin driver: every method checks its arguments, then runs one operation of
:mod:`convkit.store.ops` inside one transaction on a ``Connection``. Its twin
:class:`~convkit.store.aio.AsyncStore` has the same method names.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, Literal, TypeVar

from sqlalchemy.engine import Connection, Engine

from ..counting import ImagePolicy, TokenCounter
from ..errors import ConvkitError, ValidationError
from ..fitting import FitResult, Strategy, complete_fold, fit, fold_failed, sync_answer
from ..messages import Message, MessageLike
from ..models import ModelSpec, get_model
from ..summarize import AsyncSummarizer, Summarizer
from . import migrate, ops
from ._base import BACKFILL_BATCH, WINDOW_UNSNAPPED_TRIES, StoreBase, WindowArgs, check_id
from .engine import DEFAULT_URL, create_sync, db_errors

T = TypeVar("T")

__all__ = ["Store", "drive"]


def drive(conn: Connection, op: ops.Op[T]) -> T:
    """Run a sans-I/O operation on a connection."""
    result: Any = None
    while True:
        try:
            req = op.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        if req.raw:
            result = ops.run_raw(conn, req)
        else:
            result = conn.execute(req.stmt) if req.params is None else conn.execute(req.stmt, req.params)


class Store(StoreBase):
    """Conversations in a database, scoped to one namespace.

    ``url``: ``sqlite:///path.db`` (created and upgraded on first use) or
    ``postgresql+psycopg://...``. ``counters``: token counters that count
    each message when it is written, so windows never re-tokenize.
    ``upgrade``: ``True`` upgrades the schema to this version's head,
    ``False`` only checks it, ``None`` (default) upgrades a new, empty SQLite
    file and checks everything else. ``window_cache``: for how many
    conversations the store keeps the last window's messages decoded in
    memory, so the next window reads and decodes only rows it has not seen
    (0 keeps none; see :mod:`convkit.store.msgcache`).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        namespace: str = "default",
        counters: Iterable[TokenCounter] = (),
        upgrade: bool | None = None,
        engine: Engine | None = None,
        window_cache: int = 64,
    ) -> None:
        self._init_common(str(engine.url) if engine is not None else url, namespace, counters, window_cache)
        self._owns_engine = engine is None
        with db_errors("opening the database"):
            self._engine = engine if engine is not None else create_sync(url)
        self._dialect = self._engine.dialect.name
        with db_errors("checking the schema"), self._engine.connect() as conn:
            status = migrate.schema_status(conn)
        if upgrade is None:
            upgrade = self._dialect == "sqlite" and status == "empty"
        migrate.ensure_schema(self._engine, upgrade=upgrade)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        """Release the connection pool (when the store created the engine)."""
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, op: ops.Op[T], what: str, *, read: bool = False, snapshot: bool = True) -> T:
        """Run an operation in one transaction (``read``: a read-only one).

        ``snapshot=False`` (reads that check consistency themselves, as windows do): PostgreSQL
        runs the statements without a transaction, saving its BEGIN and COMMIT round trips.
        """
        with db_errors(what), self._engine.connect() as conn:
            if read and not snapshot and self._dialect == "postgresql":
                conn.execution_options(convkit_read=True, isolation_level="AUTOCOMMIT")
                return drive(conn, op)
            if read:
                # one snapshot for every statement of a read (PostgreSQL's default isolation
                # lets each statement see later commits); SQLite's read transactions are snapshots
                if self._dialect == "postgresql":
                    conn.execution_options(convkit_read=True, isolation_level="REPEATABLE READ")
                else:
                    conn.execution_options(convkit_read=True)
            with conn.begin():
                return drive(conn, op)

    # -- conversations ---------------------------------------------------------------------
    def create_conversation(
        self, *, title: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> ops.Conversation:
        """A new, empty conversation in this namespace."""
        return self._run(ops.create_conversation(self.namespace, title, metadata), "create_conversation")

    def get_conversation(self, conversation_id: str) -> ops.Conversation:
        return self._run(
            ops.get_conversation(self.namespace, check_id(conversation_id)), "get_conversation", read=True
        )

    def list_conversations(self, *, limit: int = 100, after: str | None = None) -> list[ops.Conversation]:
        """Conversations oldest first; pass the last id of a page as ``after`` for the next page."""
        return self._run(
            ops.list_conversations(self.namespace, limit, after), "list_conversations", read=True
        )

    def delete_conversation(self, conversation_id: str) -> None:
        """Delete a conversation with its messages, counts, summaries and usage."""
        self._run(ops.delete_conversation(self.namespace, check_id(conversation_id)), "delete_conversation")

    # -- messages --------------------------------------------------------------------------
    def append(self, conversation_id: str, message: MessageLike) -> int:
        """Append one message; returns its seq."""
        seqs = self.extend(conversation_id, [message])
        return seqs[0]

    def extend(self, conversation_id: str, messages: Iterable[MessageLike]) -> range:
        """Append messages atomically (all or none); returns their seqs."""
        cid = check_id(conversation_id)
        batch = self._prepare(messages)
        return self._run(ops.append(self.namespace, cid, batch, self._dialect), "extend")

    def messages(
        self, conversation_id: str, *, start: int | None = None, stop: int | None = None
    ) -> list[Message]:
        """Messages with ``start <= seq < stop`` (seqs start at 1), in order."""
        return [m for _, m in self._seq_messages(conversation_id, start, stop)]

    def _seq_messages(
        self, conversation_id: str, start: int | None, stop: int | None
    ) -> list[tuple[int, Message]]:
        op = ops.read_messages(self.namespace, check_id(conversation_id), start, stop)
        return self._run(op, "messages", read=True)

    def fork(
        self, conversation_id: str, at_seq: int | None = None, *, title: str | None = None
    ) -> ops.Conversation:
        """A new conversation with messages 1..at_seq (default: all) of this one."""
        return self._run(ops.fork(self.namespace, check_id(conversation_id), at_seq, title), "fork")

    def export_jsonl(
        self, conversation_id: str, dest: str | os.PathLike[str] | IO[str] | None = None
    ) -> str | None:
        """The conversation as JSONL: returned as a string, or written to a path or file."""
        return self._write_dest(self.messages(conversation_id), dest)

    def import_jsonl(
        self, source: str | os.PathLike[str] | IO[str], *, title: str | None = None
    ) -> ops.Conversation:
        """A new conversation from a JSONL path or file; all lines or nothing."""
        batch = self._prepare(self._read_source(source))

        def op() -> ops.Op[ops.Conversation]:
            conv = yield from ops.create_conversation(self.namespace, title, None)
            yield from ops.append(self.namespace, conv.id, batch, self._dialect)
            return (yield from ops.get_conversation(self.namespace, conv.id))

        return self._run(op(), "import_jsonl")

    def truncate(self, conversation_id: str, keep: int) -> list[Message]:
        """Delete every message after seq ``keep`` (0 empties the conversation); returns them.

        Later appends continue at ``keep + 1``; a window afterwards equals
        ``fit`` over the remaining messages.
        """
        return self._run(ops.truncate(self.namespace, check_id(conversation_id), keep), "truncate")

    def pop(self, conversation_id: str) -> Message | None:
        """Remove and return the newest message (None when the conversation is empty)."""
        return self._run(ops.pop(self.namespace, check_id(conversation_id)), "pop")

    # -- turns, usage, calibration ---------------------------------------------------------
    def record_turn(
        self, conversation_id: str, reply: MessageLike | None, usage: Mapping[str, Any]
    ) -> int | None:
        """Append a model's reply and its usage row atomically; returns the reply's seq.

        ``usage`` keys: ``model``, ``counter_id``, ``local_prompt_tokens``,
        ``prompt_tokens``, ``completion_tokens``, ``image_tokens``,
        ``cached_tokens``, ``reasoning_tokens``, ``cost_usd``.
        """
        cid = check_id(conversation_id)
        batch = self._prepare([reply]) if reply is not None else None
        return self._run(ops.record_turn(self.namespace, cid, batch, usage, self._dialect), "record_turn")

    def usage(self, conversation_id: str) -> ops.UsageTotals:
        """Tokens and cost summed over the conversation's recorded turns."""
        return self._run(ops.usage_totals(self.namespace, check_id(conversation_id)), "usage", read=True)

    def calibration(self, model: str | ModelSpec, counter: TokenCounter) -> ops.Calibration | None:
        """What has been learned about ``counter`` against xAI's counts for ``model``."""
        spec = get_model(model)
        return self._run(ops.get_calibration(spec.name, counter.identity), "calibration", read=True)

    def calibrate(self, model: str | ModelSpec, counter: TokenCounter, ratio: float) -> ops.Calibration:
        """Record an observed ratio of xAI's prompt tokens to ``counter``'s count."""
        spec = get_model(model)
        return self._run(ops.add_calibration(spec.name, counter.identity, ratio, self._dialect), "calibrate")

    def summaries(self, conversation_id: str) -> list[ops.StoredSummary]:
        """Every stored summary of the conversation, oldest first (originals are never changed)."""
        return self._run(ops.summaries(self.namespace, check_id(conversation_id)), "summaries", read=True)

    def _summarized(
        self,
        cid: str,
        args: WindowArgs,
        summarizer: Summarizer | AsyncSummarizer | None,
        fallback: Literal["error", "trim"],
        low_water: float,
        summary_tokens: int | None,
    ) -> FitResult:
        if summarizer is None:
            raise ValidationError(
                "strategy='summarize' needs summarizer=... (e.g. convkit.ExtractiveSummarizer())"
            )
        if fallback not in ("error", "trim"):
            raise ValidationError(f"fallback must be 'error' or 'trim', got {fallback!r}")
        messages = self.messages(cid)
        stored = self._run(ops.latest_summary(self.namespace, cid), "window", read=True)
        trimmed, step = args.summarize_plan(messages, stored, low_water, summary_tokens)
        if isinstance(step, FitResult):
            return step
        try:
            text: Any = summarizer.summarize(
                list(step.messages), previous=step.previous, max_tokens=step.max_tokens
            )
        except Exception as exc:
            return fold_failed(exc, trimmed, fallback)
        text = sync_answer(text, "Store.window")
        try:
            result = complete_fold(step, text)
        except ConvkitError as exc:
            return fold_failed(exc, trimmed, fallback, answer=True)
        self._run(ops.save_summary(self.namespace, cid, args.stored_summary(result)), "save_summary")
        return result

    # -- windows ---------------------------------------------------------------------------
    def window(
        self,
        conversation_id: str,
        *,
        model: str | ModelSpec,
        counter: TokenCounter | None = None,
        reserve: int = 0,
        strategy: Strategy = "trim",
        tools: Sequence[Mapping[str, Any]] | None = None,
        images: ImagePolicy = "error",
        margin: float | None = None,
        summarizer: Summarizer | AsyncSummarizer | None = None,
        fallback: Literal["error", "trim"] = "error",
        low_water: float = 0.6,
        summary_tokens: int | None = None,
    ) -> FitResult:
        """The messages to send now: equal to ``convkit.fit`` over the stored messages.

        Reads stored counts (back-filling a new counter once, in batches) and
        only the bodies of the kept rows.
        """
        cid = check_id(conversation_id)
        args = self._window_args(model, counter, reserve, strategy, tools, images, margin)
        if args.strategy == "summarize":
            return self._summarized(cid, args, summarizer, fallback, low_water, summary_tokens)
        moved = 0
        for _ in range(100):
            try:
                return self._run(
                    args.trim_op(self.namespace, cid, self._cache, self._dialect),
                    "window",
                    read=True,
                    snapshot=moved >= WINDOW_UNSNAPPED_TRIES,
                )
            except ops.WindowMoved:  # written to between its statements: again (in a snapshot at last)
                moved += 1
            except ops.NeedsFullFit:  # a text-only model, a conversation holding images
                return fit(
                    self.messages(cid),
                    model=args.spec,
                    counter=args.counter,
                    reserve=reserve,
                    tools=tools,
                    images=images,
                    margin=args.margin,
                )
            except ops.NeedsBackfill:
                while not self._run(
                    ops.backfill(self.namespace, cid, args.counter, BACKFILL_BATCH, self._dialect), "backfill"
                ):
                    pass
        raise RuntimeError("window: counts kept falling behind concurrent appends")  # pragma: no cover
