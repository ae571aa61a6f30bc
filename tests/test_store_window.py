"""Invariant 9: the window of a stored conversation equals ``fit`` over its messages.

The property test draws a conversation (``convkit.testing.strategies``),
stores it in random chunks (some messages appended one by one, some through
``extend``), and compares ``store.window(...)`` with ``convkit.fit(...)`` for
several models (vision, text-only with ``images='drop'`` and ``'error'``, a
small custom window, an unregistered ModelSpec), counters (the two the store
counts with at write time, and two it was not configured with, which the
window back-fills), reserves (from none to nearly the whole window) and tool
definitions: equal FitResults, or the same error (ContextWindowError with
equal ``required`` and ``available``). It checks half-way through the
appends too (so back-filled counters must catch up), and on a fork at a
random seq against ``fit`` over the prefix. It runs on SQLite and
PostgreSQL, through Store and AsyncStore; each example hits the database,
so the example counts are set per backend (capped by the loaded profile).

The other tests check that a window reads counts instead of re-tokenizing:
a fresh counting counter (empty in-memory cache, same identity) sees zero
encode calls for a counter the store counts with, and for a back-filled
one after its first window, which encodes only the messages it had not seen.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from convkit import (
    ContextWindowError,
    DatabaseError,
    EstimateCounter,
    ImagePart,
    InvalidConversationError,
    Message,
    ModelSpec,
    ToolCall,
    UnsupportedInputError,
    ValidationError,
    fit,
)
from convkit.store import Store, _base, _ops_core, _windows
from convkit.testing.strategies import budgets, conversations

from . import _store_support as sup

#: Unregistered, passed as a value: a small window with overheads of its own.
TINY = ModelSpec(
    "store-test-tiny", 600, {"text", "image"}, 1.0, 1.0, 1.0, message_overhead=3, request_overhead=1
)
TINY_TEXT = ModelSpec("store-test-tiny-text", 400, {"text"}, 1.0, None, 1.0, message_overhead=4)
MODELS: tuple[str | ModelSpec, ...] = (
    "grok-2-vision-1212",
    "grok-2-1212",
    "grok-2",
    "grok-beta",
    "convkit-test-small",
    TINY,
    TINY_TEXT,
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]

#: Example counts per (backend, flavour); the loaded hypothesis profile caps them.
EXAMPLES = {
    ("sqlite", "sync"): 100,
    ("sqlite", "async"): 30,
    ("postgresql", "sync"): 30,
    ("postgresql", "async"): 20,
}


def _examples(backend: str, flavour: str) -> int:
    return min(settings().max_examples, EXAMPLES[backend, flavour])


def spec_of(model: str | ModelSpec) -> ModelSpec:
    from convkit import get_model

    return get_model(model)


@st.composite
def window_args(draw: st.DrawFn, counter_names: tuple[str, ...]) -> dict[str, Any]:
    """Keyword arguments for window/fit: model, counter (by name), reserve, images, tools.

    ``reserve`` is a number, or ``("tight", per_mille)``: a budget of that fraction of what
    the whole conversation costs, so that trimming bites somewhere inside it.
    """
    model = draw(st.sampled_from(MODELS))
    window = spec_of(model).context_window
    headroom = draw(budgets(max_value=4096))
    reserve = draw(
        st.one_of(
            st.just(0),
            st.just(max(0, window - headroom)),  # leaves a small budget
            st.integers(0, window + 10),
            st.tuples(st.just("tight"), st.integers(0, 1000)),
            st.tuples(st.just("tight"), st.integers(0, 1000)),
        )
    )
    return {
        "model": model,
        "counter": draw(st.sampled_from(counter_names)),
        "reserve": reserve,
        "images": draw(st.sampled_from(("error", "drop"))),
        "tools": draw(st.sampled_from((None, TOOLS))),
    }


def _resolve_reserve(messages: list[Message], counter: Any, args: dict[str, Any]) -> int:
    reserve = args["reserve"]
    if isinstance(reserve, int):
        return reserve
    spec = spec_of(args["model"])
    try:
        whole = counter.count_messages(messages, model=spec, tools=args["tools"], images=args["images"])
    except UnsupportedInputError:
        return 0
    budget = whole * reserve[1] // 1000
    return max(0, spec.context_window - math.ceil(budget * (1 + counter.margin)))


class Env:
    """A store counting with two counters at write time, and two it was not configured with."""

    def __init__(self, store: Any, tiny_counter: Any) -> None:
        self.store = store
        self.counters: dict[str, Any] = {
            "default": None,  # the store's first configured counter
            "estimate (configured)": EstimateCounter(),
            "tiny BPE (configured)": tiny_counter,
            "estimate 4.0 (back-filled)": EstimateCounter(4.0, margin=0.0),
            "upper bound (back-filled)": EstimateCounter.upper_bound(),
        }

    def compare(self, cid: str, messages: list[Message], args: dict[str, Any]) -> Any:
        counter = self.counters[args["counter"]]
        same = counter or EstimateCounter()  # None: the store's first configured counter
        kw = {**args, "counter": counter, "reserve": _resolve_reserve(messages, same, args)}
        got = sup.outcome(lambda: self.store.window(cid, **kw))
        want = sup.outcome(lambda: fit(messages, **{**kw, "counter": same}))
        assert got == want, (args, got, want)
        return got


def test_window_equals_fit(open_store: sup.StoreOpener, tiny_counter: Any, custom_model: Any) -> None:
    env = Env(open_store(counters=[EstimateCounter(), tiny_counter]), tiny_counter)
    names = tuple(env.counters)

    @settings(max_examples=_examples(open_store.backend, open_store.flavour))
    @given(conv=conversations(max_size=24), data=st.data())
    def check(conv: list[Message], data: st.DataObject) -> None:
        # the window's first look: as shipped, or a row or two (so the cut is mostly found by the
        # binary search over the running totals, and a long newest turn needs older reads)
        look = data.draw(st.sampled_from([None, (1, 1), (2, 3)]), label="first look")
        shipped = _windows.WINDOW_FIRST_ROWS
        if look is not None:
            _windows.WINDOW_FIRST_ROWS = dict.fromkeys(shipped, look)
        try:
            checks(conv, data)
        finally:
            _windows.WINDOW_FIRST_ROWS = shipped

    def checks(conv: list[Message], data: st.DataObject) -> None:
        store = env.store
        cid = store.create_conversation().id
        half = data.draw(st.integers(1, len(conv)), label="checked after")
        done = 0
        while done < len(conv):
            k = data.draw(st.integers(1, len(conv) - done), label="chunk")
            chunk = conv[done : done + k]
            if k > 1 and data.draw(st.booleans(), label="extend"):
                assert store.extend(cid, chunk) == range(done + 1, done + k + 1)
            else:
                for j, m in enumerate(chunk):
                    assert store.append(cid, m) == done + j + 1
            done += k
            if done >= half and half:
                env.compare(cid, conv[:done], data.draw(window_args(names), label="half-way"))
                half = 0
        for args in data.draw(st.lists(window_args(names), min_size=1, max_size=4), label="windows"):
            env.compare(cid, conv, args)
        at = data.draw(st.integers(0, len(conv)), label="fork at")
        child = store.fork(cid, at)
        env.compare(child.id, conv[:at], data.draw(window_args(names), label="fork window"))

    check()


def test_window_of_a_fork_that_cuts_a_tool_group(open_store: sup.StoreOpener) -> None:
    """Regression: the fork's units are those of the prefix, not of the parent's tool group."""
    store = open_store()
    conv = store.create_conversation()
    msgs = [
        Message.user("x" * 100),
        Message.assistant(tool_calls=[ToolCall("c1", "f", "{}")]),
        Message.user("y" * 400),
        Message.user("z" * 40, pinned=False),
        Message.tool("pinned result", tool_call_id="c1", pinned=True),
        Message.user("after"),
    ]
    store.extend(conv.id, msgs)
    spec = ModelSpec("fork-tiny", 60, {"text"}, message_overhead=0, request_overhead=0)

    def same(cid: str, messages: list[Message], model: Any) -> None:
        got = sup.outcome(lambda: store.window(cid, model=model, margin=0))
        want = sup.outcome(lambda: fit(messages, model=model, counter=EstimateCounter(), margin=0))
        assert got == want, (len(messages), model)

    for at in range(len(msgs) + 1):
        child = store.fork(conv.id, at)
        for model in (spec, "grok-2-1212"):
            same(child.id, msgs[:at], model)
    # the fork can be completed later: its tool group joins up again
    child = store.fork(conv.id, 4)
    store.append(child.id, Message.tool("late", tool_call_id="c1"))
    grown = [*msgs[:4], Message.tool("late", tool_call_id="c1")]
    assert store.messages(child.id) == grown
    for model in (spec, "grok-2-1212"):
        same(child.id, grown, model)


def _talk(prefix: str, n: int, size: int = 40) -> list[Message]:
    """``n`` alternating user/assistant messages whose texts start with ``prefix``."""
    return [
        (Message.user if i % 2 == 0 else Message.assistant)(f"{prefix}{i} " + "w" * size) for i in range(n)
    ]


def test_cached_window_messages_never_outlive_a_truncation(open_store: sup.StoreOpener) -> None:
    """Windows keep decoded rows between calls; removing messages must not let old ones come back.

    The same seqs are filled again with other messages, by this store and by another store on the
    same database (another process would look the same: it only shares the database).
    """
    store, other = open_store(), open_store()
    spec = ModelSpec("cache-small", 400, {"text"}, message_overhead=3, request_overhead=2)
    conv = store.create_conversation()
    history = _talk("a", 30)
    store.extend(conv.id, history)

    def same() -> None:
        for model in (spec, "grok-2-1212"):
            got = store.window(conv.id, model=model, margin=0)
            assert got == fit(history, model=model, counter=EstimateCounter(), margin=0)

    same()
    same()  # from the cache
    store.truncate(conv.id, 20)
    history = history[:20] + _talk("b", 10)
    store.extend(conv.id, history[20:])
    same()
    other.pop(conv.id)
    other.append(conv.id, Message.user("c: replaced by the other store"))
    history = [*history[:-1], Message.user("c: replaced by the other store")]
    same()
    other.truncate(conv.id, 5)
    other.extend(conv.id, _talk("d", 25)[1:])
    history = history[:5] + _talk("d", 25)[1:]
    same()


def test_window_reads_only_rows_it_has_not_decoded(open_store: sup.StoreOpener) -> None:
    """A later window of the same conversation reads bodies only for the rows new to it."""
    store = open_store()
    uncached = open_store(window_cache=0)
    spec = ModelSpec("cache-read", 600, {"text"}, message_overhead=3, request_overhead=2)
    conv = store.create_conversation()
    history = [Message.system("rules", pinned=True), *_talk("a", 40)]
    store.extend(conv.id, history)
    decoded: list[int] = []
    real = _windows.decode_body

    def counting(rows: Any, images: bool = True) -> Any:
        decoded.append(len(rows))
        return (yield from real(rows, images))

    def window(s: Any, model: Any, msgs: list[Message]) -> None:
        got = s.window(conv.id, model=model, margin=0)
        assert got == fit(msgs, model=model, counter=EstimateCounter(), margin=0)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_windows, "decode_body", counting)
        window(store, spec, history)
        first = sum(decoded)
        decoded.clear()
        window(store, spec, history)
        assert sum(decoded) == 0  # nothing new: every kept message came from the cache
        turn = [Message.user("u " * 10), Message.assistant("a " * 10)]
        store.extend(conv.id, turn)
        history += turn
        window(store, spec, history)
        assert sum(decoded) == 2  # just the new turn
        decoded.clear()
        window(store, "grok-2-1212", history)  # a larger window: the older rows too
        assert 0 < sum(decoded) <= len(history) - first
        decoded.clear()
        window(uncached, spec, history)
        once = sum(decoded)
        window(uncached, spec, history)
        assert once > 2
        assert sum(decoded) == 2 * once  # window_cache=0 reads every kept row each time


def test_a_window_never_mixes_two_states_of_a_conversation(open_store: sup.StoreOpener) -> None:
    """Another writer truncates and refills the conversation between a window's statements.

    SQLite reads in a snapshot, so the window is the one before the change; PostgreSQL windows
    run without one, see the change in their next statement, and start again: the window after
    it. Never a mix, and nothing stale is cached.
    """
    store = open_store()
    other = Store(open_store.url, counters=[EstimateCounter()])  # the writer, on its own connections
    spec = ModelSpec("moved", 1000, {"text"}, message_overhead=3, request_overhead=2)
    conv = store.create_conversation()
    before = _talk("a", 30)
    store.extend(conv.id, before)
    after = before[:10] + _talk("b", 20, size=90)  # other sizes: a mixed window would show
    calls = {"raw": 0, "written": 0}
    real = _ops_core.run_raw

    def meddling(conn: Any, req: Any) -> Any:
        calls["raw"] += 1
        if calls["raw"] == 2 and not calls["written"]:  # between the window's first two statements
            calls["written"] = 1
            other.truncate(conv.id, 10)
            other.extend(conv.id, after[10:])
        return real(conn, req)

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_ops_core, "run_raw", meddling)
            got = store.window(conv.id, model=spec, margin=0)
        assert calls["written"] == 1
        old = fit(before, model=spec, counter=EstimateCounter(), margin=0)
        new = fit(after, model=spec, counter=EstimateCounter(), margin=0)
        assert old != new
        assert got == (old if open_store.backend == "sqlite" else new)
        assert store.window(conv.id, model=spec, margin=0) == new
    finally:
        other.close()


def test_a_message_row_deleted_behind_the_store_is_a_database_error(open_store: sup.StoreOpener) -> None:
    """Not a window silently missing a message: the store says its rows are inconsistent."""
    store = open_store(window_cache=0)
    conv = store.create_conversation()
    store.extend(conv.id, _talk("a", 40))
    with sup.raw_engine(open_store.url) as engine, engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM convkit_messages WHERE conversation_id = :cid AND seq = 2"), {"cid": conv.id}
        )
    with pytest.raises(DatabaseError, match="missing"):
        store.window(conv.id, model="grok-2-1212")


@pytest.mark.parametrize("bad", [-1, 1.5, "8", True, None])
def test_window_cache_must_be_a_count(open_store: sup.StoreOpener, bad: Any) -> None:
    with pytest.raises(ValidationError, match="window_cache"):
        open_store(window_cache=bad)


def test_window_keeps_the_newest_turn_and_refuses_system_only(open_store: sup.StoreOpener) -> None:
    store = open_store()
    only = store.create_conversation()
    store.extend(only.id, [Message.system("a"), Message.system("b", pinned=True)])
    with pytest.raises(InvalidConversationError, match="only system messages"):
        store.window(only.id, model="grok-2")
    trailing = store.create_conversation()
    msgs = [
        Message.system("rules"),
        Message.user("u" * 300),
        Message.assistant("a" * 300),
        Message.user("question"),
        Message.system("late note " * 3),
        Message.system("another"),
    ]
    store.extend(trailing.id, msgs)
    spec = ModelSpec("turn-tiny", 60, {"text"}, message_overhead=1, request_overhead=1)
    got = store.window(trailing.id, model=spec, margin=0)
    assert got == fit(msgs, model=spec, counter=EstimateCounter(), margin=0)
    assert [m.text for m in got.messages][-3:] == ["question", "late note " * 3, "another"]
    with pytest.raises(ContextWindowError) as info:
        store.window(trailing.id, model=ModelSpec("turn-tinier", 20, {"text"}), margin=0)
    with pytest.raises(ContextWindowError) as want:
        fit(msgs, model=ModelSpec("turn-tinier", 20, {"text"}), counter=EstimateCounter(), margin=0)
    assert (info.value.required, info.value.available) == (want.value.required, want.value.available)


def test_window_for_a_text_only_model_with_images(open_store: sup.StoreOpener) -> None:
    store = open_store()
    conv = store.create_conversation()
    msgs = [
        Message.system("describe images"),
        Message.user(["what is this?", ImagePart.from_bytes(sup.image("PNG", (900, 500)))]),
        Message.assistant("a square"),
        Message.user([ImagePart.from_url("https://img.example.com/x.png", width=10, height=10)]),
    ]
    store.extend(conv.id, msgs)
    for model in ("grok-2-1212", "grok-beta", TINY_TEXT):
        with pytest.raises(UnsupportedInputError, match="images='drop'"):
            store.window(conv.id, model=model)
        got = store.window(conv.id, model=model, images="drop")
        assert got == fit(msgs, model=model, images="drop")
        assert all(not m.images for m in got.messages)
    vision = store.window(conv.id, model="grok-2-vision-1212")
    assert vision == fit(msgs, model="grok-2-vision-1212")
    assert vision.image_tokens == 1792 + 512  # 3x2 tiles (capped at 6) + 1; a 10x10 URL image: 1 + 1


def _with_images(seed: int, n: int) -> list[Message]:
    """A long conversation with images, tool groups, pinned messages and system notes."""
    import random

    rng = random.Random(seed)
    png = ImagePart.from_bytes(sup.image("PNG", (64, 64)))
    # one to three leading system messages (a part must never start inside their run)
    out: list[Message] = [Message.system(f"You describe pictures, rule {k}.") for k in range(1 + seed % 3)]
    call = 0
    while len(out) < n:
        r = rng.random()
        words = " ".join(
            rng.choice(("cat", "a blue house", "42", "Ünïcode", "sky")) for _ in range(rng.randint(1, 30))
        )
        if r < 0.15:
            out.append(Message.user([words, png]))
        elif r < 0.25:
            ids = [f"c{call + k}" for k in range(rng.randint(1, 2))]
            call += len(ids)
            out.append(Message.assistant("", tool_calls=[ToolCall(i, "look", "{}") for i in ids]))
            out.extend(Message.tool(words, tool_call_id=i) for i in ids)
        elif r < 0.28:
            out.append(Message.user(words, pinned=True))
        elif r < 0.31:
            out.append(Message.system("note: " + words))
        else:
            out.append((Message.user if len(out) % 2 else Message.assistant)(words))
    out.append(Message.user("and now?"))
    return out


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_a_text_only_window_over_images_reads_only_what_it_keeps(
    open_store: sup.StoreOpener, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """``images="drop"`` for a text-only model: stored counts are of the images, so the window
    counts rows as sent, newest first, and stops once it has dropped a unit (issue 11). It equals
    ``fit`` over every message, and a small window reads a small part of a long conversation."""
    from convkit.store import _scan_window

    monkeypatch.setattr(_scan_window, "FIRST_CHUNK", chunk)
    read: list[int] = []
    real_decode = _scan_window.decode_body

    def spy(rows: Any, images: bool = True) -> Any:
        read.extend(r[0] for r in rows)
        return real_decode(rows, images)

    monkeypatch.setattr(_scan_window, "decode_body", spy)
    store = open_store(window_cache=0)
    for seed in range(6):
        msgs = _with_images(seed, 70 if seed % 2 else 400)
        conv = store.create_conversation()
        store.extend(conv.id, msgs)
        whole = EstimateCounter().count_messages(msgs, model="grok-2-1212", images="drop")
        near = [ModelSpec(f"scan-near-{f}", int(whole * f) + 100, {"text"}) for f in (0.8, 0.95, 0.99)]
        for model in (
            TINY_TEXT,
            ModelSpec("scan-mid", 3000, {"text"}, message_overhead=3),
            "grok-2-1212",
            *near,
        ):
            read.clear()
            try:
                want = fit(msgs, model=model, images="drop", reserve=100)
            except ContextWindowError as exc:
                refused = (exc.required, exc.available)
            else:
                refused = None
            if refused is not None:
                with pytest.raises(ContextWindowError) as info:
                    store.window(conv.id, model=model, images="drop", reserve=100)
                assert (info.value.required, info.value.available) == refused
                continue
            got = store.window(conv.id, model=model, images="drop", reserve=100)
            assert got == want
            if len(msgs) >= 400 and want.dropped and len(want.kept) < 100:
                assert len(set(read)) < len(msgs) // 2, "a small window read most of the conversation"


def test_a_scanned_window_never_starts_inside_the_leading_system_run(open_store: sup.StoreOpener) -> None:
    """When the first chunk ends inside the leading system messages, they all stay leading
    (found in review: the stand-in for older rows made the later ones droppable)."""
    store = open_store(window_cache=0)
    png = ImagePart.from_bytes(sup.image("PNG", (16, 16)))
    spec = ModelSpec("scan-lead", 1000, {"text"}, message_overhead=3, request_overhead=2)
    for leading in (2, 3):
        for total in range(63, 63 + leading + 2):  # the first chunk (64 rows) ends in or near the run
            msgs = [Message.system(f"rule {k}") for k in range(leading)]
            msgs.append(Message.user(["what is this", png]))
            while len(msgs) < total:
                msgs.append(
                    (Message.assistant if len(msgs) % 2 else Message.user)(
                        f"turn {len(msgs)} " + "word " * 20
                    )
                )
            conv = store.create_conversation()
            store.extend(conv.id, msgs)
            want = fit(msgs, model=spec, images="drop", reserve=100)
            assert store.window(conv.id, model=spec, images="drop", reserve=100) == want


def test_a_text_only_window_over_system_messages_only_is_refused(open_store: sup.StoreOpener) -> None:
    """Not a scan that never ends: the same error as ``fit``."""
    store = open_store()
    conv = store.create_conversation()
    png = ImagePart.from_bytes(sup.image("PNG", (64, 64)))
    store.extend(conv.id, [Message("system", ("look", png)), Message.system("and this")])
    with pytest.raises(InvalidConversationError):
        fit(store.messages(conv.id), model="grok-2-1212", images="drop")
    with pytest.raises(InvalidConversationError):
        store.window(conv.id, model="grok-2-1212", images="drop")
    store.append(conv.id, Message.user(["what is it?", png]))
    store.pop(conv.id)  # the image count stays, the question is gone
    with pytest.raises(InvalidConversationError):
        store.window(conv.id, model="grok-2-1212", images="drop")


def test_configured_counters_are_never_reencoded(
    open_store: sup.StoreOpener, tiny_tokenizer: Any, custom_model: Any
) -> None:
    est, hf = sup.CountingEstimate(), sup.CountingHF(tiny_tokenizer, name="tiny")
    store = open_store(counters=[est, hf])
    conv = store.create_conversation()
    msgs = [Message.system("sys")] + [
        Message.user(f"question {i} " * (i % 7 + 1)) if i % 2 else Message.assistant(f"answer {i}")
        for i in range(60)
    ]
    store.extend(conv.id, msgs[:30])
    for m in msgs[30:]:
        store.append(conv.id, m)
    assert est.encode_calls == 1 + len(msgs[30:])  # one batch per write, nothing more
    for make in (sup.CountingEstimate, lambda: sup.CountingHF(tiny_tokenizer)):
        for model in ("grok-2-vision-1212", "convkit-test-small", TINY):
            for reserve in (0, 300):
                fresh = make()  # same identity as a configured counter, empty in-memory cache
                assert fresh.identity in (est.identity, hf.identity)
                got = store.window(conv.id, model=model, counter=fresh, reserve=reserve)
                assert fresh.encode_calls == 0, (fresh, model)
                assert got == fit(msgs, model=model, counter=make(), reserve=reserve)
    # the default counter is the first configured one
    default = store.window(conv.id, model=TINY)
    assert default == fit(msgs, model=TINY, counter=EstimateCounter())


def test_a_new_counter_is_back_filled_once(
    open_store: sup.StoreOpener, tiny_tokenizer: Any, custom_model: Any
) -> None:
    store = open_store(counters=[EstimateCounter()])
    conv = store.create_conversation()
    first = [
        Message.user(f"q{i} " * (i % 5 + 1), name="alice") if i % 2 == 0 else Message.assistant(f"a{i}")
        for i in range(40)
    ]
    store.extend(conv.id, first)
    c1 = sup.CountingHF(tiny_tokenizer)
    assert store.window(conv.id, model="convkit-test-small", counter=c1) == fit(
        first, model="convkit-test-small", counter=sup.CountingHF(tiny_tokenizer)
    )
    assert c1.encoded_texts == sup.texts_of(first)
    c2 = sup.CountingHF(tiny_tokenizer)
    store.window(conv.id, model="grok-2-vision-1212", counter=c2)
    store.window(conv.id, model=TINY, counter=c2, reserve=100)
    assert c2.encode_calls == 0
    # new messages: the next window counts those, and only those
    more = [Message.user("brand new words"), Message.assistant("more new words", name="bot")]
    store.extend(conv.id, more)
    c3 = sup.CountingHF(tiny_tokenizer)
    assert store.window(conv.id, model="convkit-test-small", counter=c3) == fit(
        first + more, model="convkit-test-small", counter=sup.CountingHF(tiny_tokenizer)
    )
    assert c3.encoded_texts == sup.texts_of(more)
    c4 = sup.CountingHF(tiny_tokenizer)
    store.window(conv.id, model="convkit-test-small", counter=c4)
    assert c4.encode_calls == 0
    counted = sup.scalar(
        open_store.url,
        "SELECT count(*) FROM convkit_token_counts WHERE conversation_id = :cid AND counter_id = :k",
        cid=conv.id,
        k=c1.identity,
    )
    assert counted == len(first) + len(more)


def test_back_fill_runs_in_batches(open_store: sup.StoreOpener, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = 40  # the twins' (shared) batch size, made small so that a short conversation needs several
    monkeypatch.setattr(_base, "BACKFILL_BATCH", batch)
    store = open_store(counters=[EstimateCounter()])
    conv = store.create_conversation()
    n = 2 * batch + 7
    msgs = [Message.user(f"m{i} " * 9) if i % 2 == 0 else Message.assistant(f"r{i} " * 9) for i in range(n)]
    store.extend(conv.id, msgs)
    counter = sup.CountingEstimate(3.0)
    got = store.window(conv.id, model=TINY, counter=counter, reserve=100)
    assert counter.encode_calls == math.ceil(n / batch)
    assert got == fit(msgs, model=TINY, counter=EstimateCounter(3.0), reserve=100)
    assert got.kept[-1] == n - 1
    assert 0 < len(got.messages) < n


def test_window_of_an_empty_conversation(open_store: sup.StoreOpener) -> None:
    store = open_store()
    conv = store.create_conversation()
    with pytest.raises(ValidationError, match="nothing to fit"):
        store.window(conv.id, model="grok-2")
    with pytest.raises(ValidationError, match="nothing to fit"):
        fit([], model="grok-2")
