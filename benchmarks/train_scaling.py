"""Training samples per second: 1 vs 2 Dask workers (torch DDP), and a plain in-memory DataLoader loop.

All three train the same U-Net with the same loss, optimiser, global batch and epochs on the same
synthetic patch store (random bands, smooth random masks, 90/10 train/val):

- ``geoslide.training.distributed.train_distributed`` on a LocalCluster of 1 worker, then of 2 workers
  (``--threads-per-worker`` each, default 1; gloo on CPU): per-epoch seconds from
  ``OUT/metrics.csv``, which cover training and the validation pass, not the checkpoint writing;
- the upper bound: this process, the patches as tensors in RAM, a ``torch.utils.data.DataLoader``
  over a ``TensorDataset``, plus the same validation forward pass; once with the threads of one
  worker (the bound for 1 worker) and once with all cores.

The first epoch (imports, warm-up) is left out; samples/s = training patches / median epoch seconds.
Run: ``.venv/bin/python benchmarks/train_scaling.py [--patches 256 --size 64 --epochs 4]``.
Prints ratios measured side by side in one run (the machine is noisy; ratios are what to compare).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

BANDS = 4


def make_store(path: Path, n: int, size: int, seed: int = 0):
    """A store of ``n`` patches: normal noise bands, landslides where smoothed noise is high (band 0 brighter)."""
    from geoslide.data.store import COLUMNS, PatchStore

    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(n, size, size)), sigma=(0, 4, 4))
    masks = (field > np.quantile(field, 0.9)).astype(np.uint8)
    images = rng.normal(0.2, 0.05, (n, BANDS, size, size)).astype(np.float32)
    images[:, 0] += 0.1 * masks
    store = PatchStore.create(path, [f"b{i}" for i in range(BANDS)], size)
    meta = pd.DataFrame({c: np.zeros(n, dtype=object if t == "str" else t) for c, t in COLUMNS.items()})
    meta["event"], meta["sensor"], meta["item_id"], meta["trigger"] = "bench", "sat", "x", "x"
    meta["crs"], meta["resolution"] = "EPSG:32645", 3.0
    meta["landslide_fraction"] = masks.mean(axis=(1, 2))
    meta["split"] = np.where(np.arange(n) < int(0.9 * n), "train", "val")
    store.append(images, masks, meta)
    return store


def run_workers(store, spec, n_workers: int, threads: int, out: Path) -> dict:
    """Train on a fresh LocalCluster of ``n_workers`` processes; per-epoch seconds from metrics.csv."""
    from geoslide.cluster import ClusterSpec, connect
    from geoslide.training.distributed import train_distributed

    t0 = time.perf_counter()
    client, cluster = connect(ClusterSpec(n_workers=n_workers, threads_per_worker=threads))
    try:
        summary = train_distributed(store.path, spec, out, client=client)
    finally:
        client.close()
        cluster.close()
    seconds = pd.read_csv(out / "metrics.csv")["seconds"].to_numpy()
    assert summary["world"] == n_workers and summary["restarts"] == 0, summary
    return {"epoch_s": float(np.median(seconds[1:])), "wall_s": time.perf_counter() - t0}


def run_plain(store, spec, threads: int) -> dict:
    """The same training as a bare loop over in-memory tensors with a DataLoader, on ``threads`` threads."""
    from torch.utils.data import DataLoader, TensorDataset

    from geoslide.data.splits import split_rows
    from geoslide.models import build_model
    from geoslide.training.batches import band_stats
    from geoslide.training.losses import build_loss

    torch.set_num_threads(threads)
    meta = store.meta()
    rows, val_rows = split_rows(meta, "train"), split_rows(meta, "val")
    norm = band_stats(store, rows)
    images, masks = store.images().compute(), store.masks().compute()
    data = TensorDataset(torch.from_numpy(norm.apply(images[rows])), torch.from_numpy(masks[rows].astype(np.int64)))
    val_x = torch.from_numpy(norm.apply(images[val_rows]))
    val_y = torch.from_numpy(masks[val_rows].astype(np.int64))
    torch.manual_seed(spec.seed)
    model = build_model(spec.model, BANDS, **spec.model_params)
    loss_fn, optimiser = build_loss(spec.loss), torch.optim.Adam(model.parameters(), lr=spec.lr)
    loader = DataLoader(data, batch_size=spec.batch_size, shuffle=True, drop_last=True)
    seconds = []
    for _ in range(spec.epochs):
        started = time.perf_counter()
        model.train()
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        model.eval()
        with torch.inference_mode():
            for start in range(0, len(val_x), 32):
                loss_fn(model(val_x[start:start + 32]), val_y[start:start + 32])
        seconds.append(time.perf_counter() - started)
    return {"epoch_s": float(np.median(seconds[1:]))}


def main() -> None:
    from geoslide.training import TrainSpec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=160, help="patches in the store (90%% train)")
    parser.add_argument("--size", type=int, default=64, help="patch side in pixels")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is not timed)")
    parser.add_argument("--batch-size", type=int, default=16, help="global batch")
    parser.add_argument("--base-filters", type=int, default=16)
    parser.add_argument("--threads-per-worker", type=int, default=1)
    args = parser.parse_args()
    spec = TrainSpec(model="unet", model_params={"base_filters": args.base_filters, "depth": 3}, loss="bce",
                     epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, patience=None, augment=False)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = make_store(folder / "bench.zarr", args.patches, args.size)
        n_train = int(0.9 * args.patches)
        one = run_workers(store, spec, 1, args.threads_per_worker, folder / "one")
        two = run_workers(store, spec, 2, args.threads_per_worker, folder / "two")
        plain = run_plain(store, spec, args.threads_per_worker)
        plain_all = run_plain(store, spec, os.cpu_count())
    runs = {"one": one, "two": two, "plain": plain, "plain_all": plain_all}
    rate = {name: n_train / r["epoch_s"] for name, r in runs.items()}
    result = {
        "cores": os.cpu_count(), "threads_per_worker": args.threads_per_worker, "train_patches": n_train,
        "patch": f"{args.size}^2 x {BANDS} bands", "batch": args.batch_size, "epochs_timed": args.epochs - 1,
        "plain_dataloader_samples_per_s": round(rate["plain"], 1),
        "plain_dataloader_all_cores_samples_per_s": round(rate["plain_all"], 1),
        "one_worker_samples_per_s": round(rate["one"], 1), "two_workers_samples_per_s": round(rate["two"], 1),
        "two_vs_one_worker": round(rate["two"] / rate["one"], 2),
        "one_worker_vs_plain": round(rate["one"] / rate["plain"], 2),
        "two_workers_vs_plain_all_cores": round(rate["two"] / rate["plain_all"], 2),
        "wall_s_one_worker_incl_cluster_start": round(one["wall_s"], 1),
        "wall_s_two_workers_incl_cluster_start": round(two["wall_s"], 1),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
