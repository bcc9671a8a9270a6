"""Landslide4Sense (Ghorbanzadeh et al. 2022): HDF5 patches of Sentinel-2 + ALOS PALSAR slope and DEM.

Layout (the released benchmark)::

    SRC/TrainData/img/image_1.h5    dataset "img",  (128, 128, 14) float, bands last
    SRC/TrainData/mask/mask_1.h5    dataset "mask", (128, 128), 0 = background, 1 = landslide
    SRC/ValidData/...  SRC/TestData/...

``SRC`` may also be one split folder itself (e.g. ``.../TrainData``). The 14 bands are Sentinel-2
B1-B12 (B8A left out, B10 cirrus kept: the paper names bands 10-12 the 1375-2190 nm SWIR range)
then slope and DEM (paper, section III-D: "band 1 to band 12 ... slope and DEM data from ALOS
PALSAR (bands 13 and 14)"), all at 10 m. In the store they are ``B01`` ... ``B12``, ``slope``,
``elevation``. Pixel values are kept as released (no rescaling). Patches are not georeferenced:
``crs`` is empty and the bounds are NaN.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from geoslide.data.importers._common import ImportPlan, binary_mask, meta_rows, split_of
from geoslide.errors import ConfigError, LabelError, PatchStoreError

BANDS = (*(f"B{i:02d}" for i in range(1, 13)), "slope", "elevation")
PATCH_SIZE = 128
SPLIT_FOLDERS = {"TrainData": "train", "ValidData": "val", "TestData": "test"}
_NUMBER = re.compile(r"(\d+)$")


def plan(src: str | Path, *, event: str | None = None) -> ImportPlan:
    """Scan a Landslide4Sense folder into an import plan.

    Parameters
    ----------
    src : str or pathlib.Path
        The folder holding ``TrainData``/``ValidData``/``TestData``, or one of them.
    event : str, optional
        Event name for every patch; default ``"landslide4sense"``.

    Returns
    -------
    ImportPlan
        Every image with its mask, split from its folder.
    """
    import h5py  # noqa: F401  (fail early with a clear message when missing)

    root = Path(src)
    if not root.is_dir():
        raise ConfigError(f"Landslide4Sense folder {root} does not exist; pass the folder holding TrainData/")
    split_dirs = [root] if (root / "img").is_dir() else sorted(p for p in root.iterdir() if (p / "img").is_dir())
    if not split_dirs:
        raise ConfigError(f"no Landslide4Sense split folder (TrainData/img, ValidData/img, ...) under {root}")
    pairs, splits = [], []
    for folder in split_dirs:
        found = _pairs(folder)
        pairs += found
        splits += [SPLIT_FOLDERS.get(folder.name) or split_of(folder.name) or ""] * len(found)
    if not pairs:
        raise ConfigError(f"no image_*.h5 files under {root}/*/img; is this the Landslide4Sense download?")
    for image, _ in pairs:
        _check_shape(image, "img", (PATCH_SIZE, PATCH_SIZE, len(BANDS)))
    meta = meta_rows(len(pairs), event=event or "landslide4sense", sensor="sentinel2", split=splits,
                     item_id=[p[0].relative_to(root).with_suffix("").as_posix() for p in pairs], resolution=10.0)
    return ImportPlan(BANDS, PATCH_SIZE, meta, lambda idx: _read_images(pairs, idx),
                      lambda idx: _read_masks(pairs, idx))


def _pairs(folder: Path) -> list[tuple[Path, Path]]:
    images = sorted(folder.glob("img/*.h5"), key=_sort_key)
    mask_dir = folder / "mask"
    pairs = []
    for image in images:
        mask = mask_dir / (re.sub(r"^image", "mask", image.stem) + ".h5")
        if not mask.is_file():
            raise LabelError(f"{image} has no mask {mask}; add the mask or remove the image")
        pairs.append((image, mask))
    return pairs


def _sort_key(path: Path) -> tuple[int, str]:
    number = _NUMBER.search(path.stem)
    return (int(number.group(1)) if number else -1, path.name)


def _dataset(path: Path, name: str):
    import h5py

    try:
        file = h5py.File(path, "r")
    except OSError as err:
        raise ConfigError(f"{path} is not a readable HDF5 file ({err}); re-download it") from err
    if name not in file:
        file.close()
        raise ConfigError(f"{path} has no dataset {name!r} (has {list(file)}); is it a Landslide4Sense file?")
    return file, file[name]


def _check_shape(path: Path, name: str, shape: tuple[int, ...]) -> None:
    file, data = _dataset(path, name)
    with file:
        if data.shape != shape:
            raise PatchStoreError(f"{path}: {name} has shape {data.shape}, expected {shape} "
                                  f"({len(BANDS)} bands {', '.join(BANDS)} last)")


def _read_images(pairs: list[tuple[Path, Path]], index: Sequence[int]) -> np.ndarray:
    out = np.empty((len(index), len(BANDS), PATCH_SIZE, PATCH_SIZE), dtype=np.float32)
    for k, i in enumerate(index):
        file, data = _dataset(pairs[i][0], "img")
        with file:
            out[k] = np.moveaxis(data[()], -1, 0)
    return out


def _read_masks(pairs: list[tuple[Path, Path]], index: Sequence[int]) -> np.ndarray:
    out = np.empty((len(index), PATCH_SIZE, PATCH_SIZE), dtype=np.uint8)
    for k, i in enumerate(index):
        path = pairs[i][1]
        file, data = _dataset(path, "mask")
        with file:
            values = data[()]
        if values.shape != (PATCH_SIZE, PATCH_SIZE):
            raise PatchStoreError(f"{path}: mask has shape {values.shape}, expected ({PATCH_SIZE}, {PATCH_SIZE})")
        out[k] = binary_mask(values, str(path))
    return out
