"""Stage 6, mapping: a model applied over a mosaic, written to a resumable map store.

- ``job``: a whole map run (search, load, infer, write, export).
- ``inference``: the lazy overlapping-chunk inference graph (:func:`~geoslide.mapping.inference.predict_proba`).
- ``tiling``: :class:`~geoslide.mapping.tiling.InferenceSpec` and tiled inference over one block.
- ``modelcache``: models loaded once per process for inference tasks.
- ``store``: the Zarr map store's layout (create, resume, encode, read).
- ``blocks``: computing a map's blocks a bounded batch at a time, locally or on a cluster.
- ``cog``, ``item``, ``quicklook``: the exports (Cloud-Optimized GeoTIFFs, the STAC item, a PNG).
"""

from geoslide.mapping.job import MapResult, MapSpec, run_map

__all__ = ["MapResult", "MapSpec", "run_map"]
