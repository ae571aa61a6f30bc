"""Concurrent writers and a writer killed mid-batch, on SQLite and PostgreSQL (DESIGN section 5).

* Processes (``spawn``, entry points in ``tests/_workers.py``): 4 x 250
  appends to one conversation, started together at a barrier.
* Threads: 8 x 50 writes (appends and 3-message extends) sharing one Store,
  and 8 threads each with a Store of its own; asyncio: 8 tasks x 50 on one
  AsyncStore.
* Crash: a child process runs a 2000-message ``extend`` and blocks in the
  middle of it (after some INSERTs ran); the parent SIGKILLs it.

Afterwards: ``seq`` is exactly 1..N with no gap or duplicate, every writer's
messages are all there in that writer's own order (and each extend's
messages are contiguous, at the seqs the call returned), counts kept up with
the appends (a fresh counter reads them without encoding), and the window
equals ``fit``. After the crash none of the killed batch is stored and the
next append continues the seqs. No sleeps: barriers, events and joins with
timeouts.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import convkit
from convkit import EstimateCounter, Message, ToolCall, fit
from convkit.store import AsyncStore, Store

from . import _store_support as sup
from . import _workers

SPAWN = multiprocessing.get_context("spawn")
PROCESSES, PER_PROCESS = 4, 250
THREADS, PER_THREAD = 8, 50
TIMEOUT = 240.0


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store(db_url, counters=[EstimateCounter()], upgrade=True) as s:
        yield s


def _texts_by_seq(url: str, cid: str) -> list[tuple[int, str]]:
    found = sup.rows(
        url, "SELECT seq, content FROM convkit_messages WHERE conversation_id = :cid ORDER BY seq", cid=cid
    )
    out = []
    for seq, content in found:
        value = json.loads(content)  # one text part is stored as a JSON string, else a list of parts
        parts = [{"text": value}] if isinstance(value, str) else value
        out.append((seq, "".join(p.get("text", "") for p in parts)))
    return out


def check_writes(url: str, store: Store, cid: str, writers: dict[str, int], base: int = 0) -> None:
    """Seqs 1..N exactly; each writer's ``"<writer> message <i>"`` all there, in its own order."""
    total = base + sum(writers.values())
    found = _texts_by_seq(url, cid)
    assert [seq for seq, _ in found] == list(range(1, total + 1))
    order: dict[str, list[int]] = {}
    for _, text in found[base:]:
        writer, _, i = text.rpartition(" message ")
        order.setdefault(writer, []).append(int(i))
    assert order == {w: list(range(n)) for w, n in writers.items()}
    assert store.get_conversation(cid).message_count == total
    # the configured counter's counts kept up with every append
    counted = sup.scalar(
        url,
        "SELECT max(seq) FROM convkit_token_counts WHERE conversation_id = :cid",
        cid=cid,
    )
    assert counted == total
    assert sup.scalar(
        url, "SELECT count(*) FROM convkit_token_counts WHERE conversation_id = :cid", cid=cid
    ) == (total)
    fresh = sup.CountingEstimate()
    result = store.window(cid, model="grok-2-vision-1212", counter=fresh, reserve=4000)
    assert fresh.encode_calls == 0
    assert result == fit(
        store.messages(cid), model="grok-2-vision-1212", counter=EstimateCounter(), reserve=4000
    )


def _stop(procs: list[Any]) -> None:
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(timeout=30)


@pytest.mark.slow  # four fresh interpreters (spawn), 1000 appends: 4-12 s on two cores
def test_processes_append_to_one_conversation(db_url: str, store: Store) -> None:
    cid = store.create_conversation().id
    start = SPAWN.Barrier(PROCESSES + 1)
    procs = [
        SPAWN.Process(
            target=_workers.append_many,
            args=(db_url, "default", cid, w, PER_PROCESS, start),
            name=f"appender-{w}",
        )
        for w in range(PROCESSES)
    ]
    try:
        for p in procs:
            p.start()
        start.wait(timeout=TIMEOUT)
        for p in procs:
            p.join(timeout=TIMEOUT)
    finally:
        _stop(procs)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    check_writes(db_url, store, cid, {f"worker {w}": PER_PROCESS for w in range(PROCESSES)})


def _thread_writes(store: Store, cid: str, t: int, barrier: threading.Barrier) -> list[range]:
    """Appends and 3-message extends, alternating; returns the seqs each call got."""
    barrier.wait(timeout=TIMEOUT)
    got: list[range] = []
    i = 0
    while i < PER_THREAD:
        if (i // 4) % 2 and i + 3 <= PER_THREAD:
            batch = [{"role": "user", "content": f"thread {t} message {i + k}"} for k in range(3)]
            got.append(store.extend(cid, batch))
            i += 3
        else:
            seq = store.append(cid, {"role": "assistant", "content": f"thread {t} message {i}"})
            got.append(range(seq, seq + 1))
            i += 1
    return got


@pytest.mark.parametrize("sharing", ["one store", "a store each"])
def test_threads_write_to_one_conversation(db_url: str, store: Store, sharing: str) -> None:
    cid = store.create_conversation().id
    barrier = threading.Barrier(THREADS)
    results: dict[int, list[range]] = {}
    errors: list[BaseException] = []

    def run(t: int) -> None:
        own = store if sharing == "one store" else Store(db_url, counters=[EstimateCounter()], upgrade=False)
        try:
            results[t] = _thread_writes(own, cid, t, barrier)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            if own is not store:
                own.close()

    threads = [threading.Thread(target=run, args=(t,), name=f"writer-{t}") for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=TIMEOUT)
    assert not any(th.is_alive() for th in threads)
    assert errors == []
    check_writes(db_url, store, cid, {f"thread {t}": PER_THREAD for t in range(THREADS)})
    # every call got the seqs its messages are stored at; together they cover 1..N once
    texts = dict(_texts_by_seq(db_url, cid))
    covered = sorted(seq for ranges in results.values() for r in ranges for seq in r)
    assert covered == list(range(1, THREADS * PER_THREAD + 1))
    for t, ranges in results.items():
        mine = [texts[seq] for r in ranges for seq in r]
        assert mine == [f"thread {t} message {i}" for i in range(PER_THREAD)]


def test_asyncio_tasks_append_to_one_conversation(db_url: str, store: Store) -> None:
    cid = store.create_conversation().id

    async def main() -> None:
        async with AsyncStore(sup.async_url(db_url), counters=[EstimateCounter()], upgrade=False) as astore:

            async def task(t: int) -> list[int]:
                return [
                    await astore.append(cid, {"role": "user", "content": f"task {t} message {i}"})
                    for i in range(PER_THREAD)
                ]

            seqs = await asyncio.gather(*(task(t) for t in range(THREADS)))
        assert sorted(s for got in seqs for s in got) == list(range(1, THREADS * PER_THREAD + 1))

    asyncio.run(main())
    check_writes(db_url, store, cid, {f"task {t}": PER_THREAD for t in range(THREADS)})


def test_sigkill_in_the_middle_of_extend_stores_none_of_the_batch(
    db_url: str, store: Store, backend: str
) -> None:
    cid = store.create_conversation().id
    seed = [
        Message.system("be brief"),
        Message.user("what's the weather?"),
        Message.assistant(tool_calls=[ToolCall("call_w", "get_weather", '{"city": "Paris"}')]),
    ]
    store.extend(cid, seed)
    before = sup.table_counts(db_url, cid)
    ready, never = SPAWN.Event(), SPAWN.Event()
    child = SPAWN.Process(
        target=_workers.extend_then_hang, args=(db_url, "default", cid, 2000, ready, never), name="doomed"
    )
    try:
        child.start()
        assert ready.wait(timeout=TIMEOUT), "the child never got to the middle of its batch"
        # the child's transaction is open with part of the batch written, and invisible
        assert store.messages(cid) == seed
        if backend == "postgresql":
            open_tx = sup.scalar(
                db_url,
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND state = 'idle in transaction'",
            )
            assert open_tx >= 1
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=TIMEOUT)
    finally:
        _stop([child])
    assert child.exitcode == -signal.SIGKILL
    assert store.messages(cid) == seed
    assert store.get_conversation(cid).message_count == len(seed)
    assert sup.table_counts(db_url, cid) == before
    # the conversation carries on: seqs continue, the open tool call still takes its result
    result = Message.tool("sunny", tool_call_id="call_w")
    assert store.append(cid, result) == len(seed) + 1
    assert store.extend(cid, [Message.assistant("It is sunny."), Message.user("thanks")]) == range(5, 7)
    final = [*seed, result, Message.assistant("It is sunny."), Message.user("thanks")]
    assert store.messages(cid) == final
    assert [seq for seq, _ in _texts_by_seq(db_url, cid)] == list(range(1, 7))
    fresh = sup.CountingEstimate()
    assert store.window(cid, model="grok-2-vision-1212", counter=fresh) == fit(
        final, model="grok-2-vision-1212", counter=EstimateCounter()
    )
    assert fresh.encode_calls == 0
    if backend == "sqlite":
        assert sup.scalar(db_url, "PRAGMA integrity_check") == "ok"


def test_a_backfill_and_a_truncate_do_not_interleave(db_url: str) -> None:
    """A back-fill counts under the conversation's write lock: a truncate (and the appends after
    it) cannot commit between the back-fill's read of the rows and its write of their counts,
    whose newest one is the counter's watermark (review of issue 11: on PostgreSQL stale counts
    were trusted, and appends then failed on them)."""
    entered, proceed = threading.Event(), threading.Event()

    class Held(EstimateCounter):
        @property
        def identity(self) -> str:
            return "held-" + super().identity

        def content_tokens(self, messages: Any) -> list[int]:
            msgs = list(messages)
            if len(msgs) > 3 and not proceed.is_set():  # the back-fill's batch
                entered.set()
                assert proceed.wait(30)
            return super().content_tokens(msgs)

    held = Held()
    spec = convkit.ModelSpec("racy", 2000, {"text"}, message_overhead=3, request_overhead=2)
    writer, reader = Store(db_url, upgrade=True), Store(db_url)
    try:
        cid = writer.create_conversation().id
        writer.extend(cid, [Message.user(f"short {i}") for i in range(20)])
        window = threading.Thread(target=lambda: reader.window(cid, model=spec, counter=held, reserve=0))
        window.start()
        assert entered.wait(30)
        truncated = threading.Event()

        def truncate() -> None:
            writer.truncate(cid, 5)
            writer.extend(cid, [Message.user("long " * 300) for _ in range(5)])
            truncated.set()

        other = threading.Thread(target=truncate)
        other.start()
        assert not truncated.wait(1.0), "the truncate committed while the back-fill held its rows"
        proceed.set()
        window.join(30)
        other.join(30)
        assert truncated.is_set()
        want = fit(writer.messages(cid), model=spec, counter=held, reserve=0)
        assert reader.window(cid, model=spec, counter=held, reserve=0) == want
        with Store(db_url, counters=[held]) as counting:
            counting.append(cid, Message.user("and one more"))
        assert reader.window(cid, model=spec, counter=held, reserve=0) == fit(
            writer.messages(cid), model=spec, counter=held, reserve=0
        )
    finally:
        proceed.set()
        writer.close()
        reader.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    from . import _pg

    with _pg.fresh_database() as url:
        yield url


def test_an_append_reusing_images_never_deadlocks_with_image_cleanup(pg_url: str) -> None:
    """Image cleanup (drop_unreferenced_images) locks image rows in hash order; an append reusing
    images used to lock them in message order, so an append of [Q, P] against a cleanup holding P
    and then asking for Q was a deadlock on PostgreSQL (found in review). Appends now lock in hash
    order too: the append waits on P holding nothing, and the cleanup gets Q."""
    import io

    import psycopg
    from PIL import Image

    def png(color: tuple[int, int, int]) -> convkit.ImagePart:
        buf = io.BytesIO()
        Image.new("RGB", (4, 4), color).save(buf, "PNG")
        return convkit.ImagePart.from_bytes(buf.getvalue())

    a, b = png((255, 0, 0)), png((0, 0, 255))
    p, q = sorted((a, b), key=lambda i: i.sha256)  # P sorts first
    with Store(pg_url, upgrade=True) as store:
        keep = store.create_conversation().id
        store.append(keep, Message.user([convkit.TextPart("both"), p, q]))  # the image rows exist
        cid = store.create_conversation().id
        dsn = pg_url.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(dsn) as cleanup, psycopg.connect(dsn, autocommit=True) as watch:
            cleanup.execute("SET lock_timeout = '20s'")
            cleanup.execute("SELECT sha256 FROM convkit_images WHERE sha256 = %s FOR UPDATE", (p.sha256,))
            outcome: dict[str, object] = {}

            def append() -> None:
                try:
                    store.append(cid, Message.user([convkit.TextPart("again"), q, p]))  # message order Q, P
                    outcome["append"] = "ok"
                except Exception as exc:  # reported below
                    outcome["append"] = exc

            writer = threading.Thread(target=append)
            writer.start()
            for _ in range(2000):  # the event: the append waits on a row lock
                waiting = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                ).fetchone()
                if waiting and waiting[0]:
                    break
                writer.join(0.01)
            cleanup.execute("SELECT sha256 FROM convkit_images WHERE sha256 = %s FOR UPDATE", (q.sha256,))
            cleanup.commit()
            writer.join(30)
        assert outcome == {"append": "ok"}
        assert [m.text for m in store.messages(cid)] == ["again"]
