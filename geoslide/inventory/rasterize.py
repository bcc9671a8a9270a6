"""Landslide inventories (polygons) -> label masks on a cube's grid, rasterised chunk by chunk."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import shapely
import xarray as xr
from dask.delayed import Delayed
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize

from geoslide.inventory.read import prepare_inventory, read_inventory
from geoslide.raster.grid import GridSpec


def rasterize_inventory(source: str | Path | gpd.GeoDataFrame, grid: GridSpec, chunks: int | tuple[int, int] = 1024
                        ) -> xr.DataArray:
    """Lazy uint8 mask (1 = landslide) of an inventory on ``grid``, one rasterio call per chunk.

    Pixels whose centre falls inside a polygon are 1, as ``rasterio.features.rasterize`` does over
    the whole grid; each chunk only sees the polygons whose bounding box meets it.
    """
    geoms = prepare_inventory(read_inventory(source, allow_empty=True), grid)
    boxes = shapely.bounds(geoms)
    shared = dask.delayed((geoms, boxes), pure=True, traverse=False)
    rasterized = dask.delayed(_rasterize_block)
    return mask_from_blocks(grid, chunks, lambda r0, c0, h, w: rasterized(shared, grid, r0, c0, h, w))


def mask_from_blocks(grid: GridSpec, chunks: int | tuple[int, int],
                     block: Callable[[int, int, int, int], Delayed]) -> xr.DataArray:
    """A lazy uint8 ``(y, x)`` mask on ``grid`` (named ``landslide``, with CRS) made chunk by chunk.

    ``block(r0, c0, h, w)`` is the delayed ``(h, w)`` array of the chunk whose top-left pixel is ``(r0, c0)``.
    """
    cy, cx = (chunks, chunks) if isinstance(chunks, int) else chunks
    ny, nx = grid.shape
    rows = []
    for r0 in range(0, ny, cy):
        row = []
        for c0 in range(0, nx, cx):
            h, w = min(cy, ny - r0), min(cx, nx - c0)
            row.append(da.from_delayed(block(r0, c0, h, w), shape=(h, w), dtype=np.uint8))
        rows.append(row)
    return xr.DataArray(da.block(rows), dims=("y", "x"), coords={"y": grid.y_coords(), "x": grid.x_coords()},
                        name="landslide").rio.write_crs(grid.epsg)


def _rasterize_block(shared: tuple[np.ndarray, np.ndarray], grid: GridSpec, r0: int, c0: int, h: int, w: int
                     ) -> np.ndarray:
    geoms, boxes = shared
    transform = grid.transform * grid.transform.translation(c0, r0)
    xmin, ymax = transform.c, transform.f
    xmax, ymin = xmin + w * grid.resolution, ymax - h * grid.resolution
    near = (boxes[:, 0] < xmax) & (boxes[:, 2] > xmin) & (boxes[:, 1] < ymax) & (boxes[:, 3] > ymin)
    if not near.any():
        return np.zeros((h, w), dtype=np.uint8)
    with warnings.catch_warnings():  # rasterio's in-memory dataset warns before it gets the transform
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterize(((g, 1) for g in geoms[near]), out_shape=(h, w), transform=transform, fill=0, dtype="uint8")
