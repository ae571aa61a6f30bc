"""``AsyncStore``: the asyncio twin of :class:`~convkit.store.sync.Store`.

Same method names, same semantics, same operations (:mod:`convkit.store.ops`)
run on an ``AsyncConnection`` (aiosqlite for SQLite; psycopg or asyncpg for
PostgreSQL). The schema is checked (or upgraded) on first use.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, Literal, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..counting import ImagePolicy, TokenCounter
from ..errors import ConvkitError, ValidationError
from ..fitting import FitResult, Strategy, complete_fold, fit, fold_failed
from ..messages import Message, MessageLike
from ..models import ModelSpec, get_model
from ..summarize import AsyncSummarizer, Summarizer
from . import migrate, ops
from ._base import BACKFILL_BATCH, WINDOW_UNSNAPPED_TRIES, StoreBase, WindowArgs, check_id
from .engine import DEFAULT_URL, create_async, db_errors

T = TypeVar("T")

__all__ = ["AsyncStore", "adrive"]


async def adrive(conn: AsyncConnection, op: ops.Op[T]) -> T:
    """Run a sans-I/O operation on an async connection."""
    result: Any = None
    while True:
        try:
            req = op.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        if req.raw:
            result = await conn.run_sync(ops.run_raw, req)
        else:
            result = await (
                conn.execute(req.stmt) if req.params is None else conn.execute(req.stmt, req.params)
            )


class AsyncStore(StoreBase):
    """Conversations in a database, scoped to one namespace (asyncio).

    Arguments as for :class:`~convkit.store.sync.Store`.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        namespace: str = "default",
        counters: Iterable[TokenCounter] = (),
        upgrade: bool | None = None,
        engine: AsyncEngine | None = None,
        window_cache: int = 64,
    ) -> None:
        self._init_common(str(engine.url) if engine is not None else url, namespace, counters, window_cache)
        self._owns_engine = engine is None
        with db_errors("opening the database"):
            self._engine = engine if engine is not None else create_async(url)
        self._dialect = self._engine.dialect.name
        self._upgrade = upgrade
        self._ready = False
        self._ready_lock = asyncio.Lock()

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def close(self) -> None:
        if self._owns_engine:
            await self._engine.dispose()

    async def __aenter__(self) -> AsyncStore:
        await self._ensure_ready()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _ensure_ready(self) -> None:
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:  # another task finished it meanwhile
                return  # type: ignore[unreachable]
            with db_errors("checking the schema"):
                async with self._engine.connect() as conn:
                    status = await conn.run_sync(migrate.schema_status)
            upgrade = self._upgrade
            if upgrade is None:
                upgrade = self._dialect == "sqlite" and status == "empty"
            with db_errors("upgrading the schema"):
                async with self._engine.connect() as conn:
                    await conn.run_sync(lambda c: migrate.ensure_schema(c, upgrade=bool(upgrade)))
                    await conn.commit()
            self._ready = True

    async def _run(self, op: ops.Op[T], what: str, *, read: bool = False, snapshot: bool = True) -> T:
        await self._ensure_ready()
        with db_errors(what):
            async with self._engine.connect() as conn:
                if read and not snapshot and self._dialect == "postgresql":  # see Store._run
                    await conn.execution_options(convkit_read=True, isolation_level="AUTOCOMMIT")
                    return await adrive(conn, op)
                if read:
                    # one snapshot for every statement of a read (PostgreSQL's default isolation
                    # lets each statement see later commits); SQLite's read transactions are snapshots
                    if self._dialect == "postgresql":
                        await conn.execution_options(convkit_read=True, isolation_level="REPEATABLE READ")
                    else:
                        await conn.execution_options(convkit_read=True)
                async with conn.begin():
                    return await adrive(conn, op)

    # -- conversations ---------------------------------------------------------------------
    async def create_conversation(
        self, *, title: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> ops.Conversation:
        return await self._run(
            ops.create_conversation(self.namespace, title, metadata), "create_conversation"
        )

    async def get_conversation(self, conversation_id: str) -> ops.Conversation:
        return await self._run(
            ops.get_conversation(self.namespace, check_id(conversation_id)), "get_conversation", read=True
        )

    async def list_conversations(
        self, *, limit: int = 100, after: str | None = None
    ) -> list[ops.Conversation]:
        return await self._run(
            ops.list_conversations(self.namespace, limit, after), "list_conversations", read=True
        )

    async def delete_conversation(self, conversation_id: str) -> None:
        await self._run(
            ops.delete_conversation(self.namespace, check_id(conversation_id)), "delete_conversation"
        )

    # -- messages --------------------------------------------------------------------------
    async def append(self, conversation_id: str, message: MessageLike) -> int:
        seqs = await self.extend(conversation_id, [message])
        return seqs[0]

    async def extend(self, conversation_id: str, messages: Iterable[MessageLike]) -> range:
        cid = check_id(conversation_id)
        batch = self._prepare(messages)
        return await self._run(ops.append(self.namespace, cid, batch, self._dialect), "extend")

    async def messages(
        self, conversation_id: str, *, start: int | None = None, stop: int | None = None
    ) -> list[Message]:
        op = ops.read_messages(self.namespace, check_id(conversation_id), start, stop)
        return [m for _, m in await self._run(op, "messages", read=True)]

    async def fork(
        self, conversation_id: str, at_seq: int | None = None, *, title: str | None = None
    ) -> ops.Conversation:
        return await self._run(ops.fork(self.namespace, check_id(conversation_id), at_seq, title), "fork")

    async def export_jsonl(
        self, conversation_id: str, dest: str | os.PathLike[str] | IO[str] | None = None
    ) -> str | None:
        return self._write_dest(await self.messages(conversation_id), dest)

    async def import_jsonl(
        self, source: str | os.PathLike[str] | IO[str], *, title: str | None = None
    ) -> ops.Conversation:
        batch = self._prepare(self._read_source(source))

        def op() -> ops.Op[ops.Conversation]:
            conv = yield from ops.create_conversation(self.namespace, title, None)
            yield from ops.append(self.namespace, conv.id, batch, self._dialect)
            return (yield from ops.get_conversation(self.namespace, conv.id))

        return await self._run(op(), "import_jsonl")

    async def truncate(self, conversation_id: str, keep: int) -> list[Message]:
        """Delete every message after seq ``keep`` (0 empties the conversation); returns them.

        Later appends continue at ``keep + 1``; a window afterwards equals
        ``fit`` over the remaining messages.
        """
        return await self._run(ops.truncate(self.namespace, check_id(conversation_id), keep), "truncate")

    async def pop(self, conversation_id: str) -> Message | None:
        """Remove and return the newest message (None when the conversation is empty)."""
        return await self._run(ops.pop(self.namespace, check_id(conversation_id)), "pop")

    # -- turns, usage, calibration ---------------------------------------------------------
    async def record_turn(
        self, conversation_id: str, reply: MessageLike | None, usage: Mapping[str, Any]
    ) -> int | None:
        """Append a model's reply and its usage row atomically; returns the reply's seq.

        ``usage`` keys: ``model``, ``counter_id``, ``local_prompt_tokens``,
        ``prompt_tokens``, ``completion_tokens``, ``image_tokens``,
        ``cached_tokens``, ``reasoning_tokens``, ``cost_usd``.
        """
        cid = check_id(conversation_id)
        batch = self._prepare([reply]) if reply is not None else None
        return await self._run(
            ops.record_turn(self.namespace, cid, batch, usage, self._dialect), "record_turn"
        )

    async def usage(self, conversation_id: str) -> ops.UsageTotals:
        """Tokens and cost summed over the conversation's recorded turns."""
        return await self._run(
            ops.usage_totals(self.namespace, check_id(conversation_id)), "usage", read=True
        )

    async def calibration(self, model: str | ModelSpec, counter: TokenCounter) -> ops.Calibration | None:
        """What has been learned about ``counter`` against xAI's counts for ``model``."""
        spec = get_model(model)
        return await self._run(ops.get_calibration(spec.name, counter.identity), "calibration", read=True)

    async def calibrate(self, model: str | ModelSpec, counter: TokenCounter, ratio: float) -> ops.Calibration:
        """Record an observed ratio of xAI's prompt tokens to ``counter``'s count."""
        spec = get_model(model)
        return await self._run(
            ops.add_calibration(spec.name, counter.identity, ratio, self._dialect), "calibrate"
        )

    async def summaries(self, conversation_id: str) -> list[ops.StoredSummary]:
        """Every stored summary of the conversation, oldest first (originals are never changed)."""
        return await self._run(
            ops.summaries(self.namespace, check_id(conversation_id)), "summaries", read=True
        )

    async def _summarized(
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
        messages = await self.messages(cid)
        stored = await self._run(ops.latest_summary(self.namespace, cid), "window", read=True)
        trimmed, step = args.summarize_plan(messages, stored, low_water, summary_tokens)
        if isinstance(step, FitResult):
            return step
        try:
            text: Any = summarizer.summarize(
                list(step.messages), previous=step.previous, max_tokens=step.max_tokens
            )
            if inspect.isawaitable(text):
                text = await text
        except Exception as exc:
            return fold_failed(exc, trimmed, fallback)
        try:
            result = complete_fold(step, text)
        except ConvkitError as exc:
            return fold_failed(exc, trimmed, fallback, answer=True)
        await self._run(ops.save_summary(self.namespace, cid, args.stored_summary(result)), "save_summary")
        return result

    # -- windows ---------------------------------------------------------------------------
    async def window(
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
        cid = check_id(conversation_id)
        args = self._window_args(model, counter, reserve, strategy, tools, images, margin)
        if args.strategy == "summarize":
            return await self._summarized(cid, args, summarizer, fallback, low_water, summary_tokens)
        moved = 0
        for _ in range(100):
            try:
                return await self._run(
                    args.trim_op(self.namespace, cid, self._cache, self._dialect),
                    "window",
                    read=True,
                    snapshot=moved >= WINDOW_UNSNAPPED_TRIES,
                )
            except ops.WindowMoved:  # written to between its statements: again (in a snapshot at last)
                moved += 1
            except ops.NeedsFullFit:  # a text-only model, a conversation holding images
                return fit(
                    await self.messages(cid),
                    model=args.spec,
                    counter=args.counter,
                    reserve=reserve,
                    tools=tools,
                    images=images,
                    margin=args.margin,
                )
            except ops.NeedsBackfill:
                while not await self._run(
                    ops.backfill(self.namespace, cid, args.counter, BACKFILL_BATCH, self._dialect), "backfill"
                ):
                    pass
        raise RuntimeError("window: counts kept falling behind concurrent appends")  # pragma: no cover
