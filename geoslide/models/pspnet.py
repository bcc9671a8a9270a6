"""PSPNet (Zhao et al. 2017): dilated ResNet (output stride 8) and a pyramid pooling module.

The pyramid pooling module averages the last features over 1x1, 2x2, 3x3 and 6x6 bins, reduces
each to ``c_in / 4`` channels, upsamples them back and concatenates them with the features; a
3x3 convolution and a 1x1 classifier follow (a Landslide4Sense baseline). Pooling makes the model
global (``receptive_field = None``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from geoslide.models.deeplab import conv_bn_relu
from geoslide.models.registry import register
from geoslide.models.resnet import ResNet


class PyramidPooling(nn.Module):
    """Features concatenated with their averages over ``bins x bins`` grids, each reduced to ``width`` channels."""

    def __init__(self, c_in: int, width: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.stages = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(b), conv_bn_relu(c_in, width)) for b in bins)
        self.channels = c_in + len(bins) * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, channels, H, W)``."""
        size = x.shape[-2:]
        pooled = [F.interpolate(stage(x), size=size, mode="bilinear", align_corners=False) for stage in self.stages]
        return torch.cat([x, *pooled], dim=1)


class PSPNet(nn.Module):
    """PSPNet for binary segmentation.

    Parameters
    ----------
    in_channels
        Input bands.
    encoder
        ``resnet50`` by default (``resnet18``, ``resnet34``, ``resnet101``).
    bins
        Pooling grids of the pyramid.
    """

    size_multiple = 8
    receptive_field = None

    def __init__(self, in_channels: int, encoder: str = "resnet50", bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.encoder = ResNet(in_channels, encoder, dilate=(False, True, True))
        c = self.encoder.channels[-1]
        self.ppm = PyramidPooling(c, c // len(bins), tuple(bins))
        self.head = nn.Sequential(conv_bn_relu(self.ppm.channels, 512, 3), nn.Dropout2d(0.1), nn.Conv2d(512, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)``."""
        logits = self.head(self.ppm(self.encoder(x)[-1]))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register("pspnet")
def build_pspnet(in_channels: int, encoder: str = "resnet50", bins: tuple[int, ...] = (1, 2, 3, 6)) -> PSPNet:
    """PSPNet with a ResNet-50 encoder (Landslide4Sense)."""
    return PSPNet(in_channels, encoder, bins)
