"""Real `dask scheduler` and `dask worker` processes on loopback, as the Helm chart starts them.

The test process makes no Dask client of its own (a default client would hide a CLI that relies on
one): workers are awaited from a separate process. The workers run in their own working directory,
so a relative path that reaches them unresolved names a file that is not there.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

DASK = Path(sys.executable).with_name("dask")
GEOSLIDE = Path(sys.executable).with_name("geoslide")


def free_port() -> int:
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
    code = ("from distributed import Client; "
            f"c = Client({address!r}, timeout=30, set_as_default=False); c.wait_for_workers({n}, timeout={timeout}); "
            "c.close()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=timeout + 30)


class DaskProcesses(NamedTuple):
    """The scheduler's address and the workers' working directory."""

    address: str
    worker_cwd: Path


@contextmanager
def dask_cluster(folder: Path, n_workers: int = 2) -> Iterator[DaskProcesses]:
    """A scheduler and ``n_workers`` one-thread worker processes (cwd ``folder/worker-cwd``, logs in ``folder``)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    cwd = folder / "worker-cwd"
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], stdout=(folder / "scheduler.log").open("w"),
                              stderr=subprocess.STDOUT, env=env, cwd=folder)]
    try:
        _wait_for_port(port, procs[0])
        procs.append(subprocess.Popen([str(DASK), "worker", address, "--nworkers", str(n_workers), "--nthreads", "1",
                                       "--memory-limit", "0", "--local-directory", str(folder / "scratch")],
                                      stdout=(folder / "worker.log").open("w"), stderr=subprocess.STDOUT, env=env,
                                      cwd=cwd))
        _wait_for_workers(address, n_workers)
        yield DaskProcesses(address, cwd)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def private_mounts_work(folder: Path) -> bool:
    """Whether ``unshare -m`` can mount a private tmpfs here (it needs root or user namespaces)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(in_private_folder(folder, "true"), capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def in_private_folder(folder: Path, script: str) -> list[str]:
    """A command running the shell ``script`` with a private, empty tmpfs on ``folder``.

    No other process (no worker) sees what the script writes there: this is the Helm Job's own
    ``/tmp``, which the workers, in other pods, do not share.
    """
    mount = f'mount -t tmpfs none "{folder}" && {script}'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount]


def transitions(address: str) -> int:
    """The scheduler's count of task transitions so far (grows when work ran on the cluster)."""
    code = ("from distributed import Client; "
            f"c = Client({address!r}, timeout=30, set_as_default=False); "
            "print(c.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)); c.close()")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120)
    return int(done.stdout.split()[-1])
