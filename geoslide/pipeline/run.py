"""Run a pipeline: its steps in order, each resumed or skipped when its output is complete."""

from __future__ import annotations

from pathlib import Path

from geoslide.pipeline.config import Pipeline
from geoslide.pipeline.steps import build_data, evaluate_all, train_all


def run_pipeline(pipeline: Pipeline, work: str | Path | None = None, progress: bool = False) -> str:
    """Run every step (resuming finished ones) and return the Markdown report."""
    root = Path(work or Path("runs") / pipeline.name)
    root.mkdir(parents=True, exist_ok=True)
    store = build_data(pipeline, root, progress)
    models = train_all(pipeline, store, root, progress)
    return evaluate_all(pipeline, store, models, root, progress)
