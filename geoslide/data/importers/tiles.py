"""Import a user's own labelled tiles: ``geoslide import tiles SRC --out STORE.zarr``.

``SRC`` is a folder of image/mask pairs or a list of them (see :mod:`geoslide.data.tilefiles`),
in any raster format GDAL reads (GeoTIFF, PNG, JPEG, ...), of any size, square or not. Each tile
is cut into square patches of ``size`` pixels every ``stride`` pixels; a last row and column of
patches is aligned on the tile's far edges so no pixel is lost, and a tile smaller than a patch
becomes one patch padded with nodata. Nodata pixels (:mod:`geoslide.data.tileread`) are NaN in
the images and 255 in the masks. Mask values are recoded by ``mask_values``
(:mod:`geoslide.inventory.maskvalues`), decided once for the whole source when not given.
Georeferenced tiles keep their CRS, bounds and pixel size in metres; the others get the
``resolution`` given, else NaN. Splits: :mod:`geoslide.data.tilesplit`. Folders of different
tile sizes and mask codings go into one store, one import each, as long as bands and patch size
agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from geoslide.data.importers._common import ImportPlan, write_plan
from geoslide.data.patches import PatchSpec, select_windows
from geoslide.data.store import PatchStore
from geoslide.data.tilefiles import TileFile, find_tiles
from geoslide.data.tileread import (
    TileHeader,
    assumed_band_names,
    read_tile,
    shared_band_count,
    tile_header,
    tiles_mask_values,
)
from geoslide.data.tilesplit import check_rule, tile_splits
from geoslide.errors import ConfigError, PatchStoreError
from geoslide.inventory.codes import MASK_NODATA
from geoslide.inventory.maskvalues import MaskValues

DEFAULT_SIZE = 256
UNPAIRED = {"error": "required", "skip": "skip", "background": "optional"}  # -> find_tiles(masks=...)


@dataclass(frozen=True)
class TileImportSpec:
    """How tiles become patches (defaults suit 8-bit RGB tiles of a few hundred pixels).

    Parameters
    ----------
    size, stride, empty, keep_fraction, max_nodata, seed
        As :class:`~geoslide.data.patches.PatchSpec`; ``size`` None takes the store's patch size,
        else 256. Empty patches are kept by default, and patches up to half nodata.
    mask_values
        ``BACKGROUND,LANDSLIDE[,NODATA]`` (e.g. ``"0,255"``, ``"0,1,85"``); None decides (0/1 or 0/255).
    resolution
        Pixel size in metres of tiles without georeferencing.
    bands
        Names of the image bands (default: ``red, green, blue[, nir]``, ``gray``, else ``b1``...),
        or the store's bands when appending.
    nodata
        Pixel value that marks nodata in images that declare none (all bands equal to it).
    split, fractions
        See :mod:`geoslide.data.tilesplit`; None takes ``folders`` when folders name splits, else
        ``random``.
    event, sensor, trigger
        Names for every tile (default: from folder names, ``"unknown"``, ``"unknown"``).
    unpaired
        Images without a mask: ``"error"``, ``"skip"`` them, or read them as all ``"background"``
        (negative samples, as some datasets ship them in a folder of their own).
    """

    size: int | None = None
    stride: int | None = None
    empty: str = "keep"
    keep_fraction: float = 0.1
    max_nodata: float = 0.5
    seed: int = 0
    mask_values: str | MaskValues | None = None
    resolution: float | None = None
    bands: tuple[str, ...] | None = None
    nodata: float | None = None
    split: str | None = None
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    event: str | None = None
    sensor: str | None = None
    trigger: str = "unknown"
    unpaired: str = "error"

    def __post_init__(self) -> None:
        if self.unpaired not in UNPAIRED:
            raise ConfigError(f"--unpaired {self.unpaired!r} unknown; use {', '.join(UNPAIRED)}")
        if self.resolution is not None and not self.resolution > 0:
            raise ConfigError(f"--resolution must be a positive pixel size in metres, got {self.resolution}")
        if self.split is not None:
            check_rule(self.split)
        self.patch(DEFAULT_SIZE)  # checks the patch options

    def patch(self, size: int) -> PatchSpec:
        """The patch options with the patch side ``size``."""
        return PatchSpec(size=size, stride=self.stride, empty=self.empty, keep_fraction=self.keep_fraction,
                         max_nodata=self.max_nodata, seed=self.seed)


@dataclass(frozen=True)
class TilePlan:
    """An import plan and what was decided on the way (for the user to see)."""

    plan: ImportPlan
    tiles: int
    mask_values: MaskValues
    split: str


def plan_tiles(src: str | Path, spec: TileImportSpec, existing: PatchStore | None = None,
               progress: bool = False) -> TilePlan:
    """Scan tiles and masks (masks are read to choose patches), without writing anything."""
    tiles = find_tiles(src, masks=UNPAIRED[spec.unpaired], event=spec.event, sensor=spec.sensor)
    heads = [tile_header(t.image) for t in tiles]
    bands = _bands(tiles, heads, spec, existing)
    size = spec.size or (existing.patch_size if existing is not None else DEFAULT_SIZE)
    values = tiles_mask_values([t.mask for t in tiles], spec.mask_values, str(src), progress)
    reader = _TileReader(tuple(tiles), tuple(heads), values, spec.nodata)
    frames = [_tile_rows(i, tiles[i], heads[i], reader, replace(spec, seed=spec.seed + i).patch(size), spec)
              for i in tqdm(range(len(tiles)), desc="planning patches", unit="tile", disable=not progress)]
    meta = pd.concat(frames, ignore_index=True)
    rule = spec.split or ("folders" if any(t.split for t in tiles) else "random")
    meta["split"] = tile_splits(meta, rule, spec.fractions, spec.seed)
    index = meta.pop("_tile").to_numpy()
    plan = ImportPlan(bands, size, meta, lambda idx: reader.patches(index, meta, idx, size, images=True),
                      lambda idx: reader.patches(index, meta, idx, size, images=False))
    return TilePlan(plan, len(tiles), values, rule)


def import_tiles(src: str | Path, out: str | Path, spec: TileImportSpec | None = None,
                 progress: bool = False) -> tuple[PatchStore, TilePlan]:
    """Import image tiles and masks into the patch store ``out`` (created, or appended to).

    Returns
    -------
    tuple
        The store and the :class:`TilePlan` (tiles read, mask coding and split used).
    """
    spec = spec or TileImportSpec()
    existing = PatchStore.open_existing(out)
    found = plan_tiles(src, spec, existing, progress)
    if len(found.plan.meta) == 0:
        raise PatchStoreError(f"no patch of {src} passes the patch options (empty {spec.empty!r}, max nodata "
                              f"{spec.max_nodata}); use --empty keep or a larger --max-nodata")
    return write_plan(found.plan, out, progress=progress), found


def _bands(tiles: Sequence[TileFile], heads: Sequence[TileHeader], spec: TileImportSpec,
           existing: PatchStore | None) -> tuple[str, ...]:
    count = shared_band_count(tiles, heads, "import each kind into its own store")
    names = spec.bands or (tuple(existing.bands) if existing is not None and len(existing.bands) == count else None)
    names = names or assumed_band_names(count)
    if len(names) != count:
        raise ConfigError(f"--bands names {len(names)} band(s) but the tiles have {count}")
    return tuple(names)


def tile_windows(height: int, width: int, size: int, step: int) -> np.ndarray:
    """``(row, col)`` of the patches of a tile: every ``step`` px, the last ones flush with the far edges."""
    def starts(length: int) -> list[int]:
        if length <= size:
            return [0]
        out = list(range(0, length - size + 1, step))
        return out + ([length - size] if out[-1] != length - size else [])

    rr, cc = np.meshgrid(starts(height), starts(width), indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], axis=1)


def _tile_rows(i: int, tile: TileFile, head: TileHeader, reader: _TileReader, patch: PatchSpec,
               spec: TileImportSpec) -> pd.DataFrame:
    """The chosen patches of one tile as metadata rows (``_tile`` holds the tile's index)."""
    _, labels = reader.tile(i)
    windows = tile_windows(head.height, head.width, patch.size, patch.step)
    cut = np.stack([_padded(labels, r, c, patch.size, MASK_NODATA) for r, c in windows])
    area = float(patch.size**2)
    landslide, nodata = (cut == 1).sum(axis=(1, 2)) / area, (cut == MASK_NODATA).sum(axis=(1, 2)) / area
    windows = windows[select_windows(windows, landslide, nodata, patch)]
    bounds = _bounds(head, windows, patch.size)
    return pd.DataFrame({
        "event": tile.event, "sensor": tile.sensor, "trigger": spec.trigger, "item_id": tile.name,
        "crs": head.crs, "split": tile.split,
        "resolution": head.resolution if head.transform else (spec.resolution or np.nan),
        "xmin": bounds[:, 0], "ymin": bounds[:, 1], "xmax": bounds[:, 2], "ymax": bounds[:, 3],
        "row": windows[:, 0].astype("int64"), "col": windows[:, 1].astype("int64"), "_tile": i,
    }, index=pd.RangeIndex(len(windows)))


def _bounds(head: TileHeader, windows: np.ndarray, size: int) -> np.ndarray:
    """``(xmin, ymin, xmax, ymax)`` of each patch of a georeferenced tile, NaN for the others."""
    if head.transform is None:
        return np.full((len(windows), 4), np.nan)
    a, b, c, d, e, f = head.transform
    corners = [(windows[:, 1] + dc, windows[:, 0] + dr) for dr in (0, size) for dc in (0, size)]
    xs = np.stack([a * col + b * row + c for col, row in corners])
    ys = np.stack([d * col + e * row + f for col, row in corners])
    return np.stack([xs.min(0), ys.min(0), xs.max(0), ys.max(0)], axis=1)


def _padded(array: np.ndarray, r: int, c: int, size: int, fill: float) -> np.ndarray:
    """``array[..., r:r+size, c:c+size]``, padded with ``fill`` where the tile is smaller than a patch."""
    part = array[..., r : r + size, c : c + size]
    short = ((0, 0),) * (array.ndim - 2) + ((0, size - part.shape[-2]), (0, size - part.shape[-1]))
    return np.pad(part, short, constant_values=fill) if any(s[1] for s in short) else part


class _TileReader:
    """Tiles read one at a time (the last two kept), and patches cut from them."""

    def __init__(self, tiles: tuple[TileFile, ...], heads: tuple[TileHeader, ...], values: MaskValues,
                 nodata: float | None) -> None:
        self._tiles, self._heads, self._values, self._nodata = tiles, heads, values, nodata
        self.tile = lru_cache(maxsize=2)(self._read)

    def _read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image, labels = read_tile(self._tiles[i].image, self._tiles[i].mask, self._heads[i], self._values,
                                  self._nodata)
        if labels is None:  # an image without a mask, imported as all background (``unpaired="background"``)
            labels = np.where(np.isnan(image).any(axis=0), MASK_NODATA, 0).astype(np.uint8)
        return image, labels

    def patches(self, tile_index: np.ndarray, meta: pd.DataFrame, rows: Sequence[int], size: int,
                images: bool) -> np.ndarray:
        """Image ``(k, band, size, size)`` float32 or mask ``(k, size, size)`` uint8 patches of ``rows``."""
        out = []
        for row in rows:
            image, labels = self.tile(int(tile_index[row]))
            r, c = int(meta["row"].iat[row]), int(meta["col"].iat[row])
            out.append(_padded(image, r, c, size, np.nan) if images else _padded(labels, r, c, size, MASK_NODATA))
        return np.stack(out).astype(np.float32 if images else np.uint8)
