"""GDCLD's comparison tables: single- vs multi-source training (Tables 7/8) and cross-dataset tests (9/10)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from geoslide.data.store import PatchStore
from geoslide.errors import GeoslideWarning, LabelError
from geoslide.evaluation.score import grouped_scores
from geoslide.pipeline.config import Pipeline
from geoslide.pipeline.scoring import Scorer, dataset_store


def _options(pipeline: Pipeline, name: str) -> dict:
    run = next(r for r in pipeline.models if r.name == name)
    return {**pipeline.train, **run.options}


def source_rows(pipeline: Pipeline, store: PatchStore, scorers: list[Scorer]) -> pd.DataFrame:
    """Each single-source model (``sensors: [one]``) beside the multi-source models of the same architecture.

    Both are scored on that sensor's patches of the validation split (Table 7) and of the test split
    (Table 8). Empty when no model trains on a single sensor.
    """
    step = pipeline.evaluate
    options = {s.name: _options(pipeline, s.name) for s in scorers}
    singles = [s for s in scorers if len(options[s.name].get("sensors") or ()) == 1]
    splits = [(step.val_split, "validation")] if step.validation else []
    splits.append((step.split, "unseen events" if step.unseen_events or step.split == "test" else step.split))
    frames = []
    for single in singles:
        sensor = options[single.name]["sensors"][0]
        multis = [s for s in scorers if not options[s.name].get("sensors") and _same_data(pipeline, s, single)
                  and options[s.name].get("model") == options[single.name].get("model")]
        for split, label in splits:
            for scorer, source in [(single, "single source"), *((m, "multiple source") for m in multis)]:
                frame = _scores(store, scorer, split, ("sensor",))
                frame = frame[(frame["group"] == "sensor") & (frame["value"] == sensor)]
                frames.append(frame.assign(table=f"single- vs multi-source, {label}", source=source))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _same_data(pipeline: Pipeline, a: Scorer, b: Scorer) -> bool:
    """Both models train on the same dataset (a model trained elsewhere is no multi-source reference)."""
    datasets = {run.name: run.dataset for run in pipeline.models}
    return datasets[a.name] == datasets[b.name]


def cross_rows(pipeline: Pipeline, root: Path, scorers: list[Scorer]) -> pd.DataFrame:
    """Every model tested on other datasets, and on this pipeline's data when some model trained elsewhere.

    ``evaluate.cross`` lists the other datasets (GDCLD Table 9); when a model trained on another
    dataset, every model is also scored on this pipeline's test split grouped as ``evaluate.by`` (Table 10).
    """
    frames = []
    for test in pipeline.evaluate.cross:
        store = dataset_store(pipeline, root, test.dataset)
        frames += [_cross(store, s, test.split, test.by, test.dataset) for s in scorers]
    if any(run.dataset for run in pipeline.models):
        store = dataset_store(pipeline, root, None)
        step = pipeline.evaluate
        frames += [_cross(store, s, step.split, step.by, pipeline.name) for s in scorers]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _cross(store: PatchStore, scorer: Scorer, split: str, by: tuple[str, ...], name: str) -> pd.DataFrame:
    """A model's rows on another dataset; none, with a warning, when that dataset lacks one of its bands."""
    try:
        frame = _scores(store, scorer, split, by)
    except LabelError as exc:
        warnings.warn(f"{scorer.name} is not tested on {name}: {exc}", GeoslideWarning, stacklevel=2)
        return pd.DataFrame()
    return frame.assign(table=f"cross-dataset: tested on {name}", tested_on=name)


def _scores(store: PatchStore, scorer: Scorer, split: str, by: tuple[str, ...]) -> pd.DataFrame:
    rows, counts = scorer.counts(store, split)
    return grouped_scores(store.meta(), rows, counts, by).assign(model=scorer.name, split=split)
