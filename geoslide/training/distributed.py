"""Data-parallel training (torch DDP) on the workers of a Dask cluster, restarted when a worker dies.

:func:`train_distributed` runs one rank of :func:`geoslide.training.loop.fit` on each chosen worker:

- workers offering the ``GPU`` resource are used when there are any (backend ``nccl``), else all
  workers on CPU (backend ``gloo``); ranks follow the sorted worker addresses;
- a free port is found on rank 0's worker, and every rank joins ``tcp://HOST:PORT`` with a modest
  collective timeout, so that a rank whose peer died fails instead of waiting for ever;
- each task is pinned to its worker (``workers=[address]``, ``allow_other_workers=False``);
- if a worker dies or a rank fails with a communication error, the whole group is started again
  on the workers alive (after waiting for the cluster to replace the lost one, or with fewer ranks
  when the global batch still divides), and :func:`~geoslide.training.loop.fit` resumes from ``OUT/last``.

Local paths are made absolute here before they go into the tasks (the workers run in another
working directory), and the store and ``OUT`` are checked to be seen by every worker: ``OUT``
must be a path every worker can read and write (one machine, or a shared file system), since
ranks may move between workers on a restart. The store is checked to fill a global batch before
``OUT`` is made.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from geoslide.cluster import (
    ClusterError,
    ClusterSpec,
    announce_dashboard,
    check_visible,
    connect,
    shared_folder,
    task_path,
    worker_info,
)
from geoslide.errors import ConfigError, GeoslideError, GeoslideWarning
from geoslide.fileio import Location, join, location, makedirs
from geoslide.progress import show_progress
from geoslide.training.loop import check_store, fit
from geoslide.training.spec import TrainSpec

log = logging.getLogger(__name__)

_RANK_LOCK = threading.Lock()  # one training rank per worker process (the process group is global)
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
_STATIC_MALLOC = {"MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_"}


class WorkerBusyError(ClusterError):
    """A worker still runs a rank of an earlier launch (restartable: it ends or is restarted)."""


@dataclass(frozen=True)
class LaunchSpec:
    """How to place and restart the ranks (see :func:`train_distributed` for each option)."""

    n_workers: int | None = None
    resources: str | None = "GPU"
    max_restarts: int = 2
    timeout: float = 120.0
    replace_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.n_workers is not None and self.n_workers < 1:
            raise ConfigError(f"n_workers must be at least 1, got {self.n_workers}")
        if self.max_restarts < 0 or not self.timeout > 0:
            raise ConfigError("max_restarts must be >= 0 and timeout > 0")


@dataclass(frozen=True)
class Group:
    """One launch of the training: its workers in rank order and how the ranks meet.

    Parameters
    ----------
    workers
        Worker addresses; position = rank.
    backend
        ``nccl`` (GPU workers) or ``gloo`` (CPU).
    init_method
        ``tcp://HOST:PORT`` on rank 0's host.
    resource
        Resource each task claims (``GPU`` for nccl), or None.
    """

    workers: tuple[str, ...]
    backend: str
    init_method: str
    resource: str | None = None

    @property
    def world(self) -> int:
        """Number of ranks."""
        return len(self.workers)


def train_distributed(store_path: str | Path, spec: TrainSpec, out_dir: str | Path, client: Any = None,
                      n_workers: int | None = None, resources: str | None = "GPU", progress: bool | None = None,
                      max_restarts: int = 2, timeout: float = 120.0, replace_timeout: float = 60.0,
                      scheduler: str | None = None) -> dict[str, Any]:
    """Train data-parallel on Dask workers; returns rank 0's :func:`~geoslide.training.loop.fit` summary.

    Parameters
    ----------
    store_path, spec, out_dir
        As for :func:`geoslide.training.loop.fit`; ``spec.batch_size`` is the global batch.
    client
        A ``distributed.Client``; None connects to ``scheduler`` (else ``$DASK_SCHEDULER_ADDRESS``)
        or starts a local cluster of ``n_workers`` processes, closed at the end.
    n_workers
        Ranks to run (None: every eligible worker, reduced to a divisor of the batch).
    resources
        Worker resource that marks GPU workers; when any worker has it, only those train (nccl).
    progress
        Show a progress bar of the epochs here (rank 0 reports each epoch as a Dask event); None: when a
        person watches (:func:`geoslide.progress.watching`).
    max_restarts
        Restarts of the whole group after a lost worker or a communication failure.
    timeout
        Seconds a rank waits in a collective or at the rendezvous before it fails.
    replace_timeout
        Seconds to wait for the cluster to offer the workers wanted (e.g. to replace a dead one).
    scheduler
        Scheduler address used when ``client`` is None.

    Returns
    -------
    dict
        Rank 0's summary plus ``restarts``, ``world``, ``backend``, ``workers`` and
        ``rank_weights_sha256`` (each rank's final weights digest; all equal).
    """
    progress = show_progress(progress)
    launch = LaunchSpec(n_workers, resources, max_restarts, timeout, replace_timeout)
    store_path, out = task_path(store_path), location(task_path(out_dir))
    check_store(store_path, spec)
    if client is not None:
        return _train_on(client, store_path, spec, out, launch, progress)
    client, cluster = connect(ClusterSpec(address=scheduler, n_workers=n_workers))
    try:
        return _train_on(client, store_path, spec, out, launch, progress)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _train_on(client: Any, store_path: str, spec: TrainSpec, out: Location, launch: LaunchSpec,
              progress: bool) -> dict[str, Any]:
    """Launch the group, and launch it again after each restartable failure (paths absolute or URLs)."""
    if progress:
        announce_dashboard(client)
    check_visible(client, [store_path])
    shared_folder(client, out)
    makedirs(out)
    topic = f"geoslide-train-{uuid.uuid4().hex}"
    bar = _progress(client, topic, spec.epochs, progress)
    try:
        restarts, wanted, unhealthy = 0, launch.n_workers, frozenset()
        while True:
            group = plan_group(client, spec, wanted, launch.resources, launch.replace_timeout, strict=restarts == 0,
                               exclude=unhealthy)
            log.info("training on %d %s rank(s): %s", group.world, group.backend, ", ".join(group.workers))
            futures = _submit(client, group, str(store_path), spec, str(out), launch.timeout, topic)
            try:
                trigger = _watch(client, futures, group.workers)
            except BaseException:  # e.g. Ctrl-C here: release the ranks' tasks
                client.cancel(futures)
                raise
            if trigger is None:
                return _result([f.result() for f in futures], group, restarts)
            log.warning("%s; stopping the other ranks", trigger)
            reason, unhealthy = _settle(client, futures, group.workers, launch.timeout)
            if restarts >= launch.max_restarts:
                raise ClusterError(f"training failed after {restarts} restart(s): {reason}; check the workers' "
                                   "logs, then run again to resume from OUT/last")
            restarts, wanted = restarts + 1, group.world
            log.warning("%s; restarting the group (restart %d of %d), resuming from %s", reason, restarts,
                        launch.max_restarts, join(out, "last"))
    finally:
        client.unsubscribe_topic(topic)
        bar.close()


def eligible_workers(client: Any, resource: str | None = "GPU", exclude: frozenset[str] = frozenset()
                     ) -> tuple[list[str], str]:
    """Running workers that may train, sorted, and the backend: ``resource`` holders (nccl), else all (gloo)."""
    running = {a: w for a, w in worker_info(client).items()
               if w.get("status", "running") == "running" and a not in exclude}
    gpu = sorted(a for a, w in running.items() if resource and (w.get("resources") or {}).get(resource, 0) > 0)
    return (gpu, "nccl") if gpu else (sorted(running), "gloo")


def plan_group(client: Any, spec: TrainSpec, wanted: int | None, resource: str | None, wait: float,
               strict: bool, exclude: frozenset[str] = frozenset()) -> Group:
    """Choose the workers and rendezvous of one launch.

    Waits up to ``wait`` seconds for ``wanted`` eligible workers (at least one; ``exclude`` are
    not eligible). ``strict`` (the first launch) refuses fewer workers than asked and a batch that
    does not split over them; otherwise the largest rank count that divides the global batch is taken.
    """
    workers, backend = _wait_for_workers(client, wanted or 1, resource, wait, exclude)
    if not workers:
        raise ClusterError(f"the Dask cluster has no workers after {wait:.0f} s; start some or use a local cluster")
    if strict and wanted and len(workers) < wanted:
        raise ClusterError(f"asked for {wanted} workers but the cluster has {len(workers)} eligible; "
                           "start more workers or ask for fewer")
    n = min(wanted or len(workers), len(workers))
    if strict and wanted and spec.batch_size % n:
        raise ConfigError(f"batch size {spec.batch_size} does not split over {n} workers; use a multiple of {n}")
    world = max(d for d in range(1, n + 1) if spec.batch_size % d == 0)
    chosen = tuple(workers[:world])
    host = _host(chosen[0])
    port = client.run(free_port, host, workers=[chosen[0]])[chosen[0]]
    return Group(chosen, backend, f"tcp://{host}:{port}", resource if backend == "nccl" else None)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free at this moment on ``host``, an address of this machine (run on rank 0's worker)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def rendezvous_store(init_method: str, rank: int, world: int, timeout: float) -> Any:
    """The torch TCPStore of the group; rank 0 serves it on its worker's own address only.

    torch's own ``tcp://`` rendezvous listens on every interface of rank 0's machine; here rank 0
    binds the listening socket to the worker's address and hands it to the store.
    """
    from urllib.parse import urlparse

    import torch.distributed as dist

    parsed = urlparse(init_method)
    host, port = parsed.hostname or "127.0.0.1", int(parsed.port or 0)
    wait = timedelta(seconds=timeout)
    if rank != 0:
        return dist.TCPStore(host, port, world, False, wait)
    listener = socket.socket(_family(host), socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen()
    except BaseException:
        listener.close()
        raise
    # the store takes the descriptor over (detach: Python must not close it when the object goes)
    return dist.TCPStore(host, port, world, True, wait, wait_for_workers=False, master_listen_fd=listener.detach())


def _wait_for_workers(client: Any, n: int, resource: str | None, wait: float, exclude: frozenset[str]
                      ) -> tuple[list[str], str]:
    deadline = time.monotonic() + wait
    workers, backend = eligible_workers(client, resource, exclude)
    while len(workers) < n and time.monotonic() < deadline:
        time.sleep(0.25)
        workers, backend = eligible_workers(client, resource, exclude)
    return workers, backend


def _host(address: str) -> str:
    from distributed.comm import get_address_host

    return get_address_host(address)


def _submit(client: Any, group: Group, store_path: str, spec: TrainSpec, out_dir: str, timeout: float,
            topic: str) -> list[Any]:
    token = uuid.uuid4().hex[:8]
    return [client.submit(run_rank, store_path, spec, out_dir, rank, group, timeout, topic,
                          key=f"geoslide-train-{token}-rank-{rank}", workers=[address], allow_other_workers=False,
                          pure=False, resources={group.resource: 1} if group.resource else None)
            for rank, address in enumerate(group.workers)]


def run_rank(store_path: str, spec: TrainSpec, out_dir: str, rank: int, group: Group, timeout: float,
             topic: str | None = None) -> dict[str, Any]:
    """One rank, as a Dask task: join the process group, :func:`~geoslide.training.loop.fit`, leave it.

    Torch uses as many threads as the worker has, and gloo talks over loopback when all ranks
    are on this machine's loopback address.
    """
    import torch
    import torch.distributed as dist
    from distributed import get_worker

    worker = get_worker()
    if not _RANK_LOCK.acquire(blocking=False):
        raise WorkerBusyError(f"worker {worker.address} already runs a training rank; wait for it to end")
    threads, env = torch.get_num_threads(), _rank_env(group)
    before = {k: os.environ.get(k) for k in env}
    try:
        torch.set_num_threads(max(1, worker.state.nthreads))
        os.environ.update(env)
        if group.world > 1:
            store = rendezvous_store(group.init_method, rank, group.world, timeout)
            dist.init_process_group(group.backend, store=store, rank=rank, world_size=group.world,
                                    timeout=timedelta(seconds=timeout))
        on_epoch = _publisher(worker, topic) if rank == 0 and topic else None
        with heap_allocations():
            summary = fit(store_path, spec, out_dir, rank=rank, world=group.world, on_epoch=on_epoch)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        torch.set_num_threads(threads)
        _restore_env(before)
        _RANK_LOCK.release()
    return {**summary, "rank": rank, "worker": worker.address}


@contextmanager
def heap_allocations(threshold: int = 32 << 20) -> Iterator[None]:
    """Serve allocations under ``threshold`` bytes from the heap for the block (glibc; elsewhere nothing).

    Dask starts worker processes with ``MALLOC_TRIM_THRESHOLD_`` set, which pins glibc's mmap
    threshold at 128 KiB, so every activation tensor is mapped and unmapped again: CPU training
    of a small U-Net ran 2.2x slower in a worker than in a plain process (4.5 vs 2.1 s per epoch
    here) and as fast once the threshold was raised. The worker's own value is put back after.
    Without those variables glibc adapts the threshold itself, and nothing is changed.
    """
    mallopt = _mallopt()
    if mallopt is None or not _STATIC_MALLOC & set(os.environ):
        yield
        return
    mallopt(M_MMAP_THRESHOLD, threshold)
    try:
        yield
    finally:
        mallopt(M_MMAP_THRESHOLD, int(os.environ.get("MALLOC_MMAP_THRESHOLD_", 128 << 10)))


def _mallopt() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None


def _rank_env(group: Group) -> dict[str, str]:
    """GLOO_SOCKET_IFNAME=lo when every rank is on loopback (gloo may pick an unroutable interface)."""
    if group.backend != "gloo" or not all(_host(w).startswith("127.") for w in group.workers):
        return {}
    names = {name for _, name in socket.if_nameindex()}
    loopback = next((n for n in ("lo", "lo0") if n in names), None)
    return {"GLOO_SOCKET_IFNAME": loopback} if loopback else {}


def _restore_env(before: dict[str, str | None]) -> None:
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _publisher(worker: Any, topic: str):
    def publish(record: dict[str, float]) -> None:
        worker.log_event(topic, {k: float(v) for k, v in record.items()})

    return publish


def _watch(client: Any, futures: list[Any], workers: tuple[str, ...], poll: float = 0.25) -> str | None:
    """Wait until every rank finished (None) or one failed or lost its worker (what happened)."""
    while True:
        states = [f.status for f in futures]
        if all(s == "finished" for s in states):
            return None
        ended = [f"rank {rank} {s}" for rank, s in enumerate(states) if s in ("error", "cancelled", "lost")]
        if ended:
            return ", ".join(ended)
        alive = set(worker_info(client))
        gone = [f"the worker of rank {rank} ({w}) left" for rank, w in enumerate(workers) if w not in alive]
        if gone:
            return ", ".join(gone)
        time.sleep(poll)


def _settle(client: Any, futures: list[Any], workers: tuple[str, ...], timeout: float
            ) -> tuple[str, frozenset[str]]:
    """After a failure: let surviving ranks end (their collectives time out), else restart their workers.

    Returns what happened, for the log, and the workers that could not be restarted (left out of
    the next launch); raises a rank's error if it is not a communication failure and no worker
    was lost (a bug or bad input, which a restart would only repeat).
    """
    deadline = time.monotonic() + timeout + 15
    while True:
        alive = set(worker_info(client))
        running = [w for f, w in zip(futures, workers, strict=True) if not f.done() and w in alive]
        if not running or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    unhealthy: frozenset[str] = frozenset()
    if running:
        log.warning("rank(s) on %s did not stop; restarting those workers", ", ".join(running))
        status = client.restart_workers(running, raise_for_error=False)
        unhealthy = frozenset(w for w in running if status.get(w) != "OK")
    errors = {rank: f.exception() for rank, f in enumerate(futures) if f.status == "error"}
    client.cancel(futures)
    lost = [rank for rank, w in enumerate(workers) if w not in alive or w in running]
    fatal = [e for e in errors.values() if not _transient(e)]
    if fatal and not lost:
        raise fatal[0]
    parts = [f"the worker of rank {rank} was lost" for rank in lost]
    parts += [f"rank {rank} failed ({_first_line(e)})" for rank, e in errors.items()]
    return "; ".join(parts) or "the ranks were cancelled", unhealthy


def _transient(error: BaseException) -> bool:
    """Whether an error comes from a lost peer or connection (restartable), not from the training itself."""
    import torch.distributed as dist
    from distributed import KilledWorker
    from distributed.comm import CommClosedError

    if isinstance(error, WorkerBusyError):
        return True
    if isinstance(error, GeoslideError):
        return False
    if isinstance(error, dist.DistError | KilledWorker | CommClosedError | ConnectionError | TimeoutError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(w in text for w in ("gloo", "nccl", "connection", "timed out"))


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def _result(summaries: list[dict[str, Any]], group: Group, restarts: int) -> dict[str, Any]:
    digests = [s.get("weights_sha256") for s in summaries]
    if len(set(digests)) > 1:
        warnings.warn(f"ranks ended with different weights ({len(set(digests))} versions); the model written "
                      "is rank 0's", GeoslideWarning, stacklevel=3)
    first = {k: v for k, v in summaries[0].items() if k not in ("rank", "worker")}
    return {**first, "restarts": restarts, "world": group.world, "backend": group.backend,
            "workers": list(group.workers), "rank_weights_sha256": digests}


def _progress(client: Any, topic: str, total: int, enabled: bool):
    """A client-side epoch bar fed by rank 0's events; also logs each epoch."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="geoslide train", unit="epoch", disable=not enabled)

    def on_event(event: tuple[float, dict[str, float]]) -> None:
        record = event[1]
        bar.n = int(record["epoch"]) + 1
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val_f1=f"{record['val_f1']:.3f}")
        log.info("epoch %d: train loss %.4f, val F1 %.4f", record["epoch"], record["train_loss"], record["val_f1"])

    client.subscribe_topic(topic, on_event)
    return bar
