"""Landslide pieces: polygons traced from labelled pixels, in global pixel coordinates, with their statistics.

Shared by :mod:`geoslide.inventory.vectorize` (pieces of chunks, stitched across chunk edges) and
:mod:`geoslide.inventory.amalgamated` (parts of landslides split at necks).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import shapes
from scipy import ndimage

from geoslide.inventory.geometry import repair_invalid

STRUCTURES = {4: ndimage.generate_binary_structure(2, 1), 8: ndimage.generate_binary_structure(2, 2)}


@dataclass(frozen=True)
class Pieces:
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
              chunk: int = 0) -> Pieces:
        """Pieces from per-piece sequences; without ``stats`` sums and counts are 0 and maxima NaN."""
        n = len(geoms)
        psum, pcount, pmax = stats if stats is not None else (np.zeros(n), np.zeros(n), np.full(n, np.nan))
        return cls(object_array(geoms), np.asarray(first, np.int64).reshape(n), np.asarray(pixels, np.int64),
                   np.asarray(psum, np.float64), np.asarray(pcount, np.int64), np.asarray(pmax, np.float64),
                   np.zeros(n, bool) if edge is None else np.asarray(edge, bool), np.full(n, chunk, np.int64))

    def take(self, index: np.ndarray) -> Pieces:
        """The pieces at ``index`` (an integer or bool array)."""
        return Pieces(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    @staticmethod
    def concat(parts: Iterable[Pieces]) -> Pieces:
        """All pieces of ``parts``, in order."""
        parts = list(parts)
        if not parts:
            return Pieces.build([], [], [])
        return Pieces(*(np.concatenate([getattr(p, f) for p in parts]) for f in Pieces.__dataclass_fields__))


def label_polygons(labels: np.ndarray, n: int, row: int, col: int, connectivity: int) -> list:
    """One valid (Multi)Polygon per label 1..n, in global pixel coordinates."""
    parts: list[list] = [[] for _ in range(n)]
    with warnings.catch_warnings():  # the first chunk's transform is the identity, which rasterio warns about
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        where = Affine.translation(col, row)
        traced = list(shapes(labels, mask=labels > 0, connectivity=connectivity, transform=where))
    for geom, value in traced:
        parts[int(value) - 1].append(shapely.geometry.shape(geom))
    geoms = object_array([p[0] if len(p) == 1 else shapely.union_all(p) for p in parts])
    return list(repair_invalid(geoms)[0])  # 8-connected corners make invalid outlines


def first_pixels(labels: np.ndarray, n: int, row: int, col: int, width: int) -> np.ndarray:
    """Raster-order index (global row * width + col) of each label's first pixel."""
    first = np.empty(n, np.int64)
    for k, (rs, cs) in enumerate(ndimage.find_objects(labels, n), start=1):
        c = cs.start + int(np.argmax(labels[rs.start, cs] == k))
        first[k - 1] = (row + rs.start) * width + col + c
    return first


def zonal(prob: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum, count and maximum of the finite probability values under each label 1..n."""
    p = np.asarray(prob, np.float64)
    ok = np.isfinite(p)
    index = np.arange(1, n + 1)
    psum = ndimage.sum_labels(np.where(ok, p, 0.0), labels, index)
    pcount = ndimage.sum_labels(ok, labels, index)
    pmax = ndimage.maximum(np.where(ok, p, -np.inf), labels, index)
    return psum, pcount, np.where(pcount > 0, pmax, np.nan)


def object_array(items: Sequence) -> np.ndarray:
    """A 1-D object array holding ``items`` (an object array also when there are none)."""
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out
