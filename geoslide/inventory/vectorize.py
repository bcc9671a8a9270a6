"""Landslide masks -> polygons at any scale, written as GeoParquet and GeoJSON.

:func:`vectorize` turns a lazy (y, x) mask (1 = landslide, 0 = background, 255 = nodata) into one
polygon per landslide without ever holding the raster in memory:

1. **Per chunk** (one dask task each): the landslide pixels are labelled (``scipy.ndimage.label``) and
   traced with ``rasterio.features.shapes`` into exact pixel-edge polygons, in *global pixel
   coordinates* (column, row), so the coordinates are whole numbers and the later unions are exact.
   Pixel counts and, with a probability raster, per-landslide sums and maxima (zonal statistics)
   come from the same labels. Only value 1 is a landslide: background and nodata are never traced.
2. **Stitch**: pieces whose pixels touch an inner chunk edge are put in an ``STRtree``; pieces of
   different chunks that touch (see connectivity) form connected groups, and each group is
   dissolved with ``shapely.union_all``. Pieces away from chunk edges are kept as they are. The
   result equals vectorising the whole image at once.
3. **Split** (optional, ``split=True``): amalgamated landslides are cut at narrow necks (see below).
4. **Place and measure**: the polygons are mapped to the mask's CRS with its affine transform;
   area and perimeter are in metres (planar in a projected CRS, geodesic in a geographic one).
   Polygons below the minimum mapping unit ``min_area`` (m2) are dropped.

**Connectivity.** The default is 8-connectivity: pixels that touch only at a corner belong to the
same landslide, as a diagonal staircase edge of one scar should not break it into fragments. Such a
landslide is a valid ``MultiPolygon`` (parts meeting at a corner; a self-touching ring would be
invalid). ``connectivity=4`` gives a landslide per edge-connected group, always a ``Polygon``.

**Ids.** Landslides are sorted by their first pixel in raster order (top row first, then leftmost)
and numbered from 1 in ``landslide_id``; the numbering does not depend on the chunking.

**Split method and limits.** Per landslide: the Euclidean distance transform of its pixels, one
marker per regional maximum, a marker watershed that floods the distance down from the markers in
half-pixel levels (``scipy.ndimage.watershed_ift`` does not flood by level, and scikit-image is not a
dependency), then neighbouring basins are merged from the highest pass down unless the pass is a
neck: its distance value at most ``neck_ratio`` times the peak of the lower basin (the half-width of
the narrower scar) and at least ``MIN_NECK_DEPTH`` (2) pixels below that peak. So two scars joined
by a neck narrower than ``neck_ratio`` x the narrower scar's width become two landslides. Limits:
shape only (the probability is not used), so scars that merge along a wide front are not split,
and a single landslide with a narrow constriction (e.g. a long runout channel below a wide source)
is cut in two; on ragged outlines (noisy masks) it cuts many lobes. Each landslide is rasterised on
its own bounding box, so one huge amalgamated component must fit in memory (a 1200 x 2200 pixel
pair takes about 3 s). With a lazy probability, the windows of split landslides are computed again
for their statistics: persist the probability or read it from a store first.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import shapely
import xarray as xr
from affine import Affine
from pyproj import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize, shapes
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from geoslide.errors import ConfigError, CRSError, GridError, OutputError
from geoslide.inventory.geometry import repair_invalid
from geoslide.raster.grid import coord_step

LANDSLIDE = 1
DEFAULT_CHUNK = 2048
STRUCTURES = {4: ndimage.generate_binary_structure(2, 1), 8: ndimage.generate_binary_structure(2, 2)}
MIN_NECK_DEPTH = 2.0  # pixels: shallower passes are pixel-scale outline noise, not necks


@dataclass(frozen=True)
class _Block:
    """Where a chunk lies: its number, top-left pixel, which sides are inner chunk edges, image width."""

    index: int
    row: int
    col: int
    inner: tuple[bool, bool, bool, bool]  # top, bottom, left, right
    width: int


@dataclass(frozen=True)
class _Pieces:
    """Landslide pieces in global pixel coordinates, with per-piece pixel statistics.

    ``first`` is the raster-order index (row * width + col) of each piece's first pixel; ``psum``,
    ``pcount`` and ``pmax`` are the sum, count and maximum of finite probability values under it.
    """

    geoms: np.ndarray
    first: np.ndarray
    pixels: np.ndarray
    psum: np.ndarray
    pcount: np.ndarray
    pmax: np.ndarray
    edge: np.ndarray
    chunk: np.ndarray

    @classmethod
    def build(cls, geoms: Sequence, first: Any, pixels: Any, stats: tuple | None = None, edge: Any = None,
              chunk: int = 0) -> _Pieces:
        n = len(geoms)
        psum, pcount, pmax = stats if stats is not None else (np.zeros(n), np.zeros(n), np.full(n, np.nan))
        return cls(_object_array(geoms), np.asarray(first, np.int64).reshape(n), np.asarray(pixels, np.int64),
                   np.asarray(psum, np.float64), np.asarray(pcount, np.int64), np.asarray(pmax, np.float64),
                   np.zeros(n, bool) if edge is None else np.asarray(edge, bool), np.full(n, chunk, np.int64))

    def take(self, index: np.ndarray) -> _Pieces:
        return _Pieces(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    @staticmethod
    def concat(parts: Iterable[_Pieces]) -> _Pieces:
        parts = list(parts)
        if not parts:
            return _Pieces.build([], [], [])
        return _Pieces(*(np.concatenate([getattr(p, f) for p in parts]) for f in _Pieces.__dataclass_fields__))


def vectorize(mask: xr.DataArray, min_area: float = 0.0, split: bool = False,
              probability: xr.DataArray | None = None, *, connectivity: int = 8, neck_ratio: float = 0.5
              ) -> gpd.GeoDataFrame:
    """Landslide polygons of a (y, x) mask, in the mask's CRS, chunk by chunk.

    Parameters
    ----------
    mask : xarray.DataArray
        (y, x) mask with pixel-centre ``x``/``y`` coordinates and a CRS (rioxarray); 1 = landslide,
        anything else (0 background, 255 nodata) is not. Dask-backed masks are read chunk by chunk;
        numpy-backed ones are chunked in blocks of ``DEFAULT_CHUNK``.
    min_area : float
        Minimum mapping unit in m2: landslides with a smaller area are dropped (after splitting).
    split : bool
        Cut amalgamated landslides at narrow necks (distance transform + watershed; see the module notes).
    probability : xarray.DataArray, optional
        (y, x) landslide probability on the mask's grid; adds ``mean_probability`` and
        ``max_probability`` over each landslide's pixels (non-finite values are left out).
    connectivity : {8, 4}
        Pixels touching at a corner (8) or only along an edge (4) belong to one landslide.
    neck_ratio : float
        With ``split``: cut where the neck half-width is at most this share of the narrower part's.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per landslide, sorted by first pixel in raster order: ``landslide_id`` (1..n),
        ``area_m2``, ``perimeter_m`` (holes included), ``pixel_count``, the probability columns if
        asked, and ``geometry`` (valid Polygon/MultiPolygon with pixel-edge outlines).
    """
    if connectivity not in STRUCTURES:
        raise ConfigError(f"connectivity must be 4 or 8, got {connectivity!r}")
    if not 0.0 < neck_ratio < 1.0:
        raise ConfigError(f"neck_ratio must lie between 0 and 1, got {neck_ratio!r}")
    data, prob, transform, crs = _prepare(mask, probability)
    pieces = _stitch(_Pieces.concat(dask.compute(*_chunk_tasks(data, prob, connectivity))), connectivity)
    if split:
        pieces = _split_all(pieces, prob, connectivity, neck_ratio, data.shape[1])
    return _frame(pieces, transform, crs, min_area, prob is not None)


def _prepare(mask: xr.DataArray, probability: xr.DataArray | None
             ) -> tuple[da.Array, da.Array | None, Affine, CRS]:
    """Check the inputs; the mask and probability as dask arrays with the same chunks, transform, CRS."""
    mask = _yx(mask, "mask")
    data = mask.data if isinstance(mask.data, da.Array) else da.from_array(np.asarray(mask.data), DEFAULT_CHUNK)
    if mask.rio.crs is None:
        raise CRSError("the mask has no CRS; write one with mask.rio.write_crs('EPSG:...')")
    crs = CRS.from_user_input(mask.rio.crs)
    crs = CRS.from_epsg(crs.to_epsg()) if crs.to_epsg() is not None else crs
    transform = pixel_transform(mask)
    if probability is None:
        return data, None, transform, crs
    probability = _yx(probability, "probability")
    same = probability.shape == mask.shape and all(np.allclose(probability[d], mask[d]) for d in ("x", "y"))
    if not same:
        raise GridError(f"the probability {probability.shape} is not on the mask's grid {mask.shape}; "
                        "pass the probability the mask was made from")
    prob = probability.data if isinstance(probability.data, da.Array) else da.from_array(np.asarray(probability.data))
    return data, prob.rechunk(data.chunks), transform, crs


def _yx(array: xr.DataArray, name: str) -> xr.DataArray:
    if array.ndim != 2 or set(array.dims) != {"y", "x"}:
        raise GridError(f"the {name} must be a 2-D (y, x) array, got dims {array.dims}; select one band/time first")
    if "x" not in array.coords or "y" not in array.coords:
        raise GridError(f"the {name} has no x/y coordinates; give it pixel-centre coordinates of its grid")
    return array.transpose("y", "x")


def pixel_transform(array: xr.DataArray) -> Affine:
    """Affine transform (pixel corner -> CRS) of a (y, x) array from its pixel-centre coordinates.

    Works for any CRS and for south-up grids. A dimension of one pixel takes its resolution from
    the transform rioxarray keeps (``rio.write_transform``).
    """
    x, y = np.asarray(array.x.values, np.float64), np.asarray(array.y.values, np.float64)
    dx, dy = coord_step(x, "x"), coord_step(y, "y")
    if dx is None or dy is None:
        try:
            rx, ry = array.rio.resolution()
        except Exception:  # rioxarray raises its own types for one-pixel rasters
            raise GridError("cannot tell the pixel size of a one-pixel-wide array; write its transform "
                            "with array.rio.write_transform(...)") from None
        dx, dy = dx if dx is not None else rx, dy if dy is not None else ry
    return Affine(dx, 0.0, x[0] - dx / 2, 0.0, dy, y[0] - dy / 2)


def _chunk_tasks(data: da.Array, prob: da.Array | None, connectivity: int) -> list:
    """One delayed :func:`_chunk_pieces` per chunk; each sees only its own block(s)."""
    rows, cols = (np.concatenate([[0], np.cumsum(c)]) for c in data.chunks)
    blocks = data.to_delayed()
    probs = prob.to_delayed() if prob is not None else None
    tasks = []
    for i in range(len(rows) - 1):
        for j in range(len(cols) - 1):
            inner = (i > 0, i < len(rows) - 2, j > 0, j < len(cols) - 2)
            where = _Block(len(tasks), int(rows[i]), int(cols[j]), inner, int(cols[-1]))
            block_prob = probs[i, j] if probs is not None else None
            tasks.append(dask.delayed(_chunk_pieces)(blocks[i, j], block_prob, where, connectivity))
    return tasks


def _chunk_pieces(block: np.ndarray, prob: np.ndarray | None, where: _Block, connectivity: int) -> _Pieces:
    """Polygons and pixel statistics of the landslides in one chunk, in global pixel coordinates."""
    land = np.asarray(block) == LANDSLIDE
    labels, n = ndimage.label(land, structure=STRUCTURES[connectivity])
    if n == 0:
        return _Pieces.build([], [], [], chunk=where.index)
    geoms = _label_polygons(labels, n, where.row, where.col, connectivity)
    first = _first_pixels(labels, n, where.row, where.col, where.width)
    pixels = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    stats = _zonal(prob, labels, n) if prob is not None else None
    return _Pieces.build(geoms, first, pixels, stats, _edge_labels(labels, n, where.inner), where.index)


def _label_polygons(labels: np.ndarray, n: int, row: int, col: int, connectivity: int) -> list:
    """One valid (Multi)Polygon per label 1..n, in global pixel coordinates."""
    parts: list[list] = [[] for _ in range(n)]
    with warnings.catch_warnings():  # the first chunk's transform is the identity, which rasterio warns about
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        where = Affine.translation(col, row)
        traced = list(shapes(labels, mask=labels > 0, connectivity=connectivity, transform=where))
    for geom, value in traced:
        parts[int(value) - 1].append(shapely.geometry.shape(geom))
    geoms = _object_array([p[0] if len(p) == 1 else shapely.union_all(p) for p in parts])
    return list(repair_invalid(geoms)[0])  # 8-connected corners make invalid outlines


def _first_pixels(labels: np.ndarray, n: int, row: int, col: int, width: int) -> np.ndarray:
    """Raster-order index (global row * width + col) of each label's first pixel."""
    first = np.empty(n, np.int64)
    for k, (rs, cs) in enumerate(ndimage.find_objects(labels, n), start=1):
        c = cs.start + int(np.argmax(labels[rs.start, cs] == k))
        first[k - 1] = (row + rs.start) * width + col + c
    return first


def _zonal(prob: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum, count and maximum of the finite probability values under each label 1..n."""
    p = np.asarray(prob, np.float64)
    ok = np.isfinite(p)
    index = np.arange(1, n + 1)
    psum = ndimage.sum_labels(np.where(ok, p, 0.0), labels, index)
    pcount = ndimage.sum_labels(ok, labels, index)
    pmax = ndimage.maximum(np.where(ok, p, -np.inf), labels, index)
    return psum, pcount, np.where(pcount > 0, pmax, np.nan)


def _edge_labels(labels: np.ndarray, n: int, inner: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """Which labels have pixels on an inner chunk edge (and may continue in the next chunk)."""
    edge = np.zeros(n + 1, bool)
    for side, line in zip(inner, (labels[0], labels[-1], labels[:, 0], labels[:, -1]), strict=True):
        if side:
            edge[line] = True
    return edge[1:]


def _stitch(pieces: _Pieces, connectivity: int) -> _Pieces:
    """Dissolve pieces of one landslide cut by chunk edges; the rest pass unchanged."""
    group = np.arange(len(pieces.geoms))
    at_edge = np.flatnonzero(pieces.edge)
    if at_edge.size > 1:
        geoms, chunk = pieces.geoms[at_edge], pieces.chunk[at_edge]
        left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
        keep = (left < right) & (chunk[left] != chunk[right])
        left, right = left[keep], right[keep]
        if connectivity == 4:  # corner contacts do not join 4-connected landslides
            shared = shapely.length(shapely.intersection(geoms[left], geoms[right])) > 0
            left, right = left[shared], right[shared]
        graph = coo_matrix((np.ones(left.size), (left, right)), shape=(at_edge.size, at_edge.size))
        _, component = connected_components(graph, directed=False)
        group[at_edge] = group.size + component
    return _dissolve(pieces, np.unique(group, return_inverse=True)[1])


def _dissolve(pieces: _Pieces, group: np.ndarray) -> _Pieces:
    """Union the pieces of each group and combine their statistics."""
    n = int(group.max()) + 1 if group.size else 0
    order = np.argsort(group, kind="stable")
    cuts = np.flatnonzero(np.diff(group[order])) + 1
    geoms = [g[0] if g.size == 1 else shapely.union_all(g) for g in np.split(pieces.geoms[order], cuts)] if n else []
    first = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first, group, pieces.first)
    pmax = np.full(n, np.nan)
    np.fmax.at(pmax, group, pieces.pmax)
    count = lambda values: np.bincount(group, weights=values, minlength=n)  # noqa: E731
    stats = (count(pieces.psum), np.rint(count(pieces.pcount)), pmax)
    return _Pieces.build(geoms, first, np.rint(count(pieces.pixels)), stats)


def _split_all(pieces: _Pieces, prob: da.Array | None, connectivity: int, neck_ratio: float, width: int
               ) -> _Pieces:
    """Replace amalgamated landslides by their parts; the parts' statistics are read back from ``prob``."""
    kept, parts, windows = [], [], []
    for i, geom in enumerate(pieces.geoms):
        regions, row, col = _split_regions(geom, connectivity, neck_ratio)
        if regions is None:
            kept.append(i)
            continue
        n = int(regions.max())
        geoms = _label_polygons(regions, n, row, col, connectivity)
        pixels = np.bincount(regions.ravel(), minlength=n + 1)[1:]
        parts.append(_Pieces.build(geoms, _first_pixels(regions, n, row, col, width), pixels))
        windows.append((regions, row, col))
    if prob is not None and windows:
        parts = _part_stats(parts, windows, prob)
    return _Pieces.concat([pieces.take(np.asarray(kept, np.int64)), *parts])


def _split_regions(geom: shapely.Geometry, connectivity: int, neck_ratio: float
                   ) -> tuple[np.ndarray | None, int, int]:
    """Region labels of one landslide cut at its necks (None if it stays whole), and their window origin."""
    xmin, ymin, xmax, ymax = (int(round(v)) for v in geom.bounds)
    row, col = ymin - 1, xmin - 1  # one pixel of background around, for the distance transform
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        inside = rasterize([(geom, 1)], out_shape=(ymax - ymin + 2, xmax - xmin + 2),
                           transform=Affine.translation(col, row), fill=0, dtype="uint8").astype(bool)
    regions = _watershed(inside, connectivity, neck_ratio)
    return (regions, row, col) if regions.max() > 1 else (None, row, col)


def _watershed(inside: np.ndarray, connectivity: int, neck_ratio: float) -> np.ndarray:
    """Basins of the distance transform, one per regional maximum, merged across passes that are not necks."""
    dist = ndimage.distance_transform_edt(inside)
    structure = STRUCTURES[connectivity]
    peaks = inside & (dist == ndimage.maximum_filter(dist, footprint=STRUCTURES[8]))
    markers, n = ndimage.label(peaks, structure=structure)
    if n < 2:
        return inside.astype(np.int32)
    return _merge_basins(_flood(dist, markers, structure), dist, n, structure, neck_ratio)


def _flood(dist: np.ndarray, markers: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """Marker watershed of ``-dist``: flood down in half-pixel levels, each level grown breadth-first.

    Every connected part of ``dist >= t`` holds a regional maximum, hence a marker, so each level is
    reached from the basins above it. ``dist`` must be 0 on a one-pixel frame around the shape.
    """
    width = dist.shape[1]
    level = np.floor(dist * 2).astype(np.int64).ravel()
    labels = markers.astype(np.int32).ravel()
    steps = np.array([(dy - 1) * width + dx - 1 for dy, dx in zip(*np.nonzero(structure), strict=True)])
    order = np.argsort(-level, kind="stable")
    starts = np.searchsorted(-level[order], np.arange(-level.max(), 0), side="left")
    ends = np.searchsorted(-level[order], np.arange(-level.max(), 0), side="right")
    pending = np.zeros(0, np.int64)
    for start, end in zip(starts, ends, strict=True):
        fresh = order[start:end]
        pending = np.concatenate([pending, fresh[labels[fresh] == 0]])
        while pending.size:
            best = labels[pending[:, None] + steps].max(axis=1)
            reached = best > 0
            if not reached.any():
                break
            labels[pending[reached]] = best[reached]
            pending = pending[~reached]
    return labels.reshape(dist.shape)


def _merge_basins(basins: np.ndarray, dist: np.ndarray, n: int, structure: np.ndarray, neck_ratio: float
                  ) -> np.ndarray:
    """Merge neighbouring basins from the highest pass down, unless the pass is a neck; relabel 1..m."""
    peak = np.concatenate([[0.0], ndimage.maximum(dist, basins, np.arange(1, n + 1))])
    a, b, level = _passes(basins, dist, structure)
    parent = np.arange(n + 1)

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for i in np.argsort(-level, kind="stable"):
        ra, rb = root(a[i]), root(b[i])
        lower = min(peak[ra], peak[rb])
        if ra != rb and (level[i] > neck_ratio * lower or lower - level[i] < MIN_NECK_DEPTH):
            parent[rb] = ra
            peak[ra] = max(peak[ra], peak[rb])
    roots = np.array([root(k) for k in range(n + 1)])
    return np.unique(roots, return_inverse=True)[1].astype(np.int32)[basins]


def _passes(basins: np.ndarray, dist: np.ndarray, structure: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each pair of touching basins and its pass height: the highest min(dist) over touching pixel pairs."""
    found = []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        if structure[1 + dy, 1 + dx]:
            here, there = _neighbours(basins, dy, dx)
            d = np.minimum(*_neighbours(dist, dy, dx))
            touch = (here != there) & (here > 0) & (there > 0)
            found.append((np.minimum(here, there)[touch], np.maximum(here, there)[touch], d[touch]))
    a, b, d = (np.concatenate(v) for v in zip(*found, strict=True))
    base = int(basins.max()) + 1
    pairs, inverse = np.unique(a.astype(np.int64) * base + b, return_inverse=True)
    level = np.full(pairs.size, -np.inf)
    np.maximum.at(level, inverse, d)
    return pairs // base, pairs % base, level


def _neighbours(array: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Views of each pixel and its neighbour at offset (dy >= 0, dx), over the pixels that have one."""
    h, w = array.shape
    return (array[: h - dy, max(0, -dx): w - max(0, dx)], array[dy:, max(0, dx): w - max(0, -dx)])


def _part_stats(parts: list[_Pieces], windows: list[tuple[np.ndarray, int, int]], prob: da.Array) -> list[_Pieces]:
    """Probability statistics of split parts, reading all their windows in one dask computation."""
    padded = da.pad(prob, 1, constant_values=np.nan)  # windows include one pixel of margin
    reads = [padded[r + 1: r + 1 + reg.shape[0], c + 1: c + 1 + reg.shape[1]] for reg, r, c in windows]
    values = dask.compute(*reads)
    out = []
    for part, (regions, _, _), p in zip(parts, windows, values, strict=True):
        stats = _zonal(p, regions, len(part.geoms))
        out.append(_Pieces.build(part.geoms, part.first, part.pixels, stats))
    return out


def _frame(pieces: _Pieces, transform: Affine, crs: CRS, min_area: float, with_probability: bool
           ) -> gpd.GeoDataFrame:
    """Place the pieces in the CRS, measure them, drop those under ``min_area``, sort and number them."""
    order = np.argsort(pieces.first, kind="stable")
    pieces = pieces.take(order)
    geoms = _to_crs(pieces.geoms, transform)
    area, perimeter = _measure(geoms, crs)
    keep = area >= min_area
    columns: dict[str, Any] = {"landslide_id": np.arange(1, int(keep.sum()) + 1, dtype=np.int64),
                               "area_m2": area[keep], "perimeter_m": perimeter[keep],
                               "pixel_count": pieces.pixels[keep]}
    if with_probability:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(pieces.pcount > 0, pieces.psum / pieces.pcount, np.nan)
        columns |= {"mean_probability": mean[keep], "max_probability": pieces.pmax[keep]}
    return gpd.GeoDataFrame(columns, geometry=list(geoms[keep]), crs=crs)


def _to_crs(geoms: np.ndarray, transform: Affine) -> np.ndarray:
    """Pixel (column, row) coordinates -> CRS coordinates, as GDAL applies a geotransform."""
    a, b, c, d, e, f = transform[:6]

    def apply(xy: np.ndarray) -> np.ndarray:
        return np.column_stack([c + xy[:, 0] * a + xy[:, 1] * b, f + xy[:, 0] * d + xy[:, 1] * e])

    return shapely.transform(geoms, apply) if len(geoms) else _object_array([])


def _measure(geoms: np.ndarray, crs: CRS) -> tuple[np.ndarray, np.ndarray]:
    """Area (m2) and perimeter (m): planar in a projected CRS, on the ellipsoid in a geographic one."""
    if crs.is_geographic:
        geod = crs.get_geod()
        measured = np.array([geod.geometry_area_perimeter(g) for g in geoms]).reshape(-1, 2)
        return np.abs(measured[:, 0]), measured[:, 1]
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return shapely.area(geoms) * factor**2, shapely.length(geoms) * factor


def _object_array(items: Sequence) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


def write_vectors(polygons: gpd.GeoDataFrame, path: str | Path) -> tuple[Path, Path]:
    """Write landslide polygons as GeoParquet (their own CRS) and, beside it, GeoJSON in WGS 84.

    Both files are written to temporary names in the target folder and renamed into place, so a
    failure leaves no half-written file; existing files of the same names are replaced.

    Parameters
    ----------
    polygons : geopandas.GeoDataFrame
        Landslides with a CRS (e.g. from :func:`vectorize`).
    path : str or pathlib.Path
        The GeoParquet path, ending in ``.parquet``; the GeoJSON goes to the same name with ``.geojson``.

    Returns
    -------
    tuple of pathlib.Path
        The GeoParquet and GeoJSON paths.
    """
    path = Path(path)
    if path.suffix.lower() != ".parquet":
        raise OutputError(f"vector output {path} must end in .parquet (a GeoJSON in WGS84 is written beside it)")
    if path.is_dir():
        raise OutputError(f"vector output {path} is a folder; give a file name ending in .parquet")
    if polygons.crs is None:
        raise CRSError("the polygons have no CRS; set it (gdf.set_crs('EPSG:...')) before writing them")
    geojson = path.with_suffix(".geojson")
    path.parent.mkdir(parents=True, exist_ok=True)
    temps = [path.parent / f".{p.name}.{uuid.uuid4().hex}.tmp" for p in (path, geojson)]
    try:
        polygons.to_parquet(temps[0])
        polygons.to_crs(4326).to_file(temps[1], driver="GeoJSON", engine="pyogrio", RFC7946="YES")
        os.replace(temps[0], path)
        os.replace(temps[1], geojson)
    except Exception as exc:  # pyarrow/pyogrio raise many types for unwritable data or folders
        raise OutputError(f"cannot write vectors to {path}: {str(exc).splitlines()[0]}") from None
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    return path, geojson
