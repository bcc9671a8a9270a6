"""`geoslide map` as a user runs it on a cluster: real `dask scheduler` and `dask worker` processes.

The test process makes no Dask client of its own (a default client would hide a CLI that relies on
one); each map runs as the installed command in its own process, like the Helm chart's map Job.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from servers import running_dask

QUERY = json.dumps({"collections": ["demo-quake-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}})


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """`dask scheduler` and `dask worker` (2 processes, 1 thread each) on loopback, as the Helm chart starts them."""
    with running_dask(tmp_path_factory.mktemp("dask"), workers=2) as address:
        yield address


def _map(out: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).with_name("geoslide")), "map", "--stac-query", QUERY, "--out", str(out),
           "--chunk", "256", "--no-quicklook", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})},
                          cwd=out.parent)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "map.zarr"
    done = _map(out)
    assert done.returncode == 0, done.stderr
    return out


def _assert_same_map(out: Path, reference: Path) -> None:
    got, want = xr.open_zarr(out, decode_coords="all"), xr.open_zarr(reference, decode_coords="all")
    for name in ("probability", "mask"):
        np.testing.assert_array_equal(got[name].values, want[name].values)
    assert got.rio.crs == want.rio.crs


@pytest.mark.heavy
@pytest.mark.parametrize("how", ["--scheduler", "DASK_SCHEDULER_ADDRESS"])
def test_map_on_scheduler_and_worker_processes_equals_the_single_process_map(scheduler, single, tmp_path, how):
    out = tmp_path / "map.zarr"
    done = _map(out, "--scheduler", scheduler) if how == "--scheduler" else _map(
        out, env={"DASK_SCHEDULER_ADDRESS": scheduler})
    assert done.returncode == 0, done.stderr
    _assert_same_map(out, single)


def test_map_with_local_worker_processes_equals_the_single_process_map(single, tmp_path):
    out = tmp_path / "map.zarr"
    done = _map(out, "--workers", "2")
    assert done.returncode == 0, done.stderr
    _assert_same_map(out, single)


def test_the_cli_is_installed_beside_the_interpreter():
    assert shutil.which("geoslide", path=str(Path(sys.executable).parent)) is not None


def _worker_processes(address: str) -> list:
    """The worker processes that `dask worker ADDRESS --nworkers 2` spawned (children of its nannies)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "multiprocessing" in cmd and "spawn" in cmd and any(
                "worker" in " ".join(p.cmdline()) and address in " ".join(p.cmdline())
                for p in proc.parents()):
            found.append(proc)
    return found


def test_a_worker_killed_mid_map_still_gives_the_identical_map(scheduler, single, tmp_path):
    out = tmp_path / "map.zarr"
    cmd = [str(Path(sys.executable).with_name("geoslide")), "map", "--stac-query", QUERY, "--out", str(out),
           "--chunk", "256", "--no-quicklook", "--scheduler", scheduler]
    mapping = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    chunks = out / "probability" / "c"
    deadline = time.monotonic() + 300
    while mapping.poll() is None and time.monotonic() < deadline:
        if chunks.is_dir() and sum(1 for p in chunks.rglob("*") if p.is_file()) >= 2:
            break
        time.sleep(0.05)
    workers = _worker_processes(scheduler)
    assert mapping.poll() is None, "the map ended before a worker could be killed"
    assert len(workers) == 2
    workers[0].kill()
    _, stderr = mapping.communicate(timeout=600)
    assert mapping.returncode == 0, stderr
    _assert_same_map(out, single)
