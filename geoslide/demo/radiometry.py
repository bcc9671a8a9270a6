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
from scipy.ndimage import gaussian_filter

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
    sensor_noise
        Range of the standard deviation of Gaussian noise (reflectance) added to the whole scene
        after the scars are painted (:func:`finish`): the sensor's noise, which scars and ground
        share, so that a scar's grain is not the only texture a model sees.
    sharpen
        Range of an unsharp-mask amount (1 px radius) applied to the whole scene after the scars are
        painted: a background refined by bilinear resampling is softer than native imagery.
    white
        8-bit output only (:func:`to_sensor`): range of the white point as a factor of the scene's
        99.5th percentile. Above 1 leaves the top of the 0-255 range unused (a dim, unstretched
        product).
    display_gamma
        8-bit output only: range of the display gamma (values are raised to ``1 / display_gamma``).
        Above 1 brightens dark ground as camera and web-map renderings do; 1 is a linear product,
        below 1 darker still.
    """

    gain: tuple[float, float] = (0.75, 1.3)
    band_gain: float = 0.06
    haze: tuple[float, float] = (0.0, 0.04)
    gamma: tuple[float, float] = (0.85, 1.2)
    noise: float = 0.003
    sensor_noise: tuple[float, float] = (0.0, 0.0)
    sharpen: tuple[float, float] = (0.0, 0.0)
    white: tuple[float, float] = (0.9, 1.3)
    display_gamma: tuple[float, float] = (1.0, 2.2)

    def __post_init__(self) -> None:
        for name in ("gain", "haze", "gamma", "sensor_noise", "sharpen", "white", "display_gamma"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} {getattr(self, name)} must be a range [low, high] with 0 <= low <= high")
        for name in ("white", "display_gamma"):
            if not getattr(self, name)[0] > 0:
                raise ValueError(f"{name} {getattr(self, name)} must be positive, e.g. {getattr(Radiometry, name)}")


def jitter(reflectance: np.ndarray, bands: Sequence[str], spec: Radiometry, rng: np.random.Generator) -> np.ndarray:
    """``reflectance`` (band, y, x) under one random draw of ``spec``."""
    n = len(bands)
    gain = rng.uniform(*spec.gain) * np.exp(rng.normal(0, spec.band_gain, n))
    haze = rng.uniform(*spec.haze) * np.array([_HAZE_WEIGHT.get(b, 0.2) for b in bands])
    gamma = rng.uniform(*spec.gamma)
    out = np.clip(reflectance, 0, None) ** gamma * gain[:, None, None] + haze[:, None, None]
    return out + rng.normal(0, spec.noise, out.shape)


def finish(image: np.ndarray, spec: Radiometry, rng: np.random.Generator) -> np.ndarray:
    """The scene (band, y, x) as the sensor records it: sharpened and noisy at one random draw of ``spec``.

    Nothing is drawn when ``spec`` asks for neither (earlier catalogs stay as they were).
    """
    out = image
    if spec.sharpen[1] > 0:
        amount = rng.uniform(*spec.sharpen)
        out = out + amount * (out - gaussian_filter(out, (0, 1.0, 1.0)))
    if spec.sensor_noise[1] > 0:
        out = out + rng.normal(0, rng.uniform(*spec.sensor_noise), out.shape)
    return out


def to_sensor(reflectance: np.ndarray, units: str, rng: np.random.Generator, spec: Radiometry | None = None
              ) -> np.ndarray:
    """Reflectance-like values as a product ships them.

    ``units="dn8"``: a camera's auto-exposed display stretch (black and white points near the scene's
    0.5 and 99.5 percentiles, the white point and display gamma drawn from ``spec``'s ``white`` and
    ``display_gamma``, by default 0.9-1.3 and 1-2.2) to 1-255 uint8, 0 left for nodata.
    ``units="reflectance"``: uint16 at :data:`REFLECTANCE_SCALE`, 0 for nodata.
    """
    spec = spec or Radiometry()
    if units == "dn8":  # auto-exposure: black and white points near the scene's own extremes
        black = np.percentile(reflectance, 0.5) * rng.uniform(0.0, 0.8)
        white = np.percentile(reflectance, 99.5) * rng.uniform(*spec.white)
        gamma = rng.uniform(*spec.display_gamma)
        stretched = np.clip((reflectance - black) / max(white - black, 1e-6), 0, 1) ** (1 / gamma)
        return np.round(stretched * 254 + 1).astype(np.uint8)
    if units == "reflectance":
        return np.clip(np.round(reflectance / REFLECTANCE_SCALE), 1, 65535).astype(np.uint16)
    raise ValueError(f"unknown units {units!r}")
