"""LinkNet (Chaurasia and Culurciello 2017): a ResNet-18 encoder whose features are added to the decoder.

Each decoder block is a 1x1 convolution to a quarter of its input channels, a 3x3 transposed
convolution of stride 2 and a 1x1 convolution to the channels of the encoder level below, each
with batch norm and ReLU; its output is added to that encoder level's features. A final 3x3
transposed convolution, a 3x3 convolution and a 2x2 transposed convolution restore the input
size; as ResNet's first residual stage does not downsample, the decoder block on it keeps
the size (a Landslide4Sense baseline; about 11.5 M parameters with ResNet-18, as in the paper).
"""

from __future__ import annotations

import torch
from torch import nn

from geoslide.models.registry import register
from geoslide.models.resnet import ResNet


def _bn_relu(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class LinkDecoder(nn.Sequential):
    """1x1 (m -> m/4), 3x3 transposed stride 2 (a 3x3 convolution if ``up`` is False), 1x1 (m/4 -> n)."""

    def __init__(self, m: int, n: int, up: bool = True) -> None:
        q = m // 4
        middle = (nn.ConvTranspose2d(q, q, 3, stride=2, padding=1, output_padding=1, bias=False) if up
                  else nn.Conv2d(q, q, 3, padding=1, bias=False))
        super().__init__(
            _bn_relu(nn.Conv2d(m, q, 1, bias=False), q),
            _bn_relu(middle, q),
            _bn_relu(nn.Conv2d(q, n, 1, bias=False), n),
        )


class LinkNet(nn.Module):
    """LinkNet for binary segmentation.

    Parameters
    ----------
    in_channels
        Input bands.
    encoder
        ``resnet18`` (the paper's), ``resnet34``, ``resnet50`` or ``resnet101``.
    """

    size_multiple = 32

    def __init__(self, in_channels: int, encoder: str = "resnet18") -> None:
        super().__init__()
        self.encoder = ResNet(in_channels, encoder)
        c = self.encoder.channels  # input, stem, layer1 .. layer4
        # ResNet's layer1 keeps the stride of the stem (4), so the last decoder block does not upsample
        self.decoders = nn.ModuleList(LinkDecoder(c[i], c[i - 1] if i > 2 else 64, up=i > 2) for i in (5, 4, 3, 2))
        self.final = nn.Sequential(
            _bn_relu(nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1, bias=False), 32),
            _bn_relu(nn.Conv2d(32, 32, 3, padding=1, bias=False), 32),
            nn.ConvTranspose2d(32, 1, 2, stride=2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)``."""
        feats = self.encoder(x)
        y = feats[5]
        for decoder, skip in zip(self.decoders, (feats[4], feats[3], feats[2], None), strict=True):
            y = decoder(y) if skip is None else decoder(y) + skip
        return self.final(y)


@register("linknet")
def build_linknet(in_channels: int, encoder: str = "resnet18") -> LinkNet:
    """LinkNet with a ResNet-18 encoder (Landslide4Sense)."""
    return LinkNet(in_channels, encoder)
