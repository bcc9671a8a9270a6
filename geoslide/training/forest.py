"""The shallow baseline a reviewer asked for: a random forest on band values and spectral indices, per pixel.

Features of a pixel are its band values as stored plus normalised-difference indices where the
bands exist (NDVI from red and NIR, NDWI from green and NIR; common names or Sentinel-2 keys).
The forest (scikit-learn) learns from a random sample of valid training pixels and predicts
every pixel of a patch; its scores come out as per-patch confusion counts, grouped like a
network's. It lives only for a pipeline run: nothing is pickled, a rerun retrains it (seeded), and
it is not mapped over whole scenes (``evaluate.scenes`` lists the networks only).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from geoslide.data.store import PatchStore, read_rows
from geoslide.errors import ConfigError, PatchStoreError
from geoslide.evaluation.metrics import confusion_counts
from geoslide.inventory.codes import MASK_NODATA

FOREST = "random-forest"
ALIASES = {"red": ("red", "B04"), "green": ("green", "B03"), "nir": ("nir", "B08")}
INDICES = {"ndvi": ("nir", "red"), "ndwi": ("green", "nir")}
CHUNK = 64


@dataclass(frozen=True)
class ForestSpec:
    """Options of the random-forest baseline.

    Parameters
    ----------
    model
        Always ``random-forest``.
    trees, max_depth, min_samples_leaf
        Forest size and leaf limits (scikit-learn's ``RandomForestClassifier``).
    pixels
        Training pixels sampled uniformly from the valid pixels of the training split.
    indices
        Indices added as features when their bands exist: ``ndvi``, ``ndwi``.
    seed
        Seeds the pixel sample and the forest.
    train_split, sensors
        Split and (optionally) sensors trained on, as for a network.
    """

    model: str = FOREST
    trees: int = 100
    max_depth: int | None = None
    min_samples_leaf: int = 1
    pixels: int = 50_000
    indices: tuple[str, ...] = ("ndvi", "ndwi")
    seed: int = 0
    train_split: str = "train"
    sensors: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.model != FOREST:
            raise ConfigError(f"a ForestSpec is for model {FOREST!r}, got {self.model!r}")
        if self.trees < 1 or self.pixels < 1 or self.min_samples_leaf < 1:
            raise ConfigError("trees, pixels and min_samples_leaf of a random forest must be at least 1")
        if unknown := sorted(set(self.indices) - set(INDICES)):
            raise ConfigError(f"unknown index(es) {unknown} for the random forest; choose from {sorted(INDICES)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForestSpec:
        """Build from a mapping (a pipeline's model entry), refusing unknown keys."""
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(data) - known):
            raise ConfigError(f"unknown random-forest option(s) {unknown}; known: {sorted(known)}")
        data = {k: tuple(v) if k in ("indices", "sensors") and v is not None else v for k, v in data.items()}
        return cls(**data)


def features(images: np.ndarray, bands: list[str], indices: tuple[str, ...]) -> np.ndarray:
    """``(patches, feature, H, W)`` float32: the bands, then each index whose bands exist."""
    where = {name: next((bands.index(a) for a in aliases if a in bands), None) for name, aliases in ALIASES.items()}
    parts = [images.astype("float32")]
    for index in indices:
        a, b = (where[n] for n in INDICES[index])
        if a is not None and b is not None:
            x, y = images[:, a].astype("float32"), images[:, b].astype("float32")
            with np.errstate(invalid="ignore", divide="ignore"):
                parts.append(np.nan_to_num((x - y) / (x + y), nan=0.0, posinf=0.0, neginf=0.0)[:, None])
    return np.nan_to_num(np.concatenate(parts, axis=1))


def train_forest(store: PatchStore, spec: ForestSpec) -> Any:
    """A fitted ``RandomForestClassifier`` on a sample of the training split's valid pixels."""
    from sklearn.ensemble import RandomForestClassifier

    meta = store.meta()
    chosen = meta["split"].to_numpy() == spec.train_split
    if spec.sensors is not None:
        chosen &= meta["sensor"].isin(list(spec.sensors)).to_numpy()
    rows = np.flatnonzero(chosen)
    if len(rows) == 0:
        raise PatchStoreError(f"{store.path} has no {spec.train_split!r} patches to train the random forest on")
    valid = np.array([(read_rows(store.array("masks"), rows[i:i + CHUNK]) != MASK_NODATA).sum()
                      for i in range(0, len(rows), CHUNK)])
    rng = np.random.default_rng(spec.seed)
    picks = np.sort(rng.choice(valid.sum(), size=min(spec.pixels, int(valid.sum())), replace=False))
    x, y = _sample(store, rows, spec, picks, np.concatenate([[0], np.cumsum(valid)]))
    forest = RandomForestClassifier(n_estimators=spec.trees, max_depth=spec.max_depth,
                                    min_samples_leaf=spec.min_samples_leaf, random_state=spec.seed, n_jobs=1)
    return forest.fit(x, y)


def _sample(store: PatchStore, rows: np.ndarray, spec: ForestSpec, picks: np.ndarray, starts: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Feature vectors and labels of the picked valid pixels (numbered chunk by chunk)."""
    xs, ys = [], []
    for k, i in enumerate(range(0, len(rows), CHUNK)):
        mine = picks[(picks >= starts[k]) & (picks < starts[k + 1])] - starts[k]
        if len(mine) == 0:
            continue
        masks = read_rows(store.array("masks"), rows[i:i + CHUNK])
        feats = features(read_rows(store.array("images"), rows[i:i + CHUNK]), store.bands, spec.indices)
        valid = masks != MASK_NODATA
        xs.append(np.moveaxis(feats, 1, -1)[valid][mine])
        ys.append(masks[valid][mine].astype("int64"))
    return np.concatenate(xs), np.concatenate(ys)


def forest_counts(forest: Any, store: PatchStore, rows: np.ndarray, spec: ForestSpec,
                  bands: list[str] | None = None) -> np.ndarray:
    """Per-patch confusion counts ``(len(rows), 4)`` (tn, fp, fn, tp) of the forest's pixel predictions.

    ``bands`` are those the forest was trained on (default: the store's); they are picked by name.
    """
    bands = list(bands or store.bands)
    if missing := [b for b in bands if b not in store.bands]:
        raise PatchStoreError(f"the random forest takes bands {bands} but {store.path} lacks {missing}")
    picks = [store.bands.index(b) for b in bands]
    counts = np.zeros((len(rows), 4), dtype=np.int64)
    for i in range(0, len(rows), CHUNK):
        masks = read_rows(store.array("masks"), rows[i:i + CHUNK])
        feats = features(read_rows(store.array("images"), rows[i:i + CHUNK])[:, picks], bands, spec.indices)
        pred = forest.predict(np.moveaxis(feats, 1, -1).reshape(-1, feats.shape[1])).reshape(masks.shape)
        for j in range(len(masks)):
            counts[i + j] = confusion_counts(pred[j], masks[j])
    return counts
