"""How to train: :class:`TrainSpec`, the options of a training run, checked when it is made."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from geoslide.errors import ConfigError
from geoslide.models.normalise import MODES
from geoslide.training.optim import check_names

SELECT = ("f1", "loss", "last")
"""Values of :attr:`TrainSpec.select`: which epoch's weights a training keeps."""


def select_names() -> tuple[str, ...]:
    """The values ``TrainSpec.select`` (``geoslide train --select``) takes."""
    return SELECT


@dataclass(frozen=True)
class TrainSpec:
    """How to train: model, loss, optimiser, schedule, sampling and stopping.

    Parameters
    ----------
    model, model_params
        Architecture name (:func:`geoslide.models.model_names`) and its options.
    loss, loss_params
        Loss name (:func:`geoslide.training.losses.build_loss`) and its options.
    optimiser, lr, weight_decay
        :func:`~geoslide.training.optim.optimiser_names`: ``adam`` (HR-GLDD, Landslide4Sense), ``adamw``
        (GDCLD) or ``sgd``.
    schedule
        Learning-rate schedule over all steps (:func:`~geoslide.training.optim.schedule_names`):
        ``constant``, ``cosine``, ``onecycle``, ``poly``.
    epochs, max_steps
        Epoch limit; ``max_steps`` (optimiser steps, e.g. Landslide4Sense's 5000 iterations) ends earlier.
    batch_size
        Global batch (split evenly over ranks).
    augment
        Random flips and 90-degree rotations.
    radiometric
        Strength of random radiometry per patch after normalisation (contrast, brightness, per-band
        gain and offset, noise; :func:`~geoslide.training.batches.jitter_radiometry`); 0 (default)
        turns it off, 1 is the documented ranges. For real imagery of one camera or flight, so that
        the model does not learn its colours.
    paste
        Copy-paste augmentation: the share of training patches (0-1) onto which the landslide
        pixels of another training patch with landslides are laid, turned and shifted at random
        (:func:`~geoslide.training.batches.paste_landslides`). Real scars then appear in every
        kind of surrounding the store holds, so that a model learns the scar rather than the
        valleys it was mapped in; 0 (default) turns it off.
    balance
        Class-balanced sampling: patches with landslides drawn half of the time.
    patience
        Stop after this many epochs without a better epoch by ``select`` (None: never).
    select
        Which epoch's weights are kept (:data:`SELECT`): ``f1``, the highest validation F1 (default);
        ``loss``, the lowest validation loss; ``last``, the final epoch, for a validation set too
        small or too unlike the imagery to be mapped to choose by (an early epoch that flags
        everything can score the best F1 on patches that mostly hold landslides).
    seed
        Seeds weights, order and augmentation; equal seeds give equal runs on one device.
    tune_threshold
        Pick the probability threshold that maximises validation F1 (else 0.5).
    train_split, val_split
        Values of the store's ``split`` column used for training and validation.
    val_fraction
        Validate on this share of the training split instead (whole source items or tiles when the
        split has at least five, else patches; seeded), for stores without a validation split.
    sensors
        Train and validate on patches of these sensors only (GDCLD's single-source models); None: all.
    in_memory
        Hold the training patches in RAM (None: when they take under 2 GiB).
    init
        A model directory to start from (fine-tuning): its weights, architecture and normalisation
        are taken; the store must have its bands.
    normalise
        ``fixed``: inputs are normalised with the training patches' band statistics, written to the
        card; ``brightness``: each source scene is first divided by its brightness, so that the
        model does not depend on the imagery's units or gain; ``scene``: with each scene's own
        median and spread per band (see :mod:`geoslide.models.normalise`). Ignored with ``init``,
        which keeps the model's.
    """

    model: str = "unet"
    model_params: dict[str, Any] = field(default_factory=dict)
    loss: str = "dice"
    loss_params: dict[str, Any] = field(default_factory=dict)
    optimiser: str = "adam"
    lr: float = 5e-4
    weight_decay: float = 0.0
    schedule: str = "constant"
    epochs: int = 50
    max_steps: int | None = None
    batch_size: int = 16
    augment: bool = True
    radiometric: float = 0.0
    paste: float = 0.0
    balance: bool = False
    patience: int | None = 10
    select: str = "f1"
    seed: int = 0
    tune_threshold: bool = True
    train_split: str = "train"
    val_split: str = "val"
    val_fraction: float | None = None
    sensors: tuple[str, ...] | None = None
    in_memory: bool | None = None
    init: str | None = None
    normalise: str = "fixed"

    def __post_init__(self) -> None:
        check_names(self.optimiser, self.schedule)
        if self.select not in SELECT:
            raise ConfigError(f"select must be one of {', '.join(SELECT)}, got {self.select!r}")
        if self.normalise not in MODES:
            raise ConfigError(f"normalise must be one of {', '.join(MODES)}, got {self.normalise!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be at least 1 (or None), got {self.max_steps}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be at least 1 epoch (or None: no early stopping), got {self.patience}")
        if self.val_fraction is not None and not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be a share between 0 and 1, got {self.val_fraction}")
        if self.sensors is not None and (isinstance(self.sensors, str) or not self.sensors):
            raise ConfigError(f"sensors must be a non-empty list of sensor names (or None), got {self.sensors!r}")
        if not 0 <= self.radiometric <= 3:
            raise ConfigError(f"radiometric must be a strength between 0 (off) and 3, got {self.radiometric}")
        if not 0 <= self.paste <= 1:
            raise ConfigError(f"paste must be a share of patches between 0 (off) and 1, got {self.paste}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSpec:
        """Build from a mapping (YAML), refusing unknown keys."""
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(data) - known):
            raise ConfigError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
        if isinstance(data.get("sensors"), list):
            data = {**data, "sensors": tuple(data["sensors"])}
        return cls(**data)
