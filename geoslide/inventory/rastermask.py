"""Raster masks as labels: a mask file (GeoTIFF, PNG with world file, ...) placed on any grid.

Every command that takes an inventory (``patches --labels``, ``evaluate --labels``, ``stats
--inventory``) also takes a georeferenced raster mask. :func:`labels_on_grid` is the one entry:
polygons are rasterised (:func:`~geoslide.inventory.rasterize.rasterize_inventory`), a raster is
reprojected chunk by chunk with nearest-neighbour resampling (each chunk reads only the source
window it needs) and recoded by :mod:`~geoslide.inventory.maskvalues` to 0 / 1 / 255, where
255 marks pixels the mask does not cover or declares nodata.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dask
import numpy as np
import rasterio
import xarray as xr
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import Resampling, reproject, transform_bounds
from rasterio.windows import Window, from_bounds

from geoslide.errors import LabelError
from geoslide.fileio import exists, gdal_path
from geoslide.inventory.maskvalues import MaskValues, choose_mask_values, parse_mask_values
from geoslide.inventory.rasterize import mask_from_blocks, rasterize_inventory
from geoslide.inventory.vectorize import vectorize
from geoslide.raster.grid import GridSpec

RASTER_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".img", ".vrt", ".bmp", ".gif")
STRIP = 1024  # rows read at a time when collecting a mask's values


def is_raster_mask(source: object) -> bool:
    """Whether ``source`` names a raster file (by its suffix) rather than polygons."""
    return isinstance(source, str | Path) and Path(str(source).split("?")[0]).suffix.lower() in RASTER_SUFFIXES


def labels_on_grid(source, grid: GridSpec, chunks: int | tuple[int, int] = 1024,
                   mask_values: str | MaskValues | None = None) -> xr.DataArray:
    """Lazy uint8 labels (0 background, 1 landslide, 255 nodata) of polygons or a raster mask on ``grid``.

    Parameters
    ----------
    source
        Polygons (a frame, or a GeoParquet/GeoJSON/GPKG path or URL) or a raster mask file.
    grid
        The target grid.
    chunks
        Chunk side(s) of the result.
    mask_values
        What a raster mask's values mean (:func:`~geoslide.inventory.maskvalues.parse_mask_values`);
        None decides from the values found. Ignored for polygons.
    """
    if not is_raster_mask(source):
        return rasterize_inventory(source, grid, chunks=chunks)
    href = gdal_path(_existing(source))
    with _open(href) as ds:
        declared = ds.nodata
    found = raster_values(href)
    found = found[found != declared] if declared is not None else found  # a declared nodata needs no mapping
    values = choose_mask_values(found, parse_mask_values(mask_values), str(source))
    values.apply(found, str(source))  # every value mapped, checked before any chunk is computed
    _check_georeferenced(href, source)
    return mask_from_blocks(grid, chunks, lambda r0, c0, h, w: dask.delayed(_warp_block, pure=True)(
        href, grid, r0, c0, h, w, values))


def raster_polygons(source: str | Path, mask_values: str | MaskValues | None = None):
    """The landslide polygons of a raster mask, on its own grid, as a GeoDataFrame in its CRS."""
    labels = labels_on_grid(source, native_grid(source), mask_values=mask_values)
    return vectorize(labels)


def native_grid(source: str | Path) -> GridSpec:
    """The grid of a georeferenced raster mask (north-up, square pixels, a CRS with an EPSG code)."""
    href = gdal_path(_existing(source))
    _check_georeferenced(href, source)
    with _open(href) as ds:
        epsg = ds.crs.to_epsg()
        t = ds.transform
        if epsg is None or t.b or t.d or not np.isclose(abs(t.a), abs(t.e), rtol=1e-6):
            raise LabelError(f"mask {source} needs an EPSG CRS and square north-up pixels here; warp it first "
                             "(gdalwarp -t_srs EPSG:... -tr RES RES)")
        return GridSpec(epsg, tuple(ds.bounds), abs(t.a))


def raster_values(href: str) -> np.ndarray:
    """The distinct values of band 1 of a raster (its declared nodata too), read a strip of rows at a time."""
    found: set[float] = set()
    with _open(href) as ds:
        for r0 in range(0, ds.height, STRIP):
            strip = ds.read(1, window=Window(0, r0, ds.width, min(STRIP, ds.height - r0)))
            found.update(np.unique(strip).tolist())
    return np.array(sorted(found), dtype=np.float64)


def _existing(source: str | Path) -> str:
    if not exists(source):
        raise LabelError(f"mask {source} does not exist; pass a raster mask or landslide polygons")
    return str(source)


def _open(href: str):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(href)
    except rasterio.errors.RasterioIOError as exc:
        raise LabelError(f"cannot read mask {href}: {str(exc).splitlines()[0]}") from None


def _check_georeferenced(href: str, source: str | Path) -> None:
    with _open(href) as ds:
        if ds.crs is None or ds.transform.is_identity:
            raise LabelError(f"mask {source} has no CRS or geotransform, so it cannot be placed on the imagery; "
                             "georeference it (gdal_translate -a_srs EPSG:... -a_ullr ...) or import tiles with "
                             "`geoslide import tiles`")


def _warp_block(href: str, grid: GridSpec, r0: int, c0: int, h: int, w: int, values: MaskValues) -> np.ndarray:
    """One chunk of the target grid: the source window around it reprojected (nearest) and recoded."""
    transform = grid.transform * grid.transform.translation(c0, r0)
    out = np.full((h, w), np.nan, dtype=np.float32)
    with _open(href) as ds:
        window = _source_window(ds, grid, transform, h, w)
        if window is None:
            return np.full((h, w), 255, dtype=np.uint8)
        src = ds.read(1, window=window).astype(np.float32)
        with warnings.catch_warnings():  # rasterio's in-memory datasets warn before they get their transforms
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            reproject(src, out, src_transform=ds.window_transform(window), src_crs=ds.crs,
                      src_nodata=_declared_nodata(ds.nodata, values),
                      dst_transform=transform, dst_crs=grid.crs.to_wkt(), dst_nodata=np.nan,
                      resampling=Resampling.nearest)
    return values.apply(out, href)


def _declared_nodata(nodata: float | None, values: MaskValues) -> float | None:
    """A mask's declared nodata, unless it is a class value (GDAL tools often declare 0 on 0/1 masks)."""
    return None if nodata is None or nodata in (*values.background, *values.landslide) else nodata


def _source_window(ds, grid: GridSpec, transform, h: int, w: int) -> Window | None:
    """The source pixels around a target chunk, two pixels wider on each side; None if they miss the file."""
    left, top = transform.c, transform.f
    bounds = transform_bounds(grid.crs.to_wkt(), ds.crs, left, top - h * grid.resolution,
                              left + w * grid.resolution, top, densify_pts=21)
    win = from_bounds(*bounds, transform=ds.transform)
    col0, row0 = int(np.floor(win.col_off)) - 2, int(np.floor(win.row_off)) - 2
    col1 = int(np.ceil(win.col_off + win.width)) + 2
    row1 = int(np.ceil(win.row_off + win.height)) + 2
    col0, row0, col1, row1 = max(col0, 0), max(row0, 0), min(col1, ds.width), min(row1, ds.height)
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)
