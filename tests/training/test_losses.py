"""Losses against plain numpy formulas, on masks with nodata (255), with gradient checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geoslide.errors import ConfigError, ModelError
from geoslide.models import build_model
from geoslide.training.losses import (
    DeepSupervisionLoss,
    DiceLoss,
    FocalTverskyLoss,
    TverskyLoss,
    build_loss,
    loss_names,
)

NODATA = 255


# ------------------------------------------------------------------ numpy reference


def _valid(logits: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    t = np.asarray(target).reshape(-1)
    keep = t != NODATA
    return z[keep], (t[keep] == 1).astype(np.float64)


def ref_counts(logits, target):
    z, g = _valid(logits, target)
    p = 1.0 / (1.0 + np.exp(-z))
    return float(np.sum(p * g)), float(np.sum(p * (1 - g))), float(np.sum((1 - p) * g))


def ref_dice(logits, target, smooth=1.0):
    tp, fp, fn = ref_counts(logits, target)
    return 1 - (2 * tp + smooth) / (2 * tp + fp + fn + smooth)


def ref_tversky(logits, target, fp_weight, fn_weight, smooth=1.0):
    tp, fp, fn = ref_counts(logits, target)
    return 1 - (tp + smooth) / (tp + fp_weight * fp + fn_weight * fn + smooth)


def ref_focal_tversky(logits, target, fp_weight, fn_weight, gamma, smooth=1.0):
    return ref_tversky(logits, target, fp_weight, fn_weight, smooth) ** (1 / gamma)


def ref_bce(logits, target, pos_weight=1.0):
    z, g = _valid(logits, target)
    p = 1.0 / (1.0 + np.exp(-z))
    return float(np.mean(-(pos_weight * g * np.log(p) + (1 - g) * np.log(1 - p))))


def ref_focal(logits, target, alpha, gamma):
    z, g = _valid(logits, target)
    p = 1.0 / (1.0 + np.exp(-z))
    p_t = np.where(g == 1, p, 1 - p)
    a_t = np.ones_like(p) if alpha is None else np.where(g == 1, alpha, 1 - alpha)
    return float(np.mean(-a_t * (1 - p_t) ** gamma * np.log(p_t)))


def _batch(seed=0, n=3, h=8, w=8, nodata=0.2):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, size=(n, 1, h, w))
    target = (rng.random((n, h, w)) < 0.3).astype(np.uint8)
    target[rng.random((n, h, w)) < nodata] = NODATA
    return logits, target


def _t(logits, target):
    return torch.tensor(logits, dtype=torch.float64, requires_grad=True), torch.tensor(target)


CASES = [
    ("dice", {}, lambda z, t: ref_dice(z, t, 1.0)),
    ("dice", {"smooth": 0.0}, lambda z, t: ref_dice(z, t, 0.0)),
    ("tversky", {"alpha": 0.3, "beta": 0.7}, lambda z, t: ref_tversky(z, t, 0.3, 0.7)),
    ("tversky", {"alpha": 0.9, "beta": 0.1, "smooth": 0.0}, lambda z, t: ref_tversky(z, t, 0.9, 0.1, 0.0)),
    ("focal-tversky", {}, lambda z, t: ref_focal_tversky(z, t, 0.3, 0.7, 4 / 3)),
    ("focal-tversky", {"alpha": 0.5, "beta": 0.5, "gamma": 2.0},
     lambda z, t: ref_focal_tversky(z, t, 0.5, 0.5, 2.0)),
    ("bce", {}, lambda z, t: ref_bce(z, t)),
    ("bce", {"pos_weight": 4.0}, lambda z, t: ref_bce(z, t, 4.0)),
    ("focal", {}, lambda z, t: ref_focal(z, t, 0.25, 2.0)),
    ("focal", {"alpha": None, "gamma": 0.5}, lambda z, t: ref_focal(z, t, None, 0.5)),
    ("focal", {"alpha": 0.8, "gamma": 1.5}, lambda z, t: ref_focal(z, t, 0.8, 1.5)),
    ("bce+dice", {}, lambda z, t: ref_bce(z, t) + ref_dice(z, t)),
    ("bce+dice", {"pos_weight": 2.0, "smooth": 0.5, "weights": (0.25, 2.0)},
     lambda z, t: 0.25 * ref_bce(z, t, 2.0) + 2.0 * ref_dice(z, t, 0.5)),
    ("focal+tversky", {"alpha": 0.6, "beta": 0.4, "gamma": 2.0},
     lambda z, t: ref_focal(z, t, 0.6, 2.0) + ref_tversky(z, t, 0.6, 0.4)),
]


# ------------------------------------------------------------------ values


@pytest.mark.parametrize(("name", "params", "ref"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_loss_matches_numpy_reference(name, params, ref):
    logits, target = _batch(seed=len(name))
    loss = build_loss(name, **params)
    got = loss(*_t(logits, target))
    assert got.dim() == 0
    assert got.item() == pytest.approx(ref(logits, target), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("name", ["dice", "tversky", "focal-tversky", "bce", "focal", "bce+dice", "adsms"])
def test_nodata_pixels_have_no_influence(name):
    logits, target = _batch(seed=3)
    loss = build_loss(name)
    z, t = _t(logits, target)
    base = loss(z, t)
    base.backward()
    nodata = torch.tensor(target == NODATA)[:, None]
    assert nodata.any()
    assert (z.grad[nodata] == 0).all()
    assert (z.grad[~nodata] != 0).any()
    changed = logits.copy()
    changed[nodata.numpy()] = np.random.default_rng(9).normal(0, 50, size=int(nodata.sum()))
    assert loss(*_t(changed, target)).item() == pytest.approx(base.item(), rel=1e-12)
    changed[nodata.numpy()] = np.nan  # a model's NaN on nodata input stays out of the value
    assert loss(*_t(changed, target)).item() == pytest.approx(base.item(), rel=1e-12)


def test_target_layout_and_dtype_do_not_matter():
    logits, target = _batch(seed=4)
    loss = build_loss("bce+dice")
    z = torch.tensor(logits)
    ref = loss(z, torch.tensor(target)).item()
    assert loss(z, torch.tensor(target).long()).item() == pytest.approx(ref, rel=1e-12)
    assert loss(z, torch.tensor(target)[:, None]).item() == pytest.approx(ref, rel=1e-12)
    assert loss(z[:, 0], torch.tensor(target)).item() == pytest.approx(ref, rel=1e-12)


def test_shape_mismatch_is_a_model_error():
    logits, target = _batch(seed=5)
    with pytest.raises(ModelError, match="does not match"):
        build_loss("dice")(torch.tensor(logits)[:, :, :4], torch.tensor(target))


# ------------------------------------------------------------------ limits and identities


@pytest.mark.parametrize("smooth", [0.0, 1.0])
def test_perfect_prediction_gives_zero_dice(smooth):
    _, target = _batch(seed=6)
    logits = np.where(target == 1, 40.0, -40.0)[:, None]
    z, t = _t(logits, target)
    assert DiceLoss(smooth)(z, t).item() == pytest.approx(0.0, abs=1e-12)
    assert ref_dice(logits, target, smooth) == pytest.approx(0.0, abs=1e-12)
    ft = FocalTverskyLoss(smooth=smooth)(z, t)
    ft.backward()
    assert math.isfinite(ft.item()) and torch.isfinite(z.grad).all()


def test_tversky_with_half_weights_is_dice():
    logits, target = _batch(seed=7)
    z, t = _t(logits, target)
    assert TverskyLoss(0.5, 0.5, smooth=0.0)(z, t).item() == pytest.approx(DiceLoss(0.0)(z, t).item(), rel=1e-12)
    # (TP + s) / (TP + FP/2 + FN/2 + s) == (2 TP + 2 s) / (2 TP + FP + FN + 2 s)
    assert TverskyLoss(0.5, 0.5, smooth=1.5)(z, t).item() == pytest.approx(DiceLoss(3.0)(z, t).item(), rel=1e-12)


def test_alpha_weights_false_positives_and_beta_false_negatives():
    background = torch.zeros(1, 4, 4, dtype=torch.uint8)  # every positive probability is a false positive
    landslide = torch.ones(1, 4, 4, dtype=torch.uint8)  # every missed pixel is a false negative
    high, low = torch.full((1, 1, 4, 4), 3.0), torch.full((1, 1, 4, 4), -3.0)
    assert TverskyLoss(alpha=1.0, beta=0.0)(high, background).item() > 0.5
    assert TverskyLoss(alpha=0.0, beta=1.0)(high, background).item() == 0.0
    assert TverskyLoss(alpha=0.0, beta=1.0)(low, landslide).item() > 0.5
    assert TverskyLoss(alpha=1.0, beta=0.0)(low, landslide).item() == pytest.approx(0.0, abs=1e-6)


def test_focal_with_gamma_zero_is_alpha_weighted_bce():
    logits, target = _batch(seed=8)
    z, t = _t(logits, target)
    plain = build_loss("focal", alpha=None, gamma=0.0)(z, t).item()
    assert plain == pytest.approx(build_loss("bce")(z, t).item(), rel=1e-12)
    weighted = build_loss("focal", alpha=0.3, gamma=0.0)(z, t).item()
    zv, g = _valid(logits, target)
    p = 1 / (1 + np.exp(-zv))
    ce = -(g * np.log(p) + (1 - g) * np.log(1 - p))
    assert weighted == pytest.approx(float(np.mean(np.where(g == 1, 0.3, 0.7) * ce)), rel=1e-10)


def test_focal_tversky_with_gamma_one_is_tversky():
    logits, target = _batch(seed=10)
    z, t = _t(logits, target)
    assert FocalTverskyLoss(0.2, 0.8, gamma=1.0)(z, t).item() == pytest.approx(
        TverskyLoss(0.2, 0.8)(z, t).item(), rel=1e-12)


# ------------------------------------------------------------------ empty batches and gradients


EMPTY_CASES = [("dice", {}), ("dice", {"smooth": 0.0}), ("tversky", {"smooth": 0.0}), ("focal-tversky", {}),
               ("focal-tversky", {"smooth": 0.0}), ("bce", {"pos_weight": 3.0}), ("focal", {}),
               ("focal", {"gamma": 0.5}), ("bce+dice", {}), ("adsms", {}), ("adsms", {"smooth": 0.0})]


@pytest.mark.parametrize(("name", "params"), EMPTY_CASES)
def test_batch_without_valid_pixels_gives_zero_with_grad(name, params):
    logits = torch.randn(2, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    sides = [torch.randn(2, 1, 5, 5, dtype=torch.float64, requires_grad=True)]
    target = torch.full((2, 5, 5), NODATA, dtype=torch.uint8)
    loss = build_loss(name, **params)((logits, sides), target)
    assert loss.item() == 0.0
    assert loss.grad_fn is not None
    loss.backward()
    used = (logits, *sides) if name == "adsms" else (logits,)  # plain losses ignore side outputs
    for x in used:
        assert x.grad is not None and (x.grad == 0).all()


GRAD_CASES = [("dice", {}), ("tversky", {"alpha": 0.3, "beta": 0.7}), ("focal-tversky", {}),
              ("bce", {"pos_weight": 2.0}), ("focal", {}), ("focal", {"alpha": None, "gamma": 0.7}),
              ("bce+dice", {})]


@pytest.mark.parametrize(("name", "params"), GRAD_CASES)
def test_gradcheck(name, params):
    logits, target = _batch(seed=11, n=2, h=3, w=3, nodata=0.25)
    z, t = _t(logits, target)
    loss = build_loss(name, **params)
    assert torch.autograd.gradcheck(lambda x: loss(x, t), (z,), eps=1e-6, atol=1e-6)


def test_gradcheck_deep_supervision():
    logits, target = _batch(seed=12, n=2, h=4, w=4, nodata=0.25)
    z, t = _t(logits, target)
    side_full = torch.randn(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    side_half = torch.randn(2, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    loss = build_loss("adsms", side_weight=0.5)
    assert torch.autograd.gradcheck(lambda a, b, c: loss((a, [b, c]), t), (z, side_full, side_half),
                                    eps=1e-6, atol=1e-6)


# ------------------------------------------------------------------ model outputs and deep supervision


@pytest.mark.parametrize("name", ["dice", "tversky", "focal-tversky", "bce", "focal", "bce+dice"])
def test_plain_losses_use_the_final_output_of_a_tuple(name):
    logits, target = _batch(seed=13)
    z, t = _t(logits, target)
    sides = [torch.randn_like(z) for _ in range(3)]
    loss = build_loss(name)
    assert loss((z, sides), t).item() == loss(z, t).item()


def test_adsms_matches_reference_scheme():
    logits, target = _batch(seed=14)
    rng = np.random.default_rng(15)
    sides = [rng.normal(0, 2, size=logits.shape) for _ in range(3)]
    half = rng.normal(0, 2, size=(logits.shape[0], 1, logits.shape[2] // 2, logits.shape[3] // 2))
    loss = build_loss("adsms")
    z, t = _t(logits, target)
    got = loss((z, [torch.tensor(s) for s in [*sides, half]]), t).item()
    # Abraham & Khan: Tversky on the final output, focal Tversky (exponent 0.75) on each side,
    # 0.7 on false negatives, 0.3 on false positives, smooth 1; a coarser side sees a strided mask
    want = ref_tversky(logits, target, 0.3, 0.7)
    want += sum(ref_focal_tversky(s, target, 0.3, 0.7, 4 / 3) for s in sides)
    want += ref_focal_tversky(half, target[:, ::2, ::2], 0.3, 0.7, 4 / 3)
    assert got == pytest.approx(want, rel=1e-10)
    assert loss(z, t).item() == pytest.approx(ref_tversky(logits, target, 0.3, 0.7), rel=1e-10)


def test_deep_supervision_side_weight():
    logits, target = _batch(seed=16)
    z, t = _t(logits, target)
    sides = [torch.randn_like(z), torch.randn_like(z)]
    values = {w: DeepSupervisionLoss(DiceLoss(), build_loss("bce"), side_weight=w)((z, sides), t).item()
              for w in (0.0, 1.0, 2.5)}
    side_sum = ref_bce(sides[0].detach().numpy(), target) + ref_bce(sides[1].detach().numpy(), target)
    assert values[0.0] == pytest.approx(ref_dice(logits, target), rel=1e-10)
    assert values[2.5] - values[0.0] == pytest.approx(2.5 * side_sum, rel=1e-10)
    assert values[1.0] - values[0.0] == pytest.approx(side_sum, rel=1e-10)


def test_loss_trains_a_real_model_with_nodata():
    torch.manual_seed(0)
    model = build_model("unet", 4, base_filters=4, depth=2)
    x = torch.randn(2, 4, 16, 16)
    _, target = _batch(seed=17, n=2, h=16, w=16)
    loss = build_loss("bce+dice")
    value = loss(model(x), torch.tensor(target))
    value.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


# ------------------------------------------------------------------ names and options


def test_unknown_name_lists_the_names():
    with pytest.raises(ConfigError) as err:
        build_loss("dicee")
    for name in ("dice", "bce", "tversky", "focal-tversky", "focal", "bce+dice", "adsms"):
        assert name in str(err.value)
    assert set(loss_names()) >= {"dice", "bce", "tversky", "focal-tversky", "focal", "bce+dice", "adsms"}
    with pytest.raises(ConfigError):
        build_loss("bce+adsms")
    with pytest.raises(ConfigError):
        build_loss("")


@pytest.mark.parametrize(("name", "params"), [
    ("dice", {"alpha": 0.3}), ("bce", {"smooth": 1.0}), ("bce+dice", {"gamma": 2.0}), ("adsms", {"pos_weight": 2}),
    ("dice", {"smooth": -1.0}), ("tversky", {"alpha": -0.1}), ("focal-tversky", {"gamma": 0.0}),
    ("focal", {"alpha": 1.5}), ("bce", {"pos_weight": 0.0}), ("bce+dice", {"weights": (1.0,)}),
    ("adsms", {"side_weight": -1.0}),
])
def test_bad_options_are_config_errors(name, params):
    with pytest.raises(ConfigError):
        build_loss(name, **params)


def test_name_is_case_and_space_insensitive():
    logits, target = _batch(seed=18)
    z, t = _t(logits, target)
    assert build_loss(" BCE + Dice ")(z, t).item() == pytest.approx(ref_bce(logits, target) + ref_dice(logits, target))
