"""What the sync and async stores share: argument checks and operation building.

:class:`~convkit.store.Store` and :class:`~convkit.store.AsyncStore` subclass
:class:`StoreBase` and differ only in how they run an operation (see
:mod:`convkit.store.ops`): on a ``Connection`` or on an ``AsyncConnection``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from ..counting import EstimateCounter, ImagePolicy, TokenCounter
from ..errors import ValidationError
from ..fitting import FitResult, Strategy, compute_budget, plan_fit
from ..jsonl import dumps_jsonl, loads_jsonl, read_jsonl
from ..messages import Message, MessageLike, as_messages
from ..models import ModelSpec, get_model
from ..summarize import FoldRequest, Summary, summary_message
from . import ops
from .engine import safe_url
from .msgcache import MessageCache

__all__ = ["StoreBase", "WindowArgs"]

#: Messages counted per transaction when a counter is back-filled.
BACKFILL_BATCH = 5000
#: Windows run without a snapshot on PostgreSQL (each statement checks the conversation did not
#: change since the first); after this many changed under them, one runs in a snapshot.
WINDOW_UNSNAPPED_TRIES = 3


class WindowArgs:
    """Checked arguments of ``window``."""

    def __init__(
        self,
        *,
        model: str | ModelSpec,
        counter: TokenCounter,
        reserve: int,
        strategy: Strategy,
        tools: Sequence[Mapping[str, Any]] | None,
        images: ImagePolicy,
        margin: float | None,
    ) -> None:
        if strategy not in ("trim", "summarize"):
            raise ValidationError(f"unknown strategy {strategy!r}; use 'trim' or 'summarize'")
        self.strategy = strategy
        self.spec = get_model(model)
        self.counter = counter
        self.reserve = reserve
        self.margin = counter.margin if margin is None else margin
        self.budget = compute_budget(self.spec, reserve, self.margin)
        self.tools = tools
        self.tools_tokens = counter.tools_tokens(tools)
        self.images = images

    def summarize_plan(
        self,
        messages: list[Message],
        stored: ops.StoredSummary | None,
        low_water: float,
        summary_tokens: int | None,
    ) -> tuple[FitResult, FitResult | FoldRequest]:
        previous = Summary(stored.text, stored.first_seq - 1, stored.last_seq - 1) if stored else None
        return plan_fit(
            messages,
            model=self.spec,
            counter=self.counter,
            reserve=self.reserve,
            strategy="summarize",
            tools=self.tools,
            images=self.images,
            margin=self.margin,
            summary=previous,
            low_water=low_water,
            summary_tokens=summary_tokens,
        )

    def stored_summary(self, result: FitResult) -> ops.StoredSummary:
        assert result.summary is not None
        s = result.summary
        tokens = self.counter.content_tokens([summary_message(s)])[0]
        return ops.StoredSummary(
            s.first + 1, s.last + 1, s.text, self.spec.name, self.counter.identity, tokens
        )

    def trim_op(
        self, ns: str, cid: str, cache: MessageCache | None = None, dialect: str = "sqlite"
    ) -> ops.Op[FitResult]:
        return ops.window_trim(
            ns,
            cid,
            self.spec,
            self.counter.identity,
            self.budget,
            self.reserve,
            self.margin,
            self.tools_tokens,
            cache,
            dialect,
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


class StoreBase:
    """Shared state and argument handling of the two store twins."""

    namespace: str
    counters: tuple[TokenCounter, ...]
    _url: str

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

    def _default_counter(self, counter: TokenCounter | None) -> TokenCounter:
        if counter is not None:
            return counter
        return self.counters[0] if self.counters else _ESTIMATE

    def _prepare(self, messages: Iterable[MessageLike]) -> ops.Prepared:
        msgs = as_messages(messages)
        return ops.prepare(msgs, self.counters)

    def _window_args(
        self,
        model: str | ModelSpec,
        counter: TokenCounter | None,
        reserve: int,
        strategy: Strategy,
        tools: Sequence[Mapping[str, Any]] | None,
        images: ImagePolicy,
        margin: float | None,
    ) -> WindowArgs:
        return WindowArgs(
            model=model,
            counter=self._default_counter(counter),
            reserve=reserve,
            strategy=strategy,
            tools=tools,
            images=images,
            margin=margin,
        )

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
        if not isinstance(dest, str | os.PathLike):
            dest.write(text)
            return None
        path = os.fspath(dest)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return None


_ESTIMATE = EstimateCounter()
