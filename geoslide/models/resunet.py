"""Res U-Net, and the U-Net skeleton that the residual, attention and ADSMS variants share.

The skeleton is the U-Net of :mod:`geoslide.models.unet` with two points of variation: the
convolution block of every level (plain or residual) and an optional gate on each skip
connection (see :mod:`geoslide.models.attention`). The residual block follows He et al. (2016):
two 3x3 convolutions whose sum with a 1x1 projection of the input is activated.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from geoslide.errors import ModelError
from geoslide.models.registry import register
from geoslide.models.unet import norm_layer, up_layer

BlockFactory = Callable[[int, int], nn.Module]
GateFactory = Callable[[int, int], nn.Module]


class ResBlock(nn.Module):
    """Two 3x3 convolutions with normalisation plus a shortcut, then ReLU; size-preserving.

    The shortcut is a 1x1 convolution with normalisation when the channel count changes, else the
    identity. ``norm`` is ``batch``, ``group`` or ``none`` (see :func:`geoslide.models.unet.norm_layer`).
    """

    def __init__(self, c_in: int, c_out: int, norm: str = "batch") -> None:
        super().__init__()
        bias = norm == "none"
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias), norm_layer(norm, c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=bias), norm_layer(norm, c_out),
        )
        self.shortcut: nn.Module = nn.Identity()
        if c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=bias), norm_layer(norm, c_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual output with ``c_out`` channels."""
        return self.act(self.body(x) + self.shortcut(x))


def level_widths(base_filters: int, depth: int) -> list[int]:
    """Filters per level, ``base_filters * 2**i`` for ``i = 0 .. depth``; rejects unusable options.

    Raises
    ------
    ModelError
        If ``base_filters`` or ``depth`` is below 1.
    """
    if not isinstance(base_filters, int) or base_filters < 1:
        raise ModelError(f"base_filters must be a positive integer, got {base_filters!r}")
    if not isinstance(depth, int) or depth < 1:
        raise ModelError(f"depth must be a positive integer (number of poolings), got {depth!r}")
    return [base_filters * 2**i for i in range(depth + 1)]


class UNetSkeleton(nn.Module):
    """Encoder-decoder with skip connections, ``depth`` 2x poolings, filters doubling per level.

    Parameters
    ----------
    in_channels
        Input bands.
    base_filters
        Filters of the first level.
    depth
        Number of 2x poolings; inputs must be multiples of ``2 ** depth``.
    block
        ``block(c_in, c_out)`` builds the size-preserving convolution block of a level.
    gate
        Optional ``gate(skip_channels, gating_channels)``; the module is called as
        ``gate(skip, coarser_features)`` and returns the re-weighted skip.
    upsample
        Decoder upsampling: ``transpose``, ``nearest`` or ``bilinear`` (see :func:`geoslide.models.unet.up_layer`).
    """

    def __init__(self, in_channels: int, base_filters: int = 32, depth: int = 4, *, block: BlockFactory = ResBlock,
                 gate: GateFactory | None = None, upsample: str = "transpose") -> None:
        super().__init__()
        self.in_channels = in_channels
        self.widths = level_widths(base_filters, depth)
        self.depth = depth
        self.size_multiple = 2**depth
        w = self.widths
        self.down = nn.ModuleList(block(self._down_in(i), w[i]) for i in range(depth + 1))
        levels = list(reversed(range(depth)))
        self.up = nn.ModuleList(up_layer(w[i + 1], w[i], upsample) for i in levels)
        self.gates = nn.ModuleList(gate(w[i], w[i + 1]) for i in levels) if gate is not None else None
        self.merge = nn.ModuleList(block(2 * w[i], w[i]) for i in levels)
        self.head = nn.Conv2d(w[0], 1, 1)

    def _down_in(self, level: int) -> int:
        """Channels entering the encoder block of ``level``."""
        return self.in_channels if level == 0 else self.widths[level - 1]

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features, finest first; the last one is the bottleneck."""
        feats: list[torch.Tensor] = []
        for i, block in enumerate(self.down):
            feats.append(block(x if i == 0 else nn.functional.max_pool2d(feats[-1], 2)))
        return feats

    def decode(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Decoder outputs, coarsest first; the last one is at input resolution."""
        x, outs = feats[-1], []
        gates = self.gates if self.gates is not None else [None] * len(self.up)
        for i, (up, gate, merge) in enumerate(zip(self.up, gates, self.merge, strict=True)):
            skip = feats[-2 - i]
            if gate is not None:
                skip = gate(skip, x)
            x = merge(torch.cat([skip, up(x)], dim=1))
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)``."""
        return self.head(self.decode(self.encode(x))[-1])


@register("resunet")
def build_resunet(in_channels: int, base_filters: int = 32, depth: int = 4, norm: str = "batch",
                  upsample: str = "transpose") -> UNetSkeleton:
    """Res U-Net: the U-Net with residual blocks (1x1 projection shortcuts)."""
    return UNetSkeleton(in_channels, base_filters, depth, block=partial(ResBlock, norm=norm), upsample=upsample)
