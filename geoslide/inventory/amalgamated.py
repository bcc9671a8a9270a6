"""Amalgamated landslides -> their parts, cut at narrow necks.

**Method.** Per landslide: the Euclidean distance transform of its pixels, one marker per regional
maximum, a marker watershed that floods the distance down from the markers in half-pixel levels
(``scipy.ndimage.watershed_ift`` does not flood by level, and scikit-image is not a dependency),
then neighbouring basins are merged from the highest pass down unless the pass is a neck: its
distance value at most ``neck_ratio`` times the peak of the lower basin (the half-width of the
narrower scar) and at least ``MIN_NECK_DEPTH`` (2) pixels below that peak. So two scars joined by a
neck narrower than ``neck_ratio`` x the narrower scar's width become two landslides.

**Limits.** Shape only (the probability is not used), so scars that merge along a wide front are not
split, and a single landslide with a narrow constriction (e.g. a long runout channel below a wide
source) is cut in two; on ragged outlines (noisy masks) it cuts many lobes. Each landslide is
rasterised on its own bounding box, so one huge amalgamated component must fit in memory (a
1200 x 2200 pixel pair takes about 3 s). With a lazy probability, the windows of split landslides
are computed again for their statistics: persist the probability or read it from a store first.
"""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import shapely
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize
from scipy import ndimage

from geoslide.inventory.pieces import STRUCTURES, Pieces, first_pixels, label_polygons, zonal

MIN_NECK_DEPTH = 2.0  # pixels: shallower passes are pixel-scale outline noise, not necks


def split_amalgamated(pieces: Pieces, prob: da.Array | None, connectivity: int, neck_ratio: float, width: int
                      ) -> Pieces:
    """Replace amalgamated landslides by their parts; the parts' statistics are read back from ``prob``.

    ``pieces`` are whole landslides in global pixel coordinates of an image ``width`` pixels wide.
    """
    kept, parts, windows = [], [], []
    for i, geom in enumerate(pieces.geoms):
        regions, row, col = _split_regions(geom, connectivity, neck_ratio)
        if regions is None:
            kept.append(i)
            continue
        n = int(regions.max())
        geoms = label_polygons(regions, n, row, col, connectivity)
        pixels = np.bincount(regions.ravel(), minlength=n + 1)[1:]
        parts.append(Pieces.build(geoms, first_pixels(regions, n, row, col, width), pixels))
        windows.append((regions, row, col))
    if prob is not None and windows:
        parts = _part_stats(parts, windows, prob)
    return Pieces.concat([pieces.take(np.asarray(kept, np.int64)), *parts])


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


def _part_stats(parts: list[Pieces], windows: list[tuple[np.ndarray, int, int]], prob: da.Array) -> list[Pieces]:
    """Probability statistics of split parts, reading all their windows in one dask computation."""
    padded = da.pad(prob, 1, constant_values=np.nan)  # windows include one pixel of margin
    reads = [padded[r + 1: r + 1 + reg.shape[0], c + 1: c + 1 + reg.shape[1]] for reg, r, c in windows]
    values = dask.compute(*reads)
    out = []
    for part, (regions, _, _), p in zip(parts, windows, values, strict=True):
        stats = zonal(p, regions, len(part.geoms))
        out.append(Pieces.build(part.geoms, part.first, part.pixels, stats))
    return out
