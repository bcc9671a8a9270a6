"""Tiled inference over one block of pixels: how a block is cut into tiles and the tiles blended.

Square tiles of ``tile`` pixels, starting at multiples of the model's size multiple, run through
the model in batches. A tile's outer ``overlap`` pixels on each side are context only: its
prediction counts in the inner part (the *core*), where the model sees all it would see in the
whole image. With ``overlap`` at least half the model's receptive field, tiled inference therefore
equals running the model once on the whole block, up to float rounding, and no seams appear: tiles
then step by a whole core, so each pixel is computed about once. For a model without a finite
receptive field (global attention), tiles step by half a core and cores are blended with a Hann
(cosine) window, which hides the seams.

:class:`InferenceSpec` holds the sizes (and the chunking :mod:`geoslide.mapping.inference` uses);
:func:`predict_block` runs one block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from geoslide.errors import ConfigError, GridError, ModelError
from geoslide.models import size_multiple
from geoslide.models.card import ModelCard
from geoslide.models.normalise import Normalisation
from geoslide.models.outputs import final_logits

BLENDS = ("hann", "flat")
MAX_TILE = 1536  # px: a 1024 px chunk with its context fits in one forward pass


@dataclass(frozen=True)
class InferenceSpec:
    """How to cut an image for inference.

    Parameters
    ----------
    chunk
        Dask chunk size in pixels along y and x; a multiple of the model's size multiple.
        A ragged last chunk smaller than ``overlap`` is merged into the one before it.
    overlap
        Context in pixels added on each side of a chunk and of a tile; a multiple of the size
        multiple. None derives it from the model card: half the receptive field, rounded up to
        the size multiple; for a model without one (global attention) a quarter of its training
        patch size, rounded up likewise.
    batch_size
        Tiles per forward pass.
    tile
        Tile size in pixels, a multiple of the size multiple and at least ``2 * overlap`` plus
        one size multiple. None takes the whole chunk plus its overlap on both sides when that is
        at most ``max(MAX_TILE, 4 * overlap)`` (1536 px), else that bound.
    device
        Torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``); None takes CUDA when the process
        running a chunk sees a GPU, else the CPU.
    blend
        ``"hann"`` (cosine taper) or ``"flat"`` (plain mean) weights where tile cores overlap
        (they overlap only for models without a finite receptive field).
    """

    chunk: int = 1024
    overlap: int | None = None
    batch_size: int = 4
    tile: int | None = None
    device: str | None = None
    blend: str = "hann"

    def __post_init__(self) -> None:
        if self.chunk < 16:
            raise GridError(f"inference chunk {self.chunk} px is too small; use at least 256 (default 1024)")
        if self.overlap is not None and self.overlap < 0:
            raise GridError(f"overlap must be >= 0 px, got {self.overlap}; leave it unset to derive it from the model")
        if self.tile is not None and self.tile < 1:
            raise GridError(f"tile must be a positive size in px, got {self.tile}; leave it unset for the default")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.blend not in BLENDS:
            raise ConfigError(f"unknown blend {self.blend!r}; use one of {', '.join(BLENDS)}")

    def resolve(self, card: ModelCard, multiple: int) -> InferenceSpec:
        """A copy with ``overlap`` and ``tile`` filled in and checked against a model.

        Parameters
        ----------
        card
            The model's card (receptive field, patch size).
        multiple
            The model's size multiple (see :func:`geoslide.models.size_multiple`).
        """
        overlap = default_overlap(card, multiple) if self.overlap is None else self.overlap
        _check_multiple("chunk", self.chunk, multiple)
        _check_multiple("overlap", overlap, multiple)
        if overlap > self.chunk:
            raise GridError(f"overlap {overlap} px exceeds the chunk of {self.chunk} px; "
                            f"use chunk >= {overlap} or a smaller overlap")
        tile = _default_tile(self.chunk, overlap, multiple) if self.tile is None else self.tile
        _check_multiple("tile", tile, multiple)
        if tile < 2 * overlap + multiple:
            raise GridError(f"tile {tile} px leaves no room inside {overlap} px of context per side; "
                            f"use tile >= {2 * overlap + multiple}")
        return replace(self, overlap=overlap, tile=tile)


def default_overlap(card: ModelCard, multiple: int) -> int:
    """Context per side: half the receptive field (a quarter patch without one), rounded up to ``multiple``."""
    if card.receptive_field is not None:
        return _round_up(math.ceil(card.receptive_field / 2), multiple)
    return _round_up(max(card.patch_size // 4, 1), multiple)


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
    size = min(spec.tile, _round_up(length, multiple))
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


def _check_multiple(name: str, value: int, multiple: int) -> None:
    if value % multiple:
        raise GridError(f"{name} {value} px is not a multiple of the model's size multiple {multiple}; "
                        f"use {_round_up(value, multiple)}")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _default_tile(chunk: int, overlap: int, multiple: int) -> int:
    """A whole chunk with its context, unless that exceeds ``MAX_TILE`` (then that, or 4 overlaps)."""
    bound = _round_up(max(MAX_TILE, 4 * overlap), multiple)
    return min(_round_up(chunk + 2 * overlap, multiple), bound)
