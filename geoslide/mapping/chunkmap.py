"""A map with one task per output chunk: read its items, predict, trim, encode.

The cube path (:func:`geoslide.mapping.inference.predict_proba` over a stacked mosaic) builds a
graph over the imagery in which every chunk depends on every item; on a continental catalog that
graph outgrows memory before a pixel is read. Here each chunk of the map store is one task that
asks the :class:`~geoslide.raster.sources.MosaicPlan` (an STRtree of item footprints, queried once
for all chunks when the graph is made) which items meet it and its context, reads only those,
newest first (:func:`geoslide.raster.chunkread.read_window`), mirrors the context at the map's edge
as ``map_overlap`` does, runs :func:`~geoslide.mapping.tiling.predict_block`, trims the context and
encodes the chunk. Chunks are cut as :func:`~geoslide.mapping.inference.predict_proba` cuts them
(a ragged rest smaller than the overlap is predicted with the chunk before it), so the stored bytes
equal the cube path's. A chunk that no item meets is never computed; a chunk whose pixels are all
nodata skips the model.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph

from geoslide.mapping.inference import axis_chunks
from geoslide.mapping.modelcache import load_model
from geoslide.mapping.spec import InferenceSpec
from geoslide.mapping.store import NODATA, encode_block
from geoslide.mapping.tiling import predict_block
from geoslide.models.card import ResolvedModel
from geoslide.raster.chunkread import PixelWindow, read_window, window_bounds
from geoslide.raster.grid import GridSpec
from geoslide.raster.sources import MosaicPlan, Source


@dataclass(frozen=True)
class ChunkJob:
    """One store chunk: the inference block that holds it, and the items that meet the block's context.

    Parameters
    ----------
    grid, n_bands, resampling
        The mosaic's grid, band count and resampling.
    block
        ``(row, col, height, width)`` of the inference block (without context) on the grid.
    chunk
        ``(row, col, height, width)`` of the store chunk, inside ``block``.
    sources
        Items meeting the block plus its context, newest first.
    """

    grid: GridSpec
    n_bands: int
    resampling: str
    block: PixelWindow
    chunk: PixelWindow
    sources: tuple[Source, ...]


@dataclass(frozen=True)
class ChunkedMap:
    """The encoded ``(2, y, x)`` uint8 map as a dask array of one task per chunk, and its empty chunks."""

    encoded: da.Array
    empty: frozenset[tuple[int, int]]
    tasks: int


def chunked_map(plan: MosaicPlan, model: ResolvedModel, spec: InferenceSpec) -> ChunkedMap:
    """The encoded map of ``plan``'s mosaic with ``model``; ``spec`` is resolved against the model here."""
    spec = spec.resolve(model.card, model.multiple)
    jobs, shape = _jobs(plan, spec)
    name = f"geoslide-chunkmap-{uuid.uuid4().hex}"
    graph = {(name, 0, i, j): (run_chunk, job, model, spec) for (i, j), job in jobs.items() if job.sources}
    empty = frozenset(key for key, job in jobs.items() if not job.sources)
    for i, j in empty:  # a task that costs nothing, for a caller that asks for every block
        graph[(name, 0, i, j)] = (_nodata, jobs[(i, j)].chunk)
    (ny, nx), (cy, cx) = plan.grid.shape, shape
    chunks = ((2,), _sizes(ny, cy), _sizes(nx, cx))
    encoded = da.Array(HighLevelGraph.from_collections(name, graph, dependencies=()), name, chunks=chunks,
                       dtype=np.uint8)
    return ChunkedMap(encoded, empty, len(graph))


def run_chunk(job: ChunkJob, model: ResolvedModel, spec: InferenceSpec) -> np.ndarray:
    """The encoded ``(2, h, w)`` store chunk of ``job`` (see the module notes)."""
    (ny, nx), halo = job.grid.shape, spec.overlap
    row, col, height, width = job.block
    top, left = max(0, row - halo), max(0, col - halo)
    bottom, right = min(ny, row + height + halo), min(nx, col + width + halo)
    data = read_window(job.grid, job.sources, job.n_bands, (top, left, bottom - top, right - left), job.resampling)
    pad = ((0, 0), (halo - (row - top), halo - (bottom - row - height)),
           (halo - (col - left), halo - (right - col - width)))
    data = np.pad(data, pad, mode="symmetric")
    r0, c0 = job.chunk[0] - row + halo, job.chunk[1] - col + halo
    core = (slice(r0, r0 + job.chunk[2]), slice(c0, c0 + job.chunk[3]))
    if np.isnan(data[:, core[0], core[1]]).any(axis=0).all():
        return _nodata(job.chunk)
    net, card = load_model(model, spec.device)
    probability = predict_block(data, net, card, spec)
    return encode_block(probability[core], card.threshold)


def _nodata(chunk: PixelWindow) -> np.ndarray:
    return np.full((2, chunk[2], chunk[3]), NODATA, dtype=np.uint8)


def _jobs(plan: MosaicPlan, spec: InferenceSpec) -> tuple[dict[tuple[int, int], ChunkJob], tuple[int, int]]:
    """The job of every store chunk, and the store's chunk shape (the first inference block's)."""
    grid = plan.grid
    (ny, nx), halo = grid.shape, spec.overlap
    blocks_y, blocks_x = axis_chunks(ny, spec.chunk, halo), axis_chunks(nx, spec.chunk, halo)
    cy, cx = blocks_y[0], blocks_x[0]
    rows, cols = _placed(_sizes(ny, cy), blocks_y), _placed(_sizes(nx, cx), blocks_x)
    keys = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
    cores = np.array([window_bounds(grid, _window(rows[i][0], cols[j][0])) for i, j in keys])
    contexts = np.array([window_bounds(grid, _grown(_window(rows[i][1], cols[j][1]), halo, grid)) for i, j in keys])
    meets_core = [bool(found) for found in plan.query_many(cores)]
    found = plan.query_many(contexts)
    jobs = {}
    for key, hit, sources in zip(keys, meets_core, found, strict=True):
        (chunk_y, block_y), (chunk_x, block_x) = rows[key[0]], cols[key[1]]
        jobs[key] = ChunkJob(grid, len(plan.bands), plan.resampling, _window(block_y, block_x),
                             _window(chunk_y, chunk_x), sources if hit else ())
    return jobs, (cy, cx)


def _sizes(length: int, chunk: int) -> tuple[int, ...]:
    return tuple([chunk] * (length // chunk) + ([length % chunk] if length % chunk else []))


def _placed(chunks: tuple[int, ...], blocks: tuple[int, ...]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Per store chunk along one axis: its ``(start, size)`` and that of the inference block holding it."""
    starts = np.cumsum((0, *blocks))
    out = []
    for start in np.cumsum((0, *chunks))[:-1]:
        k = int(np.searchsorted(starts, start, side="right")) - 1
        out.append(((int(start), chunks[len(out)]), (int(starts[k]), blocks[k])))
    return out


def _window(along_y: tuple[int, int], along_x: tuple[int, int]) -> PixelWindow:
    return along_y[0], along_x[0], along_y[1], along_x[1]


def _grown(window: PixelWindow, halo: int, grid: GridSpec) -> PixelWindow:
    """``window`` grown by ``halo`` pixels on each side, clipped to the grid."""
    (ny, nx), (row, col, height, width) = grid.shape, window
    top, left = max(0, row - halo), max(0, col - halo)
    return top, left, min(ny, row + height + halo) - top, min(nx, col + width + halo) - left
