"""Pixel, threshold and object metrics against brute-force Python references, nodata (255) ignored."""

from __future__ import annotations

import json
import math
import time
import warnings

import numpy as np
import pytest
import torch

from geoslide.errors import ConfigError, LabelError, OutputError
from geoslide.evaluation.metrics import (
    ConfusionMatrix,
    ThresholdSweep,
    binarize,
    confusion_counts,
    metrics_from_probs,
    threshold_sweep,
)
from geoslide.evaluation.objects import object_metrics

NODATA = 255


# ------------------------------------------------------------------ references


def ref_counts(pred, target):
    """Loop over pixels: [tn, fp, fn, tp]."""
    tn = fp = fn = tp = 0
    for p, t in zip(np.asarray(pred).ravel().tolist(), np.asarray(target).ravel().tolist(), strict=True):
        if t == NODATA:
            continue
        if t == 1 and p:
            tp += 1
        elif t == 1:
            fn += 1
        elif p:
            fp += 1
        else:
            tn += 1
    return [tn, fp, fn, tp]


def div(a, b):
    return float("nan") if b == 0 else a / b


def ref_metrics(counts):
    tn, fp, fn, tp = counts
    iou, bg = div(tp, tp + fp + fn), div(tn, tn + fp + fn)
    defined = [v for v in (iou, bg) if not math.isnan(v)]
    return {"precision": div(tp, tp + fp), "recall": div(tp, tp + fn), "f1": div(2 * tp, 2 * tp + fp + fn),
            "iou": iou, "miou": sum(defined) / len(defined) if defined else float("nan"),
            "accuracy": div(tp + tn, tn + fp + fn + tp), "false_alarm_share": div(fp, fp + tn)}


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12)


def random_pair(seed, shape=(4, 17, 13), nodata=0.15, pos=0.3, hit=0.6):
    rng = np.random.default_rng(seed)
    target = (rng.random(shape) < pos).astype(np.uint8)
    pred = np.where(rng.random(shape) < hit, target, rng.random(shape) < 0.3).astype(np.uint8)
    target[rng.random(shape) < nodata] = NODATA
    return pred, target


# ------------------------------------------------------------------ confusion matrix


@pytest.mark.parametrize("seed", range(4))
def test_confusion_matrix_matches_pixel_loop(seed):
    pred, target = random_pair(seed)
    cm = ConfusionMatrix.from_masks(pred, target)
    counts = ref_counts(pred, target)
    assert cm.counts.dtype == np.int64
    assert cm.counts.tolist() == counts
    assert (cm.tn, cm.fp, cm.fn, cm.tp) == tuple(counts)
    got = cm.as_dict()
    for name, value in ref_metrics(counts).items():
        assert same(got[name], value), name
        assert same(getattr(cm, name), value), name


def test_inputs_as_bool_float_and_torch():
    pred, target = random_pair(5)
    counts = ref_counts(pred, target)
    assert confusion_counts(pred.astype(bool), target).tolist() == counts
    assert confusion_counts(pred.astype(np.float32), target).tolist() == counts
    assert confusion_counts(torch.tensor(pred).bool(), torch.tensor(target)).tolist() == counts
    assert confusion_counts(torch.tensor(pred), torch.tensor(target).long()).tolist() == counts
    assert confusion_counts(torch.tensor(pred), target).tolist() == counts  # mixed
    assert confusion_counts(pred[:, None], target).tolist() == counts  # model layout (N, 1, H, W)


def test_prediction_values_on_nodata_are_ignored():
    pred, target = random_pair(6)
    pred = pred.copy()
    pred[target == NODATA] = 255  # a map's own nodata where the mask has none
    assert confusion_counts(pred, target).tolist() == ref_counts(np.where(pred == 255, 0, pred), target)


def test_merge_equals_one_matrix_over_concatenated_data():
    a_pred, a_target = random_pair(7)
    b_pred, b_target = random_pair(8, shape=(2, 17, 13))
    a, b = ConfusionMatrix.from_masks(a_pred, a_target), ConfusionMatrix.from_masks(b_pred, b_target)
    whole = ConfusionMatrix.from_masks(np.concatenate([a_pred, b_pred]), np.concatenate([a_target, b_target]))
    assert a + b == whole
    assert b.merge(a) == whole
    assert sum([a, b]) == whole
    acc = ConfusionMatrix()
    acc.update(a_pred, a_target).update(b_pred, b_target)
    assert acc == whole
    assert ConfusionMatrix(whole.counts.tolist()) == whole
    assert a.counts.tolist() == ref_counts(a_pred, a_target)  # merging left the parts alone


def test_undefined_ratios_are_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        empty = ConfusionMatrix.from_masks(np.zeros((3, 3)), np.full((3, 3), NODATA, np.uint8))
        assert empty.counts.tolist() == [0, 0, 0, 0]
        assert all(math.isnan(v) for k, v in empty.as_dict().items() if k not in ("tn", "fp", "fn", "tp"))
        background = ConfusionMatrix.from_masks(np.zeros((3, 3)), np.zeros((3, 3), np.uint8))
        for name in ("precision", "recall", "f1", "iou"):
            assert math.isnan(getattr(background, name))
        assert background.miou == 1.0 and background.accuracy == 1.0  # background IoU alone
    assert json.loads(json.dumps(background.as_dict(json_safe=True), allow_nan=False))["f1"] is None


def test_bad_inputs():
    pred, target = random_pair(9)
    bad_target = target.copy()
    bad_target[0, 0, 0] = 3
    with pytest.raises(LabelError, match="0, 1 and 255"):
        confusion_counts(pred, bad_target)
    bad_pred = pred.copy()
    bad_pred[target != NODATA] = 2
    with pytest.raises(OutputError, match="threshold"):
        confusion_counts(bad_pred, target)
    with pytest.raises(OutputError):
        confusion_counts(pred * 0.5, target)
    with pytest.raises(LabelError, match="does not match"):
        confusion_counts(pred[:, :5], target)


# ------------------------------------------------------------------ probabilities and thresholds


def random_probs(seed, shape=(3, 16, 16), dtype=np.float64):
    rng = np.random.default_rng(seed)
    target = (rng.random(shape) < 0.3).astype(np.uint8)
    probs = np.clip(0.35 * target + 0.65 * rng.random(shape), 0, 1)
    probs = np.round(probs * 16) / 16  # many probabilities equal to a threshold
    target[rng.random(shape) < 0.1] = NODATA
    return probs.astype(dtype), target


def test_metrics_from_probs_is_inclusive():
    probs, target = random_probs(10)
    for threshold in (0.25, 0.5, 0.8125):
        pred = [[[1 if p >= threshold else 0 for p in row] for row in image] for image in probs.tolist()]
        assert metrics_from_probs(probs, target, threshold).counts.tolist() == ref_counts(np.array(pred), target)
    assert (probs == 0.5).any()
    assert binarize(probs, 0.5)[probs == 0.5].all()
    t_probs = torch.tensor(probs)
    assert metrics_from_probs(t_probs, torch.tensor(target), 0.5) == metrics_from_probs(probs, target, 0.5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_threshold_sweep_matches_one_threshold_at_a_time(dtype):
    probs, target = random_probs(11, dtype=dtype)
    thresholds = [0.5, 0.0, 0.9375, 0.25, 0.5, 1.0, 0.3, 0.0625, 1.5]  # unsorted, duplicate, exact hits
    sweep = threshold_sweep(probs, target, thresholds)
    assert sweep.thresholds.tolist() == thresholds
    for i, t in enumerate(thresholds):
        counts = ref_counts(probs >= t, target)
        assert sweep.counts[i].tolist() == counts, t
        want = ref_metrics(counts)
        for name in ("precision", "recall", "f1"):
            assert same(float(getattr(sweep, name)[i]), want[name]), (t, name)
        assert same(float(sweep.iou[i]), want["iou"])
    f1 = [ref_metrics(ref_counts(probs >= t, target))["f1"] for t in thresholds]
    best_f1 = max(v for v in f1 if not math.isnan(v))
    best_t = min(t for t, v in zip(thresholds, f1, strict=True) if v == best_f1)
    assert sweep.best() == (best_t, pytest.approx(best_f1))


def test_threshold_sweep_merges_and_accepts_tensors():
    a_probs, a_target = random_probs(12)
    b_probs, b_target = random_probs(13, shape=(2, 16, 16))
    whole = threshold_sweep(np.concatenate([a_probs, b_probs]), np.concatenate([a_target, b_target]))
    parts = threshold_sweep(a_probs, a_target) + threshold_sweep(torch.tensor(b_probs), torch.tensor(b_target))
    assert np.array_equal(parts.counts, whole.counts)
    acc = ThresholdSweep().update(a_probs, a_target).update(b_probs, b_target)
    assert np.array_equal(acc.counts, whole.counts)
    with pytest.raises(ConfigError):
        threshold_sweep(a_probs, a_target, [0.5]) + threshold_sweep(a_probs, a_target, [0.4])


def test_threshold_sweep_without_landslides_and_bad_input():
    probs, _ = random_probs(14)
    sweep = threshold_sweep(np.zeros_like(probs), np.zeros(probs.shape, np.uint8), [0.2, 0.5])
    threshold, f1 = sweep.best()
    assert threshold == 0.5 and math.isnan(f1)
    nan_probs = probs.copy()
    nan_probs[0, 0, 0] = np.nan
    target = np.zeros(probs.shape, np.uint8)
    with pytest.raises(OutputError, match="NaN"):
        threshold_sweep(nan_probs, target)
    target[0, 0, 0] = NODATA  # NaN only on nodata is fine
    assert threshold_sweep(nan_probs, target).counts.sum(axis=1).tolist() == [probs.size - 1] * 19
    with pytest.raises(OutputError):
        threshold_sweep((probs * 100).astype(np.uint8), target)
    with pytest.raises(ConfigError):
        ThresholdSweep([])


# ------------------------------------------------------------------ objects


def components(mask):
    """8-connected components by flood fill: list of sets of pixel indices."""
    h, w = mask.shape
    seen, comps = set(), []
    for r in range(h):
        for c in range(w):
            if not mask[r, c] or (r, c) in seen:
                continue
            comp, stack = set(), [(r, c)]
            seen.add((r, c))
            while stack:
                y, x = stack.pop()
                comp.add((y, x))
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        n = (y + dy, x + dx)
                        if 0 <= n[0] < h and 0 <= n[1] < w and mask[n] and n not in seen:
                            seen.add(n)
                            stack.append(n)
            comps.append(comp)
    return comps


def ref_objects(pred, target, pixel_area=1.0, min_overlap=0.0):
    truth = target == 1
    predicted = (pred == 1) & (target != NODATA)
    truth_px, pred_px = set(zip(*np.nonzero(truth), strict=True)), set(zip(*np.nonzero(predicted), strict=True))
    inventory, predictions = components(truth), components(predicted)
    detected = sum(1 for comp in inventory if len(comp & pred_px) / len(comp) > min_overlap)
    false = sum(1 for comp in predictions if not comp & truth_px)
    area_inv, area_pred = len(truth_px) * pixel_area, len(pred_px) * pixel_area
    return {"n_inventory": len(inventory), "n_detected": detected, "detected_share": div(detected, len(inventory)),
            "n_predicted": len(predictions), "n_false": false, "false_share": div(false, len(predictions)),
            "area_inventory": area_inv, "area_predicted": area_pred,
            "area_error_rel": div(area_pred - area_inv, area_inv)}


def blobs(seed, shape=(40, 40)):
    rng = np.random.default_rng(seed)
    target = (rng.random(shape) < 0.25).astype(np.uint8)
    pred = np.where(rng.random(shape) < 0.5, target, rng.random(shape) < 0.2).astype(np.uint8)
    target[5:12, 20:33] = NODATA
    return pred, target


@pytest.mark.parametrize(("seed", "pixel_area", "min_overlap"), [(0, 1.0, 0.0), (1, 9.0, 0.0), (2, 0.25, 0.5),
                                                                (3, 100.0, 0.25)])
def test_object_metrics_match_flood_fill(seed, pixel_area, min_overlap):
    pred, target = blobs(seed)
    got = object_metrics(pred, target, pixel_area=pixel_area, min_overlap=min_overlap)
    want = ref_objects(pred, target, pixel_area, min_overlap)
    assert set(got) == set(want)
    for key, value in want.items():
        assert same(got[key], value), key
    assert got["n_inventory"] > 10 and 0 < got["n_detected"] < got["n_inventory"] and got["n_false"] > 0


def test_object_metrics_of_a_stack_label_images_separately():
    pairs = [blobs(seed, shape=(20, 20)) for seed in (4, 5, 6)]
    pred, target = np.stack([p for p, _ in pairs]), np.stack([t for _, t in pairs])
    got = object_metrics(pred.astype(bool), target)
    refs = [ref_objects(p, t) for p, t in pairs]
    for key in ("n_inventory", "n_detected", "n_predicted", "n_false", "area_inventory", "area_predicted"):
        assert got[key] == sum(r[key] for r in refs), key
    assert object_metrics(torch.tensor(pred), torch.tensor(target)) == got


def test_object_metrics_without_objects_and_bad_options():
    empty = object_metrics(np.zeros((5, 5), np.uint8), np.zeros((5, 5), np.uint8))
    assert empty["n_inventory"] == empty["n_predicted"] == 0
    assert math.isnan(empty["detected_share"]) and math.isnan(empty["false_share"])
    assert math.isnan(empty["area_error_rel"])
    with pytest.raises(ConfigError):
        object_metrics(np.zeros((5, 5)), np.zeros((5, 5), np.uint8), min_overlap=1.0)
    with pytest.raises(ConfigError):
        object_metrics(np.zeros((5, 5)), np.zeros((5, 5), np.uint8), pixel_area=0)
    with pytest.raises(LabelError):
        object_metrics(np.zeros(5), np.zeros(5, np.uint8))


def test_object_metrics_scale_linearly():
    rng = np.random.default_rng(15)
    shape = (3000, 3000)
    target = (rng.random(shape) < 0.3).astype(np.uint8)
    pred = (rng.random(shape) < 0.3).astype(np.uint8)
    start = time.perf_counter()
    got = object_metrics(pred, target)
    elapsed = time.perf_counter() - start
    assert got["n_inventory"] > 100_000 and got["n_predicted"] > 100_000  # pairwise loops would never finish
    assert elapsed < 20, elapsed
    window = (slice(0, 60), slice(0, 60))  # the window's own objects, compared with the flood fill
    assert object_metrics(pred[window], target[window]) == pytest.approx(ref_objects(pred[window], target[window]),
                                                                        nan_ok=True)
