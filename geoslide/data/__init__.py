"""Stage 4, training data: patches cut from cubes and inventories into a Zarr patch store.

``patches`` plans patch windows and keeps them by the seeds' empty-patch policies, ``splits``
assigns train/val/test, ``trainingset`` runs the cut as a Dask graph, ``store`` is the patch
store, ``stats`` describes it, and ``importers`` bring in the published datasets.
"""
