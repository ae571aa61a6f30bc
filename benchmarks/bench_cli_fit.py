"""``convkit fit`` on a big JSONL file: wall time and peak memory against the newest part alone.

Issue 13's target: ``convkit fit`` on a generated 100,000-message JSONL with the
Grok-1 tokenizer takes at most 3x the wall time of the same command on the
newest 2,000 messages of that file (the anchor, measured in the same run,
interleaved with it), with a max RSS under 400 MB. Each command runs as its
own process (``python -m convkit fit FILE --model M --tokenizer T --json``),
several times, alternating with the anchor; the median wall time and the
largest max RSS (``os.wait4``) of each are reported. The output of both must
count no more messages than the anchor's file holds (the big file's window is read
newest first, so its counting does not grow with the file).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
from _data import make_conversation

from convkit import Message
from convkit._jsonl import dumps_jsonl

TARGET_RATIO = 3.0
TARGET_RSS_MB = 400


def newest(messages: list[Message], n: int) -> list[Message]:
    """The system prompt and the newest ``n - 1`` messages, starting at a message no tool result
    needs an earlier call for."""
    start = len(messages) - (n - 1)
    while messages[start].role == "tool":
        start += 1
    return [messages[0], *messages[start:]]


def run_once(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds, max RSS in MB, stdout of one process."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {err}")
        out.seek(0)
        return wall, usage.ru_maxrss / 1024, out.read().decode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--anchor", type=int, default=2_000, help="messages in the anchor's file")
    ap.add_argument("--model", default="grok-2-1212")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/cli_fit.json")
    args = ap.parse_args()
    tokenizer = _common.grok1_tokenizer_path()
    if not tokenizer.is_file():
        print(f"SKIPPED: the Grok-1 tokenizer is not at {tokenizer} (set CONVKIT_SHARED_DIR)")
        return
    conv = make_conversation(args.messages, seed=13)
    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "big.jsonl", Path(tmp) / "newest.jsonl"
        big.write_text(dumps_jsonl(conv), encoding="utf-8")
        small.write_text(dumps_jsonl(newest(conv, args.anchor)), encoding="utf-8")

        def argv(path: Path) -> list[str]:
            return [sys.executable, "-m", "convkit", "fit", str(path), "--model", args.model,
                    "--tokenizer", str(tokenizer), "--images", "drop", "--json"]  # fmt: skip

        runs: dict[str, list[tuple[float, float]]] = {"big": [], "anchor": []}
        reports: dict[str, Any] = {}
        for _ in range(args.runs):
            for name, path in (("anchor", small), ("big", big)):
                wall, rss, out = run_once(argv(path))
                runs[name].append((wall, rss))
                reports[name] = json.loads(out)
        sizes = {"big": big.stat().st_size, "anchor": small.stat().st_size}
    bounded = reports["big"]["counted"] <= reports["anchor"]["messages"]
    wall = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    rss = {k: max(r for _, r in v) for k, v in runs.items()}
    ratio = wall["big"] / wall["anchor"]
    met = {
        "wall_ratio": ratio <= TARGET_RATIO,
        "max_rss": rss["big"] < TARGET_RSS_MB,
        "counted_within_anchor": bounded,
    }
    print(f"convkit fit --model {args.model} --tokenizer grok-1 ({args.runs} runs each, medians)")
    _common.print_table(
        ["file", "messages", "MB", "wall s", "max RSS MB", "kept", "counted"],
        [
            [
                name,
                f"{reports[name]['messages']:,}",
                f"{sizes[name] / 1e6:.1f}",
                f"{wall[name]:.2f}",
                f"{rss[name]:.0f}",
                f"{len(reports[name]['kept']):,}",
                f"{reports[name]['counted']:,}",
            ]
            for name in ("anchor", "big")
        ],
    )
    print(
        f"wall time {ratio:.2f}x the anchor's (target <= {TARGET_RATIO}x): {met['wall_ratio']}; "
        f"max RSS {rss['big']:.0f} MB (target < {TARGET_RSS_MB} MB): {met['max_rss']}; "
        f"counted {reports['big']['counted']:,} of {reports['big']['messages']:,} messages "
        f"(at most the anchor's {reports['anchor']['messages']:,}): {bounded}"
    )
    if not args.no_write:
        path = _common.write_result(
            "cli_fit",
            {
                "model": args.model,
                "files": {
                    name: {
                        "messages": reports[name]["messages"],
                        "bytes": sizes[name],
                        "wall_s_median": round(wall[name], 3),
                        "wall_s_runs": [round(w, 3) for w, _ in runs[name]],
                        "max_rss_mb": round(rss[name], 1),
                        "kept": len(reports[name]["kept"]),
                        "counted": reports[name]["counted"],
                    }
                    for name in ("anchor", "big")
                },
                "ratio_wall": round(ratio, 3),
                "targets": {"wall_ratio_max": TARGET_RATIO, "max_rss_mb": TARGET_RSS_MB, "met": met},
            },
        )
        print(f"wrote {path}")
    if not all(met.values()):
        raise SystemExit("a target was missed")


if __name__ == "__main__":
    main()
