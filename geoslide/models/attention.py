"""Attention U-Net and Attention Res U-Net (Oktay et al. 2018): additive attention gates on the skips.

A gate weights each skip connection by a coefficient in (0, 1) per pixel, computed from the skip
features and the coarser decoder features (the gating signal), so that the decoder is fed the
skip features where the coarse context says they matter.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from geoslide.models.registry import register
from geoslide.models.resunet import ResBlock, UNetSkeleton
from geoslide.models.unet import conv_block, norm_layer


class AttentionGate(nn.Module):
    """Additive attention gate on a skip connection.

    ``alpha = sigmoid(psi(relu(theta(skip) + phi(gating))))`` is computed at the gating
    (half) resolution, with ``theta`` a 2x2 stride-2 convolution, resampled bilinearly to the
    skip resolution, and ``W(alpha * skip)`` is returned with ``W`` a 1x1 convolution plus normalisation.

    Parameters
    ----------
    skip_channels
        Channels of the skip features.
    gating_channels
        Channels of the coarser features (half the skip resolution) that gate them.
    inter_channels
        Width of the joint space; half the skip channels by default.
    norm
        Normalisation of ``W``: ``batch``, ``group`` or ``none``.
    """

    def __init__(self, skip_channels: int, gating_channels: int, inter_channels: int | None = None,
                 norm: str = "batch") -> None:
        super().__init__()
        inter = inter_channels or max(1, skip_channels // 2)
        self.theta = nn.Conv2d(skip_channels, inter, 2, stride=2, bias=False)
        self.phi = nn.Conv2d(gating_channels, inter, 1)
        self.psi = nn.Conv2d(inter, 1, 1)
        self.out = nn.Sequential(nn.Conv2d(skip_channels, skip_channels, 1, bias=norm == "none"),
                                 norm_layer(norm, skip_channels))

    def coefficients(self, skip: torch.Tensor, gating: torch.Tensor) -> torch.Tensor:
        """Attention coefficients ``(N, 1, H, W)`` in (0, 1) at the skip resolution."""
        joint = F.relu(self.theta(skip) + self.phi(gating))
        alpha = torch.sigmoid(self.psi(joint))
        return F.interpolate(alpha, size=skip.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, skip: torch.Tensor, gating: torch.Tensor) -> torch.Tensor:
        """The gated skip features, same shape as ``skip``."""
        return self.out(self.coefficients(skip, gating) * skip)


@register("attention-unet")
def build_attention_unet(in_channels: int, base_filters: int = 32, depth: int = 4, norm: str = "batch",
                         upsample: str = "transpose") -> UNetSkeleton:
    """Attention U-Net: U-Net blocks with attention gates on every skip."""
    return UNetSkeleton(in_channels, base_filters, depth, block=partial(conv_block, norm=norm),
                        gate=partial(AttentionGate, norm=norm), upsample=upsample)


@register("attention-resunet")
def build_attention_resunet(in_channels: int, base_filters: int = 32, depth: int = 4,
                            norm: str = "batch", upsample: str = "transpose") -> UNetSkeleton:
    """Attention Res U-Net: residual blocks with attention gates on every skip."""
    return UNetSkeleton(in_channels, base_filters, depth, block=partial(ResBlock, norm=norm),
                        gate=partial(AttentionGate, norm=norm), upsample=upsample)
