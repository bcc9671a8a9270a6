"""Options that make no sense are refused in one line (exit 2) before anything is written.

Each case ran to exit 0 (or a 60 s wait and a traceback) before: a zero resolution or a negative
minimum mapping unit mapped anyway, a negative patience or zero workers trained anyway, and a
scheduler address without a port waited for a timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

GEOSLIDE = Path(sys.executable).with_name("geoslide")
QUERY = json.dumps({"collections": ["demo-quake-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}})


@pytest.mark.parametrize("extra, says", [
    (["--resolution", "0"], "resolution must be positive"),
    (["--resolution", "-3"], "resolution must be positive"),
    (["--resolution", "1e-9"], "times finer than the items' 3 m pixels"),  # a traceback after minutes before
    (["--resolution", "1e9"], "coarser than the items' whole extent"),  # wrote a one-pixel map, then a traceback
    (["--epsg", "0"], "epsg must be a positive EPSG code"),
    (["--min-area", "-5"], "min-area must be >= 0"),
    (["--workers", "0"], "n_workers must be at least 1"),
    (["--scheduler", "not-an-address"], "is not a Dask scheduler address"),
])
def test_bad_map_options_are_one_line_errors_and_write_nothing(tmp_path, extra, says):
    done = subprocess.run([str(GEOSLIDE), "map", "--stac-query", QUERY, "--out", "m.zarr", *extra], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra, says", [
    (["--patience", "-1"], "patience must be at least 1"),
    (["--paste", "1.5"], "paste must be a share of patches between 0 (off) and 1"),
    (["--workers", "0"], "n_workers must be at least 1"),
    (["--scheduler", "tcp://127.0.0.1"], "is not a Dask scheduler address"),
])
def test_bad_train_options_are_one_line_errors_and_write_nothing(tmp_path, extra, says):
    done = subprocess.run([str(GEOSLIDE), "train", "--patches", "missing.zarr", "--model", "unet", "--out", "m",
                           *extra], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [
    ["map", "--stac-query", QUERY, "--out", "m.zarr", "--epsg", "0"],
    ["map", "--stac-query", QUERY, "--out", "m.zarr", "--workers", "0"],
    ["map", "--tiles", "tiles", "--out", "masks", "--pixel-size", "-0.5"],
    ["--version"],
    ["map", "--help"],
])
def test_options_are_checked_before_torch_xarray_and_rasterio_are_imported(tmp_path, argv):
    """A slip in an option is told at once: the CLI imports the heavy libraries only once it can run.

    They took 5-6 s to import here, before a one-line refusal of ``--epsg 0``.
    """
    probe = ("import sys\nfrom geoslide.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('torch', 'xarray', 'rasterio', 'dask.array') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe, *argv], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []
