"""How the GeoTIFFs beside this file were made from the files their sources released.

Run once, with SRC holding the originals laid out as DATA-LICENCE.md names them::

    python pipelines/data/s2-backgrounds/prepare.py SRC pipelines/data/s2-backgrounds

Each output holds six bands in this order: blue, green, red, nir, swir16, swir22 (Sentinel-2
B02, B03, B04, B08, B11, B12; Landsat 8 B2-B7), uint16, 0 = nodata, tiled and compressed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.merge import merge
from rasterio.windows import Window

PROFILE = {"driver": "GTiff", "dtype": "uint16", "nodata": 0, "tiled": True, "blockxsize": 256,
           "blockysize": 256, "compress": "deflate", "predictor": 2}


def _write(path: Path, data: np.ndarray, crs, transform) -> None:
    with rasterio.open(path, "w", count=data.shape[0], height=data.shape[1], width=data.shape[2], crs=crs,
                       transform=transform, **PROFILE) as ds:
        ds.write(data.astype("uint16"))


def aberystwyth(src: Path, out: Path) -> None:
    """16 tiles mosaicked; bands 1, 2, 3, 7, 9, 10 (B02 B03 B04 B08 B11 B12), reflectance x 1000; the sea cut off."""
    tiles = [rasterio.open(src / f"sen2_20210527_aber_tile{i}.tif") for i in range(16)]
    mosaic, transform = merge(tiles, indexes=[1, 2, 3, 7, 9, 10], nodata=0)
    rows, cols = slice(90, 858), slice(162, 930)  # 768 x 768, east of the coast
    transform = transform * rasterio.Affine.translation(cols.start, rows.start)
    _write(out / "s2-aberystwyth.tif", mosaic[:, rows, cols], tiles[0].crs, transform)


def virginia(src: Path, out: Path) -> None:
    """10 m bands as released, 20 m SWIR bilinear to 10 m; L1C reflectance x 10000; the farmland in the west."""
    window = Window(0, 100, 800, 800)
    bands, crs, transform = [], None, None
    for name in ("B02", "B03", "B04", "B08"):
        with rasterio.open(src / f"s2_{name}.jp2") as ds:  # GeoTIFFs despite the suffix
            bands.append(ds.read(1, window=window))
            crs, transform = ds.crs, ds.window_transform(window)
    for name in ("B11", "B12"):
        with rasterio.open(src / f"s2_{name}.jp2") as ds:
            half = Window(window.col_off / 2, window.row_off / 2, window.width / 2, window.height / 2)
            bands.append(ds.read(1, window=half, out_shape=(800, 800), resampling=Resampling.bilinear))
    _write(out / "s2-virginia.tif", np.stack(bands), crs, transform)


def landsat8(files: list[Path], out: Path) -> None:
    """Landsat 8 Level-1 DN of B2-B7 to top-of-atmosphere reflectance x 10000 (2e-5 DN - 0.1, as the MTL says)."""
    bands = []
    for file in files:
        with rasterio.open(file) as ds:
            dn = ds.read(1).astype("float64")
            crs, transform = ds.crs, ds.transform
        bands.append(np.clip((2e-5 * dn - 0.1) * 10000, 1, 65535).round())
    _write(out, np.stack(bands), crs, transform)


def slovenia(src: Path, out: Path) -> None:
    """eo-learn's five dates (float TOA reflectance, 13 bands) as x 10000; grid from the TestEOPatch footprint."""
    scenes = np.load(src / "REFERENCE_SCENES.npy")  # (date, row, col, band): B01 ... B8A B09 B10 B11 B12
    transform = rasterio.Affine(10.0, 0.0, 465181.0522318204, 0.0, -10.0, 5080254.63349641)
    for date, scene in enumerate(scenes):
        data = np.clip(scene[..., [1, 2, 3, 7, 11, 12]].transpose(2, 0, 1) * 10000, 1, 65535).round()
        _write(out / f"s2-slovenia-{date}.tif", data, "EPSG:32633", transform)


if __name__ == "__main__":
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    aberystwyth(source / "s2-aberystwyth-10m", target)
    virginia(source / "s2-virginia-eastern-shore-10m", target)
    elkton = source / "landsat8-elkton-va-30m"
    landsat8([elkton / f"L8-B{b}-Elkton-VA.tiff" for b in range(2, 8)], target / "landsat8-elkton.tif")
    florida = source / "landsat8-florida-cloudy-30m"
    landsat8([florida / f"l8_B{b}.tif" for b in range(2, 8)], target / "landsat8-florida-clouds.tif")
    slovenia(source / "s2-eolearn-slovenia-100px", target)
