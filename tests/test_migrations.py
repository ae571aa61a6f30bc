"""Migrations: empty -> head on SQLite and PostgreSQL, one head, the migrated
schema equals convkit/store/schema.py, down/up, host tables left alone,
status/ensure_schema and their messages, the ``convkit db`` commands, and a
wheel that really ships the scripts.

PostgreSQL tests take a fresh database each from ``$CONVKIT_TEST_POSTGRES_URL``
(see tests/_pg.py); SQLite tests use a file in ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

import convkit
from convkit import _cli as cli
from convkit._errors import ConvkitError, DatabaseError, SchemaError, ValidationError
from convkit.store import _migrate as migrate
from convkit.store import _schema as schema
from convkit.store._migrate import VERSION_TABLE

from . import _pg

REPO = Path(__file__).resolve().parents[1]
HEAD = "0007_conversation_keys"
OUR_TABLES = {t.name for t in schema.metadata.sorted_tables}
PASSWORD = "hunter2-not-shown"


@pytest.fixture
def pg_url() -> Iterator[str]:
    with _pg.fresh_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database nothing has touched: a new SQLite file, or a fresh PostgreSQL database (``pg_url``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'convkit.db'}"
    return str(request.getfixturevalue("pg_url"))


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def _table_names(url: str) -> set[str]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _diffs(url: str, **opts: Any) -> list[Any]:
    """Autogenerate's differences between the database and schema.metadata."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn,
                opts={
                    "version_table": VERSION_TABLE,
                    "include_name": migrate.include_name,
                    "include_object": migrate.include_object,
                    "compare_type": True,
                    "compare_server_default": True,
                    **opts,
                },
            )
            return list(compare_metadata(ctx, schema.metadata))
    finally:
        engine.dispose()


def _with_password(url: str) -> str:
    # the test server trusts local connections, so any password gets in
    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


# -- the history ----------------------------------------------------------------------------


def test_single_linear_head_with_readable_ids() -> None:
    scripts = ScriptDirectory(migrate.script_location())
    assert scripts.get_heads() == [HEAD]
    assert migrate.head_revision() == HEAD
    revisions = list(scripts.walk_revisions())
    assert revisions[-1].down_revision is None
    for rev in revisions:
        assert re.fullmatch(r"\d{4}_[a-z0-9_]+", rev.revision), rev.revision
        assert len(rev.revision) <= 32  # convkit_alembic_version.version_num is VARCHAR(32)
        assert not isinstance(rev.down_revision, (tuple, list)), "merge revisions are not expected"


def test_scripts_found_in_the_checkout() -> None:
    assert Path(migrate.script_location()) == REPO / "migrations"


def test_revisions_create_tables_explicitly() -> None:
    texts = [p.read_text() for p in sorted((REPO / "migrations" / "versions").glob("*.py"))]
    for text in texts:
        assert "create_all" not in text
        assert "convkit.store" not in text  # frozen: must not follow later edits of schema.py
    for name in OUR_TABLES:
        assert any(f'op.create_table(\n        "{name}"' in text for text in texts), name


# -- empty -> head, schema equality, down/up ------------------------------------------------


def test_empty_to_head(empty_db_url: str) -> None:
    assert migrate.schema_status(empty_db_url) == "empty"
    assert migrate.current_revision(empty_db_url) is None
    convkit.upgrade(empty_db_url)
    assert migrate.current_revision(empty_db_url) == HEAD
    assert migrate.schema_status(empty_db_url) == "current"
    assert _table_names(empty_db_url) == OUR_TABLES | {VERSION_TABLE}
    convkit.upgrade(empty_db_url)  # a second upgrade is a no-op
    assert migrate.current_revision(empty_db_url) == HEAD


def test_migrated_schema_matches_the_table_definitions(empty_db_url: str) -> None:
    convkit.upgrade(empty_db_url)
    assert _diffs(empty_db_url) == []


def _constraint_names(url: str) -> dict[str, set[str]]:
    engine = _engine(url)
    out: dict[str, set[str]] = {"ix": set(), "uq": set(), "ck": set(), "fk": set()}
    try:
        with engine.connect() as conn:
            insp = sa.inspect(conn)
            for table in OUR_TABLES:
                indexes = insp.get_indexes(table)  # minus those backing a unique constraint
                out["ix"] |= {i["name"] for i in indexes if i["name"] and not i.get("duplicates_constraint")}
                out["uq"] |= {u["name"] for u in insp.get_unique_constraints(table) if u["name"]}
                out["ck"] |= {c["name"] for c in insp.get_check_constraints(table) if c["name"]}
                out["fk"] |= {f["name"] for f in insp.get_foreign_keys(table) if f["name"]}
    finally:
        engine.dispose()
    return out


def test_constraint_and_index_names_follow_the_naming_convention(empty_db_url: str) -> None:
    convkit.upgrade(empty_db_url)
    engine = _engine(empty_db_url)
    # names as this dialect spells them (PostgreSQL truncates names over 63 characters)
    name = engine.dialect.identifier_preparer.format_constraint
    engine.dispose()
    expected: dict[str, set[str]] = {"ix": set(), "uq": set(), "ck": set(), "fk": set()}
    kinds: dict[type, str] = {
        sa.UniqueConstraint: "uq",
        sa.CheckConstraint: "ck",
        sa.ForeignKeyConstraint: "fk",
    }
    for table in schema.metadata.sorted_tables:
        expected["ix"] |= {str(name(i)) for i in table.indexes}
        for c in table.constraints:
            if type(c) in kinds:
                expected[kinds[type(c)]].add(str(name(c)))
    got = _constraint_names(empty_db_url)
    if make_url(empty_db_url).get_backend_name() == "sqlite":
        # SQLite implements unique constraints with an automatic index
        got["ix"] = {n for n in got["ix"] if not n.startswith("sqlite_autoindex")}
    assert got == expected


def test_check_constraints_are_enforced(empty_db_url: str) -> None:
    convkit.upgrade(empty_db_url)
    now = datetime.now(timezone.utc)
    engine = _engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                schema.conversations.insert(),
                {"id": "c1", "namespace": "ns", "created_at": now, "updated_at": now},
            )
        row = {"conversation_id": "c1", "seq": 1, "role": "user", "content": "[]", "unit_seq": 1}
        with engine.begin() as conn:
            conn.execute(schema.messages.insert(), {**row, "created_at": now})
        for bad in ({"seq": 0}, {"seq": 2, "role": "wizard"}, {"seq": 1}):
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
                conn.execute(schema.messages.insert(), {**row, **bad, "created_at": now})
    finally:
        engine.dispose()


def test_downgrade_to_base_then_upgrade_again(empty_db_url: str) -> None:
    convkit.upgrade(empty_db_url)
    migrate.downgrade(empty_db_url, "base")
    assert _table_names(empty_db_url) <= {VERSION_TABLE}
    assert migrate.current_revision(empty_db_url) is None
    assert migrate.schema_status(empty_db_url) == "empty"
    convkit.upgrade(empty_db_url)
    assert migrate.schema_status(empty_db_url) == "current"
    assert _diffs(empty_db_url) == []


def test_running_totals_are_filled_for_counts_stored_before_them(empty_db_url: str) -> None:
    """0003 computes run_tokens/run_msgs of counts written under 0002 (keep rows excluded)."""
    migrate.upgrade(empty_db_url, "0002_calibration")
    now = datetime.now(timezone.utc)
    engine = _engine(empty_db_url)
    keep = [True, False, False, True, False]  # a leading system message, a pinned one
    try:
        with engine.begin() as conn:
            for cid in ("a", "b"):
                conn.execute(
                    sa.text(
                        "INSERT INTO convkit_conversations (id, namespace, metadata, last_seq, prefix_len, "
                        "image_count, created_at, updated_at) VALUES (:id, 'ns', '{}', 5, 1, 0, :now, :now)"
                    ),
                    {"id": cid, "now": now},
                )
                for seq in range(1, 6):
                    conn.execute(
                        sa.text(
                            "INSERT INTO convkit_messages (conversation_id, seq, role, content, pinned, "
                            "unit_seq, keep, created_at) VALUES (:cid, :seq, 'user', '[]', :keep, :seq, "
                            ":keep, :now)"
                        ),
                        {"cid": cid, "seq": seq, "keep": keep[seq - 1], "now": now},
                    )
                    for counter, tokens in (("x", 10 * seq), ("y", seq)):
                        conn.execute(
                            sa.text(
                                "INSERT INTO convkit_token_counts (conversation_id, counter_id, seq, tokens) "
                                "VALUES (:cid, :counter, :seq, :tokens)"
                            ),
                            {"cid": cid, "counter": counter, "seq": seq, "tokens": tokens},
                        )
        migrate.upgrade(empty_db_url, "0003_running_totals")
        with engine.connect() as conn:
            got = conn.execute(
                sa.text(
                    "SELECT conversation_id, counter_id, seq, run_tokens, run_msgs FROM convkit_token_counts "
                    "ORDER BY conversation_id, counter_id, seq"
                )
            ).all()
        for cid in ("a", "b"):
            assert [tuple(r[2:]) for r in got if r[0] == cid and r[1] == "x"] == [
                (1, 0, 0),
                (2, 20, 1),
                (3, 50, 2),
                (4, 50, 2),
                (5, 100, 3),
            ]
            assert [tuple(r[2:]) for r in got if r[0] == cid and r[1] == "y"] == [
                (1, 0, 0),
                (2, 2, 1),
                (3, 5, 2),
                (4, 5, 2),
                (5, 10, 3),
            ]
        migrate.downgrade(empty_db_url, "0002_calibration")
        with engine.connect() as conn:
            cols = {c["name"] for c in sa.inspect(conn).get_columns("convkit_token_counts")}
        assert cols == {"conversation_id", "counter_id", "seq", "tokens"}
    finally:
        engine.dispose()


def test_counts_past_a_watermark_are_dropped_with_the_progress_table(empty_db_url: str) -> None:
    """0004: counts are contiguous from seq 1, so the watermark table goes; counts earlier versions
    wrote past a counter's watermark (holes below them) are deleted, and a window back-fills them."""
    migrate.upgrade(empty_db_url, "0003_running_totals")
    now = datetime.now(timezone.utc)
    engine = _engine(empty_db_url)
    texts = ["hello", "hi there", "how are you", "fine thanks", "bye now"]
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO convkit_conversations (id, namespace, metadata, last_seq, prefix_len, "
                    "image_count, epoch, created_at, updated_at) "
                    "VALUES ('a', 'ns', '{}', 5, 0, 0, 0, :now, :now)"
                ),
                {"now": now},
            )
            for seq, text in enumerate(texts, 1):
                conn.execute(
                    sa.text(
                        "INSERT INTO convkit_messages (conversation_id, seq, role, content, pinned, "
                        "unit_seq, keep, created_at) "
                        "VALUES ('a', :seq, :role, :content, FALSE, :seq, FALSE, :now)"
                    ),
                    {
                        "seq": seq,
                        "role": "user" if seq % 2 else "assistant",
                        "content": json.dumps(text),
                        "now": now,
                    },
                )
            # x counted everything; y reached seq 2 and has stray counts at 4 and 5; z has no watermark
            for counter, seqs in (("x", [1, 2, 3, 4, 5]), ("y", [1, 2, 4, 5]), ("z", [3])):
                for seq in seqs:
                    conn.execute(
                        sa.text(
                            "INSERT INTO convkit_token_counts (conversation_id, counter_id, seq, tokens, "
                            "run_tokens, run_msgs) VALUES ('a', :counter, :seq, 1, :seq, :seq)"
                        ),
                        {"counter": counter, "seq": seq},
                    )
            for counter, counted in (("x", 5), ("y", 2)):
                conn.execute(
                    sa.text(
                        "INSERT INTO convkit_counter_progress (conversation_id, counter_id, counted_seq) "
                        "VALUES ('a', :counter, :counted)"
                    ),
                    {"counter": counter, "counted": counted},
                )
        convkit.upgrade(empty_db_url)
        with engine.connect() as conn:
            got = conn.execute(
                sa.text("SELECT counter_id, seq FROM convkit_token_counts ORDER BY counter_id, seq")
            ).all()
            assert "convkit_counter_progress" not in sa.inspect(conn).get_table_names()
        assert [tuple(r) for r in got] == [("x", s) for s in range(1, 6)] + [("y", 1), ("y", 2)]
        migrate.downgrade(empty_db_url, "0003_running_totals")
        with engine.connect() as conn:
            progress = conn.execute(
                sa.text("SELECT counter_id, counted_seq FROM convkit_counter_progress ORDER BY counter_id")
            ).all()
        assert [tuple(r) for r in progress] == [("x", 5), ("y", 2)]
    finally:
        engine.dispose()


# -- living beside a host application -------------------------------------------------------


def test_host_tables_are_untouched_and_not_reported(empty_db_url: str) -> None:
    host = sa.MetaData()
    users = sa.Table(
        "app_users", host, sa.Column("id", sa.Integer, primary_key=True), sa.Column("n", sa.Text)
    )
    # the host's own Alembic history, in Alembic's default version table
    host_versions = sa.Table(
        "alembic_version", host, sa.Column("version_num", sa.String(32), primary_key=True)
    )
    engine = _engine(empty_db_url)
    try:
        with engine.begin() as conn:
            host.create_all(conn)
            conn.execute(users.insert(), [{"id": 1, "n": "ada"}, {"id": 2, "n": "grace"}])
            conn.execute(host_versions.insert(), {"version_num": "hostapp_0042"})
        assert migrate.schema_status(empty_db_url) == "empty"  # host tables are not ours

        convkit.upgrade(empty_db_url)
        assert _table_names(empty_db_url) == OUR_TABLES | {VERSION_TABLE, "app_users", "alembic_version"}
        assert _diffs(empty_db_url) == []
        # without the filters autogenerate would want to drop the host's table
        unfiltered = _diffs(empty_db_url, include_name=None, include_object=None)
        assert any(d[0] == "remove_table" and d[1].name == "app_users" for d in unfiltered)
        # env.py applies the same filters: alembic check sees nothing to do
        with engine.connect() as conn:
            cfg = migrate._config(conn)
            command.check(cfg)

        migrate.downgrade(empty_db_url, "base")
        convkit.upgrade(empty_db_url)
        with engine.connect() as conn:
            assert conn.execute(sa.select(users.c.n).order_by(users.c.id)).scalars().all() == ["ada", "grace"]
            assert conn.execute(sa.select(host_versions.c.version_num)).scalar_one() == "hostapp_0042"
    finally:
        engine.dispose()


# -- targets: URL, Engine, Connection, AsyncEngine ------------------------------------------


def test_engine_and_connection_targets(empty_db_url: str) -> None:
    engine = _engine(empty_db_url)
    try:
        assert migrate.schema_status(engine) == "empty"
        with engine.connect() as conn:  # not in a transaction: convkit commits its own
            convkit.upgrade(conn)
            assert not conn.in_transaction()
            assert migrate.current_revision(conn) == HEAD
        assert migrate.schema_status(engine) == "current"
        migrate.downgrade(engine, "base")
        with engine.begin() as conn:  # the caller's transaction: the caller commits
            migrate.ensure_schema(conn, upgrade=True)
            assert conn.in_transaction()
        assert migrate.current_revision(empty_db_url) == HEAD
    finally:
        engine.dispose()


def test_caller_transaction_rolled_back_leaves_nothing(pg_url: str) -> None:
    engine = _engine(pg_url)
    try:
        with engine.connect() as conn:
            trans = conn.begin()
            convkit.upgrade(conn)
            assert migrate.schema_status(conn) == "current"
            trans.rollback()
        assert migrate.schema_status(pg_url) == "empty"
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_async_engine_through_run_sync(dialect: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'async.db'}"
        async_url = f"sqlite+aiosqlite:///{tmp_path / 'async.db'}"
    else:
        url = str(request.getfixturevalue("pg_url"))
        async_url = make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)

    async def run() -> tuple[str, str]:
        engine = create_async_engine(async_url)
        try:
            async with engine.connect() as conn:
                before = await conn.run_sync(migrate.schema_status)
                await conn.run_sync(convkit.upgrade)
            async with engine.connect() as conn:
                await conn.run_sync(lambda c: migrate.ensure_schema(c, upgrade=False))
                return before, await conn.run_sync(migrate.schema_status)
        finally:
            await engine.dispose()

    assert asyncio.run(run()) == ("empty", "current")
    assert migrate.current_revision(url) == HEAD
    # an async URL works as a target too (its sync twin driver is used)
    assert migrate.schema_status(async_url) == "current"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_concurrent_async_upgrades_on_one_loop(
    dialect: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Tasks on one event loop upgrading at once queue without blocking the loop."""
    from sqlalchemy.ext.asyncio import create_async_engine

    if dialect == "sqlite":
        urls = [f"sqlite+aiosqlite:///{tmp_path / f'a{i}.db'}" for i in range(4)]
    else:
        url = make_url(str(request.getfixturevalue("pg_url"))).set(drivername="postgresql+asyncpg")
        urls = [url.render_as_string(hide_password=False)] * 4

    async def one(async_url: str) -> str:
        engine = create_async_engine(async_url)
        try:
            async with engine.connect() as conn:
                await conn.run_sync(lambda c: migrate.ensure_schema(c, upgrade=True))
                return await conn.run_sync(migrate.schema_status)
        finally:
            await engine.dispose()

    async def run() -> list[str]:
        return list(await asyncio.wait_for(asyncio.gather(*(one(u) for u in urls)), timeout=60))

    assert asyncio.run(run()) == ["current"] * 4


def test_async_engine_itself_is_refused_with_a_hint(tmp_path: Path) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(TypeError, match="run_sync"):
        convkit.upgrade(engine)  # type: ignore[arg-type]
    asyncio.run(engine.dispose())


def test_concurrent_upgrades_of_one_new_database(empty_db_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        try:
            barrier.wait()
            convkit.upgrade(empty_db_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert migrate.schema_status(empty_db_url) == "current"
    engine = _engine(empty_db_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalars().all() == [HEAD]
    finally:
        engine.dispose()


# -- SQLite specifics -----------------------------------------------------------------------


def test_sqlite_file_is_created_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub.db"
    convkit.upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reading_a_missing_sqlite_file_does_not_create_it(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    url = f"sqlite:///{path}"
    assert migrate.schema_status(url) == "empty"
    assert migrate.current_revision(url) is None
    with pytest.raises(SchemaError):
        migrate.ensure_schema(url, upgrade=False)
    assert not path.exists()


def test_in_memory_sqlite_connection(tmp_path: Path) -> None:
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        convkit.upgrade(conn)
        assert migrate.schema_status(conn) == "current"
        assert set(sa.inspect(conn).get_table_names()) == OUR_TABLES | {VERSION_TABLE}


# -- a second revision: behind, batch rebuilds, foreign keys --------------------------------

_SECOND = '''
"""Test-only revision: rebuild convkit_conversations (batch) and add a column."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "9999_test_rebuild"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    recreate = "always" if op.get_bind().dialect.name == "sqlite" else "auto"
    with op.batch_alter_table("convkit_conversations", recreate=recreate) as batch:
        batch.add_column(sa.Column("test_flag", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("convkit_conversations") as batch:
        batch.drop_column("test_flag")
'''


@pytest.fixture
def two_revisions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The shipped history plus a test revision on top of its head; migrate uses it."""
    location = tmp_path / "migrations"
    shutil.copytree(REPO / "migrations", location, ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / "9999_test_rebuild.py").write_text(
        textwrap.dedent(_SECOND).replace("{head}", HEAD)
    )
    monkeypatch.setattr(migrate, "script_location", lambda: str(location))
    return "9999_test_rebuild"


def _add_conversation_with_message(conn: sa.Connection) -> None:
    now = datetime.now(timezone.utc)
    conn.execute(
        schema.conversations.insert(), {"id": "c1", "namespace": "ns", "created_at": now, "updated_at": now}
    )
    conn.execute(
        schema.messages.insert(),
        {
            "conversation_id": "c1",
            "seq": 1,
            "role": "user",
            "content": '[{"type": "text", "text": "hi"}]',
            "unit_seq": 1,
            "created_at": now,
        },
    )


def test_behind_is_reported_and_upgraded(empty_db_url: str, two_revisions: str) -> None:
    convkit.upgrade(empty_db_url, HEAD)
    assert migrate.head_revision() == two_revisions
    assert migrate.schema_status(empty_db_url) == "behind"
    with pytest.raises(SchemaError) as info:
        migrate.ensure_schema(empty_db_url, upgrade=False)
    msg = str(info.value)
    assert f"revision {HEAD}, behind this convkit's {two_revisions}" in msg
    assert "convkit db upgrade --url" in msg
    assert "convkit.upgrade(url)" in msg
    assert "upgrade=True" in msg
    migrate.ensure_schema(empty_db_url, upgrade=True)
    assert migrate.current_revision(empty_db_url) == two_revisions
    migrate.downgrade(empty_db_url, HEAD)
    assert migrate.current_revision(empty_db_url) == HEAD


def test_batch_rebuild_keeps_rows_when_foreign_keys_are_on(tmp_path: Path, two_revisions: str) -> None:
    """A SQLite table rebuild must not cascade-delete referencing rows (foreign keys off meanwhile)."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'fk.db'}")

    @sa.event.listens_for(engine, "connect")
    def _fk_on(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    try:
        convkit.upgrade(engine, HEAD)
        with engine.begin() as conn:
            _add_conversation_with_message(conn)
        with engine.connect() as conn:
            migrate.ensure_schema(conn, upgrade=True)
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # restored
        with engine.connect() as conn:
            assert migrate.current_revision(conn) == two_revisions
            assert conn.execute(sa.select(sa.func.count()).select_from(schema.messages)).scalar() == 1
    finally:
        engine.dispose()


# -- ahead, unknown, errors -----------------------------------------------------------------


def _stamp(url: str, revision: str) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = '{revision}'")
    finally:
        engine.dispose()


def test_ahead_says_the_code_is_older(empty_db_url: str) -> None:
    convkit.upgrade(empty_db_url)
    _stamp(empty_db_url, "0099_from_the_future")
    assert migrate.schema_status(empty_db_url) == "ahead"
    assert migrate.current_revision(empty_db_url) == "0099_from_the_future"
    for call in (
        lambda: migrate.ensure_schema(empty_db_url, upgrade=False),
        lambda: migrate.ensure_schema(empty_db_url, upgrade=True),
        lambda: convkit.upgrade(empty_db_url),
        lambda: migrate.downgrade(empty_db_url, "base"),
    ):
        with pytest.raises(SchemaError, match="the code is older than the database"):
            call()
    assert _table_names(empty_db_url) == OUR_TABLES | {VERSION_TABLE}


def test_unversioned_convkit_tables_are_unknown(empty_db_url: str) -> None:
    engine = _engine(empty_db_url)
    try:
        schema.metadata.create_all(engine)
    finally:
        engine.dispose()
    assert migrate.schema_status(empty_db_url) == "unknown"
    with pytest.raises(SchemaError, match="cannot tell their version"):
        migrate.ensure_schema(empty_db_url, upgrade=True)
    with pytest.raises(SchemaError, match="cannot tell their version"):
        convkit.upgrade(empty_db_url)


def test_empty_message_hides_the_password(pg_url: str) -> None:
    url = _with_password(pg_url)
    with pytest.raises(SchemaError) as info:
        migrate.ensure_schema(url, upgrade=False)
    msg = str(info.value)
    assert PASSWORD not in msg
    assert "has no convkit schema yet" in msg
    safe = make_url(url).render_as_string(hide_password=True)
    assert f"convkit db upgrade --url {shlex.quote(safe)}" in msg
    assert "with your password in place of ***" in msg
    assert "convkit.upgrade(url)" in msg
    assert "upgrade=True" in msg


def test_unreachable_server_is_a_database_error_without_the_password() -> None:
    url = f"postgresql+psycopg://convkit:{PASSWORD}@127.0.0.1:1/nowhere?connect_timeout=2"
    for call in (
        lambda: migrate.schema_status(url),
        lambda: migrate.current_revision(url),
        lambda: convkit.upgrade(url),
        lambda: migrate.ensure_schema(url, upgrade=True),
    ):
        with pytest.raises(DatabaseError) as info:
            call()
        assert PASSWORD not in str(info.value)
        assert "convkit:***@127.0.0.1:1" in str(info.value)
        assert isinstance(info.value, ConvkitError)


def test_bad_input_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        convkit.upgrade("not a url")
    with pytest.raises(ValidationError, match="SQLite or PostgreSQL"):
        convkit.upgrade("mysql://u@h/db")
    with pytest.raises(DatabaseError):
        convkit.upgrade(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    with pytest.raises(SchemaError, match="no_such_revision"):
        convkit.upgrade(f"sqlite:///{tmp_path / 'x.db'}", "no_such_revision")


# -- the CLI --------------------------------------------------------------------------------


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), stdout=out)
    return code, out.getvalue()


def test_cli_db_commands(empty_db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _cli("db", "check", "--url", empty_db_url)
    assert (code, text) == (1, "")  # the finding is a diagnostic: stderr, stdout stays empty
    assert "convkit db upgrade --url" in capsys.readouterr().err
    code, text = _cli("db", "current", "--url", empty_db_url)
    assert (code, "revision none (empty;" in text) == (0, True)
    code, text = _cli("db", "upgrade", "--url", empty_db_url)
    assert (code, f"upgraded from base to {HEAD}" in text) == (0, True)
    code, text = _cli("db", "upgrade", "--url", empty_db_url)
    assert (code, f"already at {HEAD}" in text) == (0, True)
    code, text = _cli("db", "current", "--url", empty_db_url)
    assert (code, f"revision {HEAD} (current;" in text) == (0, True)
    code, text = _cli("db", "check", "--url", empty_db_url)
    assert (code, f"at head ({HEAD})" in text) == (0, True)
    code, text = _cli("db", "upgrade", "--url", empty_db_url, "--revision", "base")
    assert code == 0


def test_cli_hides_the_password(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = _with_password(pg_url)
    for argv in (("db", "check"), ("db", "current"), ("db", "upgrade")):
        _code, text = _cli(*argv, "--url", url)
        text += capsys.readouterr().err
        assert PASSWORD not in text
        assert ":***@" in text


def test_cli_url_from_environment_then_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVKIT_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert _cli("db", "upgrade")[0] == 0
    assert (tmp_path / "env.db").exists()
    monkeypatch.delenv("CONVKIT_DATABASE_URL")
    assert _cli("db", "check")[0] == 1
    assert _cli("db", "upgrade")[0] == 0
    assert migrate.schema_status(f"sqlite:///{tmp_path / 'convkit.db'}") == "current"


def test_cli_database_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _cli("db", "check", "--url", f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1:1/x")
    assert code == 2
    err = capsys.readouterr().err
    assert "convkit: error:" in err
    assert PASSWORD not in err


# -- the wheel ships the migrations ---------------------------------------------------------


@pytest.mark.slow
def test_wheel_ships_migrations_and_upgrades_a_new_sqlite_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}

    def run(*cmd: str | Path, cwd: Path = tmp_path, timeout: float = 180) -> str:
        proc = subprocess.run(
            [str(c) for c in cmd],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, REPO)
    (wheel,) = wheels.glob("convkit_grok-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "convkit/_migrations/env.py" in names
    assert "convkit/_migrations/script.py.mako" in names
    assert "convkit/_migrations/versions/0001_initial.py" in names
    assert "convkit/_estimate_words.txt" in names  # the default estimate's word table
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel)

    # the core runs without the testing extra: no hypothesis, and the estimate reads its table
    counted = run(
        python,
        "-c",
        "import sys, convkit; n = convkit.EstimateCounter().count_texts(['the window 12'])[0]; "
        "print(n, 'hypothesis' in sys.modules)",
    ).split()
    assert counted == ["5", "False"]

    db = tmp_path / "new.db"
    location = run(
        python,
        "-c",
        "import convkit; from convkit.store import _migrate as migrate; "
        f"convkit.upgrade({f'sqlite:///{db}'!r}); print(migrate.script_location())",
    ).strip()
    assert Path(location) == venv.joinpath(*Path(location).relative_to(venv).parts)
    assert Path(location).parts[-2:] == ("convkit", "_migrations")
    assert "site-packages" in Path(location).parts

    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == OUR_TABLES | {VERSION_TABLE}
        assert conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [(HEAD,)]
    convkit_cli = venv / "bin" / "convkit"
    assert f"at head ({HEAD})" in run(convkit_cli, "db", "check", "--url", f"sqlite:///{db}")
