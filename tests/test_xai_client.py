"""XAIClient and AsyncXAIClient over real sockets against the local xAI stand-in.

Every fault mode of :mod:`convkit.testing` is driven through both twins
(``flavour``) and, where it applies, both the plain and the streaming call
(``mode``): what is retried is retried (the stand-in counts the requests)
and stops at ``max_retries``; what is not is raised at once; errors are
the typed tree of :mod:`convkit._errors` and no httpx exception escapes.
The API key (``xai-TESTKEY-<random>``) is looked for in every log record
(DEBUG, httpx and httpcore included), the reprs, and each error's text,
repr and pickled form. Every chat body the stand-in receives validates
against the official ``ChatRequest`` schema (checked when each stand-in
stops; skipped, with the reason, when ``../shared`` is absent). No test
sleeps: slow responses are held on an Event and cut by a small client
timeout; retries back off for milliseconds.
"""

from __future__ import annotations

import json
import pickle
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import convkit
from convkit import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    Backoff,
    BadRequestError,
    ContextWindowError,
    Done,
    EstimateCounter,
    Message,
    ModelRegistry,
    ModelSpec,
    NotFoundError,
    PermissionDeniedError,
    PromptTooLongError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TextDelta,
    ToolCallDelta,
    ValidationError,
    XAIClient,
    XAITokenCounter,
)
from convkit.testing import Fault, Reply, XAIStandIn

from . import _xai_support as xs

KEY = xs.new_key()
HI = [Message.user("hello there, stand-in")]
MAX_RETRIES = 2
STANDIN_COUNTER = EstimateCounter(4.0, margin=0.0)  # the stand-in's default counter

pytestmark = pytest.mark.standin(api_key=KEY)  # the xai fixture (conftest.py)


@pytest.fixture(autouse=True)
def _no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    xs.capture_all_logs(caplog)
    yield
    xs.assert_logs_clean(caplog, KEY)


@pytest.fixture
def make_client(xai: XAIStandIn, flavour: str) -> Iterator[Callable[..., xs.ClientTwin]]:
    opened: list[xs.ClientTwin] = []

    def make(**kw: Any) -> xs.ClientTwin:
        args: dict[str, Any] = {
            "api_key": KEY,
            "base_url": xai.base_url,
            "max_retries": MAX_RETRIES,
            "backoff": xs.FAST,
            "timeout": 10.0,
            **kw,
        }
        twin = xs.ClientTwin(flavour, **args)
        opened.append(twin)
        xs.assert_repr_clean(KEY, twin.client)
        return twin

    yield make
    for twin in opened:
        twin.close()


def call(client: xs.ClientTwin, mode: str, messages: Any = HI, **kw: Any) -> Any:
    """A completion: ``client.chat`` ("chat") or the ``Done`` of ``client.stream`` ("stream")."""
    kw.setdefault("model", "grok-2")
    if mode == "chat":
        return client.chat(messages, **kw)
    events = client.stream(messages, **kw)
    assert isinstance(events[-1], Done)
    assert sum(isinstance(e, Done) for e in events) == 1
    return events[-1].completion


def raises(cls: type[APIError], fn: Callable[[], Any]) -> Any:
    """Run ``fn``; it must raise exactly ``cls`` (a clean, typed error)."""
    with pytest.raises(APIError) as info:
        fn()
    err = info.value
    assert type(err) is cls, f"{type(err).__name__}: {err}"
    xs.assert_error_clean(err, KEY)
    return err


def retry_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "convkit.xai" and "retry" in r.getMessage()]


# -- retried faults ----------------------------------------------------------------------------------

#: fault name -> (a fresh fault, the error once retries run out, status code)
RETRIED: dict[str, tuple[Callable[[threading.Event], Fault], type[APIError], int | None]] = {
    "429": (lambda ev: Fault.status(429), RateLimitError, 429),
    "500": (lambda ev: Fault.status(500), ServerError, 500),
    "503": (lambda ev: Fault.status(503), ServerError, 503),
    "502-slug": (lambda ev: Fault.status(502, code="unavailable"), ServerError, 502),
    "slow": (Fault.slow, APITimeoutError, None),
    "dropped": (lambda ev: Fault.drop_mid_stream(0, reset=True), APIConnectionError, None),
}


#: Client timeouts. HELD: every response of the test is held, so each attempt times out whatever the
#: load. ANSWERED: some responses are held and others must still arrive in time, even on a busy machine.
HELD = 0.05
ANSWERED = 0.5


@pytest.mark.parametrize("mode", ["chat", "stream"])
@pytest.mark.parametrize("fault", sorted(RETRIED))
def test_retried_faults_then_success(
    xai: XAIStandIn,
    make_client: Callable[..., xs.ClientTwin],
    fault: str,
    mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    build, _, _ = RETRIED[fault]
    xai.queue(build(release), build(release), Reply(text="Finally here."))
    client = make_client(timeout=ANSWERED if fault == "slow" else 10.0)
    try:
        completion = call(client, mode)
    finally:
        release.set()
    assert completion.text == "Finally here."
    assert len(xai.chat_requests) == MAX_RETRIES + 1
    assert xai.pending == []
    assert len(retry_warnings(caplog)) == 2
    # the retried requests are the same request
    assert all(body == xai.chat_requests[0] for body in xai.chat_requests)


@pytest.mark.parametrize("mode", ["chat", "stream"])
@pytest.mark.parametrize("fault", sorted(RETRIED))
def test_retried_faults_stop_at_max_retries(
    xai: XAIStandIn,
    make_client: Callable[..., xs.ClientTwin],
    fault: str,
    mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    build, error, status = RETRIED[fault]
    xai.queue(*(build(release) for _ in range(MAX_RETRIES + 3)))
    client = make_client(timeout=HELD if fault == "slow" else 10.0)
    try:
        err = raises(error, lambda: call(client, mode))
    finally:
        release.set()
    assert err.status_code == status
    assert len(xai.chat_requests) == MAX_RETRIES + 1, "retries did not stop at max_retries"
    assert len(xai.pending) == 2
    what = "POST /chat/completions" + (" (stream)" if mode == "stream" else "")
    warnings = retry_warnings(caplog)
    assert len(warnings) == MAX_RETRIES
    for k, w in enumerate(warnings, 1):
        assert w.startswith(f"{what} failed ({error.__name__}); retry {k} of {MAX_RETRIES} in 0.0")


@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_max_retries_zero_sends_once(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin], mode: str
) -> None:
    xai.queue(Fault.status(429), Reply(text="unused"))
    client = make_client(max_retries=0)
    raises(RateLimitError, lambda: call(client, mode))
    assert len(xai.chat_requests) == 1


def test_backoff_is_bounded_exponential_with_jitter() -> None:
    b = Backoff(initial=0.5, maximum=8.0)
    for attempt in range(12):
        cap = min(8.0, 0.5 * 2**attempt)
        assert all(0 <= b.delay(attempt) <= cap for _ in range(50))
    exact = Backoff(initial=0.5, maximum=8.0, jitter=False)
    assert [exact.delay(k) for k in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


@pytest.mark.parametrize(
    "kw", [{"initial": -1}, {"maximum": -0.5}, {"multiplier": 0.5}, {"initial": float("nan")}]
)
def test_backoff_refuses_values_that_cannot_be_slept(kw: dict[str, float]) -> None:
    with pytest.raises(ValidationError, match="Backoff needs"):
        Backoff(**kw)


def test_timeouts_are_explicit() -> None:
    client = XAIClient(api_key=KEY)
    try:
        assert client.timeout.read == 60.0
        assert client.timeout.connect == 10.0
        assert XAIClient(api_key=KEY, timeout=1.5).timeout.read == 1.5
        assert client.max_retries == 3
        assert client.base_url == "https://api.x.ai/v1"
    finally:
        client.close()


# -- faults raised at once ------------------------------------------------------------------------------

NOT_RETRIED: dict[str, tuple[Callable[[], Fault], type[APIError], int | None, str]] = {
    "plain-422": (
        lambda: Fault.plain_422("Failed to deserialize the JSON body into the target type: nope"),
        BadRequestError,
        422,
        "Failed to deserialize the JSON body",
    ),
    "malformed-json": (Fault.malformed_json, ResponseFormatError, 200, "not"),  # status: chat only
    "wrong-key": (Fault.wrong_key, AuthenticationError, 400, "Incorrect API key provided"),
    "400": (lambda: Fault.status(400, error="Bad things."), BadRequestError, 400, "Bad things."),
    "401": (lambda: Fault.status(401), AuthenticationError, 401, "XAI_API_KEY"),
    "403": (lambda: Fault.status(403), PermissionDeniedError, 403, "permission"),
    "404": (lambda: Fault.status(404, code="not-found"), NotFoundError, 404, "not-found"),
}


@pytest.mark.parametrize("mode", ["chat", "stream"])
@pytest.mark.parametrize("fault", sorted(NOT_RETRIED))
def test_faults_raised_at_once(
    xai: XAIStandIn,
    make_client: Callable[..., xs.ClientTwin],
    fault: str,
    mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    build, error, status, text = NOT_RETRIED[fault]
    xai.queue(build(), Reply(text="unused"))
    client = make_client()
    err = raises(error, lambda: call(client, mode))
    assert err.status_code == (None if fault == "malformed-json" and mode == "stream" else status)
    assert text in str(err)
    assert len(xai.chat_requests) == 1
    assert retry_warnings(caplog) == []
    assert len(xai.pending) == 1  # the reply is still waiting: nothing was retried


def test_wrong_key_is_an_authentication_error_without_either_key(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin]
) -> None:
    wrong = xs.new_key()
    client = make_client(api_key=wrong)
    err = raises(AuthenticationError, lambda: client.chat(HI, model="grok-2"))
    xs.assert_error_clean(err, wrong)
    assert err.status_code == 400
    assert "Incorrect API key provided" in str(err)
    assert "XAI_API_KEY" in str(err)
    assert len(xai.requests) == 1
    assert not xai.requests[0].key_seen


@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_unknown_model_is_not_found(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin], mode: str
) -> None:
    # the client knows the model (its own registry); the server does not
    registry = ModelRegistry()
    registry.register(ModelSpec("grok-imaginary", 131072, {"text"}, 1.0, None, 2.0))
    client = make_client(registry=registry)
    err = raises(NotFoundError, lambda: call(client, mode, model="grok-imaginary"))
    assert err.status_code == 404
    assert "grok-imaginary" in str(err)
    assert len(xai.chat_requests) == 1


def test_a_model_unknown_to_the_client_is_refused_before_sending(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin]
) -> None:
    client = make_client()
    with pytest.raises(convkit.UnknownModelError):
        client.chat(HI, model="grok-imaginary")
    assert xai.requests == []


@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_prompt_too_long_carries_n_and_m(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin], mode: str
) -> None:
    big = [Message.system("Be brief."), Message.user("lorem ipsum dolor sit amet " * 2000)]
    client = make_client()
    err = raises(
        PromptTooLongError, lambda: call(client, mode, big, model="grok-2-vision-1212", max_tokens=500)
    )
    limit = 8192 - 500
    tokens = STANDIN_COUNTER.count_messages(big, model="grok-2-vision-1212")
    assert (err.limit, err.requested) == (limit, tokens)
    assert (err.available, err.required) == (limit, tokens)
    assert isinstance(err, BadRequestError)
    assert isinstance(err, ContextWindowError)
    assert err.status_code == 400
    assert f"maximum prompt length is {limit} but the request contains {tokens} tokens" in str(err)
    assert len(xai.chat_requests) == 1
    back = pickle.loads(pickle.dumps(err))
    assert (back.limit, back.requested) == (limit, tokens)


# -- streams ------------------------------------------------------------------------------------------


def test_stream_events_assemble_the_completion(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin]
) -> None:
    calls = [
        {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
        {"id": "call_2", "name": "get_weather", "arguments": {"city": "Oslo"}},
    ]
    xai.queue(Reply(text="Let me check the weather.", tool_calls=calls, tool_call_chunks=3))
    client = make_client()
    events = client.stream(HI, model="grok-2", tools=[xs.WEATHER_TOOL], max_tokens=100)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    done = events[-1]
    assert isinstance(done, Done)
    c = done.completion
    assert text == c.text == "Let me check the weather."
    assert len([e for e in events if isinstance(e, TextDelta)]) > 1, "the text did not stream in pieces"
    assert [(t.id, t.name, json.loads(t.arguments)) for t in c.tool_calls] == [
        ("call_1", "get_weather", {"city": "Paris"}),
        ("call_2", "get_weather", {"city": "Oslo"}),
    ]
    assert len(deltas) == 6
    assert c.finish_reason == "tool_calls"
    prompt = STANDIN_COUNTER.count_messages(HI, model="grok-2", tools=[xs.WEATHER_TOOL])
    assert c.usage.prompt_tokens == prompt
    assert c.usage.completion_tokens > 0
    assert c.cost_usd == pytest.approx((prompt * 2.0 + c.usage.completion_tokens * 10.0) / 1e6)
    body = xai.chat_requests[0]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["tools"] == [xs.WEATHER_TOOL]
    assert body["max_tokens"] == 100


def test_chat_completion_shape(xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin]) -> None:
    xai.queue(Reply(text="Bonjour.", reasoning_tokens=7))
    client = make_client()
    c = client.chat(HI, model="grok-2-latest", temperature=0.2)
    assert c.text == "Bonjour."
    assert c.model == "grok-2-1212"
    assert c.finish_reason == "stop"
    assert c.usage.reasoning_tokens == 7
    assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens + 7
    # reasoning tokens are billed at the completion price, outside completion_tokens
    assert c.cost_usd == pytest.approx(
        (c.usage.prompt_tokens * 2.0 + (c.usage.completion_tokens + 7) * 10.0) / 1e6
    )
    assert xai.chat_requests[0]["model"] == "grok-2-1212"
    assert xai.chat_requests[0]["temperature"] == 0.2


@pytest.mark.parametrize("after", [0, 1])
def test_stream_closed_before_its_first_event_is_retried(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin], after: int
) -> None:
    """Headers (and the role-only chunk) but no content yet: nothing was handed out, so it is retried."""
    xai.queue(Fault.drop_mid_stream(after), Fault.drop_mid_stream(after), Reply(text="third time"))
    client = make_client()
    assert call(client, "stream").text == "third time"
    assert len(xai.chat_requests) == 3
    xai.queue(*[Fault.drop_mid_stream(after)] * (MAX_RETRIES + 1))
    err = raises(APIConnectionError, lambda: call(client, "stream"))
    assert "closed before the reply began" in str(err)
    assert len(xai.chat_requests) == 3 + MAX_RETRIES + 1


@pytest.mark.parametrize("after", [2, 3, 5])
def test_stream_cut_mid_way_raises_and_is_not_retried(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin], after: int
) -> None:
    """A stream that ends without [DONE] raises; the partial reply is never passed off as complete."""
    xai.queue(Fault.drop_mid_stream(after, reply=Reply(text="one two three four five six")), Reply())
    client = make_client()
    got: list[Any] = []
    err = raises(ResponseFormatError, lambda: client.stream(HI, model="grok-2", into=got))
    assert "before [DONE]" in str(err) or "cut off" in str(err)
    assert not any(isinstance(e, Done) for e in got)
    assert "".join(e.text for e in got if isinstance(e, TextDelta)) != "one two three four five six"
    assert len(xai.chat_requests) == 1
    assert len(xai.pending) == 1


def test_stream_reset_mid_way_is_a_typed_error(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin]
) -> None:
    """With a TCP reset the kernel may drop events already sent: either way a typed error, no Done."""
    xai.queue(Fault.drop_mid_stream(3, reset=True, reply=Reply(text="one two three four five six")))
    client = make_client(max_retries=0)
    got: list[Any] = []
    with pytest.raises(APIError) as info:
        client.stream(HI, model="grok-2", into=got)
    assert type(info.value) in (ResponseFormatError, APIConnectionError)
    xs.assert_error_clean(info.value, KEY)
    assert not any(isinstance(e, Done) for e in got)
    assert len(xai.chat_requests) == 1


def test_stream_read_timeout_mid_way_raises_response_format_error(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin]
) -> None:
    release = threading.Event()
    xai.queue(Fault.slow(release, after_chunks=3, reply=Reply(text="one two three four")), Reply())
    client = make_client(timeout=ANSWERED)
    got: list[Any] = []
    try:
        err = raises(ResponseFormatError, lambda: client.stream(HI, model="grok-2", into=got))
    finally:
        release.set()
    assert "cut off" in str(err)
    assert any(isinstance(e, TextDelta) for e in got)
    assert not any(isinstance(e, Done) for e in got)
    assert len(xai.chat_requests) == 1, "a stream must not be retried after its first event"


def test_plain_read_timeout_mid_body_is_retried(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin]
) -> None:
    release = threading.Event()
    xai.queue(Fault.slow(release, after_chunks=1), Reply(text="second time lucky"))
    client = make_client(timeout=ANSWERED)
    try:
        assert client.chat(HI, model="grok-2").text == "second time lucky"
    finally:
        release.set()
    assert len(xai.chat_requests) == 2


def test_stream_malformed_event(xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin]) -> None:
    xai.queue(Fault.malformed_json(), Reply())
    client = make_client()
    err = raises(ResponseFormatError, lambda: client.stream(HI, model="grok-2"))
    assert "not valid JSON" in str(err)
    assert len(xai.chat_requests) == 1


def test_unexpected_but_valid_json_is_a_response_format_error(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin]
) -> None:
    xai.queue(Reply(body={"id": "x", "choices": []}), Reply(body=["not", "an", "object"]))
    client = make_client()
    raises(ResponseFormatError, lambda: client.chat(HI, model="grok-2"))
    raises(ResponseFormatError, lambda: client.chat(HI, model="grok-2"))
    assert len(xai.chat_requests) == 2


def test_connection_refused_is_retried_then_typed(flavour: str) -> None:
    with XAIStandIn(api_key=KEY) as gone:
        base = gone.base_url
    twin = xs.ClientTwin(flavour, api_key=KEY, base_url=base, max_retries=1, backoff=xs.FAST, timeout=5)
    try:
        err = raises(APIConnectionError, lambda: twin.chat(HI, model="grok-2"))
        assert "connection failed" in str(err)
        raises(APIConnectionError, lambda: twin.stream(HI, model="grok-2"))
    finally:
        twin.close()


# -- key handling -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [convkit.XAIClient, convkit.AsyncXAIClient])
def test_missing_key_says_to_set_xai_api_key(monkeypatch: pytest.MonkeyPatch, cls: type[Any]) -> None:
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    for key in (None, "", "   "):
        with pytest.raises(AuthenticationError, match="XAI_API_KEY") as info:
            cls(api_key=key)
        assert "set the XAI_API_KEY environment variable" in str(info.value)


def test_key_from_the_environment(xai: XAIStandIn, flavour: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XAI_API_KEY", KEY + "\n")  # a trailing newline, as `export X=$(cat file)` may leave
    twin = xs.ClientTwin(flavour, base_url=xai.base_url)
    try:
        assert twin.chat(HI, model="grok-2").text == "You said: hello there, stand-in"
    finally:
        twin.close()


@pytest.mark.parametrize("bad", [" inner space", "tab\there", "ключ", "nul\x00byte"])
def test_a_key_no_header_can_carry_is_refused_without_echoing_it(bad: str) -> None:
    key = f"xai-TESTKEY-{bad}"
    with pytest.raises(AuthenticationError) as info:
        XAIClient(api_key=key)
    xs.assert_error_clean(info.value, key)
    assert bad not in str(info.value)
    assert "XAI_API_KEY" in str(info.value)


@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_a_key_echoed_by_the_server_is_masked(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin], mode: str
) -> None:
    xai.queue(
        Fault.status(400, error=f"Incorrect API key provided: {KEY}.", code=KEY),
        Fault.plain_422(f"Failed to deserialize: {KEY}"),
        Fault.status(403, error=f"key {KEY} may not", code=f"denied for {KEY}"),
    )
    client = make_client()
    assert raises(AuthenticationError, lambda: call(client, mode)).code == "***"
    assert "***" in str(raises(BadRequestError, lambda: call(client, mode)))
    assert raises(PermissionDeniedError, lambda: call(client, mode)).code == "denied for ***"


def test_an_error_event_in_a_stream_is_typed_and_masked(flavour: str) -> None:
    """xAI may end a stream with an error event; MockTransport plays it (the stand-in has no such fault)."""

    def handler(request: httpx.Request) -> httpx.Response:
        chunk = {
            "id": "1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "grok-2-1212",
            "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}],
        }
        body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps({'code': KEY, 'error': f'boom {KEY}'})}\n\n"
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body.encode())

    twin = xs.ClientTwin(flavour, api_key=KEY, transport=httpx.MockTransport(handler))
    got: list[Any] = []
    try:
        err = raises(ResponseFormatError, lambda: twin.stream(HI, model="grok-2", into=got))
    finally:
        twin.close()
    assert str(err) == "xAI answered 200: boom *** (code: ***)"
    assert got == [TextDelta("Hel")]


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1:1/v1", "http://[::1", "http:///v1"])
def test_bad_base_url_is_a_validation_error(url: str) -> None:
    with pytest.raises(ValidationError, match="base_url"):
        XAIClient(api_key=KEY, base_url=url)


def test_key_is_in_no_repr_error_or_log_record(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin], caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()
    xai.queue(
        Fault.status(429),
        Fault.slow(release),
        Fault.drop_mid_stream(1, reset=True),
        Fault.wrong_key(),
    )
    client = make_client(timeout=ANSWERED, max_retries=3)
    try:
        raises(AuthenticationError, lambda: client.chat(HI, model="grok-2"))
    finally:
        release.set()
    assert len(xai.chat_requests) == 4
    xs.assert_repr_clean(KEY, client.client, xai, xai.requests, *xai.requests)
    # the capture really holds httpx's and httpcore's DEBUG records
    names = {r.name for r in caplog.records}
    assert {"httpx", "convkit.xai"} <= names
    assert any(n.startswith("httpcore") for n in names)
    assert any(r.levelname == "DEBUG" for r in caplog.records)


# -- tokenize, language models, the remote counter --------------------------------------------------------


def test_tokenize(xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin]) -> None:
    client = make_client()
    text = "The quick brown fox jumps over the lazy dog."
    ids = client.tokenize(text, "grok-2")
    assert len(ids) == STANDIN_COUNTER.count_texts([text])[0]
    assert all(isinstance(i, int) for i in ids)
    assert client.tokenize("", "grok-2") == []
    (req, _) = xai.requests
    assert (req.method, req.path, req.json) == (
        "POST",
        "/v1/tokenize-text",
        {"text": text, "model": "grok-2-1212"},
    )


def test_tokenize_returns_the_tokenizers_ids(flavour: str, tiny_tokenizer: Any) -> None:
    text = "Hello world! How is the weather in Paris today?"
    with XAIStandIn(api_key=KEY, tokenizer=tiny_tokenizer) as xai:
        twin = xs.ClientTwin(flavour, api_key=KEY, base_url=xai.base_url)
        try:
            assert (
                twin.tokenize(text, "grok-2-1212")
                == tiny_tokenizer.encode(text, add_special_tokens=False).ids
            )
        finally:
            twin.close()


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(body={"tokens": []}, endpoint="tokenize"), ResponseFormatError),
        (Reply(body={"token_ids": [{"token_id": "x"}]}, endpoint="tokenize"), ResponseFormatError),
        (Fault.status(404, endpoint="tokenize"), NotFoundError),
    ],
)
def test_tokenize_errors(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin], reply: Any, error: type[APIError]
) -> None:
    xai.queue(reply)
    raises(error, lambda: make_client().tokenize("hi", "grok-2"))


def test_tokenize_retries(xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin]) -> None:
    xai.queue(Fault.status(503, endpoint="tokenize"), Fault.status(429, endpoint="tokenize"))
    assert len(make_client().tokenize("four words right here", "grok-2")) > 0
    assert [r.endpoint for r in xai.requests] == ["tokenize"] * 3


def test_language_models_refresh_a_fresh_registry(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin]
) -> None:
    before = convkit.get_model("grok-2-1212")
    entry = {
        "id": "grok-2-1212",
        "fingerprint": "fp",
        "created": 1733961600,
        "object": "model",
        "owned_by": "xai",
        "version": "1.0",
        "input_modalities": ["text"],
        "output_modalities": ["text"],
        "prompt_text_token_price": 30000,  # cents per 100M tokens: $3.00 per 1M
        "cached_prompt_text_token_price": 7500,
        "prompt_image_token_price": 0,
        "completion_text_token_price": 150000,  # $15.00 per 1M
        "aliases": ["grok-2", "grok-2-latest", "grok-2-new"],
    }
    vision = {
        **entry,
        "id": "grok-2-vision-1212",
        "input_modalities": ["text", "image"],
        "prompt_text_token_price": 25000,
        "prompt_image_token_price": 12500,
        "completion_text_token_price": 120000,
        "aliases": [],
    }
    xai.language_models = [entry, vision]
    registry = ModelRegistry()
    client = make_client(registry=registry)
    raw = client.language_models()
    assert raw == {"models": [entry, vision]}
    updated = client.refresh_models()
    assert {s.name for s in updated} == {"grok-2-1212", "grok-2-vision-1212"}
    spec = registry.get("grok-2-new")
    assert (spec.name, spec.price_text_in, spec.price_completion) == ("grok-2-1212", 3.0, 15.0)
    v = registry.get("grok-2-vision-1212")
    assert (v.price_text_in, v.price_image_in, v.price_completion) == (2.5, 1.25, 12.0)
    # the client prices completions with its registry
    c = client.chat(HI, model="grok-2-new")
    assert c.cost_usd == pytest.approx((c.usage.prompt_tokens * 3.0 + c.usage.completion_tokens * 15.0) / 1e6)
    # the default registry was not touched; another registry can be passed explicitly
    assert convkit.get_model("grok-2-1212") == before
    other = ModelRegistry()
    client.refresh_models(other)
    assert other.get("grok-2-new").price_completion == 15.0
    assert "grok-2-new" not in convkit._models.default_registry


def test_language_models_errors(xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin]) -> None:
    xai.queue(
        Reply(body=["a", "list"], endpoint="language-models"),
        Fault.status(500, endpoint="language-models"),
        Fault.status(500, endpoint="language-models"),
        Fault.status(500, endpoint="language-models"),
    )
    client = make_client()
    raises(ResponseFormatError, client.language_models)
    raises(ServerError, client.language_models)
    assert len(xai.requests) == 1 + MAX_RETRIES + 1


def test_xai_token_counter_counts_through_the_api_and_caches(xai: XAIStandIn) -> None:
    with XAIClient(api_key=KEY, base_url=xai.base_url, backoff=xs.FAST) as client:
        counter = XAITokenCounter(client, "grok-2")
        assert KEY not in repr(counter)
        text = "Count me through the API, please."
        assert counter.count_text(text) == STANDIN_COUNTER.count_texts([text])[0]
        assert len(xai.requests) == 1
        assert counter.count_text(text) == STANDIN_COUNTER.count_texts([text])[0]
        assert len(xai.requests) == 1, "the second count of the same text made a request"
        assert counter.count_texts([text, "", "something new"]) == [
            *STANDIN_COUNTER.count_texts([text]),
            0,
            STANDIN_COUNTER.count_texts(["something new"])[0],
        ]
        assert len(xai.requests) == 2  # only the new non-empty text
        assert counter.identity == "xai-tokenize:grok-2-1212:r1"
        assert counter.margin == 0
        m = [Message.user("hello"), Message.assistant("hi")]
        assert counter.count_messages(m, model="grok-2") == STANDIN_COUNTER.count_messages(m, model="grok-2")
        assert all(r.endpoint == "tokenize" for r in xai.requests)


# -- request bodies ---------------------------------------------------------------------------------------


def test_request_bodies_validate_against_chat_request(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin], tiny_tokenizer: Any
) -> None:
    if xs.openapi_document() is None:
        pytest.skip(xs.NO_OPENAPI)
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(buf, format="PNG")
    png = base64.b64encode(buf.getvalue()).decode()
    conversation = [
        {"role": "system", "content": "You are terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture, and the weather?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}", "detail": "high"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Rain, 7 C"},
        {"role": "user", "content": "Thanks!", "name": "alice"},
    ]
    client = make_client()
    client.chat(conversation, model="grok-2-vision-1212", tools=[xs.WEATHER_TOOL], max_tokens=50)
    client.chat(
        conversation, model="grok-2-vision-1212", tools=[xs.WEATHER_TOOL], tool_choice="auto", temperature=0
    )
    client.stream(conversation, model="grok-2-vision-1212", tools=[xs.WEATHER_TOOL], tool_choice="none")
    client.chat(
        HI,
        model="grok-2",
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        tools=[xs.WEATHER_TOOL],
        top_p=0.9,
        seed=3,
        stop=["\n\n"],
    )
    assert xs.check_requests(xai) == 4


# -- Retry-After -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["chat", "stream"])
def test_retry_after_is_honoured_up_to_the_backoff_maximum(
    xai: XAIStandIn, make_client: Callable[..., xs.ClientTwin], mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A 429 asking ``Retry-After: 1`` waits what it asks, capped at ``Backoff.maximum`` (0.02 s
    here), not the backoff's own 0.001 s (issue 14: the header was ignored)."""
    xai.queue(
        Fault.status(429, headers={"Retry-After": "1"}),
        Fault.status(503, headers={"Retry-After": "1"}),
        Reply(text="after the wait"),
    )
    client = make_client(backoff=Backoff(initial=0.001, maximum=0.02, jitter=False))
    assert call(client, mode).text == "after the wait"
    warnings = retry_warnings(caplog)
    assert [w.rsplit(" in ", 1)[1] for w in warnings] == ["0.02s", "0.02s"], warnings


def _sleeps_of(answers: list[httpx.Response], backoff: Backoff) -> list[float]:
    """The waits the retry flow asks for (no sleeping) when xAI answers ``answers`` in turn."""
    from convkit.xai._actions import Sleep
    from convkit.xai._flows import Wire, request

    wire = Wire(secret=KEY, max_retries=len(answers), backoff=backoff, registry=convkit.ModelRegistry())
    flow = request(wire, "POST", "/chat/completions", {})
    sleeps: list[float] = []
    action = next(flow)
    pending = [*list(answers), httpx.Response(200, json={})]
    try:
        while True:
            if isinstance(action, Sleep):
                sleeps.append(action.seconds)
                action = flow.send(None)
            else:
                action = flow.send(pending.pop(0))
    except StopIteration:
        return sleeps


def test_retry_after_seconds_and_http_dates_within_the_cap() -> None:
    import email.utils
    import time

    from convkit.xai._retry import retry_after_seconds

    backoff = Backoff(initial=0.5, maximum=30.0, jitter=False)
    soon = email.utils.formatdate(time.time() + 12, usegmt=True)
    past = email.utils.formatdate(time.time() - 100, usegmt=True)
    answers = [
        httpx.Response(429, headers={"Retry-After": "7"}, json={"code": "x", "error": "slow down"}),
        httpx.Response(429, headers={"Retry-After": soon}, json={"code": "x", "error": "slow down"}),
        httpx.Response(429, headers={"Retry-After": "3600"}, json={"code": "x", "error": "slow down"}),
        httpx.Response(429, headers={"Retry-After": past}, json={"code": "x", "error": "slow down"}),
        httpx.Response(429, headers={"Retry-After": "soon-ish"}, json={"code": "x", "error": "slow down"}),
        httpx.Response(429, json={"code": "x", "error": "slow down"}),
    ]
    sleeps = _sleeps_of(answers, backoff)
    assert sleeps[0] == 7.0
    assert 10.0 <= sleeps[1] <= 12.0
    assert sleeps[2] == 30.0  # capped at Backoff.maximum
    assert sleeps[3] == 0.0
    assert sleeps[4:] == [backoff.delay(4), backoff.delay(5)]  # unreadable or absent: the backoff
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 5) == 5.0
    assert retry_after_seconds("-1") is None
    assert retry_after_seconds("") is None
    assert retry_after_seconds("\u00b2") is None  # a digit to str.isdigit(), not to float()
    assert retry_after_seconds("\u0663") is None  # an Arabic-Indic digit: not an HTTP delay
