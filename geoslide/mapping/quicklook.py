"""A quicklook PNG of a map: imagery with mapped landslides tinted and outlined, read reduced."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr
from rasterio.errors import NotGeoreferencedWarning
from scipy import ndimage

from geoslide.errors import GridError
from geoslide.fileio import Location, location, write_atomic
from geoslide.mapping.cog import read_back

FILL_RGB = np.array([255.0, 40.0, 0.0])
FILL_ALPHA = 0.45
OUTLINE_RGB = np.array([255, 235, 0], dtype=np.uint8)


def quicklook(image: xr.DataArray, overlay: xr.DataArray, path: str | Path, max_size: int = 1024, *,
              threshold: float = 0.5, rgb: Sequence[str] = ("red", "green", "blue")) -> Location:
    """A PNG of ``image`` with mapped landslides tinted and outlined, at most ``max_size`` pixels a side.

    Both arrays are reduced by block means / maxima over ``f x f`` pixels (``f`` the smallest
    factor that fits ``max_size``) before anything is loaded, so a dask-backed mosaic is read
    chunk by chunk and never held whole.

    Parameters
    ----------
    image
        ``(band, y, x)`` imagery; bands named ``rgb`` are shown, else the first three (or one as grey).
        Each band is stretched between its 2nd and 98th percentile.
    overlay
        ``(y, x)`` on the image's grid: a mask (uint8, 1 = landslide) or probabilities (float,
        landslide at and above ``threshold``).
    path
        The ``.png`` to write: a path or an ``s3://`` URL.
    """
    if image.dims[-2:] != ("y", "x") or image.ndim != 3:
        raise GridError(f"quicklook needs imagery with dims (band, y, x), got {image.dims}")
    if overlay.shape != image.shape[1:]:
        raise GridError(f"overlay of shape {overlay.shape} is not on the image's grid {image.shape[1:]}")
    factor = max(1, math.ceil(max(image.shape[1:]) / max_size))
    colour = _stretch(_reduced_rgb(image, factor, rgb))
    hits = _reduced_hits(overlay, factor, threshold)
    return _write_png(_compose(colour, hits), location(path, write=True))


def _pick_bands(image: xr.DataArray, rgb: Sequence[str]) -> xr.DataArray:
    names = [str(b) for b in image["band"].values] if "band" in image.coords else []
    if names and all(b in names for b in rgb):
        return image.sel(band=list(rgb))
    if image.shape[0] >= 3:
        return image.isel({image.dims[0]: [0, 1, 2]})
    return image.isel({image.dims[0]: [0, 0, 0]})


def _reduced_rgb(image: xr.DataArray, factor: int, rgb: Sequence[str]) -> np.ndarray:
    """(3, h, w) float block means, NaN where a block has no data."""
    bands = _pick_bands(image, rgb).astype(np.float32)
    if factor > 1:
        bands = bands.coarsen(y=factor, x=factor, boundary="pad").mean()
    return np.asarray(bands.values, dtype=np.float32)


def _reduced_hits(overlay: xr.DataArray, factor: int, threshold: float) -> np.ndarray:
    """(h, w) bool: any landslide pixel in the block."""
    hits = overlay == 1 if np.issubdtype(overlay.dtype, np.integer) else overlay >= threshold
    hits = hits.astype(np.uint8)
    if factor > 1:
        hits = hits.coarsen(y=factor, x=factor, boundary="pad").max()
    return np.asarray(hits.values) > 0


def _stretch(colour: np.ndarray) -> np.ndarray:
    """Each band from its 2-98 percentile range to 0..255 (float, NaN kept)."""
    out = np.full_like(colour, np.nan)
    for k, band in enumerate(colour):
        valid = band[np.isfinite(band)]
        if valid.size == 0:
            continue
        lo, hi = np.percentile(valid, [2, 98])
        out[k] = np.clip((band - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0) * 255.0
    return out


def _compose(colour: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """(4, h, w) RGBA: imagery, landslides tinted, their edges in a solid outline colour."""
    valid = np.isfinite(colour).all(axis=0)
    rgb = np.nan_to_num(colour, nan=0.0)
    tint = hits[None]
    rgb = np.where(tint, (1 - FILL_ALPHA) * rgb + FILL_ALPHA * FILL_RGB[:, None, None], rgb)
    rgba = np.zeros((4, *hits.shape), dtype=np.uint8)
    rgba[:3] = np.rint(rgb).astype(np.uint8)
    edge = hits & ~ndimage.binary_erosion(hits, border_value=0)
    rgba[:3, edge] = OUTLINE_RGB[:, None]
    rgba[3] = np.where(valid | hits, 255, 0)
    return rgba


def _write_png(rgba: np.ndarray, path: Location) -> Location:
    def write(tmp: str) -> None:
        with warnings.catch_warnings(), rasterio.Env(GDAL_PAM_ENABLED="NO"):
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(tmp, "w", driver="PNG", width=rgba.shape[2], height=rgba.shape[1], count=4,
                               dtype="uint8") as dst:
                dst.write(rgba)
        read_back(tmp, path)

    write_atomic(path, write)
    return path
