"""Benchmark: first-time counting with ``convkit.HFTokenCounter`` against raw ``encode_batch``.

With the shared Grok-1 tokenizer (``../shared/tokenizers/grok-1.tokenizer.json``
or ``$CONVKIT_SHARED_DIR/tokenizers/...``; the benchmark is skipped, with the
reason printed, when it is absent), for batches of 1k and 10k messages of a
realistic conversation (benchmarks/_data.py: text, code, tool calls and
results, a few images), this times, interleaved in the same run:

* anchor: ``Tokenizer.encode_batch(texts, add_special_tokens=False)`` over
  exactly the texts convkit has to count (each text part, each tool call's
  id, name and arguments, each tool message's ``tool_call_id``), the call
  alone, not even reading the lengths;
* anchor, strict: the same with ``encode_batch_fast`` (no offsets), which is
  what convkit uses when the installed ``tokenizers`` has it;
* convkit: ``HFTokenCounter(tokenizer).count_messages(messages, model=...)``
  on a FRESH counter each run (empty caches, so every message is counted for
  the first time), i.e. message conversion checks, text gathering, one
  ``encode_batch`` call, per-message sums and caching;
* convkit, History: ``convkit.History(messages, counter=fresh)``, which counts
  and also builds the trim index (what an append to a long history costs).

The tokenizer object is shared by all series, and the series alternate
within each round, so its internal word cache is equally warm for everyone.

Target (DESIGN section 7): convkit's ``count_messages`` <= 1.2x the raw
``encode_batch``, judged on the median over rounds of the same-round ratio
(wall time), which shrugs off load from other processes better than a ratio
of medians; the JSON also has the ratio of medians, of minima and of CPU-time
medians.

Run: ``/work/venv/bin/python benchmarks/bench_count.py [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import _data

import convkit
from convkit._counting import TOOL_CALL_OVERHEAD
from convkit._messages import ImagePart, Message, TextPart

TARGET_RATIO = 1.2
MODEL = "grok-2-vision-1212"


def texts_of(msgs: list[Message]) -> tuple[list[str], int]:
    """The texts convkit counts for these messages, and the tokens that need no tokenizer."""
    texts: list[str] = []
    fixed = 0
    for m in msgs:
        for p in m.content:
            if isinstance(p, TextPart):
                texts.append(p.text)
            elif isinstance(p, ImagePart):
                fixed += p.tokens
        for c in m.tool_calls:
            texts.extend((c.id, c.name, c.arguments))
            fixed += TOOL_CALL_OVERHEAD
        if m.tool_call_id is not None:
            texts.append(m.tool_call_id)
        if m.name is not None:
            texts.append(m.name)
            fixed += 1
    return texts, fixed


def stats(samples: list[int]) -> dict[str, Any]:
    s = sorted(samples)
    return {"runs": len(s), "median_ns": int(statistics.median(s)), "min_ns": s[0], "max_ns": s[-1]}


def run_batch(tok: Any, n: int, rounds: int, seed: int) -> dict[str, Any]:
    msgs = _data.make_conversation(n, seed=seed, images=True)
    texts, fixed = texts_of(msgs)
    spec = convkit.get_model(MODEL)

    # sanity: convkit counts exactly these texts (plus images and fixed overheads)
    expected = sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)) + fixed
    total = convkit.HFTokenCounter(tok).count_messages(msgs, model=MODEL)
    assert total == expected + spec.message_overhead * n + spec.request_overhead, (total, expected)

    fresh: list[convkit.HFTokenCounter] = []

    def new_counter() -> None:
        fresh.clear()
        fresh.append(convkit.HFTokenCounter(tok))

    series: dict[str, tuple[Callable[[], object], Callable[[], None] | None]] = {
        "encode_batch": (lambda: tok.encode_batch(texts, add_special_tokens=False), None),
        "encode_batch_fast": (lambda: tok.encode_batch_fast(texts, add_special_tokens=False), None),
        "convkit_count_messages": (lambda: fresh[0].count_messages(msgs, model=MODEL), new_counter),
        "convkit_history": (lambda: convkit.History(msgs, counter=fresh[0]), new_counter),
    }
    if not hasattr(tok, "encode_batch_fast"):
        del series["encode_batch_fast"]
    wall: dict[str, list[int]] = {k: [] for k in series}
    cpu: dict[str, list[int]] = {k: [] for k in series}
    names = list(series)
    for r in range(rounds + 1):  # round 0 is a warm-up
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            fn, setup = series[name]
            if setup is not None:
                setup()
            gc.collect()
            gc.disable()
            try:
                c0, t0 = time.process_time_ns(), time.perf_counter_ns()
                fn()
                dt, dc = time.perf_counter_ns() - t0, time.process_time_ns() - c0
            finally:
                gc.enable()
            if r:
                wall[name].append(dt)
                cpu[name].append(dc)
    out = {k: {**stats(wall[k]), "cpu_median_ns": int(statistics.median(cpu[k]))} for k in series}

    def ratios(a: str, b: str) -> dict[str, float]:
        paired = statistics.median(x / y for x, y in zip(wall[a], wall[b], strict=True))
        return {
            "paired_median": round(paired, 4),  # median over rounds of a/b in the same round
            "of_medians": round(out[a]["median_ns"] / out[b]["median_ns"], 4),
            "of_minima": round(out[a]["min_ns"] / out[b]["min_ns"], 4),
            "of_cpu_medians": round(out[a]["cpu_median_ns"] / out[b]["cpu_median_ns"], 4),
        }

    result: dict[str, Any] = {
        "messages": n,
        "texts": len(texts),
        "tokens": total,
        "series": out,
        "convkit_over_encode_batch": ratios("convkit_count_messages", "encode_batch"),
        "history_over_encode_batch": ratios("convkit_history", "encode_batch"),
    }
    if "encode_batch_fast" in out:
        result["convkit_over_encode_batch_fast"] = ratios("convkit_count_messages", "encode_batch_fast")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000", help="comma-separated batch sizes (messages)")
    ap.add_argument(
        "--rounds", type=int, default=0, help="timed rounds per size (default: 25 for 1k, 11 above)"
    )
    ap.add_argument("--quick", action="store_true", help="1k only, 5 rounds; writes nothing")
    ap.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/count.json")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.rounds, args.no_write = "1000", 5, True
    tok = _common.grok1_tokenizer_or_skip()
    if tok is None:
        return
    path = _common.grok1_tokenizer_path()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"convkit {convkit.__version__}; tokenizer {path.name}; sizes {sizes}")
    batches = []
    for i, n in enumerate(sizes):
        rounds = args.rounds or (25 if n <= 1000 else 11)
        b = run_batch(tok, n, rounds, seed=100 + i)
        batches.append(b)
        print(f"  {n:,} messages ({b['texts']:,} texts, {b['tokens']:,} tokens), {rounds} rounds")

    rows = []
    for b in batches:
        s = b["series"]
        fast = b.get("convkit_over_encode_batch_fast", {})
        rows.append(
            [
                f"{b['messages']:,}",
                f"{b['tokens']:,}",
                _common.fmt_ns(s["encode_batch"]["median_ns"]),
                _common.fmt_ns(s["encode_batch_fast"]["median_ns"]) if "encode_batch_fast" in s else "-",
                _common.fmt_ns(s["convkit_count_messages"]["median_ns"]),
                _common.fmt_ns(s["convkit_history"]["median_ns"]),
                f"{b['convkit_over_encode_batch']['paired_median']:.3f}",
                f"{b['convkit_over_encode_batch']['of_cpu_medians']:.3f}",
                f"{fast.get('paired_median', float('nan')):.3f}",
                f"{b['history_over_encode_batch']['paired_median']:.3f}",
            ]
        )
    print()
    _common.print_table(
        [
            "messages",
            "tokens",
            "encode_batch",
            "..._fast",
            "convkit",
            "History()",
            "convkit/raw",
            "(cpu)",
            "convkit/fast",
            "History/raw",
        ],
        rows,
    )
    print("  (wall medians; convkit = fresh HFTokenCounter.count_messages; raw = Tokenizer.encode_batch;")
    print("   ratios are medians of same-round ratios, (cpu) the ratio of CPU-time medians)")
    worst = max(b["convkit_over_encode_batch"]["paired_median"] for b in batches)
    met = worst <= TARGET_RATIO
    print(f"\ntarget: convkit / raw encode_batch <= {TARGET_RATIO}: worst {worst:.3f} -> {met}")
    if not args.no_write:
        out = _common.write_result(
            "count",
            {
                "tokenizer": path.name,
                "model": MODEL,
                "method": "series interleaved per round (order alternating), one warm-up round, gc "
                "disabled while timing, fresh counter per convkit run; ratios: median over rounds of "
                "the same-round ratio (robust to load from other processes), also of medians, "
                "of minima and of CPU-time medians",
                "batches": batches,
                "targets": {"worst_ratio": round(worst, 4), "ratio_le_1_2": met, "all_met": met},
            },
        )
        print(f"wrote {out.relative_to(_common.REPO_DIR)}")


if __name__ == "__main__":
    main()
