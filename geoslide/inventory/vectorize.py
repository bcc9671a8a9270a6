"""Landslide masks -> polygons at any scale, chunk by chunk, stitched across chunk edges.

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
3. **Split** (optional, ``split=True``): amalgamated landslides are cut at narrow necks
   (see :mod:`geoslide.inventory.amalgamated`).
4. **Place and measure**: the polygons are mapped to the mask's CRS with its affine transform;
   area and perimeter are in metres (planar in a projected CRS, geodesic in a geographic one).
   Polygons below the minimum mapping unit ``min_area`` (m2) are dropped.

**Connectivity.** The default is 8-connectivity: pixels that touch only at a corner belong to the
same landslide, as a diagonal staircase edge of one scar should not break it into fragments. Such a
landslide is a valid ``MultiPolygon`` (parts meeting at a corner; a self-touching ring would be
invalid). ``connectivity=4`` gives a landslide per edge-connected group, always a ``Polygon``.

**Ids.** Landslides are sorted by their first pixel in raster order (top row first, then leftmost)
and numbered from 1 in ``landslide_id``; the numbering does not depend on the chunking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import shapely
import xarray as xr
from affine import Affine
from pyproj import CRS
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from geoslide.errors import ConfigError, CRSError, GridError
from geoslide.inventory.amalgamated import split_amalgamated
from geoslide.inventory.codes import LANDSLIDE
from geoslide.inventory.pieces import STRUCTURES, Pieces, first_pixels, label_polygons, object_array, zonal
from geoslide.raster.grid import coord_step

DEFAULT_CHUNK = 2048


@dataclass(frozen=True)
class _Block:
    """Where a chunk lies: its number, top-left pixel, which sides are inner chunk edges, image width."""

    index: int
    row: int
    col: int
    inner: tuple[bool, bool, bool, bool]  # top, bottom, left, right
    width: int


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
        Cut amalgamated landslides at narrow necks (distance transform + watershed; see
        :mod:`geoslide.inventory.amalgamated`).
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
    pieces = _stitch(Pieces.concat(dask.compute(*_chunk_tasks(data, prob, connectivity))), connectivity)
    if split:
        pieces = split_amalgamated(pieces, prob, connectivity, neck_ratio, data.shape[1])
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


def _chunk_pieces(block: np.ndarray, prob: np.ndarray | None, where: _Block, connectivity: int) -> Pieces:
    """Polygons and pixel statistics of the landslides in one chunk, in global pixel coordinates."""
    land = np.asarray(block) == LANDSLIDE
    labels, n = ndimage.label(land, structure=STRUCTURES[connectivity])
    if n == 0:
        return Pieces.build([], [], [], chunk=where.index)
    geoms = label_polygons(labels, n, where.row, where.col, connectivity)
    first = first_pixels(labels, n, where.row, where.col, where.width)
    pixels = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    stats = zonal(prob, labels, n) if prob is not None else None
    return Pieces.build(geoms, first, pixels, stats, _edge_labels(labels, n, where.inner), where.index)


def _edge_labels(labels: np.ndarray, n: int, inner: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """Which labels have pixels on an inner chunk edge (and may continue in the next chunk)."""
    edge = np.zeros(n + 1, bool)
    for side, line in zip(inner, (labels[0], labels[-1], labels[:, 0], labels[:, -1]), strict=True):
        if side:
            edge[line] = True
    return edge[1:]


def _stitch(pieces: Pieces, connectivity: int) -> Pieces:
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


def _dissolve(pieces: Pieces, group: np.ndarray) -> Pieces:
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
    return Pieces.build(geoms, first, np.rint(count(pieces.pixels)), stats)


def _frame(pieces: Pieces, transform: Affine, crs: CRS, min_area: float, with_probability: bool
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

    return shapely.transform(geoms, apply) if len(geoms) else object_array([])


def _measure(geoms: np.ndarray, crs: CRS) -> tuple[np.ndarray, np.ndarray]:
    """Area (m2) and perimeter (m): planar in a projected CRS, on the ellipsoid in a geographic one."""
    if crs.is_geographic:
        geod = crs.get_geod()
        measured = np.array([geod.geometry_area_perimeter(g) for g in geoms]).reshape(-1, 2)
        return np.abs(measured[:, 0]), measured[:, 1]
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return shapely.area(geoms) * factor**2, shapely.length(geoms) * factor
