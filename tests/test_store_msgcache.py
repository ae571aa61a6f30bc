"""MessageCache: per-conversation, per-epoch, least recently used first out."""

from __future__ import annotations

import threading

from convkit import Message
from convkit.store._msgcache import MessageCache


def _msgs(*seqs: int) -> dict[int, Message]:
    return {s: Message.user(f"m{s}") for s in seqs}


def test_get_returns_what_was_put_for_that_epoch_only() -> None:
    cache = MessageCache(4)
    cache.put("a", 0, _msgs(1, 2))
    assert cache.get("a", 0) == _msgs(1, 2)
    assert cache.get("a", 1) == {}  # messages were removed since: nothing is trusted
    assert cache.get("b", 0) == {}
    cache.put("a", 1, _msgs(3))
    assert cache.get("a", 0) == {}
    assert cache.get("a", 1) == _msgs(3)


def test_least_recently_used_conversation_goes_first() -> None:
    cache = MessageCache(2)
    cache.put("a", 0, _msgs(1))
    cache.put("b", 0, _msgs(1))
    assert cache.get("a", 0)  # a is now the most recent
    cache.put("c", 0, _msgs(1))
    assert len(cache) == 2
    assert cache.get("b", 0) == {}
    assert cache.get("a", 0)
    assert cache.get("c", 0)
    cache.discard("a")
    assert cache.get("a", 0) == {}
    assert len(cache) == 1
    cache.clear()
    assert len(cache) == 0


def test_capacity_zero_keeps_nothing() -> None:
    cache = MessageCache(0)
    cache.put("a", 0, _msgs(1))
    assert cache.get("a", 0) == {}
    assert len(cache) == 0
    assert cache.capacity == 0


def test_threads_share_one_cache_safely() -> None:
    cache = MessageCache(8)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(2000):
                cid = f"c{(i + k) % 16}"
                cache.put(cid, i % 3, _msgs(i % 5))
                got = cache.get(cid, i % 3)
                assert got == {} or len(got) == 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(cache) <= 8
