"""Run a pipeline: its steps in order, each resumed or skipped when its output is complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geoslide.cluster import shared_folder
from geoslide.pipeline.config import Pipeline
from geoslide.pipeline.steps import build_data, evaluate_all, train_all


def run_pipeline(pipeline: Pipeline, work: str | Path | None = None, progress: bool = False,
                 client: Any = None) -> str:
    """Run every step (resuming finished ones) and return the Markdown report.

    With a ``distributed.Client``, patches, training and scene maps run on its workers, which must
    see the working folder at the same path (a shared volume; checked first).
    """
    root = Path(work or Path("runs") / pipeline.name)
    if client is not None:
        root = root.absolute()
        shared_folder(client, root)
    root.mkdir(parents=True, exist_ok=True)
    store = build_data(pipeline, root, progress, client)
    models = train_all(pipeline, store, root, progress, client)
    return evaluate_all(pipeline, store, models, root, progress, client)
