"""Stage 8, training: fit a model on a patch store, in one process or across Dask workers.

``from geoslide.training import TrainSpec, train`` is all most callers need. Modules:

- ``spec``: :class:`TrainSpec`, the options of a run, checked when made;
- ``dispatch``: :func:`train`, in this process or on a Dask cluster;
- ``loop``: :func:`~geoslide.training.loop.fit`, the training loop of one rank;
- ``distributed``: ranks of the loop on Dask workers, restarted when a worker dies;
- ``batches``: reads, orders and augments patch batches;
- ``losses``: the segmentation losses, by name;
- ``optim``: optimisers and learning-rate schedules, by name;
- ``resume``: saves and restores an interrupted run;
- ``plots``: the training curves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geoslide._lazy import lazy_exports

if TYPE_CHECKING:
    from geoslide.training.dispatch import train
    from geoslide.training.spec import TrainSpec

__all__ = ["TrainSpec", "train"]

__getattr__, __dir__ = lazy_exports(__name__, {"TrainSpec": "geoslide.training.spec",
                                               "train": "geoslide.training.dispatch"})
