"""The load harness shared by ``benchmarks/bench_load.py`` and ``tests/test_load.py`` (one copy).

:func:`run_load` starts ONE :class:`FaultyStandIn` (the xAI stand-in, injecting faults at random)
in this process, then several worker processes (multiprocessing, spawn). Each worker runs many
:class:`convkit.AsyncSession` conversations at once (``asyncio.gather``, one ``AsyncStore`` and one
``AsyncXAIClient`` per process) and a few sync :class:`convkit.Session` conversations in threads
(one ``Store`` and one ``XAIClient`` shared by them), all on one database. Each turn sends a user
message (``send`` or ``send_stream``, at random); on a typed :class:`convkit.APIError` the same
message is sent again, a few times, as a client would.

Then :func:`audit` checks the database against what the clients saw and the stand-in received:
per conversation, seq contiguous from 1 and ``last_seq`` its end; the stored messages are exactly
the turns' user messages, each followed by its reply when the turn got one (so no user message
stored twice by a retried send, one reply per turn); one usage row per reply, at the reply's seq,
with the usage the client received; every chat request the stand-in received fits the model's
window minus its ``max_tokens``, counted from the request body both with the stand-in's counter and
with the sessions' counter; and the stand-in raised nothing internally.

Timing: a turn's wall time (the successful attempt) minus the time inside the HTTP transport
(``handle_async_request`` and each read of the body, by a wrapping transport) minus the client's
retry backoff sleeps (read from its ``convkit.xai`` log record) is convkit's own time for the turn
(database, fitting, encoding, event-loop scheduling among the process's concurrent sessions).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import math
import multiprocessing
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import convkit
from convkit import APIError, Done, EstimateCounter, Message, ModelSpec
from convkit.testing import Fault, RecordedRequest, XAIStandIn
from convkit.testing._wire import CONTEXT_ERROR

#: a small window, so long conversations are trimmed (the stable policy) within a few dozen turns
LOAD_MODEL = ModelSpec("convkit-load-8k", 8192, {"text"}, 1.0, None, 3.0)
RESERVE = 512
FAULT_KINDS = ("429", "500", "cut", "slow", "overflow")
API_KEY = "load-test-key"

_VOCABULARY = (
    "the a of to and in is it that for on with as was at by be this have from or one had not but "
    "what all were when we there can an your which their said if do will each about how up out them "
    "then she many some so these would other into has more her two like him see time could no make "
    "than first been its who now people my made over did down only way find use may water long "
    "little very after words called just where most know database window token stream retry session "
    "conversation postgres reply budget cache prefix overflow timeout latency request process "
    "thread pool"
)
_WORDS = _VOCABULARY.split()


# -- the stand-in, with faults at random -------------------------------------------------------------
class FaultyStandIn(XAIStandIn):
    """The stand-in, answering each chat request with a fault at ``rate`` per kind (seeded).

    Kinds: ``429`` and ``500`` (xAI's error bodies), ``cut`` (a stream cut after two events; a
    JSON body cut half-way), ``slow`` (nothing sent for ``slow_seconds``, longer than the client's
    timeout; then answered normally, to a client long gone), ``overflow`` (400 "This model's maximum
    prompt length is N but the request contains M tokens." with N the stand-in's own count of the
    prompt and M about 1% more: a server counting a little more than fits). Requests are recorded
    without their decoded JSON (the raw body is kept) to bound memory.
    """

    def __init__(self, *, rate: float, slow_seconds: float, seed: int = 0, **kw: Any) -> None:
        super().__init__(**kw)
        self.rate = rate
        self.slow_seconds = slow_seconds
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._tls = threading.local()
        self.injected: Counter[str] = Counter()
        self.chat_count = 0

    def _record(self, request: RecordedRequest) -> None:
        self._tls.body = request.json
        super()._record(attrs.evolve(request, json=None))

    def _take(self, endpoint: str, kind: Any) -> Any:
        if endpoint != "chat" or kind is not Fault:
            return super()._take(endpoint, kind)
        body = getattr(self._tls, "body", None)
        streaming = isinstance(body, dict) and body.get("stream") is True
        with self._rng_lock:
            self.chat_count += 1
            x = self._rng.random()
        index = int(x / self.rate) if self.rate > 0 else len(FAULT_KINDS)
        if index >= len(FAULT_KINDS):
            return None
        name = FAULT_KINDS[index]
        fault = self._fault(name, body, streaming)
        if fault is not None:
            with self._rng_lock:
                self.injected[name] += 1
        return fault

    def _fault(self, name: str, body: Any, streaming: bool) -> Fault | None:
        if name == "429":
            return Fault.status(429)
        if name == "500":
            return Fault.status(500)
        if name == "cut":
            return Fault.drop_mid_stream(2 if streaming else 1)
        if name == "slow":
            release = threading.Event()
            timer = threading.Timer(self.slow_seconds, release.set)
            timer.daemon = True
            timer.start()
            return Fault.slow(release)
        tokens = _prompt_tokens(self, body)
        if tokens is None:
            return None
        return Fault.status(400, error=CONTEXT_ERROR.format(limit=tokens, tokens=tokens + tokens // 100 + 1))


def _prompt_tokens(standin: XAIStandIn, body: Any) -> int | None:
    try:
        spec = standin.registry.get(body["model"])
        messages = [Message.from_openai(m) for m in body["messages"]]
        return int(standin.counter.count_messages(messages, model=spec, tools=body.get("tools")))
    except Exception:
        return None


# -- timing: the time inside the HTTP transport and the client's backoff sleeps --------------------------
@attrs.define
class TurnClock:
    http: float = 0.0
    sleep: float = 0.0


CLOCK: contextvars.ContextVar[TurnClock | None] = contextvars.ContextVar("convkit_load_clock", default=None)


def _charge(clock: TurnClock | None, seconds: float) -> None:
    if clock is not None:
        clock.http += seconds


class _TimedAsyncStream(httpx.AsyncByteStream):
    def __init__(self, inner: Any, clock: TurnClock | None) -> None:
        self._inner, self._clock = inner, clock

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._inner.__aiter__()
        while True:
            t0 = time.perf_counter()
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            finally:
                _charge(self._clock, time.perf_counter() - t0)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class TimedAsyncTransport(httpx.AsyncBaseTransport):
    """httpx's transport, charging the time spent waiting on the network to the turn's clock."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        clock = CLOCK.get()
        t0 = time.perf_counter()
        try:
            response = await self._inner.handle_async_request(request)
        finally:
            _charge(clock, time.perf_counter() - t0)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_TimedAsyncStream(response.stream, clock),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class _TimedSyncStream(httpx.SyncByteStream):
    def __init__(self, inner: Any, clock: TurnClock | None) -> None:
        self._inner, self._clock = inner, clock

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._inner)
        while True:
            t0 = time.perf_counter()
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            finally:
                _charge(self._clock, time.perf_counter() - t0)
            yield chunk

    def close(self) -> None:
        self._inner.close()


class TimedSyncTransport(httpx.BaseTransport):
    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        clock = CLOCK.get()
        t0 = time.perf_counter()
        try:
            response = self._inner.handle_request(request)
        finally:
            _charge(clock, time.perf_counter() - t0)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_TimedSyncStream(response.stream, clock),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()


class _BackoffLog(logging.Handler):
    """Charges the client's retry waits ("... retry 1 of 3 in 0.12s") to the turn's clock; counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.retried: Counter[str] = Counter()
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if not (isinstance(args, tuple) and len(args) == 5):
            return
        with self._lock:
            self.retried[str(args[1])] += 1
        clock = CLOCK.get()
        if clock is not None:
            clock.sleep += float(args[4])


# -- one worker process ------------------------------------------------------------------------------
@attrs.frozen
class WorkerConfig:
    index: int
    sync_url: str
    async_url: str
    base_url: str
    n_async: int
    n_sync: int
    turns: int
    timeout: float
    client_retries: int
    send_retries: int
    seed: int
    namespace: str
    async_pool: int
    sync_pool: int
    stream_share: float = 0.5
    calibrate: bool = True


def _user_text(seed: int, worker: int, conv: int, turn: int) -> str:
    rng = random.Random(f"{seed}/{worker}/{conv}/{turn}")
    n = rng.choice((8, 15, 30, 60, 120)) + rng.randrange(10)
    return f"[w{worker} c{conv} t{turn}] " + " ".join(rng.choice(_WORDS) for _ in range(n))


@attrs.define
class _Tally:
    """What one worker saw: per conversation its turns, and the timings and errors."""

    transcripts: dict[str, list[dict[str, Any]]] = attrs.Factory(dict)
    overhead: list[float] = attrs.Factory(list)
    http: list[float] = attrs.Factory(list)
    wall: list[float] = attrs.Factory(list)
    attempts: int = 0
    errors: Counter[str] = attrs.Factory(Counter)
    retried_turns: int = 0
    failed_turns: int = 0
    unexpected: list[str] = attrs.Factory(list)
    lock: threading.Lock = attrs.Factory(threading.Lock)

    def turn_done(self, cid: str, entry: dict[str, Any], wall: float, clock: TurnClock) -> None:
        with self.lock:
            self.transcripts[cid].append(entry)
            if entry["reply"] is not None:
                self.wall.append(wall)
                self.http.append(clock.http)
                self.overhead.append(max(0.0, wall - clock.http - clock.sleep))


def _entry(text: str, mode: str, completion: Any, attempts: int) -> dict[str, Any]:
    if completion is None:
        return {"user": text, "mode": mode, "reply": None, "usage": None, "attempts": attempts}
    u = completion.usage
    return {
        "user": text,
        "mode": mode,
        "reply": completion.message.text,
        "usage": [u.prompt_tokens, u.completion_tokens],
        "attempts": attempts,
    }


async def _async_conversation(cfg: WorkerConfig, n: int, store: Any, client: Any, tally: _Tally) -> None:
    conv = await store.create_conversation(title=f"w{cfg.index}-a{n}")
    with tally.lock:
        tally.transcripts[conv.id] = []
    session = convkit.AsyncSession(
        store, conv.id, model=LOAD_MODEL, client=client, reserve=RESERVE, calibrate=cfg.calibrate
    )
    rng = random.Random(f"{cfg.seed}/{cfg.index}/a{n}")
    for turn in range(cfg.turns):
        text = _user_text(cfg.seed, cfg.index, n, turn)
        mode = "stream" if rng.random() < cfg.stream_share else "send"
        completion, attempt = None, 0
        for attempt in range(cfg.send_retries + 1):
            clock = TurnClock()
            token = CLOCK.set(clock)
            t0 = time.perf_counter()
            try:
                with tally.lock:
                    tally.attempts += 1
                if mode == "send":
                    completion = await session.send(text)
                else:
                    async for event in session.send_stream(text):
                        if isinstance(event, Done):
                            completion = event.completion
                    if completion is None:
                        raise AssertionError("a stream ended without Done and without an error")
            except APIError as exc:
                with tally.lock:
                    tally.errors[type(exc).__name__] += 1
                await asyncio.sleep(0.02 * (attempt + 1))
                continue
            except Exception as exc:
                with tally.lock:
                    tally.unexpected.append(f"{conv.id} turn {turn}: {type(exc).__name__}: {exc}")
                return  # the conversation's state is unknown: stop it (the audit reports it)
            finally:
                CLOCK.reset(token)
            tally.turn_done(
                conv.id, _entry(text, mode, completion, attempt + 1), time.perf_counter() - t0, clock
            )
            break
        else:
            tally.turn_done(conv.id, _entry(text, mode, None, attempt + 1), 0.0, TurnClock())
        with tally.lock:
            tally.retried_turns += bool(attempt)
            tally.failed_turns += completion is None


def _sync_conversation(cfg: WorkerConfig, n: int, store: Any, client: Any, tally: _Tally) -> None:
    conv = store.create_conversation(title=f"w{cfg.index}-s{n}")
    with tally.lock:
        tally.transcripts[conv.id] = []
    session = convkit.Session(
        store, conv.id, model=LOAD_MODEL, client=client, reserve=RESERVE, calibrate=cfg.calibrate
    )
    rng = random.Random(f"{cfg.seed}/{cfg.index}/s{n}")
    for turn in range(cfg.turns):
        text = _user_text(cfg.seed, cfg.index, 10_000 + n, turn)
        mode = "stream" if rng.random() < cfg.stream_share else "send"
        completion, attempt = None, 0
        for attempt in range(cfg.send_retries + 1):
            clock = TurnClock()
            token = CLOCK.set(clock)
            t0 = time.perf_counter()
            try:
                with tally.lock:
                    tally.attempts += 1
                if mode == "send":
                    completion = session.send(text)
                else:
                    for event in session.send_stream(text):
                        if isinstance(event, Done):
                            completion = event.completion
                    if completion is None:
                        raise AssertionError("a stream ended without Done and without an error")
            except APIError as exc:
                with tally.lock:
                    tally.errors[type(exc).__name__] += 1
                time.sleep(0.02 * (attempt + 1))
                continue
            except Exception as exc:
                with tally.lock:
                    tally.unexpected.append(f"{conv.id} turn {turn}: {type(exc).__name__}: {exc}")
                return
            finally:
                CLOCK.reset(token)
            tally.turn_done(
                conv.id, _entry(text, mode, completion, attempt + 1), time.perf_counter() - t0, clock
            )
            break
        else:
            tally.turn_done(conv.id, _entry(text, mode, None, attempt + 1), 0.0, TurnClock())
        with tally.lock:
            tally.retried_turns += bool(attempt)
            tally.failed_turns += completion is None


def _client_kw(cfg: WorkerConfig) -> dict[str, Any]:
    return {
        "api_key": API_KEY,
        "base_url": cfg.base_url,
        "timeout": cfg.timeout,
        "max_retries": cfg.client_retries,
        "backoff": convkit.Backoff(initial=0.05, maximum=0.5),
    }


async def _worker_main(cfg: WorkerConfig, tally: _Tally) -> None:
    counters = [EstimateCounter()]
    store = convkit.AsyncStore(
        cfg.async_url, namespace=cfg.namespace, counters=counters, pool_size=cfg.async_pool, pool_timeout=60.0
    )
    client = convkit.AsyncXAIClient(transport=TimedAsyncTransport(), **_client_kw(cfg))
    sync_store = convkit.Store(
        cfg.sync_url, namespace=cfg.namespace, counters=counters, pool_size=cfg.sync_pool, pool_timeout=60.0
    )
    sync_client = convkit.XAIClient(transport=TimedSyncTransport(), **_client_kw(cfg))
    try:
        jobs = [_async_conversation(cfg, n, store, client, tally) for n in range(cfg.n_async)]
        jobs += [
            asyncio.to_thread(_sync_conversation, cfg, n, sync_store, sync_client, tally)
            for n in range(cfg.n_sync)
        ]
        await asyncio.gather(*jobs)
    finally:
        await client.aclose()
        await store.aclose()
        sync_client.close()
        sync_store.close()


def run_worker(cfg: WorkerConfig) -> dict[str, Any]:
    """One worker process: its conversations, then what it saw (picklable)."""
    convkit.register_model(LOAD_MODEL, replace=True)
    log = logging.getLogger("convkit.xai")
    backoff_log = _BackoffLog()
    log.addHandler(backoff_log)
    log.propagate = False
    tally = _Tally()
    cpu0, t0 = time.process_time(), time.perf_counter()
    asyncio.run(_worker_main(cfg, tally))
    return {
        "index": cfg.index,
        "transcripts": tally.transcripts,
        "overhead": tally.overhead,
        "http": tally.http,
        "wall": tally.wall,
        "attempts": tally.attempts,
        "errors": dict(tally.errors),
        "client_retried": dict(backoff_log.retried),
        "retried_turns": tally.retried_turns,
        "failed_turns": tally.failed_turns,
        "unexpected": tally.unexpected,
        "cpu_seconds": time.process_time() - cpu0,
        "seconds": time.perf_counter() - t0,
    }


# -- the run ---------------------------------------------------------------------------------------
@attrs.frozen
class LoadConfig:
    processes: int = 4
    conversations: int = 50  #: AsyncSession conversations per process
    sync_conversations: int = 2  #: sync Session conversations per process (each in a thread)
    turns: int = 40
    fault_rate: float = 0.05  #: per fault kind
    timeout: float = 5.0  #: the client's timeout (a "slow" fault holds its answer longer)
    client_retries: int = 1  #: the client's own retries (429, 5xx, timeouts, connection failures)
    send_retries: int = 5  #: how many times a turn is sent again after an APIError
    seed: int = 0
    namespace: str = "load"
    async_pool: int = 12  #: AsyncStore pool_size per process
    sync_pool: int = 3  #: Store pool_size per process
    calibrate: bool = True  #: the sessions' calibrate= (False: no calibration reads or writes)


def async_url(url: str) -> str:
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        u = u.set(drivername="postgresql+asyncpg")
    elif u.get_backend_name() == "sqlite":
        u = u.set(drivername="sqlite+aiosqlite")
    return u.render_as_string(hide_password=False)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def run_load(url: str, cfg: LoadConfig) -> dict[str, Any]:
    """Run the load on the database at ``url`` (at the schema's head, empty), audit it, return the figures."""
    convkit.register_model(LOAD_MODEL, replace=True)
    standin = FaultyStandIn(
        api_key=API_KEY, rate=cfg.fault_rate, slow_seconds=cfg.timeout + 1.0, seed=cfg.seed
    ).start()
    try:
        workers = [
            WorkerConfig(
                index=i,
                sync_url=url,
                async_url=async_url(url),
                base_url=standin.base_url,
                n_async=cfg.conversations,
                n_sync=cfg.sync_conversations,
                turns=cfg.turns,
                timeout=cfg.timeout,
                client_retries=cfg.client_retries,
                send_retries=cfg.send_retries,
                seed=cfg.seed,
                namespace=cfg.namespace,
                async_pool=cfg.async_pool,
                sync_pool=cfg.sync_pool,
                calibrate=cfg.calibrate,
            )
            for i in range(cfg.processes)
        ]
        t0 = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(cfg.processes) as pool:
            results = pool.map(run_worker, workers)
        seconds = time.perf_counter() - t0
        requests = [r for r in standin.requests if r.endpoint == "chat"]
        stand_in_errors = [repr(e) for e in standin.errors]
        injected = dict(standin.injected)
    finally:
        standin.stop()
    failures = audit(url, cfg.namespace, results, requests, standin)
    failures += [f"the stand-in raised internally: {e}" for e in stand_in_errors]
    return summarize(cfg, results, requests, injected, seconds, failures)


def summarize(
    cfg: LoadConfig,
    results: list[dict[str, Any]],
    requests: list[RecordedRequest],
    injected: dict[str, int],
    seconds: float,
    failures: list[str],
) -> dict[str, Any]:
    overhead = [x for r in results for x in r["overhead"]]
    http = [x for r in results for x in r["http"]]
    wall = [x for r in results for x in r["wall"]]
    turns = sum(len(t) for r in results for t in r["transcripts"].values())
    replied = sum(1 for r in results for t in r["transcripts"].values() for e in t if e["reply"] is not None)
    errors: Counter[str] = Counter()
    retried: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
        retried.update(r["client_retried"])
    ms = 1e3
    return {
        "config": attrs.asdict(cfg),
        "conversations": sum(len(r["transcripts"]) for r in results),
        "turns": turns,
        "turns_replied": replied,
        "turns_failed_after_retries": sum(r["failed_turns"] for r in results),
        "turns_sent_again": sum(r["retried_turns"] for r in results),
        "send_attempts": sum(r["attempts"] for r in results),
        "chat_requests": len(requests),
        "seconds": round(seconds, 2),
        "turns_per_second": round(replied / seconds, 1) if seconds else None,
        "overhead_ms": {
            "p50": round(_pct(overhead, 0.5) * ms, 2),
            "p99": round(_pct(overhead, 0.99) * ms, 2),
            "mean": round(statistics.fmean(overhead) * ms, 2) if overhead else None,
        },
        "http_ms": {"p50": round(_pct(http, 0.5) * ms, 2), "p99": round(_pct(http, 0.99) * ms, 2)},
        "turn_wall_ms": {"p50": round(_pct(wall, 0.5) * ms, 2), "p99": round(_pct(wall, 0.99) * ms, 2)},
        "worker_cpu_ms_per_turn": round(sum(r["cpu_seconds"] for r in results) / max(1, replied) * ms, 2),
        "faults_injected": injected,
        "faults_injected_total": sum(injected.values()),
        "errors_retried_by_the_client": dict(retried),
        "errors_seen_by_clients_after_client_retries": dict(errors),
        "errors_total": dict(errors + retried),
        "unexpected_errors": [u for r in results for u in r["unexpected"]],
        "audit_failures": failures,
    }


# -- the audit -------------------------------------------------------------------------------------
def audit(
    url: str,
    namespace: str,
    results: list[dict[str, Any]],
    requests: list[RecordedRequest],
    standin: XAIStandIn,
) -> list[str]:
    """Every way the database or the requests break a promise, as readable lines (empty: all kept)."""
    failures = [f"unexpected error: {u}" for r in results for u in r["unexpected"]]
    transcripts = {cid: t for r in results for cid, t in r["transcripts"].items()}
    failures += _audit_database(url, namespace, transcripts)
    failures += _audit_requests(requests, standin)
    return failures


def _audit_database(url: str, namespace: str, transcripts: dict[str, list[dict[str, Any]]]) -> list[str]:
    out: list[str] = []
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            convs = {
                r.id: r.last_seq
                for r in conn.execute(
                    sa.text("SELECT id, last_seq FROM convkit_conversations WHERE namespace = :ns"),
                    {"ns": namespace},
                )
            }
            seqs: dict[str, list[tuple[int, str]]] = {}
            for r in conn.execute(
                sa.text(
                    "SELECT conversation_id, seq, role FROM convkit_messages ORDER BY conversation_id, seq"
                )
            ):
                seqs.setdefault(r.conversation_id, []).append((r.seq, r.role))
            usage: dict[str, list[tuple[int | None, int, int]]] = {}
            for r in conn.execute(
                sa.text(
                    "SELECT conversation_id, seq, prompt_tokens, completion_tokens FROM convkit_usage "
                    "ORDER BY conversation_id, id"
                )
            ):
                usage.setdefault(r.conversation_id, []).append((r.seq, r.prompt_tokens, r.completion_tokens))
    finally:
        engine.dispose()
    if set(convs) != set(transcripts):
        out.append(f"conversations in the database {len(convs)} != the clients' {len(transcripts)}")
    with convkit.Store(url, namespace=namespace) as store:
        for cid, turns in transcripts.items():
            rows = seqs.get(cid, [])
            numbers = [s for s, _ in rows]
            if numbers != list(range(1, len(rows) + 1)):
                out.append(f"{cid}: seqs not contiguous from 1: {numbers[:5]}... ({len(numbers)} rows)")
            if convs.get(cid) != len(rows):
                out.append(f"{cid}: last_seq {convs.get(cid)} but {len(rows)} messages")
            expected: list[tuple[str, str]] = []
            for t in turns:
                expected.append(("user", t["user"]))
                if t["reply"] is not None:
                    expected.append(("assistant", t["reply"]))
            stored = [(m.role, m.text) for m in store.messages(cid)]
            if stored != expected:
                out.append(_first_difference(cid, stored, expected))
            reply_seqs = [s for s, role in rows if role == "assistant"]
            got = usage.get(cid, [])
            want = [(t["usage"][0], t["usage"][1]) for t in turns if t["reply"] is not None]
            if [s for s, _, _ in got] != reply_seqs:
                out.append(f"{cid}: usage rows at seqs {[s for s, _, _ in got]}, replies at {reply_seqs}")
            elif [(p, c) for _, p, c in got] != want:
                out.append(f"{cid}: usage rows {[(p, c) for _, p, c in got]} != the replies' usage {want}")
    return out


def _first_difference(cid: str, stored: list[tuple[str, str]], expected: list[tuple[str, str]]) -> str:
    for i, (a, b) in enumerate(zip(stored, expected, strict=False)):
        if a != b:
            return f"{cid}: message {i + 1} is {a[0]} {a[1][:60]!r}, expected {b[0]} {b[1][:60]!r}"
    return f"{cid}: {len(stored)} messages stored, {len(expected)} expected (one per user turn and reply)"


def _audit_requests(requests: list[RecordedRequest], standin: XAIStandIn) -> list[str]:
    out: list[str] = []
    client_counter = EstimateCounter()
    for n, r in enumerate(requests):
        try:
            body = json.loads(r.raw)
            spec = standin.registry.get(body["model"])
            messages = [Message.from_openai(m) for m in body["messages"]]
        except Exception as exc:
            out.append(f"chat request {n}: unreadable ({type(exc).__name__}: {exc})")
            continue
        reserve = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        limit = spec.context_window - reserve
        tools = body.get("tools")
        for who, counter in (("stand-in", standin.counter), ("client", client_counter)):
            tokens = counter.count_messages(messages, model=spec, tools=tools)
            if tokens > limit:
                out.append(
                    f"chat request {n}: {tokens} tokens by the {who}'s counter > {limit} (window - max)"
                )
    return out
