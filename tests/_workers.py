"""Child-process entry points for the store's concurrency and crash tests.

They live in an importable module so that ``multiprocessing`` with the
``spawn`` start method can run them in fresh interpreters.
"""

from __future__ import annotations

from typing import Any


def append_many(
    url: str, namespace: str, conversation_id: str, worker: int, count: int, start: Any = None
) -> None:
    """Append ``count`` messages one by one, each its own transaction.

    ``start``: a ``multiprocessing`` Barrier; the worker opens its store first, then waits
    there, so that every worker starts appending at the same moment.
    """
    from convkit import EstimateCounter
    from convkit.store import Store

    store = Store(url, namespace=namespace, counters=[EstimateCounter()], upgrade=False)
    try:
        if start is not None:
            start.wait(timeout=120)
        for i in range(count):
            store.append(conversation_id, {"role": "user", "content": f"worker {worker} message {i}"})
    finally:
        store.close()


def extend_then_hang(
    url: str, namespace: str, conversation_id: str, count: int, ready: Any, never: Any
) -> None:
    """Start a large ``extend`` and, mid-batch (after some INSERTs ran), signal and block forever.

    The parent kills this process with SIGKILL while its transaction is open.
    """
    import sqlalchemy as sa

    from convkit import EstimateCounter
    from convkit.store import Store, _appends

    _appends.CHUNK = 50  # many INSERT batches, so "mid-batch" is real
    store = Store(url, namespace=namespace, counters=[EstimateCounter()], upgrade=False)
    inserts = 0

    @sa.event.listens_for(store.engine, "after_cursor_execute")
    def _after(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
        nonlocal inserts
        if statement.lstrip().upper().startswith("INSERT INTO CONVKIT_MESSAGES"):
            inserts += 1
            if inserts == 3:
                ready.set()
                never.wait()

    store.extend(
        conversation_id,
        [
            {"role": "user" if i % 2 == 0 else "assistant", "content": f"batch message {i}"}
            for i in range(count)
        ],
    )
