"""HR-GLDD (Meena et al. 2023): numpy arrays of PlanetScope 3 m patches with 0/1 masks.

Layout (the authors' repository: ``np.load('data/arrays/trainX.npy')`` ... ``testY.npy``)::

    SRC/trainX.npy  (n, 128, 128, 4) image patches, bands R, G, B, NIR (channels last)
    SRC/trainY.npy  (n, 128, 128[, 1]) masks, 1 = landslide, 0 = background
    SRC/valX.npy, valY.npy, testX.npy, testY.npy

File names are matched loosely: ``trainX``, ``train_X``, ``X_train``, ``Xtrain`` (any case; ``val``,
``valid`` or ``validation``), optionally behind a prefix (``kodagu_trainX.npy``), which then names
the event. Channels-first arrays ``(n, 4, 128, 128)`` are accepted too. Arrays are memory-mapped,
so only one batch is in memory at a time. Values are kept as released (no rescaling). The
patches are not georeferenced: ``crs`` is empty and the bounds are NaN.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from geoslide.data.importers._common import ImportPlan, binary_mask, meta_rows, split_of
from geoslide.errors import ConfigError, LabelError, PatchStoreError

BANDS = ("red", "green", "blue", "nir")
_SPLIT = r"train|training|val|valid|validation|test|testing"
_NAME = re.compile(rf"^(?:(?P<prefix>.+?)[_-])?"
                   rf"(?:(?P<s1>{_SPLIT})[_-]?(?P<k1>[xy])|(?P<k2>[xy])[_-]?(?P<s2>{_SPLIT}))$", re.IGNORECASE)


@dataclass(frozen=True)
class _Part:
    """One X/Y pair of arrays: images as (n, band, size, size) views, masks as (n, size, size)."""

    x_path: Path
    y_path: Path
    images: np.ndarray
    masks: np.ndarray
    split: str
    prefix: str


def plan(src: str | Path, *, event: str | None = None) -> ImportPlan:
    """Scan an HR-GLDD folder of ``.npy`` arrays into an import plan.

    Parameters
    ----------
    src : str or pathlib.Path
        Folder holding the arrays (searched recursively).
    event : str, optional
        Event for every patch; default the file-name prefix, else ``"hr-gldd"``.

    Returns
    -------
    ImportPlan
        Every patch of every split, in file order (train, val, test).
    """
    root = Path(src)
    if not root.is_dir():
        raise ConfigError(f"HR-GLDD folder {root} does not exist; pass the folder holding trainX.npy/trainY.npy")
    parts = [_load_part(x, y, split, prefix) for (split, prefix), (x, y) in _find_pairs(root).items()]
    sizes = {p.images.shape[-1] for p in parts}
    if len(sizes) > 1:
        raise PatchStoreError(f"HR-GLDD arrays under {root} mix patch sizes {sorted(sizes)}; import them separately")
    offsets = np.cumsum([0] + [len(p.images) for p in parts])
    frames = [meta_rows(len(p.images), event=event or p.prefix or "hr-gldd", sensor="planetscope", split=p.split,
                        item_id=[f"{p.x_path.name}:{i}" for i in range(len(p.images))], resolution=3.0)
              for p in parts]
    meta = pd.concat(frames, ignore_index=True)
    return ImportPlan(BANDS, sizes.pop(), meta, lambda idx: _gather(parts, offsets, idx, True),
                      lambda idx: _gather(parts, offsets, idx, False))


def _find_pairs(root: Path) -> dict[tuple[str, str], tuple[Path, Path]]:
    found: dict[tuple[str, str, str], Path] = {}
    for path in sorted(root.rglob("*.npy")):
        match = _NAME.match(path.stem)
        if match is None:
            continue
        split = split_of(match["s1"] or match["s2"])
        kind = (match["k1"] or match["k2"]).lower()
        key = (split, match["prefix"] or "", kind)
        if key in found:
            raise ConfigError(f"two {kind.upper()} arrays for split {split!r}: {found[key]} and {path}; keep one")
        found[key] = path
    if not found:
        raise ConfigError(f"no HR-GLDD arrays (trainX.npy, trainY.npy, ...) under {root}")
    order = {"train": 0, "val": 1, "test": 2}
    pairs = {}
    for split, prefix, kind in sorted(found, key=lambda k: (k[1], order[k[0]], k[2])):
        if kind == "x":
            y = found.get((split, prefix, "y"))
            if y is None:
                raise LabelError(f"{found[(split, prefix, 'x')]} has no mask array (Y) beside it; add it")
            pairs[(split, prefix)] = (found[(split, prefix, "x")], y)
        elif (split, prefix, "x") not in found:
            raise ConfigError(f"{found[(split, prefix, 'y')]} has no image array (X) beside it; add it")
    return pairs


def _load_part(x_path: Path, y_path: Path, split: str, prefix: str) -> _Part:
    raw = _open(x_path)
    if raw.ndim == 4 and raw.shape[3] == len(BANDS) and raw.shape[1] == raw.shape[2]:
        images = np.moveaxis(raw, -1, 1)  # channels last -> first, a view of the memory map
    elif raw.ndim == 4 and raw.shape[1] == len(BANDS) and raw.shape[2] == raw.shape[3]:
        images = raw
    else:
        raise PatchStoreError(f"{x_path}: array of shape {raw.shape} is not n square patches of "
                              f"{len(BANDS)} bands (R, G, B, NIR), e.g. (n, 128, 128, 4)")
    raw = _open(y_path)
    masks, size = raw, images.shape[-1]
    if raw.ndim == 4 and 1 in (raw.shape[1], raw.shape[3]):
        masks = raw[:, 0] if raw.shape[1] == 1 else raw[..., 0]
    if masks.shape != (len(images), size, size):
        raise PatchStoreError(f"{y_path}: masks of shape {raw.shape} do not match the "
                              f"{len(images)} patches of {size}x{size} in {x_path.name}")
    return _Part(x_path, y_path, images, masks, split, prefix)


def _open(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path} is not a readable .npy array ({err}); re-download it") from err


def _gather(parts: list[_Part], offsets: np.ndarray, index: Sequence[int], images: bool) -> np.ndarray:
    chunks = []
    index = np.asarray(index)
    for p, part in enumerate(parts):
        local = index[(index >= offsets[p]) & (index < offsets[p + 1])] - offsets[p]
        if local.size == 0:
            continue
        if images:
            chunks.append(np.asarray(part.images[local], dtype=np.float32))
        else:
            where = f"{part.y_path} (patches {local.min()}-{local.max()})"
            chunks.append(binary_mask(np.asarray(part.masks[local]), where))
    return np.concatenate(chunks)
