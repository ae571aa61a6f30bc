"""Session and AsyncSession against the local xAI stand-in, stored in SQLite (and PostgreSQL).

Each test body runs on both twins (``flavour``: Session + Store, or
AsyncSession + AsyncStore) and, where it applies, on the plain and the
streaming turn (``mode``: send/resume or send_stream/resume_stream). A
subset also runs on PostgreSQL (``db_url``), which the other tests use
SQLite for.

Checked: a turn stores the user message and the reply (with tool calls)
and its usage and cost, readable through ``usage()``; the tool loop;
calibration from ``usage.prompt_tokens`` widening the margin; on a
prompt-too-long error the session recalibrates, re-fits and retries once
with a smaller request; ``strategy="summarize"`` into grok-2-vision-1212
keeps every request inside the window; after every fault mode the user's
message is stored once, no assistant message or usage is written, and
sending again (or ``resume``) completes the turn without duplicating
anything. After every test the whole database is dumped and searched for
the API key, as are the log records and reprs; every chat body the
stand-in received validates against the official ``ChatRequest`` schema.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import convkit
from convkit import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConversationNotFoundError,
    Done,
    EstimateCounter,
    ExtractiveSummarizer,
    ImagePart,
    Message,
    ModelRegistry,
    ModelSpec,
    NotFoundError,
    PromptTooLongError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    Session,
    Store,
    TextDelta,
    ToolCallDelta,
    XAIClient,
)
from convkit._session_flows import MAX_MARGIN
from convkit.store._calibration import CALIBRATION_DECAY, CALIBRATION_STEP, next_estimate
from convkit.testing import Fault, Reply, XAIStandIn

from . import _xai_support as xs

KEY = xs.new_key()
MAX_RETRIES = 2


@pytest.fixture(autouse=True)
def _no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    xs.capture_all_logs(caplog)
    yield
    xs.assert_logs_clean(caplog, KEY)


@pytest.fixture(params=xs.FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLite unless a test parametrizes it indirectly with "postgresql"."""
    with xs.database(getattr(request, "param", "sqlite"), tmp_path) as url:
        yield url


class Env:
    """The stand-in(s) and sessions of one test; checks the key and the bodies at the end."""

    def __init__(self, flavour: str, url: str) -> None:
        self.flavour = flavour
        self.url = url
        self.standins: list[XAIStandIn] = []
        self.twins: list[xs.SessionTwin] = []

    def standin(self, **kw: Any) -> XAIStandIn:
        xai = XAIStandIn(api_key=KEY, **kw).start()
        self.standins.append(xai)
        return xai

    def session(
        self, xai: XAIStandIn, *, timeout: float = 10.0, max_retries: int = MAX_RETRIES, **kw: Any
    ) -> xs.SessionTwin:
        kw.setdefault("model", "grok-2")
        kw.setdefault("counters", [EstimateCounter()])
        twin = xs.SessionTwin(
            self.flavour,
            self.url,
            client_kw={
                "api_key": KEY,
                "base_url": xai.base_url,
                "max_retries": max_retries,
                "backoff": xs.FAST,
                "timeout": timeout,
            },
            **kw,
        )
        self.twins.append(twin)
        xs.assert_repr_clean(KEY, twin.session, twin.store, twin.client)
        return twin

    def close(self) -> None:
        for twin in self.twins:
            twin.close()
        for xai in self.standins:
            xai.stop()
            assert xai.errors == [], "the stand-in raised internally"
            xs.check_requests(xai)
        if self.twins:
            assert KEY not in xs.dump_database(self.url), "the API key is in a database row"


@pytest.fixture
def env(flavour: str, db_url: str) -> Iterator[Env]:
    e = Env(flavour, db_url)
    try:
        yield e
    finally:
        e.close()


def turn(twin: xs.SessionTwin, mode: str, content: Any = None, *, into: list[Any] | None = None) -> Any:
    """One turn: send (content given) or resume, plain or streamed; returns the completion."""
    if mode == "chat":
        return twin.send(content) if content is not None else twin.resume()
    events = twin.send_stream(content, into=into) if content is not None else twin.resume_stream(into=into)
    dones = [e for e in events if isinstance(e, Done)]
    assert len(dones) == 1
    assert events[-1] is dones[0]
    return dones[0].completion


def roles(twin: xs.SessionTwin) -> list[str]:
    return [m.role for m in twin.messages()]


def expected_cost(prompt: int, completion: int, price_in: float = 2.0, price_out: float = 10.0) -> float:
    return (prompt * price_in + completion * price_out) / 1e6


# -- turns, usage, tools ----------------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_turns_store_messages_usage_and_cost(env: Env) -> None:
    xai = env.standin()
    s = env.session(xai, prefill=[Message.system("You are terse.")])
    xai.queue(Reply(text="Hello! How can I help?", reasoning_tokens=3))
    first = turn(s, "chat", "Hi there")
    assert first.text == "Hello! How can I help?"
    events: list[Any] = []
    second = turn(s, "stream", "Tell me a joke", into=events)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == second.text
    assert second.text == "You said: Tell me a joke"

    assert s.messages() == [
        Message.system("You are terse."),
        Message.user("Hi there"),
        Message.assistant("Hello! How can I help?"),
        Message.user("Tell me a joke"),
        Message.assistant("You said: Tell me a joke"),
    ]
    totals = s.usage()
    assert totals.turns == 2
    assert totals.prompt_tokens == first.usage.prompt_tokens + second.usage.prompt_tokens
    assert totals.completion_tokens == first.usage.completion_tokens + second.usage.completion_tokens
    assert totals.reasoning_tokens == 3
    assert totals.cost_usd == pytest.approx(first.cost_usd + second.cost_usd)
    assert first.cost_usd == pytest.approx(
        expected_cost(first.usage.prompt_tokens, first.usage.completion_tokens + 3)
    )
    rows = xs.usage_rows(env.url, s.conversation_id)
    assert [r["seq"] for r in rows] == [3, 5]  # each usage row points at its reply
    assert [r["model"] for r in rows] == ["grok-2-1212"] * 2
    assert all(r["counter_id"] == EstimateCounter().identity for r in rows)
    assert all(r["local_prompt_tokens"] > 0 for r in rows)
    # what was sent: the stored conversation, with the reply's reserve as max_tokens
    bodies = xai.chat_requests
    assert [m["role"] for m in bodies[1]["messages"]] == ["system", "user", "assistant", "user"]
    assert all(b["max_tokens"] == 1024 for b in bodies)
    assert bodies[1]["stream"] is True


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_tool_loop(env: Env, mode: str) -> None:
    xai = env.standin()
    s = env.session(xai, tools=[xs.WEATHER_TOOL])
    xai.queue(
        Reply(
            tool_calls=[
                {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
                {"id": "call_2", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
            ]
        ),
        Reply(text="Paris is sunny, Oslo is rainy."),
    )
    events: list[Any] = []
    asked = turn(s, mode, "Weather in Paris and Oslo?", into=events)
    assert asked.finish_reason == "tool_calls"
    assert [(c.id, c.name) for c in asked.tool_calls] == [
        ("call_1", "get_weather"),
        ("call_2", "get_weather"),
    ]
    if mode == "stream":
        assert any(isinstance(e, ToolCallDelta) for e in events)
    stored = s.messages()[-1]
    assert stored.role == "assistant"
    assert stored.tool_calls == asked.tool_calls
    assert stored.tool_calls[1].arguments == '{"city": "Oslo"}'  # the exact text received

    s.add_tool_results({"call_1": '{"sky": "sunny"}', "call_2": '{"sky": "rain"}'})
    final = turn(s, mode)
    assert final.text == "Paris is sunny, Oslo is rainy."
    assert roles(s) == ["user", "assistant", "tool", "tool", "assistant"]
    assert s.usage().turns == 2
    sent = xai.chat_requests[1]
    assert sent["tools"] == [xs.WEATHER_TOOL]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool", "tool"]
    assert sent["messages"][1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    assert [m.get("tool_call_id") for m in sent["messages"][2:]] == ["call_1", "call_2"]


def test_a_stream_is_stored_by_the_time_its_done_arrives(env: Env) -> None:
    """A consumer may stop at Done (or read usage() there): the turn is already complete."""
    xai = env.standin()
    s = env.session(xai)

    def sync_stop_at_done() -> Any:
        for e in s.session.send_stream("stop at done"):
            if isinstance(e, Done):
                return s.usage().turns, roles(s)
        raise AssertionError("no Done")

    async def async_stop_at_done() -> Any:
        stream = s.session.send_stream("stop at done")
        async for e in stream:
            if isinstance(e, Done):
                totals, messages = await s.session.usage(), await s.session.messages()
                await stream.aclose()
                return totals.turns, [m.role for m in messages]
        raise AssertionError("no Done")

    at_done = sync_stop_at_done() if env.flavour == "sync" else s.run(async_stop_at_done())
    assert at_done == (1, ["user", "assistant"])
    assert roles(s) == ["user", "assistant"]
    assert s.usage().turns == 1


@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_an_image_turn_records_image_tokens(env: Env, mode: str) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 30, 30)).save(buf, format="PNG")
    picture = ImagePart.from_bytes(buf.getvalue())
    xai = env.standin()
    s = env.session(xai, model="grok-2-vision-1212")
    c = turn(s, mode, Message.user(["What is in this picture?", picture]))
    assert c.usage.image_tokens == picture.tokens > 0
    assert s.messages()[0].images == (picture,)
    totals = s.usage()
    assert totals.image_tokens == c.usage.image_tokens
    # image tokens are billed at the image price (the same $2/M as text for grok-2-vision-1212)
    assert totals.cost_usd == pytest.approx(expected_cost(c.usage.prompt_tokens, c.usage.completion_tokens))
    sent = xai.chat_requests[0]["messages"][0]["content"]
    assert [p["type"] for p in sent] == ["text", "image_url"]
    assert sent[1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_tool_results_are_not_duplicated_when_the_turn_after_them_fails(env: Env) -> None:
    xai = env.standin()
    s = env.session(xai, tools=[xs.WEATHER_TOOL])
    xai.queue(Reply(tool_calls=[{"id": "c1", "name": "get_weather", "arguments": {"city": "Rome"}}]))
    turn(s, "chat", "Rome?")
    s.add_tool_results([{"role": "tool", "tool_call_id": "c1", "content": "hot"}])
    xai.queue(*[Fault.status(500)] * (MAX_RETRIES + 1))
    with pytest.raises(ServerError):
        s.resume()
    assert roles(s) == ["user", "assistant", "tool"]
    assert s.resume().text == "You said: Rome?"
    assert roles(s) == ["user", "assistant", "tool", "assistant"]
    assert s.usage().turns == 2


def test_unknown_conversation(env: Env) -> None:
    xai = env.standin()
    s = env.session(xai)
    if env.flavour == "sync":
        with pytest.raises(ConversationNotFoundError):
            Session(s.store, "no-such-conversation", model="grok-2", client=s.client)


# -- faults: nothing lost, nothing duplicated ---------------------------------------------------------------

#: fault -> (what to queue for one failed turn, given the mode and a release event; the error)
FAULTS: dict[str, tuple[Callable[[str, threading.Event], list[Fault]], type[APIError]]] = {
    "429": (lambda mode, ev: [Fault.status(429)] * (MAX_RETRIES + 1), RateLimitError),
    "500": (lambda mode, ev: [Fault.status(500)] * (MAX_RETRIES + 1), ServerError),
    "503": (lambda mode, ev: [Fault.status(503)] * (MAX_RETRIES + 1), ServerError),
    "slow": (lambda mode, ev: [Fault.slow(ev)] * (MAX_RETRIES + 1), APITimeoutError),
    "dropped": (
        lambda mode, ev: (
            [Fault.drop_mid_stream(1)] * (MAX_RETRIES + 1) if mode == "chat" else [Fault.drop_mid_stream(4)]
        ),  # a stream cut mid-way: never retried, never stored
        APIConnectionError,
    ),
    "malformed-json": (lambda mode, ev: [Fault.malformed_json()], ResponseFormatError),
    "plain-422": (lambda mode, ev: [Fault.plain_422()], BadRequestError),
    "wrong-key": (lambda mode, ev: [Fault.wrong_key()], AuthenticationError),
}


def _error_for(fault: str, mode: str) -> type[APIError]:
    return ResponseFormatError if (fault, mode) == ("dropped", "stream") else FAULTS[fault][1]


#: Each fault, completed afterwards by sending the message again or by resume() (alternating, so
#: both ways meet every mode and twin without running the whole product).
RETRY_WITH = {fault: ("send", "resume")[k % 2] for k, fault in enumerate(sorted(FAULTS))}


@pytest.mark.parametrize("mode", ["chat", "stream"])
@pytest.mark.parametrize(("fault", "retry_with"), sorted(RETRY_WITH.items()))
def test_a_failed_turn_keeps_the_user_message_once(env: Env, fault: str, mode: str, retry_with: str) -> None:
    xai = env.standin()
    s = env.session(xai, prefill=[Message.system("Be kind.")])
    turn(s, mode, "first question")
    release = threading.Event()
    faults = FAULTS[fault][0](mode, release)
    xai.queue(*faults)
    before = len(xai.chat_requests)
    got: list[Any] = []
    client = s.session.client
    if fault == "slow":  # a client that gives up quickly, for this turn only (every response is held)
        # only reading gives up: connecting on a busy machine may take longer than the read wait
        s.session.client = s.make_client(timeout=httpx.Timeout(5, read=0.05))
    try:
        with pytest.raises(APIError) as info:
            turn(s, mode, "second question", into=got)
    finally:
        release.set()
        s.session.client = client
    assert type(info.value) is _error_for(fault, mode)
    xs.assert_error_clean(info.value, KEY)
    assert not any(isinstance(e, Done) for e in got)
    assert len(xai.chat_requests) - before == len(faults)
    # the user's message is stored once; no assistant message, no usage row
    assert roles(s) == ["system", "user", "assistant", "user"]
    assert s.messages()[-1] == Message.user("second question")
    assert s.usage().turns == 1
    assert len(xs.usage_rows(env.url, s.conversation_id)) == 1

    done = turn(s, mode, "second question") if retry_with == "send" else turn(s, mode)
    assert done.text == "You said: second question"
    assert s.messages() == [
        Message.system("Be kind."),
        Message.user("first question"),
        Message.assistant("You said: first question"),
        Message.user("second question"),
        Message.assistant("You said: second question"),
    ]
    assert s.usage().turns == 2
    sent = xai.chat_requests[-1]["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == ["first question", "second question"]


def test_a_resent_message_is_a_retry_however_its_metadata_is_ordered(env: Env) -> None:
    """The turn's first statement compares the stored last message by its encoding; an equal
    message that encodes apart (metadata keys in another order) is still recognised."""
    xai = env.standin()
    s = env.session(xai)
    xai.queue(Fault.plain_422())
    with pytest.raises(BadRequestError):
        turn(s, "chat", Message.user("question", metadata={"a": 1, "b": [1, 2]}, pinned=True))
    done = turn(s, "chat", Message.user("question", metadata={"b": [1, 2], "a": 1}, pinned=True))
    assert done.text == "You said: question"
    assert roles(s) == ["user", "assistant"]
    turn(s, "chat", Message.user("question", metadata={"b": [1, 2], "a": 1}, pinned=True))
    assert roles(s) == ["user", "assistant", "user", "assistant"], (
        "after a reply, the same text is a new turn"
    )


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(("fault", "mode"), [("429", "chat"), ("dropped", "stream"), ("wrong-key", "stream")])
def test_a_failed_turn_keeps_the_user_message_once_on_postgresql(env: Env, fault: str, mode: str) -> None:
    test_a_failed_turn_keeps_the_user_message_once(env, fault, mode, "resume")


@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_a_model_the_server_does_not_know(env: Env, mode: str) -> None:
    served = ModelRegistry()  # the built-in models only
    xai = env.standin(registry=served)
    spec = ModelSpec("grok-imaginary", 131072, {"text"}, 1.0, None, 2.0)
    s = env.session(xai, model=spec)
    with pytest.raises(NotFoundError) as info:
        turn(s, mode, "hello?")
    assert info.value.status_code == 404
    assert "grok-imaginary" in str(info.value)
    assert roles(s) == ["user"]
    assert s.usage().turns == 0
    served.register(spec)  # the server learns it: the kept message is answered
    assert turn(s, mode).text == "You said: hello?"
    assert roles(s) == ["user", "assistant"]
    assert s.usage().cost_usd == pytest.approx(
        s.usage().prompt_tokens * 1e-6 + s.usage().completion_tokens * 2e-6
    )


@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_stream_cut_mid_way_stores_nothing(env: Env, mode: str) -> None:
    xai = env.standin()
    s = env.session(xai)
    xai.queue(Fault.drop_mid_stream(3, reply=Reply(text="a partial answer that never finishes")))
    got: list[Any] = []
    with pytest.raises(ResponseFormatError) as info:
        s.send_stream("go", into=got)
    xs.assert_error_clean(info.value, KEY)
    assert any(isinstance(e, TextDelta) for e in got)
    assert roles(s) == ["user"]
    assert s.usage().turns == 0
    assert xs.usage_rows(env.url, s.conversation_id) == []
    assert "partial" not in xs.dump_database(env.url)
    assert turn(s, mode).text == "You said: go"
    assert roles(s) == ["user", "assistant"]


# -- calibration --------------------------------------------------------------------------------------------


def flat() -> EstimateCounter:
    """The session's counter in the calibration tests: a flat 2.5 bytes a token with its default margin
    of 0.1, so the stand-in's flat rates relate to it by a known factor (1.5 bytes a token counts ~1.7x
    as much, 4 bytes a token ~0.6x) and the margin calibration starts from is 0.1, not 0."""
    return EstimateCounter(2.5)


def test_calibration_from_usage_widens_the_margin(env: Env) -> None:
    # the stand-in counts 1.5 bytes a token, the session 2.5: xAI's counts are ~1.6x the local ones
    xai = env.standin(counter=EstimateCounter(1.5, margin=0.0))
    s = env.session(xai, counters=[flat()])
    counter = s.session.counter
    assert s.margin() == pytest.approx(counter.margin) == pytest.approx(0.1)
    assert s.store_call("calibration", "grok-2", counter) is None
    c = turn(s, "chat", "Please calibrate yourself against this fairly long sentence of English text.")
    (row,) = xs.usage_rows(env.url, s.conversation_id)
    assert row["prompt_tokens"] == c.usage.prompt_tokens
    ratio = c.usage.prompt_tokens / row["local_prompt_tokens"]
    assert ratio > 1.3
    calib = s.store_call("calibration", "grok-2-1212", counter)
    assert calib.samples == 1
    assert calib.ratio_last == pytest.approx(ratio)
    assert calib.ratio_max == pytest.approx(CALIBRATION_STEP)  # one reply moves it one bounded step
    assert calib.counter_id == counter.identity
    assert s.margin() == pytest.approx(CALIBRATION_STEP - 1)
    assert s.window().budget == math.floor((131072 - 1024) / CALIBRATION_STEP)

    turn(s, "stream", "Short.")
    calib2 = s.store_call("calibration", "grok-2-1212", counter)
    assert calib2.samples == 2
    assert calib2.ratio_max == pytest.approx(next_estimate(calib.ratio_max, calib2.ratio_last))
    assert s.margin() == pytest.approx(calib2.ratio_max - 1)


def test_a_counter_that_overcounts_leaves_the_margin_alone(env: Env) -> None:
    xai = env.standin()  # 4 bytes a token: fewer tokens than the local 2.5
    s = env.session(xai, counters=[flat()])
    turn(s, "chat", "Hello there, how are you doing today?")
    calib = s.store_call("calibration", "grok-2", s.session.counter)
    assert calib.ratio_last < 1
    assert calib.ratio_max == 1.0  # the estimate never goes below 1
    assert s.margin() == pytest.approx(0.1)


def test_calibration_is_per_namespace_bounded_and_recovers(env: Env) -> None:
    """Issue 14: one odd reply cut every tenant's grok-2 budget to about a third, for good. Now
    it moves only its own namespace's estimate, by one bounded step, and ordinary replies
    bring the budget back."""
    xai = env.standin()  # counts like the sessions' counter below: ordinary ratios are about 1
    same = [EstimateCounter(4.0, margin=0.0)]
    hello = [{"role": "user", "content": "hello"}]
    a = env.session(xai, counters=same, namespace="tenant-a", prefill=hello)
    b = env.session(xai, counters=same, namespace="tenant-b", prefill=hello)
    full = b.window().budget
    assert full == 131072 - 1024
    xai.queue(Reply(text="odd", usage={"prompt_tokens": 1_000_000}))
    turn(a, "chat", "An ordinary question.")
    calib = a.store_call("calibration", "grok-2", a.session.counter)
    assert calib.ratio_last == pytest.approx(1.0 + MAX_MARGIN)  # the odd reply, as capped
    assert calib.ratio_max == pytest.approx(CALIBRATION_STEP)  # ...moved the estimate one step
    assert a.window().budget == math.floor(full / CALIBRATION_STEP)
    assert b.store_call("calibration", "grok-2", b.session.counter) is None  # other tenants: untouched
    assert b.window().budget == full
    for k in range(30):  # ordinary replies: the spike decays
        turn(a, "stream" if k % 2 else "chat", f"Question {k}?")
    calib = a.store_call("calibration", "grok-2", a.session.counter)
    assert calib.samples == 31
    assert calib.ratio_max < 1.0 + 0.25 * 0.9**25
    assert a.window().budget >= 0.985 * full  # within 1.5% of the untouched budget
    assert b.window().budget == full


def test_a_settled_calibration_is_not_written_by_every_turn(env: Env) -> None:
    """bench_load found every concurrent session of a namespace queued on its one calibration row:
    each turn wrote it. A sample that leaves the estimate as the turn read it is not written; one
    that teaches something is."""
    xai = env.standin()  # counts like the sessions' counter: ordinary ratios are about 1
    s = env.session(xai, counters=[EstimateCounter(4.0, margin=0.0)], namespace="quiet")
    turn(s, "chat", "First question.")
    first = s.store_call("calibration", "grok-2", s.session.counter)
    assert first is not None
    assert first.samples == 1
    for k in range(5):
        turn(s, "stream" if k % 2 else "chat", f"Question {k}?")
    assert s.store_call("calibration", "grok-2", s.session.counter) == first  # nothing written
    xai.queue(Reply(text="odd", usage={"prompt_tokens": 1_000_000}))
    turn(s, "chat", "One more.")
    taught = s.store_call("calibration", "grok-2", s.session.counter)
    assert taught.samples == 2
    assert taught.ratio_max == pytest.approx(CALIBRATION_STEP)


def test_calibration_steps_are_bounded_and_decay() -> None:
    est = next_estimate(None, 3.0)
    assert est == CALIBRATION_STEP
    assert next_estimate(est, 3.0) == pytest.approx(CALIBRATION_STEP**2)  # steady evidence climbs
    assert next_estimate(None, 3.0, bounded=False) == 3.0  # an overflow 400 is taken whole
    assert next_estimate(2.0, 1.0) == pytest.approx(1.0 + CALIBRATION_DECAY)
    assert next_estimate(None, 0.5) == 1.0
    e = 3.0
    for _ in range(60):
        e = next_estimate(e, 1.01)
    assert e == pytest.approx(1.01, abs=0.01)


def test_calibration_never_narrows_the_counters_own_margin() -> None:
    from convkit import Calibration
    from convkit._session_flows import _margin

    wide = EstimateCounter(2.5, margin=3.0)  # wider than calibration may ever learn
    assert _margin(wide, None) == 3.0
    assert _margin(wide, Calibration("grok-2-1212", wide.identity, 1.5, 1.5, 1)) == 3.0
    assert _margin(EstimateCounter(), Calibration("grok-2-1212", "x", 0.5, 0.5, 1)) == 0.0
    assert _margin(EstimateCounter(), Calibration("grok-2-1212", "x", 9.0, 9.0, 1)) == MAX_MARGIN


def test_calibrate_false_records_nothing(env: Env) -> None:
    xai = env.standin(counter=EstimateCounter(1.5, margin=0.0))
    s = env.session(xai, calibrate=False, counters=[flat()])
    turn(s, "chat", "Hello there, how are you doing today?")
    assert s.store_call("calibration", "grok-2", s.session.counter) is None
    assert s.margin() == pytest.approx(0.1)


def _long_history(n: int = 20) -> list[dict[str, str]]:
    return [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": f"message {i}: " + "lorem ipsum dolor " * 50,
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_prompt_too_long_recalibrates_refits_and_retries_once(env: Env, mode: str) -> None:
    standin_counter = EstimateCounter(1.5, margin=0.0)  # ~1.7x the session's 2.5 bytes a token
    xai = env.standin(counter=standin_counter)
    # the maximal policy fills the window (the stable one would cut to its low-water mark first)
    s = env.session(
        xai, model="grok-2-vision-1212", prefill=_long_history(), counters=[flat()], policy="maximal"
    )
    local = s.window()
    assert local.prompt_tokens <= local.budget  # the session believes it fits...
    c = turn(s, mode, "And the final question?")
    first, second = xai.chat_requests  # ...xAI said no once, then the smaller retry was answered
    limit = 8192 - 1024

    def standin_count(body: dict[str, Any]) -> int:
        msgs = [Message.from_openai(m) for m in body["messages"]]
        return standin_counter.count_messages(msgs, model="grok-2-vision-1212")

    assert standin_count(first) > limit
    assert standin_count(second) <= limit
    assert len(second["messages"]) < len(first["messages"])
    assert (
        second["messages"][-1]
        == first["messages"][-1]
        == {"role": "user", "content": "And the final question?"}
    )
    assert c.usage.prompt_tokens == standin_count(second)
    calib = s.store_call("calibration", "grok-2-vision-1212", s.session.counter)
    assert calib.ratio_max >= standin_count(first) / local.budget
    assert s.margin() == pytest.approx(calib.ratio_max - 1)
    assert s.margin() > 0.5
    # one turn: the user message and the reply stored once, one usage row
    assert roles(s)[-2:] == ["user", "assistant"]
    assert len(s.messages()) == 22
    assert s.usage().turns == 1


def test_prompt_too_long_twice_is_raised_after_one_retry(env: Env) -> None:
    xai = env.standin(counter=EstimateCounter(0.25, margin=0.0))  # counts 10x the local estimate
    s = env.session(xai, model="grok-2-vision-1212", prefill=_long_history(), counters=[flat()])
    with pytest.raises(PromptTooLongError) as info:
        s.send("And the final question?")
    xs.assert_error_clean(info.value, KEY)
    assert info.value.limit == 8192 - 1024
    assert len(xai.chat_requests) == 2, "the session must retry a prompt-too-long error exactly once"
    assert len(xai.chat_requests[1]["messages"]) < len(xai.chat_requests[0]["messages"])
    assert roles(s)[-1] == "user"
    assert len(s.messages()) == 21
    assert s.usage().turns == 0


# -- the summarize strategy ---------------------------------------------------------------------------------


def test_summarize_strategy_keeps_every_request_in_a_small_window(env: Env) -> None:
    # the stand-in counts exactly as the session does (without margin): any overflow would be a 400
    counter = EstimateCounter(2.5, margin=0.0)
    xai = env.standin(counter=EstimateCounter(2.5, margin=0.0))
    s = env.session(
        xai,
        model="grok-2-vision-1212",
        counter=counter,
        counters=[counter],
        strategy="summarize",
        summarizer=ExtractiveSummarizer(),
        prefill=[Message.system("You are a careful note taker.")],
    )
    turns = 12
    for i in range(turns):
        mode = "stream" if i % 3 == 2 else "chat"
        c = turn(s, mode, f"Fact {i}: the code word is w{i}. " + "Some filler to make it long. " * 110)
        assert c.text.startswith(f"You said: Fact {i}")
    bodies = xai.chat_requests
    assert len(bodies) == turns, "a request was refused or retried"
    limit = 8192 - 1024
    for body in bodies:
        msgs = [Message.from_openai(m) for m in body["messages"]]
        assert counter.count_messages(msgs, model="grok-2-vision-1212") <= limit
        assert msgs[0] == Message.system("You are a careful note taker.")
    summaries = s.store_call("summaries", s.conversation_id)
    assert len(summaries) >= 1
    later = bodies[-1]["messages"]
    assert later[1]["role"] == "system"
    assert "Summary of the earlier conversation" in later[1]["content"]
    assert "Fact 0" in later[1]["content"] or "Fact 1" in later[1]["content"]
    # everything stays stored; usage per turn
    assert len(s.messages()) == 1 + 2 * turns
    assert s.usage().turns == turns


# -- the key ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_the_key_is_in_no_row_repr_or_error(env: Env) -> None:
    xai = env.standin()
    s = env.session(xai, tools=[xs.WEATHER_TOOL])
    xai.queue(
        Reply(tool_calls=[{"id": "k1", "name": "get_weather", "arguments": {"city": "Lima"}}]),
        Fault.wrong_key(),
    )
    turn(s, "chat", "Weather in Lima?")
    s.add_tool_results({"k1": "warm"})
    with pytest.raises(AuthenticationError) as info:
        s.resume()
    xs.assert_error_clean(info.value, KEY)
    turn(s, "stream")
    dump = xs.dump_database(env.url)
    for table in ("convkit_messages", "convkit_usage", "convkit_calibration", "convkit_conversations"):
        assert f"{table}:" in dump
    assert KEY not in dump
    assert KEY not in json.dumps([m.to_openai() for m in s.messages()])
    xs.assert_repr_clean(KEY, s.session, s.store, s.client, s.usage(), *s.messages())


def test_a_session_over_a_plain_store_and_client(tmp_path: Path) -> None:
    """The public names, without the test twins: what a user writes."""
    with (
        XAIStandIn(api_key=KEY) as xai,
        Store(f"sqlite:///{tmp_path / 'plain.db'}") as store,
        XAIClient(api_key=KEY, base_url=xai.base_url) as client,
    ):
        conv = store.create_conversation()
        session = Session(store, conv.id, model="grok-2", client=client)
        assert session.send("ping").text == "You said: ping"
        assert [m.role for m in store.messages(conv.id)] == ["user", "assistant"]
        assert store.usage(conv.id).turns == 1
        xs.check_requests(xai)


# -- the README's example ------------------------------------------------------------------------------------


def readme_block(name: str) -> str:
    """The fenced code block right after ``<!-- test: name -->`` in README.md."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- test: {re.escape(name)} -->\s*\n```python\n(.*?)\n```", text, flags=re.DOTALL)
    assert found is not None, f"README.md has no python block marked <!-- test: {name} -->"
    return found.group(1)


def test_readme_send_a_conversation_to_grok(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(readme_block("send-to-grok"), "README.md:send-to-grok", "exec"), namespace)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("You said: Hi! Who are you? ")
    assert out[1] == "It is 18 °C and clear in Paris."
    assert out[2] == "['user', 'assistant', 'user', 'assistant', 'tool', 'assistant']"
    assert out[3].startswith("UsageTotals(turns=3, ")
    xai = namespace["xai"]
    assert xai.errors == []
    assert xs.check_requests(xai) in (0, 3)
    with Store(f"sqlite:///{tmp_path / 'grok-chat.db'}") as store:
        (conv,) = store.list_conversations()
        messages = store.messages(conv.id)
        assert [m.role for m in messages] == ["user", "assistant", "user", "assistant", "tool", "assistant"]
        assert messages[3].tool_calls[0].arguments == '{"city":"Paris"}'
        assert messages[-1].text == "It is 18 °C and clear in Paris."
        assert store.usage(conv.id).turns == 3


def test_bad_settings_and_options_are_refused_before_anything_is_stored(tmp_path: Any) -> None:
    with XAIStandIn() as xai, convkit.Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        conv = store.create_conversation()
        with convkit.XAIClient(api_key=xai.api_key, base_url=xai.base_url) as client:
            with pytest.raises(convkit.ValidationError, match="images="):
                convkit.Session(store, conv.id, model="grok-2", client=client, images="x")  # type: ignore[arg-type]
            with pytest.raises(convkit.ValidationError, match="low_water"):
                convkit.Session(store, conv.id, model="grok-2", client=client, low_water=2.0)
            session = convkit.Session(store, conv.id, model="grok-2", client=client, reserve=100)
            with pytest.raises(convkit.ValidationError, match="max_tokens=500"):
                session.send("hello", max_tokens=500)
            with pytest.raises(convkit.ValidationError, match="max_tokens=500"):
                list(session.send_stream("hello", max_tokens=500))
        assert store.messages(conv.id) == []
        assert xai.chat_requests == []


# -- a reply cut off before any text --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_an_empty_reply_cut_off_at_max_tokens_is_stored_with_its_usage(env: Env, mode: str) -> None:
    """Issue 14: a 200 reply with empty content and finish_reason "length" (the budget went to
    reasoning) was a ResponseFormatError, so the turn never completed and its billed usage was lost.
    It is the empty, truncated reply it is: stored as the turn's reply with its usage, and marked."""
    xai = env.standin()
    s = env.session(xai)
    xai.queue(Reply(text="", finish_reason="length", reasoning_tokens=40, usage={"completion_tokens": 0}))
    c = turn(s, mode, "Think hard, then answer.")
    assert c.truncated
    assert c.finish_reason == "length"
    assert c.text == ""
    assert c.message == Message("assistant", None, metadata={"finish_reason": "length"})
    assert c.usage.reasoning_tokens == 40
    assert s.messages()[-2:] == [Message.user("Think hard, then answer."), c.message]
    (row,) = xs.usage_rows(env.url, s.conversation_id)
    assert row["reasoning_tokens"] == 40
    assert row["prompt_tokens"] == c.usage.prompt_tokens > 0
    assert s.usage().turns == 1
    # the conversation goes on: the empty reply is sent back as what it is
    assert turn(s, mode, "Again, briefly?").text
    assert xai.chat_requests[-1]["messages"][-2] == {"role": "assistant", "content": ""}
    assert roles(s)[-4:] == ["user", "assistant", "user", "assistant"]
