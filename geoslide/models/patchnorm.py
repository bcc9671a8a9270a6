"""Normalising patch-store images for a model: the card's fixed statistics, or with its source scene's.

Training and patch evaluation read images through a :class:`PatchNormaliser`. For a
``brightness`` or ``scene`` card (see :mod:`geoslide.models.normalise`) every patch is normalised
with the statistics of the scene it was cut from (the store's ``item_id``), estimated from a
sample of that scene's patches, as ``geoslide map`` estimates them from a sample of the imagery.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from geoslide.data.store import PatchStore, read_rows
from geoslide.models.normalise import Normalisation, brightness, for_scene

SCENE_PATCHES = 48
"""Patches of a scene (drawn at random, seeded) that its statistics are estimated from."""


class PatchNormaliser:
    """Normalises ``(n, band, y, x)`` images of given store rows for a model.

    Parameters
    ----------
    store, meta
        The patch store and its table (``store.meta()``).
    bands
        The model's bands, in its order; each must be a band of the store.
    norm
        The card's normalisation (for ``brightness``, of values divided by the scene's brightness).
    mode
        The card's ``normalise``: ``fixed``, ``brightness`` or ``scene``.
    """

    def __init__(self, store: PatchStore, meta: pd.DataFrame, bands: Sequence[str], norm: Normalisation,
                 mode: str = "fixed") -> None:
        self.picks = np.array([list(store.bands).index(b) for b in bands])
        self.norm = norm
        self.mean = self.std = None
        if mode != "fixed":
            self.mean, self.std = _row_statistics(store, meta, self.picks, norm, mode)

    def __call__(self, images: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Normalised float32 images of store ``rows``, NaN set to 0."""
        images = images[:, self.picks]
        if self.mean is None:
            return self.norm.apply(images)
        mean, std = self.mean[rows][:, :, None, None], self.std[rows][:, :, None, None]
        return np.nan_to_num((images.astype(np.float32) - mean) / std, nan=0.0)


def scene_keys(meta: pd.DataFrame) -> np.ndarray:
    """The source scene of every row: its ``item_id``, else its ``event`` (imported datasets)."""
    items = meta["item_id"].astype(str).to_numpy() if "item_id" in meta else np.full(len(meta), "")
    events = meta["event"].astype(str).to_numpy() if "event" in meta else np.full(len(meta), "")
    return np.where(items != "", items, events)


def scene_brightness(store: PatchStore, meta: pd.DataFrame, picks: np.ndarray) -> np.ndarray:
    """Each row's scene brightness (:func:`~geoslide.models.normalise.brightness`) over bands ``picks``."""
    keys = scene_keys(meta)
    factor = np.ones(len(meta))
    for key, values in _scene_samples(store, keys, picks):
        factor[keys == key] = brightness(list(values))
    return factor


def _scene_samples(store: PatchStore, keys: np.ndarray, picks: np.ndarray):
    """``(key, values (band, n, y, x))`` for every scene: up to :data:`SCENE_PATCHES` of its patches, every 2nd px."""
    images = store.array("images")
    rng = np.random.default_rng(0)
    for key in np.unique(keys):
        rows = np.flatnonzero(keys == key)
        sample = np.sort(rng.permutation(rows)[:SCENE_PATCHES])
        yield key, np.moveaxis(read_rows(images, sample)[:, picks, ::2, ::2], 1, 0)


def _row_statistics(store: PatchStore, meta: pd.DataFrame, picks: np.ndarray, norm: Normalisation, mode: str
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ``(mean, std)`` arrays ``(len(store), bands)`` in float32 from each scene's patches."""
    keys = scene_keys(meta)
    mean = np.zeros((len(meta), len(picks)), dtype=np.float32)
    std = np.ones((len(meta), len(picks)), dtype=np.float32)
    for key, values in _scene_samples(store, keys, picks):
        rows = keys == key
        own = for_scene(norm, mode, list(values))
        mean[rows], std[rows] = own.mean, own.std
    return mean, std
