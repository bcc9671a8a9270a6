"""The training loop of one rank: :func:`fit` runs in-process or as a Dask task (one rank of DDP).

:func:`fit` reads its rank's share of every global batch from the patch store, validates on the
``val`` split each epoch (every rank the whole split, so all ranks take the same decisions),
keeps the best model (by validation F1 with its tuned threshold, or as ``TrainSpec.select`` says),
stops early, and writes:

- ``OUT/model.safetensors`` + ``OUT/model.json``: the best model (rank 0 only);
- ``OUT/last/``: the latest weights and optimiser state, to resume an interrupted run;
- ``OUT/metrics.csv`` and ``OUT/training.png``: the per-epoch log and its plot;
- ``OUT/item.json``: the STAC MLM item of the best model (:mod:`geoslide.models.mlm`).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn

from geoslide.data.reader import PatchReader
from geoslide.data.splits import split_rows
from geoslide.data.store import PatchStore
from geoslide.errors import ModelError, PatchStoreError
from geoslide.evaluation.metrics import ThresholdSweep
from geoslide.fileio import Location, is_file, join, location, write_atomic
from geoslide.models import build_model
from geoslide.models.card import (
    CARD,
    WEIGHTS,
    ModelCard,
    default_min_area,
    load_weights,
    read_card,
    save_checkpoint,
    unwrap,
)
from geoslide.models.mlm import write_mlm_item
from geoslide.models.normalise import Normalisation
from geoslide.models.outputs import final_logits
from geoslide.models.patchnorm import PatchNormaliser, scene_brightness
from geoslide.models.receptive import receptive_field
from geoslide.progress import show_progress
from geoslide.training.batches import (
    augment,
    balance_weights,
    band_stats,
    epoch_order,
    jitter_radiometry,
    paste_draws,
    paste_landslides,
    rank_batches,
)
from geoslide.training.losses import build_loss
from geoslide.training.optim import build_optimiser, build_schedule
from geoslide.training.plots import plot_log
from geoslide.training.resume import load_state, save_state
from geoslide.training.spec import TrainSpec


@dataclass
class _Run:
    """What one rank holds while training."""

    model: nn.Module
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss: nn.Module
    card: ModelCard
    device: torch.device
    log: list[dict[str, float]] = field(default_factory=list)
    best: float = -math.inf
    stale: int = 0
    step: int = 0
    epoch: int = 0


def fit(store_path: str | Path, spec: TrainSpec, out_dir: str | Path, rank: int = 0, world: int = 1,
        device: str | None = None, progress: bool | None = None,
        on_epoch: Callable[[dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Train on the store's ``train`` split, validating on ``val``; returns the best epoch's metrics.

    With ``world > 1`` the caller has initialised ``torch.distributed``; the model is wrapped in
    DistributedDataParallel and this rank reads its slice of each global batch. A run resumes from
    ``OUT/last`` when that holds a state of the same spec. ``on_epoch`` gets each epoch's record
    after it is saved (for progress reporting).
    """
    progress = show_progress(progress)
    store = PatchStore.open(store_path)
    meta = store.meta()  # read once: splits, sampling weights and resolution all come from it
    rows, val_rows = training_rows(store, meta, spec)
    torch.manual_seed(spec.seed)
    run = _setup(store, meta, spec, rows, _device(device, rank))
    _resume(run, spec, location(out_dir))
    if world > 1:
        run.model = _ddp(run.model, run.device)
    train, val = _readers(store, meta, spec, rows, val_rows, run.card)
    weights = balance_weights(meta["landslide_fraction"].to_numpy()[rows]) if spec.balance else None
    positives = np.flatnonzero(meta["landslide_fraction"].to_numpy()[rows] > 0)  # copy-paste sources
    bar = _bar(spec.epochs, run.epoch, progress and rank == 0)
    while run.epoch < spec.epochs and not _done(run, spec):
        started = time.perf_counter()
        loss = _train_epoch(run, train, spec, epoch_order(len(train), run.epoch, spec.seed, weights), rank, world,
                            positives)
        if run.step == 0:  # training_rows guarantees a full batch; never save a model that was not trained
            raise PatchStoreError(f"no optimiser step was taken in epoch {run.epoch} of {len(train)} training "
                                  f"patches with batch {spec.batch_size}; nothing was saved")
        record = {"epoch": run.epoch, "train_loss": loss, **_validate(run, val, spec.tune_threshold), "lr": _lr(run),
                  "seconds": time.perf_counter() - started}
        _finish_epoch(run, record, spec, location(out_dir), rank)
        bar.set_postfix(loss=f"{loss:.3f}", val_f1=f"{record['val_f1']:.3f}")
        bar.update(1)
        if on_epoch is not None:
            on_epoch(record)
    bar.close()
    return {**_summary(run, spec, location(out_dir)), "weights_sha256": _digest(run.model)}


def check_store(store_path: str | Path, spec: TrainSpec) -> None:
    """Refuse a store that cannot train with ``spec`` (see :func:`training_rows`), before anything is written."""
    store = PatchStore.open(store_path)
    training_rows(store, store.meta(), spec)


def training_rows(store: PatchStore, meta: pd.DataFrame, spec: TrainSpec) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation rows; refused when there is no validation patch or no full global batch.

    Only full global batches are trained (:func:`~geoslide.training.batches.rank_batches`), so a
    training split smaller than the batch would take no optimiser step at all. With
    ``spec.val_fraction`` the validation rows are drawn from the training split (:func:`held_out`).
    """
    rows = split_rows(meta, spec.train_split)
    chosen = _sensor_rows(store, meta, spec)
    rows = rows[chosen[rows]]
    counts = _split_counts(meta)
    if len(rows) == 0:
        raise PatchStoreError(f"{store.path} has no patches with split {spec.train_split!r} ({counts}); choose "
                              "--train-split with one it has, or rebuild it with --split (geoslide patches/import)")
    if spec.val_fraction is not None:
        rows, val_rows = held_out(meta, rows, spec.val_fraction, spec.seed)
    else:
        val_rows = split_rows(meta, spec.val_split)
        val_rows = val_rows[chosen[val_rows]]
    if len(val_rows) == 0:
        raise PatchStoreError(f"{store.path} has no validation patches (split {spec.val_split!r}; it has {counts}); "
                              "give --val-fraction 0.2 to validate on part of the training split, --val-split with "
                              "a split it has, or rebuild it with --split random, blocks or events (patches without "
                              "labels do not count)")
    if len(rows) < spec.batch_size:
        raise PatchStoreError(f"{store.path} has {len(rows)} training patches, fewer than one global batch of "
                              f"{spec.batch_size}, so nothing would be trained: use --batch-size {len(rows)} or less, "
                              "add patches (more scenes or events, --empty keep), or cut more with a smaller --stride")
    return rows, val_rows


def _sensor_rows(store: PatchStore, meta: pd.DataFrame, spec: TrainSpec) -> np.ndarray:
    """Which rows the run may use: all, or those of ``spec.sensors`` (GDCLD's single-source models)."""
    if spec.sensors is None:
        return np.ones(len(meta), dtype=bool)
    chosen = meta["sensor"].isin(list(spec.sensors)).to_numpy()
    if not chosen.any():
        raise PatchStoreError(f"{store.path} has no patches of sensors {list(spec.sensors)} (it has "
                              f"{sorted(meta['sensor'].unique())}); fix the model's sensors option")
    return chosen


def held_out(meta: pd.DataFrame, rows: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` split into training and validation rows, ``fraction`` of them validating.

    Whole source items (``item_id``: a scene or a tile) are drawn when the rows come from at least
    five, so neighbouring patches of one source do not validate each other; otherwise patches.
    """
    groups = meta["item_id"].to_numpy()[rows]
    names = np.unique(groups)
    rng = np.random.default_rng(seed)
    if len(names) >= 5:
        chosen = rng.permutation(names)[: max(1, round(fraction * len(names)))]
        val = np.isin(groups, chosen)
    else:
        val = np.zeros(len(rows), dtype=bool)
        val[rng.permutation(len(rows))[: max(1, round(fraction * len(rows)))]] = True
    return rows[~val], rows[val]


def _split_counts(meta: pd.DataFrame) -> str:
    counts = meta["split"].replace("", "none").value_counts()
    order = sorted(counts.index, key=lambda name: (["train", "val", "test"] + [name]).index(name))
    return ", ".join(f"{name} {counts[name]}" for name in order) or "no patches"


def _device(device: str | None, rank: int) -> torch.device:
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", rank % torch.cuda.device_count())
    return torch.device("cpu")


def _setup(store: PatchStore, meta: pd.DataFrame, spec: TrainSpec, rows: np.ndarray, device: torch.device
           ) -> _Run:
    model, norm, provenance = _start(store, spec, rows, device)
    # pretrained encoder weights only initialise training: the card rebuilds the model without the file
    params = {k: v for k, v in spec.model_params.items() if k != "encoder_weights"}
    card = ModelCard(architecture=spec.model, params=params, bands=tuple(store.bands),
                     mean=norm.mean, std=norm.std, patch_size=store.patch_size, resolution=_resolution(meta),
                     resolution_range=_resolution_range(meta),
                     receptive_field=receptive_field(model, len(store.bands)),
                     min_area=default_min_area(_resolution(meta)),
                     normalise=norm.normalise if isinstance(norm, ModelCard) else spec.normalise,
                     training={"store": str(store.path), "spec": asdict(spec), "n_train": int(len(rows)),
                               "units": store.units, **provenance})
    optimiser = build_optimiser(spec.optimiser, model.parameters(), spec.lr, spec.weight_decay)
    schedule = build_schedule(spec.schedule, optimiser, spec.lr, _total_steps(spec, len(rows)))
    return _Run(model, optimiser, schedule, build_loss(spec.loss, **spec.loss_params), card, device)


def _start(store: PatchStore, spec: TrainSpec, rows: np.ndarray, device: torch.device
           ) -> tuple[nn.Module, Any, dict[str, Any]]:
    """A fresh model with the store's normalisation, or (``spec.init``) a trained one with its own."""
    if spec.init is None:
        model = build_model(spec.model, len(store.bands), **spec.model_params).to(device)
        factor = None
        if spec.normalise == "brightness":
            factor = scene_brightness(store, store.meta(), np.arange(len(store.bands)))
        return model, band_stats(store, rows, factor=factor), {}
    init = read_card(spec.init)
    if tuple(init.bands) != tuple(store.bands) or (init.architecture, init.params) != (spec.model, spec.model_params):
        raise ModelError(f"--init {spec.init} is a {init.architecture} {init.params} on bands {list(init.bands)}; "
                         f"the store has bands {store.bands} and the run asks for {spec.model} {spec.model_params}: "
                         "build patches with the model's bands (--bands) and leave --model to --init")
    if init.normalise == "fixed" and init.training.get("units") not in (None, store.units):
        raise ModelError(f"--init {spec.init} was trained on values in {init.training['units']}, the store holds "
                         f"{store.units}; import or build the patches in the model's units")
    model = load_weights(spec.init, init, device).train()
    return model, init, {"init": str(spec.init), "init_training": init.training.get("spec", {})}


RESOLUTION_TOLERANCE = 1e-3  # relative: pixel sizes this close are one resolution (rounding of geotransforms)


def _resolution(meta: pd.DataFrame) -> float | None:
    """The store's pixel size: the median when every patch has one within the tolerance of it, else None."""
    values = meta["resolution"].to_numpy(dtype="float64")
    if len(values) == 0 or not np.isfinite(values).all():
        return None
    median = float(np.median(values))
    return median if np.abs(values - median).max() <= RESOLUTION_TOLERANCE * median else None


def _resolution_range(meta: pd.DataFrame) -> tuple[float, float] | None:
    values = meta["resolution"].to_numpy(dtype="float64")
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if values.size else None


def _total_steps(spec: TrainSpec, n_rows: int) -> int:
    per_epoch = max(n_rows // spec.batch_size, 1)
    return min(spec.epochs * per_epoch, spec.max_steps or math.inf)


def _ddp(model: nn.Module, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()) and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _readers(store: PatchStore, meta: pd.DataFrame, spec: TrainSpec, rows: np.ndarray, val_rows: np.ndarray,
             card: ModelCard) -> tuple[PatchReader, PatchReader]:
    normaliser = PatchNormaliser(store, meta, card.bands, Normalisation(card.mean, card.std),
                                 mode=card.normalise)
    in_memory = spec.in_memory
    if in_memory is None:
        in_memory = (len(rows) + len(val_rows)) * len(card.bands) * card.patch_size**2 * 4 < 2 * 2**30
    return PatchReader(store, rows, normaliser, in_memory), PatchReader(store, val_rows, normaliser, in_memory)


def _train_epoch(run: _Run, reader: PatchReader, spec: TrainSpec, order: np.ndarray, rank: int, world: int,
                 positives: np.ndarray) -> float:
    run.model.train()
    generator = torch.Generator().manual_seed(spec.seed * 1_000_003 + run.epoch * 101)
    losses = []
    for positions in rank_batches(order, spec.batch_size, rank, world):
        if spec.max_steps is not None and run.step >= spec.max_steps:
            break
        images, masks = reader.batch(positions)
        if spec.augment:
            images, masks = _augment_slice(images, masks, generator, rank, world)
        if spec.paste > 0:
            images, masks = _paste(reader, positives, images, masks, generator, spec.paste, rank, world)
        if spec.radiometric > 0:
            images = jitter_radiometry(images, generator, spec.radiometric, rank, world)
        loss = run.loss(run.model(images.to(run.device)), masks.to(run.device))
        run.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        run.optimiser.step()
        run.scheduler.step()
        run.step += 1
        losses.append(float(loss.detach()))
    return _mean_over_ranks(losses, world)


def _augment_slice(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator, rank: int, world: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment this rank's slice with the draws one process would give it for the whole global batch.

    Every rank advances the same generator over all slices (:func:`augment` draws one integer per
    patch), so the augmentation, like the batches, does not depend on the number of ranks.
    """
    n = images.shape[0]
    torch.randint(0, 8, (rank * n,), generator=generator)
    out = augment(images, masks, generator)
    torch.randint(0, 8, ((world - rank - 1) * n,), generator=generator)
    return out


def _paste(reader: PatchReader, sources: np.ndarray, images: torch.Tensor, masks: torch.Tensor,
           generator: torch.Generator, share: float, rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`paste_landslides` onto this rank's slice; ``sources``: reader positions of patches with landslides."""
    where, chosen, shifts = paste_draws(images.shape[0], len(sources), images.shape[-1], share, generator, rank,
                                        world)
    if len(where) == 0:
        return images, masks
    src_images, src_masks = reader.batch(sources[chosen])
    return paste_landslides(images, masks, where, src_images, src_masks, shifts)


def _mean_over_ranks(losses: list[float], world: int) -> float:
    total = torch.tensor([sum(losses), len(losses)], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(total)
    return float(total[0] / total[1]) if total[1] else math.nan


@torch.inference_mode()
def _validate(run: _Run, reader: PatchReader, tune: bool, batch: int = 32) -> dict[str, float]:
    model = unwrap(run.model)
    model.eval()
    sweep, losses = ThresholdSweep(), []
    for start in range(0, len(reader), batch):
        images, masks = reader.batch(np.arange(start, min(start + batch, len(reader))))
        logits = final_logits(model(images.to(run.device)))
        masks = masks.to(run.device)
        losses.append(float(run.loss(logits, masks)) * len(images))
        sweep.update(torch.sigmoid(logits).float(), masks)
    threshold, _ = sweep.best() if tune else (0.5, None)
    at = sweep.confusion(int(np.argmin(np.abs(sweep.thresholds - threshold))))
    return {"val_loss": sum(losses) / len(reader), "val_precision": at.precision, "val_recall": at.recall,
            "val_f1": at.f1, "val_iou": at.iou, "threshold": float(threshold)}


def _lr(run: _Run) -> float:
    return float(run.optimiser.param_groups[0]["lr"])


def _finish_epoch(run: _Run, record: dict[str, float], spec: TrainSpec, out: Location, rank: int) -> None:
    run.log.append(record)
    run.epoch += 1
    score = selection_score(record, spec.select)
    improved = score > run.best
    run.best, run.stale = (score, 0) if improved else (run.best, run.stale + 1)
    if rank != 0:
        return
    if improved:
        card = _card_with(run.card, record)
        save_checkpoint(run.model, card, out)
    save_state(join(out, "last"), run.model, run.optimiser, run.scheduler, _state_info(run, spec))
    write_atomic(join(out, "metrics.csv"), lambda p: pd.DataFrame(run.log).to_csv(p, index=False))
    plot_log(run.log, join(out, "training.png"))
    if is_file(join(out, WEIGHTS)):  # the MLM item lists the best weights and the files above
        write_mlm_item(out)


def selection_score(record: dict[str, float], select: str) -> float:
    """How good an epoch's ``record`` is by ``select`` (:attr:`TrainSpec.select`): higher is better.

    A NaN validation score (no landslide in the validation patches) ranks below every number, so
    that the first epoch is kept rather than none.
    """
    if select == "last":
        return float(record["epoch"])
    value = record["val_f1"] if select == "f1" else -record["val_loss"]
    return float(value) if np.isfinite(value) else -sys.float_info.max


def _card_with(card: ModelCard, record: dict[str, float]) -> ModelCard:
    training = {**card.training, "epoch": int(record["epoch"]), "validation": {
        k.removeprefix("val_"): float(v) for k, v in record.items() if k.startswith("val_")}}
    return ModelCard(**{**asdict(card), "threshold": float(record["threshold"]), "training": training})


def _state_info(run: _Run, spec: TrainSpec) -> dict[str, Any]:
    return {"spec": _spec_json(spec), "epoch": run.epoch, "step": run.step,
            "best": run.best, "stale": run.stale, "log": run.log}


def _spec_json(spec: TrainSpec) -> dict[str, Any]:
    """The spec as it reads back from JSON (tuples as lists), to compare with a saved state."""
    return json.loads(json.dumps(asdict(spec)))


def _resume(run: _Run, spec: TrainSpec, out: Location) -> None:
    info = load_state(join(out, "last"), run.model, run.optimiser, run.scheduler, expect_spec=_spec_json(spec))
    if info is None:
        return
    run.epoch, run.step, run.best, run.stale = info["epoch"], info["step"], info["best"], info["stale"]
    run.log = list(info["log"])
    if is_file(join(out, CARD)):
        saved = read_card(out)
        run.card = ModelCard(**{**asdict(run.card), "mean": saved.mean, "std": saved.std})


def _done(run: _Run, spec: TrainSpec) -> bool:
    if spec.max_steps is not None and run.step >= spec.max_steps:
        return True
    return spec.patience is not None and run.stale >= spec.patience


def _bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="geoslide train", unit="epoch", disable=not enabled)


def _digest(model: nn.Module) -> str:
    """SHA-256 of the parameters: equal on every rank of a data-parallel run.

    Buffers are left out: batch-norm running statistics stay per rank on CPU (rank 0's are saved).
    """
    sha = hashlib.sha256()
    for name, tensor in sorted(unwrap(model).named_parameters()):
        sha.update(name.encode())
        sha.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def _summary(run: _Run, spec: TrainSpec, out: Location) -> dict[str, Any]:
    if not run.log:
        return {"epochs": 0}
    best = max(run.log, key=lambda r: selection_score(r, spec.select))
    return {"epochs": run.epoch, "steps": run.step, "best_epoch": int(best["epoch"]), "model_dir": str(out),
            **{k: float(v) for k, v in best.items() if k.startswith("val_") or k == "threshold"}}

