"""Shared helpers for the benchmarks: timing, machine info, result files, shared files.

Timing: ``time_calls`` runs a few warm-up calls, then times each call with
``time.perf_counter_ns`` while the garbage collector is disabled (collected
once before), and reports the median (plus min, p10, p90 and the number of
runs). It runs at least ``min_runs`` times and stops after ``max_runs`` or,
once ``min_runs`` are done, after ``max_seconds``.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
#: the modules the benchmarks exercise: "+dirty" in a result means one differed from the commit
CORE_FILES = tuple(
    f"convkit/{m}.py" for m in ("counting", "fitting", "history", "images", "messages", "models")
)


def shared_dir() -> Path:
    """``$CONVKIT_SHARED_DIR`` or ``../shared`` beside the repository."""
    env = os.environ.get("CONVKIT_SHARED_DIR")
    return Path(env) if env else REPO_DIR.parent / "shared"


def grok1_tokenizer_path() -> Path:
    return shared_dir() / "tokenizers" / "grok-1.tokenizer.json"


def grok1_tokenizer_or_skip() -> Any:
    """The Grok-1 ``tokenizers.Tokenizer``, or ``None`` after printing why the benchmark is skipped."""
    path = grok1_tokenizer_path()
    if not path.is_file():
        print(
            f"SKIPPED: the Grok-1 tokenizer is not at {path}; put the shared folder beside the repo "
            "or set CONVKIT_SHARED_DIR to a folder holding tokenizers/grok-1.tokenizer.json"
        )
        return None
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


def time_calls(
    fn: Callable[[], object],
    *,
    min_runs: int = 5,
    max_runs: int = 200,
    max_seconds: float = 5.0,
    warmup: int = 2,
    setup: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Time ``fn()``; ``setup()`` (untimed) runs before each call. Returns ns statistics."""
    for _ in range(warmup):
        if setup is not None:
            setup()
        fn()
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    samples: list[int] = []
    try:
        deadline = time.perf_counter_ns() + int(max_seconds * 1e9)
        while len(samples) < max_runs and (len(samples) < min_runs or time.perf_counter_ns() < deadline):
            if setup is not None:
                setup()
            t0 = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - t0)
    finally:
        if enabled:
            gc.enable()
    gc.collect()
    samples.sort()
    n = len(samples)
    return {
        "runs": n,
        "median_ns": int(statistics.median(samples)),
        "min_ns": samples[0],
        "p10_ns": samples[n // 10],
        "p90_ns": samples[min(n - 1, (n * 9) // 10)],
    }


def fmt_ns(ns: float) -> str:
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} us"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_DIR), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", *CORE_FILES],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def machine_info() -> dict[str, Any]:
    import convkit

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    return {
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "cpu_model": _cpu_model(),
        "loadavg_1_5_15min": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "convkit": convkit.__version__,
        "convkit_commit": _git_commit(),
        "versions": {
            d: _version(d) for d in ("langchain-core", "tokenizers", "attrs", "pillow", "langsmith")
        },
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` (name, machine info, then the payload)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    doc = {"name": name, "machine": machine_info(), **payload}
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return path


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
