"""Random radiometry and resolution, so that a model learns scars and not one sensor's colours.

Scenes are handled as reflectance-like floats (about 0-1). A :class:`Radiometry` draw changes
overall gain, per-band gain, offset (haze, strongest in blue), gamma and noise; :func:`to_sensor`
then writes the values the way a sensor product ships them: 8-bit display-stretched RGB (camera,
UAV, aerial orthomosaic) or 16-bit scaled reflectance (PlanetScope, Sentinel-2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

REFLECTANCE_SCALE = 0.0001
"""``raster:scale`` of the 16-bit reflectance products written here (as PlanetScope and Sentinel-2 L2A)."""

_HAZE_WEIGHT = {"coastal": 1.3, "blue": 1.0, "green": 0.7, "red": 0.5, "nir": 0.25}


@dataclass(frozen=True)
class Radiometry:
    """Ranges drawn from uniformly for each scene.

    Parameters
    ----------
    gain
        Overall brightness factor.
    band_gain
        Standard deviation of an extra per-band factor (colour balance).
    haze
        Additive path radiance in reflectance, scaled per band (blue most).
    gamma
        Exponent on the reflectance-like values.
    noise
        Per-band Gaussian noise, in reflectance.
    """

    gain: tuple[float, float] = (0.75, 1.3)
    band_gain: float = 0.06
    haze: tuple[float, float] = (0.0, 0.04)
    gamma: tuple[float, float] = (0.85, 1.2)
    noise: float = 0.003


def jitter(reflectance: np.ndarray, bands: Sequence[str], spec: Radiometry, rng: np.random.Generator) -> np.ndarray:
    """``reflectance`` (band, y, x) under one random draw of ``spec``."""
    n = len(bands)
    gain = rng.uniform(*spec.gain) * np.exp(rng.normal(0, spec.band_gain, n))
    haze = rng.uniform(*spec.haze) * np.array([_HAZE_WEIGHT.get(b, 0.2) for b in bands])
    gamma = rng.uniform(*spec.gamma)
    out = np.clip(reflectance, 0, None) ** gamma * gain[:, None, None] + haze[:, None, None]
    return out + rng.normal(0, spec.noise, out.shape)


def to_sensor(reflectance: np.ndarray, units: str, rng: np.random.Generator) -> np.ndarray:
    """Reflectance-like values as a product ships them.

    ``units="dn8"``: a camera's auto-exposed display stretch (black and white points near the scene's
    0.5 and 99.5 percentiles, gamma 1 to 1/2.2) to 1-255 uint8, 0 left for nodata. ``units="reflectance"``: uint16 at
    :data:`REFLECTANCE_SCALE`, 0 for nodata.
    """
    if units == "dn8":  # auto-exposure: black and white points near the scene's own extremes
        black = np.percentile(reflectance, 0.5) * rng.uniform(0.0, 0.8)
        white = np.percentile(reflectance, 99.5) * rng.uniform(0.9, 1.3)
        stretched = np.clip((reflectance - black) / max(white - black, 1e-6), 0, 1) ** (1 / rng.uniform(1.0, 2.2))
        return np.round(stretched * 254 + 1).astype(np.uint8)
    if units == "reflectance":
        return np.clip(np.round(reflectance / REFLECTANCE_SCALE), 1, 65535).astype(np.uint16)
    raise ValueError(f"unknown units {units!r}")


def resample(image: np.ndarray, valid: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (band, y, x) and its ``valid`` mask at ``1/factor`` times the pixel count per axis.

    ``factor > 1`` coarsens (Gaussian anti-aliasing, then bilinear), ``factor < 1`` refines (bilinear).
    Invalid pixels are filled with the band mean before filtering and stay invalid after.
    """
    if abs(factor - 1.0) < 1e-9:
        return image.astype("float64"), valid
    filled = np.where(valid[None], image, np.array([image[b][valid].mean() for b in range(len(image))])[:, None, None])
    if factor > 1:
        filled = gaussian_filter(filled, (0, 0.45 * factor, 0.45 * factor))
    out = np.stack([zoom(band, 1 / factor, order=1, grid_mode=True, mode="nearest") for band in filled])
    kept = zoom(valid.astype("float32"), 1 / factor, order=1, grid_mode=True, mode="nearest") > 0.99
    return out, kept
