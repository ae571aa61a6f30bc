"""Benchmark: accuracy and speed of ``convkit.EstimateCounter``'s estimates against Grok-1's tokenizer.

With the shared Grok-1 tokenizer (``../shared/tokenizers/grok-1.tokenizer.json``
or ``$CONVKIT_SHARED_DIR/tokenizers/...``; the benchmark is skipped, with the
reason printed, when it is absent) as the reference, counting ``len(enc.ids)``
of ``Tokenizer.encode_batch(texts, add_special_tokens=False)``, this measures:

* accuracy, over the committed corpus ``benchmarks/corpus/estimate.jsonl``
  (33 categories x 120 strings, made by ``estimate_corpus.py``) plus a
  "prose (manual pages)" category (real English, not generated; the word
  table's frequencies came from the same pages, so it checks the rules, not
  the vocabulary) read at run time from the gzip'd pages in
  /usr/share/man/man1 (about 300 English paragraphs of 200-1500 characters;
  nothing of them is written but the figures; left out when the folder is
  absent), of three estimates side by side: the new default
  ``EstimateCounter()`` (the character-class estimate of
  ``convkit._estimate``), the old default ``EstimateCounter(2.5,
  margin=0.1)`` (``ceil(utf8_bytes / 2.5)``) and
  ``EstimateCounter.upper_bound()`` (``bytes + 1``). Per category: strings,
  strings the estimate undercounts (reference > estimate: must be 0), worst
  and mean per-string ratio reference / estimate, and total estimate / total
  reference ("over");
* the share of the window English prose gets: reference / estimate summed
  over the prose categories (1 / over), and the same after the budget's
  division by ``1 + margin`` (what a fit actually leaves for content);
* speed: ``convkit._estimate.estimate_tokens_many(texts)`` and
  ``EstimateCounter().count_texts(texts)`` on a fresh counter (empty cache)
  over all corpus texts, against the anchor, raw ``encode_batch`` over the
  same texts, in the same run (``_common.time_calls`` medians).

Run: ``/work/venv/bin/python benchmarks/bench_estimate.py [--no-write]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

import convkit
from convkit._estimate import estimate_tokens_many

CORPUS = _common.BENCH_DIR / "corpus" / "estimate.jsonl"
MAN_DIR = Path("/usr/share/man/man1")
MAN_CATEGORY = "prose (manual pages)"
MAN_PARAGRAPHS = 300
PROSE = ("prose", MAN_CATEGORY)
ESTIMATES = {
    "new": convkit.EstimateCounter,
    "old": lambda: convkit.EstimateCounter(2.5, margin=0.1),
    "bound": convkit.EstimateCounter.upper_bound,
}
LABELS = {
    "new": "new default EstimateCounter()",
    "old": "old default EstimateCounter(2.5, margin=0.1)",
    "bound": "EstimateCounter.upper_bound()",
}

# groff escapes: fonts, sizes, named characters and strings, zero-width marks; 2: printed as is
_GROFF = re.compile(
    r"\\(?:f(?:\(..|\[[^]]*\]|.)|s[-+]?\d|\((..)|\[[^]]*\]|\*(?:\(..|\[[^]]*\]|.)|[&|^%c,/]|([-e .`]))"
)
_NAMED = {"aq": "'", "dq": '"', "em": "-", "en": "-", "hy": "-", "bu": "*", "lq": '"', "rq": '"'}
_FONT_MACROS = {".B", ".I", ".BR", ".RB", ".IR", ".RI", ".BI", ".IB", ".SM", ".SB"}


def load_corpus() -> dict[str, list[str]]:
    cats: dict[str, list[str]] = {}
    with CORPUS.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            cats.setdefault(row["category"], []).append(row["text"])
    return cats


def _unescape(line: str) -> str:
    return _GROFF.sub(lambda m: _NAMED.get(m[1], "") if m[1] else {"e": "\\"}.get(m[2], m[2] or ""), line)


def _paragraphs(page: str) -> list[str]:
    """English paragraphs of one man page's source: text lines between macro lines, unescaped."""
    out: list[str] = []
    cur: list[str] = []
    section, literal = "", False
    for line in [*page.splitlines(), ".PP"]:
        if line.startswith((".", "'")):
            macro = line.split(maxsplit=1)[0] if line.strip() else "."
            if macro in (".nf", ".EX"):
                literal = True
            elif macro in (".fi", ".EE"):
                literal = False
            if macro in _FONT_MACROS:  # a word or two in another font: the sentence goes on
                args = [a or b for a, b in re.findall(r'"([^"]*)"|((?:\\ |\S)+)', line)[1:]]
                if not literal:
                    cur.append(_unescape(("" if len(macro) == 3 else " ").join(args)))
                continue
            text = " ".join(cur).strip()
            cur = []
            if 200 <= len(text) <= 1500 and text.isascii() and "SYNOPSIS" not in section:
                letters = sum(c.isalpha() or c == " " for c in text)
                if letters >= 0.88 * len(text) and text.count(". ") >= 1:
                    out.append(text)
            if macro in (".SH", ".Sh"):
                section = line.split(maxsplit=1)[-1].strip('"').upper()
        elif not literal and line.strip():
            cur.append(_unescape(line).strip())
    return out


def man_prose(limit: int = MAN_PARAGRAPHS) -> list[str]:
    """About ``limit`` distinct paragraphs, pages in a fixed pseudo-random order, at most two a
    command family (``gcloud``, ``git``: most pages here are gcloud's, much alike)."""
    pages = sorted(p for p in MAN_DIR.glob("*.gz") if p.is_file())
    random.Random(20261202).shuffle(pages)
    taken: dict[str, int] = {}
    out: dict[str, None] = {}
    for p in pages:
        family = re.split(r"[-_.]", p.name, maxsplit=1)[0]
        if taken.get(family, 0) >= 2:
            continue
        try:
            src = gzip.decompress(p.read_bytes()).decode("utf-8")
        except (OSError, EOFError, UnicodeDecodeError):
            continue
        for text in _paragraphs(src):
            if text not in out and taken.get(family, 0) < 2:
                out[text] = None
                taken[family] = taken.get(family, 0) + 1
        if len(out) >= limit:
            break
    return list(out)[:limit]


def figures(ref: list[int], est: list[int]) -> dict[str, Any]:
    ratios = [r / e if e else (1.0 if r == 0 else float("inf")) for r, e in zip(ref, est, strict=True)]
    return {
        "strings": len(ref),
        "under": sum(r > e for r, e in zip(ref, est, strict=True)),
        "worst_ratio": round(max(ratios), 4),
        "mean_ratio": round(sum(ratios) / len(ratios), 4),
        "overcount": round(sum(est) / sum(ref), 4),
        "reference_tokens": sum(ref),
        "estimate_tokens": sum(est),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/estimate.json")
    args = ap.parse_args()
    tok = _common.grok1_tokenizer_or_skip()
    if tok is None:
        return
    path = _common.grok1_tokenizer_path()
    cats = load_corpus()
    corpus_texts = [t for texts in cats.values() for t in texts]
    print(f"convkit {convkit.__version__}; tokenizer {path.name}; corpus {CORPUS.name}: ", end="")
    print(f"{len(cats)} categories, {len(corpus_texts):,} strings")
    man = man_prose() if MAN_DIR.is_dir() else []
    if man:
        cats[MAN_CATEGORY] = man
        print(f"real prose: {len(man)} paragraphs of English from {MAN_DIR}")
    else:
        print(f"note: no manual pages in {MAN_DIR}, so the manual-page prose is left out")

    results: dict[str, dict[str, Any]] = {}
    for cat, texts in cats.items():
        ref = [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]
        results[cat] = {k: figures(ref, make().count_texts(texts)) for k, make in ESTIMATES.items()}

    rows = []
    for cat, r in results.items():
        row = [cat, str(r["new"]["strings"])]
        for k in ESTIMATES:
            f = r[k]
            row += [
                str(f["under"]),
                f"{f['worst_ratio']:.2f}",
                f"{f['mean_ratio']:.2f}",
                f"{f['overcount']:.2f}",
            ]
        rows.append(row)
    print()
    heads = ["under", "worst", "mean", "over"]
    _common.print_table(["category", "n", *(f"{k}:{h}" for k in ESTIMATES for h in heads)], rows)
    print("  (under = strings where reference > estimate; worst / mean = per-string reference / estimate;")
    print("   over = total estimate / total reference)")
    for k, label in LABELS.items():
        under = sum(r[k]["under"] for r in results.values())
        worst = max(r[k]["worst_ratio"] for r in results.values())
        print(f"  {k}: {label}: {under} undercounted strings, worst ratio {worst:.2f}")

    share: dict[str, dict[str, Any]] = {}
    print("\nshare of the window English prose gets (reference / estimate; after the budget's 1 + margin):")
    for cat in (c for c in PROSE if c in results):
        share[cat] = {}
        cells = []
        for k, make in ESTIMATES.items():
            s = 1 / results[cat][k]["overcount"]
            m = s / (1 + make().margin)
            share[cat][k] = {"share": round(s, 4), "share_with_margin": round(m, 4)}
            cells.append(f"{k} {s:.0%} ({m:.0%})")
        print(f"  {cat}: " + ", ".join(cells))

    fresh = [convkit.EstimateCounter()]

    def new_counter() -> None:
        fresh[0] = convkit.EstimateCounter()

    timings = {
        "encode_batch": _common.time_calls(lambda: tok.encode_batch(corpus_texts, add_special_tokens=False)),
        "estimate_tokens_many": _common.time_calls(lambda: estimate_tokens_many(corpus_texts)),
        "count_texts_fresh": _common.time_calls(
            lambda: fresh[0].count_texts(corpus_texts), setup=new_counter
        ),
    }
    anchor = timings["encode_batch"]["median_ns"]
    speed = {k: round(v["median_ns"] / anchor, 4) for k, v in timings.items()}
    print(f"\nspeed over the {len(corpus_texts):,} corpus strings (medians, time_calls):")
    for k, v in timings.items():
        t = _common.fmt_ns(v["median_ns"])
        print(f"  {k:<22} {t:>9}  ({v['runs']} runs)  / encode_batch {speed[k]:.3f}")

    if not args.no_write:
        out = _common.write_result(
            "estimate",
            {
                "tokenizer": path.name,
                "corpus": str(CORPUS.relative_to(_common.REPO_DIR)),
                "estimates": LABELS,
                "method": "reference = len(ids) of Tokenizer.encode_batch(texts, add_special_tokens=False); "
                "per category: strings, under (reference > estimate), worst and mean per-string "
                "reference/estimate, overcount = total estimate / total reference; speed: time_calls "
                "medians over all corpus strings, fresh counter per count_texts run",
                "categories": results,
                "prose_window_share": share,
                "timings": timings,
                "time_over_encode_batch": speed,
            },
        )
        print(f"wrote {out.relative_to(_common.REPO_DIR)}")


if __name__ == "__main__":
    main()
