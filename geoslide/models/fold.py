"""Inference-only speed-ups of a trained model: batch norm folded into its convolutions, channels-last layout.

In eval mode a ``BatchNorm2d`` after a ``Conv2d`` is an affine map per channel, so it can be folded into
the convolution's weights and bias (``conv' = bn(conv)``) and dropped; the forward then skips a pass over
every activation. With ``channels_last`` memory format as well, oneDNN's convolutions run about 2.8x
faster on this project's U-Net on CPU (DESIGN.md, measured 2026-11-29), with probabilities unchanged to
about 1e-6. Only consecutive ``Conv2d`` -> ``BatchNorm2d`` pairs inside an ``nn.Sequential`` are folded
(every architecture here builds its blocks that way); anything else is left as it is.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every Conv2d -> BatchNorm2d pair of a Sequential fused."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, nn.Sequential):
            _fold_sequential(module)
    return folded


def _fold_sequential(block: nn.Sequential) -> None:
    names = list(block._modules)
    for first, second in zip(names, names[1:], strict=False):
        conv, norm = block._modules[first], block._modules[second]
        if isinstance(conv, nn.Conv2d) and type(norm) is nn.BatchNorm2d and norm.track_running_stats:
            block._modules[first] = fuse_conv_bn_eval(conv, norm)
            block._modules[second] = nn.Identity()


def for_inference(model: nn.Module, device: str) -> nn.Module:
    """``model`` folded (:func:`fold_batch_norm`) and in channels-last layout on ``device``, ready to predict."""
    return fold_batch_norm(model).to(device=torch.device(device), memory_format=torch.channels_last)
