"""Batches of patches read from a patch store by position, for training and for scoring models."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from geoslide.data.store import PatchStore, read_rows


class PatchReader:
    """Reads image and mask batches of a store, optionally from a RAM copy.

    Parameters
    ----------
    store
        The patch store.
    indices
        Store rows this reader serves (e.g. the training split); batches address positions in it.
    transform
        Called as ``transform(images, rows)`` on every image batch as read, with the batch's store
        rows (e.g. a model's normalisation, :class:`geoslide.models.patchnorm.PatchNormaliser`);
        None keeps raw values.
    in_memory
        Load the rows once (fast for stores that fit in RAM) instead of reading Zarr per batch.
    """

    def __init__(self, store: PatchStore, indices: np.ndarray,
                 transform: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                 in_memory: bool = True) -> None:
        self.indices = np.asarray(indices)
        self.transform = transform
        self._images, self._masks = store.array("images"), store.array("masks")
        self._cache = None
        if in_memory and len(self.indices):
            self._cache = self._read(self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def batch(self, positions: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(b, band, s, s)`` float32 and masks ``(b, s, s)`` int64 (255 = ignore)."""
        positions = np.asarray(positions)
        if self._cache is not None:
            images, masks = self._cache[0][positions], self._cache[1][positions]
        else:
            images, masks = self._read(self.indices[positions])
        return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(masks.astype(np.int64))

    def _read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = read_rows(self._images, rows)
        return (images if self.transform is None else self.transform(images, rows)), read_rows(self._masks, rows)
