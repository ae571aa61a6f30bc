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

from convkit import EstimateCounter, HFTokenCounter, Message, ModelSpec, fit
from convkit import _models as convkit_models
from convkit._cli import main
from convkit._models import CATALOG_DATE, CATALOG_URL
from convkit.testing import XAIStandIn

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
    head, table = text.split("\n\n", 1)
    assert f"built-in model table of {CATALOG_DATE} ({CATALOG_URL})" in head
    rows = [line for line in table.splitlines()[1:] if not line.startswith(" ")]
    lines = {line.split()[0]: line for line in rows}
    assert {"grok-2-vision-1212", "grok-2-1212", "grok-vision-beta", "grok-beta"} <= set(lines)
    assert "131072" in lines["grok-2-1212"]
    assert "grok-2, grok-2-latest" in lines["grok-2-1212"]
    assert "8192" in lines["grok-2-vision-1212"]
    assert "2.00" in lines["grok-2-vision-1212"]
    assert "10.00" in lines["grok-2-vision-1212"]
    assert "(deprecated)" in lines["grok-beta"]
    assert "(deprecated)" in lines["grok-vision-beta"]
    assert "(deprecated)" not in lines["grok-2-1212"]
    # today's models: window, cached price, reasoning, the long-prompt tier under the row
    g43 = lines["grok-4.3"]
    assert g43.split()[1:4] == ["1000000", "image,text", "1.25"]
    assert "0.20" in g43
    assert "(reasoning)" in g43
    assert "(+31 more)" in g43
    tier = table.splitlines()[table.splitlines().index(g43) + 1]
    assert "from 200000 prompt tokens, every token: in 2.50, cached 0.40, out 5.00" in tier
    assert lines["grok-4.7"].split()[1] == "500000"


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
        "price_cached_in": None,
        "tiers": [],
        "reasoning": False,
        "window_inferred": False,
    }
    g43 = rows["grok-4.3"]
    assert (g43["context_window"], g43["price_cached_in"], g43["reasoning"]) == (1_000_000, 0.2, True)
    assert g43["tiers"] == [
        {
            "min_prompt_tokens": 200_000,
            "price_text_in": 2.5,
            "price_completion": 5.0,
            "price_cached_in": 0.4,
            "price_image_in": None,
        }
    ]
    assert "grok-4" in g43["aliases"]


# -- models --refresh (against the local stand-in) ---------------------------------------------------

KEY = "xai-cli-test-key-0123456789"


def served_model(model_id: str, **over: Any) -> dict[str, Any]:
    """A ``LanguageModel`` entry as ``GET /v1/language-models`` lists it."""
    entry: dict[str, Any] = {
        "id": model_id,
        "fingerprint": "fp_1",
        "created": 1764633600,
        "object": "model",
        "owned_by": "xai",
        "version": "1.0",
        "input_modalities": ["text", "image"],
        "output_modalities": ["text"],
        "prompt_text_token_price": 12500,  # $1.25 per 1M
        "cached_prompt_text_token_price": 2000,  # $0.20 per 1M
        "prompt_image_token_price": 12500,
        "completion_text_token_price": 25000,  # $2.50 per 1M
        "search_price": 0,
        "aliases": [],
    }
    entry.update(over)
    return entry


SERVED = [
    served_model("grok-4.3", prompt_text_token_price=10000, aliases=["grok-4.3-latest"]),
    served_model("grok-4.3-mini", cached_prompt_text_token_price=750, aliases=["grok-mini"]),  # not built in
]


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CONVKIT_CACHE_DIR", str(folder))
    monkeypatch.setenv("XAI_API_KEY", KEY)
    return folder


def later_process(code: str, cache: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVKIT_", "XAI_"))}
    env["CONVKIT_CACHE_DIR"] = str(cache)
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "convkit", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, env=env)


def test_models_refresh_keeps_the_list_for_later_processes(cache_dir: Path) -> None:
    with XAIStandIn(api_key=KEY, language_models=SERVED) as xai:
        base_url = xai.base_url
        code, text = run("models", "--refresh", "--base-url", base_url)
        assert [r.endpoint for r in xai.requests] == ["language-models"]
        assert xai.errors == []
    assert code == 0
    assert f"updated by the refreshed list from {base_url}" in text
    assert "(2 models, kept in" in text
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("grok")}
    assert "(window guessed)" in lines["grok-4.3-mini"]
    assert lines["grok-4.3-mini"].split()[1] == "~1000000"  # grok-4.3's family window
    assert lines["grok-4.3-mini"].split()[3:7] == ["1.25", "0.075", "1.25", "2.50"]  # in, cached, image, out
    assert lines["grok-4.3"].split()[3] == "1.00"  # the server's price
    # the file: the body, when and where from; never the key
    path = cache_dir / "models.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["body"] == {"models": SERVED}
    assert record["base_url"] == base_url
    assert record["format"] == 1
    assert KEY not in path.read_text(encoding="utf-8")
    assert KEY not in text
    assert [p.name for p in cache_dir.iterdir()] == ["models.json"]  # no temporary file left
    # a later process uses it on its first registry use
    proc = later_process(
        "import convkit\n"
        "m = convkit.get_model('GROK-MINI')\n"
        "print(m.name, m.context_window, m.price_text_in, m.window_inferred)\n"
        "g = convkit.get_model('grok-4.3')\n"
        "print(g.price_text_in, g.tiers[0].price_text_in)\n",
        cache_dir,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["grok-4.3-mini 1000000 1.25 True", "1.0 2.5"]
    listing = later_process("", cache_dir, "models")
    assert listing.returncode == 0, listing.stderr
    assert f"updated by the refreshed list from {base_url}" in listing.stdout
    assert "grok-4.3-mini" in listing.stdout


def test_a_corrupt_cache_is_ignored_with_a_warning(cache_dir: Path) -> None:
    cache_dir.mkdir()
    (cache_dir / "models.json").write_text('{"format": 1, "body": {"models": [', encoding="utf-8")
    proc = later_process("", cache_dir, "models")
    assert proc.returncode == 0, proc.stderr
    assert "is not valid JSON; using the built-in table" in proc.stderr
    assert "no refreshed list in use" in proc.stdout
    assert "grok-4.3" in proc.stdout


def test_models_refresh_needs_a_key(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("XAI_API_KEY")
    code, text = run("models", "--refresh", "--base-url", "http://127.0.0.1:9")
    assert code == 2
    assert text == ""
    err = capsys.readouterr().err
    assert "convkit models --refresh needs an xAI API key in the XAI_API_KEY environment variable" in err
    assert not cache_dir.exists()


def test_models_refresh_refused_keeps_nothing(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = [*SERVED, served_model("grok-other", aliases=["grok-mini"])]  # one alias for two models
    with XAIStandIn(api_key=KEY, language_models=bad) as xai:
        code, _ = run("models", "--refresh", "--base-url", xai.base_url)
    assert code == 2
    assert "gives alias 'grok-mini' to 'grok-4.3-mini' and 'grok-other'" in capsys.readouterr().err
    assert not (cache_dir / "models.json").exists()


def test_models_refresh_with_a_wrong_key(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XAI_API_KEY", "xai-wrong-key-9876543210")
    with XAIStandIn(api_key=KEY, language_models=SERVED) as xai:
        code, _ = run("models", "--refresh", "--base-url", xai.base_url, "--json")
    assert code == 2
    err = capsys.readouterr().err
    assert "XAI_API_KEY" in err
    assert "xai-wrong-key-9876543210" not in err
    assert not (cache_dir / "models.json").exists()


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
    # one row per kept message, one for the run of dropped ones; numbered by file line
    rows = {
        line.split()[0]: line.split()
        for line in text.splitlines()
        if line.split() and re.fullmatch(r"\d+(-\d+)?", line.split()[0])
    }
    assert list(rows) == ["1", "2-5", "6"]
    assert "kept" in rows["1"]
    assert "dropped" in rows["2-5"]
    assert "pinned" in rows["6"]  # line 6 is pinned
    assert re.search(r"2 kept \(1 pinned\), 4 dropped", text), text
    assert "budget" in text
    assert "estimated cost $" in text


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
    assert "pass a smaller --reserve (now 8190)" in err  # advice in flags
    assert "--model (or --context-window)" in err


def test_fit_unknown_model(conversation_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run("fit", str(conversation_file), "--model", "grok-9", "--json")
    assert code == 2
    assert json.loads(text)["error"] == "unknown_model"
    err = capsys.readouterr().err
    assert "unknown model 'grok-9'" in err
    assert "grok-2-1212" in err
    assert "--context-window N" in err  # says how to go on, in flags
    assert "register_model" not in err


def test_fit_a_model_convkit_does_not_know(conversation_file: Path) -> None:
    code, text = run(
        "fit",
        str(conversation_file),
        "--model",
        "grok-9",
        "--context-window",
        "300",
        "--reserve",
        "0",
        "--price-in",
        "2",
        "--price-out",
        "8",
        "--json",
    )
    assert code == 0
    report = json.loads(text)
    spec = ModelSpec("grok-9", 300, price_text_in=2.0, price_completion=8.0)
    expected = fit(CONVERSATION, model=spec, counter=EstimateCounter(), reserve=0)
    assert (report["model"], report["context_window"], report["budget"]) == ("grok-9", 300, 300)
    assert report["kept"] == expected.kept
    assert report["dropped"] == expected.dropped != []
    assert report["cost_estimate_usd"] == pytest.approx(expected.prompt_tokens * 2.0 / 1e6)
    assert "grok-9" not in convkit_models.default_registry  # nothing was registered


def test_fit_context_window_overrides_a_known_model(conversation_file: Path) -> None:
    code, text = run(
        "fit",
        str(conversation_file),
        "--model",
        "grok-2",
        "--context-window",
        "300",
        "--reserve",
        "0",
        "--json",
    )
    assert code == 0
    report = json.loads(text)
    assert (report["model"], report["context_window"]) == ("grok-2-1212", 300)
    assert report["dropped"] != []
    assert convkit_models.get_model("grok-2").context_window == 131072


@pytest.mark.parametrize(
    ("flags", "pattern"),
    [
        (["--context-window", "0"], "argument --context-window: must be positive, got 0"),
        (["--context-window", "lots"], "argument --context-window: expected a whole number of tokens"),
        (["--price-in", "-1"], "argument --price-in: must be a finite price of 0 or more"),
        (["--price-out", "nan"], "argument --price-out: must be a finite price of 0 or more"),
    ],
)
def test_fit_model_flags_are_checked(
    conversation_file: Path, flags: list[str], pattern: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["fit", str(conversation_file), "--model", "grok-9", *flags])
    assert info.value.code == 2
    assert pattern in capsys.readouterr().err


def test_fit_vision_flag(tmp_path: Path) -> None:
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
    code, _ = run("fit", str(path), "--model", "grok-9", "--context-window", "4000")
    assert code == 2  # a model named on the command line takes text only unless --vision says otherwise
    code, text = run("fit", str(path), "--model", "grok-9", "--context-window", "4000", "--vision", "--json")
    assert code == 0
    assert json.loads(text)["kept"] == [0]


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
    assert "--images drop" in capsys.readouterr().err
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
