"""Which items a window of a mosaic needs: item footprints in the target CRS, in an STRtree.

The per-chunk mosaic (:mod:`geoslide.raster.chunkread`) never stacks every item over the whole
area, as :func:`geoslide.raster.cube.open_cube` does for a time series: :func:`plan_mosaic` puts
each item's footprint, reprojected once into the target CRS (one vectorised pyproj call per source
CRS), into a spatial index, and a chunk asks the index for the few items that intersect it. Planning
therefore costs O(items log items), and a chunk's task carries only its own items' read recipes.

The grid is planned exactly as :func:`~geoslide.raster.cube.plan_grid` plans a cube's, so the two
paths put pixels in the same places; items are ordered as ``open_cube`` orders its time steps
(by ``datetime`` string, stable), and a chunk reads them newest first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pystac
import shapely

from geoslide.errors import EmptySearchError, GridError
from geoslide.fileio import gdal_path
from geoslide.raster.cube import CubeSpec, common_bands, plan_grid
from geoslide.raster.grid import Bounds, GridSpec, transform_many
from geoslide.raster.items import ItemRecord, parse_items

#: Footprints are grown by this many target pixels, so approximations of curved edges never drop a pixel.
MARGIN_PX = 2


@dataclass(frozen=True)
class FileRead:
    """Bands read from one file: its GDAL path, 1-based band indexes, and where they go in the output."""

    path: str
    indexes: tuple[int, ...]
    positions: tuple[int, ...]


@dataclass(frozen=True)
class Source:
    """One item as a chunk reads it: its files, and per output band the raster scale and offset."""

    id: str
    files: tuple[FileRead, ...]
    scale: tuple[float, ...]
    offset: tuple[float, ...]
    bounds: Bounds = field(compare=False)  # footprint in the target CRS, grown by MARGIN_PX pixels


@dataclass(frozen=True)
class MosaicPlan:
    """A mosaic's grid, bands and sources (oldest first), with a spatial index of their footprints."""

    grid: GridSpec
    bands: tuple[str, ...]
    sources: tuple[Source, ...]
    resampling: str = "nearest"

    @cached_property
    def _tree(self) -> shapely.STRtree:
        return shapely.STRtree(shapely.box(*np.asarray([s.bounds for s in self.sources]).T))

    def query(self, bounds: Bounds) -> tuple[Source, ...]:
        """The sources whose footprint meets ``bounds`` (target CRS), newest first."""
        hits = np.sort(self._tree.query(shapely.box(*bounds)))[::-1]
        return tuple(self.sources[int(i)] for i in hits)

    def query_many(self, bounds: np.ndarray) -> list[tuple[Source, ...]]:
        """:meth:`query` of many ``(n, 4)`` bounds in one bulk call."""
        pairs = self._tree.query(shapely.box(*np.asarray(bounds, dtype=float).T))
        found: list[list[int]] = [[] for _ in range(len(bounds))]
        for window, source in zip(*pairs, strict=True):
            found[int(window)].append(int(source))
        return [tuple(self.sources[i] for i in sorted(hits, reverse=True)) for hits in found]


def plan_mosaic(items: Iterable[pystac.Item | dict], bands: Sequence[str] | None = None, **options) -> MosaicPlan:
    """Plan the per-chunk mosaic of ``items``: grid (as :func:`open_cube` would), sources, index.

    Parameters
    ----------
    items
        pystac Items or item dicts.
    bands
        Bands by common name, band name or asset key; None takes those every item offers.
    **options
        ``epsg``, ``resolution``, ``bounds``, ``bounds_latlon``, ``grid``, ``resampling`` as in
        :class:`~geoslide.raster.cube.CubeSpec`.
    """
    records = parse_items(items)
    if not records:
        raise EmptySearchError("no items to mosaic; search returned nothing (check the query)")
    spec = CubeSpec(bands=tuple(bands) if bands else None, **options)
    names = tuple(spec.bands or common_bands(records))
    grid = plan_grid(records, names, spec)
    ordered = sorted(records, key=lambda r: r.datetime or "")
    footprints = _footprints(ordered, names, grid)
    sources = tuple(_source(r, names, fp) for r, fp in zip(ordered, footprints, strict=True))
    return MosaicPlan(grid, names, sources, spec.resampling)


def _footprints(records: Sequence[ItemRecord], names: Sequence[str], grid: GridSpec) -> np.ndarray:
    """``(n, 4)`` bounds of each record's bands in the grid's CRS, grown by :data:`MARGIN_PX` pixels."""
    native = np.array([_native_bounds(r, names) for r in records], dtype=np.float64)
    epsgs = np.array([r.require_epsg() for r in records])
    out = np.empty_like(native)
    for epsg in np.unique(epsgs):
        rows = epsgs == epsg
        out[rows] = transform_many(native[rows], int(epsg), grid.epsg)
    grow = MARGIN_PX * grid.resolution
    return out + np.array([-grow, -grow, grow, grow])


def _native_bounds(record: ItemRecord, names: Sequence[str]) -> Bounds:
    """The union of the bands' extents from ``proj:transform`` and ``proj:shape``."""
    boxes = []
    for ref in record.select(names):
        if ref.transform is None or ref.shape is None:
            raise GridError(f"item {record.id!r} lacks proj:transform/proj:shape; add them (projection extension) "
                            "so geoslide can place its pixels")
        a, _, c, _, e, f = ref.transform[:6]
        h, w = ref.shape[-2:]
        xs, ys = (c, c + a * w), (f, f + e * h)
        boxes.append((min(xs), min(ys), max(xs), max(ys)))
    arr = np.asarray(boxes)
    return float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max())


def _source(record: ItemRecord, names: Sequence[str], footprint: np.ndarray) -> Source:
    refs = record.select(names)
    files: dict[str, tuple[list[int], list[int]]] = {}
    for position, ref in enumerate(refs):
        indexes, positions = files.setdefault(ref.href, ([], []))
        indexes.append(ref.index)
        positions.append(position)
    reads = tuple(FileRead(gdal_path(href), tuple(i), tuple(p)) for href, (i, p) in files.items())
    return Source(str(record.id), reads, tuple(1.0 if r.scale is None else float(r.scale) for r in refs),
                  tuple(0.0 if r.offset is None else float(r.offset) for r in refs),
                  tuple(float(v) for v in footprint))
