"""Read one image tile (any raster format GDAL reads) and its mask: headers, pixels, validity, labels.

A palette (indexed-colour) image, one band of indexes into a colour table, is read as the red,
green and blue its table gives; table entries that are fully transparent are nodata. A PNG cut
short (no end chunk), which GDAL would read with its missing rows as zeros, is refused.

Nodata pixels of an image are those GDAL masks (its nodata value, an alpha band, an internal
mask) and, with ``nodata=V``, those whose every band equals ``V`` (black corners of rotated
scenes that declare no nodata). They become NaN in the image and 255 in the labels. An alpha
band is not an image band, unless it holds more than fully transparent and opaque values: then
it is the image band GDAL marks as alpha by default in 4-band 8-bit files (RGBN).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Geod
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning
from tqdm import tqdm

from geoslide.data.tilefiles import TileFile
from geoslide.errors import ConfigError, GeoslideError, LabelError
from geoslide.inventory.codes import MASK_NODATA
from geoslide.inventory.maskvalues import MaskValues, choose_mask_values, parse_mask_values


@dataclass(frozen=True)
class TileHeader:
    """What the header of an image tile says (no pixels read)."""

    height: int
    width: int
    bands: tuple[int, ...]  # 1-based band indexes, alpha left out
    crs: str
    transform: tuple[float, ...] | None  # affine (a, b, c, d, e, f) of a georeferenced tile, else None
    resolution: float  # metres per pixel, NaN without georeferencing
    names: tuple[str, ...] = ()  # per image band, its common name (red, nir, ...) or "" if the file does not say
    alpha_is_data: bool = False  # a band the file calls alpha holds image values (RGBN saved with GDAL's defaults)
    palette: bool = False  # one band of colour-table indexes: ``bands`` are the table's channels (1 red .. 3 blue)


COMMON_NAMES = frozenset({"coastal", "blue", "green", "red", "rededge", "nir", "nir08", "nir09", "swir16", "swir22"})
"""Band names a tile's band descriptions may give (STAC eo common names)."""

_ALIASES = {"b01": "coastal", "b1": "coastal", "b02": "blue", "b2": "blue", "b03": "green", "b3": "green",
            "b04": "red", "b4": "red", "b08": "nir", "b8": "nir", "b8a": "nir08", "b09": "nir09",
            "b11": "swir16", "b12": "swir22", "near-infrared": "nir", "near infrared": "nir", "swir1": "swir16",
            "swir2": "swir22"}
"""Sentinel-2 band ids and other spellings of common names found in band descriptions."""


NAMED_BANDS = {1: ("gray",), 3: ("red", "green", "blue"), 4: ("red", "green", "blue", "nir")}
"""Names assumed for tiles that do not name their bands, by band count."""


def assumed_band_names(count: int) -> tuple[str, ...]:
    """The names tiles of ``count`` bands are taken to have: :data:`NAMED_BANDS`, else ``b1``, ``b2``..."""
    return NAMED_BANDS.get(count) or tuple(f"b{i + 1}" for i in range(count))


def shared_band_count(tiles: Sequence[TileFile], heads: Sequence[TileHeader], fix: str,
                      error: type[GeoslideError] = ConfigError) -> int:
    """The band count all ``tiles`` have; tiles that differ are refused with ``error`` (``fix``: what to do)."""
    counts = {len(h.bands) for h in heads}
    if len(counts) > 1:
        other = next(t.image for t, h in zip(tiles, heads, strict=True) if len(h.bands) != len(heads[0].bands))
        raise error(f"tiles differ in band count ({sorted(counts)}), e.g. {tiles[0].image} and {other}; {fix}")
    return counts.pop()


def band_name(description: str | None, interp: ColorInterp) -> str:
    """A band's common name from its description (``red``, ``B04``, ``NIR``), else its colour interpretation."""
    text = (description or "").strip().lower()
    if text in COMMON_NAMES:
        return text
    if text in _ALIASES:
        return _ALIASES[text]
    return interp.name if interp in (ColorInterp.red, ColorInterp.green, ColorInterp.blue) else ""


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
"""The first bytes of every PNG file, whatever its name."""
PNG_END = b"IEND"
"""The type of a PNG's last chunk; a file without it was cut short."""


def open_raster(path: Path):
    """``rasterio.open`` without the not-georeferenced warning; an unreadable or truncated file as a ConfigError."""
    _check_complete(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise ConfigError(f"cannot read {path}: {str(exc).splitlines()[0]}; is it an image GDAL reads?") from None


def _check_complete(path: Path) -> None:
    """Refuse a PNG without its end chunk: GDAL reads one cut short with no error, its missing rows as zeros."""
    path = Path(path)
    if not path.is_file():
        return
    with path.open("rb") as f:
        if f.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
            return
        f.seek(max(0, path.stat().st_size - 64))
        tail = f.read()
    if PNG_END not in tail:
        raise ConfigError(f"{path} is truncated (the PNG has no end chunk): copy or download it again")


def tile_header(path: Path) -> TileHeader:
    """The header of an image tile: size, image bands, and CRS/transform/pixel size when georeferenced."""
    with open_raster(path) as ds:
        interp = ds.colorinterp
        if ds.count == 1 and interp[0] == ColorInterp.palette:
            return _georeferenced(ds, TileHeader(ds.height, ds.width, (1, 2, 3), "", None, np.nan,
                                                 ("red", "green", "blue"), palette=True))
        data_alpha = [i + 1 for i, c in enumerate(interp) if c == ColorInterp.alpha and not _is_alpha(ds, i + 1)]
        bands = tuple(i + 1 for i, c in enumerate(interp) if c != ColorInterp.alpha or i + 1 in data_alpha)
        bands = bands or (1,)
        names = tuple(band_name(ds.descriptions[b - 1], interp[b - 1]) for b in bands)
        return _georeferenced(ds, TileHeader(ds.height, ds.width, bands, "", None, np.nan, names, bool(data_alpha)))


def _georeferenced(ds, head: TileHeader) -> TileHeader:
    """``head`` with the CRS, transform and pixel size of ``ds`` where it is georeferenced."""
    if ds.crs is None or ds.transform.is_identity:
        return head
    return replace(head, crs=ds.crs.to_string(), transform=tuple(ds.transform)[:6], resolution=_metres_per_pixel(ds))


def read_bands(ds, head: TileHeader, out_shape: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The head's bands of an open tile as float32 ``(band, h, w)``, and where a palette tile shows a colour.

    ``out_shape`` reads the tile decimated to ``(h, w)``. A palette tile hides the indexes its
    colour table makes transparent and its declared nodata index; for any other tile the second
    array is all True (its nodata is GDAL's mask, read by :func:`read_tile`).
    """
    shape = out_shape or (ds.height, ds.width)
    if not head.palette:
        return ds.read(list(head.bands), out_shape=(len(head.bands), *shape)).astype(np.float32), np.ones(shape, bool)
    index = ds.read(1, out_shape=shape)
    table = ds.colormap(1)
    lut = np.zeros((max(256, max(table) + 1, int(index.max()) + 1), 4), np.float32)  # unlisted index: transparent
    for value, rgba in table.items():
        lut[value] = rgba
    colours = lut[index]
    shown = colours[..., 3] > 0
    if ds.nodata is not None:  # a declared nodata value of a palette band is an index
        shown &= index != ds.nodata
    return colours[..., [b - 1 for b in head.bands]].transpose(2, 0, 1).copy(), shown


def _is_alpha(ds, band: int) -> bool:
    """Whether a band the file calls alpha is one: only fully transparent and opaque values (read decimated).

    GDAL saves any 4-band 8-bit image as RGB plus alpha unless told otherwise, so an RGBN tile's
    near-infrared band often comes marked as alpha; it holds many values, a real alpha two.
    """
    scale = max(1, max(ds.height, ds.width) // 512)
    values = np.unique(ds.read(band, out_shape=(max(1, ds.height // scale), max(1, ds.width // scale))))
    opaque = np.iinfo(ds.dtypes[band - 1]).max if np.issubdtype(ds.dtypes[band - 1], np.integer) else 1
    return set(values.tolist()) <= {0, opaque}


def _metres_per_pixel(ds) -> float:
    """Pixel width in metres: the transform's in a projected CRS, along the central parallel in degrees."""
    if ds.crs.is_projected:
        return abs(ds.transform.a) * ds.crs.linear_units_factor[1]
    (x0, y0), (x1, _) = ds.xy(ds.height // 2, 0), ds.xy(ds.height // 2, 1)
    return abs(Geod(ellps="WGS84").inv(x0, y0, x1, y0)[2])


def mask_values_found(path: Path) -> np.ndarray:
    """Distinct raw values of a mask (band 1, its declared nodata value included)."""
    with open_raster(path) as ds:
        return np.unique(ds.read(1))


def tiles_mask_values(masks: Sequence[Path | None], given: str | MaskValues | None, source: str,
                      progress: bool = False) -> MaskValues:
    """The mask coding of a set of tiles: ``given``, else decided from the values of all masks together."""
    parsed = parse_mask_values(given)
    if parsed is not None:
        return parsed
    found: set[float] = set()
    present = [m for m in masks if m is not None]
    if not present:
        return MaskValues()
    for mask in tqdm(present, desc="reading mask values", unit="mask",
                     disable=not progress):
        found.update(mask_values_found(mask).tolist())
    return choose_mask_values(found, None, source)


def read_tile(image: Path, mask: Path | None, head: TileHeader, values: MaskValues | None,
              nodata: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(band, h, w)`` float32 image with NaN at nodata, and uint8 labels 0/1/255 (None without a mask)."""
    with open_raster(image) as ds:
        data, shown = read_bands(ds, head)
        if head.alpha_is_data:  # GDAL's mask would come from that band: only a declared nodata value counts
            valid = ~np.all(data == ds.nodata, axis=0) if ds.nodata is not None else np.ones(data.shape[1:], bool)
        else:
            valid = (ds.dataset_mask() > 0) & shown
    if nodata is not None:
        valid &= ~np.all(data == nodata, axis=0)
    data[:, ~valid] = np.nan
    if mask is None:
        return data, None
    return data, np.where(valid, read_labels(mask, head, values), MASK_NODATA).astype(np.uint8)


def read_labels(mask: Path, head: TileHeader, values: MaskValues | None) -> np.ndarray:
    """A tile's mask recoded to 0/1/255, checked to match its image's size."""
    with open_raster(mask) as ds:
        if (ds.height, ds.width) != (head.height, head.width):
            raise LabelError(f"mask {mask} is {ds.width}x{ds.height} px but its image is {head.width}x{head.height}; "
                             "pair each image with its own mask")
        raw, declared = ds.read(1).astype(np.float64), ds.nodata
    if values is None:
        raise LabelError(f"no mask value mapping for {mask}; pass --mask-values")
    if declared is not None and declared not in (*values.background, *values.landslide):
        raw[raw == declared] = np.nan  # a declared nodata that is not a class value (GDAL often writes 0)
    return values.apply(raw, str(mask))
