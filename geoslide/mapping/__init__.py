"""Stage 6, mapping: a model applied over a mosaic, written to a resumable map store.

- ``spec``: what a map job is asked (:class:`~geoslide.mapping.spec.MapSpec`,
  :class:`~geoslide.mapping.spec.InferenceSpec`, :class:`~geoslide.mapping.spec.TileMapSpec`),
  checked when made, with numpy alone.
- ``job``: a whole map run (search, load, infer, write, export).
- ``inference``: the lazy overlapping-chunk inference graph (:func:`~geoslide.mapping.inference.predict_proba`).
- ``tiling``: tiled inference over one block.
- ``modelcache``: models loaded once per process for inference tasks.
- ``store``: the Zarr map store's layout (create, resume, encode, read).
- ``blocks``: computing a map's blocks a bounded batch at a time, locally or on a cluster.
- ``cog``, ``item``, ``quicklook``: the exports (Cloud-Optimized GeoTIFFs, the STAC item, a PNG).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geoslide._lazy import lazy_exports

if TYPE_CHECKING:
    from geoslide.mapping.job import MapResult, run_map
    from geoslide.mapping.spec import MapSpec

__all__ = ["MapResult", "MapSpec", "run_map"]

__getattr__, __dir__ = lazy_exports(__name__, {"MapResult": "geoslide.mapping.job", "MapSpec": "geoslide.mapping.spec",
                                               "run_map": "geoslide.mapping.job"})
