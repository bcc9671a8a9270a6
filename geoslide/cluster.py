"""Connect to a Dask cluster or start a local one.

The address comes from, in order: the argument, ``$DASK_SCHEDULER_ADDRESS``. Without either, a
:class:`distributed.LocalCluster` of worker *processes* is started (torch and GDAL release the
GIL only in parts, and DDP needs one process per rank), and closed again when the caller is done.
On a machine with CUDA devices the local workers offer a ``GPU`` resource, one device each.

Workers open paths in their own process, often on another machine and always in their own working
directory, so paths bound for tasks are made absolute here first (:func:`task_path`), and
:func:`check_visible` / :func:`shared_folder` make sure the workers see them.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from geoslide.errors import ClusterError, OutputError
from geoslide.fileio import local_path

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


@dataclass(frozen=True)
class ClusterSpec:
    """Where to compute: an existing scheduler, or a local cluster started for the job.

    Parameters
    ----------
    address
        Scheduler address (``tcp://host:8786``); None reads ``$DASK_SCHEDULER_ADDRESS``.
    n_workers
        Worker processes of a local cluster (None: GPUs if any, else Dask's choice from the cores).
    threads_per_worker
        Threads of each local worker (None: the cores divided over the workers).
    processes
        Local workers as processes (True, needed for data-parallel training) or threads.
    resources
        Abstract resources of each local worker, e.g. ``{"GPU": 1}``; None: ``{"GPU": 1}`` when
        there are at least as many CUDA devices as workers, else none.
    timeout
        Seconds to wait for a scheduler to answer.
    dashboard
        Serve the local cluster's dashboard (on a free port).
    """

    address: str | None = None
    n_workers: int | None = None
    threads_per_worker: int | None = None
    processes: bool = True
    resources: dict[str, float] | None = None
    timeout: float = 30.0
    dashboard: bool = False

    def __post_init__(self) -> None:
        for name in ("n_workers", "threads_per_worker"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ClusterError(f"{name} must be at least 1, got {value}")

    def scheduler_address(self) -> str | None:
        """The address to connect to: the spec's, else ``$DASK_SCHEDULER_ADDRESS``, else None (start locally)."""
        return self.address or os.environ.get(SCHEDULER_ENV) or None


def connect(spec: ClusterSpec | None = None) -> tuple[Any, Any]:
    """A client to the spec's scheduler, or to a new local cluster.

    Returns
    -------
    tuple
        ``(client, cluster)``; ``cluster`` is the started LocalCluster (close it after the client),
        or None when an existing scheduler was reached.
    """
    from distributed import Client

    spec = spec or ClusterSpec()
    address = spec.scheduler_address()
    if address is None:
        cluster = start_local(spec)
        return Client(cluster, set_as_default=False), cluster
    check_address(address)
    try:
        return Client(address, timeout=spec.timeout, set_as_default=False), None
    except (OSError, TimeoutError) as exc:
        where = "the address given" if spec.address else f"${SCHEDULER_ENV}"
        raise ClusterError(f"cannot reach the Dask scheduler at {address} ({where}): {exc}; start it, fix the "
                           f"address, or unset {SCHEDULER_ENV} to use a local cluster") from exc


def check_address(address: str) -> None:
    """Refuse an address Dask cannot parse (no port, say) before a client waits on it for a minute."""
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, where = parse_address(address)
        if scheme in ("tcp", "tls"):
            parse_host_port(where)
    except ValueError as exc:
        raise ClusterError(f"{address!r} is not a Dask scheduler address ({exc}); give tcp://HOST:PORT, "
                           "e.g. tcp://127.0.0.1:8786") from None


def start_local(spec: ClusterSpec) -> Any:
    """Start a LocalCluster of ``spec.n_workers`` processes, silent and without a dashboard unless asked."""
    from distributed import LocalCluster

    n_workers, resources = _local_layout(spec)
    kwargs: dict[str, Any] = {"n_workers": n_workers, "threads_per_worker": spec.threads_per_worker,
                              "processes": spec.processes, "dashboard_address": ":0" if spec.dashboard else None}
    if resources:
        kwargs["resources"] = resources
    return LocalCluster(**kwargs)


def _local_layout(spec: ClusterSpec) -> tuple[int | None, dict[str, float]]:
    """Worker count and per-worker resources of a local cluster (one GPU per worker when they suffice)."""
    if spec.resources is not None:
        return spec.n_workers, dict(spec.resources)
    gpus = cuda_devices()
    if gpus and (spec.n_workers or gpus) <= gpus:
        return spec.n_workers or gpus, {"GPU": 1}
    return spec.n_workers, {}


def cuda_devices() -> int:
    """CUDA devices this process sees (0 without torch or CUDA)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def worker_info(client: Any) -> dict[str, dict[str, Any]]:
    """The scheduler's workers by address, fetched now.

    ``client.scheduler_info()`` may return a copy that the client's periodic refresh has just
    replaced by totals without workers, so the scheduler is asked directly.
    """
    return client.sync(client.scheduler.identity, n_workers=-1)["workers"]


def dashboard_link(client: Any) -> str | None:
    """The URL of the Dask dashboard of ``client``'s scheduler; None when it serves none (no bokeh there)."""
    if "dashboard" not in client.scheduler_info().get("services", {}):
        return None
    return client.dashboard_link


def announce_dashboard(client: Any, stream: TextIO | None = None) -> str | None:
    """Print ``Dask dashboard: URL`` (or why there is none) on stderr, once per client; returns the URL."""
    link = dashboard_link(client)
    if id(client) in _ANNOUNCED:
        return link
    _ANNOUNCED.add(id(client))
    text = link or "none (the scheduler serves no dashboard: install bokeh>=3.1 where it runs)"
    print(f"Dask dashboard: {text}", file=stream or sys.stderr, flush=True)
    return link


_ANNOUNCED: set[int] = set()


@contextmanager
def cluster_client(scheduler: str | None = None, workers: int | None = None,
                   spec: ClusterSpec | None = None, dashboard: bool = False) -> Iterator[Any]:
    """A Dask client for the block, or None to compute in this process.

    Parameters
    ----------
    scheduler
        Scheduler address (else ``$DASK_SCHEDULER_ADDRESS``).
    workers
        Start a local cluster of this many worker processes when no address is set.
    spec
        Full options instead of ``scheduler``/``workers``.
    dashboard
        Serve a local cluster's dashboard and print the dashboard's link (see :func:`announce_dashboard`).

    Yields None when no address is set and no local cluster is asked for. A local cluster
    started here is closed when the block ends.
    """
    spec = spec or ClusterSpec(address=scheduler, n_workers=workers, dashboard=dashboard)
    if spec.scheduler_address() is None and spec.n_workers is None:
        if dashboard or spec.dashboard:
            raise ClusterError("the Dask dashboard needs a cluster: give --workers N or --scheduler ADDRESS "
                               f"(or set ${SCHEDULER_ENV})")
        yield None
        return
    client, cluster = connect(spec)
    try:
        if dashboard or spec.dashboard:
            announce_dashboard(client)
        yield client
    finally:
        _ANNOUNCED.discard(id(client))
        client.close()
        if cluster is not None:
            cluster.close()


def task_path(path: str | os.PathLike[str]) -> str:
    """``path`` as a task should get it: a local path made absolute here, a URL (``s3://``...) unchanged."""
    local = _local_absolute(path)
    return os.fspath(path) if local is None else str(local)


def check_visible(client: Any, paths: Iterable[str | os.PathLike[str]]) -> None:
    """Refuse to go on when a worker cannot see a local path that this process sees (URLs are not checked).

    Raises
    ------
    ClusterError
        ``a worker cannot see PATH``: the workers run on other machines or containers without the
        file system that holds it.
    """
    unseen = _unseen(client, [p for p in map(_local_absolute, paths) if p is not None and p.exists()])
    if unseen:
        _not_seen(*unseen)


def shared_folder(client: Any, folder: str | os.PathLike[str]) -> None:
    """Make ``folder`` here and check that every worker sees this very folder (by a probe file in it).

    A worker may have a folder of the same name of its own (``/tmp``), so a new, uniquely named file
    is looked for, then removed. On failure the folders made here are removed again.
    """
    path = _local_absolute(folder)
    if path is None:
        return
    made = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    probe = path / f".geoslide-probe-{uuid.uuid4().hex}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.touch()
        unseen = _unseen(client, [probe])
    except OSError as exc:
        raise OutputError(f"cannot write to {path}: {exc.strerror or exc}; choose a writable folder") from exc
    finally:
        probe.unlink(missing_ok=True)
    if unseen:
        for p in made:
            p.rmdir()
        _not_seen(unseen[0], path)


def shared_parent(client: Any, path: str | os.PathLike[str]) -> None:
    """:func:`shared_folder` for the folder that ``path`` (a store, a file) will be written into; URLs pass."""
    local = _local_absolute(path)
    if local is not None:
        shared_folder(client, local.parent)


def missing_paths(paths: list[str]) -> list[str]:
    """The paths this process cannot see (run on each worker by :func:`check_visible`)."""
    return [p for p in paths if not os.path.exists(p)]


def _unseen(client: Any, paths: list[Path]) -> tuple[str, str] | None:
    """A worker and a path of ``paths`` it cannot see, or None when every worker sees them all."""
    if not paths:
        return None
    for worker, missing in sorted(client.run(missing_paths, sorted({str(p) for p in paths})).items()):
        if missing:
            return worker, missing[0]
    return None


def _not_seen(worker: str, path: str | Path) -> None:
    raise ClusterError(f"a worker cannot see {path}: use a shared volume or object storage (the worker {worker} "
                       "looked for it at the same path)")


def _local_absolute(path: str | os.PathLike[str]) -> Path | None:
    """A plain path or ``file://`` URL as an absolute path; None for other URLs."""
    local = local_path(path)
    return None if local is None else local.expanduser().absolute()
