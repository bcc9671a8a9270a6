"""Overlapping-chunk inference: a lazy landslide-probability map from a ``(band, y, x)`` image.

The image is cut into dask chunks of ``chunk`` pixels (a multiple of the model's size multiple),
each grown by ``overlap`` pixels of its neighbours (mirrored at the image border, numpy's
"symmetric" padding) with :func:`dask.array.map_overlap`. Each chunk with its context is one
block for :func:`geoslide.mapping.tiling.predict_block`, which tiles and blends it; ``map_overlap``
then trims the context off again. With ``overlap`` at least half the model's receptive field,
the map equals running the model once on the whole image, up to float rounding, with no seams at
chunk borders. By default a tile holds a whole chunk with its context (one forward pass per chunk).

Nodata (NaN or the image's nodata value in any band) is fed to the model as 0 after
normalisation and comes out as NaN. The model is loaded once per process and device
(see :mod:`geoslide.mapping.modelcache`); the task graph carries only the model's path and card.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from geoslide.errors import BandError, GeoslideWarning, GridError
from geoslide.mapping.modelcache import load_model
from geoslide.mapping.spec import InferenceSpec
from geoslide.mapping.tiling import predict_block
from geoslide.models.card import ModelCard, ResolvedModel, resolve_model


def predict_proba(image: xr.DataArray, model: str | Path | ResolvedModel, spec: InferenceSpec | None = None
                  ) -> xr.DataArray:
    """Lazy landslide probability of every pixel of an image.

    Parameters
    ----------
    image
        ``(band, y, x)`` DataArray with labelled bands (see :func:`geoslide.raster.cube.mosaic` for a cube with time),
        at least ``overlap`` pixels wide and high. Extra bands are ignored.
    model
        A model directory (see :mod:`geoslide.models.card`), readable by every worker, or the
        :class:`~geoslide.models.card.ResolvedModel` of one (its card is then not read again).
    spec
        Chunking and tiling; None takes :class:`InferenceSpec` defaults.

    Returns
    -------
    xarray.DataArray
        Dask-backed ``(y, x)`` float32 named ``probability``, NaN where the image has nodata,
        with the image's coordinates and CRS; ``attrs["threshold"]`` is the model's threshold.
        Each task holds one chunk plus its overlap, never the whole image.
    """
    model = model if isinstance(model, ResolvedModel) else resolve_model(model)
    card = model.card
    spec = (spec or InferenceSpec()).resolve(card, model.multiple)
    _warn_short_overlap(spec, card)
    data = _chunked(model_input(image, card), spec)
    depth = spec.overlap
    out = da.map_overlap(
        _predict_chunk, data, depth={0: 0, 1: depth, 2: depth}, boundary={0: "none", 1: "reflect", 2: "reflect"},
        trim=True, align_arrays=False, allow_rechunk=False, drop_axis=0, dtype=np.float32,
        meta=np.empty((0, 0), np.float32), model=model, spec=spec,
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


def _predict_chunk(block: np.ndarray, model: ResolvedModel, spec: InferenceSpec) -> np.ndarray:
    """One chunk with its context, on this process's cached copy of the model."""
    net, card = load_model(model, spec.device)
    return predict_block(block, net, card, spec)


def _chunked(image: xr.DataArray, spec: InferenceSpec) -> da.Array:
    """The image's data as dask, one band chunk and aligned spatial chunks no smaller than the overlap."""
    bands, ny, nx = image.shape
    if min(ny, nx) < spec.overlap:
        raise GridError(f"the image is {ny} x {nx} px, smaller than the inference overlap of {spec.overlap} px; "
                        "map a larger area")
    chunks = ((bands,), axis_chunks(ny, spec.chunk, spec.overlap), axis_chunks(nx, spec.chunk, spec.overlap))
    data = image.data
    return data.rechunk(chunks) if isinstance(data, da.Array) else da.from_array(data, chunks=chunks)


def axis_chunks(length: int, chunk: int, overlap: int) -> tuple[int, ...]:
    """Inference blocks along one axis: ``chunk`` px, a ragged rest smaller than ``overlap`` merged into the last."""
    sizes = [chunk] * (length // chunk) + ([length % chunk] if length % chunk else [])
    if len(sizes) > 1 and sizes[-1] < overlap:
        sizes[-2:] = [sizes[-2] + sizes[-1]]
    return tuple(sizes)


def _warn_short_overlap(spec: InferenceSpec, card: ModelCard) -> None:
    if card.receptive_field is not None and 2 * spec.overlap < card.receptive_field - 1:
        warnings.warn(f"overlap {spec.overlap} px is less than half the model's receptive field "
                      f"({card.receptive_field} px); chunk seams may show", GeoslideWarning, stacklevel=3)
