"""Optimisers and learning-rate schedules by name: one registry each, read by :class:`TrainSpec` and the CLI.

A new optimiser or schedule is one entry here: a builder taking what every one needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from geoslide.errors import ConfigError

Optimiser = torch.optim.Optimizer
Schedule = torch.optim.lr_scheduler.LRScheduler
OptimiserBuilder = Callable[[Iterable[nn.Parameter], float, float], Optimiser]  # (params, lr, weight_decay)
ScheduleBuilder = Callable[[Optimiser, float, int], Schedule]  # (optimiser, peak lr, total steps)

_OPTIMISERS: dict[str, OptimiserBuilder] = {
    "adam": lambda params, lr, decay: torch.optim.Adam(params, lr=lr, weight_decay=decay),  # HR-GLDD, L4S
    "adamw": lambda params, lr, decay: torch.optim.AdamW(params, lr=lr, weight_decay=decay),  # GDCLD
    "sgd": lambda params, lr, decay: torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=decay),
}

_SCHEDULES: dict[str, ScheduleBuilder] = {
    "constant": lambda optimiser, lr, total: torch.optim.lr_scheduler.ConstantLR(optimiser, factor=1.0),
    "cosine": lambda optimiser, lr, total: torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total),
    "onecycle": lambda optimiser, lr, total: torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr,
                                                                                 total_steps=total + 1),
    "poly": lambda optimiser, lr, total: torch.optim.lr_scheduler.PolynomialLR(optimiser, total_iters=total,
                                                                               power=0.9),
}


def optimiser_names() -> list[str]:
    """Names accepted by :func:`build_optimiser`, in registry order."""
    return list(_OPTIMISERS)


def schedule_names() -> list[str]:
    """Names accepted by :func:`build_schedule`, in registry order."""
    return list(_SCHEDULES)


def check_names(optimiser: str, schedule: str) -> None:
    """Raise :class:`~geoslide.errors.ConfigError` for an optimiser or schedule not registered here."""
    _known(optimiser, "optimiser", _OPTIMISERS)
    _known(schedule, "schedule", _SCHEDULES)


def build_optimiser(name: str, params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> Optimiser:
    """The optimiser ``name`` over ``params``.

    Parameters
    ----------
    name
        One of :func:`optimiser_names`.
    params
        The parameters to optimise.
    lr, weight_decay
        Learning rate and weight decay.
    """
    return _OPTIMISERS[_known(name, "optimiser", _OPTIMISERS)](params, lr, weight_decay)


def build_schedule(name: str, optimiser: Optimiser, lr: float, total: int) -> Schedule:
    """The learning-rate schedule ``name`` over ``total`` optimiser steps.

    Parameters
    ----------
    name
        One of :func:`schedule_names`.
    optimiser
        The optimiser whose learning rate it sets.
    lr
        The peak learning rate (``onecycle``).
    total
        Optimiser steps of the whole run.
    """
    return _SCHEDULES[_known(name, "schedule", _SCHEDULES)](optimiser, lr, total)


def _known(name: str, what: str, registry: dict[str, Callable]) -> str:
    if name not in registry:
        raise ConfigError(f"{what} {name!r} unknown; use one of {', '.join(registry)}")
    return name
