"""Cache routing (issue 12): ``x-grok-conv-id`` on requests, and the stand-in's prompt cache.

The client sends ``x-grok-conv-id`` when given ``conv_id=``; a ``Session`` sends a
stable, opaque key for its conversation on every request (the same in another
process, never the namespace); the stand-in reports as ``cached_tokens`` the
whole blocks of the longest message prefix a request shares with an earlier
request of the same id, and nothing without the header.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import convkit
from convkit import EstimateCounter, Message, Session, Store, ValidationError, XAIClient
from convkit.testing import XAIStandIn
from convkit.testing._cache import PromptCache

KEY = "sk-cache-test"
COUNTER = EstimateCounter(4.0, margin=0.0)  # the stand-in's own default counter


def _long(i: int) -> Message:
    return Message.user(f"question {i}: " + "tell me more about the weather in Lisbon " * 20)


def _prefix_tokens(messages: list[Message], spec: convkit.ModelSpec) -> list[int]:
    out, total = [], 0
    for tokens in COUNTER.content_tokens(messages):
        total += tokens + spec.message_overhead
        out.append(total)
    return out


def test_the_standin_caches_whole_blocks_of_a_shared_prefix_per_conv_id() -> None:
    spec = convkit.get_model("grok-2-1212")
    first = [Message.system("be brief"), _long(1)]
    second = [*first, Message.assistant("sunny"), _long(2)]
    with XAIStandIn(api_key=KEY) as xai, XAIClient(api_key=KEY, base_url=xai.base_url) as client:
        assert client.chat(first, model=spec, conv_id="conv-a").usage.cached_tokens == 0  # nothing yet
        got = client.chat(second, model=spec, conv_id="conv-a").usage
        shared = _prefix_tokens(second, spec)[len(first) - 1]
        assert shared >= 128
        assert got.cached_tokens == shared // 128 * 128
        assert got.cached_tokens <= got.prompt_tokens
        # another id, no id, another model or other tools: nothing shared
        assert client.chat(second, model=spec, conv_id="conv-b").usage.cached_tokens == 0
        assert client.chat(second, model=spec).usage.cached_tokens == 0
        assert client.chat(second, model="grok-beta", conv_id="conv-a").usage.cached_tokens == 0
        tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
        assert client.chat(second, model=spec, conv_id="conv-a", tools=tools).usage.cached_tokens == 0
        # an edit early in the conversation breaks the prefix there
        edited = [Message.system("be very brief"), *second[1:]]
        assert client.chat(edited, model=spec, conv_id="conv-a").usage.cached_tokens == 0
        sent = [r for r in xai.requests if r.endpoint == "chat"]
        assert [r.headers.get("x-grok-conv-id") for r in sent] == [
            "conv-a",
            "conv-a",
            "conv-b",
            None,
            "conv-a",
            "conv-a",
            "conv-a",
        ]


def test_prompt_cache_blocks_and_bounds() -> None:
    cache = PromptCache(block=10, keep=2)
    msgs: list[dict[str, Any]] = [{"role": "user", "content": str(i)} for i in range(5)]
    assert cache.serve("a", "k", msgs[:2], [7, 14], 20) == 0
    assert cache.serve("a", "k", msgs[:4], [7, 14, 21, 28], 30) == 10  # 14 shared -> one block
    assert cache.serve("a", "k", msgs[:4], [7, 14, 21, 28], 25) == 20  # 28 shared, capped by blocks
    assert cache.serve(None, "k", msgs, [7, 14, 21, 28, 35], 40) == 0
    assert cache.serve("a", "other", msgs, [7, 14, 21, 28, 35], 40) == 0
    with pytest.raises(ValueError, match="cache_block"):
        PromptCache(block=0)


def test_bad_conv_ids_are_refused_before_anything_is_sent() -> None:
    with XAIStandIn(api_key=KEY) as xai, XAIClient(api_key=KEY, base_url=xai.base_url) as client:
        for bad in ("", "has space", "line\nbreak", "é", "x" * 129):
            with pytest.raises(ValidationError, match="conv_id"):
                client.chat([Message.user("hi")], model="grok-2", conv_id=bad)
        assert xai.requests == []


def test_a_session_sends_one_stable_opaque_key_per_conversation(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with (
        XAIStandIn(api_key=KEY) as xai,
        XAIClient(api_key=KEY, base_url=xai.base_url) as client,
        Store(url, namespace="tenant-secret-name") as store,
    ):
        a, b = store.create_conversation().id, store.create_conversation().id
        s = Session(store, a, model="grok-2-1212", client=client)
        s.send(_long(1))
        list(s.send_stream(_long(2)))
        Session(store, a, model="grok-2-1212", client=client).send(_long(3))
        Session(store, b, model="grok-2-1212", client=client).send("another conversation")
        ids = [r.headers.get("x-grok-conv-id") for r in xai.requests if r.endpoint == "chat"]
        assert ids[0] == ids[1] == ids[2] != ids[3]
        assert all(i is not None for i in ids)
        assert a not in ids[0]
        assert "tenant" not in ids[0]
        assert KEY not in ids[0]
        # the third turn shares the second's prefix: the cache is warm across Session objects
        assert store.usage(a).cached_tokens > 0
    # stable across processes: another interpreter derives the same key
    code = (
        "import sys, convkit\n"
        "from convkit._session_flows import default_conv_id\n"
        f"print(default_conv_id({a!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ids[0]


def test_usage_totals_report_the_cached_share_and_what_caching_saved(tmp_path: Path) -> None:
    spec = convkit.get_model("grok-4.3")
    assert spec.price_cached_in is not None
    assert spec.price_cached_in < spec.price_text_in
    with (
        XAIStandIn(api_key=KEY) as xai,
        XAIClient(api_key=KEY, base_url=xai.base_url) as client,
        Store(f"sqlite:///{tmp_path / 'u.db'}") as store,
    ):
        cid = store.create_conversation().id
        s = Session(store, cid, model=spec, client=client)
        completions = [s.send(_long(i)) for i in range(4)]
        totals = store.usage(cid)
    cached = [c.usage.cached_tokens for c in completions]
    assert cached[0] == 0
    assert all(c > 0 for c in cached[1:])
    assert totals.cached_tokens == sum(cached)
    assert totals.cached_share == sum(cached) / totals.prompt_tokens
    want = sum(spec.cache_savings(c.usage.prompt_tokens, c.usage.cached_tokens) for c in completions)
    assert totals.cache_savings_usd == pytest.approx(want)
    assert totals.cache_savings_usd > 0


def test_readme_prompt_cache_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ._integrations import readme_block

    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(readme_block("prompt-cache"), "README.md:prompt-cache", "exec"), namespace)
    assert namespace["totals"].cached_share > 0
    assert namespace["later"].start == namespace["first"].start == 0


def test_a_session_keeps_its_prefix_between_cuts_by_default(tmp_path: Path) -> None:
    """Session's default is the cache-stable policy: once the window is full, most requests
    begin with the previous request's messages, and their prefix comes back cached."""
    with (
        XAIStandIn(api_key=KEY) as xai,
        XAIClient(api_key=KEY, base_url=xai.base_url) as client,
        Store(f"sqlite:///{tmp_path / 'p.db'}") as store,
    ):
        cid = store.create_conversation().id
        s = Session(store, cid, model="grok-2-vision-1212", client=client)
        assert s.settings.policy == "stable"
        for i in range(40):
            s.send(_long(i))
        bodies = [r.json["messages"] for r in xai.requests if r.endpoint == "chat"]
        moved = sum(1 for a, b in itertools.pairwise(bodies) if b[: len(a)] != a)
        assert 1 <= moved <= 8, moved  # it was cut, but rarely
        assert store.usage(cid).cached_share > 0.6
