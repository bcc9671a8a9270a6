"""Stage 4, training data: patches cut from cubes and inventories into a Zarr patch store.

Modules:

- ``patches``: patch windows, their statistics, and the empty-patch policies by name;
- ``splits``: train/val/test splits by name (random, blocks, events, none) and rows of a split;
- ``trainingset``: :func:`~geoslide.data.trainingset.build_patches`, the cut as a Dask graph;
- ``store``: the patch store (images, masks, one metadata row per patch);
- ``stats``: statistics that describe a store;
- ``importers``: the published datasets by name, imported into a store.
"""
