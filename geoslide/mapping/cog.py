"""A finished map store as Cloud-Optimized GeoTIFFs, written chunk by chunk."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.crs import CRS as RasterioCRS
from rasterio.windows import Window

from geoslide.errors import OutputError
from geoslide.fileio import Location, location, write_atomic
from geoslide.mapping.store import NODATA, PROBABILITY_SCALE, map_attrs, map_grid, map_status, stored_array
from geoslide.mapping.style import mask_colormap, write_mask_style
from geoslide.raster.grid import GridSpec

OVERVIEW_RESAMPLING = {"probability": "AVERAGE", "mask": "MODE"}


def export_cog(out_zarr: str | Path, variable: str, path: str | Path, blocksize: int = 512) -> Location:
    """Write ``probability`` or ``mask`` of a finished map store as a Cloud-Optimized GeoTIFF.

    The stored uint8 values are copied unchanged (nodata 255; probability carries the scale
    1/250 in its band metadata), chunk by chunk into a tiled GeoTIFF that GDAL's COG driver then
    rewrites with overviews, so the map never sits in memory whole. Both are local files (beside
    ``path``, or in a temporary folder when ``path`` is an ``s3://`` URL); the COG is renamed into
    place or uploaded only when it is complete. The mask carries a colour table (background grey,
    landslides red) and gets a QGIS style beside it (``.qml``, see :mod:`geoslide.mapping.style`).

    Parameters
    ----------
    out_zarr
        The map store.
    variable
        ``probability`` or ``mask``.
    path
        The ``.tif`` to write (replaced if present): a path or an ``s3://`` URL.
    blocksize
        Tile size of the COG in pixels.
    """
    source, grid, path = stored_array(out_zarr, variable), map_grid(out_zarr), location(path, write=True)
    status = map_status(out_zarr)
    if not status.complete:
        raise OutputError(f"{out_zarr} is unfinished ({status.done}/{status.total} chunks); "
                          "rerun `geoslide map` with the same options to complete it first")
    threshold = map_attrs(out_zarr)["threshold"]

    def write(tmp: str) -> None:
        staging = Path(tmp + ".partial.tif")
        try:
            _write_tiled(source, grid, variable, staging, threshold)
            rasterio.shutil.copy(staging, tmp, driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES", BLOCKSIZE=blocksize,
                                 OVERVIEWS="AUTO", OVERVIEW_RESAMPLING=OVERVIEW_RESAMPLING[variable],
                                 BIGTIFF="IF_SAFER")
        finally:
            staging.unlink(missing_ok=True)
        read_back(tmp, path)

    write_atomic(path, write)
    if variable == "mask":
        write_mask_style(path)
    return path


def read_back(tmp: str, path: Location) -> None:
    """Decode every full-resolution block of a raster just written, before it is renamed into place.

    GDAL reports some write failures (a full disk) only as warnings; a file that does not read
    back whole is an OutputError here, and the previous file at ``path`` stays as it was.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)  # the quicklook PNG
            with rasterio.open(tmp) as ds:
                for _, window in ds.block_windows(1):
                    ds.read(window=window)
    except (rasterio.errors.RasterioError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OutputError(f"{path} could not be written whole ({reason}); check the free space and rerun") from None


def _write_tiled(source: Any, grid: GridSpec, variable: str, path: Path, threshold: float) -> None:
    """A tiled GeoTIFF holding the stored values, written one store chunk at a time."""
    height, width = grid.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "uint8",
               "crs": RasterioCRS.from_epsg(grid.epsg), "transform": grid.transform, "nodata": NODATA,
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "bigtiff": "IF_SAFER"}
    with rasterio.open(path, "w", **profile) as dst:
        for window, rows, cols in _chunk_windows(source.shape, source.chunks):
            dst.write(np.asarray(source[rows, cols]), 1, window=window)
        dst.set_band_description(1, variable)
        if variable == "probability":
            dst.scales, dst.offsets = (1.0 / PROBABILITY_SCALE,), (0.0,)
            dst.update_tags(1, units="1", long_name="landslide probability")
        else:
            dst.update_tags(1, flag_values="0 1", flag_meanings="background landslide", threshold=str(threshold))
            dst.write_colormap(1, mask_colormap())


def _chunk_windows(shape: tuple[int, int], chunks: tuple[int, int]) -> Iterator[tuple[Window, slice, slice]]:
    for r0 in range(0, shape[0], chunks[0]):
        for c0 in range(0, shape[1], chunks[1]):
            rows, cols = slice(r0, min(r0 + chunks[0], shape[0])), slice(c0, min(c0 + chunks[1], shape[1]))
            yield Window(c0, r0, cols.stop - c0, rows.stop - r0), rows, cols
