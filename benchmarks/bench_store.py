"""Benchmark: stored-conversation windows and appends, on SQLite and PostgreSQL.

For conversations of 1k, 10k, 100k and 1M messages (benchmarks/_data.py), stored
with ``Store.extend`` in large batches by a store configured with a counter (so
every message is counted once, at write time), on an SQLite file in a temporary
directory and on a scratch PostgreSQL database, this measures:

* **load**: ``store.extend`` in batches (``--batch``, default 20000 messages;
  each batch one transaction, counting included): batched append throughput.
  Generating the messages is not timed.
* **window**: ``store.window(cid, model=m, counter=c)`` for grok-2-1212
  (131072 tokens; the conversation's image-free variant, since a text-only
  model's window over a conversation holding images reads every message) and
  grok-2-vision-1212 (8192 tokens, with images). Median of many calls; the
  store keeps the last window's messages decoded (``window_cache``), so a
  repeated window reads no body. **window cold**: the same from a store with
  ``window_cache=0``, which reads and decodes every kept row every time.
* **turns** (``--turns``, default 40): a chatbot's loop. An answer and the
  next question are appended (not timed), then the window is timed (it reads
  and decodes only the new rows), with the cold window and the bare SELECT of
  the rows kept, each first, second and last equally often (the first read
  after a write costs more); ratios are medians of per-turn ratios.
  The per-turn window over its bare SELECT is what the target judges; the
  cold ratios are reported beside it.
* **bare SELECT** of exactly the rows the window kept, with SQLAlchemy Core on
  the store's own engine (same pool, a plain read transaction as the store's
  reads use), fetched with ``.all()``, no decoding: ``SELECT <cols> FROM
  convkit_messages WHERE conversation_id = :cid AND seq BETWEEN :cut AND :n``
  (the kept tail) ``UNION ALL`` the same with ``seq IN (...)`` for kept rows
  before the cut (pinned and leading system messages), ``ORDER BY seq``.
  ``<cols>`` is the columns the window reads for kept rows ("bare", what the
  targets judge) and ``*`` ("bare *"). Also timed: **decode**, turning the
  bare rows into Messages as the window does. Window, bare SELECTs and decode
  are timed interleaved, round by round, with every size of the same
  database, so load from other processes hits all series alike; the ratios
  are medians of same-round ratios.
* **LangChain** ``SQLChatMessageHistory`` (langchain-community) holding the
  same conversation in its own table (one table per conversation, so its
  unindexed ``session_id`` filter scans only that conversation's rows; rows
  written once, outside timing, with Core in exactly the format its
  ``add_messages`` writes), timed as ``history.messages`` plus
  ``trim_messages(strategy="last", include_system=True, allow_partial=False,
  start_on="human")`` with a list counter summing the same per-message counts
  (looked up by ``id()`` in a table built inside the timed call). Up to
  ``--lc-max`` messages (default 100k: a 1M load takes tens of seconds a call).
* **single appends**: ``store.append`` one message at a time (each its own
  transaction, counted at write time) to a new conversation, and to the
  largest stored conversation (after its windows were timed).

Every window is checked against ``convkit.fit`` over a ``History`` of the same
messages (same kept spans and prompt tokens).

Targets (DESIGN section 7), on both databases and both models: the 1M-message
window's median within 2x of the 1k one, and within 1.5x of the bare SELECT of
its kept rows (per turn, as above).

Run: ``/work/venv/bin/python benchmarks/bench_store.py [--quick]`` (about
9-17 minutes with 1M on a shared 2-core VM, mostly loading; ``--quick`` stops at 100k and
writes nothing). PostgreSQL:
``--pg-url`` (an admin URL; a scratch database ``--pg-db`` is created there
and dropped at the end), default ``$CONVKIT_BENCH_PG_URL`` or
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import _data
import sqlalchemy as sa
from bench_fit import LC_OPTIONS, lc_counter
from langchain_core.messages import convert_to_messages, message_to_dict, trim_messages

import convkit
from convkit._messages import Message
from convkit.store import Store, _ops_core, codec
from convkit.store import _schema as t
from convkit.store._db import safe_url
from convkit.store._sync import drive

MODELS = ("grok-2-1212", "grok-2-vision-1212")
TARGET_VS_1K = 2.0
TARGET_VS_BARE = 1.5
LC_OPTION = "lc-human"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def make_counter(kind: str) -> tuple[convkit.BaseCounter, str]:
    if kind == "hf":
        path = _common.grok1_tokenizer_path()
        if not path.is_file():
            sys.exit(f"--counter hf: tokenizer not found at {path} (set CONVKIT_SHARED_DIR)")
        return convkit.HFTokenCounter.from_file(path), f"HFTokenCounter({path.name})"
    return convkit.EstimateCounter(), "EstimateCounter() (the character-class estimate, margin 0)"


# -- databases ---------------------------------------------------------------------------------


@contextlib.contextmanager
def sqlite_db() -> Iterator[str]:
    tmp = tempfile.mkdtemp(prefix="convkit-bench-store-")
    try:
        yield f"sqlite:///{tmp}/store.db"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def postgres_db(admin_url: str, name: str, keep: bool = False) -> Iterator[str]:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = admin.url.set(database=name).render_as_string(hide_password=False)
        yield url
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def pg_reachable(admin_url: str) -> str | None:
    try:
        eng = sa.create_engine(admin_url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5})
        with eng.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        eng.dispose()
    except Exception as exc:  # any driver error means: skip PostgreSQL, say why
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return None


# -- timing ------------------------------------------------------------------------------------


def interleaved(
    series: dict[str, Callable[[], object]], *, rounds: int, per_round: int, warmup: int = 3
) -> dict[str, list[list[int]]]:
    """Time every series ``per_round`` times in each round, alternating the order; gc off while timing.

    Returns, per series, the samples (ns) of each round.
    """
    for fn in series.values():
        for _ in range(warmup):
            fn()
    out: dict[str, list[list[int]]] = {k: [] for k in series}
    keys = list(series)
    for rnd in range(rounds):
        gc.collect()
        gc.disable()
        try:
            for key in keys if rnd % 2 == 0 else reversed(keys):
                fn = series[key]
                samples = []
                for _ in range(per_round):
                    t0 = time.perf_counter_ns()
                    fn()
                    samples.append(time.perf_counter_ns() - t0)
                out[key].append(samples)
        finally:
            gc.enable()
    return out


def stats(rounds: list[list[int]]) -> dict[str, Any]:
    flat = sorted(s for r in rounds for s in r)
    n = len(flat)
    return {
        "runs": n,
        "median_ns": int(statistics.median(flat)),
        "min_ns": flat[0],
        "p10_ns": flat[n // 10],
        "p90_ns": flat[min(n - 1, (n * 9) // 10)],
    }


def paired_ratio(a: list[list[int]], b: list[list[int]]) -> float:
    """Median over rounds of (median of a in the round) / (median of b in the round)."""
    return statistics.median(statistics.median(x) / statistics.median(y) for x, y in zip(a, b, strict=True))


# -- the work ----------------------------------------------------------------------------------


def load(store: Store, cid: str, msgs: list[Message], batch: int) -> float:
    """``store.extend`` in batches; returns the seconds spent inside extend."""
    spent = 0.0
    for i in range(0, len(msgs), batch):
        chunk = msgs[i : i + batch]
        t0 = time.perf_counter()
        store.extend(cid, chunk)
        spent += time.perf_counter() - t0
    return spent


def bare_select(
    engine: sa.Engine, cid: str, res: convkit.FitResult, columns: str
) -> tuple[Callable[[], object], int]:
    """A function running the bare SELECT of exactly the kept rows, and the number of rows.

    ``columns``: "star" (every column) or "window" (the columns the window reads for kept rows).
    """
    m = t.messages
    cols: list[Any] = [m] if columns == "star" else [m.c[name] for name in codec.BODY_COLUMNS]
    *before, (cut0, _end) = res.kept_spans
    pins = [i + 1 for a, b in before for i in range(a, b)]
    # both ends of the tail bounded: with ``seq >= cut`` alone PostgreSQL estimated thousands of rows
    # for a 10k conversation among 1M-message ones and planned a parallel query (4-50 ms for 35 rows)
    tail = sa.select(*cols).where(m.c.conversation_id == cid, m.c.seq.between(cut0 + 1, res.input_length))
    stmt: Any
    if pins:
        head = sa.select(*cols).where(m.c.conversation_id == cid, m.c.seq.in_(pins))
        stmt = sa.union_all(head, tail).order_by(sa.literal_column("seq"))
    else:
        stmt = tail.order_by(m.c.seq)

    def run() -> list[Any]:
        with engine.connect() as conn:
            conn.execution_options(convkit_read=True)  # SQLite: a plain BEGIN, as the store's reads
            return conn.execute(stmt).all()

    rows = run()
    assert [r.seq for r in rows] == [i + 1 for a, b in res.kept_spans for i in range(a, b)]
    return run, len(rows)


def decoder(engine: sa.Engine, rows: Any) -> Callable[[], object]:
    """Decoding already-fetched kept rows into Messages, as the window does (its largest part).

    Rows holding images need the image bytes: that read runs on the engine, as in the window.
    """
    if not any(codec.image_shas(r.content) for r in rows):
        return lambda: drive(None, _ops_core.decode_body(rows))  # type: ignore[arg-type]  # no statement

    def run() -> list[Message]:
        with engine.connect() as conn:
            conn.execution_options(convkit_read=True)
            return drive(conn, _ops_core.decode_body(rows))

    return run


def lc_table(
    url: str, table: str, lc_msgs: list[Any]
) -> tuple[Any, sa.Engine]:  # (SQLChatMessageHistory, its engine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # langchain-community announces its sunset
        from langchain_community.chat_message_histories import SQLChatMessageHistory

    engine = sa.create_engine(url)  # LangChain's own engine with SQLAlchemy's defaults
    hist = SQLChatMessageHistory(session_id="bench", table_name=table, connection=engine)
    tbl = hist.sql_model_class.__table__
    rows = [{"session_id": "bench", "message": json.dumps(message_to_dict(lm))} for lm in lc_msgs]
    with engine.begin() as conn:
        for i in range(0, len(rows), 5000):
            conn.execute(sa.insert(tbl), rows[i : i + 5000])
    return hist, engine


_FIT_CACHE: dict[tuple[int, str], convkit.FitResult] = {}


def check_vs_fit(
    res: convkit.FitResult, msgs: list[Message], model: str, counter: convkit.BaseCounter
) -> dict[str, Any]:
    """The window against ``convkit.fit`` over a History of the same messages (computed once a case)."""
    key = (len(msgs), model)
    if key not in _FIT_CACHE:
        _FIT_CACHE[key] = convkit.fit(convkit.History(msgs, counter=counter), model=model, counter=counter)
    ref = _FIT_CACHE[key]
    return {
        "equal_to_fit": ref.kept_spans == res.kept_spans and ref.prompt_tokens == res.prompt_tokens,
        "kept": len(res.messages),
        "kept_spans": len(res.kept_spans),
        "prompt_tokens": res.prompt_tokens,
        "budget": res.budget,
    }


def time_langchain(
    hist: Any, costs: list[int], max_tokens: int, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Time ``history.messages`` + ``trim_messages``, then the trim alone; and how many it kept."""
    opts = LC_OPTIONS[LC_OPTION]

    def trim(loaded: list[Any]) -> list[Any]:
        count = lc_counter({id(x): k for x, k in zip(loaded, costs, strict=True)})
        return trim_messages(loaded, max_tokens=max_tokens, token_counter=count, **opts)

    def lc_window() -> list[Any]:
        return trim(hist.messages)

    kept = len(lc_window())
    timing = _common.time_calls(lc_window, min_runs=3, max_runs=200, max_seconds=args.lc_seconds, warmup=1)
    loaded = hist.messages
    only_trim = _common.time_calls(lambda: trim(loaded), min_runs=3, max_runs=50, max_seconds=2, warmup=1)
    return timing, only_trim, kept


#: The turn loop's orders: each series comes first, second and last equally often (the first read
#: after a write costs more, on both databases).
ORDERS = ((0, 1, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0), (1, 0, 2), (0, 2, 1))


def turns(
    store: Store,
    cold: Store,
    engine: sa.Engine,
    cid: str,
    model: str,
    counter: convkit.BaseCounter,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """``args.turns`` turns of a chatbot's loop: an answer and the next question are appended (not
    timed), then the window is timed (the store keeps the last window decoded, so it reads and
    decodes just the new rows), with the same window from a store without that cache and the bare
    SELECT of the rows it kept, in rotating orders (:data:`ORDERS`); ratios are medians of
    per-turn ratios.
    """
    extra = _data.make_conversation(8 * args.turns + 16, seed=11)
    texts = [m.text for m in extra if m.role in ("user", "assistant") and m.text and not m.tool_calls]
    rows: list[tuple[int, int, int]] = []
    for i in range(args.turns):
        store.extend(cid, [Message.assistant(texts[2 * i]), Message.user(texts[2 * i + 1])])
        res = cold.window(cid, model=model, counter=counter)  # what the timed calls keep (untimed)
        bare, _ = bare_select(engine, cid, res, "window")
        calls: list[Callable[[], object]] = [
            lambda: store.window(cid, model=model, counter=counter),
            lambda: cold.window(cid, model=model, counter=counter),
            bare,
        ]
        took = [0, 0, 0]
        gc.collect()
        gc.disable()  # as in the interleaved rounds: no collection lands inside one series' call
        try:
            for k in ORDERS[i % len(ORDERS)]:
                t0 = time.perf_counter_ns()
                calls[k]()
                took[k] = time.perf_counter_ns() - t0
        finally:
            gc.enable()
        rows.append((took[0], took[1], took[2]))
    return {
        "turns": args.turns,
        "window_median_ns": int(statistics.median(w for w, _, _ in rows)),
        "window_cold_median_ns": int(statistics.median(c for _, c, _ in rows)),
        "bare_median_ns": int(statistics.median(b for _, _, b in rows)),
        "ratio_window_over_bare": round(statistics.median(w / b for w, _, b in rows), 3),
        "ratio_window_cold_over_bare": round(statistics.median(c / b for _, c, b in rows), 3),
    }


def single_appends(store: Store, cid: str, msgs: list[Message]) -> dict[str, Any]:
    lat: list[int] = []
    t0 = time.perf_counter()
    for msg in msgs:
        a = time.perf_counter_ns()
        store.append(cid, msg)
        lat.append(time.perf_counter_ns() - a)
    total = time.perf_counter() - t0
    lat.sort()
    return {
        "appends": len(msgs),
        "seconds": round(total, 3),
        "appends_per_s": round(len(msgs) / total, 1),
        "median_ns": int(statistics.median(lat)),
        "p90_ns": lat[(len(lat) * 9) // 10],
    }


def run_db(
    kind: str,
    url: str,
    convs: dict[int, dict[str, list[Message]]],
    counter: convkit.BaseCounter,
    args: argparse.Namespace,
) -> dict[str, Any]:
    print(f"\n== {kind}: {safe_url(url)}")
    store = Store(url, counters=[counter], upgrade=True)
    engine = store.engine
    cold = Store(engine=engine, counters=[counter], window_cache=0)  # decodes every kept row, every time
    loads: list[dict[str, Any]] = []
    ids: dict[tuple[int, str], str] = {}
    for n, variants in convs.items():
        for model in MODELS:
            variant = "images" if convkit.get_model(model).supports_images else "text"
            msgs = variants[variant]
            # a fresh counter for each load: nothing cached from an earlier conversation
            loader = Store(engine=engine, counters=[type(counter)()]) if args.counter == "estimate" else store
            cid = loader.create_conversation(title=f"{n} {variant}").id
            ids[(n, model)] = cid
            secs = load(loader, cid, msgs, args.batch)
            loads.append(
                {
                    "messages": n,
                    "variant": variant,
                    "batch": args.batch,
                    "seconds": round(secs, 3),
                    "messages_per_s": round(n / secs, 1),
                }
            )
            print(f"  load {n:>9,} ({variant:<6}): {secs:8.2f} s, {n / secs:9,.0f} messages/s")
    if kind == "postgresql" and not args.no_analyze:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")

    # -- windows and bare SELECTs, interleaved ---------------------------------------------------
    cases: list[dict[str, Any]] = []
    series: dict[str, Callable[[], object]] = {}
    for n, variants in convs.items():
        for model in MODELS:
            variant = "images" if convkit.get_model(model).supports_images else "text"
            cid = ids[(n, model)]
            wc = type(counter)() if args.counter == "estimate" else counter

            def window(cid: str = cid, model: str = model, wc: convkit.BaseCounter = wc) -> object:
                return store.window(cid, model=model, counter=wc)

            def window_cold(cid: str = cid, model: str = model, wc: convkit.BaseCounter = wc) -> object:
                return cold.window(cid, model=model, counter=wc)

            res = store.window(cid, model=model, counter=wc)
            check = check_vs_fit(res, variants[variant], model, counter) if n <= args.check_max else None
            bare, nrows = bare_select(engine, cid, res, "window")
            bare_star, _ = bare_select(engine, cid, res, "star")
            key = f"{n}/{model}"
            series[f"{key}/window"] = window
            series[f"{key}/window_cold"] = window_cold
            series[f"{key}/bare"] = bare
            series[f"{key}/bare_star"] = bare_star
            series[f"{key}/decode"] = decoder(engine, bare())
            cases.append(
                {
                    "messages": n,
                    "model": model,
                    "variant": variant,
                    "budget": res.budget,
                    "kept": len(res.messages),
                    "kept_spans": len(res.kept_spans),
                    "kept_images": sum(len(msg.images) for msg in res.messages),
                    "prompt_tokens": res.prompt_tokens,
                    "bare_rows": nrows,
                    "check_vs_fit": check,
                    "_key": key,
                }
            )
    t0 = time.perf_counter()
    samples = interleaved(series, rounds=args.rounds, per_round=args.per_round)
    print(f"  windows timed in {time.perf_counter() - t0:.1f} s ({args.rounds} rounds x {args.per_round})")
    small = min(convs)
    for c in cases:
        key = c.pop("_key")
        w, b, bs = samples[f"{key}/window"], samples[f"{key}/bare"], samples[f"{key}/bare_star"]
        base = samples[f"{small}/{c['model']}/window"]
        c["window"] = stats(w)
        c["bare_select"] = stats(b)
        c["bare_select_star"] = stats(bs)
        c["ratio_window_over_bare"] = round(paired_ratio(w, b), 3)
        wcold = samples[f"{key}/window_cold"]
        c["window_cold"] = stats(wcold)
        c["ratio_window_cold_over_bare"] = round(paired_ratio(wcold, b), 3)
        c["ratio_window_cold_over_bare_star"] = round(paired_ratio(wcold, bs), 3)
        c[f"ratio_window_cold_over_{small}"] = round(
            paired_ratio(wcold, samples[f"{small}/{c['model']}/window_cold"]), 3
        )
        c["ratio_window_over_bare_of_medians"] = round(
            c["window"]["median_ns"] / c["bare_select"]["median_ns"], 3
        )
        c["ratio_window_over_bare_star"] = round(paired_ratio(w, bs), 3)
        c["decode_kept_rows"] = stats(samples[f"{key}/decode"])
        c["ratio_decode_over_bare"] = round(paired_ratio(samples[f"{key}/decode"], b), 3)
        c[f"ratio_window_over_{small}"] = round(paired_ratio(w, base), 3)

    # -- turns: a new exchange appended, then the window (as a chatbot's loop does) --------------
    t0 = time.perf_counter()
    for c in cases:
        c["turns"] = turns(store, cold, engine, ids[(c["messages"], c["model"])], c["model"], counter, args)
    print(f"  turns timed in {time.perf_counter() - t0:.1f} s ({args.turns} a case)")

    # -- LangChain ----------------------------------------------------------------------------
    spec_cache = {m: convkit.get_model(m) for m in MODELS}
    for c in cases:
        n, model = c["messages"], c["model"]
        if n > args.lc_max:
            c["langchain"] = None
            continue
        spec = spec_cache[model]
        msgs = convs[n][c["variant"]]
        costs = [x + spec.message_overhead for x in counter.content_tokens(msgs)]
        lc_msgs = convert_to_messages([m.to_openai() for m in msgs])
        t0 = time.perf_counter()
        hist, lc_engine = lc_table(url, f"lc_{n}_{c['variant']}", lc_msgs)
        lc_load_s = time.perf_counter() - t0
        del lc_msgs
        timing, only_trim, kept = time_langchain(hist, costs, c["budget"] - spec.request_overhead, args)
        lc_engine.dispose()
        c["langchain"] = {
            "option": LC_OPTION,
            "table_write_s": round(lc_load_s, 2),
            "kept": kept,
            "load_plus_trim": timing,
            "trim_only": only_trim,
            "ratio_over_window": round(timing["median_ns"] / c["window"]["median_ns"], 1),
        }
        print(
            f"  langchain {n:>9,} {model:<20}: messages+trim {_common.fmt_ns(timing['median_ns'])} "
            f"(trim alone {_common.fmt_ns(only_trim['median_ns'])}; kept {kept}; {timing['runs']} runs)"
        )

    # -- single appends ------------------------------------------------------------------------
    extra = _data.make_conversation(args.appends, seed=7)
    fresh_cid = store.create_conversation(title="appends").id
    appends = {"fresh": single_appends(store, fresh_cid, extra)}
    big = max(convs)
    big_cid = ids[(big, "grok-2-vision-1212")]
    appends[f"onto_{big}"] = single_appends(store, big_cid, extra[1:])  # no second leading system prompt
    for k, a in appends.items():
        print(
            f"  single appends ({k}): {a['appends_per_s']:,.0f}/s "
            f"(median {_common.fmt_ns(a['median_ns'])}, p90 {_common.fmt_ns(a['p90_ns'])})"
        )
    cold.close()
    store.close()
    return {"loads": loads, "cases": cases, "single_appends": appends}


def print_db(kind: str, r: dict[str, Any], small: int) -> None:
    rows = []
    for c in r["cases"]:
        lc = c["langchain"]
        rows.append(
            [
                f"{c['messages']:,}",
                c["model"],
                str(c["kept"]),
                _common.fmt_ns(c["window"]["median_ns"]),
                _common.fmt_ns(c["bare_select"]["median_ns"]),
                f"{c['ratio_window_over_bare']:.2f}",
                f"{c['turns']['ratio_window_over_bare']:.2f}",
                _common.fmt_ns(c["window_cold"]["median_ns"]),
                f"{c['ratio_window_cold_over_bare']:.2f}",
                _common.fmt_ns(c["decode_kept_rows"]["median_ns"]),
                _common.fmt_ns(c["bare_select_star"]["median_ns"]),
                f"{c['ratio_window_over_bare_star']:.2f}",
                f"{c[f'ratio_window_over_{small}']:.2f}",
                _common.fmt_ns(lc["load_plus_trim"]["median_ns"]) if lc else "-",
                f"{lc['ratio_over_window']:.0f}x" if lc else "-",
            ]
        )
    print(f"\n{kind}")
    _common.print_table(
        [
            "messages",
            "model",
            "kept",
            "window",
            "bare",
            "w/bare",
            "turn w/b",
            "cold",
            "cold/b",
            "decode",
            "bare *",
            "w/bare*",
            f"w/w@{small}",
            "LangChain",
            "LC/window",
        ],
        rows,
    )
    print("  (medians; window: the store's window, repeated (its last window is kept decoded);")
    print("   bare: SELECT of the kept rows, the columns the window reads; turn w/b: after appending")
    print("   an answer and a question, window over bare (median of per-turn ratios); cold: a store")
    print("   keeping nothing decoded (window_cache=0); decode: turning the kept rows into Messages;")
    print("   bare *: SELECT * of the kept rows; ratios: medians of same-round ratios)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000,1000000", help="comma-separated message counts")
    ap.add_argument("--dbs", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    ap.add_argument("--pg-url", default=os.environ.get("CONVKIT_BENCH_PG_URL", DEFAULT_PG), help="admin URL")
    ap.add_argument("--pg-db", default="convkit_bench", help="scratch database (created, then dropped)")
    ap.add_argument("--batch", type=int, default=20000, help="messages per extend call when loading")
    ap.add_argument("--rounds", type=int, default=30, help="interleaved rounds of window/bare timing")
    ap.add_argument("--per-round", type=int, default=5, help="calls of each series per round")
    ap.add_argument("--lc-max", type=int, default=100_000, help="largest conversation given to LangChain")
    ap.add_argument("--lc-seconds", type=float, default=6.0, help="time cap per LangChain series")
    ap.add_argument("--check-max", type=int, default=1_000_000, help="largest size checked against fit")
    ap.add_argument("--appends", type=int, default=500, help="single appends per database")
    ap.add_argument("--turns", type=int, default=48, help="append-then-window turns timed per case")
    ap.add_argument("--counter", choices=("estimate", "hf"), default="estimate")
    ap.add_argument("--keep-pg", action="store_true", help="keep the scratch database (to inspect plans)")
    ap.add_argument("--no-analyze", action="store_true", help="PostgreSQL: no ANALYZE after loading")
    ap.add_argument("--quick", action="store_true", help="up to 100k, fewer rounds; writes nothing")
    ap.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/store.json")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.rounds, args.lc_seconds, args.appends, args.no_write = (
            "1000,10000,100000",
            10,
            3,
            300,
            True,
        )
    sizes = sorted(int(s) for s in args.sizes.split(","))
    dbs = [d.strip() for d in args.dbs.split(",") if d.strip()]
    counter, counter_desc = make_counter(args.counter)
    t_start = time.perf_counter()
    print(f"convkit {convkit.__version__}; counter: {counter_desc}; sizes: {sizes}; dbs: {dbs}")

    convs: dict[int, dict[str, list[Message]]] = {}
    for n in sizes:
        t0 = time.perf_counter()
        with_images = _data.make_conversation(n, images=True)
        convs[n] = {"images": with_images, "text": _data.without_images(with_images)}
        print(f"generated {n:,} messages in {time.perf_counter() - t0:.1f} s")

    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for kind in dbs:
        if kind == "sqlite":
            with sqlite_db() as url:
                results[kind] = run_db(kind, url, convs, counter, args)
        elif kind == "postgresql":
            why = pg_reachable(args.pg_url)
            if why is not None:
                skipped[kind] = why
                print(f"\n== postgresql: skipped ({why})")
                continue
            with postgres_db(args.pg_url, args.pg_db, args.keep_pg) as url:
                results[kind] = run_db(kind, url, convs, counter, args)
        else:
            sys.exit(f"unknown database {kind!r}")

    small, big = sizes[0], sizes[-1]
    targets: dict[str, Any] = {"judged_at": big, "against": small}
    met = bool(results)
    for kind, r in results.items():
        print_db(kind, r, small)
        for c in r["cases"]:
            if c["messages"] != big:
                continue
            vs_small, vs_bare = c[f"ratio_window_over_{small}"], c["turns"]["ratio_window_over_bare"]
            ok_small, ok_bare = vs_small <= TARGET_VS_1K, vs_bare <= TARGET_VS_BARE
            targets[f"{kind}/{c['model']}"] = {
                "window_median_ns": c["window"]["median_ns"],
                f"ratio_vs_{small}": vs_small,
                f"within_{TARGET_VS_1K:g}x_of_{small}": ok_small,
                "ratio_vs_bare_select": vs_bare,
                "ratio_vs_bare_select_repeated": c["ratio_window_over_bare"],
                "ratio_vs_bare_select_star": c["ratio_window_over_bare_star"],
                f"within_{TARGET_VS_BARE:g}x_of_bare": ok_bare,
                "cold": {
                    f"ratio_vs_{small}": c[f"ratio_window_cold_over_{small}"],
                    "ratio_vs_bare_select": c["ratio_window_cold_over_bare"],
                    "ratio_vs_bare_select_per_turn": c["turns"]["ratio_window_cold_over_bare"],
                    "ratio_vs_bare_select_star": c["ratio_window_cold_over_bare_star"],
                    f"within_{TARGET_VS_BARE:g}x_of_bare": c["ratio_window_cold_over_bare"] <= TARGET_VS_BARE,
                },
            }
            met = met and ok_small and ok_bare
            print(
                f"target {kind} {c['model']} @{big:,}: {vs_small:.2f}x the {small:,} window "
                f"(<= {TARGET_VS_1K:g}: {ok_small}); per turn {vs_bare:.2f}x its bare SELECT "
                f"(<= {TARGET_VS_BARE:g}: {ok_bare}; repeated {c['ratio_window_over_bare']:.2f}x); "
                f"cold {c['ratio_window_cold_over_bare']:.2f}x bare, "
                f"{c['ratio_window_cold_over_bare_star']:.2f}x SELECT *, "
                f"{c[f'ratio_window_cold_over_{small}']:.2f}x the cold {small:,} window"
            )
        fits = [c["check_vs_fit"]["equal_to_fit"] for c in r["cases"] if c["check_vs_fit"]]
        print(f"{kind}: windows equal to fit over the same messages: {all(fits)} ({len(fits)} checked)")
        met = met and all(fits)
    targets["all_met"] = met
    total = time.perf_counter() - t_start
    print(f"\nall targets met: {met}  (total {total / 60:.1f} min)")
    if not args.no_write:
        path = _common.write_result(
            "store",
            {
                "counter": counter_desc,
                "method": (
                    "window and bare SELECT: interleaved rounds (all sizes of one database), "
                    "perf_counter_ns per call, gc disabled while timing, warm-up first; ratios are "
                    "medians of same-round ratios. LangChain and appends: medians over calls."
                ),
                "sizes": sizes,
                "batch": args.batch,
                "skipped": skipped,
                "databases": results,
                "targets": targets,
                "total_seconds": round(total, 1),
            },
        )
        print(f"wrote {path.relative_to(_common.REPO_DIR)}")


if __name__ == "__main__":
    main()
