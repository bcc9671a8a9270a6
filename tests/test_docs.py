"""The API reference builds with pdoc, warnings as errors, and covers every public module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.heavy
def test_api_reference_builds_without_warnings_and_covers_every_public_module(tmp_path):
    done = subprocess.run([sys.executable, "-W", "error", str(ROOT / "docs" / "build.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert Path(done.stdout.strip()) == tmp_path / "index.html"
    sources = [p.relative_to(ROOT).with_suffix("") for p in (ROOT / "geoslide").rglob("*.py")]
    public = [p.parent if p.name == "__init__" else p for p in sources
              if not any(part.startswith("_") for part in (p.parent if p.name == "__init__" else p).parts)]
    missing = [str(p) for p in public if not (tmp_path / p).with_suffix(".html").is_file()]
    assert not missing and len(public) > 80, missing
    job, spec = ((tmp_path / "geoslide" / "mapping" / f"{m}.html").read_text() for m in ("job", "spec"))
    assert 'id="run_map"' in job and 'id="MapSpec"' in spec and "Minimum mapping unit" in spec
    package = (tmp_path / "geoslide" / "mapping.html").read_text()  # names imported on first use are shown
    assert all(f'id="{name}"' in package for name in ("MapSpec", "MapResult", "run_map"))
