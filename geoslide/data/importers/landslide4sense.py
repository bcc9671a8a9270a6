"""Landslide4Sense (Ghorbanzadeh et al. 2022): HDF5 patches of Sentinel-2 + ALOS PALSAR slope and DEM.

Two released layouts are read (``SRC`` may also be one split folder of either)::

    official competition release            Hugging Face (ibm-nasa-geospatial/Landslide4sense)
    SRC/TrainData/img/image_1.h5            SRC/images/train/image_1.h5
    SRC/TrainData/mask/mask_1.h5            SRC/annotations/train/mask_1.h5
    SRC/ValidData/img/image_1.h5  (no mask) SRC/images/validation/..., SRC/annotations/validation/...
    SRC/TestData/img/image_1.h5   (no mask) SRC/images/test/...,       SRC/annotations/test/...

Images: dataset ``img``, ``(128, 128, 14)`` float (float64 in the files), bands last. Masks:
dataset ``mask``, ``(128, 128)``, 0 = background, 1 = landslide. The competition published masks
for ``TrainData`` only: a split folder without masks is imported for prediction, its masks all
nodata (255), with a warning. The 14 bands are Sentinel-2 B1-B12 without B8A (B10 cirrus kept),
then ALOS PALSAR slope and DEM (paper, section III-D), all at 10 m; in the store ``B01`` ...
``B12``, ``slope``, ``elevation``.

Units. The release stores each band divided by a per-band mean (:data:`RELEASE_MEANS`, so values
are about 1). ``units="reflectance"`` (the default) multiplies by the mean and divides the
Sentinel-2 bands by 10 000: reflectance 0-1 as ``geoslide patches`` and ``geoslide map`` read
Sentinel-2 items (their ``raster:scale`` applied), slope in degrees and elevation in metres as
geoslide derives them from a DEM. ``units="dn"`` keeps the Sentinel-2 bands as reflectance x 10 000
(items without ``raster:scale``); ``units="release"`` keeps the ratios. The means (1 111.81 for B1)
show the optical bands are top-of-atmosphere (L1C) digital numbers; L2A items lack B10, so a model
meant for them is trained on a store imported with ``bands`` leaving ``B10`` out. Patches are not
georeferenced: ``crs`` is empty and the bounds are NaN.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoslide.data.importers._common import (
    ImportOptions,
    ImportPlan,
    binary_mask,
    meta_rows,
    split_of,
    unlabelled_masks,
    warn,
)
from geoslide.errors import ConfigError, LabelError, PatchStoreError

BANDS = (*(f"B{i:02d}" for i in range(1, 13)), "slope", "elevation")
PATCH_SIZE = 128
#: The per-band means the release divided every band by (B1 ... B12 without B8A, slope, DEM).
RELEASE_MEANS = (1111.81, 824.63, 663.42, 445.17, 645.86, 1547.74, 1960.44, 1941.32, 674.08, 9.05, 1113.98,
                 519.90, 20.29, 772.83)
#: Sentinel-2 digital numbers per unit of reflectance.
DN_PER_REFLECTANCE = 10_000.0
UNITS = {"reflectance": ("reflectance",) * 12 + ("degree", "m"),
         "dn": ("reflectance*10000",) * 12 + ("degree", "m"),
         "release": ("ratio to release mean",) * 14}
SPLIT_FOLDERS = {"TrainData": "train", "ValidData": "val", "TestData": "test"}
LAYOUTS = ("TrainData/img/image_N.h5 (+ TrainData/mask/mask_N.h5), ValidData/img, TestData/img "
           "(competition release) or images/{train,validation,test}/image_N.h5 with "
           "annotations/{train,validation,test}/mask_N.h5 (Hugging Face)")
_NUMBER = re.compile(r"^image_(\d+)$")


@dataclass(frozen=True)
class _Split:
    """One split folder: its images, the folder of their masks (None: released without), its split."""

    images: tuple[Path, ...]
    masks: Path | None
    split: str


def plan(src: Path, options: ImportOptions) -> ImportPlan:
    """Scan a Landslide4Sense folder (either released layout, or one split folder) into an import plan.

    Parameters
    ----------
    src : pathlib.Path
        The download, or one split folder of it.
    options : ImportOptions
        ``event`` (default ``"landslide4sense"``), ``sensor`` (default ``"sentinel2"``), ``units``.

    Returns
    -------
    ImportPlan
        Every image, with its mask where the release has one.
    """
    import h5py  # noqa: F401  (fail early with a clear message when missing)

    if not src.is_dir():
        raise ConfigError(f"Landslide4Sense folder {src} does not exist; pass the folder holding {LAYOUTS}")
    units = options.units or "reflectance"
    if units not in UNITS:
        raise ConfigError(f"--units {units!r} unknown for Landslide4Sense; use {', '.join(UNITS)}")
    splits = _splits(src)
    files = [(image, s) for s in splits for image in s.images]
    if not files:
        raise ConfigError(f"no image_N.h5 files under {src}; Landslide4Sense layouts: {LAYOUTS}")
    pairs = [(image, _mask_of(image, s)) for image, s in files]
    for image, _ in pairs:
        _check_shape(image, "img", (PATCH_SIZE, PATCH_SIZE, len(BANDS)))
    scale = _scale(units)
    meta = meta_rows(len(pairs), event=options.event or "landslide4sense", sensor=options.sensor or "sentinel2",
                     split=[s.split for _, s in files], resolution=10.0,
                     item_id=[_item_id(image) for image, _ in pairs])
    labelled = np.array([mask is not None for _, mask in pairs])
    return ImportPlan(BANDS, PATCH_SIZE, meta, lambda idx: _read_images(pairs, idx, scale),
                      lambda idx: _read_masks(pairs, idx), units=UNITS[units], labelled=labelled)


def _scale(units: str) -> np.ndarray:
    """Factors (float64) from the release's ratios to ``units``, per band."""
    if units == "release":
        return np.ones(len(BANDS))
    factor = np.asarray(RELEASE_MEANS, np.float64)
    if units == "reflectance":
        factor[:12] /= DN_PER_REFLECTANCE
    return factor


def _splits(src: Path) -> list[_Split]:
    """The split folders of either layout at or under ``src``."""
    if (src / "img").is_dir():  # one split folder of the competition release
        return [_official(src)]
    official = [_official(src / name) for name in SPLIT_FOLDERS if (src / name / "img").is_dir()]
    if official:
        _warn_unknown(src, {*SPLIT_FOLDERS, "img", "mask"})
        return official
    if (src / "images").is_dir():
        src = src / "images"
    if src.name == "images":
        order = ("train", "val", "test")
        folders = sorted((d for d in src.iterdir() if d.is_dir()),
                         key=lambda d: (order.index(split_of(d.name)) if split_of(d.name) else 3, d.name))
        _warn_unmatched_folders(folders)
        return [_hugging_face(d) for d in folders if split_of(d.name)]
    if src.parent.name == "images" and split_of(src.name):  # one split folder of the Hugging Face layout
        return [_hugging_face(src)]
    raise ConfigError(f"{src} is not a Landslide4Sense layout; expected {LAYOUTS}")


def _official(folder: Path) -> _Split:
    split = SPLIT_FOLDERS.get(folder.name) or split_of(folder.name) or ""
    if not split:
        warn(f"{folder.name} is not a Landslide4Sense split folder name ({', '.join(SPLIT_FOLDERS)}); its patches "
             "get no split")
    return _with_masks(_images(folder / "img"), folder / "mask", split)


def _hugging_face(folder: Path) -> _Split:
    return _with_masks(_images(folder), folder.parent.parent / "annotations" / folder.name, split_of(folder.name))


def _with_masks(images: tuple[Path, ...], masks: Path, split: str) -> _Split:
    if masks.is_dir():
        return _Split(images, masks, split)
    if images:
        warn(f"{images[0].parent}: no mask folder {masks} (the competition published masks for TrainData only); "
             f"its {len(images)} patches are imported for prediction, masks all nodata (255)")
    return _Split(images, None, split)


def _images(folder: Path) -> tuple[Path, ...]:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in files if p.suffix == ".h5" and _NUMBER.match(p.stem)]
    if other := [p.name for p in files if p not in images]:
        warn(f"{folder}: {len(other)} file(s) not named image_N.h5 are not imported (e.g. {other[0]})")
    return tuple(sorted(images, key=lambda p: int(_NUMBER.match(p.stem).group(1))))


def _warn_unknown(src: Path, known: set[str]) -> None:
    if other := sorted(p.name for p in src.iterdir() if p.is_dir() and p.name not in known):
        warn(f"{src}: folder(s) {other} are not Landslide4Sense split folders and are not imported")


def _warn_unmatched_folders(folders: Sequence[Path]) -> None:
    if other := [d.name for d in folders if not split_of(d.name)]:
        warn(f"{folders[0].parent}: folder(s) {other} are not train/validation/test and are not imported")


def _mask_of(image: Path, split: _Split) -> Path | None:
    if split.masks is None:
        return None
    mask = split.masks / f"mask_{_NUMBER.match(image.stem).group(1)}.h5"
    if not mask.is_file():
        raise LabelError(f"{image} has no mask {mask}; add the mask or remove the image")
    return mask


def _item_id(image: Path) -> str:
    """The image's path in the release (``TrainData/img/image_1``, ``images/train/image_1``), whatever was imported."""
    return "/".join(image.with_suffix("").parts[-3:])


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


def _read_images(pairs: list[tuple[Path, Path | None]], index: Sequence[int], scale: np.ndarray) -> np.ndarray:
    """Images as released times ``scale`` per band, computed in float64 and stored as float32."""
    out = np.empty((len(index), len(BANDS), PATCH_SIZE, PATCH_SIZE), dtype=np.float32)
    for k, i in enumerate(index):
        file, data = _dataset(pairs[i][0], "img")
        with file:
            out[k] = np.moveaxis(np.asarray(data[()], np.float64), -1, 0) * scale[:, None, None]
    return out


def _read_masks(pairs: list[tuple[Path, Path | None]], index: Sequence[int]) -> np.ndarray:
    out = unlabelled_masks(len(index), PATCH_SIZE)
    for k, i in enumerate(index):
        path = pairs[i][1]
        if path is None:
            continue
        file, data = _dataset(path, "mask")
        with file:
            values = data[()]
        if values.shape != (PATCH_SIZE, PATCH_SIZE):
            raise PatchStoreError(f"{path}: mask has shape {values.shape}, expected ({PATCH_SIZE}, {PATCH_SIZE})")
        out[k] = binary_mask(values, str(path))
    return out
