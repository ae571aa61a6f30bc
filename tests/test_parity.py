"""Every sync/async twin pair has the same public names, signatures and docstrings.

A twin differs from its sibling only by ``await``: the async method is a
coroutine function (or an async generator where the sync one is a
generator), takes the same parameters with the same defaults and
annotations, returns the awaited form of the same type, and says the same
thing. Async handles also close with ``aclose()`` and work as async context
managers.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from convkit import (
    AsyncSession,
    AsyncStore,
    AsyncXAIClient,
    AsyncXAISummarizer,
    Session,
    Store,
    XAIClient,
    XAISummarizer,
)

PAIRS = [
    (Store, AsyncStore),
    (Session, AsyncSession),
    (XAIClient, AsyncXAIClient),
    (XAISummarizer, AsyncXAISummarizer),
]
#: What only one side has, by design.
ONLY_SYNC = {"close", "__enter__", "__exit__"}
ONLY_ASYNC = {"aclose", "__aenter__", "__aexit__", "close"}  # close: an alias of aclose


def public(cls: type) -> dict[str, Any]:
    return {
        name: getattr(cls, name)
        for name in dir(cls)
        if (not name.startswith("_") or name in ONLY_SYNC | ONLY_ASYNC) and callable(getattr(cls, name))
    }


def _kinds(annotation: Any) -> set[str]:
    """The members of an annotation's union, async or not alike (an async twin may take either)."""
    return {part.strip().replace("Async", "") for part in str(annotation).split("|")}


@pytest.mark.parametrize(("sync", "aio"), PAIRS, ids=lambda c: c.__name__)
def test_twins_have_the_same_public_methods(sync: type, aio: type) -> None:
    mine, theirs = public(sync), public(aio)
    assert set(mine) - ONLY_SYNC == set(theirs) - ONLY_ASYNC
    if "close" in theirs:
        assert theirs["close"] is theirs["aclose"], f"{aio.__name__}.close is not aclose"
    for name in ONLY_ASYNC - {"__aenter__", "__aexit__"}:
        if "close" in mine:
            assert name in theirs, f"{aio.__name__} lacks {name}()"


@pytest.mark.parametrize(("sync", "aio"), PAIRS, ids=lambda c: c.__name__)
def test_twin_methods_have_the_same_signatures_and_docstrings(sync: type, aio: type) -> None:
    mine, theirs = public(sync), public(aio)
    for name in sorted((set(mine) & set(theirs)) - {"__init__"}):
        a, b = mine[name], theirs[name]
        sa, sb = inspect.signature(a), inspect.signature(b)
        assert list(sa.parameters) == list(sb.parameters), name
        for p, q in zip(sa.parameters.values(), sb.parameters.values(), strict=True):
            assert (p.kind, p.default) == (q.kind, q.default), f"{name}({p.name})"
            if p.name != "self":
                assert _kinds(p.annotation) == _kinds(q.annotation), f"{name}({p.name})"
        assert inspect.getdoc(a) == inspect.getdoc(b), (
            f"{sync.__name__}.{name} and its twin say different things"
        )
        assert not inspect.iscoroutinefunction(a), f"{sync.__name__}.{name} is a coroutine function"
        if name in ONLY_SYNC | ONLY_ASYNC or name.startswith("__") or a is b:
            continue  # the same pure method serves both twins
        # the async twin awaits (or streams) what the sync one returns
        ra, rb = str(sa.return_annotation), str(sb.return_annotation)
        if inspect.isgeneratorfunction(a) or ra.startswith("Iterator["):
            assert inspect.isasyncgenfunction(b) or rb.startswith("AsyncIterator["), name
            assert rb.replace("AsyncIterator[", "Iterator[") == ra, name
        else:
            assert inspect.iscoroutinefunction(b), f"{aio.__name__}.{name} is not a coroutine function"
            assert _kinds(ra) == _kinds(rb), f"{name} returns {ra} and {rb}"


@pytest.mark.parametrize(("sync", "aio"), PAIRS, ids=lambda c: c.__name__)
def test_twin_constructors_take_the_same_options(sync: type, aio: type) -> None:
    sa, sb = inspect.signature(sync.__init__), inspect.signature(aio.__init__)
    assert [(p.name, p.kind, p.default) for p in sa.parameters.values()] == [
        (p.name, p.kind, p.default) for p in sb.parameters.values()
    ]


def test_async_handles_close_with_aclose() -> None:
    for cls in (AsyncStore, AsyncXAIClient):
        assert inspect.iscoroutinefunction(cls.aclose), cls.__name__
        assert hasattr(cls, "__aenter__"), cls.__name__
        assert hasattr(cls, "__aexit__"), cls.__name__
