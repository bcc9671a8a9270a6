"""Computing the blocks of a dask array a bounded batch at a time, each handed to a sink as it is done.

A map is far larger than memory, so :func:`compute_blocks` never computes the whole array: it culls
the graph to a batch of blocks, computes those with dask's scheduler (or on a ``distributed``
cluster, at most a bounded number in flight) and hands each finished block to a sink, which writes
it and may then drop it. Blocks are those of a 3-d array with a single chunk along its first axis
(the encoded ``(2, y, x)`` map), addressed by their ``(row, column)`` chunk index.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph

BlockSink = Callable[[tuple[int, int], np.ndarray], None]


def compute_blocks(array: da.Array, todo: Sequence[tuple[int, int]], sink: BlockSink, client: Any = None) -> None:
    """Compute the blocks ``todo`` of ``array`` in batches, in that order, calling ``sink(index, block)`` for each.

    Parameters
    ----------
    array
        A 3-d dask array with one chunk along its first axis.
    todo
        ``(row, column)`` chunk indices to compute.
    sink
        Called once per block, in the caller's thread: when its batch is done (local) or as it
        arrives (distributed).
    client
        A ``distributed.Client`` to compute on; dask's default scheduler otherwise.
    """
    if client is None:
        _run_local(array, todo, sink, _in_flight(None))
    else:
        _run_distributed(client, array, todo, sink, _in_flight(client))


def _in_flight(client: Any) -> int:
    """Blocks to keep in flight: twice the threads that compute them."""
    if client is None:
        threads = dask.config.get("num_workers", None) or os.cpu_count() or 1
    else:
        threads = sum(client.nthreads().values()) or 1
    return max(4, 2 * int(threads))


def _batches(todo: Sequence[tuple[int, int]], size: int) -> Iterator[list[tuple[int, int]]]:
    for start in range(0, len(todo), size):
        yield list(todo[start:start + size])


class _Blocks:
    """Culls the graph of ``encoded`` to a batch of blocks, keeping one graph so culls stay cheap."""

    def __init__(self, encoded: da.Array) -> None:
        graph = encoded.__dask_graph__()
        if not isinstance(graph, HighLevelGraph):
            graph = HighLevelGraph({encoded.name: dict(graph)}, {encoded.name: set()})
        self.graph, self.name = graph, encoded.name

    def batch(self, indices: Sequence[tuple[int, int]]) -> tuple[HighLevelGraph, list[tuple]]:
        """The graph computing exactly these blocks, and their keys."""
        keys = [(self.name, 0, i, j) for i, j in indices]
        return self.graph.cull(set(keys)), keys


def _run_local(encoded: da.Array, todo: Sequence[tuple[int, int]], sink: BlockSink, batch: int) -> None:
    """Compute row-major batches of blocks with dask's scheduler; write each batch when it is done."""
    blocks, get = _Blocks(encoded), dask.base.get_scheduler(collections=[encoded])
    for indices in _batches(todo, batch):
        graph, keys = blocks.batch(indices)
        for index, block in zip(indices, get(graph, keys), strict=True):
            sink(index, block)


def _run_distributed(client: Any, encoded: da.Array, todo: Sequence[tuple[int, int]], sink: BlockSink,
                     limit: int) -> None:
    """Compute blocks on a cluster, at most ``limit`` in flight, writing each as it arrives."""
    from distributed import as_completed

    blocks, batches = _Blocks(encoded), _batches(todo, max(1, limit // 2))
    pending: dict[Any, tuple[tuple[int, int], Any]] = {}
    arrived = as_completed(loop=client.loop)  # never the default client: a CLI makes none

    def submit() -> None:
        indices = next(batches, None)
        if indices is None:
            return
        graph, keys = blocks.batch(indices)
        for future, index in zip(client.get(graph, keys, sync=False), indices, strict=True):
            pending[future.key] = (index, future)
            arrived.add(future)

    try:
        submit()
        submit()
        for future in arrived:
            index, _ = pending.pop(future.key)
            sink(index, future.result())
            future.release()
            if len(pending) <= limit // 2:
                submit()
    finally:
        if pending:
            client.cancel([future for _, future in pending.values()])
