"""Every fenced code block of README.md runs, or is checked for real; none is skipped silently.

The blocks are walked the way a reader follows the page: in order, in one
temporary working folder (a file one block writes is there for the next),
with this test environment's ``python`` and its ``bin`` folder first on
``PATH`` (so ``convkit`` is the console script under test). Each block is
one test item, ``test_readme_block[line-N-LANG]``, N being the line of its
opening fence. How a block is handled:

* ``python``: written to a script outside the working folder and run with
  this environment's python, in the working folder. Each block is a whole
  program (a reader can copy any one alone): no variables carry over.
* ``python`` after ``<!-- file: NAME -->``: written to NAME in the working
  folder and not run; a later block runs it (the property-testing example is
  a test file that the next block runs with pytest).
* ``sh``: each command (comment lines and blank lines aside, ``\\``
  continuations joined) runs on its own with ``bash -o pipefail -c``, without
  standard input, and must exit 0. Shell variables do not carry over.
* after ``<!-- test: NAME -->`` with NAME in :data:`DELEGATED`: another test
  module runs the block in-process and asserts more about it (its output, the
  rows it stored), so it is not run twice; the item checks that such a test
  exists (a ``test_*`` function there that calls ``readme_block(NAME)``).
  A delegated block must be self-contained.
* after ``<!-- test: NAME -->`` with NAME in :data:`CHECKED_HERE`: the block
  cannot run inside the suite as written (the set-up line builds a new
  virtual environment from the package index, ``bash .ci/run`` and
  ``python -m pytest`` would run this suite inside itself); the tests named
  there check it for real, and the item checks they exist.
* any other block (another language, none) fails, naming its line.

Requirements: a block whose code (comments aside) names ``tokenizer.json``
needs the shared Grok-1 tokenizer, which the walk links into the working
folder as ``tokenizer.json``; without it the block is skipped with
conftest's reason. A block whose code names a PostgreSQL URL runs with the
placeholder ``postgresql+psycopg://user@host/db`` replaced by a fresh
database on the test server, and is skipped (failed under ``CI=true``) as
every PostgreSQL test is when there is none.

The subprocesses get no ``XAI_API_KEY`` (the examples talk to
``convkit.testing.XAIStandIn`` on 127.0.0.1), an empty ``CONVKIT_CACHE_DIR``
(no refreshed model list of the user's), and none of the variables by which
Hypothesis recognises a CI machine, so the property example runs with
Hypothesis' local defaults, the strictest.
"""

from __future__ import annotations

import ast
import io
import os
import re
import shutil
import subprocess
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import _pg
from .conftest import GROK_TOKENIZER, REPO_ROOT

README = REPO_ROOT / "README.md"
PYPROJECT = REPO_ROOT / "pyproject.toml"
CI_RUN = REPO_ROOT / ".ci" / "run"
BIN = Path(sys.executable).parent

#: marker name -> the module whose test runs that block in-process (and asserts more)
DELEGATED = {
    "langchain": "test_langchain.py",
    "agents": "test_agents.py",
    "agents-grok": "test_agents.py",
    "langgraph": "test_langgraph.py",
    "pydantic-ai": "test_pydantic_ai.py",
    "llama-index": "test_llama_index.py",
    "send-to-grok": "test_session.py",
    "prompt-cache": "test_prompt_cache.py",
    "models": "test_models.py",
}
#: marker name -> the tests of this module that check the block for real
CHECKED_HERE = {
    "setup": ("test_setup_line_installs_and_runs_offline", "test_ci_run_is_what_the_readme_says"),
    "ci-test-command": ("test_ci_run_is_what_the_readme_says",),
}
PG_PLACEHOLDER = "postgresql+psycopg://user@host/db"
NO_TOKENIZER = (
    f"shared Grok-1 tokenizer not found at {GROK_TOKENIZER} "
    "(set CONVKIT_SHARED_DIR to the folder holding tokenizers/grok-1.tokenizer.json)"
)
TIMEOUT = 180


# -- reading the page --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    end: int  # 1-based line of the closing fence
    lang: str
    code: str
    markers: dict[str, str] = field(default_factory=dict)  # "test" / "file" -> value

    @property
    def id(self) -> str:
        return f"line-{self.line}-{self.lang or 'nolang'}"


_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<key>test|file):\s*(?P<value>\S+)\s*-->\s*$")


def parse_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, with the markers in the comment lines right above it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if opened is None:
            i += 1
            continue
        fence, info = opened["fence"], opened["info"].strip()
        if fence[0] == "`" and "`" in info:  # an inline code span, not a fence
            i += 1
            continue
        markers: dict[str, str] = {}
        j = i - 1
        while j >= 0 and (m := _MARKER.match(lines[j])):
            markers.setdefault(m["key"], m["value"])
            j -= 1
        end = i + 1
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        if end == len(lines):
            raise AssertionError(f"README.md line {i + 1}: a code fence that is never closed")
        body = "\n".join(ln[len(opened["indent"]) :] for ln in lines[i + 1 : end])
        blocks.append(Block(i + 1, end + 1, info.split()[0] if info else "", body, markers))
        i = end + 1
    return blocks


def classify(block: Block) -> str:
    """How the walk handles a block: delegated, checked-here, file, python or sh; else AssertionError."""
    name = block.markers.get("test")
    if name in DELEGATED:
        return "delegated"
    if name in CHECKED_HERE:
        return "checked-here"
    if block.lang == "python":
        return "file" if "file" in block.markers else "python"
    if block.lang == "sh":
        if "file" in block.markers:
            raise AssertionError(f"README.md line {block.line}: <!-- file: --> is for python blocks")
        return "sh"
    raise AssertionError(
        f"README.md line {block.line}: a {block.lang or 'plain'} code block that the tests cannot run: "
        "make it python or sh, or give it a marker this module knows (DELEGATED, CHECKED_HERE)"
    )


def code_without_comments(block: Block) -> str:
    if block.lang == "python":
        try:
            tokens = tokenize.generate_tokens(io.StringIO(block.code).readline)
            return " ".join(t.string for t in tokens if t.type != tokenize.COMMENT)
        except (tokenize.TokenError, SyntaxError):
            return block.code
    return "\n".join(re.sub(r"(^|\s)#.*$", "", ln) for ln in block.code.splitlines())


def needs(block: Block) -> set[str]:
    code = code_without_comments(block)
    out = set()
    if "tokenizer.json" in code:
        out.add("tokenizer")
    if re.search(r"postgresql(\+\w+)?://", code):
        out.add("postgresql")
    return out


def sh_commands(block: Block) -> list[tuple[int, str]]:
    """(README line, command) for each command of an sh block."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for offset, raw in enumerate(block.code.splitlines(), start=1):
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not pending:
            start = block.line + offset
        pending.append(line)
        if line.endswith("\\"):
            continue
        out.append((start, "\n".join(pending)))  # bash reads backslash-newline as a continuation
        pending = []
    assert not pending, f"README.md line {start}: a command ends in a continuation backslash"
    return out


BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))


# -- walking it --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: str  # "passed", "skipped", "failed", "delegated", "checked-here"
    detail: str = ""


def _environment(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XAI_", "PYTEST_"))}
    try:
        from hypothesis._settings import _CI_VARS  # the variables by which Hypothesis detects CI

        ci_vars = set(_CI_VARS)
    except ImportError:  # pragma: no cover - another Hypothesis
        ci_vars = {"CI", "TF_BUILD", "BUILDKITE", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL"}
    for name in ci_vars | {"HYPOTHESIS_PROFILE", "VIRTUAL_ENV", "PYTHONHOME"}:
        env.pop(name, None)
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["CONVKIT_CACHE_DIR"] = str(cache)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _tail(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


class Walk:
    def __init__(self, root: Path) -> None:
        self.work = root / "work"
        self.scripts = root / "blocks"
        self.work.mkdir()
        self.scripts.mkdir()
        (root / "cache").mkdir()
        self.env = _environment(root / "cache")
        if GROK_TOKENIZER.is_file():
            (self.work / "tokenizer.json").symlink_to(GROK_TOKENIZER)
        self.outcomes: dict[int, Outcome] = {}

    def run(self, blocks: list[Block]) -> dict[int, Outcome]:
        failed: Block | None = None
        for block in blocks:
            if failed is not None and block.markers.get("test") not in {*DELEGATED, *CHECKED_HERE}:
                self.outcomes[block.line] = Outcome(
                    "failed", f"not run: the block at README.md line {failed.line} failed before it"
                )
                continue
            outcome = self.one(block)
            self.outcomes[block.line] = outcome
            if outcome.status == "failed":
                failed = block
        return self.outcomes

    def one(self, block: Block) -> Outcome:
        try:
            kind = classify(block)
        except AssertionError as exc:
            return Outcome("failed", str(exc))
        if kind in ("delegated", "checked-here"):
            return Outcome(kind)
        required = needs(block)
        if "tokenizer" in required and not GROK_TOKENIZER.is_file():
            return Outcome("skipped", NO_TOKENIZER)
        if "postgresql" in required:
            try:
                with _pg.fresh_database() as url:
                    return self.execute(block, kind, url)
            except (pytest.skip.Exception, pytest.fail.Exception) as exc:
                status = "skipped" if isinstance(exc, pytest.skip.Exception) else "failed"
                return Outcome(status, f"README.md line {block.line} needs PostgreSQL: {exc}")
        return self.execute(block, kind, None)

    def execute(self, block: Block, kind: str, pg_url: str | None) -> Outcome:
        code = block.code if pg_url is None else block.code.replace(PG_PLACEHOLDER, pg_url)
        if kind == "file":
            target = self.work / block.markers["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(code + "\n", encoding="utf-8")
            return Outcome("passed", f"written to {block.markers['file']}")
        if kind == "python":
            script = self.scripts / f"README.md-line-{block.line}.py"
            script.write_text(code + "\n", encoding="utf-8")
            return self.process(
                block.line,
                [sys.executable, str(script)],
                f"python block (its line k is README line {block.line}+k)",
            )
        for line, command in sh_commands(block):
            outcome = self.process(line, ["bash", "-o", "pipefail", "-c", command], f"command {command!r}")
            if outcome.status != "passed":
                return outcome
        return Outcome("passed")

    def process(self, line: int, argv: list[str], what: str) -> Outcome:
        try:
            proc = subprocess.run(
                argv,
                cwd=self.work,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Outcome("failed", f"README.md line {line}: {what} did not finish within {TIMEOUT} s")
        if proc.returncode != 0:
            return Outcome(
                "failed",
                f"README.md line {line}: {what} exited {proc.returncode}\n"
                f"--- stdout\n{_tail(proc.stdout)}\n--- stderr\n{_tail(proc.stderr)}",
            )
        return Outcome("passed")


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Outcome]:
    return Walk(tmp_path_factory.mktemp("readme")).run(BLOCKS)


def delegate_of(name: str) -> str | None:
    """``module::test`` of the test in DELEGATED[name]'s module that runs ``readme_block(name)``."""
    module = Path(__file__).parent / DELEGATED[name]
    if not module.is_file():
        return None
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
            continue
        for call in ast.walk(node):
            if (
                isinstance(call, ast.Call)
                and getattr(call.func, "id", getattr(call.func, "attr", None)) == "readme_block"
                and call.args
                and isinstance(call.args[0], ast.Constant)
                and call.args[0].value == name
            ):
                return f"tests/{module.name}::{node.name}"
    return None


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block(block: Block, walk: dict[int, Outcome]) -> None:
    outcome = walk[block.line]
    if outcome.status == "delegated":
        name = block.markers["test"]
        runner = delegate_of(name)
        assert runner is not None, (
            f"README.md line {block.line}: the block marked <!-- test: {name} --> is left to "
            f"tests/{DELEGATED[name]}, but no test there runs readme_block({name!r})"
        )
    elif outcome.status == "checked-here":
        for test in CHECKED_HERE[block.markers["test"]]:
            assert callable(globals().get(test)), f"README.md line {block.line}: no test {test} checks it"
    elif outcome.status == "skipped":
        pytest.skip(outcome.detail)
    elif outcome.status == "failed":
        pytest.fail(outcome.detail, pytrace=False)


# -- the blocks checked here -------------------------------------------------------------------------------


def _marked(name: str) -> Block:
    (block,) = [b for b in BLOCKS if b.markers.get("test") == name]
    return block


def test_every_written_file_is_run_by_a_later_block() -> None:
    """A ``<!-- file: NAME -->`` block only counts as run when a later sh block names NAME."""
    for i, block in enumerate(BLOCKS):
        name = block.markers.get("file")
        if name is None:
            continue
        later = [b for b in BLOCKS[i + 1 :] if classify(b) == "sh" and name in b.code]
        assert later, f"README.md line {block.line}: {name} is written but no later sh block runs it"


def test_ci_run_is_what_the_readme_says() -> None:
    """``bash .ci/run`` (the set-up block's second line) does what the README says it does, and ends
    with exactly the test command of the ``ci-test-command`` block (``python -m pytest``).

    Neither can run inside the suite: ``.ci/run`` deletes and rebuilds ``.ci-venv``, the environment
    these tests run in, and both would run this suite inside itself. So the script is read instead.
    """
    setup = [c for _, c in sh_commands(_marked("setup"))]
    assert setup[1:] == ["bash .ci/run"]
    (test_command,) = [c for _, c in sh_commands(_marked("ci-test-command"))]
    script = [ln.strip() for ln in CI_RUN.read_text(encoding="utf-8").splitlines()]
    commands = [ln for ln in script if ln and not ln.startswith("#")]
    assert commands[-1] == test_command == "python -m pytest"
    assert "VENV=.ci-venv" in commands
    assert 'rm -rf "$VENV"' in commands
    extras = "test,langchain,agents,langgraph,pydantic-ai,llama-index"
    assert f"python -m pip install --quiet -e '.[{extras}]'" in commands
    for step in ("ruff check .", "ruff format --check .", "mypy"):
        assert step in commands, step
    assert any("CONVKIT_TEST_POSTGRES_URL" in c for c in commands)
    # under CI=true an unreachable PostgreSQL stops the run before the tests
    ci_check = "\n".join(script)
    assert 'sys.exit(f"ERROR: CI=true needs PostgreSQL' in ci_check
    text = README.read_text(encoding="utf-8")
    assert "installs convkit with the `test`\nextra and every integration's" in text


def _wheelhouse() -> Path | None:
    configured = os.environ.get("CONVKIT_TEST_WHEELHOUSE")
    for candidate in ([Path(configured)] if configured else []) + [Path("/opt/pypi/files")]:
        if candidate.is_dir() and any(candidate.glob("hatchling-*.whl")):
            return candidate
    return None


@pytest.mark.slow
def test_setup_line_installs_and_runs_offline(tmp_path: Path) -> None:
    """The set-up block's first line, run as written, in a copy of the checkout, without the network.

    What is substituted, and why: the tests may not reach the package index, so pip runs with
    ``PIP_NO_INDEX=1`` and ``PIP_FIND_LINKS`` naming a local folder of wheels
    (``$CONVKIT_TEST_WHEELHOUSE``, else this machine's ``/opt/pypi/files``; the test is skipped when
    neither holds hatchling), and ``PIP_CONFIG_FILE`` set to the null device so the machine's pip
    configuration adds no index. The checkout is a copy of what pip reads from the working tree
    (``pyproject.toml``, ``README.md``, ``convkit/``, ``migrations/``), so nothing is written into
    the repository; ``python3`` is this environment's interpreter. The rest is as written: a new
    virtual environment with its own pip, an editable install that resolves the build backend and
    every dependency, then the installed ``convkit demo``. Afterwards the installed distribution is
    ``convkit-grok`` at convkit's version, and ``import convkit`` reads the copy.
    """
    wheels = _wheelhouse()
    if wheels is None:
        pytest.skip("no local wheelhouse to install from offline: set CONVKIT_TEST_WHEELHOUSE")
    line = sh_commands(_marked("setup"))[0][1]
    assert line == "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/convkit demo"
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, checkout / name)
    for name in ("convkit", "migrations"):
        shutil.copytree(
            REPO_ROOT / name, checkout / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "XAI_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    env.update(
        PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]),
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheels),
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
        CONVKIT_CACHE_DIR=str(tmp_path / "cache"),
    )

    def run(argv: list[str]) -> str:
        proc = subprocess.run(
            argv, cwd=checkout, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    out = run(["bash", "-o", "pipefail", "-c", line])
    assert (checkout / "convkit-demo.db").is_file()
    assert "convkit-demo.db" in out
    python = str(checkout / ".venv" / "bin" / "python")
    found = run(
        [
            python,
            "-c",
            "import importlib.metadata as m, convkit; print(m.version('convkit-grok'), convkit.__file__)",
        ]
    ).split()
    import convkit

    assert found == [convkit.__version__, str(checkout / "convkit" / "__init__.py")]


# -- the page's other promises -----------------------------------------------------------------------------


def _pyproject() -> dict[str, object]:
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    project: dict[str, object] = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    return project


def test_every_install_line_names_this_distribution_and_its_extras() -> None:
    """``pip install`` in the README: from the checkout (``-e .`` or ``-e '.[extras]'``) with extras
    pyproject.toml defines, or by the distribution name pyproject.toml gives, never another one."""
    project = _pyproject()
    name = str(project["name"])
    assert name == "convkit-grok"
    optional = project["optional-dependencies"]
    assert isinstance(optional, dict)
    extras = set(optional)
    installs = re.findall(r"pip install ((?:-[-\w]+ )*)('?)([^\s'`]+)\2", README.read_text(encoding="utf-8"))
    assert len(installs) >= 6
    for _, _, target in installs:
        found = re.fullmatch(r"(?P<what>\.|[A-Za-z0-9_.-]+)(?:\[(?P<extras>[\w,-]+)\])?", target)
        assert found is not None, target
        if found["what"] != ".":
            assert found["what"] == name, f"pip install {target}: the distribution is {name}"
        unknown = set((found["extras"] or "").split(",")) - extras - {""}
        assert not unknown, f"pip install {target}: pyproject.toml has no extra {sorted(unknown)}"


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _prose_lines() -> Iterator[str]:
    code = {n for b in BLOCKS for n in range(b.line, b.end + 1)}
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), start=1):
        if number not in code:
            yield line


def test_contents_lists_every_section() -> None:
    headings = [ln for ln in _prose_lines() if re.match(r"#{2,3} ", ln)]
    toc = re.findall(r"^ *- \[(.+?)\]\(#(.+?)\)$", README.read_text(encoding="utf-8"), flags=re.MULTILINE)
    listed = [(title, anchor) for title, anchor in toc]
    expected = [(h.lstrip("#").strip(), _slug(h.lstrip("#"))) for h in headings if h.strip() != "## Contents"]
    assert listed == expected
    anchors = {a for _, a in expected}
    for target in re.findall(r"\]\(#([^)]+)\)", README.read_text(encoding="utf-8")):
        assert target in anchors, f"a link to #{target}, which no heading has"


def test_named_files_and_names_exist() -> None:
    """Repository paths and ``convkit.`` names the README writes in backticks exist."""
    import importlib

    spans = re.findall(r"`([^`\n]+)`", "\n".join(_prose_lines()))
    paths = {s for s in spans if re.fullmatch(r"(benchmarks|convkit|tests|examples|migrations)/[\w./-]*", s)}
    assert paths
    missing = sorted(p for p in paths if not (REPO_ROOT / p).exists())
    assert not missing, f"README names files that do not exist: {missing}"
    names = {m for s in spans for m in re.findall(r"(?<![\w/.-])convkit(?:\.\w+)+", s)}
    assert names
    for dotted in sorted(names):
        parts = dotted.split(".")
        obj: object = importlib.import_module(parts[0])
        for i, part in enumerate(parts[1:], start=1):
            if hasattr(obj, part):
                obj = getattr(obj, part)
                continue
            try:
                obj = importlib.import_module(".".join(parts[: i + 1]))
            except ModuleNotFoundError as exc:
                if exc.name and not exc.name.startswith("convkit"):
                    break  # an optional dependency this environment lacks
                raise AssertionError(f"README names {dotted}, which does not exist") from None


# -- the harness itself ------------------------------------------------------------------------------------


SAMPLE = """\
# title

<!-- file: t.py -->
<!-- test: kit -->
```python
x = 1
```

```sh
# a comment
echo one   # trailing
echo two \\
  three
```

```js
alert(1)
```

  ```python
  indented = True
  ```

```python
# postgresql+psycopg://user@host/db in a comment, "tokenizer.json" in code
open("tokenizer.json")
```
"""


def test_the_walk_sees_every_block_and_refuses_what_it_cannot_run() -> None:
    blocks = parse_blocks(SAMPLE)
    assert [(b.line, b.lang) for b in blocks] == [
        (5, "python"),
        (9, "sh"),
        (16, "js"),
        (20, "python"),
        (24, "python"),
    ]
    assert blocks[0].markers == {"file": "t.py", "test": "kit"}
    assert classify(blocks[0]) == "file"
    assert sh_commands(blocks[1]) == [(11, "echo one   # trailing"), (12, "echo two \\\n  three")]
    with pytest.raises(AssertionError, match="line 16: a js code block"):
        classify(blocks[2])
    assert blocks[3].code == "indented = True"
    assert needs(blocks[4]) == {"tokenizer"}
    with pytest.raises(AssertionError, match="line 3: a code fence that is never closed"):
        parse_blocks("a\n\n```python\nx = 1\n")
    fences = [
        ln for ln in README.read_text(encoding="utf-8").splitlines() if re.match(r" {0,3}(```|~~~)", ln)
    ]
    assert len(fences) == 2 * len(BLOCKS)
