"""HR-GLDD (Meena et al. 2023): numpy arrays of PlanetScope 3 m patches with 0/1 masks.

Layout (the authors' repository: ``np.load('data/arrays/trainX.npy')`` ... ``testY.npy``)::

    SRC/trainX.npy  (n, 128, 128, 4) image patches, bands R, G, B, NIR (channels last)
    SRC/trainY.npy  (n, 128, 128[, 1]) masks, 1 = landslide, 0 = background
    SRC/valX.npy, valY.npy, testX.npy, testY.npy

File names are matched loosely: ``trainX``, ``train_X``, ``X_train``, ``Xtrain`` (any case; ``val``,
``valid`` or ``validation``), optionally behind a prefix (``kodagu_trainX.npy``), which then names
the event. A ``.npy`` file whose name has no split word is not imported, with a warning.
Channels-first arrays ``(n, 4, 128, 128)`` are accepted too. Arrays are memory-mapped, so only one
batch is in memory at a time.

What the release does not document, the user may say:

- the channel order (``options.channels``): the arrays' channels are known only as green = 1 and
  NIR = 3; the default reads them as red, green, blue, NIR (the order of PlanetScope's 4-band
  product is blue, green, red, NIR, so ``channels=("blue", "green", "red", "nir")`` is the other
  reading). The store's bands are always ``red, green, blue, nir``.
- the site of every patch (``options.sites``): a CSV table with columns ``first``, ``last``
  (0-based patch indices, both included), ``site`` and either ``split`` (train/val/test) or
  ``file`` (the X array's file name). The site becomes the patch's event, so per-site tables and
  unseen-event tests can be made; patches no row covers keep the default event, with a warning.

Values are kept as released (scaled reflectance); the store records ``reflectance`` when the values
are at most 2, else ``reflectance*10000``. The patches are not georeferenced: ``crs`` is empty and
the bounds are NaN.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from geoslide.data.importers._common import ImportOptions, ImportPlan, binary_mask, meta_rows, split_of, warn
from geoslide.errors import ConfigError, LabelError, PatchStoreError

BANDS = ("red", "green", "blue", "nir")
_SPLIT = r"train|training|val|valid|validation|test|testing"
_NAME = re.compile(rf"^(?:(?P<prefix>.+?)[_-])?"
                   rf"(?:(?P<s1>{_SPLIT})[_-]?(?P<k1>[xy])|(?P<k2>[xy])[_-]?(?P<s2>{_SPLIT}))$", re.IGNORECASE)


@dataclass(frozen=True)
class _Part:
    """One X/Y pair of arrays: images as (n, band, size, size) views, masks as (n, size, size)."""

    x_path: Path
    y_path: Path
    images: np.ndarray
    masks: np.ndarray
    split: str
    prefix: str


def plan(src: Path, options: ImportOptions) -> ImportPlan:
    """Scan an HR-GLDD folder of ``.npy`` arrays into an import plan.

    Parameters
    ----------
    src : pathlib.Path
        Folder holding the arrays (searched recursively).
    options : ImportOptions
        ``event`` (default: the file-name prefix, else ``"hr-gldd"``; a site table wins over it),
        ``sensor`` (default ``"planetscope"``), ``channels``, ``sites``.

    Returns
    -------
    ImportPlan
        Every patch of every split, in file order (train, val, test).
    """
    if not src.is_dir():
        raise ConfigError(f"HR-GLDD folder {src} does not exist; pass the folder holding trainX.npy/trainY.npy")
    order = _channel_order(options.channels)
    parts = [_load_part(x, y, split, prefix) for (split, prefix), (x, y) in _find_pairs(src).items()]
    sizes = {p.images.shape[-1] for p in parts}
    if len(sizes) > 1:
        raise PatchStoreError(f"HR-GLDD arrays under {src} mix patch sizes {sorted(sizes)}; import them separately")
    offsets = np.cumsum([0] + [len(p.images) for p in parts])
    frames = [meta_rows(len(p.images), event=options.event or p.prefix or "hr-gldd",
                        sensor=options.sensor or "planetscope", split=p.split,
                        item_id=[f"{p.x_path.name}:{i}" for i in range(len(p.images))], resolution=3.0)
              for p in parts]
    meta = pd.concat(frames, ignore_index=True)
    if options.sites is not None:
        meta["event"] = _site_events(Path(options.sites), parts, offsets, meta["event"].to_numpy())
    units = _units(parts)
    return ImportPlan(BANDS, sizes.pop(), meta, lambda idx: _gather(parts, offsets, idx, True)[:, order],
                      lambda idx: _gather(parts, offsets, idx, False), units=units)


def _units(parts: list[_Part]) -> tuple[str, ...]:
    """``reflectance`` when the first patch's values are at most 2, else ``reflectance*10000``."""
    first = next((p.images[:1] for p in parts if len(p.images)), np.zeros(1))
    return ("reflectance",) * len(BANDS) if float(np.nanmax(first)) <= 2 else ("reflectance*10000",) * len(BANDS)


def _channel_order(channels: Sequence[str] | None) -> list[int]:
    """For each store band (red, green, blue, nir), the channel of the arrays holding it."""
    channels = tuple(c.lower() for c in channels) if channels else BANDS
    if sorted(channels) != sorted(BANDS):
        raise ConfigError(f"--channels {list(channels)} must name each of {', '.join(BANDS)} once, in the arrays' "
                          "channel order (default red green blue nir)")
    if channels[1] != "green" or channels[3] != "nir":
        warn(f"--channels {list(channels)} puts green or nir elsewhere than channel 1 and 3, which is all the "
             "HR-GLDD release is known to say about its channels")
    return [channels.index(band) for band in BANDS]


def _site_events(table: Path, parts: list[_Part], offsets: np.ndarray, events: np.ndarray) -> np.ndarray:
    """The event of every patch after the site table ``table`` (see the module notes)."""
    try:
        rows = pd.read_csv(table, dtype={"site": str, "split": str, "file": str})
    except (OSError, ValueError) as err:
        raise ConfigError(f"site table {table} cannot be read ({err}); give a CSV with first,last,site,split") from err
    if not {"first", "last", "site"} <= set(rows.columns) or not {"split", "file"} & set(rows.columns):
        raise ConfigError(f"site table {table} has columns {list(rows.columns)}; it needs first, last, site and "
                          "split (train/val/test) or file (the X array's name)")
    events, covered = events.copy(), np.zeros(len(events), bool)
    for n, row in enumerate(rows.itertuples(index=False), start=2):
        p = _part_of(row, parts, table, n)
        first, last = int(row.first), int(row.last)
        if not 0 <= first <= last < len(parts[p].images):
            raise ConfigError(f"{table} line {n}: patches {first}-{last} are outside the {len(parts[p].images)} "
                              f"patches of {parts[p].x_path.name} (indices 0-based, last included)")
        span = slice(offsets[p] + first, offsets[p] + last + 1)
        if covered[span].any():
            raise ConfigError(f"{table} line {n}: patches {first}-{last} of {parts[p].x_path.name} are already "
                              "given a site by an earlier line")
        events[span], covered[span] = str(row.site), True
    if not covered.all():
        warn(f"site table {table} covers {covered.sum()} of {len(covered)} patches; the other "
             f"{(~covered).sum()} keep the event {sorted(set(events[~covered]))}")
    return events


def _part_of(row, parts: list[_Part], table: Path, line: int) -> int:
    file = getattr(row, "file", None)
    if isinstance(file, str) and file:
        found = [i for i, p in enumerate(parts) if p.x_path.name in (file, f"{file}.npy")]
        what = f"file {file!r}"
    else:
        split = split_of(str(getattr(row, "split", "")))
        found = [i for i, p in enumerate(parts) if p.split == split]
        what = f"split {getattr(row, 'split', '')!r}"
    if len(found) != 1:
        names = [p.x_path.name for p in parts]
        raise ConfigError(f"{table} line {line}: {what} matches {len(found)} of the arrays {names}; name one "
                          "(column file for arrays with a prefix)")
    return found[0]


def _find_pairs(root: Path) -> dict[tuple[str, str], tuple[Path, Path]]:
    found: dict[tuple[str, str, str], Path] = {}
    for path in sorted(root.rglob("*.npy")):
        match = _NAME.match(path.stem)
        if match is None:
            warn(f"{path.name} has no split word (trainX, valY, X_test, ...) in its name; it is not imported, "
                 "rename it to import it")
            continue
        split = split_of(match["s1"] or match["s2"])
        kind = (match["k1"] or match["k2"]).lower()
        key = (split, match["prefix"] or "", kind)
        if key in found:
            raise ConfigError(f"two {kind.upper()} arrays for split {split!r}: {found[key]} and {path}; keep one")
        found[key] = path
    if not found:
        raise ConfigError(f"no HR-GLDD arrays (trainX.npy, trainY.npy, ...) under {root}")
    order = {"train": 0, "val": 1, "test": 2}
    pairs = {}
    for split, prefix, kind in sorted(found, key=lambda k: (k[1], order[k[0]], k[2])):
        if kind == "x":
            y = found.get((split, prefix, "y"))
            if y is None:
                raise LabelError(f"{found[(split, prefix, 'x')]} has no mask array (Y) beside it; add it")
            pairs[(split, prefix)] = (found[(split, prefix, "x")], y)
        elif (split, prefix, "x") not in found:
            raise ConfigError(f"{found[(split, prefix, 'y')]} has no image array (X) beside it; add it")
    return pairs


def _load_part(x_path: Path, y_path: Path, split: str, prefix: str) -> _Part:
    raw = _open(x_path)
    if raw.ndim == 4 and raw.shape[3] == len(BANDS) and raw.shape[1] == raw.shape[2]:
        images = np.moveaxis(raw, -1, 1)  # channels last -> first, a view of the memory map
    elif raw.ndim == 4 and raw.shape[1] == len(BANDS) and raw.shape[2] == raw.shape[3]:
        images = raw
    else:
        raise PatchStoreError(f"{x_path}: array of shape {raw.shape} is not n square patches of "
                              f"{len(BANDS)} bands (R, G, B, NIR), e.g. (n, 128, 128, 4)")
    raw = _open(y_path)
    masks, size = raw, images.shape[-1]
    if raw.ndim == 4 and 1 in (raw.shape[1], raw.shape[3]):
        masks = raw[:, 0] if raw.shape[1] == 1 else raw[..., 0]
    if masks.shape != (len(images), size, size):
        raise PatchStoreError(f"{y_path}: masks of shape {raw.shape} do not match the "
                              f"{len(images)} patches of {size}x{size} in {x_path.name}")
    return _Part(x_path, y_path, images, masks, split, prefix)


def _open(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path} is not a readable .npy array ({err}); re-download it") from err


def _gather(parts: list[_Part], offsets: np.ndarray, index: Sequence[int], images: bool) -> np.ndarray:
    chunks = []
    index = np.asarray(index)
    for p, part in enumerate(parts):
        local = index[(index >= offsets[p]) & (index < offsets[p + 1])] - offsets[p]
        if local.size == 0:
            continue
        if images:
            chunks.append(np.asarray(part.images[local], dtype=np.float32))
        else:
            where = f"{part.y_path} (patches {local.min()}-{local.max()})"
            chunks.append(binary_mask(np.asarray(part.masks[local]), where))
    return np.concatenate(chunks)
