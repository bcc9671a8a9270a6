"""Splits of imported patches chosen on the command line (``geoslide import --split``).

- ``folders``: the split each tile's folder names (train/val/test and variants); the default
  when any folder names one.
- ``random``: whole tiles (all patches of one source tile together, so neighbouring patches do
  not leak across the parts) drawn per event in the ``fractions`` (default 0.6/0.2/0.2).
- ``blocks``: spatial, per event: patches whose centre lies in the western ``fractions[0]`` of
  the event's x extent train, the next ``fractions[1]`` validate, the rest test; needs
  georeferenced tiles.
- ``none``: no split (``geoslide train --val-fraction`` can make one later).
- a path to a CSV (columns ``name`` or ``image``, and ``split``) or ``NAME SPLIT`` lines: the split of
  each tile by its name (relative path without extension, or file name); tiles not listed get none.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from geoslide.data.splits import random_split
from geoslide.errors import ConfigError, GeoslideWarning

RULES = ("folders", "random", "blocks", "none")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)


def parse_fractions(text: str | Sequence[float] | None) -> tuple[float, float, float]:
    """``"0.7,0.1,0.2"`` (train,val,test shares summing to 1) as a tuple; None gives 0.6/0.2/0.2."""
    if text is None:
        return DEFAULT_FRACTIONS
    try:
        values = tuple(float(v) for v in (text.split(",") if isinstance(text, str) else text))
    except ValueError:
        raise ConfigError(f"--split-fractions {text!r} must be three numbers, e.g. 0.7,0.1,0.2") from None
    if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1) > 1e-6:
        raise ConfigError(f"--split-fractions {text!r} must be three shares (train,val,test) summing to 1")
    return values  # type: ignore[return-value]


def check_rule(rule: str) -> None:
    """Refuse a split that is neither a rule name nor an existing list file."""
    if rule not in RULES and not Path(rule).is_file():
        raise ConfigError(f"--split {rule!r} is neither {', '.join(RULES)} nor a file listing tile,split")


def tile_splits(meta: pd.DataFrame, rule: str, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                seed: int = 0) -> np.ndarray:
    """The split of every patch row of ``meta`` (columns ``item_id`` = tile, ``event``, ``split``, bounds).

    ``meta["split"]`` holds the folder splits on entry (used by ``folders``).
    """
    check_rule(rule)
    if rule == "folders":
        if len(meta) and not (meta["split"] != "").any():
            raise ConfigError("no train/val/test folders found; choose --split random, blocks, none or a list file")
        return meta["split"].to_numpy(dtype=object)
    if rule == "none":
        return np.full(len(meta), "", dtype=object)
    if rule == "random":
        return _random_tiles(meta, fractions, seed)
    if rule == "blocks":
        return _blocks(meta, fractions)
    return _listed(meta, Path(rule))


def _random_tiles(meta: pd.DataFrame, fractions: Sequence[float], seed: int) -> np.ndarray:
    """Whole source files drawn per event; rows without an ``item_id`` are drawn one by one."""
    ids = meta["item_id"].astype(str).where(meta["item_id"].astype(str) != "", "#" + meta.index.astype(str))
    frame = pd.DataFrame({"item_id": ids.to_numpy(), "event": meta["event"].to_numpy()})
    tiles = frame.drop_duplicates("item_id").reset_index(drop=True)
    chosen = dict(zip(tiles["item_id"], random_split(tiles, fractions, seed=seed, by="event"), strict=True))
    return frame["item_id"].map(chosen).to_numpy(dtype=object)


def _blocks(meta: pd.DataFrame, fractions: Sequence[float]) -> np.ndarray:
    if meta[["xmin", "xmax"]].isna().any().any():
        raise ConfigError("--split blocks needs georeferenced tiles (a CRS and geotransform); some have none: "
                          "use --split random (whole tiles) or a list file")
    out = np.empty(len(meta), dtype=object)
    edges = np.cumsum(fractions)[:2]
    for _, index in meta.groupby("event", sort=True).indices.items():
        part = meta.iloc[index]
        lo, hi = part["xmin"].min(), part["xmax"].max()
        share = ((part["xmin"] + part["xmax"]) / 2 - lo) / max(hi - lo, 1e-12)
        out[index] = np.select([share < edges[0], share < edges[1]], ["train", "val"], "test")
    return out


def _listed(meta: pd.DataFrame, path: Path) -> np.ndarray:
    splits = read_split_list(path)
    names = meta["item_id"].astype(str)
    out = names.map(lambda n: splits.get(n, splits.get(n.rsplit("/", 1)[-1], ""))).to_numpy(dtype=object)
    missing = int((out == "").sum())
    if missing:
        warnings.warn(f"{missing} patch(es) of tiles not named in {path} get no split (not trained on)",
                      GeoslideWarning, stacklevel=3)
    return out


def read_split_list(path: Path) -> dict[str, str]:
    """Tile name (or file name, with or without extension) -> split, from a CSV or ``NAME SPLIT`` lines."""
    lines = path.read_text().splitlines()
    first = [h.strip().lower() for h in next(csv.reader(lines[:1]), [])]
    if "split" in first:
        key = "name" if "name" in first else "image" if "image" in first else None
        if key is None:
            raise ConfigError(f"{path} has a split column but no name or image column")
        rows = [(r[key], r["split"]) for r in csv.DictReader(lines, fieldnames=first) if r[key] != key]
    else:
        rows = [tuple(line.split()[:2]) for line in lines if line.strip() and not line.startswith("#")]
    out = {}
    for name, split in rows:
        if split.strip().lower() not in ("train", "val", "test"):
            raise ConfigError(f"{path}: split {split!r} of {name} is not train, val or test")
        stem = Path(name.strip()).with_suffix("").as_posix()
        out[stem] = out[Path(stem).name] = split.strip().lower()
    return out
