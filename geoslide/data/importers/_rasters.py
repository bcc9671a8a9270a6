"""Image/label raster pairs (GeoTIFF, PNG, JPEG) cut into square patches: headers, windows, codes, 8-bit.

A :class:`RasterPair` is one released image and its label. :func:`pair_tiles` cuts it into
``size`` x ``size`` windows (row-major; edge windows padded: image NaN, mask nodata). Labels may be
one pixel larger than their image in either direction (GDCLD releases some so): the extra row or
column is dropped. :class:`LabelCodes` maps the label values to 0/1/nodata and counts the values
it maps, for one warning after the mask check.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Geod
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import xy
from rasterio.windows import Window

from geoslide.data.importers._common import binary_mask
from geoslide.errors import ConfigError, LabelError, PatchStoreError
from geoslide.inventory.codes import MASK_NODATA

RGB = 3
#: Low and high percentiles of the linear stretch to 8 bits.
STRETCH = (2.0, 98.0)
_GEO_KEYS = ("crs", "resolution", "xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class RasterPair:
    """A released image and its label, with what the path says about them.

    ``item`` is the image's path in the release without suffix, the same whichever folder was imported.
    """

    image: Path
    label: Path
    split: str
    event: str
    sensor: str
    item: str


@dataclass(frozen=True)
class Header:
    """What the image file says without reading pixels."""

    width: int
    height: int
    count: int
    dtype: str
    alpha: bool
    nodata: float | None
    geo: dict


def read_header(path: Path) -> Header:
    """The header of an image; refuses files with fewer than three bands or unreadable ones."""
    with _quiet(), _opened(path) as ds:
        if ds.count < RGB:
            raise PatchStoreError(f"{path} has {ds.count} band(s); GDCLD images are RGB (3 bands, or 4 with alpha)")
        alpha = ds.count > RGB and ds.colorinterp[RGB] == rasterio.enums.ColorInterp.alpha
        geo = {"crs": "", "resolution": np.nan, "xmin": np.nan, "ymin": np.nan, "xmax": np.nan, "ymax": np.nan}
        if ds.crs is not None and not ds.transform.is_identity:
            geo = {"crs": ds.crs.to_string(), "resolution": _metres_per_pixel(ds), "transform": ds.transform}
        return Header(ds.width, ds.height, ds.count, ds.dtypes[0], alpha, ds.nodata, geo)


def _opened(path: Path):
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        raise ConfigError(f"{path} is not a readable raster ({err}); re-download it") from err


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def _metres_per_pixel(ds) -> float:
    """Pixel width in metres: the transform's, or along the image's central parallel for degrees."""
    if ds.crs.is_projected:
        return abs(ds.transform.a) * ds.crs.linear_units_factor[1]
    geod = Geod(ellps="WGS84")
    (x0, y0), (x1, _) = ds.xy(ds.height // 2, 0), ds.xy(ds.height // 2, 1)
    return abs(geod.inv(x0, y0, x1, y0)[2])


def pair_tiles(header: Header, size: int) -> list[tuple[int, int]]:
    """Top-left ``(row, col)`` of the ``size`` windows covering an image, row-major."""
    return [(r, c) for r in range(0, header.height, size) for c in range(0, header.width, size)]


def tile_geo(header: Header, row: int, col: int, size: int) -> dict:
    """CRS, resolution and bounds of one window (NaN bounds for an image without georeferencing)."""
    geo = dict(header.geo)
    transform = geo.pop("transform", None)
    if transform is None:
        return geo
    (west, east), (north, south) = xy(transform, [row, row + size], [col, col + size], offset="ul")
    return geo | {"xmin": min(west, east), "xmax": max(west, east), "ymin": min(south, north),
                  "ymax": max(south, north)}


def check_label(pair: RasterPair, header: Header) -> bool:
    """Whether the label fits its image; True when it is one pixel larger (then cropped). Else refused."""
    with _quiet(), _opened(pair.label) as ds:
        shape = (ds.count, ds.height, ds.width)
    extra = (shape[1] - header.height, shape[2] - header.width)
    if shape[0] != 1 or extra[0] not in (0, 1) or extra[1] not in (0, 1):
        raise PatchStoreError(f"{pair.label} is {shape[0]} band(s) of {shape[2]}x{shape[1]}, its image "
                              f"{header.width}x{header.height}; a label is one band of the image's size (or 1 px more)")
    return extra != (0, 0)


@dataclass
class LabelCodes:
    """Label value -> class (0 background, 1 landslide, 255 nodata), with counts of the values seen.

    ``binary`` (generic layouts without explicit codes): 0/1 or 0/255 labels, 255 = landslide in the latter.
    """

    codes: Mapping[int, int]
    binary: bool = False
    counting: bool = True
    seen: Counter = field(default_factory=Counter)

    def apply(self, values: np.ndarray, where: Path) -> np.ndarray:
        """Values -> uint8 0/1/255; unknown values are refused."""
        if self.binary:
            return binary_mask(values, str(where), allow_255=True)
        found, counts = np.unique(values, return_counts=True)
        mapping = self.codes
        if unknown := [int(v) for v in found if int(v) not in mapping]:
            known = ", ".join(f"{k}={v}" for k, v in sorted(self.codes.items()))
            raise LabelError(f"{where}: label values {unknown[:8]} are not among the codes {known}; fix the label or "
                             "give --label-codes VALUE=CLASS")
        if self.counting:
            self.seen.update({int(v): int(n) for v, n in zip(found, counts, strict=True)})
        lookup = np.zeros(256 if values.dtype == np.uint8 else int(found.max()) + 1, np.uint8)
        for value, cls in mapping.items():
            if 0 <= value < len(lookup):
                lookup[value] = cls
        return lookup[values.astype(np.int64)]


def read_tile(pair: RasterPair, header: Header, row: int, col: int, size: int,
              stretch: np.ndarray | None) -> np.ndarray:
    """The ``(3, size, size)`` float32 image window, NaN outside the image, at nodata and where alpha is 0."""
    window = Window(col, row, size, size)
    with _quiet(), _opened(pair.image) as ds:
        data = ds.read(window=window, boundless=True, fill_value=0, masked=False).astype(np.float64)
        inside = ds.read_masks(1, window=window, boundless=True) if header.nodata is not None else None
    valid = np.zeros((size, size), bool)
    valid[: max(0, min(size, header.height - row)), : max(0, min(size, header.width - col))] = True
    if header.alpha:
        valid &= data[RGB] > 0
    if inside is not None:
        valid &= inside > 0
    rgb = data[:RGB]
    if stretch is not None:
        low, high = stretch[:, 0, None, None], stretch[:, 1, None, None]
        rgb = np.round(np.clip((rgb - low) / np.maximum(high - low, 1e-12), 0, 1) * 255)
    rgb[:, ~valid] = np.nan
    return rgb.astype(np.float32)


def read_label_tile(pair: RasterPair, header: Header, row: int, col: int, size: int, codes: LabelCodes,
                    valid: np.ndarray) -> np.ndarray:
    """The ``(size, size)`` uint8 0/1/255 label window; nodata outside the image and where ``valid`` is False."""
    height, width = min(size, header.height - row), min(size, header.width - col)
    with _quiet(), _opened(pair.label) as ds:
        values = ds.read(1, window=Window(col, row, width, height))
    out = np.full((size, size), MASK_NODATA, np.uint8)
    out[:height, :width] = codes.apply(values, pair.label)
    out[~valid] = MASK_NODATA
    return out


def stretch_limits(path: Path, header: Header) -> np.ndarray:
    """Per band the 2nd and 98th percentile of the valid pixels (from a read of at most 1024 px a side)."""
    scale = max(1.0, max(header.width, header.height) / 1024)
    shape = (header.count, max(1, round(header.height / scale)), max(1, round(header.width / scale)))
    with _quiet(), _opened(path) as ds:
        data = ds.read(out_shape=shape).astype(np.float64)
        valid = np.ones(shape[1:], bool) if header.nodata is None else ds.read_masks(1, out_shape=shape[1:]) > 0
    if header.alpha:
        valid &= data[RGB] > 0
    if not valid.any():
        return np.tile([0.0, 1.0], (RGB, 1))
    return np.stack([np.percentile(band[valid], STRETCH) for band in data[:RGB]])


def match_labels(images: Sequence[Path], label_dir: Path, suffixes: Sequence[str]) -> dict[Path, Path]:
    """Each image's label in ``label_dir`` (same stem, any raster suffix); an image without one is refused."""
    by_stem = {p.stem: p for p in label_dir.iterdir() if p.suffix.lower() in suffixes} if label_dir.is_dir() else {}
    out = {}
    for image in images:
        if image.stem not in by_stem:
            raise LabelError(f"{image} has no label {label_dir}/{image.stem}.* ({'/'.join(suffixes)}); add it "
                             "or remove the image")
        out[image] = by_stem[image.stem]
    return out


def geo_columns(geo: dict) -> dict:
    """The store columns of a tile's georeferencing."""
    return {key: geo[key] for key in _GEO_KEYS}
