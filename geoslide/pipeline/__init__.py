"""Stage 9, pipelines: a whole protocol (data, patches, training, evaluation) from one YAML file.

``from geoslide.pipeline import load_pipeline, run_pipeline`` runs one. Modules:

- ``config``: the steps as frozen dataclasses, parsed and checked from ``pipelines/*.yaml``;
- ``workdir``: the working folder: relative paths and the markers of finished steps;
- ``steps``: each step (data, training, evaluation), resumable;
- ``run``: :func:`run_pipeline`, the steps in order;
- ``report``: the report's tables and F1 chart.
"""

from geoslide.pipeline.config import load_pipeline
from geoslide.pipeline.run import run_pipeline

__all__ = ["load_pipeline", "run_pipeline"]
