"""Per-patch confusion counts of every model of a pipeline on any store split, computed once each.

A network is loaded from its model folder; the random-forest baseline is trained here on its
store (it is never written to disk; see :mod:`geoslide.training.forest`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from geoslide.data.store import PatchStore
from geoslide.errors import LabelError
from geoslide.pipeline.config import Pipeline
from geoslide.pipeline.workdir import resolve


class Scorer:
    """Confusion counts of one model, cached per (store, split)."""

    def __init__(self, name: str, model_dir: Path | None = None, forest_spec: Any = None,
                 train_store: PatchStore | None = None) -> None:
        self.name, self.model_dir, self.forest_spec, self.train_store = name, model_dir, forest_spec, train_store
        self._loaded: Any = None
        self._cache: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}

    @property
    def is_forest(self) -> bool:
        """True for the random-forest baseline (no model folder, no scene maps)."""
        return self.forest_spec is not None

    def counts(self, store: PatchStore, split: str) -> tuple[np.ndarray, np.ndarray]:
        """The store rows of ``split`` and their per-patch counts ``(rows, 4)`` (tn fp fn tp)."""
        key = (str(store.path), split)
        if key not in self._cache:
            rows = np.flatnonzero(store.meta()["split"].to_numpy() == split)
            if len(rows) == 0:
                raise LabelError(f"{store.path} has no patches with split {split!r}; nothing to evaluate")
            self._cache[key] = rows, self._compute(store, rows)
        return self._cache[key]

    def _compute(self, store: PatchStore, rows: np.ndarray) -> np.ndarray:
        if self.is_forest:
            from geoslide.training.forest import forest_counts, train_forest

            if self._loaded is None:
                self._loaded = train_forest(self.train_store, self.forest_spec)
            return forest_counts(self._loaded, store, rows, self.forest_spec, self.train_store.bands)
        from geoslide.evaluation.score import patch_counts
        from geoslide.models.card import load_checkpoint

        if self._loaded is None:
            self._loaded = load_checkpoint(self.model_dir)
        return patch_counts(*self._loaded, store, rows)  # LabelError when the store lacks a band of the model


def dataset_store(pipeline: Pipeline, root: Path, name: str | None) -> PatchStore:
    """The store a model trains on: the pipeline's (None) or that of the named dataset."""
    return PatchStore.open(resolve(root, pipeline.store) if name is None else root / "datasets" / f"{name}.zarr")
