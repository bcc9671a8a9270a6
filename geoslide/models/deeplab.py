"""DeepLabV3 (Chen et al. 2017) and DeepLabV3+ (Chen et al. 2018) on a dilated ResNet encoder.

DeepLabV3 (GDCLD's ResNet-50 baseline) keeps output stride 8 (``layer3`` and ``layer4`` dilated)
and classifies the atrous spatial pyramid pooling (ASPP: 1x1, three 3x3 convolutions at rates 12,
24, 36, and image pooling) through a 3x3 convolution; the layout and widths are those of
torchvision's ``deeplabv3_resnet50`` without its auxiliary head. DeepLabV3+ (a Landslide4Sense
baseline) keeps output stride 16 with rates 6, 12, 18 and decodes the ASPP output with the
stride-4 features of ``layer1`` (reduced to 48 channels). Image pooling makes both global
(``receptive_field = None``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from geoslide.models.registry import register
from geoslide.models.resnet import ResNet


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    """Convolution without bias, batch norm, ReLU; size-preserving."""
    pad = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ImagePooling(nn.Module):
    """Global average, 1x1 convolution, batch norm, ReLU, broadcast back to the input size."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_bn_relu(c_in, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, c_out, H, W)``."""
        return F.interpolate(self.body(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: parallel 1x1, dilated 3x3 and image pooling, projected to ``c_out``."""

    def __init__(self, c_in: int, rates: tuple[int, ...], c_out: int = 256, dropout: float = 0.5) -> None:
        super().__init__()
        branches = [conv_bn_relu(c_in, c_out)] + [conv_bn_relu(c_in, c_out, 3, r) for r in rates]
        self.branches = nn.ModuleList([*branches, ImagePooling(c_in, c_out)])
        self.project = nn.Sequential(conv_bn_relu((len(rates) + 2) * c_out, c_out), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, c_out, H, W)``."""
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class DeepLabV3(nn.Module):
    """DeepLabV3: dilated ResNet (output stride 8), ASPP, 3x3 convolution, 1x1 classifier, bilinear upsampling.

    Parameters
    ----------
    in_channels
        Input bands.
    encoder
        ``resnet50`` (the paper's and GDCLD's), ``resnet18``, ``resnet34`` or ``resnet101``.
    rates
        ASPP dilation rates.
    """

    size_multiple = 8
    receptive_field = None

    def __init__(self, in_channels: int, encoder: str = "resnet50", rates: tuple[int, ...] = (12, 24, 36)) -> None:
        super().__init__()
        self.encoder = ResNet(in_channels, encoder, dilate=(False, True, True))
        self.aspp = ASPP(self.encoder.channels[-1], tuple(rates))
        self.head = nn.Sequential(conv_bn_relu(256, 256, 3), nn.Conv2d(256, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)``."""
        logits = self.head(self.aspp(self.encoder(x)[-1]))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+: dilated ResNet (output stride 16), ASPP, decoder with the stride-4 features.

    Parameters
    ----------
    in_channels
        Input bands.
    encoder
        ``resnet50`` by default; ``resnet18``, ``resnet34`` or ``resnet101``.
    rates
        ASPP dilation rates.
    """

    size_multiple = 16
    receptive_field = None

    def __init__(self, in_channels: int, encoder: str = "resnet50", rates: tuple[int, ...] = (6, 12, 18)) -> None:
        super().__init__()
        self.encoder = ResNet(in_channels, encoder, dilate=(False, False, True))
        self.aspp = ASPP(self.encoder.channels[-1], tuple(rates), dropout=0.1)
        self.reduce = conv_bn_relu(self.encoder.channels[2], 48)
        self.decoder = nn.Sequential(conv_bn_relu(256 + 48, 256, 3), conv_bn_relu(256, 256, 3), nn.Conv2d(256, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)``."""
        feats = self.encoder(x)
        low = self.reduce(feats[2])
        high = F.interpolate(self.aspp(feats[-1]), size=low.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.decoder(torch.cat([high, low], dim=1))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register("deeplabv3")
def build_deeplabv3(in_channels: int, encoder: str = "resnet50", rates: tuple[int, ...] = (12, 24, 36)) -> DeepLabV3:
    """DeepLabV3 with a ResNet-50 encoder (GDCLD)."""
    return DeepLabV3(in_channels, encoder, rates)


@register("deeplabv3plus")
def build_deeplabv3plus(in_channels: int, encoder: str = "resnet50", rates: tuple[int, ...] = (6, 12, 18)
                        ) -> DeepLabV3Plus:
    """DeepLabV3+ with a ResNet-50 encoder (Landslide4Sense)."""
    return DeepLabV3Plus(in_channels, encoder, rates)
