"""Object-level scores of landslide maps: landslides found, false landslides and area error.

Two functions give the same figures from two kinds of input, both through :class:`ObjectCounts`
(shares are NaN on 0/0):

- :func:`object_scores` compares polygons: mapped landslides (e.g. vectorised from a map store)
  with inventory landslides clipped to the area where the map has data. An inventory landslide is
  detected when a mapped polygon intersects it; a mapped polygon that meets none is false; areas
  are in m2. :func:`geoslide.evaluation.score.evaluate_map` reports these, at any map size.
- :func:`object_metrics` compares rasters of one grid: 8-connected components of a 0/1 prediction
  and of a mask (255 = nodata, left out). An inventory landslide is detected when predicted pixels
  cover more than ``min_overlap`` of it (any overlap by default, as with polygons); a predicted
  object touching no landslide pixel is false; areas are pixel counts times ``pixel_area``. It
  holds whole arrays in memory, for patches and small maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from scipy import ndimage

from geoslide.errors import ConfigError, LabelError
from geoslide.evaluation.metrics import _align, _check_target, _count, _predicted, _ratio, _to_numpy
from geoslide.inventory.codes import MASK_NODATA


@dataclass(frozen=True)
class ObjectCounts:
    """Counts and areas of an object-level comparison, and the shares that follow from them.

    Parameters
    ----------
    n_inventory, n_detected
        Inventory landslides, and those the map detects.
    n_mapped, n_false
        Mapped (predicted) landslides, and those that meet no inventory landslide.
    area_inventory, area_mapped
        Total area of the inventory and of the mapped landslides.
    """

    n_inventory: int
    n_detected: int
    n_mapped: int
    n_false: int
    area_inventory: float
    area_mapped: float

    @property
    def detected_share(self) -> float:
        """``n_detected / n_inventory``; NaN without inventory landslides."""
        return _ratio(self.n_detected, self.n_inventory)

    @property
    def false_share(self) -> float:
        """``n_false / n_mapped``; NaN without mapped landslides."""
        return _ratio(self.n_false, self.n_mapped)

    @property
    def area_error_rel(self) -> float:
        """``(area_mapped - area_inventory) / area_inventory``; NaN without inventory area."""
        return _ratio(self.area_mapped - self.area_inventory, self.area_inventory)


def object_scores(mapped: gpd.GeoDataFrame, inventory: gpd.GeoDataFrame, valid: shapely.Geometry
                  ) -> dict[str, Any]:
    """Share of inventory landslides hit, false landslides, and areas (m2), where the map has data.

    Inventory landslides are clipped to ``valid`` (the map's area with data); those outside it are left out.
    """
    clipped = inventory.geometry.intersection(valid)
    inside = gpd.GeoDataFrame(geometry=clipped[~clipped.is_empty & (clipped.area > 0)], crs=inventory.crs)
    hit_inv = np.zeros(len(inside), dtype=bool)
    hit_map = np.zeros(len(mapped), dtype=bool)
    if len(inside) and len(mapped):
        left, right = mapped.sindex.query(inside.geometry.values, predicate="intersects")
        hit_inv[left], hit_map[right] = True, True
    counts = ObjectCounts(int(len(inside)), int(hit_inv.sum()), int(len(mapped)), int((~hit_map).sum()),
                          float(inside.area.sum()), float(mapped.area.sum()))
    return {"n_inventory": counts.n_inventory, "n_detected": counts.n_detected,
            "detected_share": counts.detected_share, "n_mapped": counts.n_mapped, "n_false": counts.n_false,
            "area_inventory_m2": counts.area_inventory, "area_mapped_m2": counts.area_mapped,
            "area_error_rel": counts.area_error_rel}


def object_metrics(pred: np.ndarray, target: np.ndarray, pixel_area: float = 1.0,
                   min_overlap: float = 0.0) -> dict[str, Any]:
    """Landslide-by-landslide comparison of a prediction with an inventory mask.

    Objects are 8-connected components (``scipy.ndimage.label``) of the mask's landslide pixels
    and of the predicted pixels; predicted pixels on nodata (255) are dropped first, so nodata
    can split an object. Linear in the number of pixels (label + bincount).

    Parameters
    ----------
    pred : numpy.ndarray
        0/1 or bool prediction, ``(H, W)`` or a stack ``(N, H, W)`` (images labelled separately).
    target : numpy.ndarray
        Mask of the same shape: 1 landslide, 0 background, 255 nodata.
    pixel_area : float
        Area of one pixel (e.g. m2) for the area figures.
    min_overlap : float
        An inventory landslide is detected when predicted pixels cover more than this share of it
        (in [0, 1); default 0: any overlap).

    Returns
    -------
    dict
        ``n_inventory``, ``n_detected``, ``detected_share`` (n_detected / n_inventory),
        ``n_predicted``, ``n_false`` (predicted objects touching no landslide pixel),
        ``false_share`` (n_false / n_predicted), ``area_inventory``, ``area_predicted``,
        ``area_error_rel`` ((predicted - inventory) / inventory). Shares are NaN on 0/0.
    """
    if not 0 <= min_overlap < 1:
        raise ConfigError(f"min_overlap must be in [0, 1), got {min_overlap}")
    if not pixel_area > 0:
        raise ConfigError(f"pixel_area must be > 0, got {pixel_area}")
    counts = _raster_counts(pred, target, pixel_area, min_overlap)
    return {
        "n_inventory": counts.n_inventory, "n_detected": counts.n_detected, "detected_share": counts.detected_share,
        "n_predicted": counts.n_mapped, "n_false": counts.n_false, "false_share": counts.false_share,
        "area_inventory": counts.area_inventory, "area_predicted": counts.area_mapped,
        "area_error_rel": counts.area_error_rel,
    }


def _raster_counts(pred: Any, target: Any, pixel_area: float, min_overlap: float) -> ObjectCounts:
    """Object counts of a 0/1 prediction against a mask (see :func:`object_metrics`)."""
    pred, target = _align(_to_numpy(pred), _to_numpy(target))
    valid, truth = target != MASK_NODATA, target == 1
    n_valid, n_truth = _count(valid), _count(truth)
    _check_target(target, n_valid, n_truth)
    predicted = _predicted(pred, valid, n_valid)
    structure = _connectivity(target.ndim)
    truth_labels, n_inventory = ndimage.label(truth, structure=structure)
    pred_labels, n_predicted = ndimage.label(predicted, structure=structure)
    hit = predicted & truth
    sizes = np.bincount(truth_labels[truth], minlength=n_inventory + 1)[1:]
    covered = np.bincount(truth_labels[hit], minlength=n_inventory + 1)[1:]
    touching = np.bincount(pred_labels[hit], minlength=n_predicted + 1)[1:] > 0
    n_detected = int(np.count_nonzero(covered > min_overlap * sizes))
    n_false = int(n_predicted - np.count_nonzero(touching))
    return ObjectCounts(int(n_inventory), n_detected, int(n_predicted), n_false, n_truth * pixel_area,
                        _count(predicted) * pixel_area)


def _connectivity(ndim: int) -> np.ndarray:
    """8-connectivity in 2-D; for a stack ``(N, H, W)``, 8-connectivity within each image only."""
    if ndim == 2:
        return np.ones((3, 3), dtype=bool)
    if ndim == 3:
        structure = np.zeros((3, 3, 3), dtype=bool)
        structure[1] = True
        return structure
    raise LabelError(f"object metrics need a map (H, W) or a stack (N, H, W), got {ndim} dimensions")

