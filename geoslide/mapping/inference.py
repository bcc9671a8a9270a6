"""Overlapping-chunk inference: a lazy landslide-probability map from a ``(band, y, x)`` image.

How one output pixel is made
----------------------------
The image is cut into dask chunks of ``chunk`` pixels (a multiple of the model's size multiple),
each grown by ``overlap`` pixels of its neighbours (mirrored at the image border, numpy's
"symmetric" padding) with :func:`dask.array.map_overlap`. Inside a chunk, square tiles of
``tile`` pixels, starting at multiples of the size multiple, run through the model in batches.
A tile's outer ``overlap`` pixels on each side are context only: its prediction counts in the
inner part (the *core*), where the model sees all it would see in the whole image. With
``overlap`` at least half the model's receptive field, tiled inference therefore equals running
the model once on the whole image, up to float rounding, and no seams appear: tiles then step by
a whole core, so each pixel is computed about once. For a model without a finite receptive field
(global attention), tiles step by half a core and cores are blended with a Hann (cosine) window,
which hides the seams. By default a tile holds a whole chunk with its context (one forward pass
per chunk).

Nodata (NaN or the image's nodata value in any band) is fed to the model as 0 after
normalisation and comes out as NaN. The model is loaded once per process and device
(see :func:`load_model`); the task graph carries only the model directory's path.
"""

from __future__ import annotations

import math
import threading
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import torch
import xarray as xr
from torch import nn

from geoslide.errors import BandError, ConfigError, GeoslideWarning, GridError, ModelError
from geoslide.models import build_model, size_multiple
from geoslide.models.card import CARD, WEIGHTS, ModelCard, load_checkpoint, read_card
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


def predict_proba(image: xr.DataArray, model_dir: str | Path, spec: InferenceSpec | None = None) -> xr.DataArray:
    """Lazy landslide probability of every pixel of an image.

    Parameters
    ----------
    image
        ``(band, y, x)`` DataArray with labelled bands (see :func:`geoslide.raster.cube.mosaic` for a cube with time),
        at least ``overlap`` pixels wide and high. Extra bands are ignored.
    model_dir
        A model directory (see :mod:`geoslide.models.card`), readable by every worker.
    spec
        Chunking and tiling; None takes :class:`InferenceSpec` defaults.

    Returns
    -------
    xarray.DataArray
        Dask-backed ``(y, x)`` float32 named ``probability``, NaN where the image has nodata,
        with the image's coordinates and CRS; ``attrs["threshold"]`` is the model's threshold.
        Each task holds one chunk plus its overlap, never the whole image.
    """
    card = read_card(model_dir)
    multiple = _card_multiple(card)
    spec = (spec or InferenceSpec()).resolve(card, multiple)
    _warn_short_overlap(spec, card)
    data = _chunked(model_input(image, card), spec)
    depth = spec.overlap
    out = da.map_overlap(
        _predict_chunk, data, depth={0: 0, 1: depth, 2: depth}, boundary={0: "none", 1: "reflect", 2: "reflect"},
        trim=True, align_arrays=False, allow_rechunk=False, drop_axis=0, dtype=np.float32,
        meta=np.empty((0, 0), np.float32), model_dir=str(Path(model_dir).resolve()), spec=spec,
    )
    result = xr.DataArray(out, dims=("y", "x"), coords={"y": image["y"], "x": image["x"]}, name="probability",
                          attrs={"long_name": "landslide probability", "threshold": card.threshold})
    return result.rio.write_crs(image.rio.crs) if image.rio.crs is not None else result


def model_input(image: xr.DataArray, card: ModelCard) -> xr.DataArray:
    """The card's bands of ``image`` in the card's order, float32, with nodata as NaN."""
    if "time" in image.dims:
        raise GridError("the image has a time dimension; reduce it first, e.g. with geoslide.raster.cube.mosaic(cube)")
    if set(image.dims) != {"band", "y", "x"}:
        raise GridError(f"the image has dimensions {image.dims}; inference needs (band, y, x)")
    if "band" not in image.coords:
        raise BandError(f"the image's bands are unlabelled; label them {list(card.bands)} (coordinate 'band')")
    have = [str(b) for b in image["band"].values]
    if missing := [b for b in card.bands if b not in have]:
        raise BandError(f"the model needs bands {missing} that the image lacks (it has {have}); "
                        "load the image with those bands")
    nodata = image.rio.nodata
    selected = image.sel(band=list(card.bands)).transpose("band", "y", "x")
    if nodata is not None and not np.isnan(nodata):
        selected = selected.where(selected != nodata)
    return selected.astype(np.float32)


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


def load_model(model_dir: str | Path, device: str | None = None) -> tuple[nn.Module, ModelCard]:
    """The model and card of a directory, loaded once per process, device and file version.

    The cache key is the resolved path, the device and the modification times of the weights
    and the card, so a retrained model in the same directory is picked up.
    """
    global _LOADS
    path = Path(model_dir).resolve()
    dev = resolve_device(device)
    key = (str(path), dev, _mtime(path / WEIGHTS), _mtime(path / CARD))
    with _LOCK:
        if key not in _MODELS:
            for stale in [k for k in _MODELS if k[:2] == key[:2]]:
                del _MODELS[stale]
            _MODELS[key] = load_checkpoint(path, dev)
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


_MODELS: dict[tuple[str, str, int, int], tuple[nn.Module, ModelCard]] = {}
_LOCK = threading.Lock()
_LOADS = 0


def _predict_chunk(block: np.ndarray, model_dir: str, spec: InferenceSpec) -> np.ndarray:
    model, card = load_model(model_dir, spec.device)
    return predict_block(block, model, card, spec)


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


def _chunked(image: xr.DataArray, spec: InferenceSpec) -> da.Array:
    """The image's data as dask, one band chunk and aligned spatial chunks no smaller than the overlap."""
    bands, ny, nx = image.shape
    if min(ny, nx) < spec.overlap:
        raise GridError(f"the image is {ny} x {nx} px, smaller than the inference overlap of {spec.overlap} px; "
                        "map a larger area")
    chunks = ((bands,), _axis_chunks(ny, spec.chunk, spec.overlap), _axis_chunks(nx, spec.chunk, spec.overlap))
    data = image.data
    return data.rechunk(chunks) if isinstance(data, da.Array) else da.from_array(data, chunks=chunks)


def _axis_chunks(length: int, chunk: int, overlap: int) -> tuple[int, ...]:
    """Chunks of ``chunk`` px, the ragged rest merged into the last full one if smaller than ``overlap``."""
    sizes = [chunk] * (length // chunk) + ([length % chunk] if length % chunk else [])
    if len(sizes) > 1 and sizes[-1] < overlap:
        sizes[-2:] = [sizes[-2] + sizes[-1]]
    return tuple(sizes)


def _card_multiple(card: ModelCard) -> int:
    """The size multiple of the card's architecture, built without weights on the meta device."""
    with torch.device("meta"):
        return size_multiple(build_model(card.architecture, len(card.bands), **card.params))


def _warn_short_overlap(spec: InferenceSpec, card: ModelCard) -> None:
    if card.receptive_field is not None and 2 * spec.overlap < card.receptive_field - 1:
        warnings.warn(f"overlap {spec.overlap} px is less than half the model's receptive field "
                      f"({card.receptive_field} px); chunk seams may show", GeoslideWarning, stacklevel=3)


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


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns if path.exists() else -1
