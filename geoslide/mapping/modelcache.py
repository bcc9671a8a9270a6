"""Models loaded once per process: the cache inference tasks take their model from.

A task graph carries only a :class:`~geoslide.models.card.ResolvedModel` (path and card); each
process that runs a task loads the weights the first time and keeps them, keyed by path, device
and file versions, so a worker loads a model once however many chunks it computes, and a
retrained model in the same directory is picked up. The cached model is prepared for inference
(:func:`geoslide.models.fold.for_inference`: batch norm folded into the convolutions,
channels-last). A model directory on an object store (``s3://``, ``http(s)://``) is read by every
worker straight from there, with the credentials of its environment; its versions are the objects'
ETags.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch
from torch import nn

from geoslide.errors import ModelError
from geoslide.fileio import absolute, join, version
from geoslide.models.card import CARD, WEIGHTS, ModelCard, ResolvedModel, load_checkpoint, load_weights
from geoslide.models.fold import for_inference


def load_model(model: str | Path | ResolvedModel, device: str | None = None) -> tuple[nn.Module, ModelCard]:
    """The model and card of a directory, loaded once per process, device and file version.

    The cache key is the resolved path (or URL), the device and the versions (modification times,
    or ETags) of the weights and the card, so a retrained model in the same directory is picked up.

    Parameters
    ----------
    model
        A model directory, or a :class:`~geoslide.models.card.ResolvedModel` whose card was read
        already (then only the weights are read here).
    device
        Torch device; None takes CUDA when available, else the CPU (see :func:`resolve_device`).
    """
    global _LOADS
    path = absolute(model.path if isinstance(model, ResolvedModel) else model)
    dev = resolve_device(device)
    key = (path, dev, version(join(path, WEIGHTS)), version(join(path, CARD)))
    with _LOCK:
        if key not in _MODELS:
            for stale in [k for k in _MODELS if k[:2] == key[:2]]:
                del _MODELS[stale]
            _MODELS[key] = _load(path, model, dev)
            _LOADS += 1
        return _MODELS[key]


def model_loads() -> int:
    """How many times this process has loaded a checkpoint through :func:`load_model`."""
    return _LOADS


def resolve_device(device: str | None) -> str:
    """The torch device to run on: ``device``, or CUDA when available, else the CPU."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ModelError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} was requested but torch sees no GPU here; use 'cpu' or leave it unset")
    return str(dev)


_MODELS: dict[tuple[str, str, str, str], tuple[nn.Module, ModelCard]] = {}
_LOCK = threading.Lock()
_LOADS = 0


def _load(path: str, model: str | Path | ResolvedModel, device: str) -> tuple[nn.Module, ModelCard]:
    """Weights (and the card, unless ``model`` carries it) from ``path``."""
    if isinstance(model, ResolvedModel):
        net, card = load_weights(path, model.card, device, model.digest), model.card
    else:
        net, card = load_checkpoint(path, device)
    return for_inference(net, device), card

