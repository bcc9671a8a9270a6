"""U-Net (Ronneberger et al. 2015) with a configurable depth and first-layer width."""

from __future__ import annotations

import math

import torch
from torch import nn

from geoslide.errors import ModelError
from geoslide.models.registry import register

NORMS = ("batch", "group", "none")
UPSAMPLES = ("transpose", "nearest", "bilinear")


def norm_layer(norm: str, channels: int) -> nn.Module:
    """Normalisation after a convolution: ``batch``, ``group`` (up to 8 groups, per sample) or ``none``.

    Group norm and none depend on each sample alone, so data-parallel training on CPU (where
    SyncBatchNorm is unavailable) computes what one process with the global batch computes.
    """
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if norm == "none":
        return nn.Identity()
    raise ModelError(f"norm {norm!r} unknown; use one of {', '.join(NORMS)}")


def conv_block(c_in: int, c_out: int, norm: str = "batch") -> nn.Sequential:
    """Two 3x3 convolutions with normalisation (batch norm by default) and ReLU, size-preserving."""
    bias = norm == "none"
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias), norm_layer(norm, c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=bias), norm_layer(norm, c_out), nn.ReLU(inplace=True),
    )


def up_layer(c_in: int, c_out: int, upsample: str = "transpose") -> nn.Module:
    """2x upsampling from ``c_in`` to ``c_out`` channels in the decoder.

    ``transpose``: a learned 2x2 transposed convolution of stride 2. ``nearest`` or ``bilinear``:
    fixed 2x upsampling followed by a 3x3 convolution and ReLU (HR-GLDD's "learnable upconvolution").
    """
    if upsample == "transpose":
        return nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
    if upsample in ("nearest", "bilinear"):
        corners = {"align_corners": False} if upsample == "bilinear" else {}
        resize = nn.Upsample(scale_factor=2, mode=upsample, **corners)
        return nn.Sequential(resize, nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True))
    raise ModelError(f"upsample {upsample!r} unknown; use one of {', '.join(UPSAMPLES)}")


class UNet(nn.Module):
    """Encoder-decoder with skip connections; ``depth`` poolings, filters doubling per level.

    Parameters
    ----------
    in_channels
        Input bands.
    base_filters
        Filters of the first level (HR-GLDD searched 8 to 64).
    depth
        Number of 2x poolings; inputs must be multiples of ``2 ** depth``.
    norm
        ``batch`` (default), ``group`` or ``none`` (see :func:`norm_layer`).
    upsample
        ``transpose`` (default), ``nearest`` or ``bilinear`` (see :func:`up_layer`).
    """

    def __init__(self, in_channels: int, base_filters: int = 32, depth: int = 4, norm: str = "batch",
                 upsample: str = "transpose") -> None:
        super().__init__()
        widths = [base_filters * 2**i for i in range(depth + 1)]
        self.size_multiple = 2**depth
        self.down = nn.ModuleList([conv_block(in_channels, widths[0], norm)])
        self.down.extend(conv_block(widths[i], widths[i + 1], norm) for i in range(depth))
        levels = list(reversed(range(depth)))
        self.up = nn.ModuleList(up_layer(widths[i + 1], widths[i], upsample) for i in levels)
        self.merge = nn.ModuleList(conv_block(2 * widths[i], widths[i], norm) for i in levels)
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)``."""
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)


@register("unet")
def build_unet(in_channels: int, base_filters: int = 32, depth: int = 4, norm: str = "batch",
               upsample: str = "transpose") -> UNet:
    """Plain U-Net."""
    return UNet(in_channels, base_filters=base_filters, depth=depth, norm=norm, upsample=upsample)
