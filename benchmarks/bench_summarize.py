"""Benchmark: a long conversation through ``Session(strategy="summarize")`` against the xAI stand-in.

A ``--turns`` (default 5,000) turn conversation is driven through
``convkit.Session(store, cid, model="grok-2-vision-1212", client=client,
strategy="summarize")`` against :class:`convkit.testing.XAIStandIn` (a real
HTTP server on 127.0.0.1), into grok-2-vision-1212's 8192-token window (the
session's default reserve of 1024 tokens for the reply). The summarizer is
the session's default: an ``XAISummarizer`` over the same client, model
grok-2-1212. The stand-in answers both with its default replies ("You said:
..."), counts every prompt with its own counter (4 bytes a token, unlike the
client's character-class estimate, so calibration has something to learn) and answers 400 to any
request that does not fit its model's window.

The user messages are the user turns of ``benchmarks/_data.py``'s
conversations (mostly short questions, sometimes a pasted document or a stack
trace, a few images and two pinned messages); the store is an SQLite file in
a temporary directory, counting with the session's counter at write time.

It reports:

* **summarizer calls** (and folds: summaries stored; a fold of a long range
  may take several calls) and turns per call;
* **summarizing tokens per turn**: the summarizer's prompt and completion
  tokens (as the stand-in counted them, i.e. what xAI would bill) divided by
  the number of turns, next to the chat requests' own prompt tokens per turn;
* **every request fit**: each chat request the stand-in received is counted
  again with the stand-in's counter against its model's window less the
  request's ``max_tokens``; the stand-in recorded no error; and the number of
  chat requests equals turns + summarizer calls (no request was refused and
  retried);
* timings: wall time, and per-turn medians: the first 500 turns after the
  window filled (the first fold) and the last 500, to show whether a turn's
  cost grows with the conversation's length (issue 11: it must not);
* **scale** (``--scale``, issue 11): conversations of 5,000 and 100,000
  stored messages, each with a stored summary (folded once, untimed, by
  :class:`convkit.ExtractiveSummarizer`), then ``--scale-turns`` turns of
  ``Session(strategy="summarize")`` on each, interleaved turn by turn; the
  ratio of their median turn times (target: within 1.5x).

Run: ``python benchmarks/bench_summarize.py`` (writes
``benchmarks/results/summarize.json``); ``--quick`` runs 300 turns and a
small scale run, and writes nothing; ``--scale-only`` runs only the scale
comparison (and writes ``benchmarks/results/summarize_scale.json``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fmt_ns, print_table, write_result
from _data import iter_conversation, user_turns

import convkit
from convkit import EstimateCounter, Message, Session, Store, XAIClient
from convkit.testing import XAIStandIn

MODEL = "grok-2-vision-1212"
SUMMARIZER_MODEL = "grok-2-1212"
CHECK_EVERY = 100  # turns between checks of the recorded requests (then forgotten, to bound memory)


class RequestCheck:
    """Checks the chat requests the stand-in recorded, in batches, then forgets them."""

    def __init__(self, xai: XAIStandIn) -> None:
        self.xai = xai
        self.requests = 0
        self.by_model: dict[str, int] = {}
        self.too_long = 0
        self.max_fill = 0.0  # the largest prompt / (window - max_tokens)
        self.max_prompt = {MODEL: 0, SUMMARIZER_MODEL: 0}

    def drain(self) -> None:
        assert not self.xai.errors, self.xai.errors
        bodies = self.xai.chat_requests
        self.xai.reset()
        for body in bodies:
            spec = self.xai.registry.get(body["model"])
            msgs = [Message.from_openai(m) for m in body["messages"]]
            prompt = self.xai.counter.count_messages(msgs, model=spec, tools=body.get("tools"))
            limit = spec.context_window - (body.get("max_tokens") or 0)
            self.requests += 1
            self.by_model[spec.name] = self.by_model.get(spec.name, 0) + 1
            self.too_long += prompt > limit
            self.max_fill = max(self.max_fill, prompt / limit)
            self.max_prompt[spec.name] = max(self.max_prompt.get(spec.name, 0), prompt)


def run(turns: int, db_dir: Path) -> dict[str, Any]:
    messages = user_turns(turns, seed=7)
    counter = EstimateCounter()
    started = time.perf_counter()
    turn_ns: list[int] = []
    chat_prompt = chat_completion = 0
    window_max = 0
    with (
        XAIStandIn() as xai,
        Store(f"sqlite:///{db_dir / 'summarize.db'}", counters=[counter]) as store,
        XAIClient(api_key=xai.api_key, base_url=xai.base_url, max_retries=0) as client,
    ):
        cid = store.create_conversation(title="bench_summarize").id
        session = Session(store, cid, model=MODEL, client=client, counter=counter, strategy="summarize")
        summarizer = session.summarizer
        assert isinstance(summarizer, convkit.XAISummarizer)
        assert summarizer.spec.name == SUMMARIZER_MODEL
        check = RequestCheck(xai)
        filled = 0  # turns before the window filled (the first fold)
        for i, message in enumerate(messages, 1):
            t0 = time.perf_counter_ns()
            completion = session.send(message)
            turn_ns.append(time.perf_counter_ns() - t0)
            if not filled and summarizer.calls:
                filled = i
            chat_prompt += completion.usage.prompt_tokens
            chat_completion += completion.usage.completion_tokens
            if i % CHECK_EVERY == 0 or i == turns:
                check.drain()
                window_max = max(window_max, session.window().prompt_tokens)
                print(
                    f"  turn {i:>5}: {summarizer.calls} summarizer calls, "
                    f"{len(store.summaries(cid))} summaries, last turn {fmt_ns(turn_ns[-1])}",
                    flush=True,
                )
        wall = time.perf_counter() - started
        stored = store.messages(cid)
        summaries = store.summaries(cid)
        usage = store.usage(cid)
        budget = session.window().budget
        margin = session.margin()
    calls = summarizer.calls
    summarizing = summarizer.prompt_tokens + summarizer.completion_tokens
    span = min(500, max(1, (turns - filled) // 2))
    early = turn_ns[filled : filled + span]
    late = turn_ns[-span:]
    return {
        "turns": turns,
        "messages_stored": len(stored),
        "model": MODEL,
        "summarizer_model": SUMMARIZER_MODEL,
        "reserve": session.reserve,
        "margin_in_force": margin,
        "budget_local_tokens": budget,
        "summarizer_calls": calls,
        "summaries_stored": len(summaries),
        "turns_per_summarizer_call": turns / calls if calls else None,
        "summarizing_prompt_tokens": summarizer.prompt_tokens,
        "summarizing_completion_tokens": summarizer.completion_tokens,
        "summarizing_tokens_per_turn": summarizing / turns,
        "summarizing_cost_usd": summarizer.cost_usd,
        "chat_prompt_tokens_per_turn": chat_prompt / turns,
        "chat_completion_tokens_per_turn": chat_completion / turns,
        "largest_summary_tokens_local": max((s.tokens for s in summaries), default=0),
        "largest_window_local_tokens_sampled": window_max,
        "chat_requests": check.requests,
        "chat_requests_by_model": check.by_model,
        "chat_requests_expected": turns + calls,
        "requests_over_window": check.too_long,
        "largest_prompt_fill": round(check.max_fill, 4),
        "largest_prompt_tokens_by_model": check.max_prompt,
        "every_request_fit": check.too_long == 0 and check.requests == turns + calls,
        "usage_rows": usage.turns,
        "wall_s": round(wall, 2),
        "window_filled_at_turn": filled,
        "turns_compared": span,
        "turn_median_ms_first_after_fill": round(statistics.median(early) / 1e6, 2),
        "turn_median_ms_last": round(statistics.median(late) / 1e6, 2),
        "late_over_early": round(statistics.median(late) / statistics.median(early), 3),
        "turn_p90_ms": round(sorted(turn_ns)[int(len(turn_ns) * 0.9)] / 1e6, 2),
    }


def scale_run(sizes: tuple[int, ...], turns: int, db_dir: Path) -> dict[str, Any]:
    """Median turn time of a summarize session over stored conversations of ``sizes`` messages."""
    counter = EstimateCounter()
    asks = user_turns(turns + 1, seed=11)
    times: dict[int, list[int]] = {size: [] for size in sizes}
    sessions: dict[int, Session] = {}
    stores: list[Store] = []
    with (
        XAIStandIn() as xai,
        XAIClient(api_key=xai.api_key, base_url=xai.base_url, max_retries=0) as client,
    ):
        try:
            for size in sizes:
                store = Store(f"sqlite:///{db_dir / f'scale-{size}.db'}", counters=[counter])
                stores.append(store)
                cid = store.create_conversation(title=f"scale {size}").id
                batch: list[Message] = []
                t0 = time.perf_counter()
                for m in iter_conversation(size, seed=size):
                    batch.append(m)
                    if len(batch) == 5000:
                        store.extend(cid, batch)
                        batch = []
                if batch:
                    store.extend(cid, batch)
                session = Session(
                    store,
                    cid,
                    model=MODEL,
                    client=client,
                    counter=counter,
                    strategy="summarize",
                    summarizer=convkit.ExtractiveSummarizer(counter),
                )
                session.send(asks[0])  # the first fold, over everything before the window: untimed
                assert store.summaries(cid), "the first turn stored no summary"
                sessions[size] = session
                print(f"  {size} messages stored and folded in {time.perf_counter() - t0:.1f} s", flush=True)
            for message in asks[1:]:
                for size in sizes:  # interleaved, so the machine's load falls on both alike
                    t0 = time.perf_counter_ns()
                    sessions[size].send(message)
                    times[size].append(time.perf_counter_ns() - t0)
            assert not xai.errors, xai.errors
        finally:
            for store in stores:
                store.close()
    medians = {size: statistics.median(times[size]) / 1e6 for size in sizes}
    small, large = min(sizes), max(sizes)
    return {
        "sizes": list(sizes),
        "turns": turns,
        "turn_median_ms": {str(k): round(v, 2) for k, v in medians.items()},
        "large_over_small": round(medians[large] / medians[small], 3),
        "target": 1.5,
        "target_met": medians[large] / medians[small] <= 1.5,
    }


def print_scale(scale: dict[str, Any]) -> None:
    rows = [[f"{size} messages", f"{scale['turn_median_ms'][str(size)]} ms"] for size in scale["sizes"]]
    rows.append(["largest / smallest (target <= 1.5)", f"{scale['large_over_small']:.3f}"])
    print_table([f"median turn ({scale['turns']} turns each)", "value"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="300 turns, a small scale run, write nothing")
    parser.add_argument("--scale-only", action="store_true", help="only the 5,000 vs 100,000 comparison")
    parser.add_argument("--scale-turns", type=int, default=200)
    args = parser.parse_args()
    sizes = (1000, 10000) if args.quick else (5000, 100000)
    what = " vs ".join(map(str, sizes))
    print(f"scale: {what} stored messages with a summary, Session(strategy='summarize')")
    with tempfile.TemporaryDirectory(prefix="convkit-bench-summarize-") as tmp:
        scale = scale_run(sizes, 50 if args.quick else args.scale_turns, Path(tmp))
    print_scale(scale)
    if args.scale_only:
        if not args.quick:
            path = write_result("summarize_scale", {"result": scale, "target_met": scale["target_met"]})
            print(f"wrote {path}")
        return
    turns = 300 if args.quick else args.turns
    print(f"{turns} turns through Session(strategy='summarize') into {MODEL} (stand-in on 127.0.0.1)")
    with tempfile.TemporaryDirectory(prefix="convkit-bench-summarize-") as tmp:
        result = run(turns, Path(tmp))
    rows = [
        ["turns", str(result["turns"])],
        [
            "summarizer calls (summaries stored)",
            f"{result['summarizer_calls']} ({result['summaries_stored']})",
        ],
        ["turns per summarizer call", f"{result['turns_per_summarizer_call'] or 0:.1f}"],
        ["summarizing tokens per turn", f"{result['summarizing_tokens_per_turn']:.1f}"],
        ["chat prompt tokens per turn", f"{result['chat_prompt_tokens_per_turn']:.1f}"],
        ["chat requests (expected)", f"{result['chat_requests']} ({result['chat_requests_expected']})"],
        ["requests over the window", str(result["requests_over_window"])],
        ["largest prompt / (window - max_tokens)", f"{result['largest_prompt_fill']:.3f}"],
        ["every request fit", str(result["every_request_fit"])],
        ["wall time", f"{result['wall_s']:.1f} s"],
        [
            f"turn median, {result['turns_compared']} after the fill / last {result['turns_compared']}",
            f"{result['turn_median_ms_first_after_fill']} / {result['turn_median_ms_last']} ms "
            f"({result['late_over_early']:.3f}x)",
        ],
    ]
    print_table(["figure", "value"], rows)
    if not result["every_request_fit"]:
        print("FAILED: a request did not fit the window, or the stand-in refused one", file=sys.stderr)
    if args.quick:
        print("(--quick: nothing written)")
        return
    met = result["every_request_fit"] and result["late_over_early"] <= 1.0 and scale["target_met"]
    path = write_result("summarize", {"result": result, "scale": scale, "target_met": met})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
