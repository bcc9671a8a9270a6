"""What a model returns, and its final logits.

A model maps ``(N, C, H, W)`` to logits ``(N, 1, H, W)``; a deep-supervision model in training mode
returns ``(logits, [side_logits, ...])`` instead (see :mod:`geoslide.models`). Losses, training,
evaluation and inference all take the logits from a model output here, so that rule lives in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from geoslide.errors import ModelError

ModelOutput = torch.Tensor | tuple[torch.Tensor, Sequence[torch.Tensor]] | list[Any]


def split_output(output: ModelOutput) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Final logits and side logits of a model output (a tensor, or ``(logits, [sides])``).

    Parameters
    ----------
    output
        What a model returned.

    Returns
    -------
    tuple
        The final logits and the list of side logits (empty for a plain tensor).

    Raises
    ------
    ModelError
        ``output`` is neither logits nor ``(logits, [side_logits])``.
    """
    if isinstance(output, torch.Tensor):
        return output, []
    if isinstance(output, (tuple, list)) and len(output) == 2 and isinstance(output[0], torch.Tensor):
        sides = output[1]
        return output[0], [sides] if isinstance(sides, torch.Tensor) else list(sides)
    raise ModelError(f"a model output must be logits or (logits, [side_logits]), got {type(output).__name__}")


def final_logits(output: ModelOutput) -> torch.Tensor:
    """The final logits of a model output (the tensor itself, or the first item of a tuple)."""
    return split_output(output)[0]
