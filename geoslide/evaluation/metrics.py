"""Pixel and threshold metrics of binary landslide maps (object metrics: :mod:`geoslide.evaluation.objects`).

Conventions: a prediction is 0/1 (or bool); a target mask has 1 = landslide, 0 = background and
255 = nodata. Nodata pixels of the target are left out of every count, whatever the prediction
says there. Inputs may be numpy arrays or torch tensors (pixel counts of tensors stay on their
device); shapes must match, except that a prediction ``(N, 1, H, W)`` matches a mask ``(N, H, W)``.

Undefined ratios (0/0) are NaN, never a division warning:

- precision: no predicted landslide pixel; recall: no landslide pixel in the target;
- f1 and iou: neither predicted nor true landslide pixels;
- miou: mean of the landslide and background IoU that are defined (NaN only without valid pixels);
- accuracy: no valid pixel.

:class:`ConfusionMatrix` and :class:`ThresholdSweep` are accumulators: ``update`` them batch by
batch and merge the ones of several workers or ranks with ``+`` (their ``counts`` are int64 numpy
arrays, ready for an all-reduce). Probabilities are thresholded inclusively: ``prob >= threshold``
is a landslide, compared in the dtype of the probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from geoslide.errors import ConfigError, LabelError, OutputError
from geoslide.inventory.codes import MASK_NODATA

ArrayLike = np.ndarray | torch.Tensor
DEFAULT_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 ... 0.95


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------


def _ratio(num: float, den: float) -> float:
    return float("nan") if den == 0 else num / den


def _count(x: ArrayLike) -> int:
    return int(torch.count_nonzero(x)) if isinstance(x, torch.Tensor) else int(np.count_nonzero(x))


def _is_bool(x: ArrayLike) -> bool:
    return x.dtype == torch.bool if isinstance(x, torch.Tensor) else x.dtype == np.bool_


def _to_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _align(pred: Any, target: Any) -> tuple[ArrayLike, ArrayLike]:
    """Both as torch tensors on the prediction's device if either is one, else numpy; shapes checked."""
    if isinstance(pred, torch.Tensor) or isinstance(target, torch.Tensor):
        device = pred.device if isinstance(pred, torch.Tensor) else target.device
        pred, target = (torch.as_tensor(x, device=device) for x in (pred, target))
    else:
        pred, target = np.asarray(pred), np.asarray(target)
    if pred.ndim == target.ndim + 1 and pred.shape[1] == 1:
        pred = pred[:, 0]
    if tuple(pred.shape) != tuple(target.shape):
        raise LabelError(f"prediction shape {tuple(pred.shape)} does not match the mask {tuple(target.shape)}; "
                         "put both on the same grid")
    return pred, target


def _check_target(target: ArrayLike, n_valid: int, n_pos: int) -> None:
    n_neg = _count(target == 0)
    if n_neg + n_pos != n_valid:
        raise LabelError(f"a landslide mask may hold only 0, 1 and {MASK_NODATA} (nodata); "
                         f"{n_valid - n_neg - n_pos} pixel(s) hold other values")


def _predicted(pred: ArrayLike, valid: ArrayLike, n_valid: int) -> ArrayLike:
    """Bool mask of predicted landslide pixels on valid target pixels; checks the 0/1 values."""
    if _is_bool(pred):
        return pred & valid
    positive = (pred == 1) & valid
    if _count(positive) + _count((pred == 0) & valid) != n_valid:
        raise OutputError("a prediction must be bool or 0/1 on valid pixels; "
                          "threshold probabilities first (metrics_from_probs, binarize)")
    return positive


# ---------------------------------------------------------------------------------------------
# pixel metrics
# ---------------------------------------------------------------------------------------------


def confusion_counts(pred: Any, target: Any) -> np.ndarray:
    """``[tn, fp, fn, tp]`` (int64) of a 0/1 prediction against a mask, nodata (255) excluded."""
    pred, target = _align(pred, target)
    valid = target != MASK_NODATA
    n_valid, n_pos = _count(valid), _count(target == 1)
    _check_target(target, n_valid, n_pos)
    predicted = _predicted(pred, valid, n_valid)
    n_pred = _count(predicted)
    tp = _count(predicted & (target == 1))
    fp, fn = n_pred - tp, n_pos - tp
    return np.array([n_valid - tp - fp - fn, fp, fn, tp], dtype=np.int64)


class ConfusionMatrix:
    """Mergeable binary confusion matrix of landslide (positive) vs background pixels.

    Parameters
    ----------
    counts : sequence of int, optional
        Initial ``[tn, fp, fn, tp]`` (default zeros).

    Examples
    --------
    >>> cm = ConfusionMatrix().update(np.array([1, 0, 1]), np.array([1, 1, 255]))
    >>> cm.counts.tolist(), cm.recall
    ([0, 0, 1, 1], 0.5)
    """

    def __init__(self, counts: Sequence[int] | np.ndarray | None = None) -> None:
        values = np.zeros(4, dtype=np.int64) if counts is None else np.array(counts, dtype=np.int64)
        if values.shape != (4,) or (values < 0).any():
            raise ValueError(f"counts must be four non-negative integers [tn, fp, fn, tp], got {counts!r}")
        self.counts = values

    @classmethod
    def from_masks(cls, pred: Any, target: Any) -> ConfusionMatrix:
        """Confusion matrix of one prediction/mask pair."""
        return cls(confusion_counts(pred, target))

    def update(self, pred: Any, target: Any) -> ConfusionMatrix:
        """Add the counts of ``pred`` (0/1 or bool) against ``target`` (255 ignored); returns self."""
        self.counts += confusion_counts(pred, target)
        return self

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """A new matrix with the counts of both."""
        return ConfusionMatrix(self.counts + other.counts)

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        if not isinstance(other, ConfusionMatrix):
            return NotImplemented
        return self.merge(other)

    def __radd__(self, other: Any) -> ConfusionMatrix:  # lets sum(matrices) start from 0
        if isinstance(other, int) and other == 0:
            return ConfusionMatrix(self.counts)
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfusionMatrix) and bool((self.counts == other.counts).all())

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        tn, fp, fn, tp = self.counts.tolist()
        return f"ConfusionMatrix(tn={tn}, fp={fp}, fn={fn}, tp={tp})"

    tn = property(lambda self: int(self.counts[0]), doc="True negatives (background predicted background).")
    fp = property(lambda self: int(self.counts[1]), doc="False positives (background predicted landslide).")
    fn = property(lambda self: int(self.counts[2]), doc="False negatives (landslide predicted background).")
    tp = property(lambda self: int(self.counts[3]), doc="True positives (landslide predicted landslide).")

    @property
    def precision(self) -> float:
        """``tp / (tp + fp)``; NaN without predicted landslide pixels."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        """``tp / (tp + fn)``; NaN without true landslide pixels."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        """``2 tp / (2 tp + fp + fn)``; NaN when neither prediction nor mask holds a landslide."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def iou(self) -> float:
        """Landslide IoU ``tp / (tp + fp + fn)``; NaN when neither holds a landslide."""
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    @property
    def background_iou(self) -> float:
        """Background IoU ``tn / (tn + fp + fn)``; NaN when neither holds background."""
        return _ratio(self.tn, self.tn + self.fp + self.fn)

    @property
    def miou(self) -> float:
        """Mean of the landslide and background IoU that are defined; NaN if neither is."""
        defined = [v for v in (self.iou, self.background_iou) if not math.isnan(v)]
        return sum(defined) / len(defined) if defined else float("nan")

    @property
    def accuracy(self) -> float:
        """``(tp + tn) / valid pixels``; NaN without valid pixels."""
        return _ratio(self.tp + self.tn, int(self.counts.sum()))

    @property
    def false_alarm_share(self) -> float:
        """``fp / (fp + tn)``: the share of the landslide-free area mapped as landslide; NaN without any."""
        return _ratio(self.fp, self.fp + self.tn)

    def as_dict(self, json_safe: bool = False) -> dict[str, Any]:
        """Counts and metrics; ``json_safe`` turns NaN into None."""
        out: dict[str, Any] = dict(zip(("tn", "fp", "fn", "tp"), self.counts.tolist(), strict=True))
        for name in ("precision", "recall", "f1", "iou", "miou", "accuracy", "false_alarm_share"):
            value = getattr(self, name)
            out[name] = None if json_safe and math.isnan(value) else value
        return out


# ---------------------------------------------------------------------------------------------
# probabilities and thresholds
# ---------------------------------------------------------------------------------------------


def binarize(probs: Any, threshold: float = 0.5) -> ArrayLike:
    """``probs >= threshold`` as bool, compared in the dtype of ``probs`` (numpy or torch)."""
    if isinstance(probs, torch.Tensor):
        return probs >= threshold
    probs = np.asarray(probs)
    return probs >= np.asarray(threshold, dtype=probs.dtype)


def metrics_from_probs(probs: Any, target: Any, threshold: float = 0.5) -> ConfusionMatrix:
    """Confusion matrix of landslide probabilities thresholded at ``threshold`` (inclusive)."""
    return ConfusionMatrix.from_masks(binarize(probs, threshold), target)


def _valid_probs(probs: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and bool landslide flags of the valid pixels, as flat numpy arrays."""
    probs, target = _align(_to_numpy(probs), _to_numpy(target))
    if not np.issubdtype(probs.dtype, np.floating):
        raise OutputError(f"probabilities must be floating point, got {probs.dtype}")
    valid = target != MASK_NODATA
    positive = target == 1
    _check_target(target, _count(valid), _count(positive))
    p = probs[valid]
    if np.isnan(p).any():
        raise OutputError("probabilities hold NaN on valid pixels; fill model nodata before evaluating")
    return p, positive[valid]


class ThresholdSweep:
    """Confusion matrices at many thresholds at once, mergeable like :class:`ConfusionMatrix`.

    One pass per update: each pixel is placed among the sorted thresholds (``searchsorted``) and
    the counts per threshold follow from cumulative histograms.

    Parameters
    ----------
    thresholds : sequence of float, optional
        Thresholds in any order (default 0.05, 0.10, ..., 0.95); a pixel is a landslide at
        threshold ``t`` when ``prob >= t``.
    """

    def __init__(self, thresholds: Sequence[float] | np.ndarray | None = None) -> None:
        values = np.asarray(DEFAULT_THRESHOLDS if thresholds is None else thresholds, dtype=np.float64)
        if values.ndim != 1 or values.size == 0 or np.isnan(values).any():
            raise ConfigError(f"thresholds must be a non-empty list of numbers, got {thresholds!r}")
        self.thresholds = values
        self.counts = np.zeros((values.size, 4), dtype=np.int64)

    def update(self, probs: Any, target: Any) -> ThresholdSweep:
        """Add a batch of probabilities against its mask (255 ignored); returns self."""
        p, positive = _valid_probs(probs, target)
        order = np.argsort(self.thresholds, kind="stable")
        ranks = np.searchsorted(self.thresholds[order].astype(p.dtype), p, side="right")  # thresholds <= p
        size = self.thresholds.size
        pos_hist = np.bincount(ranks[positive], minlength=size + 1)
        neg_hist = np.bincount(ranks[~positive], minlength=size + 1)
        tp = np.cumsum(pos_hist[::-1])[::-1][1:]  # pixels above threshold j: ranks > j
        fp = np.cumsum(neg_hist[::-1])[::-1][1:]
        n_pos, n_neg = int(positive.sum()), int(positive.size - positive.sum())
        sorted_counts = np.stack([n_neg - fp, fp, n_pos - tp, tp], axis=1)
        self.counts[order] += sorted_counts
        return self

    def merge(self, other: ThresholdSweep) -> ThresholdSweep:
        """A new sweep with the counts of both (same thresholds)."""
        if not np.array_equal(self.thresholds, other.thresholds):
            raise ConfigError("only sweeps over the same thresholds can be merged")
        merged = ThresholdSweep(self.thresholds)
        merged.counts = self.counts + other.counts
        return merged

    def __add__(self, other: ThresholdSweep) -> ThresholdSweep:
        if not isinstance(other, ThresholdSweep):
            return NotImplemented
        return self.merge(other)

    def confusion(self, index: int) -> ConfusionMatrix:
        """The confusion matrix at ``thresholds[index]``."""
        return ConfusionMatrix(self.counts[index])

    def _metric(self, name: str) -> np.ndarray:
        return np.array([getattr(self.confusion(i), name) for i in range(self.thresholds.size)])

    @property
    def precision(self) -> np.ndarray:
        """Precision per threshold (NaN where undefined)."""
        return self._metric("precision")

    @property
    def recall(self) -> np.ndarray:
        """Recall per threshold (NaN where undefined)."""
        return self._metric("recall")

    @property
    def f1(self) -> np.ndarray:
        """F1 per threshold (NaN where undefined)."""
        return self._metric("f1")

    @property
    def iou(self) -> np.ndarray:
        """Landslide IoU per threshold (NaN where undefined)."""
        return self._metric("iou")

    def best(self) -> tuple[float, float]:
        """``(threshold, f1)`` of the highest F1 (the lowest such threshold on ties).

        When F1 is undefined everywhere (no landslide in data or predictions), ``(0.5, nan)``.
        """
        f1 = self.f1
        if np.isnan(f1).all():
            return 0.5, float("nan")
        best = np.flatnonzero(f1 == np.nanmax(f1))
        pick = best[np.argmin(self.thresholds[best])]
        return float(self.thresholds[pick]), float(f1[pick])


def threshold_sweep(probs: Any, targets: Any,
                    thresholds: Sequence[float] | np.ndarray | None = None) -> ThresholdSweep:
    """Metrics of ``probs`` against ``targets`` at every threshold; ``.f1`` is F1 per threshold.

    Parameters
    ----------
    probs : array or tensor
        Landslide probabilities, floating point.
    targets : array or tensor
        Masks of the same shape (1 landslide, 0 background, 255 nodata).
    thresholds : sequence of float, optional
        Thresholds (default 0.05 to 0.95 by 0.05).

    Returns
    -------
    ThresholdSweep
        ``.f1``, ``.precision``, ``.recall``, ``.iou`` aligned with ``.thresholds``; ``.best()``.
    """
    return ThresholdSweep(thresholds).update(probs, targets)
