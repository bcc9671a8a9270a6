"""ADSMS U-Net: Attention U-Net with multi-scale inputs and deep supervision (Abraham & Khan 2018).

HR-GLDD (Meena et al.) trained it as its fifth model. Compared with the Attention U-Net:

- multi-scale inputs: the image, average-pooled by ``2**k``, passes a 3x3 convolution and is
  concatenated with the pooled features entering encoder level ``k`` (for every ``k >= 1``);
- deep supervision: every decoder level above the finest has a 1x1 side head; in training mode
  the model returns ``(logits, [side_logits, ...])`` (coarsest side first), each side upsampled
  bilinearly to the input size, so a loss can supervise them (HR-GLDD: Focal Tversky on the sides,
  Tversky on the final output). In eval mode it returns the logits alone.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from geoslide.models.attention import AttentionGate
from geoslide.models.registry import register
from geoslide.models.resunet import UNetSkeleton
from geoslide.models.unet import conv_block, norm_layer


def _image_stem(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    """3x3 convolution, normalisation and ReLU applied to a downscaled copy of the input."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=norm == "none")
    return nn.Sequential(conv, norm_layer(norm, c_out), nn.ReLU(inplace=True))


class ADSMSUNet(UNetSkeleton):
    """Attention U-Net with an input image pyramid and deep supervision.

    Parameters
    ----------
    in_channels
        Input bands.
    base_filters
        Filters of the first level (HR-GLDD searched 8 to 64).
    depth
        Number of 2x poolings; inputs must be multiples of ``2 ** depth``.
    norm
        ``batch`` (default), ``group`` or ``none`` (see :func:`geoslide.models.unet.norm_layer`).
    upsample
        ``transpose`` (default), ``nearest`` or ``bilinear`` (see :func:`geoslide.models.unet.up_layer`).
    """

    deep_supervision = True

    def __init__(self, in_channels: int, base_filters: int = 32, depth: int = 4, norm: str = "batch",
                 upsample: str = "transpose") -> None:
        super().__init__(in_channels, base_filters, depth, block=partial(conv_block, norm=norm),
                         gate=partial(AttentionGate, norm=norm), upsample=upsample)
        w = self.widths
        self.stems = nn.ModuleList(_image_stem(in_channels, w[k - 1], norm) for k in range(1, depth + 1))
        self.sides = nn.ModuleList(nn.Conv2d(w[i], 1, 1) for i in reversed(range(1, depth)))

    def _down_in(self, level: int) -> int:
        """Pooled features plus the stem of the downscaled image, except at level 0."""
        return self.in_channels if level == 0 else 2 * self.widths[level - 1]

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features, finest first; level ``k`` also sees the input pooled by ``2**k``."""
        feats = [self.down[0](x)]
        for k in range(1, self.depth + 1):
            image = F.avg_pool2d(x, 2**k)
            pooled = F.max_pool2d(feats[-1], 2)
            feats.append(self.down[k](torch.cat([pooled, self.stems[k - 1](image)], dim=1)))
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits ``(N, 1, H, W)``; in training mode ``(logits, side_logits)``, sides coarsest first."""
        outs = self.decode(self.encode(x))
        logits = self.head(outs[-1])
        if not self.training:
            return logits
        size = x.shape[-2:]
        sides = [F.interpolate(head(out), size=size, mode="bilinear", align_corners=False)
                 for head, out in zip(self.sides, outs[:-1], strict=True)]
        return logits, sides


@register("adsms-unet")
def build_adsms_unet(in_channels: int, base_filters: int = 32, depth: int = 4, norm: str = "batch",
                     upsample: str = "transpose") -> ADSMSUNet:
    """ADSMS U-Net (attention, multi-scale inputs, deep supervision)."""
    return ADSMSUNet(in_channels, base_filters, depth, norm, upsample)
