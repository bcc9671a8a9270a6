"""Per-band normalisation of model inputs: ``(x - mean) / std`` in float32, nodata fed as 0.

Training, evaluation and inference all normalise through :class:`Normalisation`, so the
arithmetic (float32 mean and std, one subtraction, one division) lives in one place. Two nodata
rules sit on top of it:

- :meth:`Normalisation.apply` (patches, whose masks mark nodata for the loss): each NaN value
  becomes 0, band by band.
- :meth:`Normalisation.apply_masked` (inference, whose output is NaN at nodata): a pixel with a
  non-finite value in any band becomes 0 in every band, and its position is returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
