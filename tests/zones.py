"""A small catalog across two UTM zones, and its mosaic computed independently with rasterio and numpy.

Tiles of 40 x 40 px at 10 m (4-band uint16 COGs, nodata 0, ``raster:scale`` 1e-4) overlap their
neighbours by 5 px; the first column lies in UTM 31N, the other two in UTM 32N, straddling the
zone boundary at 6 E. A second, later date covers a few tiles, each with a nodata hole, so the
mosaic must fall back to the older tile there. One lone tile lies 3 km east, leaving chunks with no
data between it and the others.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pystac
import rasterio
from pyproj import Transformer
from rasterio.warp import Resampling, reproject

from geoslide.catalog.build import AssetSpec, BandInfo, raster_item
from geoslide.raster.grid import GridSpec

BANDS = ("blue", "green", "red", "nir")
SIZE, STEP, RES = 40, 35, 10.0
TARGET = 32631
ORIGIN = (6.0, 45.0)  # lon, lat of the zone boundary


def zone_catalog(folder) -> list[pystac.Item]:
    """Write the COGs and return the items (see the module notes)."""
    rng = np.random.default_rng(16)
    to31 = Transformer.from_crs(4326, 32631, always_xy=True)
    x0, y0 = to31.transform(*ORIGIN)
    x0, y0 = round(x0 / RES) * RES - 2 * STEP * RES, round(y0 / RES) * RES
    to32 = Transformer.from_crs(32631, 32632, always_xy=True)
    items = []
    places = [(r, c) for r in range(3) for c in range(3)] + [(1, 12)]
    for k, (r, c) in enumerate(places):
        left, top = x0 + c * STEP * RES, y0 - r * STEP * RES
        epsg = 32631 if c == 0 else 32632
        if epsg == 32632:
            left, top = (round(v / RES) * RES + 3.0 for v in to32.transform(left, top))  # off the 31N lattice
        items.append(_item(folder, f"t{k}-d1", epsg, (left, top), datetime(2024, 5, 1, tzinfo=UTC), rng, hole=False))
        if k in (1, 4, 6):
            items.append(_item(folder, f"t{k}-d2", epsg, (left, top), datetime(2024, 6, 1, tzinfo=UTC), rng,
                               hole=True))
    return items


def _item(folder, name, epsg, corner, when, rng, hole):
    data = rng.integers(200, 4000, size=(4, SIZE, SIZE), dtype=np.uint16)
    if hole:
        data[:, 10:25, 12:30] = 0
    path = folder / f"{name}.tif"
    profile = dict(driver="COG", width=SIZE, height=SIZE, count=4, dtype="uint16", nodata=0,
                   crs=f"EPSG:{epsg}", transform=rasterio.Affine(RES, 0, corner[0], 0, -RES, corner[1]))
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    bands = tuple(BandInfo(b, common_name=b, scale=1e-4) for b in BANDS)
    return raster_item(name, when, [AssetSpec("image", str(path), bands)])


def reference_mosaic(items: list[pystac.Item], grid: GridSpec) -> np.ndarray:
    """Each item warped onto ``grid`` by rasterio (nearest, exact transformer), latest valid pixel on top."""
    out = np.full((4, *grid.shape), np.nan, np.float32)
    for item in sorted(items, key=lambda i: i.datetime):
        values = reference_item(item, grid)
        valid = ~np.isnan(values).any(axis=0)
        out[:, valid] = values[:, valid]
    return out


def reference_item(item: pystac.Item, grid: GridSpec) -> np.ndarray:
    """One item on ``grid``: float32 scaled values, NaN where it has no data."""
    with rasterio.open(item.assets["image"].get_absolute_href()) as ds:
        raw = ds.read().astype(np.float32)
        raw[raw == 0] = np.nan
        dest = np.full((4, *grid.shape), np.nan, np.float32)
        reproject(raw, dest, src_transform=ds.transform, src_crs=ds.crs, src_nodata=np.nan,
                  dst_transform=grid.transform, dst_crs=f"EPSG:{grid.epsg}", dst_nodata=np.nan,
                  resampling=Resampling.nearest, tolerance=1e-9)
    return dest * np.float32(1e-4) + np.float32(0.0)
