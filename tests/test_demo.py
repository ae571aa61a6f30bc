"""The main job: ``convkit demo`` stores a conversation in SQLite and draws its windows, and
``convkit show`` draws a stored conversation's window again.

The pictures are read back row by row (plain text: the output is not a terminal) and compared
with the windows the store returns: what is kept, dropped and summarized, by seq.
"""

from __future__ import annotations

import io
import os
import re
import sqlite3
from pathlib import Path

import pytest

from convkit import EstimateCounter, ExtractiveSummarizer, HFTokenCounter, Store, fit
from convkit._cli import main
from convkit._demo import demo_conversation, run_demo
from convkit.store import _migrate as migrate

from .conftest import GROK_TOKENIZER

VISION = "grok-2-vision-1212"
_ROW = re.compile(
    r"^ *(?P<first>\d+)(?:-(?P<last>\d+))? +(?:(?P<count>\d+) msgs|(?P<role>[a-z]+)) +"
    r"(?P<tokens>[\d,?]+) +(?P<state>kept|pinned|dropped|summarized|summary)\b"
)


def pictures(text: str) -> dict[str, list[dict[str, str]]]:
    """Each picture's rows, by the first word of its title."""
    out: dict[str, list[dict[str, str]]] = {}
    for part in text.split("\n== ")[1:]:
        title = part.split("\n", 1)[0]
        rows = [m.groupdict() for line in part.splitlines() if (m := _ROW.match(line))]
        out[title] = rows
    return out


def seqs(rows: list[dict[str, str]], *states: str) -> list[int]:
    """The seqs the rows in ``states`` stand for."""
    found: list[int] = []
    for r in rows:
        if r["state"] in states:
            first = int(r["first"])
            found.extend(range(first, int(r["last"] or first) + 1))
    return found


def check_demo_output(text: str, db: Path, cid: str, tokenizer: str | None = None) -> None:
    """The demo's three pictures match the store's windows, and it trims and summarizes."""
    counter = HFTokenCounter.from_file(tokenizer) if tokenizer else EstimateCounter()
    drawn = pictures(text)
    titles = list(drawn)
    assert [t.split()[0] for t in titles] == [VISION, "grok-2-1212", f"{VISION},"]
    vision, textonly, summarized = (drawn[t] for t in titles)
    with Store(f"sqlite:///{db}") as store:
        stored = store.messages(cid)
        assert stored == demo_conversation()
        trim = store.window(cid, model=VISION, counter=counter)
        assert trim == fit(stored, model=VISION, counter=counter)
        assert trim.dropped, "the vision window must trim"
        assert seqs(vision, "kept", "pinned") == [i + 1 for i in trim.kept]
        assert seqs(vision, "dropped") == [i + 1 for i in trim.dropped]
        assert [r["state"] for r in vision[:3]] == ["kept", "pinned", "dropped"]
        assert f"{len(trim.kept)} kept (1 pinned), {len(trim.dropped)} dropped" in text

        text_window = store.window(cid, model="grok-2-1212", counter=counter, images="drop")
        assert seqs(textonly, "kept", "pinned") == [i + 1 for i in text_window.kept] == list(range(1, 126))

        (saved,) = store.summaries(cid)  # the demo stores the summary it made
        assert seqs(summarized, "summarized") == list(range(saved.first_seq, saved.last_seq + 1))
        summary_rows = [r for r in summarized if r["state"] == "summary"]
        assert [(int(r["first"]), int(r["last"])) for r in summary_rows] == [
            (saved.first_seq, saved.last_seq)
        ]
        assert f"seqs {saved.first_seq}-{saved.last_seq}" in text
    prose = " ".join(text.split())
    assert "Each run of `convkit demo` adds a new conversation" in prose
    assert f"convkit show --db {db} --conversation {cid} --model {VISION}" in prose
    for part in text.split("\n== ")[1:]:  # each picture fits 80 columns
        picture = part.split("\ncounter ")[0]
        assert all(len(line) <= 80 for line in picture.splitlines())


def test_demo_stores_the_conversation_and_draws_trimmed_and_summarized_windows(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    out = io.StringIO()
    cid = run_demo(str(db), out)
    text = out.getvalue()
    assert text.startswith("Stored 125 messages")
    assert f"in the SQLite database {db}\n" in text
    assert "this database now holds 1." in text
    check_demo_output(text, db, cid)

    again = io.StringIO()  # a second run adds a second conversation
    cid2 = run_demo(str(db), again)
    assert cid2 != cid
    assert "this database now holds 2." in again.getvalue()
    with Store(f"sqlite:///{db}") as store:
        assert [c.id for c in store.list_conversations()] == [cid, cid2]


def test_demo_with_the_grok_tokenizer_also_trims_and_summarizes(
    tmp_path: Path, grok_counter: HFTokenCounter
) -> None:
    db = tmp_path / "grok.db"
    out = io.StringIO()
    assert main(["demo", "--db", str(db), "--tokenizer", str(GROK_TOKENIZER)], stdout=out) == 0
    text = out.getvalue()
    (cid,) = re.findall(r"as conversation (\w+)", text)
    assert "Counting with HFTokenCounter(name='grok-1.tokenizer.json'" in text
    check_demo_output(text, db, cid, tokenizer=str(GROK_TOKENIZER))
    assert f"--tokenizer {GROK_TOKENIZER}" in text  # the show command counts as the demo did


def test_demo_from_the_command_line_upgrades_its_own_older_database(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    url = f"sqlite:///{db}"
    migrate.upgrade(url, "0002_calibration")  # as an earlier convkit left it
    out = io.StringIO()
    assert main(["demo", "--db", str(db)], stdout=out) == 0
    assert "grok-2-1212" in out.getvalue()
    assert migrate.current_revision(url) == migrate.head_revision()


def _other_app_db(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (body TEXT)")
    db.commit()
    db.close()
    return path


@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("missing-folder/demo.db", "the folder {folder} does not exist"),
        ("a-folder", "{path} is a directory"),
        ("notes.txt", "{path} is not an SQLite database"),
        ("other.db", "{path} is another application's SQLite database (tables notes)"),
    ],
)
def test_demo_refuses_a_db_it_cannot_own_naming_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, said: str
) -> None:
    path = tmp_path / where
    if where == "a-folder":
        path.mkdir()
    elif where == "notes.txt":
        path.write_text("not a database\n")
    elif where == "other.db":
        _other_app_db(path)
    before = sorted(os.listdir(tmp_path))
    content = path.read_bytes() if path.is_file() else None
    out = io.StringIO()
    assert main(["demo", "--db", str(path)], stdout=out) == 2
    err = capsys.readouterr().err
    assert said.format(path=path, folder=path.parent) in err
    assert err.startswith("convkit: error: --db ")
    assert "Traceback" not in err
    assert out.getvalue() == ""
    assert sorted(os.listdir(tmp_path)) == before  # nothing created
    if content is not None:
        assert path.read_bytes() == content  # nothing written


@pytest.mark.parametrize(
    ("flags", "code", "said"),
    [
        (["--tokenizer", "{tmp}/no-such-tokenizer.json"], 2, "no-such-tokenizer.json: no such file"),
        (["--reserve", "9000"], 2, "--reserve 9000 is not smaller than grok-2-vision-1212's context window"),
        (["--reserve", "8150"], 1, "the messages that must be kept need"),  # the must-keep part cannot fit
    ],
)
def test_bad_flags_are_refused_before_the_database_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], code: int, said: str
) -> None:
    db = tmp_path / "demo.db"
    argv = ["demo", "--db", str(db), *(f.format(tmp=tmp_path) for f in flags)]
    assert main(argv, stdout=io.StringIO()) == code
    assert said in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_a_negative_reserve_is_refused_by_the_parser_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--db", str(tmp_path / "demo.db"), "--reserve", "-5"])
    assert exc.value.code == 2
    assert "argument --reserve: must be 0 or more, got -5" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_demo_piped_into_a_reader_that_stops_early_ends_quietly(tmp_path: Path) -> None:
    """`convkit demo | head -3`: no traceback when the pipe closes."""
    import subprocess
    import sys

    proc = subprocess.run(
        f"{sys.executable} -m convkit demo --db {tmp_path / 'piped.db'} | head -3",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stdout.startswith("Stored ")
    assert len(proc.stdout.splitlines()) == 3
    assert "Traceback" not in proc.stderr
    assert "BrokenPipeError" not in proc.stderr


# -- convkit show ------------------------------------------------------------------------------


@pytest.fixture
def two_conversations(tmp_path: Path) -> tuple[Path, str, str]:
    """An SQLite file with the demo conversation (older) and a short one (newer)."""
    db = tmp_path / "show.db"
    with Store(f"sqlite:///{db}") as store:
        old = store.create_conversation(title="long")
        store.extend(old.id, demo_conversation())
        new = store.create_conversation(title="short")
        store.extend(new.id, [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"}])
    return db, old.id, new.id


def show(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(["show", *argv], stdout=out), out.getvalue()


def test_show_picks_the_newest_conversation_and_says_which(two_conversations: tuple[Path, str, str]) -> None:
    db, _, new = two_conversations
    code, text = show("--db", str(db), "--model", "grok-2")
    assert code == 0
    assert text.startswith(f"Conversation {new} ('short', 2 messages, created ")
    assert f"the newest of 2 in namespace 'default' of {db}" in text
    (rows,) = pictures(text).values()
    assert [(r["first"], r["role"], r["state"]) for r in rows] == [
        ("1", "user", "kept"),
        ("2", "assistant", "kept"),
    ]


def test_show_an_explicit_conversation_numbers_rows_by_seq(two_conversations: tuple[Path, str, str]) -> None:
    db, old, _ = two_conversations
    code, text = show("--db", str(db), "--conversation", old, "--model", VISION)
    assert code == 0
    assert text.startswith(f"Conversation {old} ('long', 125 messages")
    with Store(f"sqlite:///{db}") as store:
        window = store.window(old, model=VISION)
    (rows,) = pictures(text).values()
    assert seqs(rows, "kept", "pinned") == [i + 1 for i in window.kept]
    assert seqs(rows, "dropped") == [i + 1 for i in window.dropped]
    (run,) = [r for r in rows if r["state"] == "dropped"]  # one row for the run
    assert int(run["count"]) == len(window.dropped)
    assert f"prompt {window.prompt_tokens:,} of {window.budget:,} budget tokens" in text
    assert f"estimated cost ${window.estimate_cost(window.reserve):.5f}" in text


def test_show_a_text_only_model_with_images_dropped_and_no_reserve(
    two_conversations: tuple[Path, str, str],
) -> None:
    db, old, _ = two_conversations
    code, text = show(
        "--db", str(db), "--conversation", old, "--model", "grok-2", "--images", "drop", "--reserve", "0"
    )
    assert code == 0
    assert "window 131,072 less reserve 0, margin 0: budget 131,072" in text
    (rows,) = pictures(text).values()
    assert seqs(rows, "kept", "pinned") == list(range(1, 126))


def test_show_says_where_an_image_is_in_flags(
    two_conversations: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, old, _ = two_conversations
    code, _ = show("--db", str(db), "--conversation", old, "--model", "grok-2")
    assert code == 2
    seq = next(i + 1 for i, m in enumerate(demo_conversation()) if m.images)
    err = capsys.readouterr().err
    assert f"the message at seq {seq} has an image" in err
    assert "pass --images drop" in err


def test_show_an_unknown_id_lists_the_newest(
    two_conversations: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, old, new = two_conversations
    code, text = show("--db", str(db), "--conversation", "nope", "--model", "grok-2")
    assert code == 2
    assert text == ""
    err = capsys.readouterr().err
    assert f"no conversation 'nope' in namespace 'default' of {db}; the newest of its 2:" in err
    assert err.index(new) < err.index(old)  # newest first
    assert "`convkit show` without --conversation shows the newest" in err


def test_show_never_creates_a_missing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing.db"
    code, _ = show("--db", str(missing), "--model", "grok-2")
    assert code == 2
    assert f"--db {missing}: no such file; `convkit show` never creates" in capsys.readouterr().err
    monkeypatch.setenv("CONVKIT_DATABASE_URL", f"sqlite:///{missing}")  # the default URL too
    code, _ = show("--model", "grok-2")
    assert code == 2
    assert f"$CONVKIT_DATABASE_URL {missing}: no such file" in capsys.readouterr().err
    code, _ = show("--url", f"sqlite:///{missing}", "--model", "grok-2")
    assert code == 2
    assert f"--url {missing}: no such file" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_show_an_empty_database_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "empty.db"
    Store(f"sqlite:///{db}").close()  # created at head, holding no conversation
    code, _ = show("--url", f"sqlite:///{db}", "--model", "grok-2")
    assert code == 2
    assert f"no conversations in namespace 'default' of {db}" in capsys.readouterr().err


def test_show_summarize_does_not_store_the_summary_unless_asked(
    two_conversations: tuple[Path, str, str],
) -> None:
    db, old, _ = two_conversations
    url = f"sqlite:///{db}"
    code, text = show("--db", str(db), "--conversation", old, "--model", VISION, "--strategy", "summarize")
    assert code == 0
    with Store(url) as store:
        assert store.summaries(old) == []  # only read
        messages = store.messages(old)
    expected = fit(messages, model=VISION, strategy="summarize", summarizer=ExtractiveSummarizer())
    s = expected.summary
    assert s is not None
    said = " ".join(text.split())  # the title wraps at 80 columns
    assert f"new summary of seqs {s.first + 1}-{s.last + 1}, not saved (--save-summary stores it)" in said
    (rows,) = pictures(text).values()
    assert seqs(rows, "kept", "pinned") == [i + 1 for i in expected.kept]
    assert seqs(rows, "summarized") == list(range(s.first + 1, s.last + 2))

    code, text = show(
        "--db", str(db), "--conversation", old, "--model", VISION, "--strategy", "summarize", "--save-summary"
    )
    assert code == 0
    assert "saved in the database" in " ".join(text.split())
    with Store(url) as store:
        (saved,) = store.summaries(old)
    assert (saved.first_seq, saved.last_seq, saved.text) == (s.first + 1, s.last + 1, s.text)
    code, text = show("--db", str(db), "--conversation", old, "--model", VISION, "--strategy", "summarize")
    assert code == 0
    assert f"reuses the stored summary of seqs {s.first + 1}-{s.last + 1}" in " ".join(text.split())


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--model", "grok-9"], "unknown model 'grok-9' (known models: "),
        (["--model", "grok-2", "--reserve", "131072"], "--reserve 131072 is not smaller than grok-2-1212's"),
        (
            ["--model", "grok-2", "--tokenizer", "/no/such/tokenizer.json"],
            "--tokenizer /no/such/tokenizer.json: no such",
        ),
    ],
)
def test_show_checks_its_flags_before_opening_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], said: str
) -> None:
    missing = tmp_path / "missing.db"  # the flags are refused first, so the missing file is not named
    code, _ = show("--db", str(missing), *flags)
    assert code == 2
    err = capsys.readouterr().err
    assert said in err
    assert str(missing) not in err


def test_save_summary_needs_the_summarize_strategy(
    two_conversations: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _, _ = two_conversations
    code, _ = show("--db", str(db), "--model", "grok-2", "--save-summary")
    assert code == 2
    assert "--save-summary stores the summary of --strategy summarize" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["another-apps-database", "empty-file"])
def test_show_leaves_a_file_without_convkit_tables_as_it_was(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Opening an SQLite file writes its journal mode into it: ``show`` refuses first, so another
    application's database (or an empty file) stays byte for byte as it was."""
    path = tmp_path / "other.db"
    if kind == "empty-file":
        path.write_bytes(b"")
    else:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE notes (body TEXT)")
    before = path.read_bytes()
    code, _ = show("--db", str(path), "--model", "grok-2")
    assert code == 2
    assert f"--db {path} holds no convkit conversations" in capsys.readouterr().err
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_demo_checks_the_summary_window_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reserve that leaves room for both trimmed windows but not for the summarized one fails
    before the database is created (it used to store the conversation and draw two windows first)."""
    db = tmp_path / "demo.db"
    counter = EstimateCounter()
    messages = demo_conversation()
    reserve = next(
        r
        for r in range(8000, 8192)
        if _fits(messages, "grok-2-vision-1212", r, counter) and not _fits_summarized(messages, r, counter)
    )
    code, text = main_with(["demo", "--db", str(db), "--reserve", str(reserve)])
    assert (code, text) == (1, "")
    assert "summary" in capsys.readouterr().err
    assert not db.exists()


def _fits(messages: list, model: str, reserve: int, counter: EstimateCounter) -> bool:  # type: ignore[type-arg]
    from convkit import ContextWindowError

    try:
        fit(messages, model=model, reserve=reserve, counter=counter)
    except ContextWindowError:
        return False
    return True


def _fits_summarized(messages: list, reserve: int, counter: EstimateCounter) -> bool:  # type: ignore[type-arg]
    from convkit import ContextWindowError

    try:
        fit(
            messages,
            model="grok-2-vision-1212",
            reserve=reserve,
            counter=counter,
            strategy="summarize",
            summarizer=ExtractiveSummarizer(),
        )
    except ContextWindowError:
        return False
    return True


def main_with(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    return main(argv, stdout=out), out.getvalue()
