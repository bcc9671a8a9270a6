"""Landslide inventory summaries: the HR-GLDD Table 1 figures (count, min, max, mean and total area).

Areas are in square metres. Polygons without an ``area_m2`` column are measured in the WGS 84 /
UTM zone of their centroid, so an inventory in degrees, or one spanning zones, is measured as
fairly as one in its own UTM zone.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geoslide.errors import CRSError
from geoslide.tables import markdown_table, short_number

SUMMARY_KEYS = ("event", "count", "min_m2", "max_m2", "mean_m2", "total_m2", "total_km2")
_HEADINGS = ("event", "landslides", "min area m2", "max area m2", "mean area m2", "total area m2", "total area km2")


def polygon_areas_m2(frame: gpd.GeoDataFrame) -> np.ndarray:
    """Area of each polygon in square metres, in the WGS 84 / UTM zone of its centroid."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # centroids in degrees are good enough to pick a zone
        lonlat = frame.geometry.centroid.to_crs("EPSG:4326")
    zone = np.clip(np.floor((lonlat.x.to_numpy() + 180) / 6).astype(int) + 1, 1, 60)
    epsg = np.where(lonlat.y.to_numpy() >= 0, 32600, 32700) + zone
    areas = np.empty(len(frame))
    for code in np.unique(epsg):
        chosen = epsg == code
        areas[chosen] = frame.geometry[chosen].to_crs(epsg=int(code)).area.to_numpy()
    return areas


def area_figures(areas: np.ndarray) -> dict[str, Any]:
    """``count``, ``min_m2``, ``max_m2``, ``mean_m2`` (None without areas), ``total_m2`` and ``total_km2``."""
    found = areas.size > 0
    return {"count": int(areas.size), "min_m2": float(areas.min()) if found else None,
            "max_m2": float(areas.max()) if found else None, "mean_m2": float(areas.mean()) if found else None,
            "total_m2": float(areas.sum()), "total_km2": float(areas.sum()) / 1e6}


def inventory_summary(polygons: gpd.GeoDataFrame, event: str | None = None) -> dict[str, Any]:
    """HR-GLDD Table 1 figures of a set of landslide polygons.

    Parameters
    ----------
    polygons : geopandas.GeoDataFrame
        Landslides, e.g. from :func:`geoslide.inventory.vectorize.vectorize`; areas come from its
        ``area_m2`` column, else from the geometries in the WGS 84 / UTM zone of each centroid.
    event : str, optional
        Name of the event (site), ``"all"`` if not given.

    Returns
    -------
    dict
        ``event``, ``count``, ``min_m2``, ``max_m2``, ``mean_m2`` (None when there is no landslide),
        ``total_m2`` and ``total_km2``.
    """
    if "area_m2" in polygons.columns:
        areas = polygons["area_m2"].to_numpy(np.float64)
    elif len(polygons) == 0:
        areas = np.zeros(0)
    elif polygons.crs is None:
        raise CRSError("the polygons have no CRS and no area_m2 column; set their CRS (gdf.set_crs('EPSG:...'))")
    else:
        areas = polygon_areas_m2(polygons)
    return {"event": "all" if event is None else str(event), **area_figures(areas)}


def areas_by_event(frame: gpd.GeoDataFrame) -> dict[str, Any]:
    """Polygon areas per ``event`` column if the frame has one, else overall (``"all"``).

    Returns
    -------
    dict
        ``{"by_event": bool, "areas": {name: {"count", "min_m2", "max_m2", "total_m2", "total_km2"}}}``.
    """
    frame = frame.assign(_area=polygon_areas_m2(frame))
    by_event = "event" in frame.columns
    groups = frame.groupby(frame["event"].astype(str), sort=True) if by_event else [("all", frame)]
    areas = {str(name): {k: v for k, v in area_figures(g["_area"].to_numpy()).items() if k != "mean_m2"}
             for name, g in groups}
    return {"by_event": by_event, "areas": areas}


def summary_table(summaries: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The summaries of :func:`inventory_summary` as one table, a row per event."""
    return pd.DataFrame([{k: s.get(k) for k in SUMMARY_KEYS} for s in summaries], columns=list(SUMMARY_KEYS))


def summary_markdown(summaries: Sequence[dict[str, Any]] | pd.DataFrame) -> str:
    """The summaries as a Markdown table (HR-GLDD Table 1 layout)."""
    table = summaries if isinstance(summaries, pd.DataFrame) else summary_table(summaries)
    rows = [[str(row.event), str(row.count), *(short_number(v) for v in row[2:])]
            for row in table.itertuples(index=False)]
    return markdown_table(pd.DataFrame(rows, columns=list(_HEADINGS)))
