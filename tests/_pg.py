"""PostgreSQL for tests: the server from ``$CONVKIT_TEST_POSTGRES_URL``, one fresh database per test.

``fresh_database()`` creates ``convkit_test_<random>`` on that server, yields
its URL and drops it afterwards, so tests never see each other's tables (or
the tables of whatever else uses the server). Where the role may not create
databases it falls back to a fresh schema in the configured database, put
first on ``search_path`` through the URL.

When the variable is unset the test is skipped with a note on how to set it;
when the server is unreachable the test fails under ``CI=true`` (so CI cannot
pass without PostgreSQL) and is skipped with the reason elsewhere.

Use it from a test module through a local fixture (importing a fixture by
name trips linters)::

    @pytest.fixture
    def pg_url() -> Iterator[str]:
        with _pg.fresh_database() as url:
            yield url
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

ENV_VAR = "CONVKIT_TEST_POSTGRES_URL"
SKIP_UNSET = f"set {ENV_VAR}=postgresql+psycopg://... to run the PostgreSQL tests"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@cache
def _probe(raw: str) -> tuple[URL | None, str]:
    """(URL, "") when the server answers, else (None, why); probed once per session."""
    try:
        url = make_url(raw)
    except Exception as exc:
        return None, f"{ENV_VAR} is not a database URL ({type(exc).__name__})"
    if url.get_backend_name() != "postgresql":
        return None, f"{ENV_VAR} must be a postgresql URL, not {url.get_backend_name()!r}"
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    safe = url.render_as_string(hide_password=True)
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()[:1]
        return None, f"PostgreSQL at {safe} is unreachable: {first[0] if first else type(exc).__name__}"
    finally:
        engine.dispose()
    return url, ""


def server_url() -> URL:
    """The configured server's URL (psycopg driver), or skip/fail as described above."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        pytest.skip(SKIP_UNSET)
    url, why = _probe(raw)
    if url is None:
        _unavailable(why)
        raise AssertionError("unreachable")  # pragma: no cover (skip/fail raise)
    return url


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database (or schema) on the test server; dropped afterwards."""
    server = server_url()
    name = f"convkit_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except sa.exc.ProgrammingError:  # no CREATEDB privilege: a schema instead
            with _fresh_schema(admin, server, name) as url:
                yield url
            return
        try:
            yield _render(server.set(database=name))
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@contextmanager
def _fresh_schema(admin: sa.Engine, server: URL, name: str) -> Iterator[str]:
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    try:
        yield _render(server.update_query_dict({"options": f"-csearch_path={name}"}))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
