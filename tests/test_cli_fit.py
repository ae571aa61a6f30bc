"""``convkit fit`` over files: newest-first counting equals ``fit``, line numbers, stdin, Ctrl-C.

The file window (:mod:`convkit._file_window`) reads a JSONL file once and
counts only the newest messages down to the cut; its result must equal
:func:`convkit.fit` over every message of the file, whatever the chunk size.
Every CLI message names the file's line, never a list index or a Python repr.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convkit
from convkit import Message, fit
from convkit._cli import main
from convkit._engine.settings import WindowSettings
from convkit.testing.strategies import conversations

from .conftest import GROK_TOKENIZER


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), stdout=out)
    return code, out.getvalue()


def jsonl(messages: list[Message], *, blank_every: int = 0, bom: bool = False) -> bytes:
    lines: list[str] = []
    for i, m in enumerate(messages):
        if blank_every and i % blank_every == 0:
            lines.append("   ")
        lines.append(json.dumps(m.to_dict(), ensure_ascii=False))
    text = "\n".join(lines) + "\n"
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


def fit_of_file(path: Path, spec: WindowSettings) -> Any:
    from convkit._file_window import fit_file

    return fit_file(str(path), spec)


@pytest.mark.parametrize("chunk", [1, 3, 64])
@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    conv=conversations(min_size=1, max_size=40),
    model=st.sampled_from(["grok-2-vision-1212", "grok-2-1212"]),
    images=st.sampled_from(["drop", "error"]),
    budget_share=st.integers(1, 100),
    blank_every=st.integers(0, 4),
    bom=st.booleans(),
)
def test_the_file_window_equals_fit(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chunk: int,
    conv: list[Message],
    model: str,
    images: str,
    budget_share: int,
    blank_every: int,
    bom: bool,
) -> None:
    from convkit import _file_window

    monkeypatch.setattr(_file_window, "FIRST_CHUNK", chunk)
    counter = convkit.EstimateCounter()
    spec = convkit.get_model(model)
    total = counter.count_messages(conv, model=spec) if spec.supports_images else 0
    if not spec.supports_images:
        total = counter.count_messages(fit(conv, model=spec, images="drop", reserve=0).messages, model=spec)
    # a reserve that puts the budget anywhere from far too small to the whole conversation
    reserve = max(0, spec.context_window - max(1, total * budget_share // 100))
    path = tmp_path / "c.jsonl"
    path.write_bytes(jsonl(conv, blank_every=blank_every, bom=bom))
    settings_ = WindowSettings.of(spec, counter=counter, reserve=reserve, images=images)  # type: ignore[arg-type]
    try:
        want = fit(conv, settings=settings_)
    except convkit.UnsupportedInputError:  # an image for a text-only model: refused, naming a line
        with pytest.raises(convkit.UnsupportedInputError, match=r"c\.jsonl:\d+: .*--images drop"):
            fit_of_file(path, settings_)
        return
    except convkit.ContextWindowError as exc:
        expected = (exc.required, exc.available)
        with pytest.raises(convkit.ContextWindowError) as got:
            fit_of_file(path, settings_)
        assert (got.value.required, got.value.available) == expected
        return
    window = fit_of_file(path, settings_)
    result = window.part.result
    assert result.kept == want.kept
    assert result.prompt_tokens == want.prompt_tokens
    assert list(result.messages) == list(want.messages)
    # line numbers: message i is on the line that holds it
    lines = path.read_bytes().decode("utf-8-sig").split("\n")
    for i, line_no in enumerate(window.lines):
        assert Message.from_openai(json.loads(lines[line_no - 1])) == conv[i]


def big_conversation(n: int) -> list[Message]:
    out = [
        Message.system("You are terse."),
        Message.user("remember: the fiscal year starts in April", pinned=True),
    ]
    for i in range(n - 3):
        out.append((Message.user if i % 2 else Message.assistant)(f"message {i}: " + "tides and moons " * 8))
    out.append(Message.user("and now?"))
    return out


def test_a_long_file_is_counted_newest_first_and_drawn_in_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """5,000 messages into a small window: only the newest part is counted, and the table has one
    row per kept message plus one per run of dropped ones (not 5,000 rows)."""
    from convkit import _counting

    counted: list[int] = []
    real = _counting.EstimateCounter.content_tokens

    def spy(self: Any, messages: Any) -> Any:
        messages = list(messages)
        counted.append(len(messages))
        return real(self, messages)

    conv = big_conversation(5000)
    want = fit(conv, model="grok-2-vision-1212", reserve=6000)
    monkeypatch.setattr(_counting.EstimateCounter, "content_tokens", spy)
    path = tmp_path / "long.jsonl"
    path.write_bytes(jsonl(conv))
    code, text = run("fit", str(path), "--model", "grok-2-vision-1212", "--reserve", "6000", "--json")
    assert code == 0
    report = json.loads(text)
    assert report["kept"] == want.kept
    assert report["kept_lines"] == [i + 1 for i in want.kept]  # no blank lines: line = index + 1
    assert report["counted"] < 500
    assert max(counted) < 500  # never the whole file
    code, text = run("fit", str(path), "--model", "grok-2-vision-1212", "--reserve", "6000")
    assert code == 0
    assert len(text.splitlines()) < len(want.kept) + 20
    dropped_run = f"3-{want.kept[2]}"  # lines 3 .. the line before the first kept turn
    assert any(line.split()[0] == dropped_run and "dropped" in line for line in text.splitlines()), text


def test_fit_reads_standard_input(tmp_path: Path) -> None:
    conv = big_conversation(50)
    proc = subprocess.run(
        [sys.executable, "-m", "convkit", "fit", "-", "--model", "grok-2", "--json"],
        input=b"\xef\xbb\xbf" + jsonl(conv),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["kept"] == list(range(50))
    proc = subprocess.run(
        [sys.executable, "-m", "convkit", "fit", "-", "--model", "grok-2"],
        input=b'{"role": "user", "content": "hi"}\n{"role": "user"\n',
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("convkit: error: <stdin>:2: not valid JSON")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'\n\n{"role": "user", "content": "hi"}\n{"role": "usr", "content": "x"}\n', ":4: "),
        (b'{"role": "user", "content": "hi"}\n\n{"role": "user", "content": "caf\xe9"}\n', ":3: not UTF-8"),
        (
            b'{"role": "user", "content": "a"}\n{"role": "tool", "tool_call_id": "zz", "content": "1"}\n',
            ":2: a tool result for call id 'zz'",
        ),
        (b'{"role": "user", "content": "hi"}\n' + b"[" * 100_000 + b"\n", ":2: JSON nested too deeply"),
    ],
)
def test_errors_name_the_file_line(
    tmp_path: Path, content: bytes, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    code, text = run("fit", str(path), "--model", "grok-2")
    err = capsys.readouterr().err
    assert (code, text) == (2, "")
    assert err.startswith(f"convkit: error: {path}{says}"), err
    assert "Traceback" not in err


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(jsonl([Message.user("hi")], bom=True))
    code, text = run("fit", str(path), "--model", "grok-2", "--json")
    assert code == 0
    assert json.loads(text)["kept"] == [0]


def test_an_image_on_a_text_only_model_names_the_line_and_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped example with a text-only model: the advice is a flag, not a Python argument."""
    example = Path(__file__).resolve().parents[1] / "examples" / "support-chat.jsonl"
    code, _ = run("fit", str(example), "--model", "grok-2")
    err = capsys.readouterr().err
    assert code == 2
    image_line = next(i for i, line in enumerate(example.read_text().splitlines(), 1) if "image_url" in line)
    assert f"{example}:{image_line}: " in err
    assert "--images drop" in err
    assert "images='drop'" not in err
    code, _ = run("fit", str(example), "--model", "grok-2", "--images", "drop")
    assert code == 0


def test_a_bad_image_is_reported_without_a_python_repr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    row = {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}}],
    }
    path = tmp_path / "img.jsonl"
    path.write_text(json.dumps(row) + "\n")
    code, _ = run("fit", str(path), "--model", "grok-2-vision-1212")
    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}:1: " in err
    assert " object at 0x" not in err
    assert "not a readable JPEG or PNG" in err


def test_a_reserve_larger_than_the_window_is_said_in_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(jsonl([Message.user("hi")]))
    code, _ = run("fit", str(path), "--model", "grok-2-vision-1212", "--reserve", "9000")
    err = capsys.readouterr().err
    assert code == 2
    assert "--reserve 9000 is not smaller than grok-2-vision-1212's context window of 8192 tokens" in err
    assert "-8" not in err  # no negative "available"
    # the library says it in words too
    with pytest.raises(convkit.ContextWindowError) as info:
        fit([Message.user("hi")], model="grok-2-vision-1212", reserve=9000)
    assert "is not smaller than the context window of 8192 tokens" in str(info.value)
    assert "-808" not in str(info.value)


@pytest.mark.parametrize("argv", [["--reserve", "-5"], ["--reserve", "ten"], ["--margin", "-1"]])
def test_bad_flags(tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(jsonl([Message.user("hi")]))
    try:
        code, _ = run("fit", str(path), "--model", "grok-2", *argv)
    except SystemExit as exc:  # argparse's own usage error
        code = int(str(exc.code))
    err = capsys.readouterr().err
    assert code == 2
    assert argv[0] in err


def test_ctrl_c_ends_quietly_with_130(tmp_path: Path) -> None:
    """SIGINT while ``convkit fit`` waits on its input: exit 130, no traceback. A FIFO is the event:
    opening its write end returns once convkit has opened it for reading."""
    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "convkit", "fit", str(fifo), "--model", "grok-2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with open(fifo, "wb") as writer:  # returns once convkit opened the FIFO
            writer.write(b'{"role": "user", "content": "hi"}\n')
            writer.flush()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    assert b"KeyboardInterrupt" not in err
    assert out == b""


@pytest.mark.shared
def test_the_real_tokenizer_counts_newest_first(tmp_path: Path, grok_counter: Any) -> None:
    """The acceptance run in small: with Grok-1's tokenizer the file window equals ``fit``."""
    conv = big_conversation(3000)
    path = tmp_path / "long.jsonl"
    path.write_bytes(jsonl(conv))
    code, text = run(
        "fit", str(path), "--model", "grok-2-vision-1212", "--tokenizer", str(GROK_TOKENIZER), "--json"
    )
    assert code == 0
    report = json.loads(text)
    want = fit(conv, model="grok-2-vision-1212", counter=grok_counter)
    assert (report["kept"], report["prompt_tokens"]) == (want.kept, want.prompt_tokens)
    assert report["counted"] < 600


def test_fit_reads_a_stream_that_cannot_seek(tmp_path: Path) -> None:
    """``/dev/stdin`` on a pipe and a FIFO are read once, into a file that can seek."""
    conv = big_conversation(40)
    proc = subprocess.run(
        [sys.executable, "-m", "convkit", "fit", "/dev/stdin", "--model", "grok-2", "--json"],
        input=jsonl(conv),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["kept"] == list(range(40))
    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)
    reader = subprocess.Popen(
        [sys.executable, "-m", "convkit", "fit", str(fifo), "--model", "grok-2", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with open(fifo, "wb") as writer:
        writer.write(jsonl(conv))
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert json.loads(out)["kept"] == list(range(40))


def test_a_line_of_any_whitespace_is_blank(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes("\u00a0\u2003\n".encode() + jsonl([Message.user("hi")]) + " \u00a0\n".encode())
    code, text = run("fit", str(path), "--model", "grok-2", "--json")
    assert code == 0
    assert json.loads(text)["kept_lines"] == [2]


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr in a shell does."""

    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_after_the_delay_only(tmp_path: Path) -> None:
    from convkit._file_window import fit_file
    from convkit._progress import progress

    path = tmp_path / "long.jsonl"
    path.write_bytes(jsonl(big_conversation(3000)))
    settings_ = WindowSettings.of("grok-2-vision-1212")

    def shown(stream: io.StringIO, delay: float) -> str:
        fit_file(
            str(path),
            settings_,
            steps=lambda what, total, unit: progress(what, total, unit=unit, stream=stream, delay=delay),
        )
        return stream.getvalue()

    both = shown(_Terminal(), 0.0)  # each pass's bar, one after the other (rich allows one at a time)
    assert "reading " in both
    assert "counting newest first" in both
    assert "messages" in both
    assert shown(_Terminal(), 3600.0) == ""  # a step shorter than the delay shows nothing
    assert shown(io.StringIO(), 0.0) == ""  # not a terminal: nothing, ever


def test_a_model_without_prices_has_no_cost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A made-up model (--context-window) without --price-in/--price-out: the cost is unknown, not $0."""
    path = tmp_path / "c.jsonl"
    path.write_bytes(jsonl([Message.user("hi")]))
    code, text = run("fit", str(path), "--model", "my-model", "--context-window", "9000", "--json")
    assert code == 0
    assert json.loads(text)["cost_estimate_usd"] is None
    code, text = run("fit", str(path), "--model", "my-model", "--context-window", "9000")
    assert "cost unknown (no prices for this model: pass --price-in and --price-out)" in text
    assert "$0.0" not in text
    code, text = run(
        "fit", str(path), "--model", "my-model", "--context-window", "9000", "--price-in", "1", "--json"
    )
    assert json.loads(text)["cost_estimate_usd"] > 0


def test_cannot_fit_is_said_in_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(jsonl([Message.user("tides and moons " * 20)]))
    code, _ = run("fit", str(path), "--model", "made-up", "--context-window", "30", "--reserve", "0")
    err = capsys.readouterr().err
    assert code == 1
    assert "but the budget is 30 (window 30, --reserve 0)" in err
    assert "--reserve (now" not in err  # no advice to lower a reserve of 0
    assert "choose a --model (or --context-window) with a larger window" in err


def test_the_readme_lists_the_json_keys_fit_prints(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Command line") : readme.index("## Models")]
    listed = set(re.findall(r"`([a-z_]+)`", section[section.index("With `--json`") :].split("\n\n")[0]))
    path = tmp_path / "c.jsonl"
    path.write_bytes(jsonl([Message.user("hi")]))
    code, text = run("fit", str(path), "--model", "grok-2", "--json")
    assert code == 0
    assert set(json.loads(text)) <= listed, set(json.loads(text)) - listed
