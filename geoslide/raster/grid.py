"""A validated, frozen raster grid: CRS, bounds, resolution and what follows from them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from pyproj import CRS, Transformer

from geoslide.errors import GridError

Bounds = tuple[float, float, float, float]


@dataclass(frozen=True)
class GridSpec:
    """A north-up raster grid with square pixels.

    Parameters
    ----------
    epsg
        EPSG code of the grid's CRS.
    bounds
        ``(xmin, ymin, xmax, ymax)`` of the outer pixel edges, in CRS units.
    resolution
        Pixel size in CRS units. The bounds must span a whole number of pixels.
    """

    epsg: int
    bounds: Bounds
    resolution: float

    def __post_init__(self) -> None:
        xmin, ymin, xmax, ymax = self.bounds
        if not (xmax > xmin and ymax > ymin):
            raise GridError(f"grid bounds {self.bounds} are empty; give (xmin, ymin, xmax, ymax) with max > min")
        if not self.resolution > 0:
            raise GridError(f"grid resolution must be positive, got {self.resolution}")
        for span in (xmax - xmin, ymax - ymin):
            n = span / self.resolution
            if abs(n - round(n)) > 1e-6:
                raise GridError(
                    f"grid bounds {self.bounds} do not span a whole number of {self.resolution} pixels; "
                    "use GridSpec.around() to snap them outward"
                )

    @classmethod
    def around(cls, epsg: int, bounds: Bounds, resolution: float, anchor: tuple[float, float] = (0.0, 0.0)
               ) -> GridSpec:
        """Smallest grid of ``resolution`` aligned on ``anchor`` that covers ``bounds``."""
        ax, ay = anchor
        xmin = ax + math.floor((bounds[0] - ax) / resolution + 1e-9) * resolution
        ymin = ay + math.floor((bounds[1] - ay) / resolution + 1e-9) * resolution
        xmax = ax + math.ceil((bounds[2] - ax) / resolution - 1e-9) * resolution
        ymax = ay + math.ceil((bounds[3] - ay) / resolution - 1e-9) * resolution
        return cls(epsg, (xmin, ymin, xmax, ymax), resolution)

    @property
    def crs(self) -> CRS:
        """The grid's CRS as a pyproj object."""
        return CRS.from_epsg(self.epsg)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        xmin, ymin, xmax, ymax = self.bounds
        return round((ymax - ymin) / self.resolution), round((xmax - xmin) / self.resolution)

    @property
    def transform(self) -> Affine:
        """Affine transform from pixel (col, row) to the top-left corner in CRS units."""
        return Affine(self.resolution, 0.0, self.bounds[0], 0.0, -self.resolution, self.bounds[3])

    def x_coords(self) -> np.ndarray:
        """Pixel-centre x coordinates, west to east."""
        return self.bounds[0] + (np.arange(self.shape[1]) + 0.5) * self.resolution

    def y_coords(self) -> np.ndarray:
        """Pixel-centre y coordinates, north to south."""
        return self.bounds[3] - (np.arange(self.shape[0]) + 0.5) * self.resolution

    def bounds_latlon(self) -> Bounds:
        """Bounds in EPSG:4326 longitude/latitude, densified along the edges."""
        return transform_bounds(self.bounds, self.epsg, 4326)

    def __dask_tokenize__(self) -> tuple:
        return ("GridSpec", self.epsg, self.bounds, self.resolution)

    @classmethod
    def from_coords(cls, x: np.ndarray, y: np.ndarray, epsg: int) -> GridSpec:
        """The grid whose pixel centres are ``x`` (west to east) and ``y`` (north to south).

        Raises :class:`GridError` unless the coordinates are evenly spaced, north-up, with square
        pixels, and at least one axis has two pixels to tell the resolution.
        """
        dx, dy = coord_step(np.asarray(x, np.float64), "x"), coord_step(np.asarray(y, np.float64), "y")
        if dx is None and dy is None:
            raise GridError("an array needs at least 2 pixels along x or y to define a grid")
        res = dx if dx is not None else -dy
        tol = abs(res) * 1e-6
        if not (res > 0 and (dy is None or abs(-dy - res) <= tol)):
            raise GridError("the array is not on a regular north-up grid (x ascending, y descending, equal "
                            "square pixels); resample it onto a GridSpec first")
        bounds = (float(x[0] - res / 2), float(y[-1] - res / 2), float(x[-1] + res / 2), float(y[0] + res / 2))
        return cls(int(epsg), bounds, float(res))


def coord_step(coords: np.ndarray, name: str) -> float | None:
    """The spacing of evenly spaced pixel-centre coordinates (None for a single pixel).

    Raises :class:`GridError` when the coordinates are not evenly spaced.
    """
    if coords.size < 2:
        return None
    step = (coords[-1] - coords[0]) / (coords.size - 1)
    if step == 0 or np.abs(np.diff(coords) - step).max() > 1e-6 * abs(step):
        raise GridError(f"the {name} coordinates are not evenly spaced; a raster needs a regular grid")
    return float(step)


def grid_of(array: xr.DataArray) -> GridSpec:
    """The :class:`GridSpec` of an array with pixel-centre ``x``/``y`` coordinates and an EPSG CRS."""
    epsg = array.rio.crs.to_epsg() if array.rio.crs is not None else None
    if epsg is None:
        raise GridError("the array has no EPSG CRS; write one with array.rio.write_crs('EPSG:...')")
    return GridSpec.from_coords(array.x.values, array.y.values, epsg)


def transform_bounds(bounds: Bounds, src_epsg: int, dst_epsg: int) -> Bounds:
    """Reproject bounds, densifying edges so curved edges stay covered."""
    if src_epsg == dst_epsg:
        return tuple(float(v) for v in bounds)  # type: ignore[return-value]
    tr = transformer(src_epsg, dst_epsg)
    return tuple(float(v) for v in tr.transform_bounds(*bounds, densify_pts=21))  # type: ignore[return-value]


@lru_cache(maxsize=256)
def transformer(src_epsg: int, dst_epsg: int) -> Transformer:
    """An ``always_xy`` pyproj Transformer, built once per process and CRS pair (building one takes ~0.1 s)."""
    return Transformer.from_crs(src_epsg, dst_epsg, always_xy=True)


def transform_many(bounds: np.ndarray, src_epsg: int, dst_epsg: int, densify: int = 21) -> np.ndarray:
    """:func:`transform_bounds` of many ``(n, 4)`` bounds at once, edges densified by ``densify`` points.

    One vectorised pyproj call for all of them, so planning 10^5 footprints takes well under a second.
    """
    bounds = np.asarray(bounds, dtype=np.float64).reshape(-1, 4)
    if src_epsg == dst_epsg or len(bounds) == 0:
        return bounds.copy()
    t = np.linspace(0.0, 1.0, densify)
    x0, y0, x1, y1 = (bounds[:, k:k + 1] for k in range(4))
    along_x, along_y = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
    xs = np.concatenate([along_x, along_x, np.repeat(x0, densify, 1), np.repeat(x1, densify, 1)], 1)
    ys = np.concatenate([np.repeat(y0, densify, 1), np.repeat(y1, densify, 1), along_y, along_y], 1)
    tx, ty = transformer(src_epsg, dst_epsg).transform(xs, ys)
    tx, ty = np.asarray(tx), np.asarray(ty)
    return np.stack([tx.min(1), ty.min(1), tx.max(1), ty.max(1)], axis=1)


def intersect_bounds(a: Bounds, b: Bounds) -> Bounds | None:
    """Intersection of two bounds, or None where they do not overlap."""
    xmin, ymin = max(a[0], b[0]), max(a[1], b[1])
    xmax, ymax = min(a[2], b[2]), min(a[3], b[3])
    if xmax <= xmin or ymax <= ymin:
        return None
    return xmin, ymin, xmax, ymax
