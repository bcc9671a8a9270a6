"""What every importer shares: options, the import plan, mask checks and the batched writer.

An importer scans its source (file names, shapes, headers: no pixel data) into an
:class:`ImportPlan`. :func:`write_plan` then checks every mask (values only, before anything is
written, so a bad label never leaves a half-imported store) and appends the patches in batches
of at most :data:`MAX_BATCH` patches and about :data:`BATCH_BYTES` of imagery.

Patches of a split released without labels (Landslide4Sense ``ValidData``/``TestData``) are
imported for prediction: their masks are all nodata (255), so ``nodata_fraction`` is 1, which is
the flag that they have no label; training and scoring skip them
(:func:`geoslide.data.splits.split_rows`). Anything an importer passes over is reported with a
:class:`~geoslide.errors.GeoslideWarning`, never skipped silently. Each batch goes in under a key
naming the plan and the batch, so a rerun after an interruption appends only the batches that
are missing.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from geoslide.data.store import COLUMNS, PatchStore
from geoslide.errors import GeoslideWarning, LabelError, PatchStoreError
from geoslide.fileio import output_lock
from geoslide.inventory.codes import MASK_NODATA
from geoslide.progress import show_progress

MAX_BATCH = 64
BATCH_BYTES = 256 * 2**20
SPLIT_ALIASES = {"train": "train", "training": "train", "traindata": "train", "val": "val", "valid": "val",
                 "validation": "val", "validdata": "val", "test": "test", "testing": "test", "testdata": "test"}

Reader = Callable[[Sequence[int]], np.ndarray]


@dataclass(frozen=True)
class ImportOptions:
    """What a user may tell an importer beyond the source folder (``geoslide import`` options).

    Attributes
    ----------
    event, sensor : str, optional
        Event and sensor for every patch, over what the files say.
    split : str
        ``release`` keeps the release's own split (folder or file names); a split rule of
        :func:`geoslide.data.splits.split_names` (``blocks``, ``random``, ``events``, ``none``)
        re-splits the labelled patches.
    seed : int
        Seed of a random split.
    test_events : tuple of str
        Events held out by ``split="events"``.
    bands : tuple of str, optional
        Keep only these bands, in this order (e.g. Landslide4Sense without ``B10`` for L2A imagery).
    units : str, optional
        Units of the stored values, where the importer can convert (Landslide4Sense:
        ``reflectance``, ``dn``, ``release``); None takes the importer's default.
    channels : tuple of str, optional
        HR-GLDD: the band each channel of the arrays holds (default red, green, blue, nir).
    sites : str, optional
        HR-GLDD: CSV table ``split,first,last,site`` naming the site of patch index ranges.
    label_codes : tuple of (int, int), optional
        GDCLD: label value -> class (0 background, 1 landslide, 255 nodata), over the defaults.
    patch_size : int, optional
        GDCLD: side of the patches whole scenes are cut into (default 1024, the paper's).
    to_8bit : bool
        GDCLD: stretch images that are not 8-bit to 0-255, as the paper converted every source.
    """

    event: str | None = None
    sensor: str | None = None
    split: str = "release"
    seed: int = 0
    test_events: tuple[str, ...] = ()
    bands: tuple[str, ...] | None = None
    units: str | None = None
    channels: tuple[str, ...] | None = None
    sites: str | None = None
    label_codes: tuple[tuple[int, int], ...] | None = None
    patch_size: int | None = None
    to_8bit: bool = False


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
        Patch indices -> ``(k, size, size)`` uint8 array of 0/1 (255 nodata); raises :class:`LabelError`
        on other values.
    units : tuple of str, optional
        The unit of each band's values (recorded in the store), None if unknown.
    labelled : numpy.ndarray, optional
        Per patch, whether the release labels it (None: all are).
    after_check : callable, optional
        Called once after every mask was read by the check pass (e.g. to warn about label codes).
    """

    bands: tuple[str, ...]
    patch_size: int
    meta: pd.DataFrame
    read_images: Reader
    read_masks: Reader
    units: tuple[str, ...] | None = None
    labelled: np.ndarray | None = None
    after_check: Callable[[], None] = field(default=lambda: None)

    def is_labelled(self) -> np.ndarray:
        """Per patch, whether it has a label (a boolean array)."""
        return np.ones(len(self.meta), bool) if self.labelled is None else np.asarray(self.labelled, bool)

    def with_bands(self, keep: Sequence[str]) -> ImportPlan:
        """The plan reading only the bands ``keep``, in that order."""
        if unknown := [b for b in keep if b not in self.bands]:
            raise PatchStoreError(f"band(s) {unknown} are not in this dataset; its bands are {list(self.bands)}")
        if len(set(keep)) != len(keep) or not keep:
            raise PatchStoreError(f"--bands {list(keep)} must name each band once; choose from {list(self.bands)}")
        index = [self.bands.index(b) for b in keep]
        units = None if self.units is None else tuple(self.units[i] for i in index)
        return replace(self, bands=tuple(keep), units=units,
                       read_images=lambda idx, read=self.read_images: read(idx)[:, index])


def warn(message: str) -> None:
    """Report something an importer passed over or guessed (never a silent skip)."""
    warnings.warn(message, GeoslideWarning, stacklevel=3)


def unlabelled_masks(n: int, size: int) -> np.ndarray:
    """Masks of ``n`` patches released without labels: all nodata."""
    return np.full((n, size, size), MASK_NODATA, np.uint8)


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
    existing = PatchStore.open_resumable(out)
    if existing is not None:
        _check_fits(existing, plan, out)
    batches = list(_batches(len(plan.meta), _batch_size(plan)))
    for index in tqdm(batches, desc="checking masks", unit="batch", disable=not progress):
        plan.read_masks(index)
    plan.after_check()
    digest = plan_digest(plan)
    with output_lock(out):
        store = PatchStore.open_or_create(out, plan.bands, plan.patch_size, plan.units)
        for index in tqdm(batches, desc="importing patches", unit="batch", disable=not progress):
            key = f"import:{digest}:{index[0]}"
            if not store.has_source(key, digest):
                store.append(plan.read_images(index), *_masks_and_meta(plan, index), source=key, digest=digest)
    return store


def _masks_and_meta(plan: ImportPlan, index: list[int]) -> tuple[np.ndarray, pd.DataFrame]:
    masks = plan.read_masks(index)
    meta = plan.meta.iloc[index].reset_index(drop=True)
    valid = (masks != MASK_NODATA).sum(axis=(1, 2))
    meta["landslide_fraction"] = ((masks == 1).sum(axis=(1, 2)) / np.maximum(valid, 1)).astype("float32")
    meta["nodata_fraction"] = (1 - valid / plan.patch_size**2).astype("float32")
    return masks, meta


def plan_digest(plan: ImportPlan) -> str:
    """A digest of what an import plan reads (bands, patch size, one row per patch), naming its batches."""
    rows = pd.util.hash_pandas_object(plan.meta, index=False).to_numpy()
    head = f"{list(plan.bands)}:{plan.patch_size}:{_batch_size(plan)}".encode()
    return hashlib.sha256(head + rows.tobytes()).hexdigest()[:16]


def _check_fits(store: PatchStore, plan: ImportPlan, out: str | Path) -> None:
    if tuple(store.bands) != plan.bands or store.patch_size != plan.patch_size:
        raise PatchStoreError(
            f"{out} holds {store.patch_size}x{store.patch_size} patches of bands {store.bands}, but this import has "
            f"{plan.patch_size}x{plan.patch_size} patches of bands {list(plan.bands)}; import into a new store")
    if store.units is not None and plan.units is not None and tuple(store.units) != plan.units:
        raise PatchStoreError(f"{out} holds values in units {store.units}, but this import has {list(plan.units)}; "
                              "one normalisation cannot serve both: import with the store's units or into a new store")


def _batch_size(plan: ImportPlan) -> int:
    patch_bytes = 4 * len(plan.bands) * plan.patch_size**2
    return int(max(1, min(MAX_BATCH, BATCH_BYTES // patch_bytes)))


def _batches(n: int, size: int) -> Iterator[list[int]]:
    for start in range(0, n, size):
        yield list(range(start, min(n, start + size)))
