"""Derived bands users add to cubes: NDVI, slope from a DEM, pre/post-event difference."""

from __future__ import annotations

import numpy as np
import xarray as xr

from geoslide.errors import BandError


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


def slope(cube: xr.DataArray, dem: str = "elevation") -> xr.DataArray:
    """Slope in degrees from a DEM band (central differences; edges of the cube one-sided)."""
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
        band=[f"d_{b}" for b in post.band.values])


def add_derived(cube: xr.DataArray, names: tuple[str, ...]) -> xr.DataArray:
    """The cube (time, band, y, x) with derived bands (``ndvi``, ``slope``) appended along ``band``."""
    extra = []
    for name in names:
        if name == "ndvi":
            extra.append(ndvi(cube).expand_dims("band", axis=1))
        elif name == "slope":
            extra.append(slope(cube).expand_dims("band", axis=1))
        else:
            raise BandError(f"unknown derived band {name!r}; choose from ndvi, slope (diff needs two cubes)")
    return xr.concat([cube.astype("float32"), *extra], dim="band", coords="minimal", compat="override",
                     join="override") if extra else cube
