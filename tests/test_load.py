"""The load harness's audit, in a short version: 2 processes on SQLite and on PostgreSQL.

The harness is ``benchmarks/_load_harness.py`` (shared with ``benchmarks/bench_load.py``, which runs
it at full size): two worker processes (spawn), each with 3 ``AsyncSession`` conversations at once and
one sync ``Session`` in a thread, 5 turns each (send and send_stream), against one stand-in injecting
429, 500, cut streams, answers slower than the client's timeout and prompt-too-long 400s (8% of
requests each here, so a short run sees them). Clients send the same message again on an APIError.
The audit: seq contiguous from 1 per conversation; the stored messages are exactly each turn's user
message followed by its reply (so nothing stored twice by a retried send); one usage row per reply
with the usage the client got; every request the stand-in received fits the window minus
``max_tokens`` by the stand-in's and the sessions' counters; no unexpected error anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import convkit
from benchmarks import _load_harness as harness
from convkit import Message
from convkit.testing import RecordedRequest, XAIStandIn


def test_many_sessions_in_two_processes_under_faults_keep_every_promise(db_url: str) -> None:
    cfg = harness.LoadConfig(
        processes=2,
        conversations=3,
        sync_conversations=1,
        turns=5,
        fault_rate=0.08,
        timeout=1.0,
        client_retries=1,
        send_retries=6,
        async_pool=4,
        sync_pool=2,
    )
    result = harness.run_load(db_url, cfg)
    assert result["audit_failures"] == []
    assert result["unexpected_errors"] == []
    assert result["conversations"] == 2 * (3 + 1)
    assert result["turns"] == 2 * (3 + 1) * 5
    assert result["turns_failed_after_retries"] == 0
    assert result["turns_replied"] == result["turns"]
    assert result["faults_injected_total"] > 0
    assert result["chat_requests"] >= result["turns"]


def test_the_audit_reports_a_repeated_message_a_missing_usage_row_and_an_oversized_request(
    tmp_path: Path, default_registry_restored: Any
) -> None:
    """The audit is not blind: a doctored database and request each give a failure line."""
    convkit.register_model(harness.LOAD_MODEL, replace=True)
    url = f"sqlite:///{tmp_path / 'doctored.db'}"
    convkit.upgrade(url)
    with convkit.Store(url, namespace="load") as store:
        conv = store.create_conversation()
        store.extend(conv.id, [Message.user("hi"), Message.user("hi"), Message.assistant("You said: hi")])
    turn = {"user": "hi", "mode": "send", "reply": "You said: hi", "usage": [3, 4], "attempts": 2}
    results = [{"transcripts": {conv.id: [turn]}, "unexpected": []}]
    body = {
        "model": harness.LOAD_MODEL.name,
        "max_tokens": harness.RESERVE,
        "messages": [{"role": "user", "content": "word " * 40_000}],
    }
    raw = json.dumps(body).encode()
    request = RecordedRequest("POST", "/v1/chat/completions", {}, None, raw, "chat")
    failures = harness.audit(url, "load", results, [request], XAIStandIn())
    assert any("message 2 is user 'hi', expected assistant" in f for f in failures), failures
    assert any("usage rows at seqs []" in f for f in failures), failures
    assert any("by the stand-in's counter" in f for f in failures), failures
    assert any("by the client's counter" in f for f in failures), failures
