"""Reading one window of a mosaic: only the items that meet it, newest first, until it is full.

This is the reader behind ``geoslide map`` and :func:`open_mosaic`: a window (a chunk, with or
without its context) asks its :class:`~geoslide.raster.sources.MosaicPlan` for the items whose
footprint meets it, reads each one's part of the window, and keeps a pixel from the newest item
where all of that item's bands are valid (not nodata), as :func:`geoslide.raster.cube.mosaic` does
with a stacked cube. It stops as soon as every pixel of the window is filled.

An item on the grid's CRS, resolution and pixel alignment is read with a plain windowed read. Any
other item, with nearest resampling, takes for each window pixel the file pixel its centre falls in,
projected exactly by pyproj (what GDAL's warper does with an exact transformer, without its per-call
cost); other resamplings go through a GDAL WarpedVRT onto the window's own pixels with an error
threshold of 1e-9 pixel. A pixel's value therefore does not depend on how the map is cut into chunks. Values are
float32 in physical units (``raster:scale``/``raster:offset`` applied), NaN where no item has data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

import dask.array as da
import numpy as np
import pystac
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from dask.highlevelgraph import HighLevelGraph
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from geoslide.raster.grid import GridSpec, transformer
from geoslide.raster.sources import FileRead, MosaicPlan, Source, plan_mosaic

PixelWindow = tuple[int, int, int, int]  # row, col, height, width on the grid
#: WarpedVRT error threshold in pixels: exact in effect (rasterio 1.4 fails outright on 0).
EXACT = 1e-9


def read_window(grid: GridSpec, sources: Sequence[Source], n_bands: int, window: PixelWindow,
                resampling: str = "nearest") -> np.ndarray:
    """The mosaic of ``sources`` (newest first) over ``window`` of ``grid``: ``(band, h, w)`` float32, NaN nodata."""
    row, col, height, width = window
    out = np.full((n_bands, height, width), np.nan, dtype=np.float32)
    filled = np.zeros((height, width), dtype=bool)
    for source in sources:
        part = _overlap(source, grid, window)
        if part is None:
            continue
        r0, c0, r1, c1 = part
        values = _read_source(source, grid, (row + r0, col + c0, r1 - r0, c1 - c0), n_bands, resampling)
        take = ~np.isnan(values).any(axis=0) & ~filled[r0:r1, c0:c1]
        out[:, r0:r1, c0:c1][:, take] = values[:, take]
        filled[r0:r1, c0:c1] |= take
        if filled.all():
            break
    return out


def window_bounds(grid: GridSpec, window: PixelWindow) -> tuple[float, float, float, float]:
    """``(xmin, ymin, xmax, ymax)`` of a pixel window of ``grid``."""
    row, col, height, width = window
    res, (x0, _, _, y1) = grid.resolution, grid.bounds
    return x0 + col * res, y1 - (row + height) * res, x0 + (col + width) * res, y1 - row * res


def _overlap(source: Source, grid: GridSpec, window: PixelWindow) -> tuple[int, int, int, int] | None:
    """The part ``(r0, c0, r1, c1)`` of ``window`` (window pixels) that the source's footprint covers."""
    row, col, height, width = window
    res, (gx0, _, _, gy1) = grid.resolution, grid.bounds
    xmin, ymin, xmax, ymax = source.bounds
    c0 = max(0, int(np.floor((xmin - gx0) / res)) - col)
    c1 = min(width, int(np.ceil((xmax - gx0) / res)) - col)
    r0 = max(0, int(np.floor((gy1 - ymax) / res)) - row)
    r1 = min(height, int(np.ceil((gy1 - ymin) / res)) - row)
    return (r0, c0, r1, c1) if r1 > r0 and c1 > c0 else None


def _read_source(source: Source, grid: GridSpec, window: PixelWindow, n_bands: int, resampling: str) -> np.ndarray:
    """One item's bands over ``window``: ``(band, h, w)`` float32 in physical units, NaN where it has no data."""
    values = np.full((n_bands, window[2], window[3]), np.nan, dtype=np.float32)
    for read in source.files:
        raw = _read_file(read, grid, window, resampling)
        for k, position in enumerate(read.positions):
            band = np.ma.filled(raw[k].astype(np.float32), np.nan)
            values[position] = band * np.float32(source.scale[position]) + np.float32(source.offset[position])
    return values


def _read_file(read: FileRead, grid: GridSpec, window: PixelWindow, resampling: str) -> np.ma.MaskedArray:
    """The file's bands ``read.indexes`` on ``window``'s pixels, masked where the file has no data."""
    row, col, height, width = window
    with rasterio.open(read.path) as ds:
        offset = _aligned_offset(ds, grid)
        if offset is not None:
            return _read_aligned(ds, read.indexes, (row + offset[0], col + offset[1], height, width))
        if resampling == "nearest" and ds.crs is not None and ds.crs.to_epsg() is not None:
            return _read_nearest(ds, read.indexes, grid, window)
        transform = grid.transform * Affine.translation(col, row)
        alpha = ds.nodata is None
        with WarpedVRT(ds, crs=f"EPSG:{grid.epsg}", transform=transform, width=width, height=height,
                       resampling=Resampling[resampling], add_alpha=alpha, tolerance=EXACT) as vrt:
            if not alpha:
                return vrt.read(list(read.indexes), masked=True)
            data = vrt.read([*read.indexes, vrt.count])
            return np.ma.masked_array(data[:-1], mask=np.broadcast_to(data[-1] == 0, data[:-1].shape))


def _read_nearest(ds: rasterio.io.DatasetReader, indexes: tuple[int, ...], grid: GridSpec, window: PixelWindow
                  ) -> np.ma.MaskedArray:
    """Nearest-neighbour warp in numpy: each window pixel centre, projected exactly, takes the file pixel it falls in.

    What GDAL's warper computes for nearest resampling with an exact transformer, at a fraction of its cost
    for the small windows of a chunk: one vectorised pyproj call, then one read of the file pixels needed.
    """
    row, col, height, width = window
    res, (gx0, _, _, gy1) = grid.resolution, grid.bounds
    xs = gx0 + (col + np.arange(width) + 0.5) * res
    ys = gy1 - (row + np.arange(height) + 0.5) * res
    px, py = transformer(grid.epsg, ds.crs.to_epsg()).transform(*np.meshgrid(xs, ys))
    fc, fr = ~ds.transform * (np.asarray(px), np.asarray(py))
    cols, rows = np.floor(fc + 1e-10).astype(np.int64), np.floor(fr + 1e-10).astype(np.int64)
    inside = (cols >= 0) & (cols < ds.width) & (rows >= 0) & (rows < ds.height)
    out = np.ma.masked_all((len(indexes), height, width), dtype=ds.dtypes[indexes[0] - 1])
    if inside.any():
        r0, r1, c0, c1 = rows[inside].min(), rows[inside].max() + 1, cols[inside].min(), cols[inside].max() + 1
        data = ds.read(list(indexes), window=Window(c0, r0, c1 - c0, r1 - r0), masked=True)
        out[:, inside] = data[:, rows[inside] - r0, cols[inside] - c0]
    return out


def _aligned_offset(ds: rasterio.io.DatasetReader, grid: GridSpec) -> tuple[int, int] | None:
    """``(rows, cols)`` from grid pixels to file pixels when the file lies on the grid's lattice; else None."""
    t, res = ds.transform, grid.resolution
    if ds.crs is None or ds.crs.to_epsg() != grid.epsg or t.b or t.d or abs(t.a - res) > 1e-9 * res \
            or abs(t.e + res) > 1e-9 * res:
        return None
    cols, rows = (grid.bounds[0] - t.c) / res, (t.f - grid.bounds[3]) / res
    if abs(cols - round(cols)) > 1e-6 or abs(rows - round(rows)) > 1e-6:
        return None
    return round(rows), round(cols)


def _read_aligned(ds: rasterio.io.DatasetReader, indexes: tuple[int, ...], window: PixelWindow
                  ) -> np.ma.MaskedArray:
    """A window in file pixels, the part outside the file masked."""
    row, col, height, width = window
    out = np.ma.masked_all((len(indexes), height, width), dtype=ds.dtypes[indexes[0] - 1])
    r0, c0 = max(row, 0), max(col, 0)
    r1, c1 = min(row + height, ds.height), min(col + width, ds.width)
    if r1 > r0 and c1 > c0:
        out[:, r0 - row:r1 - row, c0 - col:c1 - col] = ds.read(list(indexes), window=Window(c0, r0, c1 - c0, r1 - r0),
                                                               masked=True)
    return out


def open_mosaic(items: Iterable[pystac.Item | dict] | MosaicPlan, bands: Sequence[str] | None = None,
                chunksize: int = 1024, **options) -> xr.DataArray:
    """The items' mosaic, latest valid pixel on top, as a lazy ``(band, y, x)`` float32 DataArray.

    One task per chunk, reading only the items that meet it (see the module notes); a chunk no
    item meets is NaN and reads nothing.

    Parameters
    ----------
    items
        pystac Items or item dicts, or a plan from :func:`~geoslide.raster.sources.plan_mosaic`.
    bands, **options
        As for :func:`~geoslide.raster.sources.plan_mosaic` (ignored for a plan).
    chunksize
        Chunk size in pixels along y and x.
    """
    plan = items if isinstance(items, MosaicPlan) else plan_mosaic(items, bands, **options)
    grid, nb = plan.grid, len(plan.bands)
    (ny, nx), name = grid.shape, f"geoslide-mosaic-{uuid.uuid4().hex}"
    ys, xs = _regular(ny, chunksize), _regular(nx, chunksize)
    y0, x0 = np.cumsum((0, *ys)), np.cumsum((0, *xs))
    windows = [(i, j, (int(y0[i]), int(x0[j]), h, w)) for i, h in enumerate(ys) for j, w in enumerate(xs)]
    found = plan.query_many(np.array([window_bounds(grid, win) for _, _, win in windows]))
    graph = {(name, 0, i, j): (read_window, grid, sources, nb, win, plan.resampling)
             for (i, j, win), sources in zip(windows, found, strict=True)}
    data = da.Array(HighLevelGraph.from_collections(name, graph, dependencies=()), name,
                    chunks=((nb,), ys, xs), dtype=np.float32)
    out = xr.DataArray(data, dims=("band", "y", "x"), name="imagery",
                       coords={"band": list(plan.bands), "y": grid.y_coords(), "x": grid.x_coords()})
    return out.rio.write_crs(grid.epsg).rio.write_nodata(np.nan, encoded=False)


def _regular(length: int, chunk: int) -> tuple[int, ...]:
    return tuple([chunk] * (length // chunk) + ([length % chunk] if length % chunk else []))
