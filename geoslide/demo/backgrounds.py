"""Real background scenes: read any raster as reflectance-like values, whatever its format.

A :class:`Background` says how to read one scene: its file (``{band}`` in the path reads one file
per band, as netCDF band sets ship), the common names of its bands in file order, the factor that
turns its values into reflectance-like floats (about 0-1), and its pixel size when the file has no
georeferencing (PNG, JPEG) or is in degrees.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from geoslide.errors import ConfigError


@dataclass(frozen=True)
class Background:
    """One real scene without landslides.

    Parameters
    ----------
    path
        Raster file (GeoTIFF, PNG, JPEG, netCDF); ``{band}`` is replaced by each band name to read one
        file per band.
    bands
        Common band names in file order (``red``, ``green``, ``blue``, ``nir``, ...).
    scale
        Multiplier from the file's values to reflectance-like floats: 1e-4 for reflectance x 10000;
        about 0.4 / 255 for display-stretched 8-bit imagery.
    resolution
        Pixel size in metres; None reads it from a projected CRS.
    nodata
        Value marking missing pixels (default: the file's own).
    name
        Short name for ids (default: the file stem).
    files
        What ``{band}`` in ``path`` becomes for each band, when the files are not named by the
        common names (``swir1`` for ``swir16``); default: the band names.
    """

    path: str
    bands: tuple[str, ...]
    scale: float
    resolution: float | None = None
    nodata: float | None = None
    name: str | None = None
    files: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        """Name used in item ids."""
        return self.name or Path(self.path.replace("{band}", "")).stem.strip("_-.")


@dataclass(frozen=True)
class Scene:
    """Pixels of a background: reflectance-like ``(band, y, x)`` float64, valid mask, metres per pixel."""

    image: np.ndarray
    valid: np.ndarray
    resolution: float
    bands: tuple[str, ...]


def read_background(bg: Background) -> Scene:
    """Read ``bg`` into a :class:`Scene`; one-line errors for missing files and band-count mismatches."""
    if bg.files is not None and len(bg.files) != len(bg.bands):
        raise ConfigError(f"background {bg.path}: files lists {len(bg.files)} name(s) for {len(bg.bands)} band(s); "
                          "give one per band")
    paths = [bg.path.replace("{band}", b) for b in bg.files or bg.bands] if "{band}" in bg.path else [bg.path]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise ConfigError(f"background {missing[0]} does not exist; fix the path (relative paths start in the "
                          "folder you run from)")
    arrays, nodatas, resolution = [], [], None
    for path in paths:
        data, nodata, res = _read(path)
        arrays.append(data)
        nodatas.append(bg.nodata if bg.nodata is not None else nodata)
        resolution = resolution or res
    image = np.concatenate(arrays).astype("float64")
    if image.shape[0] != len(bg.bands):
        raise ConfigError(f"{bg.path} has {image.shape[0]} band(s) but bands lists {len(bg.bands)}; "
                          "list one name per band")
    valid = np.isfinite(image).all(axis=0)
    for nodata in {n for n in nodatas if n is not None}:
        valid &= ~(image == nodata).all(axis=0)
    res = bg.resolution or resolution
    if not res:
        raise ConfigError(f"{bg.path} has no projected pixel size; give its resolution in metres")
    return Scene(np.where(valid[None], image * bg.scale, 0.0), valid, float(res), tuple(bg.bands))


def _read(path: str) -> tuple[np.ndarray, float | None, float | None]:
    """Values, nodata and metres per pixel (None without a projected CRS) of one file."""
    if path.endswith(".nc"):
        import xarray as xr

        with xr.open_dataarray(path) as da:
            values = np.asarray(da.values, dtype="float64")
        return values.reshape(-1, *values.shape[-2:]), None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            projected = ds.crs is not None and ds.crs.is_projected
            return ds.read(), ds.nodata, (abs(ds.res[0]) if projected else None)
