"""HRNet (Wang et al. 2020, HRNetV2): parallel branches at strides 4, 8, 16, 32 exchanging information.

A stem of two stride-2 3x3 convolutions and a stage of four bottlenecks give 256 channels at
stride 4. Stages 2, 3 and 4 add one branch each (a stride-2 3x3 convolution from the coarsest
branch), with widths ``C, 2C, 4C, 8C``; every module runs ``blocks`` basic residual blocks per
branch and then fuses: each branch receives the sum of all branches, upsampled (1x1 convolution
then bilinear) or downsampled (stride-2 3x3 convolutions). The head (HRNetV2) upsamples all
branches to stride 4, concatenates them and classifies with two 1x1 convolutions. GDCLD used
HRNet-W48 (``width=48``, ``modules=(1, 4, 3)`` in stages 2 to 4, ``blocks=4``); smaller settings keep the design.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from geoslide.errors import ModelError
from geoslide.models.registry import register
from geoslide.models.resnet import BasicBlock, Bottleneck


def _conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


def _down(c_in: int, c_out: int, steps: int) -> nn.Sequential:
    """``steps`` stride-2 3x3 convolutions; the last one to ``c_out`` without ReLU."""
    layers = [_conv_bn(c_in, c_in, 3, 2) for _ in range(steps - 1)]
    return nn.Sequential(*layers, _conv_bn(c_in, c_out, 3, 2, relu=False))


class HRModule(nn.Module):
    """Residual blocks on every branch, then exchange between all branches."""

    def __init__(self, widths: list[int], blocks: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(*(BasicBlock(w, w) for _ in range(blocks))) for w in widths)
        self.fuse = nn.ModuleList(nn.ModuleList(self._link(widths, j, i) for j in range(len(widths)))
                                  for i in range(len(widths)))

    @staticmethod
    def _link(widths: list[int], src: int, dst: int) -> nn.Module:
        if src == dst:
            return nn.Identity()
        if src > dst:
            return _conv_bn(widths[src], widths[dst], 1, relu=False)
        return _down(widths[src], widths[dst], dst - src)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Branch features, finest first."""
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        out = []
        for i, links in enumerate(self.fuse):
            total = xs[i]
            for j, link in enumerate(links):
                if j != i:
                    y = link(xs[j])
                    total = total + (F.interpolate(y, size=xs[i].shape[-2:], mode="bilinear", align_corners=False)
                                     if j > i else y)
            out.append(F.relu(total))
        return out


class HRNetEncoder(nn.Module):
    """Stem, bottleneck stage and three multi-branch stages; returns the four branches."""

    def __init__(self, in_channels: int, width: int, modules: tuple[int, ...], blocks: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv_bn(in_channels, 64, 3, 2), _conv_bn(64, 64, 3, 2))
        self.layer1 = nn.Sequential(Bottleneck(64, 64), *(Bottleneck(256, 64) for _ in range(3)))
        widths = [width * 2**i for i in range(4)]
        self.widths = widths
        self.transitions = nn.ModuleList([nn.ModuleList([_conv_bn(256, widths[0]), _conv_bn(256, widths[1], 3, 2)])])
        self.transitions.extend(nn.ModuleList([_conv_bn(widths[k - 1], widths[k], 3, 2)]) for k in (2, 3))
        self.stages = nn.ModuleList(nn.Sequential(*(HRModule(widths[:k + 2], blocks) for _ in range(modules[k])))
                                    for k in range(3))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at strides 4, 8, 16, 32 with widths ``C, 2C, 4C, 8C``."""
        x = self.layer1(self.stem(x))
        xs = [t(x) for t in self.transitions[0]]
        xs = self.stages[0](xs)
        for transition, stage in zip(self.transitions[1:], self.stages[1:], strict=True):
            xs = stage([*xs, transition[0](xs[-1])])
        return xs


class HRNet(nn.Module):
    """HRNetV2 for binary segmentation; see the module docstring.

    Parameters
    ----------
    in_channels
        Input bands.
    width
        Channels ``C`` of the finest branch (48 for HRNet-W48).
    modules
        HR modules in stages 2, 3 and 4.
    blocks
        Basic residual blocks per branch in each module.
    """

    size_multiple = 32

    def __init__(self, in_channels: int, width: int = 48, modules: tuple[int, ...] = (1, 4, 3), blocks: int = 4
                 ) -> None:
        super().__init__()
        if len(modules) != 3 or min(modules) < 1 or blocks < 1 or width < 1:
            raise ModelError(f"HRNet needs three module counts >= 1, blocks >= 1 and width >= 1; got "
                             f"modules={modules}, blocks={blocks}, width={width}")
        self.encoder = HRNetEncoder(in_channels, width, tuple(modules), blocks)
        total = 15 * width
        self.head = nn.Sequential(_conv_bn(total, total, 1), nn.Conv2d(total, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)``."""
        xs = self.encoder(x)
        size = xs[0].shape[-2:]
        up = [xs[0], *(F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in xs[1:])]
        logits = self.head(torch.cat(up, dim=1))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register("hrnet")
def build_hrnet(in_channels: int, width: int = 48, modules: tuple[int, ...] = (1, 4, 3), blocks: int = 4) -> HRNet:
    """HRNetV2 (GDCLD: HRNet-W48)."""
    return HRNet(in_channels, width, tuple(modules), blocks)
