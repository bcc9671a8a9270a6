"""A validated, frozen raster grid: CRS, bounds, resolution and what follows from them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
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


def transform_bounds(bounds: Bounds, src_epsg: int, dst_epsg: int) -> Bounds:
    """Reproject bounds, densifying edges so curved edges stay covered."""
    if src_epsg == dst_epsg:
        return tuple(float(v) for v in bounds)  # type: ignore[return-value]
    tr = Transformer.from_crs(src_epsg, dst_epsg, always_xy=True)
    return tuple(float(v) for v in tr.transform_bounds(*bounds, densify_pts=21))  # type: ignore[return-value]


def intersect_bounds(a: Bounds, b: Bounds) -> Bounds | None:
    """Intersection of two bounds, or None where they do not overlap."""
    xmin, ymin = max(a[0], b[0]), max(a[1], b[1])
    xmax, ymax = min(a[2], b[2]), min(a[3], b[3])
    if xmax <= xmin or ymax <= ymin:
        return None
    return xmin, ymin, xmax, ymax
