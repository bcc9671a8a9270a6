"""Tiled inference over one block of pixels: how a block is cut into tiles and the tiles blended.

Square tiles of ``tile`` pixels, starting at multiples of the model's size multiple, run through
the model in batches. A tile's outer ``overlap`` pixels on each side are context only: its
prediction counts in the inner part (the *core*), where the model sees all it would see in the
whole image. With ``overlap`` at least half the model's receptive field, tiled inference therefore
equals running the model once on the whole block, up to float rounding, and no seams appear: tiles
then step by a whole core, so each pixel is computed about once. For a model without a finite
receptive field (global attention), tiles step by half a core and cores are blended with a Hann
(cosine) window, which hides the seams.

:class:`~geoslide.mapping.spec.InferenceSpec` holds the sizes (and the chunking :mod:`geoslide.mapping.inference` uses);
:func:`predict_block` runs one block.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from geoslide.errors import ModelError
from geoslide.mapping.spec import InferenceSpec, round_up
from geoslide.models import size_multiple
from geoslide.models.card import ModelCard
from geoslide.models.normalise import Normalisation
from geoslide.models.outputs import final_logits


def predict_block(block: np.ndarray, model: nn.Module, card: ModelCard, spec: InferenceSpec) -> np.ndarray:
    """Probabilities of one block of pixels, tiled and blended.

    Parameters
    ----------
    block
        ``(band, h, w)`` raw values in the card's band order; NaN marks nodata.
    model
        The model, in eval mode, on the device to run on.
    card
        Its card (normalisation, receptive field).
    spec
        Tiling (``overlap``, ``tile``, ``batch_size``, ``blend``).

    Returns
    -------
    numpy.ndarray
        ``(h, w)`` float32 in [0, 1], NaN at nodata. Pixels within ``overlap`` of the block's
        edge see less context than the model's receptive field (``map_overlap`` trims them).
    """
    if block.ndim != 3 or block.shape[0] != len(card.bands):
        raise ModelError(f"a block of shape {block.shape} does not fit a model of {len(card.bands)} bands; "
                         "pass (band, height, width) in the card's band order")
    multiple = size_multiple(model)
    spec = spec.resolve(card, multiple)
    x, nodata = Normalisation(card.mean, card.std).apply_masked(block)
    exact = card.receptive_field is not None and 2 * spec.overlap + 1 >= card.receptive_field
    prob = _tiled(x, model, spec, multiple, exact)
    prob[nodata] = np.nan
    return prob


def _tiled(x: np.ndarray, model: nn.Module, spec: InferenceSpec, multiple: int, exact: bool) -> np.ndarray:
    """Blend the model's probabilities over aligned tiles of a normalised block (see the module docstring)."""
    _, h, w = x.shape
    (ys, ty, wy), (xs, tx, wx) = _axis_tiles(h, spec, multiple, exact), _axis_tiles(w, spec, multiple, exact)
    padded = np.pad(x, ((0, 0), (0, ys[-1] + ty - h), (0, xs[-1] + tx - w)))
    acc = np.zeros(padded.shape[1:], np.float64)
    weight = np.zeros_like(acc)
    cells = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    for first in range(0, len(cells), spec.batch_size):
        batch = cells[first:first + spec.batch_size]
        tiles = np.stack([padded[:, ys[i]:ys[i] + ty, xs[j]:xs[j] + tx] for i, j in batch])
        for (i, j), prob in zip(batch, _run(model, tiles), strict=True):
            window = np.outer(wy[i], wx[j])
            acc[ys[i]:ys[i] + ty, xs[j]:xs[j] + tx] += window * prob
            weight[ys[i]:ys[i] + ty, xs[j]:xs[j] + tx] += window
    return (acc[:h, :w] / weight[:h, :w]).astype(np.float32)


def _axis_tiles(length: int, spec: InferenceSpec, multiple: int, exact: bool
                ) -> tuple[list[int], int, list[np.ndarray]]:
    """Tile starts (multiples of ``multiple``), tile length and per-tile weights along one axis.

    Exact tiles step by a whole core; others by half a core, so that Hann-weighted cores overlap.
    """
    size = min(spec.tile, round_up(length, multiple))
    if size >= length:
        return [0], size, [np.ones(size)]
    core = size - 2 * spec.overlap
    stride = max(multiple, (core if exact else core // 2) // multiple * multiple)
    count = 1 + math.ceil((length - size) / stride)
    starts = [k * stride for k in range(count)]
    return starts, size, [_axis_weights(size, spec.overlap, spec.blend, k == 0, k == count - 1) for k in range(count)]


def _axis_weights(size: int, margin: int, blend: str, first: bool, last: bool) -> np.ndarray:
    """Zero over the context margins, a taper over the core; flat towards the block's own edges."""
    core = size - 2 * margin
    weights = np.zeros(size)
    taper = np.sin(np.pi * (np.arange(core) + 0.5) / core) ** 2 if blend == "hann" else np.ones(core)
    weights[margin:size - margin] = taper
    half = margin + core // 2
    if first:
        weights[:half] = 1.0
    if last:
        weights[half:] = 1.0
    return weights


def _run(model: nn.Module, tiles: np.ndarray) -> np.ndarray:
    """Sigmoid of the model's logits for a batch ``(n, band, h, w)`` -> ``(n, h, w)``."""
    device = next(model.parameters(), torch.empty(0)).device
    with torch.inference_mode():
        logits = final_logits(model(torch.from_numpy(np.ascontiguousarray(tiles)).to(device)))
        return torch.sigmoid(logits[:, 0].float()).cpu().numpy()
