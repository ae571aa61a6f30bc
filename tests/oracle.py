"""A deliberately simple reference implementation of ``fit(strategy="trim")``.

It is written from the rules of DESIGN section 3, not from convkit's
prefix sums and bisection, and it is slow on purpose (quadratic and worse):
every candidate prompt is priced by calling ``counter.count_messages`` on the
exact list of messages it would send. Differential tests compare
``convkit.fit`` with it.

The rules, as the reference reads them:

* Units. Message k and message k+1 belong to the same unit when some tool
  message j answers a call made by assistant message i with i <= k < j. So a
  call and all its results form one contiguous unit, together with whatever
  arrived between them (a user turn, a system note, another tool group).
* Must keep: every unit holding a pinned message or a leading system message
  (a system message before the first non-system message), and every unit from
  the one holding the newest non-system message to the end (the newest
  message, plus the turn it belongs to, so the prompt is never system-only).
* The rest are droppable. Keep droppable units newest first while the prompt
  still fits; stop at the first that does not (older ones are dropped too:
  trimming drops the oldest first).
* When the must-keep units alone do not fit, the answer is "cannot fit",
  with the number of tokens they need.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from convkit import Message, ModelSpec, TokenCounter, get_model


@dataclass(frozen=True)
class OracleResult:
    """``kept`` indices, or ``kept is None`` when the must-keep part needs ``required`` > ``budget``."""

    kept: list[int] | None
    prompt_tokens: int | None
    required: int
    budget: int


def budget_for(spec: ModelSpec, reserve: int, margin: float) -> int:
    """(context window - reserve) / (1 + margin), rounded down."""
    return math.floor((spec.context_window - reserve) / (1 + margin))


def units(messages: Sequence[Message]) -> list[list[int]]:
    """The trim units, as lists of message indices, oldest first."""
    n = len(messages)
    made_by: dict[str, int] = {}
    links: list[tuple[int, int]] = []
    for j, m in enumerate(messages):
        if m.role == "tool":
            assert m.tool_call_id is not None
            links.append((made_by[m.tool_call_id], j))
        for call in m.tool_calls:
            made_by[call.id] = j
    out: list[list[int]] = []
    for k in range(n):
        joined_to_previous = k > 0 and any(i <= k - 1 < j for i, j in links)
        if joined_to_previous:
            out[-1].append(k)
        else:
            out.append([k])
    return out


def must_keep_flags(messages: Sequence[Message]) -> list[bool]:
    """Per message: pinned, or a leading system message."""
    flags = []
    leading = True
    for m in messages:
        if m.role != "system":
            leading = False
        flags.append(m.pinned or (leading and m.role == "system"))
    return flags


def trim(
    messages: Sequence[Message],
    *,
    model: str | ModelSpec,
    counter: TokenCounter,
    reserve: int = 0,
    tools: Sequence[Mapping[str, Any]] | None = None,
    margin: float | None = None,
) -> OracleResult:
    """The reference answer for ``fit`` (messages already past the image policy)."""
    spec = get_model(model)
    budget = budget_for(spec, reserve, counter.margin if margin is None else margin)
    speakers = [i for i, m in enumerate(messages) if m.role != "system"]
    if not speakers:
        raise ValueError("a conversation of system messages only has nothing to answer")
    all_units = units(messages)
    flags = must_keep_flags(messages)
    tail = next(u for u, members in enumerate(all_units) if speakers[-1] in members)

    def cost(chosen: list[list[int]]) -> int:
        indices = sorted(i for unit in chosen for i in unit)
        return counter.count_messages([messages[i] for i in indices], model=spec, tools=tools)

    keep = [members for u, members in enumerate(all_units) if u >= tail or any(flags[i] for i in members)]
    droppable = [
        members for u, members in enumerate(all_units) if u < tail and not any(flags[i] for i in members)
    ]
    required = cost(keep)
    if required > budget:
        return OracleResult(kept=None, prompt_tokens=None, required=required, budget=budget)
    for members in reversed(droppable):
        if cost([*keep, members]) > budget:
            break
        keep.append(members)
    kept = sorted(i for unit in keep for i in unit)
    return OracleResult(kept=kept, prompt_tokens=cost(keep), required=required, budget=budget)
