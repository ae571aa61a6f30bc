"""Sessions under cancellation and with two writers on one conversation.

* ``AsyncSession.send``, ``send_stream`` (cancelled while iterating) and a turn whose
  window folds a summary (``strategy="summarize"`` with a slow async summarizer), each
  cancelled at random moments on aiosqlite, asyncpg and psycopg, with the stand-in holding
  some responses (``Fault.slow``, also mid-stream) so cancellations land during the HTTP
  call as well as during the database's transactions. After each cancellation the
  conversation holds the turn whole, or none of it, or (the documented failed turn) the
  user's message alone; every reply has exactly one usage row and every usage row of a
  reply its reply; every stored summary is whole; sending the same message again
  completes the turn without storing it twice; nothing hangs (each call bounded).
* Two writers: two ``Session``s on two ``Store`` instances (threads) sending turns to one
  conversation at once, on SQLite and PostgreSQL. The behaviour ``Session`` documents:
  every user message is stored once, every turn stores exactly one reply with its usage
  row, each window sent is a consistent snapshot (whole, in seq order, ending with that
  turn's own message or a message stored after it), and every request is well formed.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import convkit
from convkit import AsyncSession, AsyncXAIClient, EstimateCounter, InvalidConversationError, Message
from convkit.store import AsyncStore
from convkit.store import _schema as t
from convkit.testing import Fault, Reply, XAIStandIn

from . import _store_support as sup
from . import _xai_support as xs
from .test_store_faults import ASYNC_DRIVERS, driver_url, run_bounded, within

KEY = xs.new_key()
ROUNDS = 20
#: the whole test, per driver
TEST_BOUND = 240.0


def sync_url(url: str) -> str:
    """The synchronous URL of the same database (for reading rows back)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return u.set(drivername="sqlite").render_as_string(hide_password=False)
    return u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def usage_rows(engine: sa.Engine, cid: str) -> list[int | None]:
    """The seq of every usage row of ``cid`` (``None``: a summarizer's row)."""
    with engine.connect() as conn:
        return [
            r[0]
            for r in conn.execute(
                sa.select(t.usage.c.seq).where(t.usage.c.conversation_id == cid).order_by(t.usage.c.id)
            )
        ]


def check_whole(engine: sa.Engine, cid: str, messages: Sequence[Message]) -> None:
    """Every reply has one usage row, and every reply's usage row its reply."""
    replies = [seq for seq, m in enumerate(messages, 1) if m.role == "assistant"]
    rows = [seq for seq in usage_rows(engine, cid) if seq is not None]
    assert sorted(rows) == replies, f"usage rows of seqs {rows} for replies at seqs {replies}"


def shape(messages: Sequence[Message]) -> list[tuple[str, str]]:
    """Roles and the start of each text (the stand-in's echo shortens long replies)."""
    return [(m.role, (m.text or "")[:40]) for m in messages]


def hold(xai: XAIStandIn, loop: asyncio.AbstractEventLoop, rnd: random.Random, *, stream: bool) -> None:
    """Maybe queue a held response, released 0-80 ms from now (mid-stream for some streams)."""
    if rnd.random() < 0.3:
        return
    release = threading.Event()
    after = rnd.choice([None, 1, 2]) if stream else None
    xai.queue(Fault.slow(release, after_chunks=after))
    loop.call_later(rnd.uniform(0.0, 0.08), release.set)


class SlowSummarizer:
    """An async summarizer taking 0-60 ms, whose every summary names how many messages it folded."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.texts: set[str] = set()

    async def summarize(self, messages: Sequence[Message], *, previous: str | None, max_tokens: int) -> str:
        await asyncio.sleep(self.rnd.uniform(0.0, 0.06))
        text = f"summary of {len(messages)} messages after {len(previous or '')} characters"
        self.texts.add(text)
        return text


def check_summaries(stored: Sequence[convkit.StoredSummary], texts: set[str], length: int) -> None:
    for s in stored:
        assert s.text in texts, f"a summary that was never written whole: {s.text!r}"
        assert 1 <= s.first_seq <= s.last_seq <= length


@pytest.mark.parametrize("kind", ["send", "send_stream", "summarize"])
@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
def test_a_turn_cancelled_at_random_moments_is_whole_absent_or_a_failed_turn(
    driver: str, kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = driver_url(driver, tmp_path, request)
    engine = sa.create_engine(sync_url(url))
    rnd = random.Random(f"{driver} {kind}")
    outcomes: dict[str, int] = {}
    xai = XAIStandIn(api_key=KEY).start()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        store = AsyncStore(url, counters=[EstimateCounter()], upgrade=False)
        client = AsyncXAIClient(api_key=KEY, base_url=xai.base_url, max_retries=0, timeout=20.0)
        summarizer = SlowSummarizer(rnd)
        kw: dict[str, Any] = {}
        if kind == "summarize":  # a budget of a few hundred tokens: most turns fold
            kw = {"strategy": "summarize", "summarizer": summarizer, "reserve": 131_072 - 700}
        try:
            cid = (await within(store.create_conversation(), "create_conversation")).id
            session = AsyncSession(store, cid, model="grok-2", client=client, **kw)

            async def turn(text: str) -> None:
                if kind == "send_stream":
                    async for _ in session.send_stream(text):
                        pass
                else:
                    await session.send(text)

            for r in range(ROUNDS):
                words = ["tell me about the tides"] * (8 if kind == "summarize" else 1)
                text = f"round {r}: " + " ".join(words)
                before = shape(await within(store.messages(cid), "messages"))
                hold(xai, loop, rnd, stream=kind == "send_stream")
                call = asyncio.ensure_future(turn(text))
                await asyncio.sleep(rnd.uniform(0.0, rnd.choice([0.005, 0.02, 0.05, 0.12])))
                call.cancel()
                await within(asyncio.wait([call]), f"round {r}: the cancelled {kind}")
                if not call.cancelled():
                    call.result()  # completed before the cancellation: no error either
                after = await within(store.messages(cid), "messages")
                added = shape(after)[len(before) :]
                assert shape(after)[: len(before)] == before
                asked = [("user", text[:40])]
                whole = [*asked, ("assistant", f"You said: {text}"[:40])]
                assert added in ([], asked, whole), f"round {r}: {added}"
                if not call.cancelled():
                    assert added == whole
                outcome = {0: "absent", 1: "failed turn", 2: "whole"}[len(added)]
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                check_whole(engine, cid, after)
                if kind == "summarize":
                    stored = await within(store.summaries(cid), "summaries")
                    check_summaries(stored, summarizer.texts, len(after))
                if added != whole:  # the same message again: the turn completes, stored once
                    await within(turn(text), f"round {r}: sending again")
                    again = shape(await within(store.messages(cid), "messages"))
                    assert again == [*before, *whole], f"round {r}: {again[len(before) :]}"
                check_whole(engine, cid, await within(store.messages(cid), "messages"))
            if kind == "summarize":
                assert summarizer.texts, "no turn folded a summary"
                assert await within(store.summaries(cid), "summaries")
        finally:
            await within(client.aclose(), "client.aclose")
            await within(store.aclose(), "store.aclose")

    try:
        run_bounded(main, TEST_BOUND)
    finally:
        xai.stop()
        engine.dispose()
    assert xai.errors == []
    xs.check_requests(xai)
    print(f"{driver} {kind}: {outcomes}")
    # the rounds did cancel turns midway (most hold the reply past the cancellation)
    assert outcomes.get("absent", 0) + outcomes.get("failed turn", 0) >= ROUNDS // 4, outcomes


# -- two writers on one conversation ---------------------------------------------------------

TWO_WRITER_TURNS = 12
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


def wire(m: Message) -> tuple[str, str, tuple[str, ...], str | None]:
    """A stored message as the request shows it: role, text, tool call ids, tool_call_id."""
    return (m.role, m.text or "", tuple(c.id for c in m.tool_calls), m.tool_call_id)


def sent(body: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...], str | None]]:
    return [
        (
            m["role"],
            m.get("content") or "",
            tuple(c["id"] for c in m.get("tool_calls") or ()),
            m.get("tool_call_id"),
        )
        for m in body["messages"]
    ]


def tool_results_follow_calls(
    messages: Sequence[tuple[str, str, tuple[str, ...], str | None]], *, request: bool = False
) -> None:
    """No tool result without its call earlier, none answered twice; in a request, no call without
    its results."""
    calls: set[str] = set()
    answered: set[str] = set()
    for role, _, ids, answers in messages:
        calls.update(ids)
        if role == "tool":
            assert answers in calls, f"a tool result for {answers} without its call"
            assert answers not in answered, f"{answers} answered twice"
            answered.add(answers)
    if request:
        assert calls == answered, f"a request with tool calls {sorted(calls - answered)} without results"


def two_sessions(url: str, xai: XAIStandIn, **kw: Any) -> tuple[list[Any], list[Any], list[convkit.Session]]:
    """Two Stores (as two processes would have), two clients, two Sessions on one new conversation."""
    stores = [convkit.Store(url, counters=[EstimateCounter()]) for _ in range(2)]
    clients = [convkit.XAIClient(api_key=KEY, base_url=xai.base_url, max_retries=0) for _ in range(2)]
    cid = stores[0].create_conversation().id
    sessions = [
        convkit.Session(s, cid, model="grok-2", client=c, conv_id=f"writer-{w}", **kw)
        for w, (s, c) in enumerate(zip(stores, clients, strict=True))
    ]
    return stores, clients, sessions


def writer_of(request: Any) -> int:
    return int(request.headers["x-grok-conv-id"].removeprefix("writer-"))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_writers_sending_turns_to_one_conversation_at_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two Sessions on two Stores (threads), some replies calling a tool: as Session documents."""
    url = sup.database(backend, tmp_path, request)
    xai = XAIStandIn(api_key=KEY).start()
    # every third reply (to whichever writer asks) calls a tool: its results come back by
    # add_tool_results and resume, while the other writer goes on sending
    xai.queue(
        *(
            Reply(tool_calls=[{"id": f"call_{k}", "name": "get_weather", "arguments": {"k": k}}])
            if k % 3 == 1
            else Reply()
            for k in range(3 * TWO_WRITER_TURNS)
        )
    )
    stores, clients, sessions = two_sessions(url, xai, tools=[WEATHER])
    cid = sessions[0].conversation_id
    errors: list[BaseException] = []
    refused = [0, 0]
    start = threading.Barrier(2)

    def writer(w: int) -> None:
        try:
            start.wait(10)
            for i in range(TWO_WRITER_TURNS):
                reply = answered(w, functools.partial(sessions[w].send, f"writer {w} turn {i}"))
                while reply.tool_calls:
                    sessions[w].add_tool_results({c.id: f"18C for {c.id}" for c in reply.tool_calls})
                    reply = answered(w, sessions[w].resume)
        except BaseException as exc:  # reported below
            errors.append(exc)

    def answered(w: int, turn: Callable[[], convkit.Completion]) -> convkit.Completion:
        """The turn; refused while the other writer's tool call waits for its results, then resumed."""
        try:
            return turn()
        except InvalidConversationError:
            refused[w] += 1
        for _ in range(500):
            time.sleep(0.01)
            try:
                return sessions[w].resume()
            except InvalidConversationError:
                refused[w] += 1
        raise AssertionError("the other writer's tool results never came")

    try:
        began = time.monotonic()
        threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        assert not any(th.is_alive() for th in threads), "a writer hung"
        assert not errors, errors
        took = time.monotonic() - began

        stored = stores[1].messages(cid)
        users = [m.text for m in stored if m.role == "user"]
        # every user message stored once, each writer's in its own order
        for w in range(2):
            assert [u for u in users if u.startswith(f"writer {w} ")] == [
                f"writer {w} turn {i}" for i in range(TWO_WRITER_TURNS)
            ]
        assert len(users) == 2 * TWO_WRITER_TURNS
        chats = [r for r in xai.requests if r.endpoint == "chat"]
        replies = [m for m in stored if m.role == "assistant"]
        assert len(replies) == len(chats)  # one reply per request (send or resume)
        engine = sa.create_engine(url)
        try:
            check_whole(engine, cid, stored)  # each with its one usage row
        finally:
            engine.dispose()
        tool_results_follow_calls([wire(m) for m in stored])
        calls = {c.id for m in stored for c in m.tool_calls}
        assert calls
        assert calls == {m.tool_call_id for m in stored if m.role == "tool"}
        # every request is a consistent snapshot: the conversation's first n messages, in seq
        # order, with no tool result before its call; and holds its writer's turns so far
        everything = [wire(m) for m in stored]
        for w in range(2):
            reached = -1
            for r in (r for r in chats if writer_of(r) == w):
                request_ = sent(r.json)
                assert request_ == everything[: len(request_)], "a request that was no snapshot"
                tool_results_follow_calls(request_, request=True)
                own = [t for role, t, _, _ in request_ if role == "user" and t.startswith(f"writer {w} ")]
                assert own == [f"writer {w} turn {i}" for i in range(len(own))]
                assert len(own) - 1 >= reached, "a request without its writer's latest message"
                reached = len(own) - 1
            assert reached == TWO_WRITER_TURNS - 1
        pairs = sum(1 for a, b in itertools.pairwise(stored) if a.role == b.role == "user")
        between = sum(1 for a, b in itertools.pairwise(stored) if a.tool_calls and b.role != "tool")
        print(
            f"{backend}: 2 writers x {TWO_WRITER_TURNS} turns, {len(chats)} requests in {took:.2f} s; "
            f"{pairs} user,user pairs; {between} tool calls with another message before their results; "
            f"{sum(refused)} turns refused while a call waited for its results"
        )
    finally:
        for c in clients:
            c.close()
        for s in stores:
            s.close()
        xai.stop()
    assert xai.errors == []
    xs.check_requests(xai)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_writers_a_turn_overtaken_and_the_same_message_twice(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The orders Session documents, forced: a turn whose window is read after another writer's
    whole turn sends that turn too (ending with its reply) and stores its reply last; the same
    message from both writers while the first waits is stored once and answered twice."""
    url = sup.database(backend, tmp_path, request)
    xai = XAIStandIn(api_key=KEY).start()
    stores, clients, sessions = two_sessions(url, xai)
    cid = sessions[0].conversation_id
    errors: list[BaseException] = []
    try:
        # writer 0 stores its message, then waits (before its window) for writer 1's whole turn
        stored_first, overtaken = threading.Event(), threading.Event()
        window = stores[0].window

        def late_window(*args: Any, **kwargs: Any) -> Any:
            stored_first.set()
            assert overtaken.wait(30)
            return window(*args, **kwargs)

        stores[0].window = late_window  # type: ignore[method-assign]

        def first() -> None:
            try:
                sessions[0].send("A")
            except BaseException as exc:  # reported below
                errors.append(exc)

        th = threading.Thread(target=first, daemon=True)
        th.start()
        assert stored_first.wait(30)
        sessions[1].send("B")
        overtaken.set()
        th.join(60)
        assert not th.is_alive()
        assert not errors, errors
        del stores[0].window
        assert [(m.role, m.text) for m in stores[1].messages(cid)] == [
            ("user", "A"),
            ("user", "B"),
            ("assistant", "You said: B"),
            ("assistant", "You said: B"),
        ]
        bodies = xai.chat_requests
        assert [sent(b) for b in bodies] == [
            [("user", "A", (), None), ("user", "B", (), None)],
            [("user", "A", (), None), ("user", "B", (), None), ("assistant", "You said: B", (), None)],
        ]

        # the same message from both writers while the first waits for its reply: a retry
        release = threading.Event()
        xai.queue(Fault.slow(release))
        arrived = len(xai.requests) + 1

        def again() -> None:
            try:
                sessions[0].send("same")
            except BaseException as exc:  # reported below
                errors.append(exc)

        th = threading.Thread(target=again, daemon=True)
        th.start()
        try:
            assert xai.wait_for_requests(arrived)  # the first writer's request is held
            sessions[1].send("same")
        finally:
            release.set()
        th.join(60)
        assert not th.is_alive()
        assert not errors, errors
        tail = [(m.role, m.text) for m in stores[1].messages(cid)][4:]
        assert tail == [("user", "same"), ("assistant", "You said: same"), ("assistant", "You said: same")]
        engine = sa.create_engine(url)
        try:
            check_whole(engine, cid, stores[1].messages(cid))
        finally:
            engine.dispose()
    finally:
        for c in clients:
            c.close()
        for s in stores:
            s.close()
        xai.stop()
    assert xai.errors == []
    xs.check_requests(xai)


def test_a_turn_is_refused_while_a_tool_call_waits_for_its_results(tmp_path: Path) -> None:
    """The window would send the call without its results: nothing is sent, the message stays
    stored (a failed turn), and resume() completes the turn once the results are stored."""
    xai = XAIStandIn(api_key=KEY).start()
    store = convkit.Store(sup.sqlite_database(tmp_path / "s.db"), counters=[EstimateCounter()])
    client = convkit.XAIClient(api_key=KEY, base_url=xai.base_url, max_retries=0)
    try:
        cid = store.create_conversation().id
        session = convkit.Session(store, cid, model="grok-2", client=client, tools=[WEATHER])
        xai.queue(Reply(tool_calls=[{"id": "call_1", "name": "get_weather", "arguments": {}}]))
        assert [c.id for c in session.send("weather?").tool_calls] == ["call_1"]
        with pytest.raises(InvalidConversationError, match="'call_1' without their results"):
            session.send("and tomorrow?")
        assert len(xai.chat_requests) == 1  # nothing sent
        assert [m.role for m in store.messages(cid)] == ["user", "assistant", "user"]
        with pytest.raises(InvalidConversationError):
            session.send("and tomorrow?")  # a retry: still refused, still stored once
        session.add_tool_results({"call_1": "18C"})
        assert session.resume().text == "You said: and tomorrow?"
        assert [m.role for m in store.messages(cid)] == ["user", "assistant", "user", "tool", "assistant"]
        tool_results_follow_calls(sent(xai.chat_requests[-1]), request=True)
    finally:
        client.close()
        store.close()
        xai.stop()
    assert xai.errors == []
    xs.check_requests(xai)
