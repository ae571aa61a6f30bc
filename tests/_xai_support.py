"""Helpers for the tests of the xAI client, Session and ``convkit chat`` against the local stand-in.

* :func:`new_key` makes a distinctive API key (``xai-TESTKEY-<random>``) that
  the tests then look for everywhere it must not be: log records, reprs,
  exception text (``str``, ``repr``, pickled), database rows.
* :class:`ClientTwin` puts :class:`~convkit.XAIClient` ("sync") or
  :class:`~convkit.AsyncXAIClient` ("async") behind one synchronous call
  shape, and :class:`SessionTwin` does the same for :class:`~convkit.Session`
  + :class:`~convkit.Store` and :class:`~convkit.AsyncSession` +
  :class:`~convkit.AsyncStore`, so one test body checks both twins. The
  async ones run every coroutine on one private event loop (aiosqlite and
  asyncpg connections belong to the loop that opened them). Streams are
  collected into a list given by the caller, so the events that arrived
  before an error can be inspected.
* :func:`check_requests` asserts what every request the stand-in received
  must satisfy: chat bodies validate against the official ``ChatRequest``
  schema (when ``../shared/xai/xai-openapi.json`` is there), and the key
  never appeared outside the ``Authorization`` header.
* :func:`dump_database` renders every row of every table of a database, for
  grepping.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from convkit import (
    APIError,
    AsyncSession,
    AsyncStore,
    AsyncXAIClient,
    Backoff,
    Session,
    Store,
    XAIClient,
)
from convkit.testing import XAIStandIn
from convkit.testing.openapi import OpenAPIDocument, find_document, load_document

from . import _store_support

FLAVOURS = ("sync", "async")
#: Retries in milliseconds, so exhausting them costs nothing.
FAST = Backoff(initial=0.001, maximum=0.01)
#: Loggers whose DEBUG records are captured and searched for the key (the root logger catches the rest).
LOGGERS = ("", "convkit", "convkit.xai", "httpx", "httpcore", "sqlalchemy", "asyncio", "aiosqlite")
NO_OPENAPI = (
    "xAI's OpenAPI document not found at ../shared/xai/xai-openapi.json "
    "(set CONVKIT_SHARED_DIR to the folder holding xai/xai-openapi.json)"
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def new_key() -> str:
    """A distinctive API key, easy to grep for."""
    return f"xai-TESTKEY-{secrets.token_hex(12)}"


# -- what must never hold the key ---------------------------------------------------------------


def capture_all_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Capture DEBUG records of every logger (httpx and httpcore included)."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)


def assert_logs_clean(caplog: pytest.LogCaptureFixture, key: str) -> None:
    records = [r for phase in ("setup", "call") for r in caplog.get_records(phase)]
    for r in records:
        text = f"{r.getMessage()} {r.args!r} {r.exc_text or ''} {r.stack_info or ''}"
        if r.exc_info and r.exc_info[1] is not None:
            text += f" {r.exc_info[1]!s} {r.exc_info[1]!r}"
        assert key not in text, f"the API key is in a log record of {r.name!r}"
    assert key not in caplog.text


def assert_error_clean(err: BaseException, key: str) -> None:
    """A typed convkit error without the key in its text, repr or pickled form; no httpx inside."""
    assert isinstance(err, APIError), f"not an APIError: {type(err).__name__}"
    assert not isinstance(err, httpx.HTTPError)
    assert not isinstance(err.__cause__, httpx.HTTPError), "an httpx error is chained as the cause"
    for text in (str(err), repr(err), repr(err.args)):
        assert key not in text
    data = pickle.dumps(err)
    assert key.encode() not in data
    back = pickle.loads(data)
    assert type(back) is type(err)
    assert str(back) == str(err)
    assert (back.status_code, back.code) == (err.status_code, err.code)


def assert_repr_clean(key: str, *objects: object) -> None:
    for obj in objects:
        assert key not in repr(obj), f"the API key is in repr({type(obj).__name__})"
        assert key not in str(obj)


def openapi_document() -> OpenAPIDocument | None:
    return load_document() if find_document() is not None else None


def check_requests(xai: XAIStandIn) -> int:
    """Every chat body validates against ``ChatRequest``; the key never showed outside its header.

    Returns how many chat bodies were validated (0 when the document is absent).
    """
    for r in xai.requests:
        assert not r.key_seen, f"the API key was sent outside the Authorization header: {r.method} {r.path}"
        assert r.headers.get("authorization") == "Bearer ***"
    doc = openapi_document()
    if doc is None:
        return 0
    bodies = xai.chat_requests
    for body in bodies:
        doc.validate("ChatRequest", body)
    return len(bodies)


# -- databases ---------------------------------------------------------------------------------


def async_url(url: str) -> str:
    """The async twin's URL: asyncpg for PostgreSQL, aiosqlite for SQLite."""
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        u = u.set(drivername="postgresql+asyncpg")
    elif u.get_backend_name() == "sqlite":
        u = u.set(drivername="sqlite+aiosqlite")
    return u.render_as_string(hide_password=False)


@contextmanager
def database(backend: str, tmp_path: Path) -> Any:
    """An empty database at the schema's head: a new SQLite file under ``tmp_path``, or PostgreSQL's.

    The SQLite file is a copy of a template; the PostgreSQL database is created once for the
    run and emptied for each test (``_store_support.pg_run_database``).
    """
    if backend == "sqlite":
        yield _store_support.sqlite_database(tmp_path / "session.db")
    else:
        yield _store_support.pg_run_database()


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def dump_database(url: str) -> str:
    """Every row of every table (convkit's and Alembic's), as text."""
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    elif u.get_backend_name() == "sqlite":
        u = u.set(drivername="sqlite")
    engine = sa.create_engine(u, poolclass=NullPool)
    lines = []
    try:
        with _quiet("sqlalchemy"), engine.connect() as conn:
            names = sorted(sa.inspect(conn).get_table_names())
            assert "convkit_messages" in names, names
            for name in names:
                for row in conn.execute(sa.text(f'SELECT * FROM "{name}"')):
                    lines.append(f"{name}: {tuple(row)!r}")
    finally:
        engine.dispose()
    return "\n".join(lines)


def usage_rows(url: str, conversation_id: str) -> list[Any]:
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    engine = sa.create_engine(u, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    sa.text("SELECT * FROM convkit_usage WHERE conversation_id = :c ORDER BY id"),
                    {"c": conversation_id},
                ).mappings()
            )
    finally:
        engine.dispose()


# -- twins -------------------------------------------------------------------------------------


class _Loop:
    def __init__(self, flavour: str) -> None:
        assert flavour in FLAVOURS, flavour
        self.flavour = flavour
        self.loop = asyncio.new_event_loop() if flavour == "async" else None

    def run(self, value: Any) -> Any:
        """``value`` itself (sync), or the awaited coroutine (async)."""
        if self.loop is None:
            return value
        return self.loop.run_until_complete(value)

    def drain(self, events: Any, into: list[Any] | None) -> list[Any]:
        """Collect a stream (iterator or async iterator) into ``into``."""
        out = [] if into is None else into
        if self.loop is None:
            for e in events:
                out.append(e)
            return out

        async def collect() -> None:
            async for e in events:
                out.append(e)

        self.loop.run_until_complete(collect())
        return out

    def close_loop(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


class ClientTwin(_Loop):
    """XAIClient ("sync") or AsyncXAIClient ("async") with XAIClient's call shape."""

    def __init__(self, flavour: str, **kw: Any) -> None:
        super().__init__(flavour)
        self.client: Any = XAIClient(**kw) if flavour == "sync" else AsyncXAIClient(**kw)

    def chat(self, *args: Any, **kw: Any) -> Any:
        return self.run(self.client.chat(*args, **kw))

    def stream(self, *args: Any, into: list[Any] | None = None, **kw: Any) -> list[Any]:
        return self.drain(self.client.stream(*args, **kw), into)

    def tokenize(self, *args: Any, **kw: Any) -> Any:
        return self.run(self.client.tokenize(*args, **kw))

    def language_models(self) -> Any:
        return self.run(self.client.language_models())

    def refresh_models(self, *args: Any, **kw: Any) -> Any:
        return self.run(self.client.refresh_models(*args, **kw))

    def close(self) -> None:
        try:
            self.run(self.client.close())
        finally:
            self.close_loop()


class SessionTwin(_Loop):
    """Session + Store ("sync") or AsyncSession + AsyncStore ("async") with Session's call shape.

    ``store`` is the Store / AsyncStore, ``session`` the session, ``client`` the
    client; :meth:`store_call` runs any store method (awaiting it for async).
    """

    def __init__(
        self,
        flavour: str,
        url: str,
        *,
        client_kw: Mapping[str, Any],
        counters: Iterable[Any] = (),
        conversation_id: str | None = None,
        prefill: Iterable[Any] = (),
        namespace: str = "default",
        **session_kw: Any,
    ) -> None:
        super().__init__(flavour)
        self.url = url
        counters = tuple(counters)
        # SQLite files come from an upgraded template (check only); PostgreSQL is upgraded (a no-op at head)
        upgrade = make_url(url).get_backend_name() == "postgresql"
        self.client_kw = dict(client_kw)
        self.clients: list[Any] = []
        if flavour == "sync":
            self.store: Any = Store(url, counters=counters, upgrade=upgrade, namespace=namespace)
        else:
            self.store = AsyncStore(async_url(url), counters=counters, upgrade=upgrade, namespace=namespace)
        self.client = self.make_client()
        if conversation_id is None:
            conversation_id = self.store_call("create_conversation", title="test").id
        prefill = list(prefill)
        if prefill:
            self.store_call("extend", conversation_id, prefill)
        self.conversation_id = conversation_id
        cls = Session if flavour == "sync" else AsyncSession
        self.session: Any = cls(self.store, conversation_id, client=self.client, **session_kw)

    def make_client(self, **overrides: Any) -> Any:
        """Another client of this flavour (closed with the twin), e.g. with another timeout."""
        kw = {**self.client_kw, **overrides}
        client = XAIClient(**kw) if self.flavour == "sync" else AsyncXAIClient(**kw)
        self.clients.append(client)
        return client

    def store_call(self, name: str, *args: Any, **kw: Any) -> Any:
        return self.run(getattr(self.store, name)(*args, **kw))

    def send(self, content: Any, **kw: Any) -> Any:
        return self.run(self.session.send(content, **kw))

    def resume(self, **kw: Any) -> Any:
        return self.run(self.session.resume(**kw))

    def send_stream(self, content: Any, *, into: list[Any] | None = None, **kw: Any) -> list[Any]:
        return self.drain(self.session.send_stream(content, **kw), into)

    def resume_stream(self, *, into: list[Any] | None = None, **kw: Any) -> list[Any]:
        return self.drain(self.session.resume_stream(**kw), into)

    def add_tool_results(self, results: Any) -> Any:
        return self.run(self.session.add_tool_results(results))

    def usage(self) -> Any:
        return self.run(self.session.usage())

    def margin(self) -> float:
        return float(self.run(self.session.margin()))

    def window(self) -> Any:
        return self.run(self.session.window())

    def messages(self) -> list[Any]:
        return list(self.run(self.session.messages()))

    def close(self) -> None:
        try:
            for client in self.clients:
                self.run(client.close())
            self.run(self.store.close())
        finally:
            self.close_loop()
