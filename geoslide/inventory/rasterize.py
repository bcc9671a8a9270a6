"""Landslide inventories (polygons) -> label masks on a cube's grid, rasterised chunk by chunk."""

from __future__ import annotations

import warnings
from pathlib import Path

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import shapely
import xarray as xr
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize

from geoslide.errors import GeoslideWarning, LabelError
from geoslide.raster.grid import GridSpec, intersect_bounds


def read_inventory(source: str | Path | gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Read landslide polygons (GeoParquet, GeoJSON, GeoPackage, shapefile, ...) and check them."""
    if isinstance(source, gpd.GeoDataFrame):
        frame = source
    else:
        path = Path(source)
        if not path.exists():
            raise LabelError(f"inventory {path} does not exist; pass a GeoParquet/GeoJSON/GPKG of landslide polygons")
        try:
            parquet = path.suffix.lower() in (".parquet", ".geoparquet")
            frame = gpd.read_parquet(path) if parquet else gpd.read_file(path)
        except Exception as exc:  # pyogrio/pyarrow raise many types for unreadable files
            raise LabelError(f"cannot read inventory {path}: {str(exc).splitlines()[0]}") from None
    if frame.crs is None:
        raise LabelError("the inventory has no CRS; set it (e.g. gdf.set_crs('EPSG:32645') or "
                         "ogr2ogr -a_srs EPSG:32645) so it can be placed on the imagery")
    if len(frame) == 0 or frame.geometry.is_empty.all():
        raise LabelError("the inventory has no polygons; a training set needs at least one landslide")
    return frame


def prepare_inventory(frame: gpd.GeoDataFrame, grid: GridSpec) -> np.ndarray:
    """Polygons in the grid's CRS, invalid ones repaired (with a counted warning), empty ones dropped."""
    geoms = frame.to_crs(grid.epsg).geometry.to_numpy()
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        geoms = geoms.copy()
        geoms[invalid] = [_polygonal(shapely.make_valid(g)) for g in geoms[invalid]]
        warnings.warn(f"repaired {int(invalid.sum())} invalid inventory polygon(s) with shapely.make_valid",
                      GeoslideWarning, stacklevel=2)
    geoms = geoms[~shapely.is_empty(geoms) & ~shapely.is_missing(geoms)]
    if len(geoms) == 0 or intersect_bounds(tuple(shapely.total_bounds(geoms)), grid.bounds) is None:
        have = tuple(round(v, 1) for v in shapely.total_bounds(geoms)) if len(geoms) else "nothing"
        raise LabelError(f"the inventory ({have}, EPSG:{grid.epsg}) lies outside the imagery {grid.bounds}; "
                         "check that labels and imagery are of the same event and area")
    return geoms


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def rasterize_inventory(source: str | Path | gpd.GeoDataFrame, grid: GridSpec, chunks: int | tuple[int, int] = 1024
                        ) -> xr.DataArray:
    """Lazy uint8 mask (1 = landslide) of an inventory on ``grid``, one rasterio call per chunk.

    Pixels whose centre falls inside a polygon are 1, as ``rasterio.features.rasterize`` does over
    the whole grid; each chunk only sees the polygons whose bounding box meets it.
    """
    geoms = prepare_inventory(read_inventory(source), grid)
    boxes = shapely.bounds(geoms)
    shared = dask.delayed((geoms, boxes), pure=True, traverse=False)
    cy, cx = (chunks, chunks) if isinstance(chunks, int) else chunks
    rows = []
    for r0 in range(0, grid.shape[0], cy):
        row = []
        for c0 in range(0, grid.shape[1], cx):
            h, w = min(cy, grid.shape[0] - r0), min(cx, grid.shape[1] - c0)
            block = dask.delayed(_rasterize_block)(shared, grid, r0, c0, h, w)
            row.append(da.from_delayed(block, shape=(h, w), dtype=np.uint8))
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
