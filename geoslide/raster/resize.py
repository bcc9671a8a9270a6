"""Change a raster block's pixel size: anti-aliased when coarsening, bilinear, nodata kept apart.

Used to draw implanted scenes at other resolutions (:mod:`geoslide.demo.implanted`) and to map
tiles at a model's resolution (``geoslide map --tiles --resolution``).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, zoom


def resample(image: np.ndarray, valid: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (band, y, x) and its ``valid`` mask at ``1/factor`` times the pixel count per axis.

    ``factor > 1`` coarsens (Gaussian anti-aliasing, then bilinear), ``factor < 1`` refines (bilinear).
    Invalid pixels are filled with the band mean before filtering and stay invalid after.
    """
    if abs(factor - 1.0) < 1e-9:
        return image.astype("float64"), valid
    if not valid.any():
        shape = tuple(max(1, round(n / factor)) for n in valid.shape)
        return np.full((len(image), *shape), np.nan), np.zeros(shape, bool)
    filled = np.where(valid[None], image, np.array([image[b][valid].mean() for b in range(len(image))])[:, None, None])
    if factor > 1:
        filled = gaussian_filter(filled, (0, 0.45 * factor, 0.45 * factor))
    out = np.stack([zoom(band, 1 / factor, order=1, grid_mode=True, mode="nearest") for band in filled])
    kept = zoom(valid.astype("float32"), 1 / factor, order=1, grid_mode=True, mode="nearest") > 0.99
    return out, kept
