"""ResNet encoders (He et al. 2016) for any band count, and pretrained weights from safetensors files.

The module and parameter names follow the common ImageNet checkpoints (``conv1``, ``bn1``,
``layer1`` .. ``layer4``, ``downsample.0``/``.1``), so a ResNet state dict saved as safetensors
loads as is into a model's ``encoder`` (see :mod:`geoslide.models.pretrained`).
"""

from __future__ import annotations

import torch
from torch import nn

from geoslide.errors import ModelError

LAYERS = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)),
          "resnet50": ("bottleneck", (3, 4, 6, 3)), "resnet101": ("bottleneck", (3, 4, 23, 3))}


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, width, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(c_in, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual output."""
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, dilated), 1x1 expand by 4, and a shortcut (ResNet-50/101)."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(c_in, width * 4, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual output."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(self.relu(self.bn2(self.conv2(out)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module | None:
    """1x1 projection with batch norm where shape changes, else None (identity)."""
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class ResNet(nn.Module):
    """ResNet without its classifier; :meth:`forward` returns the features of every stride.

    Parameters
    ----------
    in_channels
        Input bands.
    depth
        ``resnet18``, ``resnet34``, ``resnet50`` or ``resnet101``.
    dilate
        For each of ``layer2`` .. ``layer4``, replace its stride 2 by dilation (DeepLab's output
        stride 8 is ``(False, True, True)``, 16 is ``(False, False, True)``).
    """

    def __init__(self, in_channels: int, depth: str = "resnet50",
                 dilate: tuple[bool, bool, bool] = (False, False, False)) -> None:
        super().__init__()
        if depth not in LAYERS:
            raise ModelError(f"encoder {depth!r} unknown; use one of {', '.join(LAYERS)}")
        kind, counts = LAYERS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        self._c, self._dilation = 64, 1
        self.layer1 = self._layer(block, 64, counts[0], 1, False)
        self.layer2 = self._layer(block, 128, counts[1], 2, dilate[0])
        self.layer3 = self._layer(block, 256, counts[2], 2, dilate[1])
        self.layer4 = self._layer(block, 512, counts[3], 2, dilate[2])
        self.channels = (in_channels, 64, 64 * block.expansion, 128 * block.expansion, 256 * block.expansion,
                         512 * block.expansion)
        self.output_stride = 32 // 2 ** sum(dilate)

    def _layer(self, block: type, width: int, count: int, stride: int, dilate: bool) -> nn.Sequential:
        previous = self._dilation
        if dilate:
            self._dilation, stride = self._dilation * stride, 1
        blocks = [block(self._c, width, stride, previous)]
        self._c = width * block.expansion
        blocks += [block(self._c, width, 1, self._dilation) for _ in range(count - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at strides 1 (the input), 2, 4, 8, 16, 32 (less where dilated), with :attr:`channels`."""
        feats = [x, self.relu(self.bn1(self.conv1(x)))]
        x = self.layer1(self.maxpool(feats[-1]))
        feats.append(x)
        for layer in (self.layer2, self.layer3, self.layer4):
            x = layer(x)
            feats.append(x)
        return feats
