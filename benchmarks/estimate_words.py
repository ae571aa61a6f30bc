"""Rebuild ``convkit/_estimate_words.txt``, the word table of the default estimate.

The table lists English words with what the reference tokenizer (Grok-1's,
from ``../shared``) spends on each: after one space and after anything else
(a newline, a digit, punctuation), in lower case, capitalized and in upper case,
and capitalized or in upper case right after a letter (inside ``getUserName``). Words come
from English text found on this machine: the manual pages, the standard
library's docstrings and the installed packages' descriptions; a word must
occur at least ``--min-count`` times there and cost at most two tokens
after a space. Only word frequencies and token costs leave this script;
none of the source text is kept.

    python benchmarks/estimate_words.py            # writes convkit/_estimate_words.txt

Not part of the test run; needs the shared tokenizer.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import importlib
import inspect
import os
import re
import string
import sys
import sysconfig
import warnings
from pathlib import Path

from _common import grok1_tokenizer_path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "convkit" / "_estimate_words.txt"
WORD = re.compile(r"(?<![A-Za-z0-9_\\])[A-Za-z][a-z]+(?![A-Za-z0-9_])")
#: Characters a word may follow without a space; the table's "elsewhere" cost is the worst of these.
AFTER = "(\"'/.-_[<@#*`:=,;!?&|"


def english_words() -> collections.Counter[str]:
    """Word frequencies over the English text this machine has (lower-cased)."""
    counts: collections.Counter[str] = collections.Counter()

    def take(text: str) -> None:
        for w in WORD.findall(text):
            counts[w.lower()] += 1

    for path in glob.glob("/usr/share/man/man[1-8]/*.gz"):
        try:
            with gzip.open(path, "rt", errors="ignore") as f:
                for line in f:
                    if not line.startswith((".", "'")):
                        take(re.sub(r"\\f[BIRP]|\\\(..|\\[-e&]", "", line))
        except OSError:
            continue
    warnings.simplefilter("ignore")
    stdlib = sysconfig.get_paths()["stdlib"]
    for name in sorted(os.listdir(stdlib)):
        if name.endswith(".py") and not name.startswith("_") and name not in ("antigravity.py", "this.py"):
            try:
                module = importlib.import_module(name[:-3])
            except BaseException:
                continue
            for _, obj in inspect.getmembers(module):
                doc = getattr(obj, "__doc__", None)
                if isinstance(doc, str):
                    take(doc)
    for meta in glob.glob(os.path.join(sysconfig.get_paths()["purelib"], "*", "METADATA")):
        with open(meta, errors="ignore") as f:
            take(f.read())
    return counts


def costs(tokenizer: object, words: list[str]) -> list[tuple[int, int]]:
    """(after one space, after anything else) reference tokens of each word."""

    def count(texts: list[str]) -> list[int]:
        return [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]  # type: ignore[attr-defined]

    base = count(["x\n"])[0]  # the newline ends a pre-token, so what follows starts afresh
    spaced = [n - base for n in count([f"x\n {w}" for w in words])]
    bare = [n - base for n in count([f"x\n{w}" for w in words])]
    for ch in AFTER:
        bare = [
            max(b, n - base - 1) for b, n in zip(bare, count([f"x\n{ch}{w}" for w in words]), strict=True)
        ]
    return list(zip(spaced, bare, strict=True))


def after_letter(tokenizer: object, words: list[str]) -> list[int]:
    """Reference tokens of each word right after a letter (``getUser``, ``RepoTags``), worst letter.

    The letter is the previous piece's, which keeps its own token unless the two merge across the
    case change (``oT`` in ``RepoTags``): then the merged token is the word's.
    """
    enc = tokenizer.encode_batch  # type: ignore[attr-defined]
    base = len(enc(["x\n"], add_special_tokens=False)[0].ids)
    worst = [0] * len(words)
    for c in string.ascii_lowercase:  # a later piece follows a lower-case letter (CREATECar is priced apart)
        for i, e in enumerate(enc([f"x\n{c}{w}" for w in words], add_special_tokens=False)):
            pieces = e.tokens[base:]
            worst[i] = max(worst[i], len(pieces) - (pieces[0] == c))
    return worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--min-count", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    path = grok1_tokenizer_path()
    if not path.is_file():
        sys.exit(f"needs the reference tokenizer at {path}")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    freq = english_words()
    words = sorted(w for w, c in freq.items() if c >= args.min_count and 2 <= len(w) <= 24)
    lower = costs(tok, words)
    title = costs(tok, [w.capitalize() for w in words])
    upper = costs(tok, [w.upper() for w in words])
    joined = zip(
        after_letter(tok, [w.capitalize() for w in words]),
        after_letter(tok, [w.upper() for w in words]),
        strict=True,
    )
    groups: dict[str, list[str]] = collections.defaultdict(list)
    unknown = lambda n: (4 * n + 4) // 5  # noqa: E731 - the estimate's rule for words it does not know
    for w, lo, ti, up, after in zip(words, lower, title, upper, joined, strict=True):
        every = (*lo, *ti, *up, *after)
        if lo[0] > 2 or max(every) > 9 or min(every) < 1:
            continue
        if min(every) >= unknown(len(w)) and all(c == unknown(len(w)) for c in every):
            continue  # the rule for unknown words says the same
        groups["".join(map(str, every))].append(w)
    lines = [
        "# convkit's estimate word table (benchmarks/estimate_words.py); see convkit/_estimate.py.",
        "# Each line: eight digits, then words. The digits are the reference tokens of the word after one",
        "# space and after anything else: in lower case, capitalized, and in upper case; then capitalized",
        "# and in upper case right after a letter (the second piece of getUser or fooBAR).",
    ]
    for code in sorted(groups):
        lines.append(f"{code} {' '.join(groups[code])}")
    args.out.write_text("\n".join(lines) + "\n", encoding="ascii")
    total = sum(map(len, groups.values()))
    print(f"{total} words from {len(freq)} distinct English words -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
