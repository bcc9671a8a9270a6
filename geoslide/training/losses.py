"""Losses for binary landslide segmentation, by name.

Every loss is an :class:`torch.nn.Module` called as ``loss(output, target)``:

- ``output`` is the model output: logits ``(N, 1, H, W)`` (or ``(N, H, W)``), or the training-mode
  tuple ``(logits, [side_logits, ...])`` of a deep-supervision model. Plain losses use only the
  final logits of such a tuple, so a training loop can call any loss on any model output.
- ``target`` is a mask ``(N, H, W)`` (or ``(N, 1, H, W)``): 1 = landslide, 255 = nodata, any other
  value = background. Nodata pixels are left out of every loss.

Reduction is over all valid pixels of the batch at once (one Dice/Tversky index per batch, the
mean cross-entropy over valid pixels), not per image. A batch without a valid pixel gives a loss of
exactly 0 that still has a ``grad_fn`` and back-propagates zero (never NaN) gradients.

Soft counts on probabilities ``p = sigmoid(logits)`` and the target ``g`` over valid pixels:
``TP = sum(p g)``, ``FP = sum(p (1 - g))``, ``FN = sum((1 - p) g)``.

- ``dice``: ``1 - (2 TP + smooth) / (2 TP + FP + FN + smooth)``.
- ``tversky`` (Salehi et al. 2017): ``1 - TI`` with ``TI = (TP + smooth) / (TP + alpha FP + beta FN + smooth)``;
  **alpha weights false positives, beta false negatives** (beta > alpha favours recall). With
  ``alpha = beta = 0.5`` it is the Dice loss with half the smoothing term.
- ``focal-tversky`` (Abraham & Khan 2019): ``(1 - TI) ** (1 / gamma)``; the paper's ``gamma = 4/3``
  (exponent 0.75) is the default.
- ``bce``: binary cross-entropy on logits, optional ``pos_weight`` on landslide pixels, averaged
  over the valid pixels (like ``torch.nn.BCEWithLogitsLoss``).
- ``focal`` (Lin et al. 2017): ``alpha_t (1 - p_t) ** gamma * CE`` averaged over valid pixels, with
  ``alpha_t = alpha`` on landslide and ``1 - alpha`` on background pixels (``alpha=None``: no
  weighting). With ``gamma = 0`` and ``alpha=None`` it equals ``bce``.
- ``a+b`` (e.g. ``bce+dice``): the sum of plain losses, optionally weighted (``weights=(1.0, 0.5)``).
- ``adsms``: the deep-supervision scheme HR-GLDD used for the ADSMS U-Net, after Abraham & Khan:
  focal Tversky on every side output, Tversky on the final output, side losses summed with weight 1.
  HR-GLDD gives no coefficients; the defaults are Abraham & Khan's (0.7 on false negatives, 0.3 on
  false positives, gamma 4/3, smooth 1).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from geoslide.errors import ConfigError, ModelError
from geoslide.inventory.codes import MASK_NODATA
from geoslide.models.outputs import ModelOutput, final_logits, split_output

ADSMS_ALPHA = 0.3  # false positives (Abraham & Khan: 1 - 0.7)
ADSMS_BETA = 0.7  # false negatives
ADSMS_GAMMA = 4 / 3  # focal exponent 1/gamma = 0.75


# ---------------------------------------------------------------------------------------------
# masks (model outputs: geoslide.models.outputs)
# ---------------------------------------------------------------------------------------------


def _squeeze_channel(x: torch.Tensor, what: str) -> torch.Tensor:
    if x.dim() == 4 and x.shape[1] == 1:
        return x[:, 0]
    if x.dim() == 3:
        return x
    raise ModelError(f"{what} must be (N, 1, H, W) or (N, H, W), got shape {tuple(x.shape)}")


def prepare(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Align logits and mask; return ``(logits, positive, valid)`` as ``(N, H, W)`` tensors.

    ``positive`` is a 0/1 float mask of landslide pixels (dtype of the logits), ``valid`` a bool mask
    of the pixels that are not nodata (255).
    """
    logits = _squeeze_channel(logits, "logits")
    target = _squeeze_channel(target, "a target mask")
    if logits.shape != target.shape:
        raise ModelError(f"model output {tuple(logits.shape)} does not match the mask {tuple(target.shape)}; "
                         "pad inputs to the model's size_multiple and crop the output")
    target = target.to(logits.device)
    valid = target != MASK_NODATA
    positive = (target == 1).to(logits.dtype)
    return logits, positive, valid


def _safe_ratio(num: torch.Tensor, den: torch.Tensor, empty: float) -> torch.Tensor:
    """``num / den`` where ``den > 0``, else ``empty``; gradients stay finite in both branches."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.full_like(num, empty))


def _safe_power(base: torch.Tensor, exponent: float) -> torch.Tensor:
    """``base ** exponent`` for ``base >= 0`` and ``exponent > 0``, 0 at 0, with finite gradients."""
    tiny = torch.finfo(base.dtype).tiny
    return torch.where(base > 0, base.clamp_min(tiny) ** exponent, torch.zeros_like(base))


def soft_counts(logits: torch.Tensor, positive: torch.Tensor,
                valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft ``(TP, FP, FN)`` of sigmoid probabilities over the valid pixels of the batch."""
    prob = torch.where(valid, torch.sigmoid(logits), torch.zeros_like(logits))
    negative = valid.to(logits.dtype) - positive
    tp = (prob * positive).sum()
    fp = (prob * negative).sum()
    fn = ((1 - prob) * positive).sum()
    return tp, fp, fn


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over valid pixels; 0 (with a grad_fn) when there is none."""
    total = torch.where(valid, values, torch.zeros_like(values)).sum()
    return total / valid.sum().clamp_min(1).to(values.dtype)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


# ---------------------------------------------------------------------------------------------
# plain losses
# ---------------------------------------------------------------------------------------------


class MaskedLoss(nn.Module):
    """Base of the plain losses: takes any model output, keeps the final logits, drops nodata."""

    def forward(self, output: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of ``output`` against the mask ``target``."""
        logits, positive, valid = prepare(final_logits(output), target)
        return self.masked(logits, positive, valid)

    def masked(self, logits: torch.Tensor, positive: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Loss from aligned ``(N, H, W)`` logits, 0/1 landslide mask and valid-pixel mask."""
        raise NotImplementedError


class DiceLoss(MaskedLoss):
    """Soft Dice loss ``1 - (2 TP + smooth) / (2 TP + FP + FN + smooth)`` over the batch.

    Parameters
    ----------
    smooth : float
        Added to numerator and denominator (>= 0). A batch without landslide pixels then gives
        ``FP / (FP + smooth)``, which still trains, instead of the constant 1 of ``smooth = 0``.
    """

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        _check(smooth >= 0, f"dice smooth must be >= 0, got {smooth}")
        self.smooth = float(smooth)

    def masked(self, logits: torch.Tensor, positive: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Dice loss of aligned tensors."""
        tp, fp, fn = soft_counts(logits, positive, valid)
        return 1 - _safe_ratio(2 * tp + self.smooth, 2 * tp + fp + fn + self.smooth, empty=1.0)


class TverskyLoss(MaskedLoss):
    """Tversky loss ``1 - (TP + s) / (TP + alpha FP + beta FN + s)`` over the batch.

    Parameters
    ----------
    alpha : float
        Weight of false positives (>= 0).
    beta : float
        Weight of false negatives (>= 0); ``beta > alpha`` trades precision for recall.
    smooth : float
        Smoothing term ``s`` (>= 0).
    """

    def __init__(self, alpha: float = ADSMS_ALPHA, beta: float = ADSMS_BETA, smooth: float = 1.0) -> None:
        super().__init__()
        _check(alpha >= 0 and beta >= 0, f"tversky alpha and beta must be >= 0, got {alpha}, {beta}")
        _check(smooth >= 0, f"tversky smooth must be >= 0, got {smooth}")
        self.alpha, self.beta, self.smooth = float(alpha), float(beta), float(smooth)

    def index(self, logits: torch.Tensor, positive: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The soft Tversky index (1 = perfect; 1 also for an empty batch)."""
        tp, fp, fn = soft_counts(logits, positive, valid)
        den = tp + self.alpha * fp + self.beta * fn + self.smooth
        return _safe_ratio(tp + self.smooth, den, empty=1.0)

    def masked(self, logits: torch.Tensor, positive: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Tversky loss of aligned tensors."""
        return 1 - self.index(logits, positive, valid)


class FocalTverskyLoss(TverskyLoss):
    """Focal Tversky loss ``(1 - TI) ** (1 / gamma)`` (Abraham & Khan 2019).

    Parameters
    ----------
    alpha, beta, smooth : float
        As in :class:`TverskyLoss` (alpha: false positives, beta: false negatives).
    gamma : float
        Focal parameter (> 0); the exponent is ``1 / gamma``. ``gamma > 1`` raises the loss of
        well-classified batches (Abraham & Khan use 4/3); ``gamma = 1`` is the Tversky loss.
    """

    def __init__(self, alpha: float = ADSMS_ALPHA, beta: float = ADSMS_BETA, gamma: float = ADSMS_GAMMA,
                 smooth: float = 1.0) -> None:
        super().__init__(alpha=alpha, beta=beta, smooth=smooth)
        _check(gamma > 0, f"focal-tversky gamma must be > 0, got {gamma}")
        self.gamma = float(gamma)

    def masked(self, logits: torch.Tensor, positive: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Focal Tversky loss of aligned tensors."""
        return _safe_power(1 - self.index(logits, positive, valid), 1 / self.gamma)


class BCELoss(MaskedLoss):
    """Binary cross-entropy on logits, averaged over the valid pixels of the batch.

    Parameters
    ----------
    pos_weight : float, optional
        Weight of the landslide term (> 0), e.g. background/landslide pixel ratio for rare landslides.
    """

    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__()
        _check(pos_weight is None or pos_weight > 0, f"bce pos_weight must be > 0, got {pos_weight}")
        self.pos_weight = None if pos_weight is None else float(pos_weight)

    def masked(self, logits: torch.Tensor, positive: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """BCE of aligned tensors."""
        weight = None if self.pos_weight is None else logits.new_tensor(self.pos_weight)
        ce = F.binary_cross_entropy_with_logits(logits, positive, pos_weight=weight, reduction="none")
        return _masked_mean(ce, valid)


class FocalLoss(MaskedLoss):
    """Focal loss ``alpha_t (1 - p_t) ** gamma * CE`` (Lin et al. 2017), mean over valid pixels.

    Parameters
    ----------
    alpha : float or None
        Weight of landslide pixels in [0, 1]; background pixels get ``1 - alpha``. None: no weighting.
    gamma : float
        Focusing parameter (>= 0); 0 gives the (alpha-weighted) cross-entropy.
    """

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        _check(alpha is None or 0 <= alpha <= 1, f"focal alpha must be in [0, 1] or None, got {alpha}")
        _check(gamma >= 0, f"focal gamma must be >= 0, got {gamma}")
        self.alpha = None if alpha is None else float(alpha)
        self.gamma = float(gamma)

    def masked(self, logits: torch.Tensor, positive: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Focal loss of aligned tensors."""
        ce = F.binary_cross_entropy_with_logits(logits, positive, reduction="none")
        loss = ce if self.gamma == 0 else _safe_power(-torch.expm1(-ce), self.gamma) * ce  # 1 - p_t = -expm1(-ce)
        if self.alpha is not None:
            loss = loss * (self.alpha * positive + (1 - self.alpha) * (1 - positive))
        return _masked_mean(loss, valid)


# ---------------------------------------------------------------------------------------------
# combinations
# ---------------------------------------------------------------------------------------------


class SumLoss(nn.Module):
    """Weighted sum of losses, each called on the same output and target.

    Parameters
    ----------
    losses : sequence of nn.Module
        The terms.
    weights : sequence of float, optional
        One weight per term (default 1 each).
    """

    def __init__(self, losses: Sequence[nn.Module], weights: Sequence[float] | None = None) -> None:
        super().__init__()
        weights = [1.0] * len(losses) if weights is None else [float(w) for w in weights]
        _check(len(losses) > 0, "a sum of losses needs at least one term")
        _check(len(weights) == len(losses), f"give one weight per loss term ({len(losses)}), got {len(weights)}")
        self.terms = nn.ModuleList(losses)
        self.weights = weights

    def forward(self, output: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        """Sum of the weighted terms."""
        parts = [w * term(output, target) for w, term in zip(self.weights, self.terms, strict=True)]
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total


def _resize_mask(target: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The mask at the spatial size of ``like`` (nearest neighbour: a strided subsample)."""
    mask = _squeeze_channel(target, "a target mask")
    size = tuple(like.shape[-2:])
    if tuple(mask.shape[-2:]) == size:
        return mask
    resized = F.interpolate(mask[:, None].float(), size=size, mode="nearest")
    return resized[:, 0].to(mask.dtype)


class DeepSupervisionLoss(nn.Module):
    """``final(logits) + side_weight * sum(side(s) for s in side_logits)``.

    Accepts a plain tensor too (eval-mode output), which gives ``final(logits)``. Side outputs at a
    coarser size than the mask are compared with a nearest-neighbour subsample of the mask.

    Parameters
    ----------
    final : nn.Module
        Loss of the final logits.
    side : nn.Module
        Loss of each side output.
    side_weight : float
        Weight of every side loss (>= 0).
    """

    def __init__(self, final: nn.Module, side: nn.Module, side_weight: float = 1.0) -> None:
        super().__init__()
        _check(side_weight >= 0, f"side_weight must be >= 0, got {side_weight}")
        self.final, self.side, self.side_weight = final, side, float(side_weight)

    def forward(self, output: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        """Loss of the final output plus the weighted side losses."""
        logits, sides = split_output(output)
        total = self.final(logits, target)
        for side in sides:
            total = total + self.side_weight * self.side(side, _resize_mask(target, side))
        return total


# ---------------------------------------------------------------------------------------------
# by name
# ---------------------------------------------------------------------------------------------

_PLAIN: dict[str, type[MaskedLoss]] = {
    "dice": DiceLoss, "bce": BCELoss, "tversky": TverskyLoss, "focal-tversky": FocalTverskyLoss, "focal": FocalLoss,
}


def loss_names() -> list[str]:
    """Names accepted by :func:`build_loss` (plain losses also combine with ``+``), sorted."""
    return sorted([*_PLAIN, "adsms", "bce+dice"])


def _accepted(cls: type) -> set[str]:
    return {name for name in inspect.signature(cls).parameters if name != "self"}


def _build_plain(name: str, params: dict[str, Any]) -> nn.Module:
    cls = _PLAIN[name]
    unknown = sorted(set(params) - _accepted(cls))
    _check(not unknown, f"unknown option(s) {', '.join(unknown)} for loss {name!r}; "
                        f"it takes {', '.join(sorted(_accepted(cls))) or 'none'}")
    return cls(**params)


def _build_sum(names: list[str], params: dict[str, Any]) -> SumLoss:
    weights = params.pop("weights", None)
    unused = sorted(k for k in params if not any(k in _accepted(_PLAIN[n]) for n in names))
    _check(not unused, f"option(s) {', '.join(unused)} fit none of the losses {'+'.join(names)}")
    terms = [_build_plain(n, {k: v for k, v in params.items() if k in _accepted(_PLAIN[n])}) for n in names]
    return SumLoss(terms, weights)


def build_adsms(alpha: float = ADSMS_ALPHA, beta: float = ADSMS_BETA, gamma: float = ADSMS_GAMMA,
                smooth: float = 1.0, side_weight: float = 1.0) -> DeepSupervisionLoss:
    """HR-GLDD's ADSMS scheme: Tversky on the final output, focal Tversky on each side output.

    Parameters
    ----------
    alpha, beta : float
        Weights of false positives and false negatives (Abraham & Khan: 0.3 and 0.7).
    gamma : float
        Focal Tversky parameter; exponent ``1 / gamma`` (4/3, exponent 0.75).
    smooth : float
        Smoothing term of the Tversky index.
    side_weight : float
        Weight of each side loss (1 in Abraham & Khan's Keras model).
    """
    final = TverskyLoss(alpha=alpha, beta=beta, smooth=smooth)
    side = FocalTverskyLoss(alpha=alpha, beta=beta, gamma=gamma, smooth=smooth)
    return DeepSupervisionLoss(final, side, side_weight=side_weight)


def build_loss(name: str, **params: Any) -> nn.Module:
    """Build a loss by name.

    Parameters
    ----------
    name : str
        One of :func:`loss_names` (``dice``, ``bce``, ``tversky``, ``focal-tversky``, ``focal``,
        ``bce+dice``, ``adsms``), or plain losses joined with ``+`` (``focal+dice``).
    **params
        Options of the loss (see the classes). For a sum, each option goes to every term that takes
        it, and ``weights`` gives one weight per term.

    Raises
    ------
    ConfigError
        On an unknown name or option, or an option out of range.
    """
    key = name.strip().lower()
    if key == "adsms":
        unknown = sorted(set(params) - set(inspect.signature(build_adsms).parameters))
        _check(not unknown, f"unknown option(s) {', '.join(unknown)} for loss 'adsms'; "
                            f"it takes {', '.join(inspect.signature(build_adsms).parameters)}")
        return build_adsms(**params)
    parts = [p.strip() for p in key.split("+")]
    if not key or any(p not in _PLAIN for p in parts):
        raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(loss_names())} "
                          "(plain losses can be joined with '+', e.g. focal+dice)")
    if len(parts) == 1:
        return _build_plain(parts[0], dict(params))
    return _build_sum(parts, dict(params))
