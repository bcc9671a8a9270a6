"""What a map job is asked to do: the specs of ``geoslide map`` and their checks, and nothing else.

The specs are checked where they are made, so that a bad option is refused in one line before
the heavy parts of mapping (torch, xarray, the STAC search) are even imported: this module needs
only numpy. :mod:`geoslide.mapping.job`, :mod:`geoslide.mapping.tiles` and
:mod:`geoslide.mapping.tiling` carry the specs out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from geoslide.catalog.query import StacQuery
from geoslide.errors import ConfigError, GridError

if TYPE_CHECKING:
    from geoslide.models.card import ModelCard

ZARR_FORMATS = (2, 3)


def check_zarr_format(zarr_format: int) -> None:
    """Refuse a Zarr format other than 2 or 3, in one line."""
    if zarr_format not in ZARR_FORMATS:
        raise ConfigError(f"zarr format must be 2 or 3, got {zarr_format}; 2 for GDAL < 3.11 and QGIS, else 3")


def check_resolution_option(resolution: float | str | None, hint: str) -> None:
    """Refuse a ``resolution`` option that is neither a positive number nor ``"model"`` (``hint``: what to give)."""
    if isinstance(resolution, str) and resolution != "model":
        raise GridError(f"resolution must be a number of metres or 'model', got {resolution!r}")
    if isinstance(resolution, (int, float)) and not resolution > 0:
        raise GridError(f"resolution must be positive, got {resolution}; {hint}")


BLENDS = ("hann", "flat")
MAX_TILE = 1536  # px: a 1024 px chunk with its context fits in one forward pass


@dataclass(frozen=True)
class InferenceSpec:
    """How to cut an image for inference.

    Parameters
    ----------
    chunk
        Dask chunk size in pixels along y and x; a multiple of the model's size multiple.
        A ragged last chunk smaller than ``overlap`` is merged into the one before it.
    overlap
        Context in pixels added on each side of a chunk and of a tile; a multiple of the size
        multiple. None derives it from the model card: half the receptive field, rounded up to
        the size multiple; for a model without one (global attention) a quarter of its training
        patch size, rounded up likewise.
    batch_size
        Tiles per forward pass.
    tile
        Tile size in pixels, a multiple of the size multiple and at least ``2 * overlap`` plus
        one size multiple. None takes the whole chunk plus its overlap on both sides when that is
        at most ``max(MAX_TILE, 4 * overlap)`` (1536 px), else that bound.
    device
        Torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``); None takes CUDA when the process
        running a chunk sees a GPU, else the CPU.
    blend
        ``"hann"`` (cosine taper) or ``"flat"`` (plain mean) weights where tile cores overlap
        (they overlap only for models without a finite receptive field).
    """

    chunk: int = 1024
    overlap: int | None = None
    batch_size: int = 4
    tile: int | None = None
    device: str | None = None
    blend: str = "hann"

    def __post_init__(self) -> None:
        if self.chunk < 16:
            raise GridError(f"inference chunk {self.chunk} px is too small; use at least 256 (default 1024)")
        if self.overlap is not None and self.overlap < 0:
            raise GridError(f"overlap must be >= 0 px, got {self.overlap}; leave it unset to derive it from the model")
        if self.tile is not None and self.tile < 1:
            raise GridError(f"tile must be a positive size in px, got {self.tile}; leave it unset for the default")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.blend not in BLENDS:
            raise ConfigError(f"unknown blend {self.blend!r}; use one of {', '.join(BLENDS)}")

    def resolve(self, card: ModelCard, multiple: int) -> InferenceSpec:
        """A copy with ``overlap`` and ``tile`` filled in and checked against a model.

        Parameters
        ----------
        card
            The model's card (receptive field, patch size).
        multiple
            The model's size multiple (see :func:`geoslide.models.size_multiple`).
        """
        overlap = default_overlap(card, multiple) if self.overlap is None else self.overlap
        check_multiple("chunk", self.chunk, multiple)
        check_multiple("overlap", overlap, multiple)
        if overlap > self.chunk:
            raise GridError(f"overlap {overlap} px exceeds the chunk of {self.chunk} px; "
                            f"use chunk >= {overlap} or a smaller overlap")
        tile = default_tile(self.chunk, overlap, multiple) if self.tile is None else self.tile
        check_multiple("tile", tile, multiple)
        if tile < 2 * overlap + multiple:
            raise GridError(f"tile {tile} px leaves no room inside {overlap} px of context per side; "
                            f"use tile >= {2 * overlap + multiple}")
        return replace(self, overlap=overlap, tile=tile)


def default_overlap(card: ModelCard, multiple: int) -> int:
    """Context per side: half the receptive field (a quarter patch without one), rounded up to ``multiple``."""
    if card.receptive_field is not None:
        return round_up(math.ceil(card.receptive_field / 2), multiple)
    return round_up(max(card.patch_size // 4, 1), multiple)


def check_multiple(name: str, value: int, multiple: int) -> None:
    """Refuse a size in pixels (``name``: chunk, overlap, tile) that is not a multiple of the model's."""
    if value % multiple:
        raise GridError(f"{name} {value} px is not a multiple of the model's size multiple {multiple}; "
                        f"use {round_up(value, multiple)}")


def round_up(value: int, multiple: int) -> int:
    """``value`` rounded up to a multiple of ``multiple``."""
    return -(-value // multiple) * multiple


def default_tile(chunk: int, overlap: int, multiple: int) -> int:
    """A whole chunk with its context, unless that exceeds ``MAX_TILE`` (then that, or 4 overlaps)."""
    bound = round_up(max(MAX_TILE, 4 * overlap), multiple)
    return min(round_up(chunk + 2 * overlap, multiple), bound)


@dataclass(frozen=True)
class MapSpec:
    """What to map and where to write it.

    Parameters
    ----------
    out
        Map store path (``OUT.zarr``); the quicklook (``OUT.png``), STAC item (``OUT.json``) and COGs
        (``OUT.probability.tif``, ``OUT.mask.tif``) are written beside it.
    model
        Model directory, or a bundled model's name (``rgb``, ``rgbn``, ``s2``, ``demo``); None chooses
        the bundled model that fits the items' bands and resolution (:func:`geoslide.models.choice.choose_bundled`).
    bands
        Item bands fed to the model, one for each of the model's bands in its order (e.g. an RGB
        model on bands named ``b1 b2 b3``); None reads the model's bands by name.
    vectors
        Path for landslide polygons in the map's CRS: ``.parquet`` (GeoParquet 1.1), ``.gpkg``
        (GeoPackage) or ``.fgb`` (FlatGeobuf); a GeoJSON in WGS 84 is written beside it. None skips.
    inference
        Chunk, overlap, tile and batch sizes, device.
    resolution, epsg
        Target grid; None keeps the items' (several CRSs need ``epsg``). ``resolution="model"``
        resamples to the nearest pixel size in the model's training range.
    min_area
        Minimum mapping unit in m2 for the vectors; None takes the model card's ``min_area``
        (:data:`~geoslide.models.card.MIN_MAPPING_PIXELS` pixels at the model's resolution), 0 keeps
        every polygon.
    split
        Split amalgamated landslides in the vectors.
    cog, quicklook
        Also export COGs; write the quicklook PNG.
    event
        Event name for the summary (default: the items' ``geoslide:event`` or the output name).
    pre_stac_query
        Pre-event items (same catalog), mosaicked onto the map's grid, for a model of ``d_<band>``
        (post - pre) bands; searched only for such a model.
    dem_stac_query
        Items with an ``elevation`` band (same catalog, any grid), for a model of ``slope`` when the
        imagery has no elevation band; searched only for a model of slope or elevation.
    allow_mixed_dates
        Mosaic items of different ``geoslide:phase`` or dates more than
        :data:`~geoslide.raster.scenes.MAX_DAYS_APART` days apart, which is refused otherwise.
    allow_missing_assets
        Leave out, with a warning that counts them, items whose assets cannot be read (HTTP 404,
        missing or corrupt files), instead of refusing to start.
    zarr_format
        Zarr format of the map store: 3, or 2 for GDAL 3.6-3.10 and the QGIS builds on them.
    """

    out: str
    model: str | None = None
    vectors: str | None = None
    inference: InferenceSpec = field(default_factory=InferenceSpec)
    bands: tuple[str, ...] | None = None
    resolution: float | str | None = None
    epsg: int | None = None
    min_area: float | None = None
    split: bool = False
    cog: bool = False
    quicklook: bool = True
    event: str | None = None
    pre_stac_query: str | dict | None = None
    dem_stac_query: str | dict | None = None
    allow_mixed_dates: bool = False
    allow_missing_assets: bool = False
    zarr_format: int = 3

    def __post_init__(self) -> None:
        check_zarr_format(self.zarr_format)
        check_resolution_option(self.resolution, "give the pixel size in the target CRS's units, or leave it unset "
                                "to keep the items'")
        if self.epsg is not None and self.epsg < 1:
            raise GridError(f"epsg must be a positive EPSG code, got {self.epsg}; e.g. 32645 for UTM 45N")
        if self.min_area is not None and not self.min_area >= 0:
            raise ConfigError(f"min-area must be >= 0 m2, got {self.min_area}; 0 keeps every polygon")
        for query in (self.pre_stac_query, self.dem_stac_query):  # checked even when the model needs neither
            if query is not None:
                StacQuery.parse(query)


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
    bands
        Names of the tiles' bands in file order (see :func:`tile_bands`); the model's bands are
        taken from them by name, or in file order when the names are not the model's.
    resolution
        Pixel size (m) to map tiles at, or ``"model"`` for the nearest in the model's training range;
        the mask is resampled back onto the tile (None: as they are). Tiles need a known pixel size
        for it: georeferencing, or ``pixel_size``.
    pixel_size
        Pixel size (m) of the tiles without georeferencing (PNG/JPEG from a UAV or a dataset release),
        for the model choice, the pixel-size check, ``resolution`` and areas; georeferenced tiles keep
        their own.
    """

    out: str
    model: str
    inference: InferenceSpec = field(default_factory=InferenceSpec)
    mask_values: str | None = None
    nodata: float | None = None
    bands: tuple[str, ...] | None = None
    resolution: float | str | None = None
    pixel_size: float | None = None

    def __post_init__(self) -> None:
        check_tile_options(self.resolution, self.pixel_size)


def check_tile_options(resolution: float | str | None, pixel_size: float | None) -> None:
    """Refuse a ``resolution`` or a declared ``pixel_size`` of :class:`TileMapSpec` no tile can have.

    Called by the spec, and before the model for the tiles is chosen (which reads them).
    """
    check_resolution_option(resolution, "give the pixel size in metres, or 'model'")
    check_pixel_size(pixel_size)


def check_pixel_size(pixel_size: float | None) -> None:
    """Refuse a declared pixel size that is not a positive number of metres."""
    if pixel_size is not None and not (np.isfinite(pixel_size) and pixel_size > 0):
        raise GridError(f"--pixel-size must be a positive number of metres, got {pixel_size}; give the ground size "
                        "of one pixel of the tiles, e.g. 0.1 for a UAV orthomosaic")
