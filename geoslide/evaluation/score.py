"""Accuracy of landslide maps and models against inventories, pixel- and object-level.

- :func:`evaluate_map`: a map store against inventory polygons, streamed chunk by chunk
  (confusion counts per chunk; objects compared as polygons, so any map size works).
- :func:`evaluate_patches`: a model on a patch store split, grouped (mixed, per event, per sensor),
  the tables of the seeds (HR-GLDD collections 1-3, GDCLD unseen events, Landslide4Sense test).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import torch

from geoslide.data.reader import PatchReader
from geoslide.data.splits import split_rows
from geoslide.data.store import PatchStore
from geoslide.errors import LabelError
from geoslide.evaluation.metrics import ConfusionMatrix, confusion_counts
from geoslide.evaluation.objects import object_scores
from geoslide.inventory.codes import MASK_NODATA
from geoslide.inventory.rastermask import is_raster_mask, labels_on_grid
from geoslide.inventory.read import read_inventory
from geoslide.inventory.vectorize import vectorize
from geoslide.mapping.store import open_map
from geoslide.models.card import load_checkpoint
from geoslide.models.normalise import Normalisation
from geoslide.models.outputs import final_logits
from geoslide.models.patchnorm import PatchNormaliser
from geoslide.raster.grid import grid_of


def evaluate_map(pred: str | Path, labels: str | Path | gpd.GeoDataFrame, min_area: float = 0.0,
                 mask_values: str | None = None) -> dict[str, Any]:
    """Precision, recall, F1, IoU and mIoU of a map store's mask, plus object-level scores.

    ``labels`` are polygons or a raster mask on any grid (reprojected onto the map's with nearest
    neighbours; ``mask_values`` as in :mod:`geoslide.inventory.maskvalues`). Pixels that are
    nodata in the map or in a raster mask are left out. Objects: an inventory landslide is
    detected when a mapped polygon intersects it; a mapped polygon touching no inventory
    landslide is false.
    """
    stored = open_map(pred)
    mask = stored["mask"]
    grid = grid_of(mask)
    raster = is_raster_mask(labels)
    # polygons: an inventory without any is a landslide-free scene, where only false alarms count
    inventory = labels if raster else read_inventory(labels, allow_empty=True)
    labelled = labels_on_grid(inventory, grid, chunks=mask.data.chunksize, mask_values=mask_values)
    truth = labelled.data
    if raster:
        inventory = vectorize(labelled)
    target = da.where(mask.data == MASK_NODATA, MASK_NODATA, truth)
    blocks = [dask.delayed(_block_counts)(p, t) for p, t in zip(mask.data.to_delayed().ravel(),
                                                                target.rechunk(mask.data.chunks).to_delayed().ravel(),
                                                                strict=True)]
    matrix = ConfusionMatrix(np.sum(dask.compute(*blocks), axis=0))
    valid = vectorize((mask != MASK_NODATA).astype(np.uint8).rio.write_crs(grid.crs)).union_all()
    objects = object_scores(vectorize(mask, min_area=min_area), inventory.to_crs(grid.crs), valid)
    objects = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in objects.items()}  # JSON-safe
    return {**matrix.as_dict(json_safe=True), **objects, "pixels_valid": int(matrix.counts.sum())}


def _block_counts(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    pred = np.where(pred == MASK_NODATA, 0, pred)
    return confusion_counts(pred, target)


def evaluate_patches(model_dir: str | Path, store: PatchStore, split: str = "test",
                     by: Sequence[str] = ("event", "sensor"), batch: int = 32, device: str = "cpu",
                     unseen: Sequence[str] = ()) -> pd.DataFrame:
    """Metrics of a model on a store split: one row for all patches ("mixed"), one per group value.

    ``by`` names metadata columns, or crossings of them such as ``event*sensor`` (values joined by
    `` / ``); the pseudo-column ``unseen`` is ``yes`` for the events in ``unseen``. The store may
    hold more bands than the model takes (another dataset): the model's bands are picked by name.
    """
    meta = store.meta()
    rows = split_rows(meta, split)  # labelled patches only: a split released without masks scores nothing
    if len(rows) == 0:
        raise LabelError(f"{store.path} has no labelled patches with split {split!r}; nothing to evaluate")
    model, card = load_checkpoint(model_dir, device)
    trained_units = card.training.get("units")
    units = _units_of(store, card.bands)
    if trained_units and units and list(trained_units) != units:
        raise LabelError(f"the model was trained on values in units {trained_units} but the store holds "
                         f"{store.units}; import the store with the model's units (e.g. --units)")
    per_patch = patch_counts(model, card, store, rows, batch, device)
    return grouped_scores(meta, rows, per_patch, by, unseen)


def _units_of(store: PatchStore, bands: Sequence[str]) -> list[str] | None:
    """The store's units of ``bands`` (those it has), None when it records none."""
    if not store.units:
        return None
    units = dict(zip(store.bands, store.units, strict=True))
    return [units[b] for b in bands if b in units]


def grouped_scores(meta: pd.DataFrame, rows: np.ndarray, per_patch: np.ndarray, by: Sequence[str] = (),
                   unseen: Sequence[str] = ()) -> pd.DataFrame:
    """Rows ``group, value, patches`` and metrics from per-patch confusion counts ``(len(rows), 4)`` (tn fp fn tp)."""
    meta = meta.assign(unseen=np.where(meta["event"].isin(list(unseen)), "yes", "no"))
    groups = [("mixed", "all", np.ones(len(rows), dtype=bool))]
    for col in by:
        values = _column(meta, col)[rows]
        groups += [(col, v, values == v) for v in sorted(np.unique(values))]
    return pd.DataFrame([{"group": g, "value": v, "patches": int(sel.sum()),
                          **ConfusionMatrix(per_patch[sel].sum(axis=0)).as_dict(json_safe=True)}
                         for g, v, sel in groups])


def _column(meta: pd.DataFrame, name: str) -> np.ndarray:
    """A metadata column as strings; ``a*b`` joins columns ``a`` and ``b`` with `` / ``."""
    parts = name.split("*")
    if missing := [p for p in parts if p not in meta.columns]:
        raise LabelError(f"the patch table has no column {missing[0]!r} to group by; it has {list(meta.columns)}")
    values = meta[parts[0]].astype(str)
    for part in parts[1:]:
        values = values + " / " + meta[part].astype(str)
    return values.to_numpy()


def band_positions(store_bands: Sequence[str], model_bands: Sequence[str], where: str) -> np.ndarray:
    """Positions of a model's bands among a store's, by name; refused when one is missing."""
    if missing := [b for b in model_bands if b not in store_bands]:
        raise LabelError(f"the model takes bands {list(model_bands)} but {where} lacks {missing} "
                         f"(it has {list(store_bands)})")
    return np.array([list(store_bands).index(b) for b in model_bands])


@torch.inference_mode()
def patch_counts(model, card, store: PatchStore, rows: np.ndarray, batch: int = 32, device: str = "cpu") -> np.ndarray:
    """Per-patch confusion counts ``(len(rows), 4)`` (tn fp fn tp) of a loaded model (:func:`load_checkpoint`)."""
    band_positions(store.bands, card.bands, str(store.path))  # refuses a store lacking the model's bands
    normaliser = PatchNormaliser(store, store.meta(), card.bands, Normalisation(card.mean, card.std),
                                 mode=card.normalise)
    reader = PatchReader(store, rows, normaliser, in_memory=False)
    counts = np.zeros((len(rows), 4), dtype=np.int64)
    for start in range(0, len(rows), batch):
        positions = np.arange(start, min(start + batch, len(rows)))
        images, masks = reader.batch(positions)
        probs = torch.sigmoid(final_logits(model(images.to(device))))[:, 0].cpu().numpy()
        for j, pos in enumerate(positions):
            counts[pos] = confusion_counts(probs[j] >= card.threshold, masks[j].numpy())
    return counts
