"""Polygon repair shared by inventories read from files and polygons traced from masks."""

from __future__ import annotations

import numpy as np
import shapely


def polygonal_parts(geom: shapely.Geometry) -> list[shapely.Geometry]:
    """The Polygon and MultiPolygon parts of a geometry (lines and points left out)."""
    return [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]


def repair(geom: shapely.Geometry) -> shapely.Geometry:
    """A valid polygonal geometry covering ``geom``: ``make_valid``, keeping only its polygon parts.

    One part is returned as it is, several are unioned; without any the result is an empty Polygon.
    """
    parts = polygonal_parts(shapely.make_valid(geom))
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)


def repair_invalid(geoms: np.ndarray) -> tuple[np.ndarray, int]:
    """``geoms`` with each invalid geometry repaired (a copy if any is), and how many were."""
    bad = ~shapely.is_valid(geoms)
    if not bad.any():
        return geoms, 0
    geoms = geoms.copy()
    for i in np.flatnonzero(bad):
        geoms[i] = repair(geoms[i])
    return geoms, int(bad.sum())
