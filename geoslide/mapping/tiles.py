"""Map plain image tiles with a model, no STAC needed: ``geoslide map --tiles DIR --out OUTDIR``.

Every image tile found in ``DIR`` (:mod:`geoslide.data.tilefiles`; masks optional) is predicted
whole (:func:`~geoslide.mapping.tiling.predict_block`, tiled inside when large; a model normalised
per scene takes each tile's own statistics) and its mask
written under ``OUTDIR`` with the tile's relative name: a GeoTIFF (keeping CRS and transform)
for TIFF tiles, a PNG for the others. Masks hold 0 background, 1 landslide, 255 nodata, with a
colour table (landslides red) so that viewers show them. Per tile, :func:`map_tiles` returns
pixel counts and, where the tile has a mask, the confusion counts against it
(:mod:`geoslide.evaluation.tiles` turns them into scores and the summary table).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from scipy.ndimage import zoom
from tqdm import tqdm

from geoslide.data.tilefiles import TileFile, find_tiles
from geoslide.data.tileread import (
    TileHeader,
    assumed_band_names,
    open_raster,
    read_bands,
    read_tile,
    shared_band_count,
    tile_header,
    tiles_mask_values,
)
from geoslide.errors import BandError, ConfigError, GeoslideWarning, OutputError
from geoslide.fileio import write_atomic
from geoslide.inventory.codes import MASK_NODATA
from geoslide.mapping.inputcheck import (
    check_resolution,
    check_target_size,
    check_values,
    model_resolution,
)
from geoslide.mapping.modelcache import load_model
from geoslide.mapping.spec import InferenceSpec, TileMapSpec, check_pixel_size
from geoslide.mapping.tiling import predict_block
from geoslide.models.card import ModelCard
from geoslide.models.choice import Choice, choose_bundled, training_range
from geoslide.models.normalise import Normalisation, for_scene
from geoslide.raster.resize import resample

COLOURS = {0: (0, 0, 0, 255), 1: (230, 30, 30, 255), MASK_NODATA: (128, 128, 128, 0)}


def tile_headers(tiles: Sequence[TileFile], pixel_size: float | None = None) -> list[TileHeader]:
    """The tiles' headers; those without georeferencing take ``pixel_size`` (m) if given."""
    heads = [tile_header(t.image) for t in tiles]
    if pixel_size is None:
        return heads
    return [h if h.transform is not None else replace(h, resolution=float(pixel_size)) for h in heads]


def _sized(head: TileHeader) -> bool:
    """Whether the tile's pixel size is known (georeferenced, or declared)."""
    return bool(np.isfinite(head.resolution))


def map_tiles(src: str | Path, spec: TileMapSpec, progress: bool = False) -> pd.DataFrame:
    """Predict every tile of ``src``, write one mask per tile under ``spec.out``; one table row per tile.

    Columns: ``tile``, ``mask`` (path written), ``width``, ``height``, ``valid_pixels``,
    ``landslide_pixels``, ``landslide_share``, ``landslide_m2`` (tiles without georeferencing at the
    model's training pixel size, NaN if it has none), and for
    tiles with a mask ``tn``, ``fp``, ``fn``, ``tp`` (pixels nodata in either left out).
    """
    tiles = find_tiles(src, masks="optional")
    _check_out(spec.out)
    heads = tile_headers(tiles, spec.pixel_size)
    model, card = load_model(spec.model, spec.inference.device)
    heads = _model_bands(card, heads, tiles, tile_bands(heads, tiles, spec.bands))
    targets = _targets(spec.resolution, card, heads, tiles)
    check_tiles(card, heads, tiles, f"model {Path(spec.model).name}", targets)
    values = tiles_mask_values([t.mask for t in tiles], spec.mask_values, str(src)) \
        if any(t.mask for t in tiles) else None
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)  # only once everything is checked
    rows = []
    for tile, head, target in tqdm(list(zip(tiles, heads, targets, strict=True)), desc="mapping tiles",
                                   unit="tile", disable=not progress):
        image, truth = read_tile(tile.image, tile.mask, head, values, spec.nodata)
        prob = _predict_at(image, head.resolution, target, model, card, spec.inference)
        mask = np.where(np.isnan(prob), MASK_NODATA, prob >= card.threshold).astype(np.uint8)
        path = _write_mask(out, tile, head, mask)
        rows.append(_row(tile, head, mask, truth, path, card.resolution))
    return pd.DataFrame(rows)


def _targets(resolution: float | str | None, card: ModelCard, heads: Sequence[TileHeader],
             tiles: Sequence[TileFile]) -> list[float | None]:
    """Per tile, the pixel size to map it at (None: its own)."""
    if resolution is None:
        return [None] * len(heads)
    if bad := next((t for t, h in zip(tiles, heads, strict=True) if not _sized(h)), None):
        raise ConfigError(f"{bad.image} has no georeferencing, so its pixel size is unknown: declare it with "
                          "--pixel-size M, drop --resolution, or georeference the tiles")
    targets = [model_resolution(h.resolution, card) if resolution == "model" else float(resolution) for h in heads]
    _check_targets(targets, heads, tiles)
    return targets


def _check_targets(targets: Sequence[float], heads: Sequence[TileHeader], tiles: Sequence[TileFile]) -> None:
    """:func:`~geoslide.mapping.inputcheck.check_target_size` for every tile, against its own pixels and sides."""
    for tile, head, target in zip(tiles, heads, targets, strict=True):
        check_target_size(target, target, head.resolution, min(head.height, head.width) * head.resolution,
                          f"the {head.resolution:g} m pixels of {tile.image}",
                          f"the whole tile {tile.image} ({head.width} x {head.height} px of {head.resolution:g} m)")


def _predict_at(image: np.ndarray, native: float, target: float | None, model, card: ModelCard,
                inference: InferenceSpec) -> np.ndarray:
    """Probability on the tile's grid, predicted at ``target`` metres (resampled there and back) if given."""
    if target is None or abs(target / native - 1) < 1e-6:
        return predict_block(image, model, tile_card(card, image), inference)
    valid = ~np.isnan(image).any(axis=0)
    scaled, kept = resample(np.nan_to_num(image), valid, target / native)
    scaled = scaled.astype(np.float32)
    scaled[:, ~kept] = np.nan
    prob = np.nan_to_num(predict_block(scaled, model, tile_card(card, scaled), inference))
    back = zoom(prob, (image.shape[1] / prob.shape[0], image.shape[2] / prob.shape[1]), order=1, grid_mode=True,
                mode="nearest")[: image.shape[1], : image.shape[2]]
    back = np.pad(back, ((0, image.shape[1] - back.shape[0]), (0, image.shape[2] - back.shape[1])), mode="edge")
    return np.where(valid, back, np.nan)


def tile_card(card: ModelCard, image: np.ndarray) -> ModelCard:
    """The card to map ``image`` (band, y, x; NaN nodata) with: the tile is its own scene for scene-normalised cards."""
    if card.normalise == "fixed":
        return card
    norm = for_scene(Normalisation(card.mean, card.std), card.normalise, list(image))
    return replace(card, mean=norm.mean, std=norm.std)


def _check_out(out: str) -> None:
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise OutputError(f"{out} exists and is not an empty folder; pick a new --out for the tile masks")


def tile_bands(heads: Sequence[TileHeader], tiles: Sequence[TileFile], given: Sequence[str] | None = None
               ) -> tuple[str, ...]:
    """Names of the tiles' bands in file order.

    ``given`` (``--bands``), else the names every file gives (band descriptions such as ``nir`` or
    ``B08``, colour interpretation red, green, blue), else those ``geoslide import tiles`` assumes:
    ``red, green, blue[, nir]`` for 3 and 4 bands, ``b1``... otherwise.
    """
    count = shared_band_count(tiles, heads, "map each kind from its own folder", error=BandError)
    if given:
        if len(given) != count:
            raise BandError(f"--bands names {len(given)} band(s) but the tiles have {count}; name each band in "
                            "file order, e.g. --bands blue green red nir")
        return tuple(b.lower() for b in given)
    said = {h.names for h in heads}
    if len(said) == 1 and all(names := said.pop()) and len(set(names)) == count:
        return names
    return assumed_band_names(count)


def choose_tile_model(src: str | Path, bands: Sequence[str] | None = None, pixel_size: float | None = None
                      ) -> Choice:
    """The bundled model for the tiles in ``src``: by their band names and median pixel size (if known).

    ``pixel_size``: that of the tiles without georeferencing (:func:`tile_headers`).
    """
    check_pixel_size(pixel_size)
    tiles = find_tiles(src, masks="optional")
    heads = tile_headers(tiles, pixel_size)
    names = tile_bands(heads, tiles, bands)
    sizes = [h.resolution for h in heads if _sized(h)]
    resolution = float(np.median(sizes)) if sizes else None
    return choose_bundled(names, resolution, positional=all(_unnamed(n) for n in names))


TILE_UNITS_FIX = "convert the tiles to the model's units, or pass a model trained on such values with --model"
SAMPLED_TILES = 4
"""Tiles whose values are compared with the model card before mapping (decimated reads)."""


def check_tiles(card: ModelCard, heads: Sequence[TileHeader], tiles: Sequence[TileFile], model: str,
                targets: Sequence[float | None] | None = None) -> None:
    """Check the tiles against the card before anything is written.

    A pixel size (``targets``, else the tiles' own) outside the card's range is warned about, values
    far from a fixed-normalised card's are refused.
    """
    targets = targets or [None] * len(heads)
    sizes = [t or h.resolution for h, t in zip(heads, targets, strict=True) if _sized(h)]
    if sizes:
        check_resolution(float(np.median(sizes)), card, model)
    _note_unknown_sizes(heads, card, model)
    if card.normalise != "fixed":
        return  # the card takes each tile's own brightness or statistics: any units
    samples = [_decimated(t.image, h) for t, h in list(zip(tiles, heads, strict=True))[:SAMPLED_TILES]]
    check_values({b: np.concatenate([x[i] for x in samples]) for i, b in enumerate(card.bands)}, card, model,
                 fix=TILE_UNITS_FIX)


def _note_unknown_sizes(heads: Sequence[TileHeader], card: ModelCard, model: str) -> None:
    """Say once that tiles of unknown pixel size are mapped as they are, when the card has a training range."""
    unknown = sum(not _sized(h) for h in heads)
    span = training_range(card)
    if unknown and span:
        warnings.warn(f"{unknown} tile(s) have no georeferencing, so their pixel size is unknown and they are mapped "
                      f"at their own pixels; {model} was trained at {span[0]:.3g}-{span[1]:.3g} m: if theirs is far "
                      "from that, declare it with --pixel-size M and add --resolution model", GeoslideWarning,
                      stacklevel=3)


def _decimated(path: Path, head: TileHeader, side: int = 256) -> np.ndarray:
    """The head's bands of a tile, at most ``side`` px a side, valid values only (band, n)."""
    scale = max(1, max(head.height, head.width) // side)
    with open_raster(path) as ds:
        data, shown = read_bands(ds, head, (max(1, head.height // scale), max(1, head.width // scale)))
        nodata = ds.nodata
    flat = data.astype("float64").reshape(len(head.bands), -1)
    keep = np.all(np.isfinite(flat), axis=0) & shown.ravel()
    if nodata is not None and not head.palette:  # a palette's nodata is an index, left out by read_bands
        keep &= ~np.all(flat == nodata, axis=0)
    return flat[:, keep]


def _unnamed(name: str) -> bool:
    return name[:1] == "b" and name[1:].isdigit()


def _model_bands(card: ModelCard, heads: list[TileHeader], tiles: list[TileFile], names: tuple[str, ...]
                 ) -> list[TileHeader]:
    """``heads`` reading the card's bands: by name where the tiles have them all, else in file order."""
    wanted = [b.lower() for b in card.bands]
    if all(b in names for b in wanted):
        return [replace(h, bands=tuple(h.bands[names.index(b)] for b in wanted)) for h in heads]
    for tile, head in zip(tiles, heads, strict=True):
        if len(head.bands) != len(card.bands):
            raise BandError(f"{tile.image} has {len(head.bands)} band(s) ({', '.join(names)}) but the model takes "
                            f"{len(card.bands)} ({', '.join(card.bands)}); map tiles like those it was trained on, "
                            "or name their bands with --bands")
    return heads


def _write_mask(out: Path, tile: TileFile, head: TileHeader, mask: np.ndarray) -> Path:
    tiff = tile.image.suffix.lower() in (".tif", ".tiff")
    path = out / f"{tile.name}{'.tif' if tiff else '.png'}"
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff" if tiff else "PNG", "width": mask.shape[1], "height": mask.shape[0], "count": 1,
               "dtype": "uint8", "nodata": MASK_NODATA}
    if tiff:
        profile |= {"compress": "deflate"}
        if head.transform is not None:
            profile |= {"crs": head.crs, "transform": rasterio.Affine(*head.transform)}

    def write(tmp: str) -> None:
        with warnings.catch_warnings(), rasterio.Env(GDAL_PAM_ENABLED="NO"):  # no .aux.xml beside a PNG
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(tmp, "w", **profile) as ds:
                ds.write(mask, 1)
                ds.write_colormap(1, COLOURS)

    write_atomic(path, write)
    return path


def _row(tile: TileFile, head: TileHeader, mask: np.ndarray, truth: np.ndarray | None, path: Path,
         trained_resolution: float | None) -> dict:
    """One table row; tiles of unknown pixel size take the one the model was trained at for areas."""
    resolution = head.resolution if _sized(head) else (trained_resolution or np.nan)
    valid = mask != MASK_NODATA
    landslide = int((mask == 1).sum())
    row = {"tile": tile.name, "mask": str(path), "width": head.width, "height": head.height,
           "valid_pixels": int(valid.sum()), "landslide_pixels": landslide,
           "landslide_share": landslide / max(int(valid.sum()), 1), "landslide_m2": landslide * resolution**2}
    if truth is not None:
        both = valid & (truth != MASK_NODATA)
        pred, true = (mask == 1) & both, (truth == 1) & both
        tp = int((pred & true).sum())
        row |= {"tn": int(both.sum()) - int(pred.sum()) - int(true.sum()) + tp, "fp": int(pred.sum()) - tp,
                "fn": int(true.sum()) - tp, "tp": tp}
    return row
