"""The store under faults: cancellation, several event loops, a user's engine, pool exhaustion.

* Cancellation (``AsyncStore`` on aiosqlite, asyncpg and psycopg): ``extend`` of
  500 to 20,000 messages cancelled 0-0.3 s in, round after round. Every
  cancelled call ends within a bound, the batch is wholly stored or wholly
  absent, and the next write goes through (nothing left holding a lock).
* Writers timing out (``asyncio.wait_for`` at random points): 8 tasks on one
  conversation appending, extending and popping, each call given 0-60 ms.
  No call outlives its bound by much, seqs stay 1..N, and the conversation's
  row lock is free afterwards (a plain append goes through).
* ``window`` (back-filling a new counter's counts) cancelled 0-50 ms in,
  15 rounds: each ends within a bound and the next window is whole.
* One ``AsyncStore`` first used from 6 threads at once, each running its
  own event loop (``asyncio.run``): every thread's writes go through.
* Pool exhaustion and a slow database: with every pooled connection held,
  a call fails with ``PoolTimeoutError`` within ``pool_timeout``; a write
  blocked by another session's lock fails with ``StatementTimeoutError``
  within ``statement_timeout``; the store works again once they are freed.
* A ``Store`` on an SQLAlchemy engine the user made (SQLite, not configured by
  convkit): 8 threads popping at once never get the same message twice.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from convkit import EstimateCounter, Message, PoolTimeoutError, StatementTimeoutError, ValidationError
from convkit.store import AsyncStore, Store

from . import _store_support as sup

JOIN_TIMEOUT = 120.0
#: How long a cancelled call may take to end (a statement in flight, then a rollback).
CANCEL_BOUND = 30.0
ASYNC_DRIVERS = ("aiosqlite", "asyncpg", "psycopg")


def run_bounded(main: Callable[[], Coroutine[Any, Any, None]], timeout: float) -> None:
    """``asyncio.run(main())`` in a daemon thread, failing (not hanging) when it runs past ``timeout``."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"hung: still running after {timeout} s"
    if errors:
        raise errors[0]


def driver_url(driver: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database at head for ``driver``: a new SQLite file, or the module's PostgreSQL one."""
    if driver == "aiosqlite":
        return sup.sqlite_database(tmp_path / "store.db")
    url = sup.database("postgresql", tmp_path, request)
    return make_url(url).set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)


async def within(aw: Any, what: str, timeout: float = CANCEL_BOUND) -> Any:
    """Await ``aw`` (a task or a coroutine) for at most ``timeout`` seconds, failing when it hangs."""
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait([task], timeout=timeout)
    assert done, f"{what} did not end within {timeout} s"
    return task.result() if not task.cancelled() else None


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
def test_extend_cancelled_at_random_moments_stores_all_or_nothing_and_never_hangs(
    driver: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = driver_url(driver, tmp_path, request)
    rnd = random.Random(14)
    outcomes: list[str] = []

    async def main() -> None:
        store = AsyncStore(url, counters=[EstimateCounter()], upgrade=False)
        try:
            cid = (await within(store.create_conversation(), "create_conversation")).id
            stored = 0
            for r in range(10):
                n = rnd.randint(500, 20_000)
                batch = [{"role": "user", "content": f"r{r} m{i}"} for i in range(n)]
                call = asyncio.ensure_future(store.extend(cid, batch))
                await asyncio.sleep(rnd.uniform(0.0, 0.3))
                call.cancel()
                await within(asyncio.wait([call]), f"round {r}: the cancelled extend of {n}")
                outcomes.append("cancelled" if call.cancelled() else "completed")
                if not call.cancelled():
                    assert call.result() == range(stored + 1, stored + n + 1)
                added = await within(store.messages(cid, start=stored + 1), f"round {r}: reading back")
                assert [m.text for m in added] in ([], [f"r{r} m{i}" for i in range(n)]), (
                    f"round {r}: {len(added)} of {n} messages stored"
                )
                if not call.cancelled():
                    assert len(added) == n
                stored += len(added)
                seq = await within(
                    store.append(cid, {"role": "user", "content": f"after {r}"}), "the next write"
                )
                stored += 1
                assert seq == stored
            assert (await within(store.get_conversation(cid), "get_conversation")).message_count == stored
        finally:
            await within(store.aclose(), "aclose")

    run_bounded(main, 600.0)
    assert "cancelled" in outcomes


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


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
def test_writers_timing_out_at_random_points_leave_no_lock_and_no_gap(
    driver: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = driver_url(driver, tmp_path, request)
    timed_out: list[int] = []

    async def main() -> None:
        store = AsyncStore(url, counters=[EstimateCounter()], upgrade=False)
        try:
            cid = (await within(store.create_conversation(), "create_conversation")).id

            async def writer(w: int) -> None:
                rnd = random.Random(w)
                for i in range(25):
                    kind = rnd.choice(("append", "extend", "pop"))
                    if kind == "append":
                        call = store.append(cid, {"role": "user", "content": f"w{w} {i}"})
                    elif kind == "extend":
                        batch = [
                            {"role": "user", "content": f"w{w} {i}.{j}"} for j in range(rnd.randint(2, 300))
                        ]
                        call = store.extend(cid, batch)
                    else:
                        call = store.pop(cid)
                    try:
                        await asyncio.wait_for(call, rnd.uniform(0.0, 0.06))
                    except TimeoutError:
                        timed_out.append(w)

            await within(asyncio.gather(*(writer(w) for w in range(8))), "8 writers timing out")
            seq = await within(store.append(cid, {"role": "user", "content": "last"}), "a write afterwards")
            count = (await within(store.get_conversation(cid), "get_conversation")).message_count
            assert seq == count
        finally:
            await within(store.aclose(), "aclose")

    run_bounded(main, 300.0)
    assert timed_out, "no call timed out: the test did not test cancellation"
    seqs = [r[0] for r in sup.rows(url, "SELECT seq FROM convkit_messages ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
def test_window_cancelled_at_random_moments_leaves_the_store_usable(
    driver: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = driver_url(driver, tmp_path, request)
    rnd = random.Random(7)

    async def main() -> None:
        store = AsyncStore(url, counters=[EstimateCounter()], upgrade=False)
        try:
            cid = (await store.create_conversation()).id
            text = "lorem ipsum dolor sit amet " * 40
            await store.extend(cid, [{"role": "user", "content": f"{i} {text}"} for i in range(3000)])
            for r in range(15):
                # a new counter each round: the window back-fills its counts (writes) before reading
                counter = EstimateCounter(2.0 + r / 10)
                call = asyncio.ensure_future(store.window(cid, model="grok-2-1212", counter=counter))
                await asyncio.sleep(rnd.uniform(0.0, 0.05))
                call.cancel()
                await within(asyncio.wait([call]), f"round {r}: the cancelled window")
                got = await within(store.window(cid, model="grok-2-1212", counter=counter), "the next window")
                assert got.messages[-1].text.startswith("2999 ")
            assert await within(store.append(cid, {"role": "user", "content": "after"}), "a write") == 3001
        finally:
            await within(store.aclose(), "aclose")

    run_bounded(main, 300.0)


def test_one_async_store_first_used_from_several_event_loops_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"  # a new file: the first use creates the schema
    store = AsyncStore(url, counters=[EstimateCounter()])
    loops = 6
    barrier = threading.Barrier(loops)
    errors: list[BaseException] = []
    made: list[str] = []

    async def work(k: int) -> None:
        conversation = await within(store.create_conversation(title=f"loop {k}"), f"loop {k}: first use")
        batch = [{"role": "user", "content": f"loop {k} m{i}"} for i in range(3)]
        await within(store.extend(conversation.id, batch), f"loop {k}: extend")
        got = await within(store.messages(conversation.id), f"loop {k}: messages")
        assert [m.text for m in got] == [f"loop {k} m{i}" for i in range(3)]
        made.append(conversation.id)

    def thread(k: int) -> None:
        try:
            barrier.wait(timeout=JOIN_TIMEOUT)
            asyncio.run(work(k))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(k,), daemon=True) for k in range(loops)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a loop hung"
    assert errors == []
    assert len(set(made)) == loops
    run_bounded(store.aclose, 60.0)
    with Store(url) as check:
        assert sorted(c.id for c in check.list_conversations()) == sorted(made)


# -- pool exhaustion and a slow database --------------------------------------------------------

POOL_TIMEOUT = 0.5
STATEMENT_TIMEOUT = 0.5
#: Slack over a configured timeout for a loaded 2-core machine.
SLACK = 5.0


def _hold_all_connections(store: Store) -> Callable[[], None]:
    """Check out both connections of a store's pool (checked out, no transaction); returns the release."""
    held = [store.engine.connect() for _ in range(2)]

    def release() -> None:
        for conn in held:
            conn.close()

    return release


@pytest.mark.parametrize("backend", sup.BACKENDS)
def test_an_exhausted_pool_gives_a_pool_timeout_error_within_the_pool_timeout(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = sup.database(backend, tmp_path, request)
    with Store(url, pool_size=2, pool_timeout=POOL_TIMEOUT) as store:
        cid = store.create_conversation().id
        release = _hold_all_connections(store)
        try:
            started = time.monotonic()
            with pytest.raises(PoolTimeoutError, match="pool_size or pool_timeout"):
                store.append(cid, {"role": "user", "content": "hi"})
            waited = time.monotonic() - started
            assert POOL_TIMEOUT * 0.9 <= waited < POOL_TIMEOUT + SLACK
        finally:
            release()
        assert store.append(cid, {"role": "user", "content": "hi"}) == 1  # usable once freed


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
def test_an_exhausted_async_pool_gives_a_pool_timeout_error_within_the_pool_timeout(
    driver: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = driver_url(driver, tmp_path, request)

    async def main() -> None:
        store = AsyncStore(url, upgrade=False, pool_size=2, pool_timeout=POOL_TIMEOUT)
        try:
            cid = (await store.create_conversation()).id
            held = [await store.engine.connect() for _ in range(2)]  # checked out, no transaction
            started = time.monotonic()
            with pytest.raises(PoolTimeoutError):
                await within(store.append(cid, {"role": "user", "content": "hi"}), "append on a full pool")
            waited = time.monotonic() - started
            assert POOL_TIMEOUT * 0.9 <= waited < POOL_TIMEOUT + SLACK
            for conn in held:
                await conn.close()
            assert await within(store.append(cid, {"role": "user", "content": "hi"}), "append") == 1
        finally:
            await store.aclose()

    run_bounded(main, 120.0)


@pytest.mark.parametrize("backend", sup.BACKENDS)
def test_a_write_blocked_by_a_lock_gives_a_statement_timeout_error_within_the_statement_timeout(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = sup.database(backend, tmp_path, request)
    with Store(url, statement_timeout=STATEMENT_TIMEOUT) as store:
        cid = store.create_conversation().id
        with sup.raw_engine(url) as raw, raw.connect() as blocker:
            # another session holds the lock every write of the conversation needs
            if backend == "sqlite":
                blocker.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                blocker.execute(
                    sa.text("SELECT id FROM convkit_conversations WHERE id = :cid FOR UPDATE"), {"cid": cid}
                )
            started = time.monotonic()
            with pytest.raises(StatementTimeoutError, match="statement timeout"):
                store.append(cid, {"role": "user", "content": "hi"})
            waited = time.monotonic() - started
            assert STATEMENT_TIMEOUT * 0.9 <= waited < STATEMENT_TIMEOUT + SLACK
            blocker.rollback()
        assert store.append(cid, {"role": "user", "content": "hi"}) == 1
        assert [m.text for m in store.messages(cid)] == ["hi"]


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
def test_an_async_write_blocked_by_a_lock_gives_a_statement_timeout_error(
    driver: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = driver_url(driver, tmp_path, request)
    with Store(url) as setup:
        cid = setup.create_conversation().id

    async def main() -> None:
        store = AsyncStore(url, upgrade=False, statement_timeout=STATEMENT_TIMEOUT)
        try:
            await store.get_conversation(cid)  # the schema checked before the lock is taken
            with sup.raw_engine(url) as raw, raw.connect() as blocker:
                if driver == "aiosqlite":
                    blocker.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    lock = "SELECT id FROM convkit_conversations WHERE id = :cid FOR UPDATE"
                    blocker.execute(sa.text(lock), {"cid": cid})
                started = time.monotonic()
                with pytest.raises(StatementTimeoutError):
                    await within(store.append(cid, {"role": "user", "content": "hi"}), "a blocked append")
                waited = time.monotonic() - started
                assert STATEMENT_TIMEOUT * 0.9 <= waited < STATEMENT_TIMEOUT + SLACK
                blocker.rollback()
            assert await within(store.append(cid, {"role": "user", "content": "hi"}), "append") == 1
        finally:
            await store.aclose()

    run_bounded(main, 120.0)


@pytest.mark.parametrize(
    ("option", "value"),
    [("pool_size", 0), ("pool_size", 2.5), ("pool_timeout", 0), ("statement_timeout", -1.0)],
)
def test_pool_options_are_checked(option: str, value: object, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=option):
        Store(f"sqlite:///{tmp_path / 'x.db'}", **{option: value})


def test_eight_tasks_pop_on_a_user_made_aiosqlite_engine_never_share_a_message(tmp_path: Path) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    url = sup.sqlite_database(tmp_path / "user.db").replace("sqlite://", "sqlite+aiosqlite://")
    total = 200
    popped: list[str] = []

    async def main() -> None:
        engine = create_async_engine(url, connect_args={"timeout": 60})
        try:
            store = AsyncStore(engine=engine, counters=[EstimateCounter()])
            cid = (await store.create_conversation()).id
            await store.extend(cid, [{"role": "user", "content": f"message {i}"} for i in range(total)])

            async def popper() -> None:
                while (m := await store.pop(cid)) is not None:
                    popped.append(m.text)

            await within(asyncio.gather(*(popper() for _ in range(8))), "8 poppers", 120.0)
            assert await store.messages(cid) == []
        finally:
            await engine.dispose()

    run_bounded(main, 300.0)
    assert sorted(popped) == sorted(f"message {i}" for i in range(total)), "a message popped twice or lost"


@pytest.mark.parametrize("flavour", sup.FLAVOURS)
def test_opening_a_store_does_not_wait_for_another_writer(flavour: str, tmp_path: Path) -> None:
    url = sup.sqlite_database(tmp_path / "busy.db")
    with sup.raw_engine(url) as raw, raw.connect() as writer:
        writer.exec_driver_sql("PRAGMA journal_mode = WAL")
        writer.exec_driver_sql("BEGIN IMMEDIATE")  # a long write transaction elsewhere
        # the writer holds its lock throughout: an open that waited for it would wait out the
        # statement timeout and raise StatementTimeoutError, so succeeding is the proof (no clock:
        # on a loaded machine an async store's first use alone can take longer than the timeout)
        store = sup.open_store(url, flavour, upgrade=None, statement_timeout=STATEMENT_TIMEOUT)
        try:
            assert store.list_conversations() == []  # checks the schema on first use (async)
        finally:
            store.close()
        writer.rollback()


def test_the_sqlite_interrupt_is_found_under_aiosqlite(tmp_path: Path) -> None:
    """Cancellation interrupts SQLite's statement in flight through two private attributes of the
    aiosqlite adapter; if a new aiosqlite renames them, cancellation silently falls back to waiting
    for the statement: this test says so instead."""
    from convkit.store._aio import _sqlite_interrupt

    async def main() -> object:
        store = AsyncStore(f"sqlite:///{tmp_path / 'i.db'}")
        try:
            async with store._engine.connect() as conn:
                return _sqlite_interrupt((await conn.get_raw_connection()).dbapi_connection)
        finally:
            await store.aclose()

    assert callable(asyncio.run(main()))
