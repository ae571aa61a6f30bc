"""Benchmark: ``convkit.fit`` with counts known, against LangChain's ``trim_messages``.

For 1k, 10k and 100k-message conversations (benchmarks/_data.py) and two
budgets (grok-2-1212: 131072 tokens, text only, so the conversation has no
images; grok-2-vision-1212: 8192 tokens, with images), this times:

* ``convkit.fit(history, model=m, counter=history.counter)`` where
  ``history`` is a :class:`convkit.History` built once (so every count is
  known and fit only searches its prefix sums): the "History path";
* ``convkit.fit(messages, model=m, counter=counter)`` over a plain list of
  Message objects whose counts are already in the counter's cache (the same
  objects, so cache lookups hit by identity): the "list path" (it validates
  the list and rebuilds the index, so it is linear in the length);
* the anchor, ``langchain_core.messages.trim_messages`` over the same
  messages converted once to LangChain messages, with ``token_counter`` a
  function summing precomputed per-message counts (convkit's content tokens
  plus the model's per-message overhead, looked up by ``id(message)``), and
  ``max_tokens`` = convkit's budget minus the per-request overhead, so both
  sides work to the same budget with the same counts. Options:
  ``strategy="last", include_system=True, allow_partial=False`` and
  ``start_on="human"`` (LangChain's documented recommendation: "lc-human"),
  and the same without ``start_on`` ("lc-plain").

Medians over many runs (perf_counter_ns, gc disabled while timing). The
correctness of every result is checked too: it fits the budget, keeps tool
groups whole (LangChain: orphaned tool results, calls without results), keeps
pinned messages, the leading system prompt and the last message, and is
maximal (the newest dropped unit would not have fit).

Targets (DESIGN section 7): at 100k messages the History path's median is
<= 1 ms and >= 50x faster than LangChain (the faster LangChain option).

Run: ``/work/venv/bin/python benchmarks/bench_fit.py [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import _data
from langchain_core.messages import convert_to_messages, trim_messages

import convkit
from convkit._fitting import compute_budget
from convkit._messages import Message

MODELS = ("grok-2-1212", "grok-2-vision-1212")
TARGET_MEDIAN_NS = 1_000_000
TARGET_RATIO = 50.0
#: the list path (a plain list of Message objects whose counts are cached) against LangChain (issue 11)
TARGET_LIST_RATIO = 3.0
LC_OPTIONS: dict[str, dict[str, Any]] = {
    "lc-human": {"strategy": "last", "include_system": True, "allow_partial": False, "start_on": "human"},
    "lc-plain": {"strategy": "last", "include_system": True, "allow_partial": False},
}


def make_counter(kind: str) -> tuple[convkit.BaseCounter, str]:
    path = _common.grok1_tokenizer_path()
    if kind in ("auto", "hf") and path.is_file():
        return convkit.HFTokenCounter.from_file(path), f"HFTokenCounter({path.name})"
    if kind == "hf":
        sys.exit(f"--counter hf: tokenizer not found at {path} (set CONVKIT_SHARED_DIR)")
    return convkit.EstimateCounter(), "EstimateCounter() (grok-1 tokenizer absent)"


class Structure:
    """Tool groups, pinned flags and per-message costs of one conversation, for the checks."""

    def __init__(self, msgs: list[Message], costs: list[int]) -> None:
        self.n = len(msgs)
        self.costs = costs
        self.pinned = [i for i, m in enumerate(msgs) if m.pinned]
        lead = 0
        while lead < len(msgs) and msgs[lead].role == "system":
            lead += 1
        self.leading = list(range(lead))
        self.last_speaker = max(i for i, m in enumerate(msgs) if m.role != "system")
        call_owner: dict[str, int] = {}
        self.owner: dict[int, int] = {}  # tool message -> assistant index
        self.results: dict[int, list[int]] = {}  # assistant index -> tool message indices
        self.calls: dict[int, int] = {}  # assistant index -> number of calls
        for i, m in enumerate(msgs):
            if m.tool_calls:
                self.calls[i] = len(m.tool_calls)
                self.results[i] = []
                for c in m.tool_calls:
                    call_owner[c.id] = i
            if m.role == "tool":
                a = call_owner[m.tool_call_id or ""]
                self.owner[i] = a
                self.results[a].append(i)

    def must_keep(self) -> set[int]:
        """Leading system messages, pinned messages (with their tool groups) and the newest turn:
        the unit of the newest non-system message and everything after it."""
        keep = set(self.leading)
        for i in self.pinned:
            keep.update(self.unit(i))
        keep.update(range(min(self.unit(self.last_speaker)), self.n))
        return keep

    def unit(self, i: int) -> list[int]:
        a = self.owner.get(i, i)
        if a in self.results:
            return list(range(a, max(self.results[a], default=a) + 1))
        return [i]

    def check(self, kept: list[int], budget: int, request_overhead: int) -> dict[str, Any]:
        ks = set(kept)
        tokens = request_overhead + sum(self.costs[i] for i in kept)
        orphans = sum(1 for i in kept if i in self.owner and self.owner[i] not in ks)
        unanswered = sum(1 for a, rs in self.results.items() if a in ks and any(r not in ks for r in rs))
        dropped = [i for i in range(self.n) if i not in ks]
        pinned_dropped = sum(1 for i in self.pinned if i not in ks)
        # maximal: the newest dropped unit that is droppable (not pinned) would not have fit
        maximal = True
        for d in reversed(dropped):
            unit = [j for j in self.unit(d) if j not in ks]
            extra = sum(self.costs[j] for j in unit)
            maximal = tokens + extra > budget
            break
        return {
            "kept": len(kept),
            "prompt_tokens": tokens,
            "fits": tokens <= budget,
            "orphan_tool_results": orphans,
            "calls_without_results": unanswered,
            "tool_groups_intact": orphans == 0 and unanswered == 0,
            "pinned_dropped": pinned_dropped,
            "leading_system_kept": all(i in ks for i in self.leading),
            "last_kept": (self.n - 1) in ks,
            "maximal": maximal,
        }


def lc_counter(table: dict[int, int]) -> Any:
    get = table.__getitem__

    def count(messages):  # type: ignore[no-untyped-def]  # a list counter (unannotated on purpose)
        return sum(map(get, map(id, messages)))

    return count


def run_case(
    n: int, model: str, msgs: list[Message], counter: convkit.BaseCounter, args: argparse.Namespace
) -> dict[str, Any]:
    spec = convkit.get_model(model)
    t0 = time.perf_counter()
    history = convkit.History(msgs, counter=counter)
    build_s = time.perf_counter() - t0
    costs = [c + spec.message_overhead for c in history.content_counts]
    st = Structure(msgs, costs)

    # -- convkit, History path ---------------------------------------------------------------
    def fit_history() -> convkit.FitResult:
        return convkit.fit(history, model=model, counter=counter)

    res = fit_history()
    budget = res.budget
    assert res.prompt_tokens == counter.count_messages(res.messages, model=model)
    ck_check = st.check(res.kept, budget, spec.request_overhead)
    t_hist = _common.time_calls(fit_history, min_runs=args.runs, max_runs=args.runs * 10, max_seconds=3)

    # -- convkit, list path (counts cached in the counter) ---------------------------------------
    def fit_list() -> convkit.FitResult:
        return convkit.fit(msgs, model=model, counter=counter)

    res_list = fit_list()
    assert res_list.kept_spans == res.kept_spans, "list path and History path disagree"
    t_list = _common.time_calls(fit_list, min_runs=5, max_runs=args.runs, max_seconds=args.anchor_seconds)

    # -- LangChain anchor -------------------------------------------------------------------------
    lc_msgs = convert_to_messages([m.to_openai() for m in msgs])
    table = {id(lm): c for lm, c in zip(lc_msgs, costs, strict=True)}
    index = {id(lm): i for i, lm in enumerate(lc_msgs)}
    count = lc_counter(table)
    max_tokens = budget - spec.request_overhead
    anchors: dict[str, Any] = {}
    for name, opts in LC_OPTIONS.items():

        def trim(opts: dict[str, Any] = opts) -> list[Any]:
            return trim_messages(lc_msgs, max_tokens=max_tokens, token_counter=count, **opts)

        out = trim()
        kept = sorted(index[id(m)] for m in out)
        timing = _common.time_calls(trim, min_runs=5, max_runs=args.runs, max_seconds=args.anchor_seconds)
        anchors[name] = {
            "options": opts,
            **timing,
            "ratio_vs_history": timing["median_ns"] / t_hist["median_ns"],
            "ratio_vs_list": timing["median_ns"] / t_list["median_ns"],
            "correctness": st.check(kept, budget, spec.request_overhead),
        }
    best_lc = min(a["median_ns"] for a in anchors.values())
    return {
        "messages": n,
        "model": model,
        "budget": budget,
        "conversation": {
            **_data.conversation_stats(msgs),
            "tokens": sum(costs) + spec.request_overhead,
            "history_build_s": round(build_s, 3),
        },
        "convkit_history": {**t_hist, "correctness": ck_check},
        "convkit_list": t_list,
        "langchain": anchors,
        "ratio_lc_over_convkit": best_lc / t_hist["median_ns"],
        "ratio_lc_over_list": best_lc / t_list["median_ns"],
    }


def sweep(counter: convkit.BaseCounter, conversations: int, budgets: int) -> dict[str, Any]:
    """Correctness over random tool-heavy conversations and budgets (log-uniform, 300 to 131072).

    A convkit result is correct when it fits, keeps tool groups whole, keeps
    pinned messages, the leading system prompt and the last message, and is
    maximal; a ContextWindowError is correct when the must-keep part really
    exceeds the budget. LangChain gets the same budget and counts.
    """
    model = "grok-2-1212"
    spec = convkit.get_model(model)
    rng = random.Random(20260101)
    tally: dict[str, Counter[str]] = {k: Counter() for k in ("convkit", *LC_OPTIONS)}
    for conv in range(conversations):
        n = rng.randint(50, 3000)
        msgs = _data.make_conversation(
            n, seed=1000 + conv, images=False, tool_rate=0.5, pinned=rng.randint(0, 3)
        )
        history = convkit.History(msgs, counter=counter)
        costs = [c + spec.message_overhead for c in history.content_counts]
        st = Structure(msgs, costs)
        must = spec.request_overhead + sum(costs[i] for i in st.must_keep())
        lc_msgs = convert_to_messages([m.to_openai() for m in msgs])
        count = lc_counter({id(lm): c for lm, c in zip(lc_msgs, costs, strict=True)})
        index = {id(lm): i for i, lm in enumerate(lc_msgs)}
        for _ in range(budgets):
            target = int(math.exp(rng.uniform(math.log(300), math.log(spec.context_window))))
            reserve = spec.context_window - target
            budget = compute_budget(spec, reserve, counter.margin)
            t = tally["convkit"]
            t["runs"] += 1
            try:
                res = convkit.fit(history, model=model, counter=counter, reserve=reserve)
            except convkit.ContextWindowError as exc:
                t["raised"] += 1
                t["correct"] += exc.available == budget and exc.required == must and must > budget
            else:
                ck = st.check(res.kept, budget, spec.request_overhead)
                ok = ck["fits"] and ck["tool_groups_intact"] and not ck["pinned_dropped"]
                ok = ok and ck["maximal"] and ck["last_kept"] and ck["leading_system_kept"]
                t["correct"] += ok and must <= budget and res.prompt_tokens == ck["prompt_tokens"]
            for name, opts in LC_OPTIONS.items():
                t = tally[name]
                t["runs"] += 1
                out = trim_messages(
                    lc_msgs, max_tokens=budget - spec.request_overhead, token_counter=count, **opts
                )
                c = st.check(sorted(index[id(m)] for m in out), budget, spec.request_overhead)
                t["fits"] += c["fits"]
                t["tool_groups_intact"] += c["tool_groups_intact"]
                t["with_orphan_tool_results"] += c["orphan_tool_results"] > 0
                t["pinned_kept"] += c["pinned_dropped"] == 0
                t["last_kept"] += c["last_kept"]
                t["maximal"] += c["maximal"]
                t["must_keep_fits"] += must <= budget
                ok = c["fits"] and c["tool_groups_intact"] and c["maximal"]
                ok = ok and c["last_kept"] and c["leading_system_kept"] and must <= budget
                t["correct_ignoring_pinned"] += ok
                t["correct"] += ok and c["pinned_dropped"] == 0
    out: dict[str, Any] = {"conversations": conversations, "budgets_each": budgets, "model": model}
    for name, t in tally.items():
        runs = t.pop("runs")
        out[name] = {"runs": runs, **{k: round(v / runs, 4) for k, v in sorted(t.items())}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="comma-separated message counts")
    ap.add_argument("--runs", type=int, default=60, help="minimum timed runs of convkit's History path")
    ap.add_argument("--anchor-seconds", type=float, default=6.0, help="time cap per slow series")
    ap.add_argument("--counter", choices=("auto", "hf", "estimate"), default="auto")
    ap.add_argument("--sweep", default="20x40", help="correctness sweep: CONVERSATIONSxBUDGETS (0 = off)")
    ap.add_argument("--quick", action="store_true", help="1k and 10k only, fewer runs; writes nothing")
    ap.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/fit.json")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.runs, args.anchor_seconds, args.no_write = "1000,10000", 20, 1.0, True
        args.sweep = "4x10"
    sizes = [int(s) for s in args.sizes.split(",")]
    counter, counter_desc = make_counter(args.counter)
    print(f"convkit {convkit.__version__}; counter: {counter_desc}; sizes: {sizes}")
    cases: list[dict[str, Any]] = []
    for n in sizes:
        t0 = time.perf_counter()
        with_images = _data.make_conversation(n, images=True)
        text_only = _data.without_images(with_images)  # shares every image-free Message object
        print(f"\n{n} messages: generated in {time.perf_counter() - t0:.2f} s")
        for model in MODELS:
            msgs = with_images if convkit.get_model(model).supports_images else text_only
            case = run_case(n, model, msgs, counter, args)
            cases.append(case)
            h, lc = case["convkit_history"], case["langchain"]
            print(
                f"  {model:<20} budget {case['budget']:>6}: history {_common.fmt_ns(h['median_ns'])}, "
                f"list {_common.fmt_ns(case['convkit_list']['median_ns'])}, "
                + ", ".join(f"{k} {_common.fmt_ns(v['median_ns'])}" for k, v in lc.items())
            )
        del with_images, text_only
        gc.collect()

    rows = []
    for c in cases:
        h, lc = c["convkit_history"], c["langchain"]
        rows.append(
            [
                f"{c['messages']:,}",
                c["model"],
                str(c["budget"]),
                _common.fmt_ns(h["median_ns"]),
                _common.fmt_ns(c["convkit_list"]["median_ns"]),
                _common.fmt_ns(lc["lc-human"]["median_ns"]),
                _common.fmt_ns(lc["lc-plain"]["median_ns"]),
                f"{c['ratio_lc_over_convkit']:.0f}x",
                str(h["correctness"]["kept"]),
                f"{lc['lc-human']['correctness']['kept']}/{lc['lc-plain']['correctness']['kept']}",
                f"{lc['lc-plain']['correctness']['orphan_tool_results']}",
            ]
        )
    print()
    _common.print_table(
        [
            "messages",
            "model",
            "budget",
            "convkit",
            "list path",
            "lc-human",
            "lc-plain",
            "LC/convkit",
            "kept",
            "lc kept",
            "lc orphans",
        ],
        rows,
    )
    print("  (medians; LC/convkit: against the faster LangChain option; lc orphans: lc-plain's orphaned")
    print("   tool results in this one fit; see the budget sweep for rates)")

    checks = []
    for c in cases:
        ck = c["convkit_history"]["correctness"]
        ok = ck["fits"] and ck["tool_groups_intact"] and not ck["pinned_dropped"] and ck["maximal"]
        ok = ok and ck["last_kept"] and ck["leading_system_kept"]
        checks.append(ok)
        for name, a in c["langchain"].items():
            lcc = a["correctness"]
            print(
                f"  {c['messages']:>7,} {c['model']:<20} {name}: fits={lcc['fits']} "
                f"orphan_tool_results={lcc['orphan_tool_results']} "
                f"calls_without_results={lcc['calls_without_results']} "
                f"pinned_dropped={lcc['pinned_dropped']} maximal={lcc['maximal']}"
            )
    sweep_result: dict[str, Any] | None = None
    if args.sweep not in ("", "0"):
        convs, per = (int(x) for x in args.sweep.split("x"))
        t0 = time.perf_counter()
        sweep_result = sweep(counter, convs, per)
        print(
            f"\ncorrectness sweep ({convs} tool-heavy conversations x {per} budgets, "
            f"{time.perf_counter() - t0:.1f} s): share of results"
        )
        for name in ("convkit", *LC_OPTIONS):
            r = sweep_result[name]
            print(f"  {name:<9} " + ", ".join(f"{k}={v}" for k, v in r.items()))
    targets: dict[str, Any] = {"convkit_results_correct": all(checks)}
    if sweep_result is not None:
        targets["sweep_convkit_correct_share"] = sweep_result["convkit"]["correct"]
    big = [c for c in cases if c["messages"] == 100_000]
    for c in big:
        key = c["model"]
        med = c["convkit_history"]["median_ns"]
        targets[key] = {
            "median_ns": med,
            "median_le_1ms": med <= TARGET_MEDIAN_NS,
            "ratio": round(c["ratio_lc_over_convkit"], 1),
            "ratio_ge_50x": c["ratio_lc_over_convkit"] >= TARGET_RATIO,
            "list_ratio": round(c["ratio_lc_over_list"], 1),
            "list_ratio_ge_3x": c["ratio_lc_over_list"] >= TARGET_LIST_RATIO,
        }
    met = (
        all(checks)
        and bool(big)
        and all(
            t["median_le_1ms"] and t["ratio_ge_50x"] and t["list_ratio_ge_3x"]
            for t in (targets[c["model"]] for c in big)
        )
        and (sweep_result is None or sweep_result["convkit"]["correct"] == 1)
    )
    targets["all_met"] = met
    print(f"\nconvkit results correct (fits, tool groups, pinned, maximal): {all(checks)}")
    for c in big:
        t = targets[c["model"]]
        print(
            f"target @100k {c['model']}: median {_common.fmt_ns(t['median_ns'])} <= 1 ms: "
            f"{t['median_le_1ms']}; {t['ratio']}x faster than LangChain >= 50x: {t['ratio_ge_50x']}; "
            f"list path {t['list_ratio']}x faster than LangChain >= 3x: {t['list_ratio_ge_3x']}"
        )
    if not big:
        print("targets are judged at 100k messages: not run")
    if not args.no_write:
        path = _common.write_result(
            "fit",
            {
                "counter": counter_desc,
                "method": "median of perf_counter_ns per call, gc disabled while timing, warm-up first",
                "cases": cases,
                "sweep": sweep_result,
                "targets": targets,
            },
        )
        print(f"wrote {path.relative_to(_common.REPO_DIR)}")


if __name__ == "__main__":
    main()
