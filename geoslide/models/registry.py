"""The model registry: architectures by name, built for any band count.

An architecture module registers its builder with :func:`register`; ``geoslide/models/__init__.py``
imports every architecture module, so the registry is complete whenever ``geoslide.models`` is.
"""


from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from geoslide.errors import ModelError
from geoslide.models.pretrained import load_encoder_weights

Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Register a model builder ``builder(in_channels, **params) -> nn.Module`` under ``name``."""

    def wrap(builder: Builder) -> Builder:
        _REGISTRY[name] = builder
        return builder

    return wrap


def model_names() -> list[str]:
    """Names accepted by :func:`build_model`, sorted."""
    return sorted(_REGISTRY)


def build_model(name: str, in_channels: int, **params: Any) -> nn.Module:
    """Build an untrained model.

    Parameters
    ----------
    name
        One of :func:`model_names` (e.g. ``"unet"``, ``"segformer-b0"``).
    in_channels
        Number of input bands.
    **params
        Architecture options (``base_filters``, ``depth``, ...); unknown ones raise ModelError.
        ``encoder_weights``: a safetensors file of pretrained weights for the model's ``encoder``
        (see :mod:`geoslide.models.pretrained`).
    """
    if name not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    if in_channels < 1:
        raise ModelError(f"a model needs at least one input band, got {in_channels}")
    weights = params.pop("encoder_weights", None)
    try:
        model = _REGISTRY[name](in_channels, **params)
    except TypeError as exc:
        raise ModelError(f"bad options for model {name!r}: {exc}") from exc
    if weights is not None:
        if not isinstance(getattr(model, "encoder", None), nn.Module):
            raise ModelError(f"model {name!r} has no encoder to load pretrained weights into; drop encoder_weights")
        load_encoder_weights(model.encoder, weights)
    return model


def size_multiple(model: nn.Module) -> int:
    """The factor input heights and widths must be a multiple of."""
    return int(getattr(model, "size_multiple", 1))
