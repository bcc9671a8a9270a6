"""Run a pipeline: its steps in order, each resumed or skipped when its output is complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geoslide.cluster import announce_dashboard, shared_folder
from geoslide.fileio import is_url
from geoslide.pipeline.config import Pipeline
from geoslide.pipeline.steps import build_data, evaluate_all, train_all
from geoslide.pipeline.workdir import staged
from geoslide.progress import show_progress


def run_pipeline(pipeline: Pipeline, work: str | Path | None = None, progress: bool | None = None,
                 client: Any = None) -> str:
    """Run every step (resuming finished ones) and return the Markdown report.

    ``work`` is a folder or an ``s3://`` prefix (staged locally, see :func:`~geoslide.pipeline.workdir.staged`);
    None takes ``runs/<name>``. With a ``distributed.Client``, patches, training and scene maps run on
    its workers, which must see the (local) working folder at the same path (a shared volume; checked first).
    """
    progress = show_progress(progress)
    if progress and client is not None:
        announce_dashboard(client)
    work = work or Path("runs") / pipeline.name
    if client is not None:
        shared_folder(client, work)  # before anything is made here; URLs pass
    with staged(work) as (root, save):
        if client is not None:
            root = root.absolute()
            if is_url(work):  # its local copy must be seen by the workers too (a local work was checked above)
                shared_folder(client, root)
        store = build_data(pipeline, root, progress, client)
        save()
        models = train_all(pipeline, store, root, progress, client)
        save()
        return evaluate_all(pipeline, store, models, root, progress, client)
