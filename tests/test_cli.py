"""The command line: ``convkit models`` and ``convkit fit``, their output, errors and exit codes."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from convkit import EstimateCounter, HFTokenCounter, Message, fit
from convkit._cli import main

CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a support assistant."},
    {"role": "user", "content": "My export job fails since Monday. " * 20},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_job", "arguments": '{"id": 7}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "failed", "error": "permission"}'},
    {"role": "assistant", "content": "The job lacks write permission on the bucket. " * 10},
    {"role": "user", "content": "How do I fix it?", "pinned": True},
]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), stdout=out)
    return code, out.getvalue()


@pytest.fixture
def conversation_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "chat.jsonl", CONVERSATION)


# -- models ---------------------------------------------------------------------------------------


def test_models_table() -> None:
    code, text = run("models")
    assert code == 0
    lines = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert {"grok-2-vision-1212", "grok-2-1212", "grok-vision-beta", "grok-beta"} <= set(lines)
    assert "131072" in lines["grok-2-1212"]
    assert "grok-2, grok-2-latest" in lines["grok-2-1212"]
    assert "8192" in lines["grok-2-vision-1212"]
    assert "2.00" in lines["grok-2-vision-1212"]
    assert "10.00" in lines["grok-2-vision-1212"]
    assert "(deprecated)" in lines["grok-beta"]
    assert "(deprecated)" in lines["grok-vision-beta"]
    assert "(deprecated)" not in lines["grok-2-1212"]


def test_models_json() -> None:
    code, text = run("models", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(text)}
    assert rows["grok-2-1212"]["aliases"] == ["grok-2", "grok-2-latest"]
    assert rows["grok-2-1212"]["price_image_in"] is None
    assert rows["grok-vision-beta"] == {
        "name": "grok-vision-beta",
        "aliases": [],
        "context_window": 8192,
        "input_modalities": ["image", "text"],
        "price_text_in": 5.0,
        "price_image_in": 5.0,
        "price_completion": 15.0,
        "deprecated": True,
    }


# -- fit ------------------------------------------------------------------------------------------


def test_fit_json(conversation_file: Path) -> None:
    code, text = run("fit", str(conversation_file), "--model", "grok-2-vision-1212", "--json")
    assert code == 0
    report = json.loads(text)
    assert {"prompt_tokens", "budget", "kept", "dropped"} <= set(report)
    expected = fit(CONVERSATION, model="grok-2-vision-1212", counter=EstimateCounter())
    assert report["prompt_tokens"] == expected.prompt_tokens
    assert report["budget"] == expected.budget
    assert report["kept"] == expected.kept == list(range(len(CONVERSATION)))
    assert report["dropped"] == []
    assert report["model"] == "grok-2-vision-1212"


def test_fit_json_trims_with_a_reserve_and_a_tokenizer(
    conversation_file: Path, tmp_path: Path, tiny_tokenizer: Any
) -> None:
    tok_path = tmp_path / "tok.json"
    tiny_tokenizer.save(str(tok_path))
    counter = HFTokenCounter.from_file(tok_path)
    must = counter.count_messages([CONVERSATION[0], CONVERSATION[5]], model="grok-2")
    reserve = 131072 - must - 1
    code, text = run(
        "fit",
        str(conversation_file),
        "--model",
        "grok-2",
        "--reserve",
        str(reserve),
        "--tokenizer",
        str(tok_path),
        "--json",
    )
    assert code == 0
    report = json.loads(text)
    assert report["model"] == "grok-2-1212"  # the alias resolved
    assert report["kept"] == [0, 5]
    assert report["dropped"] == [1, 2, 3, 4]
    assert report["prompt_tokens"] == must <= report["budget"] == must + 1
    assert report["reserve"] == reserve
    assert report["counter"] == counter.identity


def test_fit_table(conversation_file: Path) -> None:
    counter = EstimateCounter()
    must = counter.count_messages([Message.from_openai(CONVERSATION[i]) for i in (0, 5)], model="grok-2")
    reserve = 131072 - int(must * 1.1) - 2
    code, text = run("fit", str(conversation_file), "--model", "grok-2", "--reserve", str(reserve))
    assert code == 0
    rows = text.splitlines()
    states = [row.split()[3] for row in rows[1 : 1 + len(CONVERSATION)]]
    assert states == ["kept", "dropped", "dropped", "dropped", "dropped", "kept"]
    assert [row.split()[0] for row in rows[1:7]] == ["0", "1", "2", "3", "4", "5*"]  # 5 is pinned
    assert "2 kept, 4 dropped" in text
    assert "budget" in text
    assert "estimated cost: $" in text


def test_fit_cannot_fit(conversation_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(
        "fit", str(conversation_file), "--model", "grok-2-vision-1212", "--reserve", "8190", "--json"
    )
    assert code == 1
    report = json.loads(text)
    assert report["error"] == "context_window"
    assert report["required"] > report["available"]
    assert report["model"] == "grok-2-vision-1212"
    assert "convkit: error:" in capsys.readouterr().err
    code, text = run("fit", str(conversation_file), "--model", "grok-2-vision-1212", "--reserve", "8190")
    assert code == 1
    assert text == ""
    err = capsys.readouterr().err
    assert "need" in err
    assert "lower the reserve" in err


def test_fit_unknown_model(conversation_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run("fit", str(conversation_file), "--model", "grok-9", "--json")
    assert code == 2
    assert json.loads(text)["error"] == "unknown_model"
    err = capsys.readouterr().err
    assert "unknown model 'grok-9'" in err
    assert "grok-2-1212" in err


@pytest.mark.parametrize(
    ("lines", "pattern"),
    [
        (['{"role": "user", "content": "hi"}', "{not json"], r"chat\.jsonl:2: not valid JSON"),
        (
            ['{"role": "user", "content": "hi"}', "", '{"role": "bot", "content": "x"}'],
            r":3: unknown role 'bot'",
        ),
        (['{"role": "tool", "content": "x"}'], r":1: a tool message needs tool_call_id"),
        ([""], r"holds no messages"),
    ],
)
def test_fit_bad_file(
    tmp_path: Path, lines: list[str], pattern: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _ = run("fit", str(path), "--model", "grok-2")
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("convkit: error: ")
    assert re.search(pattern, err), err


def test_fit_missing_file_and_orphan_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run("fit", str(tmp_path / "absent.jsonl"), "--model", "grok-2")
    assert code == 2
    assert "cannot read" in capsys.readouterr().err
    orphan = write_jsonl(tmp_path / "o.jsonl", [{"role": "tool", "tool_call_id": "zz", "content": "42"}])
    code, text = run("fit", str(orphan), "--model", "grok-2", "--json")
    assert code == 2
    assert json.loads(text)["error"] == "InvalidConversationError"
    assert "'zz'" in capsys.readouterr().err


def test_fit_images_on_a_text_only_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "see"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
            ],
        }
    ]
    path = write_jsonl(tmp_path / "img.jsonl", rows)
    code, _ = run("fit", str(path), "--model", "grok-2")
    assert code == 2
    assert "images='drop'" in capsys.readouterr().err
    code, text = run("fit", str(path), "--model", "grok-2", "--images", "drop", "--json")
    assert code == 0
    assert json.loads(text)["kept"] == [0]


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["fit", "x.jsonl"])  # no --model
    assert info.value.code == 2
    assert "--model" in capsys.readouterr().err


def test_python_dash_m_convkit(conversation_file: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVKIT_")}
    proc = subprocess.run(
        [sys.executable, "-m", "convkit", "fit", str(conversation_file), "--model", "grok-2", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["kept"] == list(range(len(CONVERSATION)))
    # the default estimate carries no margin; the default reserve keeps 1024 tokens for the reply
    assert report["budget"] == 131072 - 1024
