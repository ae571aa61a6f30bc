"""What the sync and async stores share: every public method, written once as a flow.

:class:`~convkit.store.Store` and :class:`~convkit.store.AsyncStore` subclass
:class:`StoreBase` and differ only in I/O: how they check the schema, how they
run one operation in one transaction (``_run``) and how they perform the steps
of a flow (``_call``, ``_perform``). Everything else is here: argument checks,
batches prepared (encoded and counted) before their transaction, the
operations built (see :mod:`convkit.store._ops_core`), window arguments, the
connection options of each kind of transaction, and the multi-step flows.

A *flow* is a generator, sans-I/O like the operations it runs: it yields
:class:`Txn` steps (run this operation in its own transaction) and
:class:`Summarize` steps (ask the summarizer), and the twin sends back each
step's result or throws its error in; its return value is the method's. A
window's retries, back-fill and fallback to a full fit, and the summary fold,
are written here once. Each public method of a twin is one line bound to its
flow by :func:`runs`, which gives it the flow's signature and docstring.

Invariants: the twins' public methods have the same names, signatures and
docstrings (by construction); arguments are checked and batches prepared
before the first transaction (so bad input stores nothing, and an
:class:`~convkit.store.AsyncStore` checks them before its schema); each step
runs in a transaction of its own, never two at once; database errors come out
as :class:`~convkit._errors.DatabaseError` (``db_errors`` in the twins' ``_run``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import IO, Any, ClassVar, Generic, Literal, ParamSpec, TypeAlias, TypeVar

import attrs
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from .._counting import EstimateCounter, ImagePolicy, TokenCounter
from .._engine.settings import Policy, WindowSettings
from .._errors import ConversationNotFoundError, ConvkitError, ValidationError
from .._fitting import (
    FitResult,
    Strategy,
    complete_fold,
    fold_failed,
    plan_fit,
    sync_answer,
)
from .._jsonl import dumps_jsonl, loads_jsonl, read_jsonl, write_jsonl_text
from .._messages import Message, MessageLike, as_messages
from .._models import ModelSpec, get_model
from .._results import Calibration, Conversation, StoredSummary, UsageTotals
from .._stepper import runs
from .._summarize import AsyncSummarizer, FoldRequest, Summarizer, Summary, summary_message
from ._appends import Prepared, append, create_filled, prepare
from ._calibration import add_calibration, get_calibration
from ._conversations import (
    conversation_of,
    create_conversation,
    create_keyed,
    find_conversation,
    get_conversation,
    list_conversations,
    read_messages,
)
from ._db import DEFAULT_URL, PoolOptions, db_errors, safe_url
from ._forks import fork, pop, truncate
from ._image_gc import delete_conversation
from ._msgcache import MessageCache
from ._ops_core import Op
from ._scan_window import window_scan
from ._summary_window import Part, summary_part
from ._totals import backfill
from ._turns import (
    begin_turn,
    end_turn,
    latest_summary,
    record_turn,
    save_summary,
    summaries,
    usage_totals,
)
from ._windows import NeedsBackfill, NeedsFullFit, WindowMoved, save_start, window_trim

__all__ = ["Compute", "Flow", "Step", "StoreBase", "Summarize", "Txn", "WindowArgs", "runs"]

#: Messages counted per transaction when a counter is back-filled.
BACKFILL_BATCH = 5000
#: Windows run without a snapshot on PostgreSQL (each statement checks the conversation did not
#: change since the first); after this many changed under them, one runs in a snapshot.
WINDOW_UNSNAPPED_TRIES = 3

T = TypeVar("T")

#: From this many messages, an async store encodes and counts a batch in a worker thread.
OFF_LOOP_AT = 256
R = TypeVar("R")
P = ParamSpec("P")
E = TypeVar("E", Engine, AsyncEngine)


@attrs.frozen
class Txn(Generic[T]):
    """A flow's step: run ``op`` in a transaction of its own (``read``: a read-only one).

    ``snapshot=False`` (reads that check consistency themselves, as windows do): on PostgreSQL
    the statements run without a transaction. ``what`` names the step in database errors.
    """

    op: Op[T]
    what: str
    read: bool = False
    snapshot: bool = True
    #: a write that must see rows committed after it began (PostgreSQL: READ COMMITTED)
    read_committed: bool = False


@attrs.frozen
class Summarize:
    """A flow's step: ask the summarizer (``ask()``); the async twin awaits an awaitable answer."""

    ask: Callable[[], object]


@attrs.frozen
class Compute:
    """A flow's step: CPU work without I/O (``ask()``), such as encoding and counting a batch.

    The async twin awaits what ``ask`` answers, so a flow built by an async store hands it an
    awaitable that runs the work in a worker thread (:meth:`StoreBase._prepared`): the event
    loop keeps running meanwhile.
    """

    ask: Callable[[], object]


#: What a flow yields.
Step: TypeAlias = "Txn[Any] | Summarize | Compute"
#: A flow: the steps of one public method, and its result.
Flow: TypeAlias = Generator[Step, Any, T]


def _replace(ns: str, cid: str, batch: Prepared, dialect: str) -> Op[range]:
    """Empty the conversation, then append ``batch``: one operation, so one transaction."""
    yield from truncate(ns, cid, 0)
    return (yield from append(ns, cid, batch, dialect))


def once(op: Op[T], what: str, *, read: bool = False) -> Flow[T]:
    """The flow of one operation in one transaction."""
    result: T = yield Txn(op, what, read)
    return result


class WindowArgs:
    """The window's :class:`~convkit._engine.settings.WindowSettings`, and what the store does with them."""

    def __init__(self, settings: WindowSettings) -> None:
        self.settings = settings
        self.strategy = settings.strategy
        self.spec = settings.spec
        self.counter = settings.counter

    def summarize_plan(
        self, messages: list[Message], stored: StoredSummary | None
    ) -> tuple[FitResult, FitResult | FoldRequest]:
        previous = Summary(stored.text, stored.first_seq - 1, stored.last_seq - 1) if stored else None
        return plan_fit(messages, self.settings, summary=previous)

    def stored_summary(self, result: FitResult) -> StoredSummary:
        assert result.summary is not None
        s = result.summary
        tokens = self.counter.content_tokens([summary_message(s)])[0]
        return StoredSummary(s.first + 1, s.last + 1, s.text, self.spec.name, self.counter.identity, tokens)

    def trim_op(
        self, ns: str, cid: str, cache: MessageCache | None = None, dialect: str = "sqlite"
    ) -> Op[tuple[FitResult, int | None]]:
        w = self.settings
        return window_trim(
            ns,
            cid,
            w.spec,
            w.counter.identity,
            w.budget,
            w.reserve,
            w.margin,
            w.tools_tokens,
            cache,
            dialect,
            w.spec.name,
            w.low_water if w.policy == "stable" else None,
        )


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not namespace or len(namespace) > 255 or "\x00" in namespace:
        raise ValidationError(
            f"namespace must be a non-empty string of at most 255 characters without NUL, got {namespace!r}"
        )
    return namespace


def check_id(conversation_id: object) -> str:
    if not isinstance(conversation_id, str) or not conversation_id or "\x00" in conversation_id:
        raise ValidationError(f"a conversation id is a non-empty string without NUL, got {conversation_id!r}")
    return conversation_id


#: Connection options of a transaction, and whether it BEGINs one (see ``StoreBase._options``).
_WRITE: tuple[Mapping[str, Any], bool] = ({}, True)
_PG_WRITE_COMMITTED: tuple[Mapping[str, Any], bool] = ({"isolation_level": "READ COMMITTED"}, True)
_READ: tuple[Mapping[str, Any], bool] = ({"convkit_read": True}, True)
_PG_READ: tuple[Mapping[str, Any], bool] = (
    {"convkit_read": True, "isolation_level": "REPEATABLE READ"},
    True,
)
_PG_UNSNAPPED: tuple[Mapping[str, Any], bool] = (
    {"convkit_read": True, "isolation_level": "AUTOCOMMIT"},
    False,
)


class StoreBase(Generic[E]):
    """Shared state, argument handling and flows of the two store twins (``E``: their engine)."""

    namespace: str
    counters: tuple[TokenCounter, ...]
    _url: str
    _dialect: str
    #: A synchronous twin refuses an awaitable summarizer answer (an async summarizer).
    _synchronous: ClassVar[bool] = False

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        namespace: str = "default",
        counters: Iterable[TokenCounter] = (),
        upgrade: bool | None = None,
        engine: E | None = None,
        window_cache: int = 64,
        pool_size: int = 10,
        pool_timeout: float = 10.0,
        statement_timeout: float | None = 30.0,
    ) -> None:
        self._init_common(str(engine.url) if engine is not None else url, namespace, counters, window_cache)
        pool = PoolOptions(pool_size, pool_timeout, statement_timeout)
        self._owns_engine = engine is None
        with db_errors("opening the database"):
            self._engine: E = engine if engine is not None else self._create_engine(url, pool)
        self._dialect = self._engine.dialect.name
        self._upgrade = upgrade
        self._opened()

    def _create_engine(self, url: str, pool: PoolOptions) -> E:
        raise NotImplementedError

    def _opened(self) -> None:
        """The twin's last step of ``__init__`` (the sync one checks the schema there)."""

    def _init_common(
        self, url: str, namespace: str, counters: Iterable[TokenCounter], window_cache: int = 64
    ) -> None:
        self.namespace = check_namespace(namespace)
        if isinstance(window_cache, bool) or not isinstance(window_cache, int) or window_cache < 0:
            raise ValidationError(
                f"window_cache is how many conversations' last window to keep decoded in memory: "
                f"an integer >= 0 (0 keeps none), got {window_cache!r}"
            )
        self._cache = MessageCache(window_cache)
        self.counters = tuple(counters)
        for c in self.counters:
            if not isinstance(getattr(c, "identity", None), str):
                raise ValidationError(f"counters must be token counters, got {type(c).__name__}")
        self._url = safe_url(url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url!r}, namespace={self.namespace!r})"

    @property
    def engine(self) -> E:
        """The SQLAlchemy engine the store runs on."""
        return self._engine

    def _upgrades(self, status: str) -> bool:
        """Whether to upgrade a schema in ``status``: as ``upgrade=`` says, else only a new SQLite file."""
        if self._upgrade is None:
            return self._dialect == "sqlite" and status == "empty"
        return self._upgrade

    def _options(self, txn: Txn[Any]) -> tuple[Mapping[str, Any], bool]:
        """The connection's execution options for ``txn``, and whether it runs in a transaction.

        A read runs all its statements in one snapshot (PostgreSQL's default isolation lets each
        statement see later commits; SQLite's read transactions are snapshots). A read without
        one (``snapshot=False``) on PostgreSQL runs without a transaction, saving its BEGIN and
        COMMIT round trips.
        """
        if not txn.read:
            return _PG_WRITE_COMMITTED if txn.read_committed and self._dialect == "postgresql" else _WRITE
        if self._dialect != "postgresql":
            return _READ
        return _PG_READ if txn.snapshot else _PG_UNSNAPPED

    def _default_counter(self, counter: TokenCounter | None) -> TokenCounter:
        if counter is not None:
            return counter
        return self.counters[0] if self.counters else _ESTIMATE

    def _prepare(self, messages: Iterable[MessageLike]) -> Prepared:
        msgs = as_messages(messages)
        return prepare(msgs, self.counters)

    def _off_loop(self, work: Callable[[], T], size: int) -> Flow[T]:
        """``work()``: CPU work of about ``size`` messages, run in a worker thread by an async
        store (from :data:`OFF_LOOP_AT` messages), so its event loop is not blocked meanwhile."""
        if self._synchronous or size < OFF_LOOP_AT:
            return work()
        result: T = yield Compute(lambda: asyncio.to_thread(work))
        return result

    def _prepared(self, messages: Iterable[MessageLike]) -> Flow[Prepared]:
        """A batch validated, encoded and counted (:meth:`_off_loop`: off an async store's loop)."""
        msgs = messages if isinstance(messages, list | tuple) else list(messages)
        return (yield from self._off_loop(lambda: self._prepare(msgs), len(msgs)))

    @staticmethod
    def _read_source(source: str | os.PathLike[str] | IO[str]) -> list[Message]:
        if isinstance(source, str | os.PathLike):
            return read_jsonl(source, allow_empty=True)
        return loads_jsonl(source.read(), source=str(getattr(source, "name", "<stream>")), allow_empty=True)

    @staticmethod
    def _write_dest(messages: list[Message], dest: str | os.PathLike[str] | IO[str] | None) -> str | None:
        text = dumps_jsonl(messages)
        if dest is None:
            return text
        write_jsonl_text(text, dest)  # atomic for a path; StoreError (temporary file removed) if it fails
        return None

    # -- conversations ---------------------------------------------------------------------
    def _create_conversation(
        self, *, title: str | None = None, metadata: Mapping[str, Any] | None = None, key: str | None = None
    ) -> Flow[Conversation]:
        """A new, empty conversation in this namespace.

        ``key``: the application's own id for it (a session, thread or user id), unique in the
        namespace; :class:`~convkit.ConversationExistsError` if another conversation has it.
        """
        op = create_conversation(self.namespace, title, metadata, key, self._dialect)
        result: Conversation = yield Txn(op, "create_conversation", read_committed=key is not None)
        return result

    def _find_conversation(self, key: str) -> Flow[Conversation | None]:
        """The namespace's conversation with the application key ``key``, or None (only reads)."""
        return once(find_conversation(self.namespace, key), "find_conversation", read=True)

    def _conversation_for(
        self,
        key: str,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        create: bool = True,
    ) -> Flow[Conversation]:
        """The namespace's conversation with the application key ``key``, created on first use.

        ``title`` and ``metadata`` are those of a conversation created now (an existing one is
        returned as it is). Safe under concurrent callers, in any process: they all get the
        one conversation. An existing key is found by a read; only a new one takes a write.
        ``create=False``: :class:`~convkit.ConversationNotFoundError` (with ``key=True``) when
        no conversation has the key (:meth:`find_conversation` returns None instead). Use the
        returned ``.id`` with every other method.
        """
        found = yield from self._find_conversation(key)
        if found is not None:
            return found
        if not create:
            raise ConversationNotFoundError(key, self.namespace, key=True)
        op = create_keyed(self.namespace, key, title, metadata, self._dialect)
        made: tuple[Any, bool] = yield Txn(op, "conversation_for", read_committed=True)
        return conversation_of(made[0])

    def _get_conversation(self, conversation_id: str) -> Flow[Conversation]:
        """The conversation's header (``ConversationNotFoundError`` in another namespace)."""
        op = get_conversation(self.namespace, check_id(conversation_id))
        return once(op, "get_conversation", read=True)

    def _list_conversations(self, *, limit: int = 100, after: str | None = None) -> Flow[list[Conversation]]:
        """Conversations oldest first; pass the last id of a page as ``after`` for the next page."""
        return once(list_conversations(self.namespace, limit, after), "list_conversations", read=True)

    def _delete_conversation(self, conversation_id: str) -> Flow[None]:
        """Delete a conversation with its messages, counts, summaries, usage and the images only it used."""
        return once(delete_conversation(self.namespace, check_id(conversation_id)), "delete_conversation")

    # -- messages --------------------------------------------------------------------------
    def _append(self, conversation_id: str, message: MessageLike) -> Flow[int]:
        """Append one message; returns its seq."""
        seqs = yield from self._extend(conversation_id, [message])
        return seqs[0]

    def _extend(self, conversation_id: str, messages: Iterable[MessageLike]) -> Flow[range]:
        """Append messages atomically (all or none); returns their seqs."""
        cid = check_id(conversation_id)
        batch = yield from self._prepared(messages)
        return (yield from once(append(self.namespace, cid, batch, self._dialect), "extend"))

    def _messages(
        self, conversation_id: str, *, start: int | None = None, stop: int | None = None
    ) -> Flow[list[Message]]:
        """Messages with ``start <= seq < stop`` (seqs start at 1), in order."""
        op = read_messages(self.namespace, check_id(conversation_id), start, stop)
        pairs = yield Txn(op, "messages", read=True)
        return [m for _, m in pairs]

    def _fork(
        self, conversation_id: str, at_seq: int | None = None, *, title: str | None = None
    ) -> Flow[Conversation]:
        """A new conversation with messages 1..at_seq (default: all) of this one."""
        return once(fork(self.namespace, check_id(conversation_id), at_seq, title), "fork")

    def _export_jsonl(
        self, conversation_id: str, dest: str | os.PathLike[str] | IO[str] | None = None
    ) -> Flow[str | None]:
        """The conversation as JSONL: returned as a string, or written to a path or file."""
        messages = yield from self._messages(conversation_id)
        return self._write_dest(messages, dest)

    def _import_jsonl(
        self, source: str | os.PathLike[str] | IO[str], *, title: str | None = None
    ) -> Flow[Conversation]:
        """A new conversation from a JSONL path or file; all lines or nothing."""
        batch = yield from self._off_loop(lambda: self._prepare(self._read_source(source)), OFF_LOOP_AT)
        return (yield from once(create_filled(self.namespace, title, batch, self._dialect), "import_jsonl"))

    def _truncate(self, conversation_id: str, keep: int) -> Flow[list[Message]]:
        """Delete every message after seq ``keep`` (0 empties the conversation); returns them.

        Later appends continue at ``keep + 1``; a window afterwards equals
        ``fit`` over the remaining messages.
        """
        return once(truncate(self.namespace, check_id(conversation_id), keep), "truncate")

    def _replace_messages(self, conversation_id: str, messages: Iterable[MessageLike]) -> Flow[range]:
        """Replace every message of the conversation with ``messages`` in one transaction.

        All or nothing: the new messages are validated (tool results need
        their calls among them) before anything changes, and on any error the
        old messages stay. Returns the new seqs (from 1); as ``truncate(.., 0)``
        then ``extend``, but atomic.
        """
        cid = check_id(conversation_id)
        batch = yield from self._prepared(messages)
        return (yield from once(_replace(self.namespace, cid, batch, self._dialect), "replace_messages"))

    def _pop(self, conversation_id: str) -> Flow[Message | None]:
        """Remove and return the newest message (None when the conversation is empty)."""
        return once(pop(self.namespace, check_id(conversation_id)), "pop")

    # -- turns, usage, calibration ---------------------------------------------------------
    def _record_turn(
        self, conversation_id: str, reply: MessageLike | None, usage: Mapping[str, Any]
    ) -> Flow[int | None]:
        """Append a model's reply and its usage row atomically; returns the reply's seq.

        ``usage`` keys: ``model``, ``counter_id``, ``local_prompt_tokens``,
        ``prompt_tokens``, ``completion_tokens``, ``image_tokens``,
        ``cached_tokens``, ``reasoning_tokens``, ``cost_usd``.
        """
        cid = check_id(conversation_id)
        batch = self._prepare([reply]) if reply is not None else None
        return once(record_turn(self.namespace, cid, batch, usage, self._dialect), "record_turn")

    def _begin_turn(
        self, conversation_id: str, message: MessageLike, calibration: tuple[ModelSpec, TokenCounter] | None
    ) -> Flow[tuple[int | None, Calibration | None]]:
        """A session turn's first transaction (internal): the user's message unless it is already
        the last one (a retried turn), and the calibration of ``(model, counter)``."""
        cid = check_id(conversation_id)
        batch = self._prepare([message])
        key = (calibration[0].name, calibration[1].identity) if calibration is not None else None
        return once(begin_turn(self.namespace, cid, batch, self._dialect, key), "send")

    def _end_turn(
        self,
        conversation_id: str,
        reply: MessageLike | None,
        usage: Mapping[str, Any],
        calibration: tuple[ModelSpec, TokenCounter, float] | None,
    ) -> Flow[int | None]:
        """A session turn's last transaction (internal): the reply, its usage row and the observed ratio."""
        cid = check_id(conversation_id)
        batch = self._prepare([reply]) if reply is not None else None
        key = (
            (calibration[0].name, calibration[1].identity, calibration[2])
            if calibration is not None
            else None
        )
        return once(end_turn(self.namespace, cid, batch, usage, self._dialect, key), "record_turn")

    def _usage(self, conversation_id: str) -> Flow[UsageTotals]:
        """Tokens and cost summed over the conversation's recorded turns."""
        return once(usage_totals(self.namespace, check_id(conversation_id)), "usage", read=True)

    def _calibration(self, model: str | ModelSpec, counter: TokenCounter) -> Flow[Calibration | None]:
        """What this namespace has learned about ``counter`` against xAI's counts for ``model``."""
        spec = get_model(model)
        return once(get_calibration(self.namespace, spec.name, counter.identity), "calibration", read=True)

    def _calibrate(self, model: str | ModelSpec, counter: TokenCounter, ratio: float) -> Flow[Calibration]:
        """Record an observed ratio of xAI's prompt tokens to ``counter``'s count (this namespace's)."""
        spec = get_model(model)
        return once(
            add_calibration(self.namespace, spec.name, counter.identity, ratio, self._dialect), "calibrate"
        )

    def _summaries(self, conversation_id: str) -> Flow[list[StoredSummary]]:
        """Every stored summary of the conversation, oldest first (originals are never changed)."""
        return once(summaries(self.namespace, check_id(conversation_id)), "summaries", read=True)

    # -- windows ---------------------------------------------------------------------------
    def _window(
        self,
        conversation_id: str,
        *,
        model: str | ModelSpec | None = None,
        counter: TokenCounter | None = None,
        reserve: int | None = None,
        strategy: Strategy = "trim",
        tools: Sequence[Mapping[str, Any]] | None = None,
        images: ImagePolicy = "error",
        margin: float | None = None,
        summarizer: Summarizer | AsyncSummarizer | None = None,
        fallback: Literal["error", "trim"] = "error",
        low_water: float = 0.6,
        summary_tokens: int | None = None,
        policy: Policy = "maximal",
        settings: WindowSettings | None = None,
    ) -> Flow[FitResult]:
        """The messages to send now: equal to ``convkit.fit`` over the stored messages.

        Reads stored counts (back-filling a new counter once, in batches) and
        only the bodies of the kept rows. ``settings``: a :class:`~convkit.WindowSettings`
        instead of the window arguments one by one. ``policy="stable"`` (trim): equal to
        ``fit(..., policy="stable", start=...)`` with the start this store remembers for the
        conversation, model and counter (stored when a cut moves it), so consecutive windows
        share their prefix for xAI's prompt cache, across calls and processes.
        """
        cid = check_id(conversation_id)
        args = WindowArgs(
            WindowSettings.given(
                settings,
                model,
                default_counter=self._default_counter(None),
                counter=counter,
                reserve=reserve,
                strategy=strategy,
                tools=tools,
                images=images,
                margin=margin,
                fallback=fallback,
                low_water=low_water,
                summary_tokens=summary_tokens,
                policy=policy,
            )
        )
        if args.strategy == "summarize":
            return self._summarized(cid, args, summarizer)
        return self._trimmed(cid, args)

    def _trimmed(self, cid: str, args: WindowArgs) -> Flow[FitResult]:
        """A trim window: read without a snapshot until one is consistent; back-fill, or fit it all."""
        moved = 0
        for _ in range(100):
            try:
                op = args.trim_op(self.namespace, cid, self._cache, self._dialect)
                got: tuple[FitResult, int | None] = yield Txn(
                    op, "window", True, moved >= WINDOW_UNSNAPPED_TRIES
                )
                yield from self._keep_start(cid, args, *got)
                return got[0]
            except WindowMoved:  # written to between its statements: again (in a snapshot at last)
                moved += 1
            except NeedsFullFit:  # a text-only model, a conversation holding images
                if args.settings.images == "drop":  # newest first, counted as sent
                    scan = window_scan(self.namespace, cid, args.settings, self._cache)
                    scanned: tuple[FitResult, int | None] = yield Txn(scan, "window", read=True)
                    yield from self._keep_start(cid, args, *scanned)
                    return scanned[0]
                messages = yield from self._messages(cid)  # raises, naming the first image
                trimmed, _ = plan_fit(messages, args.settings)
                return trimmed
            except NeedsBackfill:  # a counter that has not counted every message yet
                while not (yield from self._backfill(cid, args.counter)):
                    pass
        raise RuntimeError("window: counts kept falling behind concurrent appends")  # pragma: no cover

    def _keep_start(self, cid: str, args: WindowArgs, result: FitResult, stored: int | None) -> Flow[None]:
        """Remember a stable window's start when a cut moved it (``stored``: the one it read)."""
        w = args.settings
        if w.policy == "stable" and stored != result.start + 1:
            yield Txn(
                save_start(cid, w.spec.name, w.counter.identity, result.start + 1, self._dialect), "window"
            )

    def _backfill(self, cid: str, counter: TokenCounter) -> Flow[bool]:
        """Count one batch of messages past ``counter``'s watermark; True when none are left."""
        return once(backfill(self.namespace, cid, counter, BACKFILL_BATCH, self._dialect), "backfill")

    def _summary_plan(
        self, cid: str, args: WindowArgs
    ) -> Flow[tuple[FitResult | None, FitResult | FoldRequest]]:
        """The summarize plan: over the part a stored summary leaves (see
        :mod:`convkit.store._summary_window`), else over every message; and the trimmed window
        (``None`` when planned over a part: then :meth:`_trimmed` gives it, if needed)."""
        part: Part | None = None
        for _ in range(100):
            try:
                op = summary_part(self.namespace, cid, args.spec, args.counter, self._cache)
                part = yield Txn(op, "window", read=True)
                break
            except NeedsBackfill:
                while not (yield from self._backfill(cid, args.counter)):
                    pass
        else:  # pragma: no cover
            raise RuntimeError("window: counts kept falling behind concurrent appends")
        if part is not None:
            _, step = plan_fit(
                part.history, args.settings, summary=part.previous, origin=part.origin, length=part.length
            )
            if not isinstance(step, FitResult) or step.summary is not None:
                return None, step
            # the part fits whole, so the conversation does: its window holds no summary
        messages = yield from self._messages(cid)
        stored: StoredSummary | None = yield Txn(latest_summary(self.namespace, cid), "window", read=True)
        return args.summarize_plan(messages, stored)

    def _summarized(
        self, cid: str, args: WindowArgs, summarizer: Summarizer | AsyncSummarizer | None
    ) -> Flow[FitResult]:
        """A summarize window: fold what falls out into the stored summary, when it must."""
        if summarizer is None:
            raise ValidationError(
                "strategy='summarize' needs summarizer=... (e.g. convkit.ExtractiveSummarizer())"
            )
        fallback = args.settings.fallback
        trimmed, step = yield from self._summary_plan(cid, args)
        if isinstance(step, FitResult):
            return step
        fold = step
        failed: tuple[Exception, bool] | None = None
        try:
            text: Any = yield Summarize(
                lambda: summarizer.summarize(
                    list(fold.messages), previous=fold.previous, max_tokens=fold.max_tokens
                )
            )
        except Exception as exc:
            failed = (exc, False)
        else:
            if self._synchronous:
                text = sync_answer(text, "Store.window")
            try:
                result = complete_fold(step, text)
            except ConvkitError as exc:
                failed = (exc, True)
        if failed is not None:
            if trimmed is None and fallback == "trim":  # planned over a part: trim the whole
                trimmed = yield from self._trimmed(cid, args)
            return fold_failed(failed[0], trimmed, fallback, answer=failed[1])
        yield Txn(save_summary(self.namespace, cid, args.stored_summary(result)), "save_summary")
        return result


_ESTIMATE = EstimateCounter()
