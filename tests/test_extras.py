"""A missing framework names the extra to install; a framework that fails otherwise shows its own error.

Each case runs in a fresh interpreter: ``sys.modules[package] = None`` makes the package absent
(``import`` fails and ``importlib.util.find_spec`` finds nothing), exactly as when it is not
installed. A script of the user's named like the framework (``agents.py`` next to the script, a
common name for a first Agents SDK script) shadows it: the error must then be that file's, not
advice to install what is installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ADAPTERS = {
    "langchain": ("langchain_core", "langchain"),
    "agents": ("agents", "agents"),
    "langgraph": ("langgraph", "langgraph"),
    "pydantic_ai": ("pydantic_ai", "pydantic-ai"),
    "llama_index": ("llama_index", "llama-index"),
}


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_a_missing_framework_names_its_extra(adapter: str, tmp_path: Path) -> None:
    package, extra = ADAPTERS[adapter]
    code = f"import sys; sys.modules[{package!r}] = None; import convkit.integrations.{adapter}"
    done = _run(code, tmp_path)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ImportError: convkit.integrations.{adapter} needs "), last
    assert f"{package} is not installed" in last
    assert f"pip install -e '.[{extra}]'" in last


def test_a_shadowing_script_shows_its_own_error(tmp_path: Path) -> None:
    """The user's first Agents script, saved as ``agents.py`` and run as ``python agents.py``."""
    script = tmp_path / "agents.py"
    script.write_text(
        "from convkit.integrations.agents import ConvkitSession\nfrom agents import Agent\n", encoding="utf-8"
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1
    assert "circular import" in done.stderr
    assert "pip install" not in done.stderr
