"""Derived bands users add to cubes: NDVI, slope from a DEM, pre/post-event difference."""

from __future__ import annotations

import numpy as np
import xarray as xr

from geoslide.errors import BandError

#: Bands computed from others; ``d_<band>`` (post - pre) besides. The names are reserved: a band
#: list holding them gets them computed, never read, in patches and maps alike.
DERIVED = ("ndvi", "slope")
DIFFERENCE_PREFIX = "d_"
#: The band slope is computed from.
ELEVATION = "elevation"


def _band(cube: xr.DataArray, name: str) -> xr.DataArray:
    if name not in cube.band.values:
        raise BandError(f"deriving needs band {name!r}, but the cube has {[str(b) for b in cube.band.values]}; "
                        "add it to --bands")
    return cube.sel(band=name).astype("float32")


def ndvi(cube: xr.DataArray, red: str = "red", nir: str = "nir") -> xr.DataArray:
    """(nir - red) / (nir + red), NaN where the sum is 0 or a band is nodata."""
    r, n = _band(cube, red), _band(cube, nir)
    total = n + r
    return ((n - r) / total.where(total != 0)).assign_coords(band="ndvi")


def slope(cube: xr.DataArray, dem: str = ELEVATION) -> xr.DataArray:
    """Slope in degrees from a DEM band: central differences, the DEM extended by its edge values at the edges."""
    z = _band(cube, dem)
    res = float(abs(cube.x.values[1] - cube.x.values[0]))

    def _slope(block: np.ndarray) -> np.ndarray:
        gy, gx = np.gradient(block, res, axis=(-2, -1))
        return np.degrees(np.arctan(np.hypot(gx, gy))).astype("float32")

    data = z.data.map_overlap(_slope, depth={z.ndim - 2: 1, z.ndim - 1: 1}, boundary="nearest", dtype="float32")
    return z.copy(data=data).assign_coords(band="slope")


def difference(post: xr.DataArray, pre: xr.DataArray) -> xr.DataArray:
    """Band-wise post - pre on the same grid; bands renamed ``d_<band>``."""
    same_grid = np.array_equal(post.x.values, pre.x.values) and np.array_equal(post.y.values, pre.y.values)
    if post.shape != pre.shape or not same_grid:
        raise BandError("pre- and post-event cubes differ in shape or grid; load both with the same bands, "
                        "bounds and epsg")
    after = post.astype("float32")
    return after.copy(data=after.data - pre.astype("float32").data).assign_coords(
        band=[f"{DIFFERENCE_PREFIX}{b}" for b in post.band.values])


def derived_names() -> tuple[str, ...]:
    """The derived bands ``--derived`` offers."""
    return DERIVED


def is_derived(name: str) -> bool:
    """Whether a band of this name is computed (``ndvi``, ``slope``, ``d_<band>``) rather than read."""
    return name in DERIVED or name.startswith(DIFFERENCE_PREFIX)
