"""Benchmark: what one ``Session.send`` costs the database, counted at the driver.

A conversation of ``--history`` messages is stored in a fresh SQLite file by
a store that counts messages when it writes them; then
``--turns`` turns go through ``convkit.Session.send`` against the xAI
stand-in (:class:`convkit.testing.XAIStandIn`, a real HTTP server on
127.0.0.1). For each turn after the first it counts, on the store's own
connections, every statement SQLite runs (its trace callback, so the
window's statements on the driver's cursor count too, and ``COMMIT``), and
the transactions begun (the ``BEGIN`` statements), and reports the
median and maximum of each per turn (statements are those that read or
write; with ``BEGIN``/``COMMIT`` too is printed beside them), against the target of issue 11: at most
3 transactions and at most 10 statements on SQLite once the conversation
exists. Nothing is timed (the machine is shared and noisy); counts are
exact.

    python benchmarks/bench_turn.py            # SQLite, 20 turns over 200 stored messages
    python benchmarks/bench_turn.py --no-write # print only
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import _common
import sqlalchemy as sa

import convkit
from convkit.testing import XAIStandIn

TARGET_TRANSACTIONS = 3
TARGET_STATEMENTS = 10
#: Transaction control, counted apart from the statements that read and write (BEGIN opens one).
CONTROL = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}


def count_turns(url: str, history: int, turns: int) -> dict[str, Any]:
    """Statements and transactions of each turn (the first turn is left out: it warms caches)."""
    per_turn: list[tuple[int, int]] = []
    counter = convkit.EstimateCounter()  # counted when written, as a chatbot's store is configured
    with XAIStandIn() as xai, convkit.Store(url, counters=[counter]) as store:
        conv = store.create_conversation(title="bench-turn")
        store.extend(
            conv.id,
            [
                convkit.Message.user(f"question {i}")
                if i % 2 == 0
                else convkit.Message.assistant(f"answer {i}")
                for i in range(history)
            ],
        )
        seen = {"statements": 0, "control": 0, "transactions": 0}

        def on_statement(sql: str) -> None:  # every statement SQLite runs, raw cursors included
            word = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
            if word in CONTROL:
                seen["control"] += 1
                seen["transactions"] += word == "BEGIN"
            else:
                seen["statements"] += 1

        sa.event.listen(
            store.engine, "connect", lambda dbapi_conn, _: dbapi_conn.set_trace_callback(on_statement)
        )
        store.engine.dispose()  # connections opened from now on trace their statements
        with convkit.XAIClient(api_key=xai.api_key, base_url=xai.base_url) as client:
            session = convkit.Session(store, conv.id, model="grok-2-1212", client=client, counter=counter)
            for t in range(turns + 1):
                seen["statements"] = seen["control"] = seen["transactions"] = 0
                session.send(f"turn {t}: what next?")
                if t:
                    per_turn.append((seen["transactions"], seen["statements"], seen["control"]))
    transactions = [t for t, _, _ in per_turn]
    statements = [s for _, s, _ in per_turn]
    everything = [s + c for _, s, c in per_turn]
    return {
        "turns": len(per_turn),
        "transactions_median": statistics.median(transactions),
        "transactions_max": max(transactions),
        "statements_median": statistics.median(statements),
        "statements_max": max(statements),
        "with_begin_commit_median": statistics.median(everything),
        "with_begin_commit_max": max(everything),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--history", type=int, default=200, help="messages stored before the turns")
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/turn.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = count_turns(f"sqlite:///{Path(tmp) / 'turn.db'}", args.history, args.turns)
    met = sqlite["transactions_max"] <= TARGET_TRANSACTIONS and sqlite["statements_max"] <= TARGET_STATEMENTS
    print(f"convkit {convkit.__version__}: Session.send on SQLite, {args.history} stored messages")
    print(
        f"  per turn: transactions median {sqlite['transactions_median']}, max {sqlite['transactions_max']}; "
        f"statements median {sqlite['statements_median']}, max {sqlite['statements_max']} "
        f"(with BEGIN/COMMIT: median {sqlite['with_begin_commit_median']}, "
        f"max {sqlite['with_begin_commit_max']}; {sqlite['turns']} turns)"
    )
    print(
        f"target: at most {TARGET_TRANSACTIONS} transactions and {TARGET_STATEMENTS} statements a turn: {met}"
    )
    if not args.no_write:
        path = _common.write_result("turn", {"sqlite": sqlite, "targets": {"met": met}})
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
