"""UperNet (Xiao et al. 2018): a feature pyramid over a ResNet encoder with a pyramid pooling module on top.

The stride-32 features pass the pyramid pooling module (bins 1, 2, 3, 6) and a 3x3 convolution;
top-down, each coarser level is upsampled and added to a 1x1 lateral projection of the finer
encoder level, and refined by a 3x3 convolution; all levels are upsampled to stride 4,
concatenated, fused by a 3x3 convolution and classified. GDCLD pairs UperNet with a ViT-B/16
backbone; here the encoder is a ResNet (a stated deviation of the GDCLD pipeline). Pooling makes
the model global (``receptive_field = None``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from geoslide.models.deeplab import conv_bn_relu
from geoslide.models.pspnet import PyramidPooling
from geoslide.models.registry import register
from geoslide.models.resnet import ResNet


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class UperNet(nn.Module):
    """UperNet for binary segmentation.

    Parameters
    ----------
    in_channels
        Input bands.
    encoder
        ``resnet50`` by default (``resnet18``, ``resnet34``, ``resnet101``).
    channels
        Width of the pyramid (512 in the paper).
    """

    size_multiple = 32
    receptive_field = None

    def __init__(self, in_channels: int, encoder: str = "resnet50", channels: int = 512) -> None:
        super().__init__()
        self.encoder = ResNet(in_channels, encoder)
        levels = self.encoder.channels[2:]  # strides 4, 8, 16, 32
        self.ppm = PyramidPooling(levels[-1], channels)
        self.top = conv_bn_relu(self.ppm.channels, channels, 3)
        self.lateral = nn.ModuleList(conv_bn_relu(c, channels) for c in levels[:-1])
        self.smooth = nn.ModuleList(conv_bn_relu(channels, channels, 3) for _ in levels[:-1])
        self.fuse = conv_bn_relu(len(levels) * channels, channels, 3)
        self.classify = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)``."""
        feats = self.encoder(x)[2:]
        top = self.top(self.ppm(feats[-1]))
        pyramid = [top]
        for i in reversed(range(len(self.lateral))):
            top = self.lateral[i](feats[i]) + _up(top, feats[i])
            pyramid.insert(0, self.smooth[i](top))
        fused = self.fuse(torch.cat([pyramid[0], *(_up(p, pyramid[0]) for p in pyramid[1:])], dim=1))
        return F.interpolate(self.classify(fused), size=x.shape[-2:], mode="bilinear", align_corners=False)


@register("upernet")
def build_upernet(in_channels: int, encoder: str = "resnet50", channels: int = 512) -> UperNet:
    """UperNet with a ResNet-50 encoder (GDCLD used ViT-B/16)."""
    return UperNet(in_channels, encoder, channels)
