"""Stage 6, training: fit a model on a patch store, in one process or across Dask workers.

``batches`` reads and augments patch batches, ``losses`` are the segmentation losses, ``loop``
is the training loop of one rank, ``distributed`` runs ranks on Dask workers, ``resume`` saves
and restores an interrupted run, ``plots`` draws the training curves.
"""
