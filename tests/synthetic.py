"""A small learnable patch store: bright, low-NIR blobs on noisy background, with some nodata."""

from __future__ import annotations

import numpy as np
import pandas as pd

from geoslide.data.store import COLUMNS, PatchStore
from geoslide.inventory.codes import MASK_NODATA


def blob_patches(n: int, size: int, n_bands: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, band, size, size)`` float32 and masks ``(n, size, size)`` uint8 (1/0/255)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = rng.normal(0.2, 0.05, (n, n_bands, size, size)).astype(np.float32)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        for _ in range(rng.integers(0, 3)):
            cy, cx = rng.uniform(0, size, 2)
            ry, rx = rng.uniform(2, size / 4, 2)
            masks[i][((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 1
        images[i, 0][masks[i] == 1] += 0.15
        if n_bands > 1:
            images[i, -1][masks[i] == 1] -= 0.1
        if i % 7 == 3:  # a nodata corner
            images[i, :, :4, :4] = np.nan
            masks[i, :4, :4] = MASK_NODATA
    return images, masks


def synthetic_store(path, n: int = 48, size: int = 32, n_bands: int = 2, seed: int = 0,
                    events: tuple[str, ...] = ("ev-a", "ev-b")) -> PatchStore:
    """A patch store at ``path`` with a 60/20/20 split in row order and alternating events."""
    images, masks = blob_patches(n, size, n_bands, seed)
    store = PatchStore.create(path, [f"b{i}" for i in range(n_bands)], size)
    meta = pd.DataFrame({name: np.zeros(n, dtype=object if dtype == "str" else dtype)
                         for name, dtype in COLUMNS.items()})
    meta["event"] = [events[i % len(events)] for i in range(n)]
    meta["sensor"] = ["sat" if i % 3 else "uav" for i in range(n)]
    meta["crs"], meta["resolution"] = "EPSG:32645", 3.0
    meta["landslide_fraction"] = (masks == 1).mean(axis=(1, 2))
    cut = [int(0.6 * n), int(0.8 * n)]
    meta["split"] = np.where(np.arange(n) < cut[0], "train", np.where(np.arange(n) < cut[1], "val", "test"))
    for col in ("item_id", "trigger"):
        meta[col] = "x"
    store.append(images, masks, meta)
    return store


def one_epoch_weights(folder, **option) -> dict:
    """The weights of a tiny U-Net trained one epoch on a :func:`synthetic_store`, with ``option`` in its spec.

    For checking that a training option reaches the loop: two options that change the batches give
    two different sets of weights.
    """
    from safetensors.torch import load_file

    from geoslide.training import TrainSpec
    from geoslide.training.loop import fit

    folder.mkdir(parents=True, exist_ok=True)
    store = synthetic_store(folder / "s.zarr", n=24, size=32)  # the same patches (seed 0) for every option
    spec = TrainSpec(model="unet", model_params={"base_filters": 4, "depth": 2}, epochs=1, batch_size=8,
                     patience=None, **option)
    fit(store.path, spec, folder / "model")
    return load_file(str(folder / "model" / "model.safetensors"))
