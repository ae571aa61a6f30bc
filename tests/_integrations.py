"""Helpers for the integration tests (LangChain, Agents SDK, testing kit).

* :func:`database_url` -- an empty database for a backend: a new SQLite file
  under ``tmp_path``, or the run's PostgreSQL database emptied
  (``_store_support.pg_run_database``; skipped, or failed under ``CI=true``,
  as :mod:`tests._pg` decides). ``flavour="async"`` gives the async driver's
  URL (aiosqlite, asyncpg).
* :func:`readme_block` -- the code block of README.md that follows the
  marker ``<!-- test: NAME -->``, so the tests run the README's examples.
* :func:`png` -- the bytes of a tiny real PNG.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from sqlalchemy.engine import make_url

from . import _store_support

README = Path(__file__).resolve().parents[1] / "README.md"


@contextmanager
def database_url(backend: str, tmp_path: Path, flavour: str = "sync") -> Iterator[str]:
    """A URL of an empty database of ``backend`` for the ``flavour`` of store."""
    if backend == "sqlite":
        driver = "sqlite+aiosqlite" if flavour == "async" else "sqlite"
        yield f"{driver}:///{tmp_path / 'convkit.db'}"
        return
    url = _store_support.pg_run_database()
    if flavour == "async":
        yield make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    else:
        yield url


def readme_block(name: str) -> str:
    """The fenced code block right after ``<!-- test: name -->`` in README.md."""
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- test: {re.escape(name)} -->\s*\n```[a-z]*\n(.*?)\n```", text, flags=re.DOTALL)
    assert found is not None, f"README.md has no code block marked <!-- test: {name} -->"
    return found.group(1)


@cache
def png(width: int = 4, height: int = 3) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()
