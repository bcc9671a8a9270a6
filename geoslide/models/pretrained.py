"""Pretrained encoder weights from a user's safetensors file (never a pickle).

Every model with a pretrained-able part keeps it as ``model.encoder``; ``build_model(...,
encoder_weights="file.safetensors")`` loads the file's tensors whose names are the encoder's
state-dict keys (extra tensors, such as a classifier ``fc.*``, are ignored). When the file's first
convolution was trained on another band count, its kernel is averaged over the file's bands and
repeated for every band, scaled by ``file_bands / bands``, so a flat input gives the same response.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from geoslide.errors import ModelError


def load_encoder_weights(encoder: nn.Module, path: str | Path) -> None:
    """Load pretrained weights into ``encoder`` from a safetensors file (see the module docstring).

    Raises
    ------
    ModelError
        If the file is missing, not safetensors, or lacks or mis-shapes a parameter of the encoder.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"no encoder weights file {path}; give a .safetensors file of the encoder's state dict")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path} is not a safetensors file ({exc}); convert the checkpoint to safetensors") from exc
    own = encoder.state_dict()
    if missing := sorted(set(own) - set(tensors)):
        raise ModelError(f"{path} lacks {len(missing)} encoder parameter(s), e.g. {missing[0]!r}; "
                         f"is it a checkpoint of this encoder?")
    state = {k: tensors[k] for k in own}
    first = next(k for k, v in own.items() if v.ndim == 4)  # the first convolution's kernel
    state[first] = _adapt_bands(state[first], own[first].shape[1])
    for key, value in state.items():
        if value.shape != own[key].shape:
            raise ModelError(f"{path}: {key!r} has shape {tuple(value.shape)}, the encoder {tuple(own[key].shape)}")
    encoder.load_state_dict(state)


def _adapt_bands(kernel: torch.Tensor, bands: int) -> torch.Tensor:
    """A first-layer kernel for ``bands`` input bands from one trained on ``kernel.shape[1]``."""
    if kernel.ndim != 4 or kernel.shape[1] == bands:
        return kernel
    mean = kernel.mean(dim=1, keepdim=True) * (kernel.shape[1] / bands)
    return mean.repeat(1, bands, 1, 1)
