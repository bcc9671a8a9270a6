"""GDCLD's ResUNet: a U-Net decoder on a ResNet-50 encoder.

The encoder gives features at strides 2, 4, 8, 16 and 32 (64, 256, 512, 1024, 2048 channels for
ResNet-50); each of five decoder blocks upsamples 2x (nearest), concatenates the encoder features
of that stride (none at stride 1) and applies two 3x3 convolutions with batch norm and ReLU
(256, 128, 64, 32, 16 channels by default); a 1x1 convolution classifies. Distinct from the
``resunet`` of HR-GLDD and Landslide4Sense, whose residual blocks are its own.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from geoslide.models.deeplab import conv_bn_relu
from geoslide.models.registry import register
from geoslide.models.resnet import ResNet


class ResNetUNet(nn.Module):
    """U-Net decoder on a ResNet encoder.

    Parameters
    ----------
    in_channels
        Input bands.
    encoder
        ``resnet50`` (GDCLD's), ``resnet18``, ``resnet34`` or ``resnet101``.
    decoder_channels
        Widths of the five decoder blocks, coarsest first.
    """

    size_multiple = 32

    def __init__(self, in_channels: int, encoder: str = "resnet50",
                 decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)) -> None:
        super().__init__()
        if len(decoder_channels) != 5:
            raise TypeError(f"decoder_channels needs 5 widths, got {len(decoder_channels)}")
        self.encoder = ResNet(in_channels, encoder)
        skips = [*self.encoder.channels[1:5][::-1], 0]  # strides 16, 8, 4, 2, none
        widths = [self.encoder.channels[-1], *decoder_channels]
        self.blocks = nn.ModuleList(
            nn.Sequential(conv_bn_relu(widths[i] + skips[i], widths[i + 1], 3), conv_bn_relu(widths[i + 1],
                                                                                            widths[i + 1], 3))
            for i in range(5)
        )
        self.head = nn.Conv2d(widths[-1], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)``."""
        feats = self.encoder(x)
        y = feats[5]
        for block, skip in zip(self.blocks, (feats[4], feats[3], feats[2], feats[1], None), strict=True):
            y = F.interpolate(y, scale_factor=2.0, mode="nearest")
            y = block(y if skip is None else torch.cat([y, skip], dim=1))
        return self.head(y)


@register("resunet50")
def build_resunet50(in_channels: int, encoder: str = "resnet50",
                    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)) -> ResNetUNet:
    """GDCLD's ResUNet (ResNet-50 encoder, U-Net decoder)."""
    return ResNetUNet(in_channels, encoder, tuple(decoder_channels))
