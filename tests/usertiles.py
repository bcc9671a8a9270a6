"""Folders of labelled tiles as users have them, written with rasterio/GDAL for the tile tests and the README.

Two kinds, deliberately different:

- ``georef``: GeoTIFF RGB uint8 tiles of 547 x 512 px (not square) in EPSG:32645 at 0.5 m, with
  black nodata corners declared as nodata 0, masks as GeoTIFF 0/255 in ``masks/`` beside
  ``images/``, under ``train/`` and ``test/`` folders of an event folder ``valley``.
- ``plain``: PNG and JPEG 8-bit RGB tiles of 300 x 260 px without georeferencing, masks as PNG
  0/1 with 85 for clouds named ``NAME_mask.png`` beside the image.

Landslides are bright, smooth blobs on a darker textured ground, so a tiny model learns them in a
few steps. Every function returns what it wrote, so tests can compare against the arrays.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin


def scene(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(3, h, w)`` uint8 RGB and a ``(h, w)`` 0/1 landslide mask with a few elliptic scars."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    ground = 60 + 25 * np.sin(xx / 17.0 + seed) * np.cos(yy / 23.0) + rng.normal(0, 8, (height, width))
    mask = np.zeros((height, width), dtype=np.uint8)
    for _ in range(rng.integers(2, 5)):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(12, 40), rng.uniform(8, 25)
        mask[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 1
    rgb = np.stack([ground + 10 * k for k in range(3)])
    rgb = np.where(mask[None] == 1, 190 + rng.normal(0, 6, (3, height, width)), rgb)
    return np.clip(rgb, 1, 255).astype(np.uint8), mask


def write_georef(root: Path, n_per_split: int = 2, size: tuple[int, int] = (512, 547)) -> list[dict]:
    """The ``georef`` kind under ``root/valley/{train,test}/{images,masks}``; returns one record per tile."""
    height, width = size
    records = []
    for s, split in enumerate(("train", "test")):
        for k in range(n_per_split):
            rgb, mask = scene(height, width, seed=100 + 10 * s + k)
            corner = np.add.outer(np.arange(height), np.arange(width)) < 60  # black nodata corner
            rgb[:, corner] = 0
            transform = from_origin(500_000 + 300 * (2 * k + s), 3_000_000, 0.5, 0.5)
            folder = root / "valley" / split
            image, label = folder / "images" / f"tile_{k}.tif", folder / "masks" / f"tile_{k}.tif"
            _write(image, rgb, crs="EPSG:32645", transform=transform, nodata=0)
            _write(label, (mask * 255)[None], crs="EPSG:32645", transform=transform)
            records.append({"image": image, "mask": label, "rgb": rgb, "labels": mask, "nodata": corner,
                            "split": split, "transform": transform})
    return records


def write_plain(root: Path, n: int = 4, size: tuple[int, int] = (260, 300)) -> list[dict]:
    """The ``plain`` kind in ``root/hills``: PNG and JPEG tiles, ``_mask.png`` masks 0/1 with 85 clouds."""
    height, width = size
    records = []
    folder = root / "hills"
    for k in range(n):
        rgb, mask = scene(height, width, seed=200 + k)
        coded = mask.copy()
        coded[:20, :30] = 85  # a cloud: neither landslide nor background
        suffix = ".jpg" if k % 2 else ".png"
        image, label = folder / f"img{k:02d}{suffix}", folder / f"img{k:02d}_mask.png"
        _write(image, rgb, driver="JPEG" if suffix == ".jpg" else "PNG")
        _write(label, coded[None], driver="PNG")
        records.append({"image": image, "mask": label, "rgb": _read(image), "labels": mask, "cloud": coded == 85})
    return records


def _write(path: Path, data: np.ndarray, driver: str = "GTiff", **profile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver=driver, width=data.shape[2], height=data.shape[1], count=data.shape[0],
                           dtype=data.dtype, **profile) as ds:
            ds.write(data)


def _read(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            return ds.read()
