"""The main job: ``convkit demo`` stores a conversation in SQLite and prints its windows."""

from __future__ import annotations

import io
from pathlib import Path

from convkit import EstimateCounter, Store, fit
from convkit._cli import main
from convkit._demo import demo_conversation, run_demo
from convkit.store import _migrate as migrate


def test_demo_stores_the_conversation_and_prints_both_windows(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    out = io.StringIO()
    cid = run_demo(str(db), out)
    text = out.getvalue()
    assert str(db) in text
    for model in ("grok-2-vision-1212", "grok-2-1212"):
        assert f"== {model}" in text
    assert " kept " in text
    assert "dropped" in text
    with Store(f"sqlite:///{db}") as store:
        stored = store.messages(cid)
        assert stored == demo_conversation()
        assert any(m.tool_calls for m in stored)
        assert any(m.images for m in stored)
        window = store.window(cid, model="grok-2-vision-1212", reserve=1024)
        assert window == fit(stored, model="grok-2-vision-1212", counter=EstimateCounter(), reserve=1024)
        assert 0 < len(window.messages) < len(stored)


def test_demo_from_the_command_line_upgrades_its_own_older_database(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    url = f"sqlite:///{db}"
    migrate.upgrade(url, "0002_calibration")  # as an earlier convkit left it
    out = io.StringIO()
    assert main(["demo", "--db", str(db)], stdout=out) == 0
    assert "grok-2-1212" in out.getvalue()
    assert migrate.current_revision(url) == migrate.head_revision()


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
