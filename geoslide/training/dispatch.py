"""Where a training runs: :func:`train` picks this process or a Dask cluster.

The choice lives here, above both :mod:`~geoslide.training.loop` (one rank) and
:mod:`~geoslide.training.distributed` (ranks on Dask workers), so neither imports the other's caller.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from geoslide.cluster import SCHEDULER_ENV, cluster_client
from geoslide.fileio import output_lock
from geoslide.progress import show_progress
from geoslide.training.distributed import train_distributed
from geoslide.training.loop import fit
from geoslide.training.resume import check_run_folder
from geoslide.training.spec import TrainSpec


def train(store_path: str | Path, spec: TrainSpec, out_dir: str | Path, scheduler: str | None = None,
          workers: int | None = None, progress: bool | None = None, client: Any = None) -> dict[str, Any]:
    """Train in this process, or data-parallel on a Dask cluster when one is named or asked for.

    A cluster is used when ``scheduler`` (or ``$DASK_SCHEDULER_ADDRESS``) gives an address or
    ``workers`` asks for a local one; see :func:`geoslide.training.distributed.train_distributed`.

    Parameters
    ----------
    store_path
        The patch store (a path or URL), with ``train`` and ``val`` splits.
    spec
        The training options.
    out_dir
        Model folder or ``s3://`` prefix (an interrupted run in it is resumed).
    scheduler
        Dask scheduler address; None reads ``$DASK_SCHEDULER_ADDRESS``.
    workers
        Start a local cluster of this many worker processes.
    progress
        Show a progress bar of the epochs; None: when a person watches (:func:`geoslide.progress.watching`).
    client
        A ``distributed.Client`` to train on (then ``scheduler`` and ``workers`` are not used).

    Returns
    -------
    dict
        The best epoch's metrics (see :func:`geoslide.training.loop.fit`), plus the cluster's
        details when one was used.
    """
    progress = show_progress(progress)
    check_run_folder(out_dir)
    with output_lock(out_dir):
        if client is not None:
            return train_distributed(store_path, spec, out_dir, client=client, progress=progress)
        if scheduler or workers is not None or os.environ.get(SCHEDULER_ENV):
            with cluster_client(scheduler=scheduler, workers=workers) as client:
                return train_distributed(store_path, spec, out_dir, client=client, progress=progress)
        return fit(store_path, spec, out_dir, progress=progress)
