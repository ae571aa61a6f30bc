"""The store under faults: cancellation, several event loops, a user's engine, pool exhaustion.

* A ``Store`` on an SQLAlchemy engine the user made (SQLite, not configured by
  convkit): 8 threads popping at once never get the same message twice.
"""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa

from convkit import EstimateCounter, Message
from convkit.store import Store

from . import _store_support as sup

JOIN_TIMEOUT = 120.0


def test_eight_threads_pop_on_a_user_made_sqlite_engine_never_share_a_message(tmp_path: Path) -> None:
    url = sup.sqlite_database(tmp_path / "user.db")
    engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
    try:
        store = Store(engine=engine, counters=[EstimateCounter()])
        cid = store.create_conversation().id
        total = 400
        store.extend(cid, [{"role": "user", "content": f"message {i}"} for i in range(total)])
        barrier = threading.Barrier(8)
        popped: list[list[Message]] = [[] for _ in range(8)]
        errors: list[BaseException] = []

        def popper(k: int) -> None:
            try:
                barrier.wait(timeout=JOIN_TIMEOUT)
                while (m := store.pop(cid)) is not None:
                    popped[k].append(m)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=popper, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(JOIN_TIMEOUT)
        assert not any(t.is_alive() for t in threads), "a popper hung"
        assert errors == []
        texts = [m.text for ms in popped for m in ms]
        assert sorted(texts) == sorted(f"message {i}" for i in range(total)), "a message popped twice or lost"
        for ms in popped:  # each thread got newest first
            seqs = [int(m.text.split()[1]) for m in ms]
            assert seqs == sorted(seqs, reverse=True)
        assert store.messages(cid) == []
    finally:
        engine.dispose()
