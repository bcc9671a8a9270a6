"""FCN-8s (Long et al. 2015): VGG-16 made fully convolutional, with skips from pool3 and pool4.

The VGG-16 convolutions (13 3x3 layers in five blocks, each block closed by 2x max pooling) are
followed by ``fc6`` as a 7x7 convolution and ``fc7`` as a 1x1 convolution (4096 channels, with
dropout); the stride-32 scores are upsampled 2x by a learned transposed convolution, added to
scores of pool4, upsampled 2x again, added to scores of pool3 and upsampled 8x; the transposed
convolutions start as bilinear interpolation, as in the paper. ``base_filters`` and ``fc_width``
shrink the network for small data (64 and 4096 are the paper's VGG-16, about 134 M parameters).
"""

from __future__ import annotations

import torch
from torch import nn

from geoslide.models.registry import register

VGG16 = (2, 2, 3, 3, 3)


def _bilinear_(conv: nn.ConvTranspose2d) -> None:
    """Initialise a one-channel transposed convolution as bilinear upsampling."""
    k = conv.kernel_size[0]
    centre = (k - 1) / 2 if k % 2 else k / 2 - 0.5
    ramp = 1 - (torch.arange(k, dtype=torch.float32) - centre).abs() / ((k + 1) // 2)
    with torch.no_grad():
        conv.weight.copy_((ramp[:, None] * ramp[None, :]).expand_as(conv.weight))


class FCN8s(nn.Module):
    """FCN-8s for binary segmentation; see the module docstring.

    Parameters
    ----------
    in_channels
        Input bands.
    base_filters
        Filters of the first VGG block (doubling up to 8x).
    fc_width
        Channels of ``fc6`` and ``fc7``.
    """

    size_multiple = 32

    def __init__(self, in_channels: int, base_filters: int = 64, fc_width: int = 4096) -> None:
        super().__init__()
        widths = [base_filters * m for m in (1, 2, 4, 8, 8)]
        self.encoder = nn.ModuleList()
        c = in_channels
        for width, count in zip(widths, VGG16, strict=True):
            layers: list[nn.Module] = []
            for _ in range(count):
                layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)]
                c = width
            self.encoder.append(nn.Sequential(*layers, nn.MaxPool2d(2)))
        self.fc = nn.Sequential(nn.Conv2d(c, fc_width, 7, padding=3), nn.ReLU(inplace=True), nn.Dropout2d(0.5),
                                nn.Conv2d(fc_width, fc_width, 1), nn.ReLU(inplace=True), nn.Dropout2d(0.5))
        self.score_fr = nn.Conv2d(fc_width, 1, 1)
        self.score_pool4 = nn.Conv2d(widths[3], 1, 1)
        self.score_pool3 = nn.Conv2d(widths[2], 1, 1)
        self.up2 = nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1, bias=False)
        self.up4 = nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1, bias=False)
        self.up8 = nn.ConvTranspose2d(1, 1, 16, stride=8, padding=4, bias=False)
        for up in (self.up2, self.up4, self.up8):
            _bilinear_(up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)``."""
        pools = []
        for block in self.encoder:
            x = block(x)
            pools.append(x)
        score = self.up2(self.score_fr(self.fc(x))) + self.score_pool4(pools[3])
        score = self.up4(score) + self.score_pool3(pools[2])
        return self.up8(score)


@register("fcn8s")
def build_fcn8s(in_channels: int, base_filters: int = 64, fc_width: int = 4096) -> FCN8s:
    """FCN-8s on VGG-16 (Landslide4Sense)."""
    return FCN8s(in_channels, base_filters, fc_width)
