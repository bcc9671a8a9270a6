"""Every command and Python snippet in the README runs as written, in order, like a new user would.

The fenced ``bash``, ``sh`` and ``python`` blocks of README.md and helm/README.md are run in a fresh
working folder that holds what a clone holds (``catalogs/``, ``pipelines/``, ``helm/``, ``benchmarks/``)
and the installed ``.venv``. The two fresh-machine commands (install, run the tests) are what ``.ci/run`` executes
itself; a block preceded by ``<!-- readme-test: skip REASON -->`` is not run here, and the reason
must name where it is run instead. Blocks of one file share the folder, so a later block sees what
an earlier one wrote, exactly as for a reader going down the page.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from usertiles import write_georef, write_plain

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
FENCE = re.compile(r"(?:^[ ]*<!-- readme-test: (?P<directive>[^>]*?) -->\n)?"
                   r"^(?P<indent>[ ]*)```(?P<lang>bash|sh|python)\n(?P<code>.*?)^(?P=indent)```", re.S | re.M)
LINKED = ("catalogs", "pipelines", "helm", "benchmarks")


@dataclass(frozen=True)
class Block:
    """One fenced block of a Markdown file."""

    source: str
    line: int
    lang: str
    code: str
    skip: str | None

    def __str__(self) -> str:
        return f"{self.source}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The ``bash``, ``sh`` and ``python`` blocks of a Markdown file, in order."""
    text = path.read_text()
    found = []
    for m in FENCE.finditer(text):
        directive = (m.group("directive") or "").strip()
        skip = directive.removeprefix("skip").strip() if directive.startswith("skip") else None
        if directive and skip is None:
            raise AssertionError(f"{path}: unknown readme-test directive {directive!r}")
        code = textwrap.dedent(m.group("code"))
        line = text.count("\n", 0, m.start("code")) + 1
        found.append(Block(str(path.relative_to(ROOT)), line, m.group("lang"), code, skip))
    return found


def _workdir(tmp: Path) -> Path:
    for name in LINKED:
        (tmp / name).symlink_to(ROOT / name, target_is_directory=True)
    (tmp / ".venv").symlink_to(VENV, target_is_directory=True)
    write_georef(tmp / "my-tiles")  # the user's tiles of "Bring your own data"
    write_plain(tmp / "other-tiles")
    return tmp


def _run(block: Block, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if block.lang in ("bash", "sh"):
        cmd = ["bash", "-euo", "pipefail", "-c", block.code]
    else:
        cmd = [str(cwd / ".venv" / "bin" / "python"), "-c", block.code]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_the_readme_has_the_two_fresh_machine_commands():
    readme = blocks(ROOT / "README.md")
    codes = [b.code.strip() for b in readme]
    assert 'python3 -m venv .venv && .venv/bin/pip install -e ".[test]"' in codes
    assert ".venv/bin/python -m pytest" in codes
    assert any(c.startswith(".venv/bin/geoslide map ") for c in codes)


def test_skipped_blocks_say_where_they_run():
    for path in (ROOT / "README.md", ROOT / "helm" / "README.md"):
        for block in blocks(path):
            if block.skip is not None:
                assert len(block.skip) > 10, f"{block}: a skipped block must say why and where it runs"


@pytest.mark.heavy
@pytest.mark.timeout(1800)  # the whole README, every block in turn: a few minutes on 2 quiet cores
@pytest.mark.parametrize("name", ["README.md", "helm/README.md"])
def test_every_block_runs_as_written(name, tmp_path):
    cwd = _workdir(tmp_path)
    ran = 0
    for block in blocks(ROOT / name):
        if block.skip is not None:
            continue
        done = _run(block, cwd)
        assert done.returncode == 0, f"{block} failed ({done.returncode}):\n{block.code}\n{done.stderr[-3000:]}"
        ran += 1
    assert ran > 0 or name != "README.md"
