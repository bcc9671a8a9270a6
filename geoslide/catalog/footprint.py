"""The WGS84 footprint of a rectangle in any CRS, as a STAC item geometry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import shapely.geometry
from rasterio.warp import transform_geom


def wgs84_footprint(crs: Any, bounds: Sequence[float]) -> dict[str, Any]:
    """GeoJSON geometry in EPSG:4326 of the box ``bounds`` in ``crs``, cut at the antimeridian.

    The box's edges are densified to 40 segments over its perimeter first, so the geometry
    follows the curved edges a projected rectangle has in longitude and latitude.

    Parameters
    ----------
    crs
        The CRS of ``bounds``, in any form rasterio accepts (``"EPSG:32645"``, a ``rasterio.crs.CRS``).
    bounds
        ``(left, bottom, right, top)`` in ``crs``.
    """
    box = shapely.geometry.box(*bounds)
    densified = shapely.segmentize(box, max_segment_length=box.length / 40)
    return transform_geom(crs, "EPSG:4326", shapely.geometry.mapping(densified), antimeridian_cutting=True)
