"""Segmentation architectures for binary landslide masks, by name.

Every model maps ``(N, C, H, W)`` float32 to logits ``(N, 1, H, W)`` for any band count ``C``.
``H`` and ``W`` must be multiples of the model's ``size_multiple`` (callers pad). A model that
uses deep supervision returns ``(logits, [side_logits, ...])`` in training mode, each side
output already at input size; in eval mode it returns the logits alone.

Adding an architecture: a module here whose builder is decorated with
``@register("name")`` (from ``registry``), imported below.

Beside the architectures:

- ``registry``: names -> builders (:func:`build_model`, :func:`model_names`);
- ``card``: model directories: card, weights, :class:`~geoslide.models.card.ResolvedModel`;
- ``mlm``: the STAC Machine Learning Model item (``item.json``) of a model directory;
- ``outputs``: the final logits of a model output;
- ``normalise``: per-band input normalisation;
- ``receptive``: receptive fields.
"""

from geoslide.models.registry import build_model, model_names, register, size_multiple

# every architecture registers itself on import
from geoslide.models import (  # noqa: E402, F401  isort: skip
    adsms, attention, deeplab, fcn, hrnet, linknet, pspnet, resunet, resunet50, segformer, swinunet, unet, upernet,
)

__all__ = ["build_model", "model_names", "register", "size_multiple"]
