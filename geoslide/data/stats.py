"""Dataset statistics of a patch store, as the benchmark papers report them.

:func:`store_stats` streams over the store with dask (blocks of patches, never the whole store
in memory) and returns, overall and per event:

- patch counts: patches, patches with landslide pixels, patches per split;
- the landslide pixel ratio: mask == 1 over valid pixels (255 = nodata excluded), the figure
  HR-GLDD (9.96 %) and GDCLD (8.01 %) report;
- per band, the mean over landslide and over background pixels (Landslide4Sense, Fig. 7);
  NaN pixel values are left out of the means;
- the landslide area from the masks: landslide pixels x resolution^2 over the patches whose
  resolution is known (None when none is).

With ``inventory`` (polygons in any CRS) it adds, per inventory ``event`` if that column exists
else overall, the HR-GLDD Table 1 figures: count, min, max and total landslide area. Each polygon's
area is taken in the WGS 84 / UTM zone of its centroid.

:func:`format_stats` renders the result as Markdown tables, :func:`stats_csv` as a long CSV.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd

from geoslide.data.store import PatchStore
from geoslide.errors import LabelError
from geoslide.inventory.codes import MASK_NODATA
from geoslide.inventory.rastermask import is_raster_mask, raster_polygons
from geoslide.inventory.read import read_inventory
from geoslide.inventory.summary import areas_by_event
from geoslide.tables import markdown_table, short_number

BLOCK_BYTES = 64 * 2**20
_COUNTS = ("landslide_pixels", "valid_pixels")
_PARTS = ("parts", "part_min", "part_max")  # connected landslide regions (8-neighbours) per patch, sizes in pixels


def store_stats(store: PatchStore, *, inventory: str | Path | None = None, mask_values: str | None = None
                ) -> dict[str, Any]:
    """Statistics of a patch store, overall and per event.

    Parameters
    ----------
    store : PatchStore
        The store to describe.
    inventory : str or pathlib.Path, optional
        Landslide polygons (GeoParquet, GeoJSON, GeoPackage, any CRS) for polygon areas, or a
        georeferenced raster mask (its landslides vectorised on its own grid).
    mask_values : str, optional
        What a raster mask's values mean (:mod:`geoslide.inventory.maskvalues`).

    Returns
    -------
    dict
        ``bands``, ``patch_size``, ``patches``; ``overall`` and ``events`` (event -> the same keys):
        ``patches``, ``landslide_patches``, ``splits``, ``landslide_pixels``, ``valid_pixels``,
        ``landslide_ratio``, ``band_means`` ({"landslide": {band: mean}, "background": {...}}),
        ``landslide_area_m2``, ``landslide_area_km2``; and ``inventory`` (None without one, else
        ``{"by_event": bool, "areas": {name: {count, min_m2, max_m2, total_m2, total_km2}}}``).
    """
    bands = store.bands
    per_patch = _per_patch(store)
    meta = store.meta()
    events = {str(name): _summary(per_patch.loc[group.index], group, bands)
              for name, group in meta.groupby("event", sort=True)}
    return {"bands": bands, "patch_size": store.patch_size, "patches": len(meta),
            "overall": _summary(per_patch, meta, bands), "events": events,
            "inventory": None if inventory is None else inventory_areas(inventory, mask_values)}


def _per_patch(store: PatchStore) -> pd.DataFrame:
    """Per-patch pixel counts and band sums, one dask pass over the store."""
    bands = store.bands
    columns = [*_COUNTS, *_PARTS,
               *(f"{kind}_{what}:{b}" for kind in ("ls", "bg") for what in ("sum", "n") for b in bands)]
    n = len(store)
    if n == 0:
        return pd.DataFrame(np.zeros((0, len(columns))), columns=columns)
    step = int(max(1, min(n, BLOCK_BYTES // (4 * len(bands) * store.patch_size**2))))
    images = store.images().rechunk((step, -1, -1, -1))
    masks = store.masks().rechunk((step, -1, -1))[:, None]
    sums = da.map_blocks(_block_sums, images, masks, drop_axis=(2, 3), chunks=(images.chunks[0], (len(columns),)),
                         dtype="float64").compute()
    return pd.DataFrame(sums, columns=columns)


def _block_sums(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``(k, 2 + 4 * band)``: landslide and valid pixel counts, then band sums and counts."""
    finite = np.isfinite(images)
    values = np.where(finite, images, 0).astype("float64")
    parts = [(masks[:, 0] == 1).sum(axis=(1, 2))[:, None], (masks[:, 0] != MASK_NODATA).sum(axis=(1, 2))[:, None],
             np.array([_regions(m == 1) for m in masks[:, 0]], dtype="float64").reshape(-1, 3)]
    for cls in (1, 0):
        selected = (masks == cls) & finite
        parts += [(values * selected).sum(axis=(2, 3)), selected.sum(axis=(2, 3))]
    return np.concatenate(parts, axis=1).astype("float64")


def _regions(mask: np.ndarray) -> tuple[int, float, float]:
    """Number of 8-connected regions of ``mask`` and the smallest and largest region in pixels (0 when none)."""
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        return 0, 0.0, 0.0
    sizes = np.bincount(labels.ravel())[1:]
    return count, float(sizes.min()), float(sizes.max())


def _study_area(meta: pd.DataFrame, patch_size: int) -> float | None:
    """Area covered by the patches in km2: the union of their footprints where known, else size x resolution."""
    from shapely import box, union_all

    res = meta["resolution"].to_numpy(dtype="float64")
    bounds = meta[["xmin", "ymin", "xmax", "ymax"]].to_numpy(dtype="float64")
    placed = (np.isfinite(bounds).all(axis=1) & (bounds[:, 2] > bounds[:, 0]) & (bounds[:, 3] > bounds[:, 1])
              & (meta["crs"].astype(str) != "").to_numpy())
    total = 0.0
    for _, group in meta[placed].groupby("crs"):
        total += union_all(box(*bounds[meta.index.get_indexer(group.index)].T)).area
    loose = ~placed & np.isfinite(res) & (res > 0)
    total += float(((patch_size * res[loose]) ** 2).sum())
    return total / 1e6 if (placed | loose).any() else None


def stats_by(store: PatchStore, column: str | None) -> dict[str, dict[str, Any]]:
    """The :func:`store_stats` summary (landslide ratio, band means, regions, study area) per value of a meta column.

    ``column`` None gives one entry, ``"all"``.
    """
    per_patch, meta = _per_patch(store), store.meta()
    if column is None:
        column, meta = "_all", meta.assign(_all="all")
    if column not in meta.columns:
        raise LabelError(f"the patch table has no column {column!r}; it has {list(meta.columns)}")
    out = {str(name): _summary(per_patch.loc[group.index], group, store.bands)
           for name, group in meta.groupby(column, sort=True)}
    for name, group in meta.groupby(column, sort=True):
        out[str(name)]["study_area_km2"] = _study_area(group, store.patch_size)
    return out


def _summary(per_patch: pd.DataFrame, meta: pd.DataFrame, bands: list[str]) -> dict[str, Any]:
    totals = per_patch.sum(axis=0)
    ls_px, valid_px = int(totals["landslide_pixels"]), int(totals["valid_pixels"])
    means = {name: {b: _ratio(totals[f"{kind}_sum:{b}"], totals[f"{kind}_n:{b}"]) for b in bands}
             for name, kind in (("landslide", "ls"), ("background", "bg"))}
    resolution = meta["resolution"].to_numpy(dtype="float64")
    known = np.isfinite(resolution) & (resolution > 0)
    area = float((per_patch["landslide_pixels"].to_numpy()[known] * resolution[known] ** 2).sum()) if known.any() \
        else None
    return {"patches": len(meta), "landslide_patches": int((per_patch["landslide_pixels"] > 0).sum()),
            "splits": {str(k): int(v) for k, v in meta["split"].value_counts().sort_index().items()},
            "landslide_pixels": ls_px, "valid_pixels": valid_px, "landslide_ratio": _ratio(ls_px, valid_px),
            "band_means": means, "landslide_area_m2": area,
            "landslide_area_km2": None if area is None else area / 1e6, **_region_sizes(per_patch, resolution)}


def _region_sizes(per_patch: pd.DataFrame, resolution: np.ndarray) -> dict[str, Any]:
    """Landslide regions in the masks (cut at patch edges): count and smallest/largest area in m2."""
    count = per_patch["parts"].to_numpy()
    pixel_area = np.where(np.isfinite(resolution) & (resolution > 0), resolution**2, np.nan)
    has = (count > 0) & np.isfinite(pixel_area)
    return {"regions": int(count.sum()),
            "region_min_m2": float((per_patch["part_min"].to_numpy() * pixel_area)[has].min()) if has.any() else None,
            "region_max_m2": float((per_patch["part_max"].to_numpy() * pixel_area)[has].max()) if has.any() else None}


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator) / float(denominator) if denominator else None


def inventory_areas(inventory: str | Path, mask_values: str | None = None) -> dict[str, Any]:
    """Landslide polygon areas (m2), per ``event`` column if present else overall (``"all"``).

    Parameters
    ----------
    inventory : str or pathlib.Path
        GeoParquet (``.parquet``/``.geoparquet``) or any file GDAL/OGR reads (GeoJSON, GeoPackage, ...),
        or a georeferenced raster mask.
    mask_values : str, optional
        What a raster mask's values mean, ``BACKGROUND,LANDSLIDE[,NODATA]``.

    Returns
    -------
    dict
        ``{"by_event": bool, "areas": {name: {"count", "min_m2", "max_m2", "total_m2", "total_km2"}}}``
        (see :func:`geoslide.inventory.summary.areas_by_event`).
    """
    return areas_by_event(_read_inventory(inventory, mask_values))


def _read_inventory(path: str | Path, mask_values: str | None = None) -> gpd.GeoDataFrame:
    """Polygons of an inventory (see :func:`geoslide.inventory.read.read_inventory`) at plausible coordinates.

    A raster mask (GeoTIFF, ...) is vectorised on its own grid first (0/1 or 0/255 values).
    """
    frame = raster_polygons(path, mask_values) if is_raster_mask(path) else read_inventory(path)
    frame = frame[~frame.geometry.is_empty & frame.geometry.notna()]
    frame = frame[frame.geom_type.isin(["Polygon", "MultiPolygon"])]
    if frame.empty:
        raise LabelError(f"inventory {path} has no polygons; landslide areas need polygon outlines")
    xmin, ymin, xmax, ymax = frame.total_bounds
    if frame.crs.is_geographic and not (-180 <= xmin <= xmax <= 360 and -90 <= ymin <= ymax <= 90):
        raise LabelError(f"inventory {path} is in {frame.crs.to_string()} but its coordinates lie outside "
                         f"longitude/latitude ranges; set the CRS it was really written in")
    return frame


def format_stats(stats: dict[str, Any]) -> str:
    """Markdown tables: patches and landslide pixels per event, band means, inventory areas."""
    tables = [_scope_table(stats), _band_table(stats)]
    if stats.get("inventory"):
        tables.append(_area_table(stats["inventory"]["areas"]))
    return "\n".join(tables)


def _scope_table(stats: dict[str, Any]) -> str:
    scopes = [("all", stats["overall"]), *stats["events"].items()]
    splits = sorted({s for _, st in scopes for s in st["splits"]}, key=lambda s: ({"train": 0, "val": 1,
                                                                                 "test": 2}.get(s, 3), s))
    header = ["event", "patches", "landslide patches", *(f"split {s or '(none)'}" for s in splits),
              "landslide pixels", "valid pixels", "landslide %", "landslide area km2 (masks)"]
    rows = [[name, st["patches"], st["landslide_patches"], *(st["splits"].get(s, 0) for s in splits),
             st["landslide_pixels"], st["valid_pixels"], short_number(st["landslide_ratio"], 100),
             short_number(st["landslide_area_km2"])] for name, st in scopes]
    return markdown_table(pd.DataFrame(rows, columns=header))


def _band_table(stats: dict[str, Any]) -> str:
    rows = []
    for name, st in [("all", stats["overall"]), *stats["events"].items()]:
        for band in stats["bands"]:
            ls, bg = st["band_means"]["landslide"][band], st["band_means"]["background"][band]
            diff = None if ls is None or bg is None else ls - bg
            rows.append([name, band, short_number(ls), short_number(bg), short_number(diff)])
    header = ["event", "band", "landslide mean", "background mean", "difference"]
    return markdown_table(pd.DataFrame(rows, columns=header))


def _area_table(areas: dict[str, dict[str, Any]]) -> str:
    rows = [[name, a["count"], *(short_number(a[k]) for k in ("min_m2", "max_m2", "total_m2", "total_km2"))]
            for name, a in areas.items()]
    header = ["event", "landslides", "min area m2", "max area m2", "total area m2", "total area km2"]
    return markdown_table(pd.DataFrame(rows, columns=header))


def stats_csv(stats: dict[str, Any]) -> str:
    """The statistics as a long CSV: ``scope,event,statistic,band,value`` (scope: masks or inventory)."""
    rows = []
    for name, st in [("all", stats["overall"]), *stats["events"].items()]:
        for key in ("patches", "landslide_patches", *_COUNTS, "landslide_ratio", "landslide_area_m2"):
            rows.append(("masks", name, key, "", st[key]))
        rows += [("masks", name, f"split:{split}", "", count) for split, count in st["splits"].items()]
        rows += [("masks", name, f"{kind}_mean", band, value)
                 for kind, means in st["band_means"].items() for band, value in means.items()]
    for name, a in ((stats.get("inventory") or {}).get("areas") or {}).items():
        rows += [("inventory", name, key, "", value) for key, value in a.items()]
    buffer = io.StringIO()
    pd.DataFrame(rows, columns=["scope", "event", "statistic", "band", "value"]).to_csv(buffer, index=False)
    return buffer.getvalue()
