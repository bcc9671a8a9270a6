"""Stage 7, mapping: a model applied over a mosaic, written to a resumable map store.

``job`` runs a whole map (search, load, infer, write, export), ``inference`` builds the
overlapping-chunk inference graph, ``store`` is the Zarr map store, ``export`` writes COGs, the
STAC item and the quicklook.
"""

from geoslide.mapping.job import MapResult, MapSpec, run_map

__all__ = ["MapResult", "MapSpec", "run_map"]
