"""Per-band normalisation of model inputs: ``(x - mean) / std`` in float32, nodata fed as 0.

Training, evaluation and inference all normalise through :class:`Normalisation`, so the
arithmetic (float32 mean and std, one subtraction, one division) lives in one place. Two nodata
rules sit on top of it:

- :meth:`Normalisation.apply` (patches, whose masks mark nodata for the loss): each NaN value
  becomes 0, band by band.
- :meth:`Normalisation.apply_masked` (inference, whose output is NaN at nodata): a pixel with a
  non-finite value in any band becomes 0 in every band, and its position is returned.

A model card's ``normalise`` says where mean and std come from:

- ``fixed``: the card's own values (the training patches' statistics).
- ``brightness``: the card's values times the scene's brightness (:func:`brightness`, the median
  over pixels of the mean over bands). One factor for all bands: the model sees the same numbers
  whether a scene comes as 8-bit DN, reflectance or reflectance x 10000, and keeps the ratios
  between bands (the spectral shape that tells bare soil from vegetation).
- ``scene``: each scene's robust centre and spread per band (:func:`robust_normalisation`): also
  free of per-band gain and offset, but it loses the spectral shape, and a scene without any
  landslide is stretched as if it had some (measured worse: see the README).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MODES = ("fixed", "brightness", "scene")
"""Values of a model card's ``normalise`` (see the module docstring)."""
IQR_TO_STD = 1.349
"""Interquartile range of a normal distribution in standard deviations."""


def normalise_names() -> tuple[str, ...]:
    """The values a card's ``normalise`` (``geoslide train --normalise``) takes."""
    return MODES


@dataclass(frozen=True)
class Normalisation:
    """Per-band ``(x - mean) / std``; nodata becomes 0 after it.

    Parameters
    ----------
    mean, std
        One value per band, in the order of the images' band axis.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def scale(self, images: np.ndarray) -> np.ndarray:
        """``(images - mean) / std`` as float32 over the band axis of ``(..., band, y, x)``; NaN stays NaN."""
        mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None, None]
        return (images.astype(np.float32) - mean) / std

    def apply(self, images: np.ndarray) -> np.ndarray:
        """Normalise ``(..., band, y, x)`` float images, each NaN value set to 0."""
        return np.nan_to_num(self.scale(images), nan=0.0)

    def apply_masked(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalise a ``(band, y, x)`` block, zeroing every band of a pixel with any non-finite value.

        Parameters
        ----------
        block
            Raw values, NaN (or another non-finite value) marking nodata.

        Returns
        -------
        tuple
            The normalised float32 block and the ``(y, x)`` boolean nodata mask.
        """
        nodata = ~np.isfinite(block).all(axis=0)
        x = self.scale(block)
        x[:, nodata] = 0.0
        return x, nodata


def robust_normalisation(bands: Sequence[np.ndarray]) -> Normalisation:
    """A scene's own per-band normalisation: median and spread (interquartile range / 1.349).

    Parameters
    ----------
    bands
        One array of values per band (any shape; non-finite values are ignored).

    Returns
    -------
    Normalisation
        Robust to a minority of bright or dark pixels (clouds, water, landslides); a band with no
        spread between its quartiles falls back to its standard deviation, then to 1e-6.
    """
    mean, std = [], []
    for values in bands:
        values = np.asarray(values, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            mean.append(0.0)
            std.append(1.0)
            continue
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        spread = (q75 - q25) / IQR_TO_STD
        mean.append(float(q50))
        std.append(float(max(spread if spread > 0 else values.std(), 1e-6)))
    return Normalisation(tuple(mean), tuple(std))


def brightness(bands: Sequence[np.ndarray]) -> float:
    """A scene's brightness: the median over valid pixels of the mean over ``bands``; 1 if none.

    Pixels that are not finite in every band are left out; a non-positive median gives 1. Bands
    of different sizes (samples that dropped each band's own nodata) give the mean of the bands'
    medians instead.
    """
    flat = [np.asarray(b, dtype=np.float64).ravel() for b in bands]
    if len({b.size for b in flat}) > 1:
        medians = [np.median(b[np.isfinite(b)]) for b in flat if np.isfinite(b).any()]
        return float(np.mean(medians)) if medians else 1.0
    stack = np.stack(flat)
    valid = np.isfinite(stack).all(axis=0)
    if not valid.any():
        return 1.0
    value = float(np.median(stack[:, valid].mean(axis=0)))
    return value if value > 0 else 1.0


def for_scene(norm: Normalisation, mode: str, bands: Sequence[np.ndarray | None]) -> Normalisation:
    """The normalisation a card of ``mode`` (:data:`MODES`) gives one scene.

    Parameters
    ----------
    norm
        The card's normalisation.
    mode
        The card's ``normalise``.
    bands
        The scene's values, one array per card band; None for a band not sampled (derived bands),
        which keeps the card's values under ``scene``.
    """
    if mode == "fixed":
        return norm
    if mode == "brightness":
        return scaled(norm, brightness([b for b in bands if b is not None]))
    own = [robust_normalisation([b]) if b is not None else None for b in bands]
    return Normalisation(tuple(o.mean[0] if o else m for o, m in zip(own, norm.mean, strict=True)),
                         tuple(o.std[0] if o else s for o, s in zip(own, norm.std, strict=True)))


def scaled(norm: Normalisation, factor: float) -> Normalisation:
    """``norm`` for values ``factor`` times larger: ``((x / factor) - mean) / std`` as one subtraction and division."""
    return Normalisation(tuple(m * factor for m in norm.mean), tuple(s * factor for s in norm.std))
