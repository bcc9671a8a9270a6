"""Stage 7, evaluation: score maps against inventories and models on patch-store splits.

- ``metrics``: streamed pixel confusion counts and threshold sweeps.
- ``objects``: object-level scores (landslides found, false landslides, area error) of polygons and rasters.
- ``score``: maps and patch stores scored with them.
"""

from geoslide.evaluation.score import evaluate_map, evaluate_patches

__all__ = ["evaluate_map", "evaluate_patches"]
