"""STAC items -> a lazy, chunked ``(time, band, y, x)`` xarray cube, through stackstac."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pystac
import rioxarray  # noqa: F401  (registers the .rio accessor)
import stackstac
import xarray as xr
from rasterio.enums import Resampling

from geoslide.errors import BandError, EmptySearchError, GridError
from geoslide.raster.assets import single_band_item
from geoslide.raster.grid import Bounds, GridSpec, intersect_bounds, transform_bounds
from geoslide.raster.items import BandRef, ItemRecord, parse_items


@dataclass(frozen=True)
class CubeSpec:
    """What to load and onto which grid.

    Parameters
    ----------
    bands
        Bands by common name (``red``, ``nir``), band name or asset key; None takes the bands
        every item offers, in the first item's order.
    epsg
        Target CRS; None keeps the items' CRS (they must share one).
    resolution
        Target pixel size in CRS units; None takes the finest native resolution.
    bounds, bounds_latlon
        Target extent in the target CRS, or in WGS84 degrees; None covers all items.
    grid
        An exact target grid instead of ``epsg``, ``resolution`` and bounds, e.g. another cube's
        (:func:`~geoslide.raster.grid.grid_of`): the items are resampled onto its pixels.
    chunksize
        Dask chunk size in pixels along y and x.
    nodata
        Output nodata; None takes the assets' nodata (0 for integers, NaN for floats if unset).
    dtype
        Output dtype; None keeps the assets' common data type.
    resampling
        A rasterio resampling name, used where the target grid differs from the native one.
    rescale
        Apply each band's ``raster:scale``/``raster:offset`` (e.g. uint16 reflectance -> 0..1);
        the cube is then float32 with NaN as nodata.
    """

    bands: tuple[str, ...] | None = None
    epsg: int | None = None
    resolution: float | None = None
    bounds: Bounds | None = None
    bounds_latlon: Bounds | None = None
    grid: GridSpec | None = None
    chunksize: int = 1024
    nodata: float | None = None
    dtype: str | None = None
    resampling: str = "nearest"
    rescale: bool = False

    def __post_init__(self) -> None:
        if self.bounds is not None and self.bounds_latlon is not None:
            raise GridError("give either bounds (target CRS) or bounds_latlon (degrees), not both")
        if self.grid is not None and (self.epsg, self.resolution, self.bounds, self.bounds_latlon) != (None,) * 4:
            raise GridError("give either grid= or epsg/resolution/bounds, not both")
        if self.resampling not in Resampling.__members__:
            raise GridError(f"unknown resampling {self.resampling!r}; use one of {sorted(Resampling.__members__)}")
        if self.chunksize < 16:
            raise GridError(f"chunksize {self.chunksize} is too small; use at least 256 for real work")


def open_cube(items: Iterable[pystac.Item | dict], bands: Sequence[str] | None = None, **options: Any
              ) -> xr.DataArray:
    """Load STAC items lazily as a ``(time, band, y, x)`` DataArray.

    Parameters
    ----------
    items
        pystac Items or item dicts (e.g. from :func:`geoslide.search`).
    bands
        See :class:`CubeSpec`.
    **options
        The other fields of :class:`CubeSpec`.

    Returns
    -------
    xarray.DataArray
        Dask-backed, pixel-centre ``x``/``y`` coordinates, ``band`` labelled by the requested
        names, CRS and nodata written for rioxarray (``.rio.crs``, ``.rio.nodata``).
    """
    spec = CubeSpec(bands=tuple(bands) if bands else None, **options)
    records = parse_items(items)
    if not records:
        raise EmptySearchError("no items to load; search returned nothing (check the query)")
    names = list(spec.bands or common_bands(records))
    stacked = [single_band_item(r, names) for r in records]
    grid = plan_grid(records, names, spec)
    if spec.rescale:
        spec = dataclasses.replace(spec, dtype="float32", nodata=np.nan)
    dtype, nodata = _dtype_and_nodata(records, names, spec)
    cube = stackstac.stack(
        stacked, assets=names, epsg=grid.epsg, resolution=grid.resolution, bounds=grid.bounds,
        snap_bounds=False, xy_coords="center", dtype=dtype, fill_value=np.array(nodata, dtype=dtype)[()],
        rescale=False, chunksize=spec.chunksize, resampling=Resampling[spec.resampling], sortby_date="asc",
    )
    if spec.rescale:
        cube = _rescale(cube, records, names)
    return _finish(cube, grid, nodata)


def common_bands(records: Sequence[ItemRecord]) -> list[str]:
    """Band names (common name where known) offered by every item, in the first item's order."""
    shared = [b for b in records[0].band_names() if all(b.lower() in r.bands for r in records[1:])]
    if not shared:
        raise BandError("the items share no band; pass bands= to choose, or search one collection at a time")
    return shared


def plan_grid(records: Sequence[ItemRecord], names: Sequence[str], spec: CubeSpec) -> GridSpec:
    """The target grid of bands ``names``: CRS, resolution and bounds from the spec, else from the items."""
    if spec.grid is not None:
        return _overlapping(records, names, spec.grid)
    epsgs = sorted({r.require_epsg() for r in records})
    if spec.epsg is None and len(epsgs) > 1:
        raise GridError(f"items are in several CRSs (EPSG:{', EPSG:'.join(map(str, epsgs))}); pass epsg= to pick one")
    epsg = spec.epsg or epsgs[0]
    native = [_native(r, ref) for r in records for ref in dict(zip(names, r.select(names), strict=True)).values()]
    same_crs = [(res, origin, b) for e, res, origin, b in native if e == epsg]
    resolution = spec.resolution or _default_resolution(same_crs, epsg)
    data = _union([transform_bounds(b, e, epsg) for e, b in dict.fromkeys((e, b) for e, _, _, b in native)])
    wanted = spec.bounds or (transform_bounds(spec.bounds_latlon, 4326, epsg) if spec.bounds_latlon else data)
    inside = intersect_bounds(wanted, data)
    if inside is None:
        raise GridError(
            f"requested bounds {tuple(round(v, 6) for v in wanted)} (EPSG:{epsg}) miss the data, which covers "
            f"{tuple(round(v, 3) for v in data)}; widen the bounds or search items that cover the area"
        )
    anchors = [origin for res, origin, _ in same_crs if abs(res - resolution) < 1e-9]
    return GridSpec.around(epsg, wanted, resolution, anchor=anchors[0] if anchors else (0.0, 0.0))


def _overlapping(records: Sequence[ItemRecord], names: Sequence[str], grid: GridSpec) -> GridSpec:
    """``grid``, once it is checked to meet the bands' data."""
    native = [_native(r, ref) for r in records for ref in r.select(names)]
    data = _union([transform_bounds(b, e, grid.epsg) for e, b in dict.fromkeys((e, b) for e, _, _, b in native)])
    if intersect_bounds(grid.bounds, data) is None:
        raise GridError(
            f"items {', '.join(str(r.id) for r in records)} cover {tuple(round(v, 3) for v in data)} "
            f"(EPSG:{grid.epsg}), outside the target grid {tuple(round(v, 3) for v in grid.bounds)}; "
            "search items over the same area"
        )
    return grid


def _native(record: ItemRecord, ref: BandRef) -> tuple[int, float, tuple[float, float], Bounds]:
    """(epsg, resolution, origin, bounds) of a band from its projection fields."""
    if ref.transform is None or ref.shape is None:
        raise GridError(
            f"item {record.id!r} lacks proj:transform/proj:shape; add them (projection extension) "
            "so geoslide can place its pixels"
        )
    a, _, c, _, e, f = ref.transform[:6]
    height, width = ref.shape
    bounds = (c, f + e * height, c + a * width, f)
    return record.require_epsg(), abs(a), (c, f), (min(bounds[0], bounds[2]), min(bounds[1], bounds[3]),
                                                   max(bounds[0], bounds[2]), max(bounds[1], bounds[3]))


def _default_resolution(same_crs: list, epsg: int) -> float:
    if not same_crs:
        raise GridError(f"no item is in EPSG:{epsg}, so there is no native resolution; pass resolution=")
    return min(res for res, _, _ in same_crs)


def _union(bounds: list[Bounds]) -> Bounds:
    arr = np.asarray(bounds, dtype=float)
    return float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max())


def _dtype_and_nodata(records: Sequence[ItemRecord], names: list[str], spec: CubeSpec) -> tuple[str, Any]:
    refs = [ref for r in records for ref in r.select(names)]
    declared = {r.dtype for r in refs if r.dtype}
    dtype = np.dtype(spec.dtype or (np.result_type(*declared) if declared else "float32"))
    found = {r.nodata for r in refs if r.nodata is not None}
    nodata = spec.nodata if spec.nodata is not None else (found.pop() if len(found) == 1 else None)
    if nodata is None:
        nodata = np.nan if dtype.kind == "f" else 0
    if dtype.kind != "f" and (isinstance(nodata, float) and np.isnan(nodata)):
        raise GridError(f"nodata NaN does not fit dtype {dtype}; pass nodata= (e.g. 0) or dtype='float32'")
    return dtype.name, nodata


def _rescale(cube: xr.DataArray, records: Sequence[ItemRecord], names: list[str]) -> xr.DataArray:
    """Physical values: value * scale + offset per band (from the first item declaring them)."""
    refs = records[0].select(names)
    scale = np.array([r.scale if r.scale is not None else 1.0 for r in refs], dtype="float32")
    offset = np.array([r.offset if r.offset is not None else 0.0 for r in refs], dtype="float32")
    for record in records[1:]:
        other = record.select(names)
        if [r.scale for r in other] != [r.scale for r in refs] or [r.offset for r in other] != [r.offset for r in refs]:
            raise GridError(f"items {records[0].id!r} and {record.id!r} scale their bands differently; "
                            "load them in separate cubes")
    factors = xr.DataArray(scale, dims="band", coords={"band": cube.band})
    shifts = xr.DataArray(offset, dims="band", coords={"band": cube.band})
    return (cube * factors + shifts).astype("float32").assign_attrs(cube.attrs)


def _finish(cube: xr.DataArray, grid: GridSpec, nodata: Any) -> xr.DataArray:
    if not (np.allclose(cube.x.values, grid.x_coords()) and np.allclose(cube.y.values, grid.y_coords())):
        raise AssertionError("stackstac built a grid that differs from the planned one")  # internal invariant
    cube = cube.rio.write_crs(grid.epsg).rio.write_nodata(nodata, encoded=False)
    cube.name = "imagery"
    return cube.drop_vars([c for c in ("epsg",) if c in cube.coords])


def mosaic(cube: xr.DataArray) -> xr.DataArray:
    """Several scenes on one grid -> one ``(band, y, x)`` image; the latest valid pixel wins.

    A pixel counts as valid in a scene when all its bands are (not NaN, or not the cube's
    nodata value), so bands of one pixel always come from the same scene. Scenes are taken
    in the order of the ``time`` dimension (:func:`geoslide.raster.cube.open_cube` sorts it ascending).

    Parameters
    ----------
    cube
        ``(time, band, y, x)`` DataArray, e.g. from :func:`geoslide.raster.cube.open_cube`.

    Returns
    -------
    xarray.DataArray
        Lazy ``(band, y, x)`` with the cube's coordinates, CRS and nodata.
    """
    if "time" not in cube.dims:
        return cube.transpose("band", "y", "x")
    nodata = cube.rio.nodata
    if nodata is None:
        nodata = np.nan if cube.dtype.kind == "f" else 0
    invalid = cube.isnull() if np.isnan(nodata) else cube == nodata
    masked = cube.where(~invalid.any("band"), nodata)
    out = stackstac.mosaic(masked, dim="time", nodata=nodata)  # reverse=False: the last scene is on top
    out = out.transpose("band", "y", "x").assign_attrs(cube.attrs)
    out.name = cube.name
    if cube.rio.crs is not None:
        out = out.rio.write_crs(cube.rio.crs)
    return out.rio.write_nodata(nodata, encoded=False)
