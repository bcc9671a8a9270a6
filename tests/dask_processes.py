"""Real `dask scheduler` and `dask worker` processes on loopback, as the Helm chart starts them.

The test process makes no Dask client of its own (a default client would hide a CLI that relies on
one): workers are awaited from a separate process. The workers run in their own working directory,
so a relative path that reaches them unresolved names a file that is not there.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from servers import running_dask

GEOSLIDE = Path(sys.executable).with_name("geoslide")


class DaskProcesses(NamedTuple):
    """The scheduler's address and the workers' working directory."""

    address: str
    worker_cwd: Path


@contextmanager
def dask_cluster(folder: Path, n_workers: int = 2) -> Iterator[DaskProcesses]:
    """A scheduler and ``n_workers`` one-thread worker processes (cwd ``folder/worker-cwd``, logs in ``folder``)."""
    with running_dask(folder, workers=n_workers) as address:
        yield DaskProcesses(address, folder / "worker-cwd")


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
