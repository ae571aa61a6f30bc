"""Load harness: many sessions in several processes on one PostgreSQL database, against one faulty stand-in.

Several worker processes (spawn), each with many concurrent ``AsyncSession`` conversations
(``asyncio.gather``) and a few sync ``Session`` conversations in threads, send turns to ONE
``XAIStandIn`` started here on 127.0.0.1, which answers about 5% of chat requests each with a 429,
a 500, a cut stream (or cut JSON body), an answer slower than the client's timeout, and a
prompt-too-long 400. Clients send the same message again on a typed ``APIError``. Then the
database and the requests the stand-in received are audited (see ``_load_harness.py``), and the
figures are printed and written to ``benchmarks/results/load.json``.

    python benchmarks/bench_load.py                  # defaults: 4 processes x (50 async + 2 sync) x 40 turns
    python benchmarks/bench_load.py --processes 2 --conversations 20 --turns 10 --quick

``--pg-url`` (or ``$CONVKIT_BENCH_PG_URL``) is an admin URL; a scratch database (``--pg-db``,
default ``convkit_load``) is created there and dropped at the end. ``--sqlite`` runs on an SQLite
file instead. ``--quick`` writes nothing. Exit status 1 when the audit finds anything.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import _common
import _load_harness as harness
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

import convkit

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextmanager
def scratch_pg(admin_url: str, name: str) -> Iterator[str]:
    admin = sa.create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        try:
            convkit.upgrade(url)
            yield url
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@contextmanager
def scratch_sqlite() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'load.db'}"
        convkit.upgrade(url)
        yield url


def main() -> int:
    d = harness.LoadConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--processes", type=int, default=d.processes)
    p.add_argument("--conversations", type=int, default=d.conversations, help="AsyncSessions per process")
    p.add_argument(
        "--sync-conversations", type=int, default=d.sync_conversations, help="sync Sessions per process"
    )
    p.add_argument("--turns", type=int, default=d.turns)
    p.add_argument("--fault-rate", type=float, default=d.fault_rate, help="per fault kind (5 kinds)")
    p.add_argument("--timeout", type=float, default=d.timeout, help="the client's timeout, seconds")
    p.add_argument("--client-retries", type=int, default=d.client_retries)
    p.add_argument("--send-retries", type=int, default=d.send_retries)
    p.add_argument("--async-pool", type=int, default=d.async_pool, help="AsyncStore pool_size per process")
    p.add_argument("--sync-pool", type=int, default=d.sync_pool, help="Store pool_size per process")
    p.add_argument(
        "--no-calibrate",
        action="store_true",
        help="sessions with calibrate=False (no calibration row writes)",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--pg-url", default=os.environ.get("CONVKIT_BENCH_PG_URL", DEFAULT_PG))
    p.add_argument("--pg-db", default="convkit_load")
    p.add_argument("--sqlite", action="store_true", help="an SQLite file instead of PostgreSQL")
    p.add_argument("--quick", action="store_true", help="write no result file")
    a = p.parse_args()
    cfg = harness.LoadConfig(
        processes=a.processes,
        conversations=a.conversations,
        sync_conversations=a.sync_conversations,
        turns=a.turns,
        fault_rate=a.fault_rate,
        timeout=a.timeout,
        client_retries=a.client_retries,
        send_retries=a.send_retries,
        seed=a.seed,
        async_pool=a.async_pool,
        sync_pool=a.sync_pool,
        calibrate=not a.no_calibrate,
    )
    db = scratch_sqlite() if a.sqlite else scratch_pg(a.pg_url, a.pg_db)
    with db as url:
        backend = make_url(url).get_backend_name()
        print(
            f"{cfg.processes} processes x ({cfg.conversations} async + {cfg.sync_conversations} sync "
            f"conversations) x {cfg.turns} turns on {backend}, faults {cfg.fault_rate:.0%} per kind ...",
            flush=True,
        )
        result = harness.run_load(url, cfg)
    result = {"database": backend, **result}
    print_report(result)
    if not a.quick:
        path = _common.write_result("load", result)
        print(f"wrote {path.relative_to(_common.REPO_DIR)}")
    return 1 if result["audit_failures"] else 0


def print_report(r: dict[str, object]) -> None:
    for key in (
        "database",
        "conversations",
        "turns",
        "turns_replied",
        "turns_failed_after_retries",
        "turns_sent_again",
        "send_attempts",
        "chat_requests",
        "seconds",
        "turns_per_second",
        "overhead_ms",
        "http_ms",
        "turn_wall_ms",
        "worker_cpu_ms_per_turn",
        "faults_injected",
        "faults_injected_total",
        "errors_retried_by_the_client",
        "errors_seen_by_clients_after_client_retries",
        "errors_total",
    ):
        print(f"{key:>45}: {r[key]}")
    failures = r["audit_failures"]
    assert isinstance(failures, list)
    print(f"{'audit failures':>45}: {len(failures)}")
    for line in failures[:30]:
        print(f"    {line}")


if __name__ == "__main__":
    sys.exit(main())
