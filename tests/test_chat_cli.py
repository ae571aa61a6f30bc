"""``convkit chat`` as a user runs it: a subprocess talking to the local xAI stand-in.

``python -m convkit chat --model grok-2 --db <tmp> --base-url <stand-in>`` is
fed lines on its standard input (a pipe, and once a pseudo-terminal from the
stdlib ``pty`` module, where it shows its ``you>`` prompt); the tests check
the transcript (the streamed reply, the tokens and cost line), the
conversation stored in the SQLite file, that the API key shows up nowhere
(output, database), that every request body validates against the official
``ChatRequest`` schema, and that without ``XAI_API_KEY`` it exits 2 saying
so. ``--stand-in`` (the built-in stand-in, started by the command itself)
runs with no key, with the ``testing`` extra's imports blocked and every
socket but the loopback refused. A piped run with failed turns exits 1; Ctrl-C
exits 130 without a traceback. Bad flags (``--help`` and the checks made
before the database is opened) run in-process through ``convkit._cli.main``
and must leave the ``--db`` file as it was (or absent). Output is read as it
arrives with ``select`` and a deadline; no sleeps.
"""

from __future__ import annotations

import io
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from convkit import EstimateCounter, Message, Store
from convkit.testing import Fault, Reply, XAIStandIn

from . import _xai_support as xs

REPO_ROOT = Path(__file__).resolve().parents[1]
KEY = xs.new_key()
TIMEOUT = 60.0
STANDIN_COUNTER = EstimateCounter(4.0, margin=0.0)
TOKENS_LINE = re.compile(r"^\[(\d+) prompt \+ (\d+) completion tokens, \$(\d+\.\d{6})\]$", re.M)
HEADER = re.compile(r"^convkit chat: grok-2-1212, conversation ([0-9a-f]{32}) in (.+)$", re.M)

pytestmark = pytest.mark.standin(api_key=KEY)  # the xai fixture (conftest.py)


def _env(key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XAI_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    if key is not None:
        env["XAI_API_KEY"] = key
    return env


def _args(db: Path, xai: XAIStandIn | None, *extra: str) -> list[str]:
    base = ["--base-url", xai.base_url] if xai is not None else []
    return [sys.executable, "-m", "convkit", "chat", "--model", "grok-2", "--db", str(db), *base, *extra]


def run_chat(
    db: Path, xai: XAIStandIn | None, lines: list[str], *extra: str, key: str | None = KEY
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _args(db, xai, *extra),
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        env=_env(key),
        cwd=db.parent,
        timeout=TIMEOUT,
        check=False,
    )


def stored(db: Path, conversation_id: str) -> tuple[list[Message], Any]:
    with Store(f"sqlite:///{db}") as store:
        return store.messages(conversation_id), store.usage(conversation_id)


def turn_cost(prompt: int, completion: int) -> str:
    return f"${(prompt * 2.0 + completion * 10.0) / 1e6:.6f}"


def test_chat_over_stdin(xai: XAIStandIn, tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    xai.queue(Reply(text="Hi! I am Grok, streamed word by word."))
    proc = run_chat(db, xai, ["hello grok", "", "/usage", "what did I say?", "/quit", "never sent"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout
    header = HEADER.search(out)
    assert header is not None, out
    conversation_id = header.group(1)
    assert header.group(2) == str(db)
    assert "you> " not in out  # not a terminal: no prompt

    # the transcript: each reply after "grok> ", then its tokens and cost
    assert "grok> Hi! I am Grok, streamed word by word.\n" in out
    assert "grok> You said: what did I say?\n" in out
    first_prompt = STANDIN_COUNTER.count_messages([Message.user("hello grok")], model="grok-2")
    tokens = [tuple(int(g) for g in m.groups()[:2]) for m in TOKENS_LINE.finditer(out)]
    assert len(tokens) == 2
    assert tokens[0][0] == first_prompt
    costs = [m.group(3) for m in TOKENS_LINE.finditer(out)]
    assert [f"${c}" for c in costs] == [turn_cost(*t) for t in tokens]
    assert (
        f"[1 turns: {tokens[0][0]} prompt + {tokens[0][1]} completion tokens, {turn_cost(*tokens[0])}]" in out
    )
    assert "never sent" not in out

    # streamed: the requests asked for a stream, and the second carried the whole conversation
    bodies = xai.chat_requests
    assert len(bodies) == 2
    assert all(b["stream"] is True for b in bodies)
    assert [m["role"] for m in bodies[1]["messages"]] == ["user", "assistant", "user"]

    messages, usage = stored(db, conversation_id)
    assert messages == [
        Message.user("hello grok"),
        Message.assistant("Hi! I am Grok, streamed word by word."),
        Message.user("what did I say?"),
        Message.assistant("You said: what did I say?"),
    ]
    assert usage.turns == 2
    assert (usage.prompt_tokens, usage.completion_tokens) == tuple(map(sum, zip(*tokens, strict=True)))
    assert KEY not in out
    assert KEY not in xs.dump_database(f"sqlite:///{db}")


def test_chat_continues_a_conversation_and_keeps_a_failed_message_once(
    xai: XAIStandIn, tmp_path: Path
) -> None:
    db = tmp_path / "chat.db"
    first = run_chat(db, xai, ["remember the number 42"])
    assert first.returncode == 0, first.stderr
    header = HEADER.search(first.stdout)
    assert header is not None
    conversation_id = header.group(1)

    xai.queue(Fault.wrong_key())
    again = run_chat(db, xai, ["what number?", "what number?"], "--conversation", conversation_id)
    assert again.returncode == 1, again.stderr  # piped input and a failed turn
    assert again.stderr.startswith("convkit: error: 1 of 2 turns failed ")
    assert f"conversation {conversation_id}" in again.stdout
    assert "[error: xAI answered 400: Incorrect API key provided" in again.stdout
    assert "your message is kept, send it again to retry]" in again.stdout
    assert "grok> You said: what number?" in again.stdout
    assert KEY not in again.stdout + again.stderr
    assert [m["content"] for m in xai.chat_requests[-1]["messages"]] == [
        "remember the number 42",
        "You said: remember the number 42",
        "what number?",
    ]
    messages, usage = stored(db, conversation_id)
    assert [m.text for m in messages] == [
        "remember the number 42",
        "You said: remember the number 42",
        "what number?",
        "You said: what number?",
    ]
    assert usage.turns == 2


def test_chat_unknown_conversation_exits_2(xai: XAIStandIn, tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    proc = run_chat(db, xai, ["hi"], "--conversation", "nope")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"convkit: error: no conversation 'nope': {db} does not exist yet;")
    assert xai.requests == []
    assert not db.exists()


@pytest.mark.parametrize("key", [None, "   "])
def test_chat_without_a_key_exits_2_with_a_clear_message(tmp_path: Path, key: str | None) -> None:
    db = tmp_path / "chat.db"
    proc = run_chat(db, None, ["hello"], key=key)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip() == (
        "convkit: error: no API key. Set XAI_API_KEY (create a key at https://console.x.ai) and run "
        "again, or try `convkit chat --stand-in` to chat offline with convkit's built-in stand-in "
        "(it echoes)."
    )
    assert not db.exists(), "nothing is created without a key"


# -- through a pseudo-terminal -------------------------------------------------------------------------------


@contextmanager
def sigint_not_ignored() -> Iterator[None]:
    """Start children that take Ctrl-C (SIGINT) as Python's KeyboardInterrupt.

    A child inherits an ignored SIGINT (pytest run as a background job of a shell without job
    control) and Python then leaves Ctrl-C ignored; a handled signal is reset to its default by exec.
    """
    inherited = signal.getsignal(signal.SIGINT)
    if inherited == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if inherited == signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


class Terminal:
    """A child process on a pseudo-terminal: type lines, read what it shows (CR LF -> LF)."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        import pty

        self.master, slave = pty.openpty()
        try:
            with sigint_not_ignored():
                self.proc = subprocess.Popen(
                    args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True
                )
        finally:
            os.close(slave)
        self.seen = ""

    def read_until(self, text: str) -> str:
        """Read until ``text`` has appeared after what was already consumed; returns everything read."""
        deadline = time.monotonic() + TIMEOUT
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {text!r}; the terminal shows:\n{self.seen}")
            ready, _, _ = select.select([self.master], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"the terminal closed before {text!r}; it shows:\n{self.seen}")
            self.seen += chunk.decode("utf-8", "replace").replace("\r\n", "\n")
        return self.seen

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self) -> int:
        """Read to the end (EIO) and wait for the exit code."""
        while True:
            ready, _, _ = select.select([self.master], [], [], TIMEOUT)
            if not ready:
                self.proc.kill()
                raise AssertionError(f"the chat did not exit; the terminal shows:\n{self.seen}")
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk.decode("utf-8", "replace").replace("\r\n", "\n")
        os.close(self.master)
        return self.proc.wait(TIMEOUT)


@pytest.mark.skipif(sys.platform == "win32", reason="pty needs a POSIX system")
def test_chat_through_a_pseudo_terminal(xai: XAIStandIn, tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    xai.queue(Reply(text="Streaming to your terminal."))
    term = Terminal(_args(db, xai), _env(KEY), tmp_path)
    try:
        term.read_until("you> ")
        term.type("hello from a tty\r")  # Enter sends CR; the terminal turns it into a newline
        term.read_until("completion tokens, $")
        term.read_until("you> hello from a tty\n")  # the echo
        shown = term.read_until("]\nyou> ")
        term.type("/usage\n")
        shown = term.read_until("1 turns:")
        term.read_until("]\nyou> ")
        term.type("\x04")  # Ctrl-D on an empty line: end of input
        code = term.finish()
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.wait()
    shown = term.seen
    assert code == 0, shown
    assert "grok> Streaming to your terminal.\n[" in shown
    m = TOKENS_LINE.search(shown)
    assert m is not None
    assert int(m.group(1)) == STANDIN_COUNTER.count_messages(
        [Message.user("hello from a tty")], model="grok-2"
    )
    assert shown.endswith("you> \n"), shown[-80:]  # Ctrl-D ends the prompt's line
    assert KEY not in shown
    header = HEADER.search(shown)
    assert header is not None
    messages, usage = stored(db, header.group(1))
    assert messages == [Message.user("hello from a tty"), Message.assistant("Streaming to your terminal.")]
    assert usage.turns == 1
    assert KEY not in xs.dump_database(f"sqlite:///{db}")


@pytest.mark.skipif(sys.platform == "win32", reason="pty needs a POSIX system")
def test_ctrl_c_while_waiting_leaves_quietly(xai: XAIStandIn, tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    release = threading.Event()
    xai.queue(Fault.slow(release))
    term = Terminal(_args(db, xai), _env(KEY), tmp_path)
    try:
        term.read_until("you> ")
        term.type("a slow question\n")
        term.read_until("grok> ")
        assert xai.wait_for_requests(1, TIMEOUT)  # the message is stored and the request is held
        # Ctrl-C: the terminal sends SIGINT to its foreground process (this pty is not the child's
        # controlling terminal, so send the signal as the terminal would)
        term.proc.send_signal(signal.SIGINT)
        code = term.finish()
    finally:
        release.set()
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.wait()
    assert code == 130, term.seen
    assert "Traceback" not in term.seen
    header = HEADER.search(term.seen)
    assert header is not None
    messages, usage = stored(db, header.group(1))
    assert messages == [Message.user("a slow question")]  # kept for a retry; no partial reply
    assert usage.turns == 0


@pytest.mark.skipif(sys.platform == "win32", reason="pty needs a POSIX system")
def test_a_failed_turn_at_a_terminal_still_exits_0(xai: XAIStandIn, tmp_path: Path) -> None:
    xai.queue(Fault.wrong_key())
    term = Terminal(_args(tmp_path / "chat.db", xai), _env(KEY), tmp_path)
    try:
        term.read_until("you> ")
        term.type("hello\n")
        term.read_until("send it again to retry]\nyou> ")
        term.type("\x04")
        code = term.finish()
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.wait()
    assert code == 0, term.seen
    assert "turns failed" not in term.seen


# -- piped runs with failed turns ----------------------------------------------------------------------------


def test_failed_turns_of_a_piped_run_exit_1_saying_how_many(xai: XAIStandIn, tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    xai.queue(Fault.wrong_key(), Reply(text="This one is fine."), Fault.plain_422())
    proc = run_chat(db, xai, ["one", "two", "three", "/usage"])
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("convkit: error: 2 of 3 turns failed (")
    assert proc.stderr.count("\n") == 1
    assert proc.stdout.count("\n[error: ") == 2
    assert "grok> This one is fine.\n" in proc.stdout
    assert "[1 turns: " in proc.stdout
    assert len(xai.chat_requests) == 3


# -- offline: --stand-in -------------------------------------------------------------------------------------

#: ``python -c OFFLINE chat ...`` runs convkit's CLI as ``python -m convkit`` does, with the ``testing``
#: extra (and pytest) unimportable, as after ``pip install convkit`` alone, and every connection or name
#: lookup off the loopback refused.
OFFLINE = """
import ipaddress, runpy, socket, sys

sys.modules.update(dict.fromkeys(("hypothesis", "jsonschema", "pytest"), None))
_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo

def _loopback(host):
    host = host.decode() if isinstance(host, bytes) else host
    return host in ("localhost", None) or ipaddress.ip_address(host).is_loopback

def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        raise OSError(f"no network in this test: connect({address!r})")
    return _connect(self, address)

def getaddrinfo(host, *args, **kwargs):
    try:
        ok = _loopback(host)
    except ValueError:
        ok = False
    if not ok:
        raise OSError(f"no network in this test: getaddrinfo({host!r})")
    return _getaddrinfo(host, *args, **kwargs)

socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo
runpy.run_module("convkit", run_name="__main__", alter_sys=True)
"""
#: a proxy from the environment is never used to reach the stand-in (nothing listens on port 9)
DEAD_PROXY = "http://127.0.0.1:9"


def _offline(db: Path, *extra: str) -> tuple[list[str], dict[str, str]]:
    env = _env(None)  # no XAI_API_KEY
    env.update(HTTP_PROXY=DEAD_PROXY, HTTPS_PROXY=DEAD_PROXY, ALL_PROXY=DEAD_PROXY, NO_PROXY="")
    return [sys.executable, "-c", OFFLINE, "chat", "--stand-in", "--db", str(db), *extra], env


def test_stand_in_answers_a_piped_message_with_no_network_and_no_key(tmp_path: Path) -> None:
    db = tmp_path / "offline.db"
    args, env = _offline(db)
    proc = subprocess.run(
        args,
        input="hello offline\n/usage\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout
    header = HEADER.search(out)
    assert header is not None, out
    assert header.group(2) == str(db)
    banner = out.splitlines()[1]
    assert "stand-in" in banner
    assert "echoes" in banner
    assert str(db) in banner
    assert "grok> You said: hello offline\n" in out
    assert TOKENS_LINE.search(out) is not None
    assert "[1 turns: " in out
    messages, usage = stored(db, header.group(1))
    assert messages == [Message.user("hello offline"), Message.assistant("You said: hello offline")]
    assert usage.turns == 1


def _read_until(fd: int, text: str) -> str:
    """Read the pipe ``fd`` as output arrives until ``text`` has appeared; returns what was read."""
    seen = ""
    deadline = time.monotonic() + TIMEOUT
    while text not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {text!r}; read so far:\n{seen}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"the output closed before {text!r}; read so far:\n{seen}")
            seen += chunk.decode("utf-8", "replace")
    return seen


@pytest.mark.skipif(sys.platform == "win32", reason="select on pipes needs a POSIX system")
def test_ctrl_c_while_waiting_for_piped_input_exits_130_quietly(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    args, env = _offline(db)
    with sigint_not_ignored():
        proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path
        )
    try:
        assert proc.stdout is not None
        # the banner's last line is written just before it reads its input: it is waiting now
        shown = _read_until(proc.stdout.fileno(), "/quit to leave.\n")
        proc.send_signal(signal.SIGINT)
        rest, err_bytes = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = err_bytes.decode()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip() == ""
    header = HEADER.search(shown + rest.decode())
    assert header is not None
    messages, usage = stored(db, header.group(1))
    assert messages == []
    assert usage.turns == 0


# -- help and flags checked before anything is written -------------------------------------------------------


def cli(
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    key: str | None = KEY,
) -> tuple[int, str, str]:
    """``convkit chat ARGV`` in this process, with ``hello`` piped in: (exit code, stdout, stderr)."""
    from convkit._cli import main

    if key is None:
        monkeypatch.delenv("XAI_API_KEY", raising=False)
    else:
        monkeypatch.setenv("XAI_API_KEY", key)
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n"))
    try:
        code = main(["chat", *argv])
    except SystemExit as exc:  # argparse: --help, or a flag its type refused
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_names_the_key_where_to_get_one_and_the_stand_in(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(["--help"], monkeypatch, capsys)
    assert code == 0, err
    text = " ".join(out.split())  # as wrapped for any terminal width
    assert "XAI_API_KEY" in text
    assert "https://console.x.ai" in text
    assert "--stand-in" in text
    assert "offline" in text
    assert "130 Ctrl-C" in text


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: its bytes and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


BAD_FLAGS: dict[str, tuple[list[str], str | None, str]] = {
    # id: (flags, XAI_API_KEY, the start of the error; {tmp} is the test's folder)
    "unknown-model": (
        ["--model", "grok-nope"],
        KEY,
        "convkit: error: unknown model 'grok-nope' (known models: ",
    ),
    "no-key": (
        [],
        None,
        "convkit: error: no API key. Set XAI_API_KEY (create a key at https://console.x.ai)",
    ),
    "blank-key": ([], "  ", "convkit: error: no API key. "),
    "missing-tokenizer": (
        ["--tokenizer", "{tmp}/missing.json"],
        KEY,
        "convkit: error: --tokenizer {tmp}/missing.json: no such file; ",
    ),
    "not-a-tokenizer": (
        ["--tokenizer", "{tmp}/notes.txt"],
        KEY,
        "convkit: error: --tokenizer {tmp}/notes.txt: not a tokenizer.json HuggingFace tokenizers can load (",
    ),
    "no-such-conversation": (
        ["--conversation", "nope"],
        KEY,
        "convkit: error: no conversation 'nope': {tmp}/chat.db does not exist yet; leave out --conversation",
    ),
    "reserve-over-the-window": (
        ["--reserve", "131072"],
        KEY,
        "convkit: error: --reserve 131072 is not smaller than grok-2-1212's context window of 131072 "
        "tokens, so no room is left for the prompt; pass a smaller --reserve",
    ),
    "bad-base-url": (
        ["--base-url", "api.x.ai/v1"],
        KEY,
        "convkit chat: error: argument --base-url: expected an http(s) URL such as https://api.x.ai/v1",
    ),
    "stand-in-and-base-url": (
        ["--stand-in", "--base-url", "http://127.0.0.1:9/v1"],
        None,
        "convkit chat: error: argument --base-url: not allowed with argument --stand-in",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FLAGS))
def test_a_bad_flag_exits_2_and_creates_no_database(
    case: str,
    xai: XAIStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags, key, expected = BAD_FLAGS[case]
    (tmp_path / "notes.txt").write_text("not a tokenizer\n")
    db = tmp_path / "chat.db"
    before = snapshot(tmp_path)
    argv = ["--db", str(db), *(f.format(tmp=tmp_path) for f in flags)]
    if "--base-url" not in flags:
        argv += ["--base-url", xai.base_url]
    code, out, err = cli(argv, monkeypatch, capsys, key=key)
    assert code == 2
    assert out == ""
    last = err.splitlines()[-1]  # argparse prints its usage first
    assert last.startswith(expected.format(tmp=tmp_path)), err
    assert "Traceback" not in err
    assert not db.exists()
    assert snapshot(tmp_path) == before
    assert xai.requests == []


def _convkit_db(path: Path) -> str:
    with Store(f"sqlite:///{path}") as store:
        return store.create_conversation(title="kept").id


def _other_sqlite(path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.commit()
    conn.close()


BAD_DATABASES: dict[str, tuple[str, list[str], str]] = {
    # id: (the --db under {tmp}, flags, the error after "convkit: error: "; {db} is the --db's full path)
    "missing-folder": (
        "no-such-folder/chat.db",
        [],
        "--db {db}: the folder {tmp}/no-such-folder does not exist; create it first, or pass --db a file "
        "in an existing folder",
    ),
    "a-folder": ("a-folder", [], "--db {db} is a directory; pass the path of an SQLite file"),
    "not-sqlite": (
        "notes.txt",
        [],
        "--db {db} is not an SQLite database; pass --db a new file name or a convkit database",
    ),
    "another-apps-sqlite": (
        "other.db",
        [],
        "--db {db} is another application's SQLite database (tables notes); convkit adds its tables only "
        "to a new file or a convkit database: pass --db another file",
    ),
    "an-empty-file-and-a-conversation": (
        "empty.db",
        ["--conversation", "nope"],
        "no conversation 'nope' in {db}: it holds no convkit conversations; ",
    ),
    "a-convkit-database-without-that-conversation": (
        "convkit.db",
        ["--conversation", "nope"],
        "no conversation 'nope' in {db}; leave out --conversation to start a new one",
    ),
}


@pytest.mark.parametrize("case", list(BAD_DATABASES))
def test_a_bad_database_exits_2_naming_its_path_and_changes_nothing(
    case: str,
    xai: XAIStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name, flags, expected = BAD_DATABASES[case]
    db = tmp_path / name
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "notes.txt").write_text("my notes, not a database\n")
    (tmp_path / "empty.db").write_bytes(b"")
    _other_sqlite(tmp_path / "other.db")
    _convkit_db(tmp_path / "convkit.db")
    before = snapshot(tmp_path)
    code, out, err = cli(["--db", str(db), "--base-url", xai.base_url, *flags], monkeypatch, capsys)
    assert code == 2
    assert out == ""
    assert err.startswith("convkit: error: " + expected.format(db=db, tmp=tmp_path)), err
    assert err.count("\n") == 1
    assert "Error:" not in err  # no driver's exception
    assert " object at 0x" not in err  # no repr
    assert snapshot(tmp_path) == before
    assert xai.requests == []
