"""What every importer shares: the import plan, mask checks and the batched writer.

An importer scans its source (file names, shapes, headers: no pixel data) into an
:class:`ImportPlan`. :func:`write_plan` then checks every mask (values only, before anything is
written, so a bad label never leaves a half-imported store) and appends the patches in batches
of at most :data:`MAX_BATCH` patches and about :data:`BATCH_BYTES` of imagery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from geoslide.data.store import COLUMNS, PatchStore
from geoslide.errors import LabelError, PatchStoreError
from geoslide.inventory.codes import MASK_NODATA
from geoslide.progress import show_progress

MAX_BATCH = 64
BATCH_BYTES = 256 * 2**20
SPLIT_ALIASES = {"train": "train", "training": "train", "traindata": "train", "val": "val", "valid": "val",
                 "validation": "val", "validdata": "val", "test": "test", "testing": "test", "testdata": "test"}

Reader = Callable[[Sequence[int]], np.ndarray]


@dataclass(frozen=True)
class ImportPlan:
    """The patches an importer found, and how to read them.

    Attributes
    ----------
    bands : tuple of str
        Band names, in image order.
    patch_size : int
        Side of each (square) patch in pixels.
    meta : pandas.DataFrame
        One row per patch with every store column except the two fractions, which the writer fills.
    read_images : callable
        Patch indices -> ``(k, band, size, size)`` float32 array, values as in the source.
    read_masks : callable
        Patch indices -> ``(k, size, size)`` uint8 array of 0/1; raises :class:`LabelError` on other values.
    """

    bands: tuple[str, ...]
    patch_size: int
    meta: pd.DataFrame
    read_images: Reader
    read_masks: Reader


def meta_rows(n: int, **columns) -> pd.DataFrame:
    """A metadata frame of ``n`` rows: given columns (scalars or sequences), defaults for the rest."""
    defaults = {"event": "", "sensor": "", "trigger": "", "item_id": "", "crs": "", "split": "",
                "resolution": np.nan, "xmin": np.nan, "ymin": np.nan, "xmax": np.nan, "ymax": np.nan,
                "row": -1, "col": -1}
    frame = pd.DataFrame({name: np.broadcast_to(np.asarray(columns.get(name, value), dtype=object), (n,))
                          for name, value in defaults.items()})
    return frame.astype({name: COLUMNS[name] if COLUMNS[name] != "str" else object for name in defaults})


def binary_mask(values: np.ndarray, where: str, *, allow_255: bool = False) -> np.ndarray:
    """Check a label array and return it as uint8 0/1.

    Parameters
    ----------
    values : numpy.ndarray
        The label values as read.
    where : str
        The file (or file and index) the values come from, for the error message.
    allow_255 : bool
        Also accept a 0/255 encoding (255 = landslide); a label mixing 1 and 255 is refused.

    Returns
    -------
    numpy.ndarray
        uint8 array of the same shape, 1 = landslide, 0 = background.
    """
    found = np.unique(values[np.isfinite(values)] if values.dtype.kind == "f" else values)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise LabelError(f"{where}: mask has NaN or infinite values; masks must be 0 (background) / 1 (landslide)")
    if np.isin(found, (0, 1)).all():
        return values.astype(np.uint8)
    if allow_255 and np.isin(found, (0, 255)).all():
        return (values == 255).astype(np.uint8)
    expected = "0/1 or 0/255" if allow_255 else "0 (background) / 1 (landslide)"
    raise LabelError(f"{where}: mask values {found[:8].tolist()} are not {expected}; fix or drop this label")


def split_of(name: str) -> str | None:
    """The split a folder or file-name part stands for (``train``, ``val``, ``test``), or None."""
    return SPLIT_ALIASES.get(name.lower())


def write_plan(plan: ImportPlan, out: str | Path, *, progress: bool | None = None) -> PatchStore:
    """Check every mask, then append the planned patches to ``out`` (created if missing).

    Parameters
    ----------
    plan : ImportPlan
        What to import.
    out : str or pathlib.Path
        The patch store; an existing one must have the same bands and patch size.
    progress : bool or None
        Show progress bars; None: when a person watches (:func:`geoslide.progress.watching`).

    Returns
    -------
    PatchStore
        The store, with the new patches committed after the ones it had.
    """
    progress = show_progress(progress)
    existing = PatchStore.open_existing(out)
    if existing is not None:
        _check_fits(existing, plan, out)
    batches = list(_batches(len(plan.meta), _batch_size(plan)))
    for index in tqdm(batches, desc="checking masks", unit="batch", disable=not progress):
        plan.read_masks(index)
    store = existing if existing is not None else PatchStore.create(out, plan.bands, plan.patch_size)
    for index in tqdm(batches, desc="importing patches", unit="batch", disable=not progress):
        masks = plan.read_masks(index)
        meta = plan.meta.iloc[index].reset_index(drop=True)
        valid = (masks != MASK_NODATA).sum(axis=(1, 2))
        meta["landslide_fraction"] = ((masks == 1).sum(axis=(1, 2)) / np.maximum(valid, 1)).astype("float32")
        meta["nodata_fraction"] = (1 - valid / plan.patch_size**2).astype("float32")
        store.append(plan.read_images(index), masks, meta)
    return store


def _check_fits(store: PatchStore, plan: ImportPlan, out: str | Path) -> None:
    if tuple(store.bands) != plan.bands or store.patch_size != plan.patch_size:
        raise PatchStoreError(
            f"{out} holds {store.patch_size}x{store.patch_size} patches of bands {store.bands}, but this import has "
            f"{plan.patch_size}x{plan.patch_size} patches of bands {list(plan.bands)}; import into a new store")


def _batch_size(plan: ImportPlan) -> int:
    patch_bytes = 4 * len(plan.bands) * plan.patch_size**2
    return int(max(1, min(MAX_BATCH, BATCH_BYTES // patch_bytes)))


def _batches(n: int, size: int) -> Iterator[list[int]]:
    for start in range(0, n, size):
        yield list(range(start, min(n, start + size)))
