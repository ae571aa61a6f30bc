"""Every statement the store runs on a conversation's rows is scoped by conversation (issue 14, point 5).

Why: docs/scale-out.md grows a deployment past one PostgreSQL machine by
hash-partitioning (or distributing, e.g. with Citus) the per-conversation
tables on the conversation's id. That only works if every statement that
reads or writes those rows names the one conversation it is about, so the
planner can send it to one partition or shard. This test pins it.

How: a broad workload runs on SQLite and PostgreSQL, through the sync and the
async store (create, extend, append, messages, window with trim, stable,
``images="drop"``, summarize and a second counter's back-fill, summaries,
fork, pop, truncate, export/import, record_turn, calibrate, usage,
list_conversations, get_conversation, delete_conversation with image garbage
collection, and Session/AsyncSession turns, plain, streamed and summarizing,
against :class:`convkit.testing.XAIStandIn`). Every statement is captured:
SQLAlchemy's ``before_cursor_execute`` event on the store's engine (everything
run through SQLAlchemy, ``exec_driver_sql`` included) plus the window's
``raw`` statements, which run on the driver's cursor past SQLAlchemy's events
(captured where their SQL is made, :func:`convkit.store._ops_core.driver_sql`).

The rule (:func:`violations`), on the SQL text, lower-cased, identifier
quotes removed, whitespace collapsed:

* The checked tables are those keyed by conversation (:data:`SCOPED`, each
  with its key column): ``convkit_messages``, ``convkit_tool_calls``,
  ``convkit_token_counts``, ``convkit_summaries``, ``convkit_usage``,
  ``convkit_window_starts`` (``conversation_id``) and
  ``convkit_conversations`` itself (``id``). Not checked: ``convkit_images``
  (keyed by content hash, shared by every conversation that holds the same
  bytes), ``convkit_calibration`` (keyed by namespace, model and counter)
  and the migration version table: none holds a conversation's rows.
* A statement names a checked table where it follows ``FROM``, ``JOIN``,
  ``UPDATE``, ``INTO`` or ``,`` in a FROM list.
* ``INSERT INTO t (...)`` is scoped when its column list holds the key column
  (every row it writes carries its conversation: the row lands in one
  partition); an ``INSERT ... SELECT`` must also scope the SELECT.
* Any other statement (SELECT, UPDATE, DELETE, and the SELECT of an INSERT) is
  scoped when every occurrence of a checked table in it is tested: its key
  column (qualified by the table's alias or name, or bare) compared with a
  bound parameter in any driver's style or a literal (``= ?``, ``= %(x)s``,
  ``= $1``, ``= :x``, ``= 'abc'``, ``IN (``, either way round), or joined to
  another occurrence's key column that is itself so tested, directly or
  through further joins (``m.conversation_id = c.id`` with ``c.id = ?``).
  Counted per occurrence: a statement naming a checked table several times
  (a self-join, the branches of a ``UNION ALL``, subqueries) needs as many
  tests. A join of key columns alone, with no value pinning either side,
  scopes nothing.
* Exceptions are listed in :data:`EXCEPTIONS`, each with its reason; the test
  fails on any violation not listed there, and on an exception no longer
  seen (so the list does not outlive what it excuses).

:func:`test_the_rule_catches_an_unscoped_statement` checks the rule itself on
synthetic statements, so a new unscoped query cannot slip through a rule that
accepts everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

import convkit
from convkit import ExtractiveSummarizer, ImagePart, Message, ToolCall
from convkit.store import _ops_core
from convkit.store import _schema as schema
from convkit.testing import XAIStandIn

from . import _store_support as sup
from ._integrations import png
from ._xai_support import SessionTwin

#: Tables holding a conversation's rows, with the column that names the conversation.
SCOPED: dict[str, str] = {
    "convkit_conversations": "id",
    "convkit_messages": "conversation_id",
    "convkit_tool_calls": "conversation_id",
    "convkit_token_counts": "conversation_id",
    "convkit_summaries": "conversation_id",
    "convkit_usage": "conversation_id",
    "convkit_window_starts": "conversation_id",
}

#: Statements allowed to touch a checked table without naming one conversation: a pattern
#: (searched in the normalized SQL) and why. Every entry must be seen by the workload.
EXCEPTIONS: dict[str, tuple[str, str]] = {
    "list_conversations": (
        r"^select convkit_conversations\.id, .* from convkit_conversations "
        r"where convkit_conversations\.namespace = \S+ (?:and \(convkit_conversations\.created_at > .*\) )?"
        r"order by convkit_conversations\.created_at, convkit_conversations\.id limit \S+(?: offset \S+)?$",
        "convkit/store/_conversations.py list_conversations: a page of one namespace's conversations, "
        "by (namespace, created_at, id); it reads conversation rows only (no message rows), and "
        "across conversations by design: a listing touches every partition (or shard)",
    ),
    "image garbage collection": (
        r"^select convkit_messages\.id from convkit_messages where \(?convkit_messages\.content like "
        r"'%%?' \|\| \S+ \|\| '%%?'\)? limit \S+(?: offset \S+)?$",
        "convkit/store/_image_gc.py drop_unreferenced_images: an image is stored once by content hash "
        "and shared by every conversation and namespace holding the same bytes, so before deleting "
        "one it looks for a reference in every message row (runs only when truncate, pop or "
        "delete_conversation removed a message with an image; a scan of every partition)",
    ),
    "latest summary by id": (
        r"left outer join convkit_summaries on convkit_summaries\.id = \(select max\(s2\.id\) as max_1 "
        r"from convkit_summaries as s2 where s2\.conversation_id = convkit_conversations\.id\) "
        r"where convkit_conversations\.id = \S+ and convkit_conversations\.namespace = \S+$",
        "convkit/store/_summary_window.py _head_sql: the latest summary is joined by its id, "
        "which a subquery scoped by conversation found; the row is the conversation's, but the "
        "join names no conversation_id, so a partitioned table cannot prune on it (adding "
        "convkit_summaries.conversation_id = convkit_conversations.id to the ON clause would)",
    ),
}


# -- the rule ---------------------------------------------------------------------------------------

_WORD = r"[a-z_][a-z0-9_]*"
#: Words that may follow a table's name but are not its alias.
_NOT_ALIAS = (
    r"(?!(?:where|on|set|join|left|right|inner|outer|full|cross|natural|order|group|having|limit|union|"
    r"values|using|for|returning|default|select|from|and|or)\b)"
)
#: A table named after FROM / JOIN / UPDATE / INTO, or a checked table after a comma (a FROM list),
#: with its alias.
#: ``(?![.\w(])``: a name followed by a dot is a column's qualifier, by ``(`` a function.
_TABLE_REF = re.compile(
    rf"\b(from|join|update|into)\s+({_WORD})(?![.\w(])(?:\s+(?:as\s+)?{_NOT_ALIAS}({_WORD})(?![.\w(]))?"
    rf"|,\s*({'|'.join(SCOPED)})(?![.\w(])(?:\s+(?:as\s+)?{_NOT_ALIAS}({_WORD})(?![.\w(]))?"
)
#: A value a key column may be compared with: a bound parameter in any driver's style, or a literal.
_VALUE = r"(?:\?|%s|%\([a-z0-9_]+\)s|\$\d+|:[a-z0-9_]+|'(?:[^']|'')*'|-?\d+)"


def normalize(sql: str) -> str:
    """Lower-case, identifier quotes dropped, whitespace collapsed."""
    return re.sub(r"\s+", " ", sql.replace('"', "").replace("`", "")).strip().lower()


def _scoped_names(sql: str, refs: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """For each ``(table, name)`` of ``refs`` (name: its alias, or the table): how many tests scope it.

    A name's key column (qualified by the name, or bare) compared with a value (``= value``,
    ``value =``, ``IN (``) is a test of that name. A join of two names' key columns
    (``m.conversation_id = c.id``) is a test of each side whose other side is pinned: has a
    value test, or joins a pinned name (transitively). A bare column counts for every name
    with that key column: SQL refuses a bare column two tables of one FROM hold.
    """
    tests = dict.fromkeys(refs, 0)
    node: dict[str, tuple[str, str]] = {}  # "name.column" -> its (table, name)
    for table, name in refs:
        col = SCOPED[table]
        node[f"{name}.{col}"] = (table, name)
        target = rf"(?:\b{re.escape(name)}\.{col}\b|(?<![a-z0-9_.]){col}\b)"
        tests[(table, name)] += len(re.findall(rf"{target}\s*(?:=\s*{_VALUE}|in\s*\()", sql))
        tests[(table, name)] += len(re.findall(rf"{_VALUE}\s*=\s*{target}", sql))
    key = "|".join(rf"\b{re.escape(k)}\b" for k in node)
    edges = [(node[a], node[b]) for a, b in re.findall(rf"({key})\s*=\s*({key})", sql) if a != b]
    pinned = {ref for ref, n in tests.items() if n}
    grew = True
    while grew:
        grew = False
        for a, b in edges:
            for x, y in ((a, b), (b, a)):
                if y in pinned and x not in pinned:
                    pinned.add(x)
                    grew = True
    for a, b in edges:
        tests[a] += b in pinned
        tests[b] += a in pinned
    return tests


def violations(sql: str) -> list[str]:
    """Why ``sql`` is not scoped by conversation (empty: scoped, or touches no checked table)."""
    s = normalize(sql)
    refs: list[tuple[str, str, str]] = []  # (keyword, table, name: its alias, or the table)
    for m in _TABLE_REF.finditer(s):
        if m.group(1):
            kw, table, alias = m.group(1), m.group(2), m.group(3) or m.group(2)
        else:
            kw, table, alias = ",", m.group(4), m.group(5) or m.group(4)
        if table in SCOPED:
            refs.append((kw, table, alias))
    if not refs:
        return []
    problems: list[str] = []
    body = s
    insert = re.match(rf"insert (?:or \w+ )?into ({_WORD})\s*\(([^)]*)\)", s)
    if insert and insert.group(1) in SCOPED:
        table = insert.group(1)
        cols = [c.strip() for c in insert.group(2).split(",")]
        if SCOPED[table] not in cols:
            problems.append(f"INSERT INTO {table} without its key column {SCOPED[table]}")
        refs = [r for r in refs if r[0] != "into"]
        body = s[insert.end() :]  # an INSERT ... SELECT: the SELECT is checked below
    elif s.startswith("insert"):
        into = [r for r in refs if r[0] == "into"]
        if into:
            problems.append(f"INSERT INTO {into[0][1]} without a column list")
            refs = [r for r in refs if r[0] != "into"]
    if not refs:
        return problems
    occurrences: dict[tuple[str, str], int] = {}
    for _, table, name in refs:
        occurrences[(table, name)] = occurrences.get((table, name), 0) + 1
    tests = _scoped_names(body, set(occurrences))
    for (table, name), n in sorted(occurrences.items()):
        if tests[(table, name)] < n:
            problems.append(
                f"{table} (as {name}) named {n} time(s) but {tests[(table, name)]} test(s) of "
                f"{SCOPED[table]} against a value or a conversation key that is"
            )
    return problems


# -- capture ------------------------------------------------------------------------------------------


class Captured:
    """Every statement a store runs: SQLAlchemy's cursor events, and the window's raw statements."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements: list[str] = []
        self.raw: list[str] = []
        original = _ops_core.driver_sql

        def driver_sql(dialect: sa.Dialect, req: Any) -> Any:  # run_raw's SQL, past SQLAlchemy's events
            sql, params = original(dialect, req)
            self.raw.append(sql)
            return sql, params

        monkeypatch.setattr(_ops_core, "driver_sql", driver_sql)

    def on_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    def attach(self, engine: sa.Engine) -> None:
        sa.event.listen(engine, "before_cursor_execute", self.on_execute)


# -- the workload ---------------------------------------------------------------------------------------


def _history(n: int) -> list[Message]:
    msgs: list[Message] = [Message.system("You are terse.", pinned=True)]
    msgs.append(Message.user(["look at this", ImagePart.from_bytes(png(4, 3))]))
    msgs.append(Message.assistant("a red square"))
    msgs.append(
        Message.assistant(
            tool_calls=[ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')]
        )
    )
    msgs.append(Message.tool("sunny", tool_call_id="call_1"))
    for i in range(n):
        text = f"message {i}: " + "the quick brown fox jumps over the lazy dog " * 12
        msgs.append(Message.user(text) if i % 2 == 0 else Message.assistant(text))
    return msgs


def workload(flavour: str, url: str, xai: XAIStandIn, attach: Callable[[sa.Engine], None], tmp: Path) -> None:
    counter = convkit.EstimateCounter()
    client_kw = {"api_key": xai.api_key, "base_url": xai.base_url}
    twin = SessionTwin(
        flavour,
        url,
        client_kw=client_kw,
        counters=[counter],
        model="grok-2-vision-1212",
        counter=counter,
        images="drop",
    )
    try:
        engine = twin.store.engine
        attach(engine if flavour == "sync" else engine.sync_engine)
        call = twin.store_call
        cid = twin.conversation_id
        call("extend", cid, _history(120))
        call("append", cid, Message.user("and now?"))
        call("get_conversation", cid)
        call("messages", cid)
        call("messages", cid, start=3, stop=9)
        call("window", cid, model="grok-2-vision-1212", counter=counter)
        call("window", cid, model="grok-2-vision-1212", counter=counter, policy="stable")
        call("window", cid, model="grok-2-1212", counter=counter, images="drop", reserve=126_000)
        call("window", cid, model="grok-2-vision-1212", counter=convkit.EstimateCounter(3.0))
        call(
            "window",
            cid,
            model="grok-2-vision-1212",
            counter=counter,
            strategy="summarize",
            summarizer=ExtractiveSummarizer(),
        )
        call("summaries", cid)
        twin.send("what next?")
        twin.send_stream("and after that?")
        call(
            "record_turn",
            cid,
            Message.assistant("recorded"),
            {"model": "grok-2-vision-1212", "prompt_tokens": 10, "completion_tokens": 2},
        )
        call("calibrate", "grok-2-vision-1212", counter, 1.05)
        call("calibration", "grok-2-vision-1212", counter)
        call("usage", cid)
        child = call("fork", cid, 40, title="fork")
        call("fork", cid)
        call("append", child.id, Message.user("on the fork"))
        call("pop", child.id)
        call("truncate", child.id, 10)
        text = call("export_jsonl", cid)
        path = tmp / f"{flavour}.jsonl"
        path.write_text(text, encoding="utf-8")
        imported = call("import_jsonl", str(path), title="imported")
        call("list_conversations")
        call("list_conversations", limit=1, after=cid)
        call("delete_conversation", imported.id)
        call("truncate", cid, 1)  # removes the image: its bytes are still used by the fork
        call("delete_conversation", child.id)
        summarizing = twin.make_client()
        cls = convkit.Session if flavour == "sync" else convkit.AsyncSession
        other = call("create_conversation", title="summarizing")
        call("extend", other.id, _history(60)[5:])
        session = cls(
            twin.store,
            other.id,
            model="grok-2-vision-1212",
            client=summarizing,
            counter=counter,
            strategy="summarize",
            summarizer=ExtractiveSummarizer(),
        )
        twin.run(session.send("summarize and answer"))
        call("delete_conversation", cid)
    finally:
        twin.close()


# -- the tests --------------------------------------------------------------------------------------------


def check(statements: list[str]) -> tuple[dict[str, list[str]], set[str]]:
    """The statements that break the rule and no exception excuses, and the exceptions used."""
    unexcused: dict[str, list[str]] = {}
    used: set[str] = set()
    for sql in set(statements):
        problems = violations(sql)
        if not problems:
            continue
        s = normalize(sql)
        excused = [name for name, (pattern, _) in EXCEPTIONS.items() if re.search(pattern, s)]
        if excused:
            used.update(excused)
        else:
            unexcused[s] = problems
    return unexcused, used


def test_every_statement_on_a_conversations_rows_is_scoped(
    backend: str, flavour: str, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cap = Captured(monkeypatch)
    with XAIStandIn() as xai:
        workload(flavour, db_url, xai, cap.attach, tmp_path)
    statements = cap.statements + cap.raw
    # the capture saw the workload: the window's raw statements, and every checked table written and read
    assert cap.raw, "no raw window statement captured"
    seen = " ".join(normalize(s) for s in statements)
    for table in SCOPED:
        assert f"insert into {table} " in seen, f"the workload never wrote {table}"
        assert re.search(rf"(?:from|join) {table}\b", seen), f"the workload never read {table}"
    unexcused, used = check(statements)
    assert not unexcused, (
        "statements on a conversation's rows that do not name the conversation:\n"
        + "\n".join(f"{sql}\n  -> {'; '.join(problems)}" for sql, problems in sorted(unexcused.items()))
    )
    assert used == set(EXCEPTIONS), f"exceptions the workload no longer needs: {set(EXCEPTIONS) - used}"


_SCOPED_EXAMPLES = [
    "SELECT seq FROM convkit_messages WHERE conversation_id = ? AND seq > ?",
    'SELECT m.seq FROM "convkit_messages" AS m WHERE m."conversation_id" = %(cid)s',
    "SELECT seq FROM convkit_messages WHERE convkit_messages.conversation_id = $1",
    "SELECT seq FROM convkit_messages WHERE convkit_messages.conversation_id IN (?, ?)",
    "SELECT seq FROM convkit_messages WHERE conversation_id = 'abc'",
    "INSERT INTO convkit_usage (conversation_id, model) VALUES (?, ?)",
    "UPDATE convkit_conversations SET last_seq = ? WHERE convkit_conversations.id = ?",
    "DELETE FROM convkit_tool_calls WHERE conversation_id = :cid",
    "SELECT c.id, m.seq FROM convkit_conversations c JOIN convkit_messages m "
    "ON m.conversation_id = c.id WHERE c.id = ?",
    "SELECT seq FROM convkit_messages WHERE conversation_id = ? UNION ALL "
    "SELECT seq FROM convkit_token_counts WHERE conversation_id = ?",
    "SELECT m.seq FROM convkit_messages m JOIN convkit_token_counts t "
    "ON t.conversation_id = m.conversation_id AND t.seq = m.seq WHERE m.conversation_id = ?",
    "SELECT (SELECT max(s.id) FROM convkit_summaries s WHERE s.conversation_id = c.id) "
    "FROM convkit_conversations c WHERE c.id = ?",
    "SELECT sha256 FROM convkit_images WHERE sha256 = ?",  # not a checked table
]

_UNSCOPED_EXAMPLES = [
    "SELECT seq FROM convkit_messages WHERE seq > ?",
    "SELECT count(*) FROM convkit_usage",
    "DELETE FROM convkit_token_counts WHERE counter_id = ?",
    "UPDATE convkit_messages SET keep = 1 WHERE id = ?",
    "UPDATE convkit_conversations SET namespace = namespace WHERE 0",
    "INSERT INTO convkit_summaries (first_seq, last_seq) VALUES (?, ?)",
    "INSERT INTO convkit_messages VALUES (?, ?, ?)",
    "SELECT seq FROM convkit_messages WHERE conversation_id = seq",  # compared with a non-key column
    "SELECT seq FROM convkit_messages WHERE conversation_id = ? UNION ALL SELECT seq FROM convkit_messages",
    "SELECT m.seq FROM convkit_conversations c JOIN convkit_messages m ON m.seq = c.last_seq WHERE c.id = ?",
    "SELECT m.seq FROM convkit_conversations c JOIN convkit_messages m ON m.conversation_id = c.id",
    "SELECT m.seq FROM convkit_messages m JOIN convkit_token_counts t "
    "ON t.conversation_id = m.conversation_id WHERE m.seq = ?",
    "SELECT seq FROM convkit_images, convkit_messages WHERE sha256 = ?",
    "INSERT INTO convkit_tool_calls (conversation_id, call_id, seq) "
    "SELECT ?, call_id, seq FROM convkit_tool_calls WHERE seq < ?",
    "SELECT convkit_messages.id FROM convkit_messages WHERE convkit_messages.role = ? LIMIT ? OFFSET ?",
]


@pytest.mark.parametrize("sql", _SCOPED_EXAMPLES)
def test_the_rule_accepts_a_scoped_statement(sql: str) -> None:
    assert violations(sql) == []


@pytest.mark.parametrize("sql", _UNSCOPED_EXAMPLES)
def test_the_rule_catches_an_unscoped_statement(sql: str) -> None:
    """A new unscoped query fails the main test: the rule flags it and no exception excuses it."""
    assert violations(sql), sql
    unexcused, _ = check([sql])
    assert unexcused, f"an exception excuses {sql!r}"


def test_an_unscoped_query_added_to_the_store_fails_the_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """End to end: a store operation rewritten without its conversation filter is caught."""
    from convkit.store import _codec, _image_gc

    def images_of(cid: str, after_seq: int = 0) -> Any:  # the original, minus conversation_id = cid
        m = schema.messages
        stmt = sa.select(m.c.content).where(m.c.seq > after_seq, m.c.content.contains(_codec.IMAGE_MARKER))
        rows = (yield _ops_core.Exec(stmt)).all()
        return {sha for (content,) in rows for sha in _codec.image_shas(content)}

    monkeypatch.setattr(_image_gc, "images_of", images_of)
    cap = Captured(monkeypatch)
    with convkit.Store(sup.sqlite_database(tmp_path / "s.db")) as store:
        cap.attach(store.engine)
        conv = store.create_conversation()
        store.append(conv.id, Message.user(["see", ImagePart.from_bytes(png(4, 3))]))
        store.delete_conversation(conv.id)
    unexcused, _ = check(cap.statements)
    assert list(unexcused) == [
        "select convkit_messages.content from convkit_messages where convkit_messages.seq > ? "
        "and (convkit_messages.content like '%' || ? || '%')"
    ], unexcused


@pytest.mark.parametrize(
    "dialect", [sqlite_dialect.dialect(), pg_dialect.dialect()], ids=["sqlite", "postgresql"]
)
def test_the_rule_catches_a_compiled_unscoped_statement(dialect: sa.Dialect) -> None:
    """The same on SQL as the store's dialects compile it (qualified columns, their parameter styles)."""
    m, c = schema.messages, schema.summaries
    unscoped = [
        sa.select(m.c.seq).where(m.c.seq > 3),
        sa.select(m.c.seq)
        .where(m.c.conversation_id == "a")
        .union_all(sa.select(m.c.seq).where(m.c.seq == 1)),
        sa.delete(c).where(c.c.last_seq > 3),
        sa.select(m.c.content).where(m.c.content.contains("x")).limit(1),  # like GC, with no image marker
    ]
    for stmt in unscoped:
        sql = str(stmt.compile(dialect=dialect))
        assert violations(sql), sql
        assert check([sql])[0], sql
    scoped = sa.select(m.c.seq).where(m.c.conversation_id == sa.bindparam("cid"), m.c.seq > 3)
    assert violations(str(scoped.compile(dialect=dialect))) == []
