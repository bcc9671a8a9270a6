"""Landslide inventories from files: read, checked, and placed on a grid with invalid polygons repaired."""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from geoslide.errors import GeoslideWarning, LabelError
from geoslide.fileio import exists, fetched
from geoslide.inventory.geometry import repair_invalid
from geoslide.raster.grid import GridSpec, intersect_bounds


def read_inventory(source: str | Path | gpd.GeoDataFrame, allow_empty: bool = False) -> gpd.GeoDataFrame:
    """Read landslide polygons (GeoParquet, GeoJSON, GeoPackage, shapefile, ...) and check them.

    ``source`` is a frame, a path, or a URL (``s3://``, ``http(s)://``) of a single-file format.
    ``allow_empty``: an inventory without polygons is accepted (a scene mapped as landslide-free,
    to count false alarms); a training set needs at least one landslide.
    """
    frame = source if isinstance(source, gpd.GeoDataFrame) else _read_file(source)
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry.name not in frame:
        raise LabelError(f"inventory {source} has no geometry column; pass a GeoParquet/GeoJSON/GPKG of landslide "
                         "polygons")
    if frame.crs is None:
        raise LabelError("the inventory has no CRS; set it (e.g. gdf.set_crs('EPSG:32645') or "
                         "ogr2ogr -a_srs EPSG:32645) so it can be placed on the imagery")
    if not allow_empty and not has_polygons(frame):
        raise LabelError("the inventory has no polygons; a training set needs at least one landslide")
    return frame


def has_polygons(frame: gpd.GeoDataFrame) -> bool:
    """Whether the inventory holds any polygon (a landslide-free scene's holds none)."""
    return len(frame) > 0 and not frame.geometry.is_empty.all()


def _read_file(source: str | Path) -> gpd.GeoDataFrame:
    if not exists(source):
        raise LabelError(f"inventory {source} does not exist; pass a GeoParquet/GeoJSON/GPKG of landslide polygons")
    with fetched(source) as path:
        try:
            parquet = path.suffix.lower() in (".parquet", ".geoparquet")
            return gpd.read_parquet(path) if parquet else gpd.read_file(path)
        except Exception as exc:  # pyogrio/pyarrow raise many types for unreadable files
            raise LabelError(f"cannot read inventory {source}: {str(exc).splitlines()[0]}") from None


def prepare_inventory(frame: gpd.GeoDataFrame, grid: GridSpec) -> np.ndarray:
    """Polygons in the grid's CRS, invalid ones repaired (with a counted warning), empty ones dropped.

    An inventory with polygons none of which meets the grid is refused (labels of another area);
    one without any polygon gives none.
    """
    if not has_polygons(frame):
        return np.empty(0, dtype=object)
    geoms = frame.to_crs(grid.epsg).geometry.to_numpy()
    with np.errstate(invalid="ignore"):  # polygons far outside the CRS's area project to inf: drop them
        geoms = geoms[np.isfinite(shapely.bounds(geoms)).all(axis=1)]
    geoms, repaired = repair_invalid(geoms)
    if repaired:
        warnings.warn(f"repaired {repaired} invalid inventory polygon(s) with shapely.make_valid",
                      GeoslideWarning, stacklevel=2)
    geoms = geoms[~shapely.is_empty(geoms) & ~shapely.is_missing(geoms)]
    if len(geoms) == 0 or intersect_bounds(tuple(shapely.total_bounds(geoms)), grid.bounds) is None:
        have = tuple(round(v, 1) for v in shapely.total_bounds(geoms)) if len(geoms) else "nothing"
        raise LabelError(f"the inventory ({have}, EPSG:{grid.epsg}) lies outside the imagery {grid.bounds}; "
                         "check that labels and imagery are of the same event and area")
    return geoms
