"""Benchmark: what the cut policy costs in billed input, with xAI's prompt cache (issue 12).

A ``--turns`` (default 2,000) turn conversation of realistic user turns (the
user messages of ``_data.py``'s conversations: short questions, sometimes a
pasted document or a stack trace, a few images, two pinned messages) goes
through ``convkit.Session`` against :class:`convkit.testing.XAIStandIn` (a
real HTTP server on 127.0.0.1), once with ``policy="maximal"`` and once with
``policy="stable"``, for two models:

* grok-2-vision-1212 (the seed's conservative 8192-token window);
* grok-4.3's prices in a 262,144-token window (``grok-4.3@256k``: the size
  the issue names; grok-4.3 itself has 1,000,000 tokens, which 2,000 turns
  never fill).

The stand-in caches like xAI (per ``x-grok-conv-id``, whole 128-token blocks
of the longest message prefix shared with that conversation's recent
requests) and every ``Session`` sends its conversation's key. Billed input is
each reply's usage priced as xAI bills it (``ModelSpec.estimate_cost``: cached
prompt tokens at the cached-input price, images at the image price, every token
at the tier's price once a prompt reaches 200k tokens; grok-2-vision-1212
lists no cached price, so, as DESIGN section 9 says, a quarter of the input
price is used, and printed).

It reports, per model and policy: billed input dollars, the stable policy's
share of the maximal one's (target: at most 45%), the cached share of prompt
tokens, the number of cuts (turns whose window start moved), the mean prompt
tokens sent, and whether every request fit (the stand-in refuses a prompt
over its window, and recorded no error). Nothing is timed.

    python benchmarks/bench_cache.py            # 2,000 turns, writes results/cache.json
    python benchmarks/bench_cache.py --quick    # 300 turns, writes nothing
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import attrs
from _common import print_table, write_result
from _data import user_turns

import convkit
from convkit import Message, ModelSpec, Session, Store, XAIClient
from convkit.testing import XAIStandIn

TARGET = 0.45


def models() -> list[tuple[ModelSpec, ModelSpec, str]]:
    """(the spec sessions use, the spec the bill is priced with, where the cached price came from)."""
    vision = convkit.get_model("grok-2-vision-1212")
    g43 = convkit.get_model("grok-4.3")
    big = attrs.evolve(g43, name="grok-4.3@256k", context_window=262_144, aliases=())
    assert g43.price_cached_in is not None
    return [
        (
            vision,
            attrs.evolve(vision, price_cached_in=vision.price_text_in / 4),
            "a quarter of the input price (none listed)",
        ),
        (big, big, "grok-4.3's cached-input price and its tier from 200k prompt tokens"),
    ]


def run(spec: ModelSpec, bill: ModelSpec, policy: str, asks: list[Message], db: Path) -> dict[str, Any]:
    """One conversation through a Session with ``policy``; the bill and the cuts from the stand-in."""
    billed = 0.0
    prompts: list[int] = []
    cached = 0
    cuts = 0
    refused = 0  # requests beyond one a turn (a prompt the stand-in refused, then re-fitted)
    errors: list[BaseException] = []
    previous: list[Any] | None = None
    with (
        XAIStandIn() as xai,
        XAIClient(api_key=xai.api_key, base_url=xai.base_url, max_retries=0) as client,
        Store(f"sqlite:///{db}", counters=[convkit.EstimateCounter()]) as store,
    ):
        cid = store.create_conversation(title=f"bench-cache {spec.name} {policy}").id
        session = Session(store, cid, model=spec, client=client, policy=policy)  # type: ignore[arg-type]
        for message in asks:
            u = session.send(message).usage
            prompts.append(u.prompt_tokens)
            cached += u.cached_tokens
            billed += bill.estimate_cost(
                u.prompt_tokens, image_tokens=u.image_tokens, cached_tokens=u.cached_tokens
            )
            bodies = xai.chat_requests  # forgotten every turn (bounded memory); errors kept first
            errors += xai.errors
            refused += len(bodies) - 1
            xai.reset()
            for body in bodies:
                sent = body["messages"]
                if previous is not None and sent[: len(previous)] != previous:
                    cuts += 1  # the prompt no longer starts with the previous one: its prefix moved
                previous = sent
        usage = store.usage(cid)
    return {
        "billed_input_usd": round(billed, 6),
        "prompt_tokens": sum(prompts),
        "cached_tokens": cached,
        "cached_share": round(cached / sum(prompts), 4) if prompts else 0.0,
        "mean_prompt_tokens": round(statistics.mean(prompts), 1),
        "cuts": cuts,
        "turns": len(asks),
        "every_request_fit": not errors and refused == 0 and usage.turns == len(asks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="300 turns, write nothing")
    args = parser.parse_args()
    turns = 300 if args.quick else args.turns
    asks = user_turns(turns, seed=5)
    results: dict[str, Any] = {}
    rows: list[list[str]] = []
    met = True
    with tempfile.TemporaryDirectory(prefix="convkit-bench-cache-") as tmp:
        for spec, bill, source in models():
            if spec.name not in {s.name for s in convkit.list_models()}:
                convkit.register_model(spec)  # the stand-in serves registered models
            per: dict[str, Any] = {}
            for policy in ("maximal", "stable"):
                print(f"{spec.name}: {turns} turns, policy={policy}", flush=True)
                per[policy] = run(spec, bill, policy, asks, Path(tmp) / f"{spec.name}-{policy}.db")
            share = per["stable"]["billed_input_usd"] / per["maximal"]["billed_input_usd"]
            fit_all = per["stable"]["every_request_fit"] and per["maximal"]["every_request_fit"]
            met = met and share <= TARGET and fit_all
            results[spec.name] = {
                **per,
                "context_window": spec.context_window,
                "cached_price_per_million": bill.price_cached_in,
                "cached_price_source": source,
                "stable_over_maximal_billed_input": round(share, 4),
            }
            for policy in ("maximal", "stable"):
                r = per[policy]
                rows.append(
                    [
                        spec.name,
                        policy,
                        f"${r['billed_input_usd']:.4f}",
                        f"{r['cached_share']:.1%}",
                        str(r["cuts"]),
                        f"{r['mean_prompt_tokens']:,.0f}",
                        "yes" if r["every_request_fit"] else "NO",
                    ]
                )
            rows.append(
                [spec.name, "stable / maximal", f"{share:.1%} (target <= {TARGET:.0%})", "", "", "", ""]
            )
    print_table(["model", "policy", "billed input", "cached", "cuts", "mean prompt", "all fit"], rows)
    if args.quick:
        print("(--quick: nothing written)")
        return
    path = write_result("cache", {"turns": turns, "models": results, "target": TARGET, "target_met": met})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
