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
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from tqdm import tqdm

from geoslide.data.tilefiles import TileFile, find_tiles
from geoslide.data.tileread import TileHeader, read_tile, tile_header, tiles_mask_values
from geoslide.errors import BandError, OutputError
from geoslide.fileio import write_atomic
from geoslide.inventory.codes import MASK_NODATA
from geoslide.mapping.modelcache import load_model
from geoslide.mapping.tiling import InferenceSpec, predict_block
from geoslide.models.card import ModelCard
from geoslide.models.normalise import Normalisation, for_scene

COLOURS = {0: (0, 0, 0, 255), 1: (230, 30, 30, 255), MASK_NODATA: (128, 128, 128, 0)}


@dataclass(frozen=True)
class TileMapSpec:
    """What :func:`map_tiles` does.

    Parameters
    ----------
    out
        Output folder (created; must be empty if it exists).
    model
        Model directory.
    inference
        Tiling inside large tiles, batch size, device.
    mask_values
        Coding of the tiles' own masks, if any (:mod:`geoslide.inventory.maskvalues`).
    nodata
        Image value marking nodata where a tile declares none.
    """

    out: str
    model: str
    inference: InferenceSpec = field(default_factory=InferenceSpec)
    mask_values: str | None = None
    nodata: float | None = None


def map_tiles(src: str | Path, spec: TileMapSpec, progress: bool = False) -> pd.DataFrame:
    """Predict every tile of ``src``, write one mask per tile under ``spec.out``; one table row per tile.

    Columns: ``tile``, ``mask`` (path written), ``width``, ``height``, ``valid_pixels``,
    ``landslide_pixels``, ``landslide_share``, ``landslide_m2`` (tiles without georeferencing at the
    model's training pixel size, NaN if it has none), and for
    tiles with a mask ``tn``, ``fp``, ``fn``, ``tp`` (pixels nodata in either left out).
    """
    tiles = find_tiles(src, masks="optional")
    _check_out(spec.out)
    heads = [tile_header(t.image) for t in tiles]
    model, card = load_model(spec.model, spec.inference.device)
    _check_bands(card, heads, tiles)
    values = tiles_mask_values([t.mask for t in tiles], spec.mask_values, str(src)) \
        if any(t.mask for t in tiles) else None
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)  # only once everything is checked
    rows = []
    for tile, head in tqdm(list(zip(tiles, heads, strict=True)), desc="mapping tiles", unit="tile",
                           disable=not progress):
        image, truth = read_tile(tile.image, tile.mask, head, values, spec.nodata)
        prob = predict_block(image, model, tile_card(card, image), spec.inference)
        mask = np.where(np.isnan(prob), MASK_NODATA, prob >= card.threshold).astype(np.uint8)
        path = _write_mask(out, tile, head, mask)
        rows.append(_row(tile, head, mask, truth, path, card.resolution))
    return pd.DataFrame(rows)


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


def _check_bands(card: ModelCard, heads: list[TileHeader], tiles: list[TileFile]) -> None:
    for tile, head in zip(tiles, heads, strict=True):
        if len(head.bands) != len(card.bands):
            raise BandError(f"{tile.image} has {len(head.bands)} band(s) but the model takes {len(card.bands)} "
                            f"({', '.join(card.bands)}); map tiles like those it was trained on")


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
    """One table row; tiles without georeferencing take the pixel size the model was trained at for areas."""
    resolution = head.resolution if head.transform is not None else (trained_resolution or np.nan)
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
