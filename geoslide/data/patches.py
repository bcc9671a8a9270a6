"""Patch plans (pure), per-window statistics and lazy patch extraction from a cube and its mask.

The plan is a table of window origins computed without pixels; statistics (landslide and nodata
share of every window) come from integral images in one lazy pass, whatever the stride; the
selection policy covers the seeds: drop empty patches (HR-GLDD), keep a share of them or chosen
negatives (GDCLD), and a nodata threshold. Empty-patch policies are a registry by name
(:func:`empty_policy_names`); a new one is one entry in it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import shapely
import xarray as xr

from geoslide.errors import ConfigError
from geoslide.raster.grid import GridSpec


@dataclass(frozen=True)
class PatchSpec:
    """How patches are cut and which are kept.

    Parameters
    ----------
    size
        Patch side in pixels (HR-GLDD and Landslide4Sense 128, GDCLD 1024).
    stride
        Step between patch origins; None means ``size`` (no overlap).
    empty
        Patches without landslide pixels (:func:`empty_policy_names`): ``drop`` them all (HR-GLDD),
        ``keep`` them all, or keep a random ``fraction`` of them (GDCLD keeps some negatives).
    keep_fraction
        Share of empty patches kept when ``empty="fraction"``.
    max_nodata
        Patches with a larger share of nodata pixels are dropped.
    seed
        Seed of the random choice of empty patches.
    """

    size: int = 128
    stride: int | None = None
    empty: str = "drop"
    keep_fraction: float = 0.1
    max_nodata: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 8 <= self.size <= 4096:
            raise ConfigError(f"patch size {self.size} is out of range; use 8 to 4096 (the seeds use 128 to 1024)")
        if self.stride is not None and not 1 <= self.stride:
            raise ConfigError(f"stride must be at least 1, got {self.stride}")
        if self.empty not in _EMPTY_POLICIES:
            names = empty_policy_names()
            raise ConfigError(f"empty-patch policy {self.empty!r} unknown; use {', '.join(names[:-1])} or {names[-1]}")
        if not (0 <= self.keep_fraction <= 1 and 0 <= self.max_nodata <= 1):
            raise ConfigError("keep_fraction and max_nodata are shares between 0 and 1")

    @property
    def step(self) -> int:
        """The stride actually used."""
        return self.stride or self.size


def plan_windows(shape: tuple[int, int], spec: PatchSpec) -> np.ndarray:
    """Top-left ``(row, col)`` of every whole patch that fits in ``shape``, row-major."""
    height, width = shape
    if spec.size > height or spec.size > width:
        raise ConfigError(f"patch size {spec.size} is larger than the image ({height} x {width} pixels); "
                         "choose a smaller --patch-size or a larger area")
    rows = np.arange(0, height - spec.size + 1, spec.step)
    cols = np.arange(0, width - spec.size + 1, spec.step)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], axis=1)


def window_sums(flags: Sequence[da.Array], windows: np.ndarray, size: int, step: int | None = None
                ) -> list[np.ndarray]:
    """Sum of each 2-D (lazy) array over each ``size`` window, exactly, in one streamed pass.

    Window edges fall on multiples of ``g = gcd(size, step)``, so each flag is first summed over
    ``g x g`` cells chunk by chunk (a small array), and windows are summed from an integral image
    of those cells. Memory grows with the cells, not the pixels (1/g^2 of them).
    """
    if len(windows) == 0:
        return [np.zeros(0, dtype=np.int64) for _ in flags]
    g = math.gcd(size, step or size)
    if np.any(windows % g):
        g = 1
    height = int(windows[:, 0].max()) + size
    width = int(windows[:, 1].max()) + size
    cells = [np.concatenate(parts) for parts in zip(*_cell_rows(flags, height, width, g), strict=True)]
    r, c, n = windows[:, 0] // g, windows[:, 1] // g, size // g
    out = []
    for cell in cells:
        integral = np.pad(cell.astype(np.int64), ((1, 0), (1, 0))).cumsum(axis=0).cumsum(axis=1)
        out.append(integral[r + n, c + n] + integral[r, c] - integral[r, c + n] - integral[r + n, c])
    return out


def _cell_rows(flags: Sequence[da.Array], height: int, width: int, g: int) -> list[tuple[np.ndarray, ...]]:
    """``g x g`` cell sums of every flag, computed one band of chunk rows at a time.

    Computing the whole scene at once lets the threaded scheduler read chunks far ahead of the
    reductions; a band at a time keeps memory to about one row of chunks.
    """
    rows = flags[0].chunks[0][0]
    band = max(g, rows // g * g)
    return [dask.compute(*[da.coarsen(np.sum, f[r0 : min(r0 + band, height), :width].astype(np.int32), {0: g, 1: g})
                           for f in flags]) for r0 in range(0, height, band)]


EmptyRule = Callable[[int, PatchSpec], np.ndarray]  # (windows, spec) -> which empty windows may stay

_EMPTY_POLICIES: dict[str, EmptyRule] = {
    "drop": lambda n, spec: np.zeros(n, dtype=bool),  # HR-GLDD
    "keep": lambda n, spec: np.ones(n, dtype=bool),
    "fraction": lambda n, spec: np.random.default_rng(spec.seed).random(n) < spec.keep_fraction,  # GDCLD
}


def empty_policy_names() -> list[str]:
    """Names accepted by :attr:`PatchSpec.empty`, in registry order."""
    return list(_EMPTY_POLICIES)


def select_windows(windows: np.ndarray, landslide: np.ndarray, nodata: np.ndarray, spec: PatchSpec,
                   negatives: np.ndarray | None = None) -> np.ndarray:
    """Boolean choice of windows by the spec's policy.

    ``landslide`` and ``nodata`` are per-window pixel shares; ``negatives`` flags windows that meet
    hand-picked negative areas, which are kept even where the policy drops empty patches.
    """
    ok = nodata <= spec.max_nodata
    empty = landslide == 0
    keep_empty = _EMPTY_POLICIES[spec.empty](len(windows), spec)
    if negatives is not None:
        keep_empty |= negatives
    return ok & (~empty | keep_empty)


def window_bounds(grid: GridSpec, windows: np.ndarray, size: int) -> np.ndarray:
    """``(xmin, ymin, xmax, ymax)`` of each window in the grid's CRS."""
    xmin, _, _, ymax = grid.bounds
    res = grid.resolution
    x0 = xmin + windows[:, 1] * res
    y1 = ymax - windows[:, 0] * res
    return np.stack([x0, y1 - size * res, x0 + size * res, y1], axis=1)


def meets(bounds: np.ndarray, areas: np.ndarray | None) -> np.ndarray | None:
    """Which windows intersect any of ``areas`` (polygons in the grid CRS), or None without areas."""
    if areas is None or len(areas) == 0:
        return None
    tree = shapely.STRtree(areas)
    boxes = shapely.box(bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3])
    hits = tree.query(boxes, predicate="intersects")
    out = np.zeros(len(bounds), dtype=bool)
    out[np.unique(hits[0])] = True
    return out


def extract(image: xr.DataArray, mask: da.Array, windows: np.ndarray, size: int) -> tuple[da.Array, da.Array]:
    """Lazy ``(n, band, size, size)`` image patches and ``(n, size, size)`` mask patches."""
    data = image.data
    imgs = [data[:, r : r + size, c : c + size] for r, c in windows]
    masks = [mask[r : r + size, c : c + size] for r, c in windows]
    if not imgs:
        n_bands = data.shape[0]
        # explicit arrays: dask's automatic chunking divides by zero on a zero-length shape
        return (da.from_array(np.zeros((0, n_bands, size, size), dtype="float32"), chunks=-1),
                da.from_array(np.zeros((0, size, size), dtype="uint8"), chunks=-1))
    return da.stack(imgs), da.stack(masks)
