"""`geoslide map` as a user runs it on a cluster: real `dask scheduler` and `dask worker` processes.

The test process makes no Dask client of its own (a default client would hide a CLI that relies on
one); each map runs as the installed command in its own process, like the Helm chart's map Job.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

QUERY = json.dumps({"collections": ["demo-quake-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}})
DASK = Path(sys.executable).with_name("dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"no scheduler on port {port} after {timeout} s")


def _wait_for_workers(address: str, n: int, timeout: float = 90.0) -> None:
    """Ask the scheduler from a separate process, so that this process never holds a client."""
    code = ("import sys; from distributed import Client; "
            f"c = Client({address!r}, timeout=30, set_as_default=False); c.wait_for_workers({n}, timeout={timeout}); "
            "c.close()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=timeout + 30)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """`dask scheduler` and `dask worker` (2 processes, 1 thread each) on loopback, as the Helm chart starts them."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask")
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], stdout=(logs / "s.log").open("w"),
                              stderr=subprocess.STDOUT, env=env)]
    try:
        _wait_for_port(port, procs[0])
        procs.append(subprocess.Popen([str(DASK), "worker", address, "--nworkers", "2", "--nthreads", "1",
                                       "--memory-limit", "0", "--local-directory", str(logs)],
                                      stdout=(logs / "w.log").open("w"), stderr=subprocess.STDOUT, env=env,
                                      cwd=logs))
        _wait_for_workers(address, 2)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


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
