"""The local xAI stand-in (convkit.testing._server), driven over real sockets with httpx.

Covers: lifecycle and binding; auth on every endpoint and key redaction;
chat replies (default, scripted text and tool calls, usage, cost, images);
streaming shape (SSE framing, role first, content and tool-call arguments in
pieces that reassemble, finish and usage chunks, [DONE]); context-length
errors whose numbers are computed from the request; body validation; every
fault mode; tokenize-text; language-models; thread safety; sync and async
clients; and that the bodies it receives and sends validate against xAI's
official OpenAPI document (skipped, with the reason, when it is absent).
No test sleeps: slow responses are held on events and cut by client timeouts.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from PIL import Image

import convkit
from convkit.testing import Fault, RecordedRequest, Reply, XAIStandIn
from convkit.testing.openapi import OpenAPIDocument, SchemaMismatch, find_document, load_document

KEY = "test-key-0123456789"
WRONG_KEY_TAIL = ". You can obtain an API key from https://console.x.ai."
INVALID = "Client specified an invalid argument"
USER_HI = [{"role": "user", "content": "hi there"}]
#: One TLS context for every client (httpx builds a costly one per client otherwise; all traffic is http).
TLS = ssl.create_default_context()

#: The xai fixture (conftest.py); these tests send requests without the key or with a wrong one on purpose.
pytestmark = pytest.mark.standin(api_key=KEY, check_requests=False)


@pytest.fixture
def client(xai: XAIStandIn) -> Iterator[httpx.Client]:
    """A client of the stand-in with the right key."""
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=xai.base_url, headers=headers, timeout=10, verify=TLS) as c:
        yield c


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """A plain client (no base URL, no key) for one-off requests."""
    with httpx.Client(timeout=10, verify=TLS) as c:
        yield c


@pytest.fixture(scope="module")
def openapi() -> OpenAPIDocument:
    if find_document() is None:
        pytest.skip(
            "xAI's OpenAPI document not found at ../shared/xai/xai-openapi.json "
            "(set CONVKIT_SHARED_DIR to the folder holding xai/xai-openapi.json)"
        )
    return load_document()


def chat(client: httpx.Client, messages: Any = USER_HI, **body: Any) -> httpx.Response:
    return client.post("/chat/completions", json={"model": "grok-2", "messages": messages, **body})


def events(client: httpx.Client, messages: Any = USER_HI, **body: Any) -> list[str]:
    """The ``data:`` payloads of a streamed chat completion, in order."""
    payload = {"model": "grok-2", "messages": messages, "stream": True, **body}
    with client.stream("POST", "/chat/completions", json=payload) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream"
        assert r.headers["connection"] == "close"
        return [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]


def read_lines(
    client: httpx.Client, payload: Any, into: list[str] | None = None, timeout: Any = None
) -> list[str]:
    """The non-empty lines of a streamed response, collected in ``into`` as they arrive."""
    lines = [] if into is None else into
    kwargs = {} if timeout is None else {"timeout": timeout}
    with client.stream("POST", "/chat/completions", json=payload, **kwargs) as r:
        assert r.status_code == 200
        lines.extend(line for line in r.iter_lines() if line)
    return lines


def assemble(payloads: list[str]) -> dict[str, Any]:
    """Reassemble a stream the way a client must: content, tool calls by index, finish, usage."""
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    text, reasoning, calls, finish, usage, roles = [], [], {}, None, None, []
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
        for choice in chunk["choices"]:
            delta = choice["delta"]
            if "role" in delta:
                roles.append(delta["role"])
            text.append(delta.get("content") or "")
            reasoning.append(delta.get("reasoning_content") or "")
            for tc in delta.get("tool_calls") or ():
                slot = calls.setdefault(tc["index"], {"id": None, "name": None, "arguments": []})
                slot["id"] = tc.get("id") or slot["id"]
                slot["name"] = (tc.get("function") or {}).get("name") or slot["name"]
                slot["arguments"].append(tc["function"]["arguments"])
            finish = choice.get("finish_reason") or finish
    return {
        "chunks": chunks,
        "roles": roles,
        "text": "".join(text),
        "reasoning": "".join(reasoning),
        "calls": [
            {"id": c["id"], "name": c["name"], "arguments": "".join(c["arguments"]), "pieces": c["arguments"]}
            for _, c in sorted(calls.items())
        ],
        "finish": finish,
        "usage": usage,
    }


def estimate(messages: Any, model: str = "grok-2-1212", tools: Any = None) -> int:
    """The stand-in's default count, from an independent counter of the same kind."""
    return convkit.EstimateCounter(4.0, margin=0.0).count_messages(messages, model=model, tools=tools)


def png_data_url(width: int, height: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


# -- lifecycle -----------------------------------------------------------------------------------


def test_binds_loopback_on_an_ephemeral_port_and_stops(http: httpx.Client) -> None:
    xai = XAIStandIn(api_key=KEY)
    assert "stopped" in repr(xai)
    with xai:
        assert xai.base_url == f"http://127.0.0.1:{xai.port}/v1"
        assert xai.port > 0
        assert KEY not in repr(xai)
        assert "te***89" in repr(xai)
        r = http.get(f"{xai.base_url}/language-models", headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 200
        base = xai.base_url
    with pytest.raises(httpx.ConnectError):
        http.get(f"{base}/language-models", timeout=5)
    xai.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not running"):
        _ = xai.base_url
    xai.start()  # restartable, on a fresh port
    try:
        assert http.get(
            f"{xai.base_url}/language-models", headers={"Authorization": f"Bearer {KEY}"}
        ).is_success
    finally:
        xai.stop()


def test_stop_closes_idle_keep_alive_connections(xai: XAIStandIn, client: httpx.Client) -> None:
    assert chat(client).status_code == 200
    assert chat(client).status_code == 200  # the same pooled connection
    xai.stop()  # must not wait for the idle connection's client to go away
    with pytest.raises(httpx.TransportError):
        chat(client)


def test_importing_the_stand_in_loads_no_test_only_dependency() -> None:
    code = (
        "import sys\n"
        "from convkit.testing import XAIStandIn, Reply, Fault, RecordedRequest\n"
        "import convkit.testing.openapi\n"
        "bad = sorted(m for m in ('hypothesis', 'jsonschema', 'httpx') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.strip() == ""


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="api_key"):
        XAIStandIn(api_key="")
    with pytest.raises(ValueError, match="error_style"):
        XAIStandIn(error_style="short")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        XAIStandIn().queue("hello")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="endpoint"):
        Reply(text="x", endpoint="chats")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Fault.status(200)
    with pytest.raises(TypeError):
        Fault.slow(object())  # type: ignore[arg-type]


# -- auth and redaction ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/chat/completions", {"model": "grok-2", "messages": USER_HI}),
        ("POST", "/tokenize-text", {"model": "grok-2", "text": "hi"}),
        ("GET", "/language-models", None),
    ],
)
def test_every_endpoint_needs_the_key(
    xai: XAIStandIn, method: str, path: str, body: Any, http: httpx.Client
) -> None:
    url = xai.base_url + path
    wrong = http.request(method, url, json=body, headers={"Authorization": "Bearer xai-WRONG-secret"})
    assert wrong.status_code == 400
    assert wrong.json() == {"code": INVALID, "error": "Incorrect API key provided: xa***et" + WRONG_KEY_TAIL}
    assert "WRONG-secret" not in wrong.text
    missing = http.request(method, url, json=body)
    assert missing.status_code == 400
    assert missing.json()["error"] == "Incorrect API key provided: ***" + WRONG_KEY_TAIL
    not_bearer = http.request(method, url, json=body, headers={"Authorization": f"Basic {KEY}"})
    assert not_bearer.status_code == 400
    assert KEY not in not_bearer.text
    ok = http.request(method, url, json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200
    assert xai.pending == []


def test_recorded_requests_never_hold_the_key(xai: XAIStandIn, http: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "X-Echo": f"k={KEY}"}
    http.post(
        f"{xai.base_url}/chat/completions?key={KEY}",
        json={"model": "grok-2", "messages": [{"role": "user", "content": f"my key is {KEY}"}]},
        headers=headers,
    )
    http.post(f"{xai.base_url}/chat/completions", json={"model": "grok-2", "messages": USER_HI}, headers={})
    first, second = xai.requests
    assert isinstance(first, RecordedRequest)
    assert first.headers["authorization"] == "Bearer ***"
    assert first.headers["x-echo"] == "k=***"
    assert first.path == "/v1/chat/completions?key=***"
    assert first.json["messages"][0]["content"] == "my key is ***"
    assert first.key_seen
    assert not second.key_seen
    assert "authorization" not in second.headers
    for r in xai.requests:
        assert KEY not in repr(r)
        assert KEY.encode() not in r.raw
        assert KEY not in json.dumps(r.headers)


# -- chat: non-streaming -----------------------------------------------------------------------


def test_default_reply_shape_usage_and_cost(client: httpx.Client, xai: XAIStandIn, openapi: Any) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *USER_HI]
    r = chat(client, messages)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    openapi.validate("ChatResponse", body)
    assert body["object"] == "chat.completion"
    assert body["model"] == "grok-2-1212"  # the alias resolved
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": "You said: hi there", "refusal": None}
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    prompt = estimate(messages)
    assert prompt == math.ceil(len("Be brief.") / 4) + math.ceil(len("hi there") / 4) + 2 * 5 + 2
    completion = math.ceil(len("You said: hi there") / 4)
    assert usage == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {
            "text_tokens": prompt,
            "audio_tokens": 0,
            "image_tokens": 0,
            "cached_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
        "num_sources_used": 0,
        # $2 / 1M prompt, $10 / 1M completion; 1 USD = 10^10 ticks
        "cost_in_usd_ticks": prompt * 20_000 + completion * 100_000,
    }
    spec = convkit.get_model("grok-2")
    assert usage["cost_in_usd_ticks"] / 1e10 == pytest.approx(spec.estimate_cost(prompt, completion))
    ids = {chat(client).json()["id"] for _ in range(3)}
    assert len(ids) == 3


def test_default_reply_truncates_long_user_text(client: httpx.Client) -> None:
    r = chat(client, [{"role": "user", "content": "word " * 100}])
    content = r.json()["choices"][0]["message"]["content"]
    assert content.startswith("You said: word word")
    assert content.endswith("…")
    assert len(content) == len("You said: ") + 201


def test_scripted_replies_are_used_in_order(client: httpx.Client, xai: XAIStandIn) -> None:
    xai.queue(Reply(text="first"), Reply(text="second"))
    assert [chat(client).json()["choices"][0]["message"]["content"] for _ in range(3)] == [
        "first",
        "second",
        "You said: hi there",
    ]


def test_tool_call_reply(client: httpx.Client, xai: XAIStandIn, openapi: Any) -> None:
    xai.queue(
        Reply(
            tool_calls=[
                {"id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
                convkit.ToolCall("call_2", "get_time", '{"tz": "CET"}'),
                {"id": "call_3", "type": "function", "function": {"name": "calc", "arguments": {"x": 1}}},
            ]
        )
    )
    body = chat(client).json()
    openapi.validate("ChatResponse", body)
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}},
        {"id": "call_3", "type": "function", "function": {"name": "calc", "arguments": '{"x":1}'}},
    ]
    # the reply parses back into convkit's message type
    message = convkit.Message.from_openai(
        {k: v for k, v in choice["message"].items() if k in ("role", "content", "tool_calls")}
    )
    assert [c.name for c in message.tool_calls] == ["get_weather", "get_time", "calc"]


def test_usage_overrides_reasoning_and_finish_reason(client: httpx.Client, xai: XAIStandIn) -> None:
    xai.queue(
        Reply(
            text="ok",
            finish_reason="length",
            reasoning_tokens=94,
            reasoning_content="thinking...",
            usage={
                "prompt_tokens": 32,
                "completion_tokens": 9,
                "prompt_tokens_details": {"cached_tokens": 6},
            },
        )
    )
    body = chat(client).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["reasoning_content"] == "thinking..."
    usage = body["usage"]
    # xAI's own example: 32 + 9 + 94 reasoning = 135 (reasoning is outside completion_tokens)
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (32, 9, 135)
    assert usage["prompt_tokens_details"] == {
        "text_tokens": 32,
        "audio_tokens": 0,
        "image_tokens": 0,
        "cached_tokens": 6,
    }
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 94
    assert usage["cost_in_usd_ticks"] == 32 * 20_000 + (9 + 94) * 100_000


def test_reply_body_replaces_the_whole_response(client: httpx.Client, xai: XAIStandIn) -> None:
    xai.queue(Reply(body={"unexpected": "shape"}))
    r = chat(client)
    assert (r.status_code, r.json()) == (200, {"unexpected": "shape"})


def test_image_tokens_come_from_the_request(client: httpx.Client, openapi: Any) -> None:
    url = png_data_url(500, 300)  # 2 x 1 tiles -> (2 + 1) * 256
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        }
    ]
    openapi.validate("ChatRequest", {"model": "grok-2-vision-1212", "messages": messages})
    r = client.post("/chat/completions", json={"model": "grok-2-vision-1212", "messages": messages})
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    image = convkit.image_tokens(500, 300) + 1792  # a URL image costs the maximum
    assert image == 768 + 1792
    prompt = estimate(messages, model="grok-2-vision-1212")
    assert usage["prompt_tokens"] == prompt
    assert usage["prompt_tokens_details"]["image_tokens"] == image
    assert usage["prompt_tokens_details"]["text_tokens"] == prompt - image
    assert (
        usage["cost_in_usd_ticks"]
        == (prompt - image) * 20_000 + image * 20_000 + usage["completion_tokens"] * 100_000
    )
    text_only = client.post("/chat/completions", json={"model": "grok-2-1212", "messages": messages})
    assert text_only.status_code == 400
    assert text_only.json() == {
        "code": INVALID,
        "error": "Image inputs are not supported by the model grok-2-1212.",
    }


# -- chat: streaming -------------------------------------------------------------------------------


def test_stream_shape_and_reassembly(client: httpx.Client, xai: XAIStandIn) -> None:
    xai.queue(
        Reply(
            text="Hello there, world!",
            tool_calls=[
                {"id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris","unit":"celsius"}'},
                {"id": "call_2", "name": "get_time", "arguments": '{"tz":"Europe/Paris"}'},
            ],
        )
    )
    payloads = events(client)
    got = assemble(payloads)
    chunks = got["chunks"]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert got["roles"] == ["assistant"]
    assert len({c["id"] for c in chunks}) == 1
    assert {c["model"] for c in chunks} == {"grok-2-1212"}
    content_chunks = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content_chunks) >= 2
    assert got["text"] == "Hello there, world!"
    assert [(c["id"], c["name"], c["arguments"]) for c in got["calls"]] == [
        ("call_1", "get_weather", '{"city":"Paris","unit":"celsius"}'),
        ("call_2", "get_time", '{"tz":"Europe/Paris"}'),
    ]
    for call in got["calls"]:
        assert len(call["pieces"]) >= 2
        assert all(call["pieces"])
    # continuation deltas carry only index and arguments (OpenAI's convention)
    continuation = chunks[len(content_chunks) + 2]["choices"][0]["delta"]["tool_calls"][0]
    assert set(continuation) == {"index", "function"}
    assert set(continuation["function"]) == {"arguments"}
    assert got["finish"] == "tool_calls"
    # without stream_options.include_usage the finish chunk carries the usage
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "tool_calls"
    assert final["choices"][0]["delta"] == {}
    assert final["usage"]["prompt_tokens"] == estimate(USER_HI)
    assert all("usage" not in c for c in chunks[:-1])


def test_stream_with_include_usage_ends_with_a_usage_chunk(client: httpx.Client, xai: XAIStandIn) -> None:
    xai.queue(Reply(text="one two three", reasoning_content="let me think", reasoning_tokens=7))
    got = assemble(events(client, stream_options={"include_usage": True}))
    chunks = got["chunks"]
    tail = chunks[-1]
    assert tail["choices"] == []
    assert tail["usage"]["completion_tokens_details"]["reasoning_tokens"] == 7
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert got["text"] == "one two three"
    assert got["reasoning"] == "let me think"
    assert (
        got["usage"]["total_tokens"] == got["usage"]["prompt_tokens"] + got["usage"]["completion_tokens"] + 7
    )


def test_stream_matches_the_non_streaming_reply(client: httpx.Client, xai: XAIStandIn) -> None:
    call = {"id": "c1", "name": "lookup", "arguments": '{"q":"naïve 東京 😀"}'}
    xai.queue(Reply(text="Voilà 東京 😀", tool_calls=[call]), Reply(text="Voilà 東京 😀", tool_calls=[call]))
    whole = chat(client).json()
    got = assemble(events(client))
    assert got["text"] == whole["choices"][0]["message"]["content"]
    assert (
        got["calls"][0]["arguments"]
        == whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    )
    assert got["usage"] == whole["usage"]


def test_whole_tool_calls_and_chunks_validate(client: httpx.Client, xai: XAIStandIn, openapi: Any) -> None:
    call = {"id": "call_9", "name": "f", "arguments": '{"a":[1,2,3]}'}
    xai.queue(Reply(text="Sure thing.", tool_calls=[call], tool_call_chunks=1))
    got = assemble(events(client, stream_options={"include_usage": True}))
    tool_deltas = [c for c in got["chunks"] if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert len(tool_deltas) == 1  # the call arrives whole, as xAI sends it
    assert got["calls"][0]["arguments"] == call["arguments"]
    for chunk in got["chunks"]:
        openapi.validate("ChatResponseChunk", chunk)


def test_default_stream_echoes_the_user(client: httpx.Client) -> None:
    got = assemble(events(client, [{"role": "user", "content": "ping"}]))
    assert got["text"] == "You said: ping"
    assert got["finish"] == "stop"
    assert got["calls"] == []


# -- context window ------------------------------------------------------------------------------


def test_context_error_numbers_are_computed_from_the_request(client: httpx.Client, xai: XAIStandIn) -> None:
    xai.queue(Reply(text="kept for the retry"))
    text = "x" * 40_000
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": text}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    r = client.post(
        "/chat/completions",
        json={"model": "grok-2-vision-1212", "messages": messages, "tools": tools, "max_tokens": 100},
    )
    assert r.status_code == 400
    prompt = estimate(messages, model="grok-2-vision-1212", tools=tools)
    tools_tokens = math.ceil(len(json.dumps(tools[0], separators=(",", ":"), sort_keys=True)) / 4) + 8
    assert prompt == 10_000 + 1 + 2 * 5 + 2 + tools_tokens
    assert r.json() == {
        "code": INVALID,
        "error": (
            f"This model's maximum prompt length is {8192 - 100} but the request contains {prompt} tokens."
        ),
    }
    assert xai.pending == [Reply(text="kept for the retry")]  # a refused request uses no reply


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_context_limit_is_exact_and_reserves_the_completion(client: httpx.Client, field: str) -> None:
    messages = [{"role": "user", "content": "y" * 4000}]
    prompt = estimate(messages, model="grok-2-vision-1212")
    fits = {"model": "grok-2-vision-1212", "messages": messages, field: 8192 - prompt}
    assert client.post("/chat/completions", json=fits).status_code == 200
    over = {**fits, field: 8192 - prompt + 1}
    r = client.post("/chat/completions", json=over)
    assert r.status_code == 400
    assert r.json()["error"] == (
        f"This model's maximum prompt length is {prompt - 1} but the request contains {prompt} tokens."
    )


def test_max_completion_tokens_wins_over_max_tokens(client: httpx.Client) -> None:
    messages = [{"role": "user", "content": "y" * 4000}]
    prompt = estimate(messages, model="grok-2-vision-1212")
    body = {"model": "grok-2-vision-1212", "messages": messages, "max_tokens": 10**6}
    assert client.post("/chat/completions", json={**body, "max_completion_tokens": 8192 - prompt}).is_success


def test_a_stricter_counter_provokes_context_errors(http: httpx.Client) -> None:
    strict = convkit.EstimateCounter(1.0, margin=0.0)
    with XAIStandIn(api_key=KEY, counter=strict) as xai:
        messages = [{"role": "user", "content": "z" * 8190}]
        assert convkit.EstimateCounter().count_messages(messages, model="grok-2-vision-1212") < 8192
        r = http.post(
            f"{xai.base_url}/chat/completions",
            json={"model": "grok-2-vision-1212", "messages": messages},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert r.status_code == 400
        assert r.json()["error"].endswith(f"but the request contains {8190 + 5 + 2} tokens.")


# -- models and body validation --------------------------------------------------------------------


def test_unknown_and_registered_models(client: httpx.Client, xai: XAIStandIn, custom_model: Any) -> None:
    r = client.post("/chat/completions", json={"model": "grok-9000", "messages": USER_HI})
    assert r.status_code == 404
    assert r.json() == {
        "code": "Some requested entity was not found",
        "error": f"The model grok-9000 does not exist or your team {xai.team_id} does not have access to it.",
    }
    for alias, name in [
        ("grok-2-latest", "grok-2-1212"),
        ("grok-beta", "grok-beta"),
        ("test-small", custom_model.name),
    ]:
        r = client.post("/chat/completions", json={"model": alias, "messages": USER_HI})
        assert r.status_code == 200, r.text
        assert r.json()["model"] == name


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"messages": USER_HI}, 422, "missing field `model`"),
        ({"model": "grok-2"}, 422, "missing field `messages`"),
        ({"model": 3, "messages": USER_HI}, 422, "model: invalid type: number, expected a string"),
        ({"model": "grok-2", "messages": "hi"}, 422, "messages: invalid type: string, expected a sequence"),
        ([1, 2], 422, "invalid type: sequence, expected struct ChatRequest"),
        (
            {"model": "grok-2", "messages": [{"role": "robot", "content": "x"}]},
            422,
            "messages[0]: unknown role",
        ),
        ({"model": "grok-2", "messages": USER_HI, "max_tokens": -1}, 422, "max_tokens: invalid value"),
        ({"model": "grok-2", "messages": USER_HI, "tools": {"a": 1}}, 422, "tools: invalid type"),
    ],
)
def test_undeserializable_bodies_get_plain_422(
    client: httpx.Client, body: Any, status: int, text: str
) -> None:
    r = client.post("/chat/completions", json=body)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith("Failed to deserialize the JSON body into the target type: ")
    assert text in r.text


def test_invalid_json_and_empty_messages(client: httpx.Client) -> None:
    r = client.post("/chat/completions", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith("Failed to parse the request body as JSON")
    r = client.post("/chat/completions", json={"model": "grok-2", "messages": []})
    assert r.status_code == 400
    assert r.json()["code"] == INVALID


def test_unknown_route(client: httpx.Client) -> None:
    r = client.get("/chat/completions")
    assert r.status_code == 404
    assert r.json()["code"] == "Some requested entity was not found"


def test_chunked_request_bodies_are_read(client: httpx.Client, xai: XAIStandIn) -> None:
    data = json.dumps({"model": "grok-2", "messages": USER_HI}).encode()
    r = client.post("/chat/completions", content=iter([data[:10], data[10:]]))
    assert r.status_code == 200, r.text
    assert xai.chat_requests == [{"model": "grok-2", "messages": USER_HI}]


# -- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (429, "Some resource has been exhausted"),
        (500, "Internal error"),
        (503, "The service is currently unavailable"),
        (403, "The caller does not have permission to execute the specified operation"),
    ],
)
def test_status_faults_have_xais_flat_body(
    client: httpx.Client, xai: XAIStandIn, status: int, code: str
) -> None:
    xai.queue(Fault.status(status))
    r = chat(client)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"code", "error"}
    assert body["code"] == code
    assert body["error"]
    assert chat(client).status_code == 200  # one fault, one request


def test_status_faults_in_sequence_then_success(client: httpx.Client, xai: XAIStandIn) -> None:
    xai.queue(
        Fault.status(429, headers={"Retry-After": "0"}),
        Fault.status(500, code="internal", error="boom"),
        Fault.status(503),
        Reply(text="finally"),
    )
    first = chat(client)
    assert (first.status_code, first.headers["retry-after"]) == (429, "0")
    second = chat(client)
    assert second.json() == {"code": "internal", "error": "boom"}
    assert chat(client).status_code == 503
    assert chat(client).json()["choices"][0]["message"]["content"] == "finally"
    assert len(xai.chat_requests) == 4
    assert xai.pending == []


def test_slug_error_style(http: httpx.Client) -> None:
    with XAIStandIn(api_key=KEY, error_style="slug") as xai:
        xai.queue(Fault.status(429))
        headers = {"Authorization": f"Bearer {KEY}"}
        url = f"{xai.base_url}/chat/completions"
        assert http.post(url, json={}, headers=headers).json()["code"] == "resource-exhausted"
        r = http.post(url, json={"model": "nope", "messages": USER_HI}, headers=headers)
        assert r.json()["code"] == "not-found"
        assert http.post(url, json={}, headers={}).json()["code"] == "invalid-argument"


def test_wrong_key_fault_even_with_the_right_key(client: httpx.Client, xai: XAIStandIn) -> None:
    xai.queue(Fault.wrong_key())
    r = chat(client)
    assert r.status_code == 400
    assert r.json() == {"code": INVALID, "error": "Incorrect API key provided: te***89" + WRONG_KEY_TAIL}
    assert KEY not in r.text


def test_brief_example_key_masking(http: httpx.Client) -> None:
    with XAIStandIn(api_key="test-key") as xai:
        xai.queue(Fault.wrong_key())
        r = http.post(
            f"{xai.base_url}/chat/completions", json={}, headers={"Authorization": "Bearer test-key"}
        )
        assert r.json()["error"] == (
            "Incorrect API key provided: te***ey. You can obtain an API key from https://console.x.ai."
        )


def test_plain_422_fault(client: httpx.Client, xai: XAIStandIn) -> None:
    xai.queue(Fault.plain_422("Failed to deserialize the JSON body"))
    r = chat(client)
    assert (r.status_code, r.text) == (422, "Failed to deserialize the JSON body")
    assert r.headers["content-type"] == "text/plain; charset=utf-8"


def test_malformed_json_fault(client: httpx.Client, xai: XAIStandIn) -> None:
    xai.queue(Fault.malformed_json(), Fault.malformed_json())
    r = chat(client)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        r.json()
    payloads = events(client)
    assert payloads == ["{not json", "[DONE]"]


def test_drop_mid_stream_sends_exactly_the_chunks_then_ends_without_done(
    client: httpx.Client, xai: XAIStandIn
) -> None:
    xai.queue(Fault.drop_mid_stream(after_chunks=2))
    payloads = events(client, [{"role": "user", "content": "one two three four five"}])
    assert len(payloads) == 2
    assert "[DONE]" not in payloads
    first, second = (json.loads(p) for p in payloads)
    assert first["choices"][0]["delta"] == {"role": "assistant"}
    assert second["choices"][0]["delta"] == {"content": "You "}
    assert chat(client).status_code == 200  # the next request is served normally


def test_drop_mid_stream_never_sends_done_even_when_asked_for_more(
    client: httpx.Client, xai: XAIStandIn
) -> None:
    xai.queue(Fault.drop_mid_stream(after_chunks=1000, reply=Reply(text="a b")))
    payloads = events(client)
    assert payloads[-1] != "[DONE]"
    assert json.loads(payloads[-1])["choices"][0]["finish_reason"] == "stop"


def test_drop_with_reset_is_a_connection_error(client: httpx.Client, xai: XAIStandIn) -> None:
    xai.queue(Fault.drop_mid_stream(after_chunks=2, reset=True))
    payload = {"model": "grok-2", "messages": USER_HI, "stream": True}
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        read_lines(client, payload)  # a reset connection raises, never a clean end


@pytest.mark.parametrize("reset", [False, True])
@pytest.mark.parametrize("after_chunks", [0, 1])
def test_drop_non_streaming_cuts_the_body(
    client: httpx.Client, xai: XAIStandIn, reset: bool, after_chunks: int
) -> None:
    xai.queue(Fault.drop_mid_stream(after_chunks=after_chunks, reset=reset))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        chat(client)
    assert chat(client).status_code == 200


def test_slow_response_times_the_client_out_then_the_retry_succeeds(
    client: httpx.Client, xai: XAIStandIn
) -> None:
    release = threading.Event()
    xai.queue(Fault.slow(release), Reply(text="on time"))
    with pytest.raises(httpx.ReadTimeout):
        client.post(
            "/chat/completions",
            json={"model": "grok-2", "messages": USER_HI},
            timeout=httpx.Timeout(5, read=0.2),
        )
    assert chat(client).json()["choices"][0]["message"]["content"] == "on time"
    release.set()  # the held handler finishes writing to a client that left; no error
    assert xai.pending == []


def test_slow_response_is_answered_once_released(client: httpx.Client, xai: XAIStandIn) -> None:
    release = threading.Event()
    xai.queue(Fault.slow(release, reply=Reply(text="worth the wait")))
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(chat, client)
        assert xai.wait_for_requests(1)
        assert not future.done()
        release.set()
        r = future.result(timeout=10)
    assert r.json()["choices"][0]["message"]["content"] == "worth the wait"


def test_slow_mid_stream_times_out_after_the_first_chunks(client: httpx.Client, xai: XAIStandIn) -> None:
    release = threading.Event()
    xai.queue(Fault.slow(release, after_chunks=2))
    payload = {"model": "grok-2", "messages": USER_HI, "stream": True}
    seen: list[str] = []
    with pytest.raises(httpx.ReadTimeout):
        read_lines(client, payload, seen, timeout=httpx.Timeout(5, read=0.3))
    assert len(seen) == 2
    release.set()


def test_slow_non_streaming_after_headers(client: httpx.Client, xai: XAIStandIn) -> None:
    release = threading.Event()
    xai.queue(Fault.slow(release, after_chunks=0))
    with client.stream(
        "POST",
        "/chat/completions",
        json={"model": "grok-2", "messages": USER_HI},
        timeout=httpx.Timeout(5, read=0.2),
    ) as r:
        assert r.status_code == 200  # the headers arrived
        with pytest.raises(httpx.ReadTimeout):
            r.read()
    release.set()


def test_stop_releases_held_responses(http: httpx.Client) -> None:
    release = threading.Event()
    xai = XAIStandIn(api_key=KEY).start()
    xai.queue(Fault.slow(release))
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            http.post,
            f"{xai.base_url}/chat/completions",
            json={"model": "grok-2", "messages": USER_HI},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=30,
        )
        assert xai.wait_for_requests(1)
        xai.stop()
        assert release.is_set()
        with pytest.raises(httpx.TransportError):
            future.result(timeout=30)
    assert xai.errors == []


def test_faults_target_their_endpoint(client: httpx.Client, xai: XAIStandIn) -> None:
    xai.queue(
        Fault.status(500),  # chat
        Fault.status(429, endpoint="tokenize"),
        Fault.status(503, endpoint="language-models"),
        Fault.status(502, endpoint="any"),
    )
    assert client.get("/language-models").status_code == 503
    assert client.post("/tokenize-text", json={"model": "grok-2", "text": "a"}).status_code == 429
    assert chat(client).status_code == 500
    assert client.get("/language-models").status_code == 502
    assert chat(client).status_code == 200
    assert xai.pending == []


def test_a_queued_reply_waits_behind_a_fault_of_its_endpoint(client: httpx.Client, xai: XAIStandIn) -> None:
    xai.queue(Reply(body={"token_ids": []}, endpoint="tokenize"), Fault.status(429))
    assert chat(client).status_code == 429
    assert client.post("/tokenize-text", json={"model": "grok-2", "text": "abc"}).json() == {"token_ids": []}


# -- tokenize-text ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["Hello world!", "東京 😀 naïve", "a", ""])
def test_tokenize_without_a_tokenizer_agrees_with_the_counter(
    client: httpx.Client, xai: XAIStandIn, text: str, openapi: Any
) -> None:
    r = client.post("/tokenize-text", json={"model": "grok-2", "text": text})
    assert r.status_code == 200
    body = r.json()
    openapi.validate("TokenizeResponse", body)
    tokens = body["token_ids"]
    assert len(tokens) == xai.counter.count_texts([text])[0] == math.ceil(len(text.encode()) / 4)
    assert b"".join(bytes(t["token_bytes"]) for t in tokens) == text.encode()
    again = client.post("/tokenize-text", json={"model": "grok-2", "text": text}).json()
    assert again == body  # deterministic


def test_tokenize_with_a_real_tokenizer(tiny_tokenizer: Any, http: httpx.Client) -> None:
    with XAIStandIn(api_key=KEY, tokenizer=tiny_tokenizer) as xai:
        text = "Hello world! How is the weather in Paris?"
        r = http.post(
            f"{xai.base_url}/tokenize-text",
            json={"model": "grok-2-1212", "text": text},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        tokens = r.json()["token_ids"]
        assert [t["token_id"] for t in tokens] == tiny_tokenizer.encode(text, add_special_tokens=False).ids
        assert "".join(t["string_token"] for t in tokens) == text
        # the counter follows the tokenizer, so usage agrees with tokenize-text
        assert xai.counter.count_texts([text]) == [len(tokens)]


def test_tokenize_validation(client: httpx.Client, xai: XAIStandIn) -> None:
    r = client.post("/tokenize-text", json={"model": "grok-2"})
    assert (r.status_code, r.text) == (
        422,
        "Failed to deserialize the JSON body into the target type: missing field `text`",
    )
    r = client.post("/tokenize-text", json={"model": "grok-2", "text": 5})
    assert r.status_code == 422
    r = client.post("/tokenize-text", json={"model": "nope", "text": "x"})
    assert r.status_code == 404
    assert "The model nope does not exist" in r.json()["error"]


# -- language-models ---------------------------------------------------------------------------------


def test_language_models_lists_the_registry_in_cents_per_100m(client: httpx.Client, openapi: Any) -> None:
    body = client.get("/language-models").json()
    openapi.validate("ListLanguageModelsResponse", body)
    models = {m["id"]: m for m in body["models"]}
    assert set(models) >= {"grok-2-vision-1212", "grok-2-1212", "grok-vision-beta", "grok-beta"}
    g2 = models["grok-2-1212"]
    assert g2["aliases"] == ["grok-2", "grok-2-latest"]
    assert g2["input_modalities"] == ["text"]
    # $2.00 / 1M = 200 cents / 1M = 20000 cents / 100M
    assert (g2["prompt_text_token_price"], g2["completion_text_token_price"]) == (20_000, 100_000)
    vision = models["grok-vision-beta"]
    assert vision["input_modalities"] == ["text", "image"]
    assert (vision["prompt_text_token_price"], vision["prompt_image_token_price"]) == (50_000, 50_000)
    assert vision["completion_text_token_price"] == 150_000
    # convkit reads it back to the same dollars per million
    registry = convkit.ModelRegistry()
    registry.update_from_language_models(body)
    for spec in convkit.ModelRegistry().specs():  # the built-in table
        if spec.name in models:
            back = registry.get(spec.name)
            assert (back.price_text_in, back.price_image_in, back.price_completion, back.aliases) == (
                spec.price_text_in,
                spec.price_image_in,
                spec.price_completion,
                spec.aliases,
            )


def test_language_models_by_id_and_alias(client: httpx.Client, openapi: Any) -> None:
    r = client.get("/language-models/grok-2-latest")
    assert r.status_code == 200
    openapi.validate("LanguageModel", r.json())
    assert r.json()["id"] == "grok-2-1212"
    assert client.get("/language-models/nope").status_code == 404


def test_language_models_can_be_overridden(http: httpx.Client) -> None:
    custom = [
        {
            "id": "grok-2-1212",
            "fingerprint": "fp_x",
            "created": 1,
            "object": "model",
            "owned_by": "xai",
            "version": "2",
            "input_modalities": ["text"],
            "output_modalities": ["text"],
            "prompt_text_token_price": 30_000,
            "cached_prompt_text_token_price": 7_500,
            "prompt_image_token_price": 0,
            "completion_text_token_price": 150_000,
            "search_price": 0,
            "aliases": ["grok-2"],
        }
    ]
    with XAIStandIn(api_key=KEY, language_models=custom) as xai:
        url, headers = f"{xai.base_url}/language-models", {"Authorization": f"Bearer {KEY}"}
        assert http.get(url, headers=headers).json() == {"models": custom}
        xai.language_models = []
        assert http.get(url, headers=headers).json() == {"models": []}
        xai.language_models = None
        assert len(http.get(url, headers=headers).json()["models"]) >= 4


# -- the OpenAPI document and convkit's own request bodies ------------------------------------------


def test_chat_request_bodies_received_validate(client: httpx.Client, xai: XAIStandIn, openapi: Any) -> None:
    conversation = [
        convkit.Message.system("You are helpful."),
        convkit.Message.user(["Weather in Paris? See:", convkit.ImagePart.from_url(png_data_url(40, 30))]),
        convkit.Message.assistant(tool_calls=[convkit.ToolCall("call_1", "get_weather", '{"city":"Paris"}')]),
        convkit.Message.tool("18C and sunny", tool_call_id="call_1"),
        convkit.Message.user("Thanks!", name="alice"),
    ]
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    body = {
        "model": "grok-2-vision-1212",
        "messages": [m.to_openai() for m in conversation],
        "tools": tools,
        "tool_choice": "auto",
        "max_tokens": 256,
        "temperature": 0.2,
    }
    assert client.post("/chat/completions", json=body).status_code == 200
    assert events(
        client, **{**body, "model": "grok-2-vision-1212", "stream_options": {"include_usage": True}}
    )
    assert len(xai.chat_requests) == 2
    for received in xai.chat_requests:
        openapi.validate("ChatRequest", received)


def test_the_validator_rejects_bad_bodies(openapi: Any) -> None:
    with pytest.raises(SchemaMismatch) as info:
        openapi.validate(
            "ChatRequest",
            {"model": "grok-2", "messages": [{"role": "robot", "content": "x"}], "temperature": 7},
        )
    assert any(e.startswith("temperature:") for e in info.value.errors)
    assert any(e.startswith("messages/0:") for e in info.value.errors)
    assert isinstance(info.value, convkit.ValidationError)
    with pytest.raises(convkit.ValidationError, match="no schema"):
        openapi.validate("NoSuchSchema", {})


# -- concurrency and async ------------------------------------------------------------------------


def test_concurrent_requests_use_each_reply_once(client: httpx.Client, xai: XAIStandIn) -> None:
    texts = [f"reply {i}" for i in range(24)]
    xai.queue(*(Reply(text=t) for t in texts))
    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: chat(client).json(), range(24)))
    assert sorted(b["choices"][0]["message"]["content"] for b in bodies) == sorted(texts)
    assert len({b["id"] for b in bodies}) == 24
    assert xai.pending == []


def test_async_client_chat_stream_and_faults(xai: XAIStandIn) -> None:
    async def main() -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=xai.base_url, headers=headers, timeout=10, verify=TLS) as ac:
            xai.queue(Fault.status(429), Reply(text="async hello"))
            body = {"model": "grok-2", "messages": USER_HI}
            first = await ac.post("/chat/completions", json=body)
            assert first.status_code == 429
            second = await ac.post("/chat/completions", json=body)
            assert second.json()["choices"][0]["message"]["content"] == "async hello"

            xai.queue(Reply(tool_calls=[{"id": "c1", "name": "f", "arguments": '{"k": "v"}'}]))
            payloads: list[str] = []
            async with ac.stream("POST", "/chat/completions", json={**body, "stream": True}) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        payloads.append(line[6:])
            got = assemble(payloads)
            assert got["calls"][0]["arguments"] == '{"k": "v"}'
            assert got["finish"] == "tool_calls"

            results = await asyncio.gather(*(ac.post("/chat/completions", json=body) for _ in range(10)))
            assert all(r.status_code == 200 for r in results)

    asyncio.run(main())


def test_async_client_sees_a_cut_stream_and_a_timeout(xai: XAIStandIn) -> None:
    async def main() -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        body = {"model": "grok-2", "messages": USER_HI, "stream": True}
        release = threading.Event()
        xai.queue(Fault.drop_mid_stream(after_chunks=3), Fault.slow(release))
        async with httpx.AsyncClient(base_url=xai.base_url, headers=headers, timeout=10, verify=TLS) as ac:
            async with ac.stream("POST", "/chat/completions", json=body) as r:
                lines = [line async for line in r.aiter_lines() if line]
            assert len(lines) == 3
            assert "data: [DONE]" not in lines
            with pytest.raises(httpx.ReadTimeout):
                await ac.post("/chat/completions", json=body, timeout=httpx.Timeout(5, read=0.2))
        release.set()

    asyncio.run(main())
