"""U-Net (Ronneberger et al. 2015) with a configurable depth and first-layer width."""

from __future__ import annotations

import torch
from torch import nn

from geoslide.models import register


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions with batch norm and ReLU, size-preserving."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


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
    """

    def __init__(self, in_channels: int, base_filters: int = 32, depth: int = 4) -> None:
        super().__init__()
        widths = [base_filters * 2**i for i in range(depth + 1)]
        self.size_multiple = 2**depth
        self.down = nn.ModuleList([conv_block(in_channels, widths[0])])
        self.down.extend(conv_block(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth)))
        self.merge = nn.ModuleList(conv_block(2 * widths[i], widths[i]) for i in reversed(range(depth)))
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
def build_unet(in_channels: int, base_filters: int = 32, depth: int = 4) -> UNet:
    """Plain U-Net."""
    return UNet(in_channels, base_filters=base_filters, depth=depth)
