"""Train/val/test splits of a patch table, after the seeds' protocols, and a registry of them by name.

:func:`assign_split` applies a split named in :func:`split_names` (``geoslide patches --split``);
a new split is a rule ``rule(meta, options) -> labels`` and one entry in the registry.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from geoslide.errors import ConfigError, GeoslideWarning


@dataclass(frozen=True)
class SplitOptions:
    """What a split rule may use besides the patch table.

    Parameters
    ----------
    seed
        Seed of random choices.
    test_events
        Events held out as the test set (``events``).
    overlap
        Pixels neighbouring patches share (patch size minus stride, at least 0).
    """

    seed: int = 0
    test_events: tuple[str, ...] = ()
    overlap: int = 0


def random_split(meta: pd.DataFrame, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0,
                 by: str = "event") -> np.ndarray:
    """Per site (``by``) random train/val/test in the given shares, then mixed (HR-GLDD: 60/20/20)."""
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise ConfigError(f"split fractions must be three shares summing to 1, got {list(fractions)}")
    out = np.empty(len(meta), dtype=object)
    rng = np.random.default_rng(seed)
    for _, index in meta.groupby(by, sort=True).indices.items():
        order = rng.permutation(index)
        n_train = round(fractions[0] * len(order))
        n_val = round(fractions[1] * len(order))
        out[order[:n_train]] = "train"
        out[order[n_train : n_train + n_val]] = "val"
        out[order[n_train + n_val :]] = "test"
    return out


def block_split(meta: pd.DataFrame, train_share: float = 0.25, val_share: float = 0.05,
                by: str = "event") -> np.ndarray:
    """Spatial split: the western ``train_share`` of each area trains, the rest tests (Landslide4Sense).

    The strip of ``val_share`` east of the training part validates (the paper has no validation
    set; its training quarter stays whole), the rest tests. Patches are assigned by their
    centre's position across the area's x extent, so no training patch sits inside the test part.
    Patches without coordinates (imported Landslide4Sense) are placed by their order in the
    source instead, with a warning.
    """
    if not (0 < train_share < 1 and 0 <= val_share and train_share + val_share < 1):
        raise ConfigError(f"train share {train_share} and validation share {val_share} must be positive and sum "
                          "to less than 1")
    out = np.empty(len(meta), dtype=object)
    unplaced = 0
    for _, index in meta.groupby(by, sort=True).indices.items():
        part = meta.iloc[index]
        centre = ((part.xmin + part.xmax) / 2).to_numpy(dtype=float)
        if not np.isfinite(centre).all():
            unplaced += len(index)
            centre = np.arange(len(index), dtype=float) + 0.5
            lo, hi = 0.0, float(len(index))
        else:
            lo, hi = part.xmin.min(), part.xmax.max()
        position = (centre - lo) / max(hi - lo, 1e-300)
        out[index] = np.where(position < train_share, "train",
                              np.where(position < train_share + val_share, "val", "test"))
    if unplaced:
        warnings.warn(f"{unplaced} patches have no coordinates; their order in the source stands in for their "
                      "west-to-east position in the block split", GeoslideWarning, stacklevel=3)
    return out


def events_split(meta: pd.DataFrame, test_events: Sequence[str], val_share: float = 0.25, seed: int = 0,
                 strict: bool = True) -> np.ndarray:
    """Leave events out: ``test_events`` are the unseen test set; the others train/val 3:1 (GDCLD).

    With ``strict``, every test event must be in ``meta`` (a whole store); a build that adds one
    event at a time passes ``strict=False``.
    """
    if not test_events:
        raise ConfigError("leave-events-out needs the test events (--test-events)")
    unknown = sorted(set(test_events) - set(meta.event))
    if unknown and strict:
        raise ConfigError(f"test event(s) {unknown} are not in the store; events: {sorted(set(meta.event))}")
    out = np.where(meta.event.isin(test_events), "test", "train").astype(object)
    rest = np.flatnonzero(out == "train")
    val = np.random.default_rng(seed).permutation(rest)[: round(val_share * len(rest))]
    out[val] = "val"
    return out


def warn_leak(name: str, options: SplitOptions, stacklevel: int = 3) -> None:
    """Warn that a random split of overlapping patches leaks pixels between the parts (once per build)."""
    if name == "random" and options.overlap > 0:
        warnings.warn(f"a random split of patches overlapping by {options.overlap} px puts the same "
                      "pixels in training and test, so test scores are optimistic; for honest scores use --split "
                      "blocks or events, a stride >= the patch size, or test on whole unseen scenes",
                      GeoslideWarning, stacklevel=stacklevel)


def _random(meta: pd.DataFrame, options: SplitOptions) -> np.ndarray:
    return random_split(meta, seed=options.seed)


SplitRule = Callable[[pd.DataFrame, SplitOptions], np.ndarray]

_RULES: dict[str, SplitRule] = {
    "random": _random,  # per event 60/20/20 (HR-GLDD)
    "blocks": lambda meta, options: block_split(meta),  # western quarter trains, next 5% validates (L4S)
    "events": lambda meta, options: events_split(meta, options.test_events, seed=options.seed,
                                                 strict=False),  # leave events out (GDCLD)
    "none": lambda meta, options: np.full(len(meta), ""),
}


def split_names() -> list[str]:
    """Names accepted by :func:`assign_split`, in registry order."""
    return list(_RULES)


def check_split(name: str) -> None:
    """Raise :class:`~geoslide.errors.ConfigError` unless ``name`` is a registered split."""
    if name not in _RULES:
        names = split_names()
        raise ConfigError(f"split {name!r} unknown; use {', '.join(names[:-1])} or {names[-1]}")


def assign_split(name: str, meta: pd.DataFrame, options: SplitOptions) -> np.ndarray:
    """The split label of every row of ``meta`` by the rule ``name`` (empty labels for an empty table)."""
    check_split(name)
    if len(meta) == 0:
        return np.full(0, "")
    return _RULES[name](meta, options)


def split_rows(meta: pd.DataFrame, split: str) -> np.ndarray:
    """Labelled rows of a patch table (:meth:`~geoslide.data.store.PatchStore.meta`) whose ``split`` is ``split``.

    Patches without any label (``nodata_fraction`` 1, e.g. a split released without masks and
    imported for prediction) can neither train nor be scored, so they are left out.
    """
    chosen = meta["split"].to_numpy() == split
    if "nodata_fraction" in meta:
        chosen &= meta["nodata_fraction"].to_numpy() < 1
    return np.flatnonzero(chosen)
