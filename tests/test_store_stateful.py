"""A hypothesis state machine drives a Store and a plain in-memory model with the same operations.

The model is a dict per namespace of conversation id -> list of messages.
Operations, valid and invalid alike: create; append or extend generated
chunks (``convkit.testing.strategies.conversations``, so tool call ids repeat
across chunks); answer an earlier tool call, or one nobody made; bad messages
(alone, or last in a batch of good ones); reads of seq ranges; windows
(several models, counters the store counts with and one it back-fills,
tight reserves) compared with ``fit`` over the model's messages; forks at
random seqs (some out of range); truncate and pop; JSONL export and re-import; deletes; and
every operation on another namespace's ids, on deleted ids and on random
ids. After every step the two agree: the same results, the same errors, and
(checked as an invariant) the same conversations with the same message
counts in each namespace.

Runs on SQLite (a temporary file) and PostgreSQL; each example uses two new
namespaces on the test's database.
"""

from __future__ import annotations

import base64
import io
import math
import uuid
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from convkit import (
    EstimateCounter,
    InvalidConversationError,
    InvalidImageError,
    InvalidMessageError,
    Message,
    ModelSpec,
    ValidationError,
    fit,
    get_model,
)
from convkit._errors import ConversationNotFoundError
from convkit.store import Store
from convkit.store._db import create_sync
from convkit.testing.strategies import conversations, texts, tool_calls

from . import _store_support as sup

EXAMPLES = {"sqlite": 40, "postgresql": 15}
TITLES = texts(max_size=20).filter(lambda s: "\x00" not in s)  # a NUL in a title is refused
STEPS = 40
MAX_TRACKED = 4

TINY = ModelSpec("stateful-tiny", 500, {"text", "image"}, 1.0, 1.0, 1.0, message_overhead=2)
MODELS: tuple[str | ModelSpec, ...] = ("convkit-test-small", "grok-2-1212", "grok-2-vision-1212", TINY)

_HUGE = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(10 * 1024 * 1024)).decode()
#: Bad messages by name (strategies draw the names: hypothesis prints what it draws, and one
#: of these holds a 14 MB data URL).
BAD: dict[str, tuple[dict[str, Any], type[Exception]]] = {
    "unknown role": ({"role": "robot", "content": "beep"}, InvalidMessageError),
    "tool without tool_call_id": ({"role": "tool", "content": "no call id"}, InvalidMessageError),
    "invalid JSON arguments": (
        {"role": "assistant", "tool_calls": [{"id": "x1", "function": {"name": "f", "arguments": "{oops"}}]},
        InvalidMessageError,
    ),
    "empty content": ({"role": "user", "content": "  "}, InvalidMessageError),
    "image over 10 MiB": (
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": _HUGE}}]},
        InvalidImageError,
    ),
    "not an image": (
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}],
        },
        InvalidImageError,
    ),
    "tool result for an unknown call": (
        {"role": "tool", "tool_call_id": "call_nobody_made", "content": "r"},
        InvalidConversationError,
    ),
}


def _links_ok(existing: list[Message], batch: list[Message]) -> bool:
    """Does every tool message of ``batch`` answer a call made before it?"""
    calls = {c.id for m in existing for c in m.tool_calls}
    for m in batch:
        if m.role == "tool" and m.tool_call_id not in calls:
            return False
        calls.update(c.id for c in m.tool_calls)
    return True


def _inside_tool_groups(messages: list[Message]) -> list[int]:
    """Seqs k such that a call made before k is answered after k."""
    made: dict[str, int] = {}
    inside: set[int] = set()
    for seq, m in enumerate(messages, 1):
        if m.role == "tool" and m.tool_call_id in made:
            inside.update(range(made[m.tool_call_id] + 1, seq))
        for c in m.tool_calls:
            made[c.id] = seq
    return sorted(inside)


def _reserve_for(messages: list[Message], spec: ModelSpec, counter: Any, per_mille: int | None) -> int:
    if per_mille is None:
        return 0
    try:
        whole = counter.count_messages(messages, model=spec, images="drop")
    except ValidationError:
        return 0
    return max(0, spec.context_window - math.ceil(whole * per_mille / 1000 * (1 + counter.margin)))


class StoreMachine(RuleBasedStateMachine):
    """The store and the model, step by step."""

    stored = Bundle("stored")

    def __init__(self, engine: Any, backfilled: Any) -> None:
        super().__init__()
        self.engine = engine
        tag = uuid.uuid4().hex[:10]
        self.namespaces = (f"a-{tag}", f"b-{tag}")
        self.stores = {
            ns: Store(engine=engine, namespace=ns, counters=[EstimateCounter()], upgrade=False)
            for ns in self.namespaces
        }
        self.model: dict[str, dict[str, list[Message]]] = {ns: {} for ns in self.namespaces}
        self.tracked = 0
        self.grown = 0
        self.counters: dict[str, Any] = {
            "configured": None,
            "back-filled": backfilled,
            "upper bound": EstimateCounter.upper_bound(),
        }

    def teardown(self) -> None:
        for s in self.stores.values():
            s.close()

    # -- helpers ----------------------------------------------------------------------------
    def track(self, ns: str, cid: str) -> Any:
        """Put a new conversation in the bundle, unless it holds enough already.

        (Few conversations get many operations each: long histories, forks inside tool groups.)
        Untracked ones stay in the model, so the invariant still checks them.
        """
        if self.tracked >= MAX_TRACKED:
            return multiple()
        self.tracked += 1
        return ns, cid

    def other(self, ns: str) -> str:
        a, b = self.namespaces
        return b if ns == a else a

    def alive(self, ns: str, cid: str) -> bool:
        return cid in self.model[ns]

    def agree(self, ns: str, cid: str) -> None:
        assert self.stores[ns].messages(cid) == self.model[ns][cid]

    def not_found(self, store: Store, cid: str) -> None:
        """Every operation on an id this store cannot see raises ConversationNotFoundError."""
        for call in (
            lambda: store.get_conversation(cid),
            lambda: store.messages(cid, start=1),
            lambda: store.append(cid, Message.user("hello?")),
            lambda: store.extend(cid, []),
            lambda: store.window(cid, model="convkit-test-small"),
            lambda: store.fork(cid, 0),
            lambda: store.export_jsonl(cid),
            lambda: store.truncate(cid, 0),
            lambda: store.pop(cid),
            lambda: store.delete_conversation(cid),
        ):
            with pytest.raises(ConversationNotFoundError) as info:
                call()
            assert info.value.namespace == store.namespace

    # -- rules ---------------------------------------------------------------------------------
    @precondition(lambda self: self.tracked < MAX_TRACKED)
    @rule(target=stored, which=st.integers(0, 1), title=st.none() | TITLES)
    def create(self, which: int, title: str | None) -> tuple[str, str]:
        ns = self.namespaces[which]
        conv = self.stores[ns].create_conversation(title=title)
        assert (conv.namespace, conv.title, conv.message_count) == (ns, title, 0)
        self.model[ns][conv.id] = []
        return self.track(ns, conv.id)

    @rule(
        conv=stored,
        kind=st.sampled_from(("chunk", "chunk", "call then chat", "answer a call", "answer a call")),
        data=st.data(),
    )
    def grow(self, conv: tuple[str, str], kind: str, data: st.DataObject) -> None:
        """Add messages (one rule, weighted inside, so histories get long and tangled)."""
        ns, cid = conv
        if not self.alive(ns, cid):
            self.not_found(self.stores[ns], cid)
            return
        self.grown += 1
        if kind == "chunk":
            chunk = data.draw(conversations(max_size=6), label="chunk")
            self.add(ns, cid, chunk, one_by_one=data.draw(st.booleans(), label="one by one"))
        elif kind == "call then chat":
            # a tool call left open while the conversation goes on (answered later)
            call = data.draw(tool_calls(), label="call")
            chatter = data.draw(
                st.lists(st.sampled_from(("user", "assistant", "system")), min_size=1, max_size=3)
            )
            batch = [Message.assistant(tool_calls=[call])]
            batch += [Message(r, f"{r} says {'words ' * (3 * k + 1)}") for k, r in enumerate(chatter)]  # type: ignore[arg-type]
            self.add(ns, cid, batch, one_by_one=False)
        else:
            self.answer_a_call(ns, cid, data)
        self.agree(ns, cid)

    def add(self, ns: str, cid: str, batch: list[Message], *, one_by_one: bool) -> None:
        store, msgs = self.stores[ns], self.model[ns][cid]
        n = len(msgs)
        if one_by_one:
            assert [store.append(cid, m) for m in batch] == list(range(n + 1, n + len(batch) + 1))
        else:
            assert store.extend(cid, batch) == range(n + 1, n + len(batch) + 1)
        msgs.extend(batch)

    def answer_a_call(self, ns: str, cid: str, data: st.DataObject) -> None:
        msgs = self.model[ns][cid]
        made = sorted({c.id for m in msgs for c in m.tool_calls})
        answered = {m.tool_call_id for m in msgs if m.role == "tool"}
        unanswered = [c for c in made if c not in answered]
        options = [st.just("call_x9")]  # nobody made it
        if made:
            options.append(st.sampled_from(made))
        if unanswered:
            options += [st.sampled_from(unanswered)] * 2
        call_id = data.draw(st.one_of(options), label="call id")
        result = Message.tool(
            data.draw(texts(max_size=20)), tool_call_id=call_id, pinned=data.draw(st.booleans())
        )
        if _links_ok(msgs, [result]):
            assert self.stores[ns].append(cid, result) == len(msgs) + 1
            msgs.append(result)
        else:
            with pytest.raises(InvalidConversationError, match="with that tool call first"):
                self.stores[ns].append(cid, result)

    @rule(conv=stored, bad=st.sampled_from(sorted(BAD)), good=conversations(max_size=4), alone=st.booleans())
    def add_bad(self, conv: tuple[str, str], bad: str, good: list[Message], alone: bool) -> None:
        ns, cid = conv
        if not self.alive(ns, cid):
            return
        message, error = BAD[bad]
        batch = [message] if alone else [*good, message]
        with pytest.raises(error):
            self.stores[ns].extend(cid, batch)
        with pytest.raises(error):
            self.stores[ns].append(cid, message)
        self.agree(ns, cid)

    @rule(conv=stored, start=st.none() | st.integers(-1, 40), stop=st.none() | st.integers(-1, 40))
    def read(self, conv: tuple[str, str], start: int | None, stop: int | None) -> None:
        ns, cid = conv
        if not self.alive(ns, cid):
            return
        want = [
            m
            for seq, m in enumerate(self.model[ns][cid], 1)
            if (start is None or seq >= start) and (stop is None or seq < stop)
        ]
        assert self.stores[ns].messages(cid, start=start, stop=stop) == want

    @rule(
        conv=stored,
        model=st.sampled_from(MODELS),
        counter=st.sampled_from(("configured", "back-filled", "upper bound")),
        per_mille=st.none() | st.integers(0, 1000),
        images=st.sampled_from(("error", "drop")),
    )
    def window(
        self, conv: tuple[str, str], model: Any, counter: str, per_mille: int | None, images: str
    ) -> None:
        ns, cid = conv
        store = self.stores[ns]
        if not self.alive(ns, cid):
            with pytest.raises(ConversationNotFoundError):
                store.window(cid, model=model)
            return
        self.same_window(ns, cid, model, counter, per_mille, images)

    def same_window(
        self, ns: str, cid: str, model: Any, counter: str, per_mille: int | None, images: str
    ) -> None:
        store, msgs = self.stores[ns], self.model[ns][cid]
        c = self.counters[counter]
        same = c or EstimateCounter()
        reserve = _reserve_for(msgs, get_model(model), same, per_mille)
        got = sup.outcome(lambda: store.window(cid, model=model, counter=c, reserve=reserve, images=images))
        want = sup.outcome(lambda: fit(msgs, model=model, counter=same, reserve=reserve, images=images))
        assert got == want, (model, counter, reserve, images)

    @rule(target=stored, conv=stored, data=st.data(), tight=st.lists(st.integers(0, 1000), max_size=3))
    def fork(self, conv: tuple[str, str], data: st.DataObject, tight: list[int]) -> Any:
        ns, cid = conv
        store = self.stores[ns]
        if not self.alive(ns, cid):
            with pytest.raises(ConversationNotFoundError):
                store.fork(cid, data.draw(st.integers(0, 3)))
            return multiple()
        msgs = self.model[ns][cid]
        # fork points: anywhere (and just outside), often inside a tool group whose results come later
        inside = _inside_tool_groups(msgs)
        points = st.integers(-1, len(msgs) + 1)
        at = data.draw(st.sampled_from(inside) | points if inside else points, label="fork at")
        if not 0 <= at <= len(msgs):
            with pytest.raises(ValidationError, match="fork point must be a seq from 0 to"):
                store.fork(cid, at)
            return multiple()
        child = store.fork(cid, at)
        assert (child.forked_from, child.forked_at_seq, child.message_count) == (cid, at, at)
        self.model[ns][child.id] = msgs[:at]
        self.agree(ns, child.id)
        self.agree(ns, cid)
        for per_mille in tight:  # budgets that cut somewhere inside the fork
            self.same_window(ns, child.id, TINY, "configured", per_mille, "error")
        return self.track(ns, child.id)

    @rule(conv=stored, data=st.data())
    def truncate_or_pop(self, conv: tuple[str, str], data: st.DataObject) -> None:
        ns, cid = conv
        store = self.stores[ns]
        if not self.alive(ns, cid):
            return
        msgs = self.model[ns][cid]
        if data.draw(st.booleans(), label="pop"):
            assert store.pop(cid) == (msgs.pop() if msgs else None)
        else:
            inside = _inside_tool_groups(msgs)
            points = st.integers(-1, len(msgs) + 1)
            keep = data.draw(st.sampled_from(inside) | points if inside else points, label="keep")
            if 0 <= keep <= len(msgs):
                assert store.truncate(cid, keep) == msgs[keep:]
                del msgs[keep:]
            else:
                with pytest.raises(ValidationError, match="keep from 0 to"):
                    store.truncate(cid, keep)
        self.agree(ns, cid)

    @rule(target=stored, conv=stored)
    def export_and_import(self, conv: tuple[str, str]) -> Any:
        ns, cid = conv
        store = self.stores[ns]
        if not self.alive(ns, cid):
            return multiple()
        copy = store.import_jsonl(io.StringIO(store.export_jsonl(cid)))
        self.model[ns][copy.id] = list(self.model[ns][cid])
        self.agree(ns, copy.id)
        return self.track(ns, copy.id)

    @precondition(lambda self: self.grown >= 3)  # deletes are rarer than writes
    @rule(conv=stored)
    def delete(self, conv: tuple[str, str]) -> None:
        ns, cid = conv
        store = self.stores[ns]
        if not self.alive(ns, cid):
            with pytest.raises(ConversationNotFoundError):
                store.delete_conversation(cid)
            return
        store.delete_conversation(cid)
        del self.model[ns][cid]
        self.grown = 0
        self.not_found(store, cid)

    @rule(conv=stored)
    def from_the_other_namespace(self, conv: tuple[str, str]) -> None:
        ns, cid = conv
        self.not_found(self.stores[self.other(ns)], cid)
        if self.alive(ns, cid):
            self.agree(ns, cid)

    @rule(which=st.integers(0, 1))
    def unknown_id(self, which: int) -> None:
        self.not_found(self.stores[self.namespaces[which]], uuid.uuid4().hex)

    # -- invariants ----------------------------------------------------------------------------
    @invariant()
    def same_conversations_and_counts(self) -> None:
        for ns in self.namespaces:
            listed = self.stores[ns].list_conversations(limit=10_000)
            assert {c.id: c.message_count for c in listed} == {
                cid: len(msgs) for cid, msgs in self.model[ns].items()
            }
            assert all(c.namespace == ns for c in listed)
            keys = [(c.created_at, c.id) for c in listed]
            assert keys == sorted(keys)

    @invariant()
    def running_totals_match_the_counts(self) -> None:
        with self.engine.connect() as conn:
            ids = [cid for ns in self.namespaces for cid in self.model[ns]]
            assert sup.running_total_errors(conn, ids) == []


def test_store_agrees_with_a_plain_model(
    backend: str, db_url: str, tiny_counter: Any, custom_model: Any
) -> None:
    if backend == "sqlite":
        Store(db_url).close()  # creates and upgrades the file
    engine = create_sync(db_url)
    try:
        run_state_machine_as_test(
            lambda: StoreMachine(engine, tiny_counter),
            settings=settings(
                max_examples=min(settings().max_examples, EXAMPLES[backend]),
                stateful_step_count=STEPS,
            ),
        )
    finally:
        engine.dispose()
