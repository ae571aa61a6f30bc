"""The character-class token estimate behind :class:`convkit.EstimateCounter`.

A byte-level BPE tokenizer (Grok's) spends very different numbers of tokens
on different kinds of text: a common English word is one token, a digit is
one token, a rare character falls back to one token per UTF-8 byte, a run
of sixteen spaces is one token. A single bytes-per-token rate therefore
undercounts numbers and non-Latin text by 2-3x while overcounting prose.
This module cuts a text into runs by character class and prices each run by
its own rule:

=====================  =====================================================
run                    tokens
=====================  =====================================================
ASCII letters          split into word pieces (``getUserId`` -> get, User,
                       Id); a piece found in the word table costs what the
                       table says (1 for most: ``the``, ``window``); any
                       other piece ``ceil(0.8 * len)`` (random letters cost
                       up to ``0.76 * len`` in the reference); capitals
                       right before a capitalized piece (``HTTPServer``)
                       and a lone lower-case letter before capitals
                       (``cACertificate``) are priced apart
digits                 one per digit
spaces                 ``ceil(n / 16)``; one space before a word is part of
                       the word's token
newlines / tabs        ``ceil(n / 10)`` / ``ceil(n / 8)``
ASCII punctuation      one per character; one space before it is free
control characters     one per character
other characters       their UTF-8 bytes (the byte fallback)
=====================  =====================================================

plus one token for the space the tokenizer puts before every text when the
text does not start with a word.

The word table (``_estimate_words.txt``) lists English words that occur in
English text on a developer's machine and cost at most two reference
tokens after a space, with their cost after a space and after anything
else, in lower case, capitalized and upper case, and as a later piece of an
identifier (where the reference may merge letters across the case change:
``RepoTags`` is ``Rep oT ags``); ``benchmarks/estimate_words.py`` rebuilds
it, and a digest of it is part of the counter's identity. The rates and the
table were fitted against Grok-1's tokenizer (the reference this project
can measure offline); ``benchmarks/bench_estimate.py`` reports, per
category of the generated corpus in ``benchmarks/corpus/``, the worst and
mean ratio of the reference's count to this estimate.

Every rule above is an upper bound in practice, not in theory. What is
known to slip: an identifier whose pieces the reference merges two letters
deep across a case change (``GetIdentityProviderByIdentifier``: ``ById``),
by one token; 3 of the 1.3 million distinct identifiers in this machine's
Python, C and JavaScript sources, and none of 210,000 chunks of its source
and configuration files. Non-English text in Latin script is
overcounted (2-2.5x: its accented letters cost their bytes and its words
are not in the table). The overflow re-fit and calibration stay in place.
"""

from __future__ import annotations

import functools
import hashlib
import re
from importlib import resources

__all__ = ["RATES_VERSION", "estimate_tokens", "estimate_tokens_many", "table_digest"]

#: Version of the rules above; with :func:`table_digest`, part of the counter's identity.
RATES_VERSION = "c2"
#: Texts longer than this are scanned run by run, not as one list of runs (bounded memory).
_LONG = 1 << 18

_RUNS = re.compile(
    r"( *)([A-Za-z]+)"  # 1, 2: spaces, then a letter run
    r"|( *)([!-/:-@\[-`{-~]+)"  # 3, 4: spaces, then ASCII punctuation
    r"|( +)"  # 5: spaces before anything else
    r"|([0-9]+)"  # 6
    r"|(\n+)"  # 7
    r"|(\t+)"  # 8
    r"|([^\x00-\x7f]+)"  # 9: anything outside ASCII
    r"|([\x00-\x08\x0b-\x1f\x7f]+)"  # 10: control characters
)
_PIECES = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")

#: word -> its cost (after one space, after anything else) in lower case, capitalized and upper case,
#: then capitalized and upper case right after a letter (a later piece of an identifier)
_Costs = tuple[int, int, int, int, int, int, int, int]


@functools.cache
def _table_text() -> str:
    return resources.files(__package__).joinpath("_estimate_words.txt").read_text("ascii")


@functools.cache
def table_digest() -> str:
    """A short digest of the word table (a rebuilt table is another counter)."""
    return hashlib.sha256(_table_text().encode("ascii")).hexdigest()[:12]


@functools.cache
def _table() -> dict[str, _Costs]:
    """The word table, read once (lazily: ``import convkit`` does not pay for it)."""
    table: dict[str, _Costs] = {}
    text = _table_text()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            code, _, rest = line.partition(" ")
            costs = tuple(int(d) for d in code)
            if len(costs) != 8:
                raise ValueError(f"bad line in the estimate's word table: {line[:40]!r}")
            for word in rest.split():
                table[word] = costs
    return table


def _unknown(n: int) -> int:
    """Tokens of a letter piece the table does not know: ``ceil(0.8 * n)``."""
    return (4 * n + 4) // 5


def _letters(run: str, spaced: bool, words: dict[str, _Costs]) -> int:
    costs = words.get(run)
    if costs is not None:
        return costs[0] if spaced else costs[1]
    if run.islower():
        return _unknown(len(run))
    pieces = _PIECES.findall(run)
    # xXIBarrier, cACertificate: a lone lower-case letter before capitals merges with them
    total = 1 if len(pieces) > 1 and len(pieces[0]) == 1 and pieces[0].islower() else 0
    i = 0
    while i < len(pieces):
        piece = pieces[i]
        i += 1
        if len(piece) == 1 or piece[1].isupper():  # upper case (SELECT, JSON) or a lone capital
            if i < len(pieces) and pieces[i][0].isupper():
                # CREATECar, SHINEmultiply: where the next word starts is anyone's guess (the
                # reference reads Em ult ip ly), so its capital joins this piece, and its lower-case
                # rest is priced as letters no table word can vouch for
                tail = pieces[i][1:]
                i += 1
                total += _unknown(len(piece) + 1) + _unknown(len(tail))
            else:
                costs = words.get(piece.lower()) if len(piece) > 1 else None
                slot = 7 if i > 1 else 4 if spaced else 5  # after a letter (fooBAR), a space, or else
                total += _unknown(len(piece)) if costs is None else costs[slot]
        else:
            costs = words.get(piece.lower())
            if costs is None:
                total += _unknown(len(piece))
            elif i > 1:  # getUser: the reference may merge across the case change (RepoTags: oT)
                total += costs[6]
            else:
                total += costs[(0 if piece[0].islower() else 2) + (not spaced)]
        spaced = False
    return total


def estimate_tokens(text: str) -> int:
    """The estimated token count of one text (0 for the empty text)."""
    if not text:
        return 0
    words = _table()
    total = 0
    # The tokenizer puts a space before the text: a leading word absorbs it, anything else pays it.
    first = True
    runs = _RUNS.findall(text) if len(text) <= _LONG else (m.groups("") for m in _RUNS.finditer(text))
    for sp, word, psp, punct, spaces, digits, newlines, tabs, other, control in runs:
        if word:
            n = len(sp) + first
            if n <= 1:
                total += _letters(word, n == 1, words)
            else:
                # the spaces' last one may start the word's first token, or end a run of its own
                total += max(
                    (n + 15) // 16 + _letters(word, False, words),
                    (n + 14) // 16 + _letters(word, True, words),
                )
        elif punct:
            # every ASCII punctuation mark has a token with a space before it: one space is free
            total += (len(psp) + first + 14) // 16 + len(punct)
        elif spaces:
            total += (len(spaces) + first + 15) // 16
        else:
            total += first  # the tokenizer's own leading space stands alone
            if digits:
                total += len(digits)
            elif newlines:
                total += (len(newlines) + 9) // 10
            elif tabs:
                total += (len(tabs) + 7) // 8
            elif other:
                total += len(other.encode("utf-8", "surrogatepass"))
            else:
                total += len(control)
        first = False
    return total


def estimate_tokens_many(texts: list[str]) -> list[int]:
    """:func:`estimate_tokens` of each text."""
    return [estimate_tokens(t) for t in texts]
