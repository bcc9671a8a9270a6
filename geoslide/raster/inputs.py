"""The bands of a patch store or a model, from STAC items onto one grid: read, derived, post - pre.

A band list (a patch store's ``bands``, a model card's) names three kinds of band, told apart by
their names (:func:`geoslide.raster.derived.is_derived`):

- ``ndvi`` and ``slope`` (:mod:`geoslide.raster.derived`): ndvi from the list's red and nir bands,
  slope from an elevation band;
- ``d_<band>``: ``<band>`` of the imagery minus that of the pre-event items, mosaicked onto the
  imagery's grid (nearest pixel);
- any other name is read from the imagery (common name, band name or asset key).

Elevation, as slope's input or as a listed band, comes from the DEM items when they are given,
resampled bilinearly onto the imagery's grid (any collection, CRS or resolution); otherwise the
imagery's own ``elevation`` band is read (the demo's Sentinel-2 items carry one). ``geoslide
patches`` and ``geoslide map`` both build their bands with :func:`load_inputs`, so a model is fed
at map time the values it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import pystac
import xarray as xr

from geoslide.errors import BandError
from geoslide.raster.cube import mosaic, open_cube
from geoslide.raster.derived import DIFFERENCE_PREFIX, ELEVATION, difference, is_derived, ndvi, slope
from geoslide.raster.grid import GridSpec, grid_of
from geoslide.raster.items import parse_items

#: How a DEM is resampled onto the imagery's grid.
DEM_RESAMPLING = "bilinear"
Items = Sequence[pystac.Item | dict]


@dataclass(frozen=True)
class InputPlan:
    """What a band list needs from the items.

    Parameters
    ----------
    names
        The band list, in order.
    read
        Bands read from the imagery: the listed ones, then the bases of ``d_`` bands not listed.
    differences
        The bases of the ``d_<band>`` bands, which need pre-event items.
    elevation
        Whether elevation is loaded on its own (DEM items, else the imagery's ``elevation`` band, not
        masked by the imagery's nodata): for slope, or as a listed band taken from DEM items.
    """

    names: tuple[str, ...]
    read: tuple[str, ...]
    differences: tuple[str, ...]
    elevation: bool


def plan_inputs(names: Sequence[str], dem: bool = False) -> InputPlan:
    """The plan of a band list; ``dem``: DEM items are given (they then supply a listed ``elevation``)."""
    names = tuple(str(n) for n in names)
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise BandError(f"bands {twice} are listed twice; name each band once (a derived band is computed, so "
                        "drop it from --bands when it is in --derived)")
    bases = tuple(n.removeprefix(DIFFERENCE_PREFIX) for n in names if n.startswith(DIFFERENCE_PREFIX))
    if derived_bases := [b for b in bases if is_derived(b)]:
        raise BandError(f"differences of derived bands ({', '.join(derived_bases)}) are not supported")
    listed = [n for n in names if not is_derived(n) and not (dem and n == ELEVATION)]
    read = tuple(dict.fromkeys([*listed, *bases]))
    if not read:
        raise BandError(f"bands {list(names)} hold no band read from the imagery; add one (e.g. red)")
    return InputPlan(names, read, bases, "slope" in names or (dem and ELEVATION in names))


def missing_inputs(names: Sequence[str], items: Items, pre: bool, dem: bool) -> str | None:
    """What ``names`` need that is not given, with the option that gives it; None when nothing is missing."""
    plan = plan_inputs(names, dem)
    if plan.differences and not pre:
        return f"{', '.join(DIFFERENCE_PREFIX + b for b in plan.differences)} (post - pre): give --pre-stac-query"
    if "slope" in names and not dem and not all(ELEVATION in r.bands for r in parse_items(items)):
        return ("slope, but the items offer no elevation band: give --dem-stac-query (items with an elevation "
                "band, e.g. the demo's sentinel2)")
    return None


def load_inputs(items: Items, names: Sequence[str], pre_items: Items | None = None, dem_items: Items | None = None,
                **options: Any) -> xr.DataArray:
    """The bands ``names`` of the items' mosaic (latest valid pixel on top), float32 in physical units.

    Parameters
    ----------
    items
        The imagery; its mosaic sets the grid.
    names
        The band list (see the module notes).
    pre_items, dem_items
        Pre-event imagery for ``d_`` bands; items with an ``elevation`` band for slope and elevation.
    **options
        :class:`~geoslide.raster.cube.CubeSpec` fields for the imagery (``epsg``, ``resolution``,
        ``bounds``, ``chunksize``, ...); bands are always rescaled.

    Returns
    -------
    xarray.DataArray
        Lazy ``(band, y, x)`` with ``band`` labelled ``names``, CRS written, NaN as nodata.
    """
    if missing := missing_inputs(names, items, bool(pre_items), bool(dem_items)):
        raise BandError(f"bands {list(names)} need {missing}")
    plan = plan_inputs(names, bool(dem_items))
    image = mosaic(open_cube(items, list(plan.read), rescale=True, **options))
    grid, chunks = grid_of(image), options.get("chunksize", 1024)
    bands = {str(b): image.sel(band=b) for b in plan.read}
    dem = elevation_on(dem_items or items, grid, chunks) if plan.elevation else None
    if dem_items and ELEVATION in plan.names:
        bands[ELEVATION] = dem
    if "ndvi" in plan.names:
        bands["ndvi"] = ndvi(image)
    if "slope" in plan.names:
        bands["slope"] = slope(dem.expand_dims(band=[ELEVATION]))
    if plan.differences:
        pre = mosaic(open_cube(pre_items, list(plan.differences), rescale=True, grid=grid, chunksize=chunks))
        diff = difference(image.sel(band=list(plan.differences)), pre)
        bands.update({str(b): diff.sel(band=b) for b in diff.band.values})
    return _stacked([bands[n] for n in plan.names], plan.names, image)


def elevation_on(items: Items, grid: GridSpec, chunksize: int = 1024) -> xr.DataArray:
    """The items' ``elevation`` band mosaicked onto ``grid``, resampled bilinearly: ``(y, x)`` in metres."""
    cube = open_cube(items, [ELEVATION], rescale=True, grid=grid, chunksize=chunksize, resampling=DEM_RESAMPLING)
    return mosaic(cube).sel(band=ELEVATION)


def _stacked(parts: list[xr.DataArray], names: tuple[str, ...], like: xr.DataArray) -> xr.DataArray:
    """``(y, x)`` arrays on the grid of ``like`` as one ``(band, y, x)`` float32 image labelled ``names``."""
    data = da.stack([p.transpose("y", "x").data.astype("float32") for p in parts])
    out = xr.DataArray(data, dims=("band", "y", "x"), name=like.name, attrs=like.attrs,
                       coords={"band": list(names), "y": like["y"].values, "x": like["x"].values})
    return out.rio.write_crs(like.rio.crs).rio.write_nodata(np.nan, encoded=False)
