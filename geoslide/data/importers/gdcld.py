"""GDCLD (Fang et al. 2024): multi-source RGB images of nine earthquakes with landslide labels.

Two layouts are read. The Zenodo release (10.5281/zenodo.13612636), as loaders of its files
describe it::

    SRC/train_data/<name>.tif   SRC/train_label/<name>.tif    1024 x 1024 tiles, five events
    SRC/val_data/...            SRC/val_label/...              (train : val = 3 : 1)
    SRC/test_data/<event>/...   SRC/test_label/<event>/...     whole scenes of four unseen events

and any tree of ``images``/``labels`` folder pairs (``Luding/train/UAV/images/x.tif``...). ``SRC``
may be the download or any folder inside it (``.../test_data/Palu``): split, event and sensor come
from the path (``<split>_data``, the ``test_data/<event>`` folder, event and sensor names in folder
or file names such as ``Luding_UAV_12``), and the ``event``/``sensor`` options win over them.
Events are named as in the paper's Table 3 in lower case (``nippes`` is ``haiti``, ``iburi``
``hokkaido``); a single-source event gets its sensor from Table 3. Names that cannot be found
are ``gdcld`` and ``mixed``, with a warning.

Images have 3 bands (RGB) or 4 (RGB + alpha: alpha 0 is nodata); images of any size are cut
into ``patch_size`` (default 1024, the paper's) patches, edge patches padded with nodata, each
with its pixel ``row``/``col`` in the scene. Labels one pixel larger than their image are cropped
(with a warning). Label codes of the Zenodo release: 0 background, 1 landslide, 255 nodata
(PaddleSeg's ignore index, the paper's code base), 85 nodata: neither the paper nor the release
defines 85, so its pixels are ignored and counted in a warning; ``label_codes`` (``85=1``) changes
that. Generic layouts keep 0/1 or 0/255 (255 = landslide) labels.

Units: the paper converted every source to 8-bit RGB. 8-bit images are stored as released
(units ``dn8``); ``to_8bit`` stretches any other image linearly between its 2nd and 98th
percentile per band to 0-255 (the paper does not say how it converted), so one normalisation fits
every source. Georeferenced images keep their CRS, bounds and pixel size (in metres).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from geoslide.data.importers._common import ImportOptions, ImportPlan, meta_rows, split_of, warn
from geoslide.data.importers._rasters import (
    Header,
    LabelCodes,
    RasterPair,
    check_label,
    geo_columns,
    match_labels,
    pair_tiles,
    read_header,
    read_label_tile,
    read_tile,
    stretch_limits,
    tile_geo,
)
from geoslide.errors import ConfigError, LabelError

BANDS = ("red", "green", "blue")
PATCH_SIZE = 1024
IMAGE_DIRS = ("images", "image", "imgs", "img")
LABEL_DIRS = ("labels", "label", "masks", "mask", "gt")
SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
SIDECARS = (".xml", ".tfw", ".pgw", ".jgw", ".wld", ".ovr", ".prj", ".aux")
SENSORS = {"uav": "uav", "planetscope": "planetscope", "planet": "planetscope",
           "mapworld": "mapworld", "map world": "mapworld", "map_world": "mapworld", "tianditu": "mapworld",
           "gf-6": "gaofen6", "gf6": "gaofen6", "gaofen-6": "gaofen6", "gaofen6": "gaofen6"}
EVENTS = {"jiuzhaigou": "jiuzhaigou", "mainling": "mainling", "milin": "mainling", "hokkaido": "hokkaido",
          "iburi": "hokkaido", "palu": "palu", "mesetas": "mesetas", "mestas": "mesetas", "haiti": "haiti",
          "nippes": "haiti", "sumatra": "sumatra", "lushan": "lushan", "luding": "luding"}
#: Events with one source in the paper's Table 3.
EVENT_SENSORS = {"mainling": "planetscope", "palu": "mapworld", "mesetas": "planetscope", "sumatra": "planetscope"}
ZENODO_CODES = {0: 0, 1: 1, 85: 255, 255: 255}
LAYOUTS = ("train_data/ + train_label/, val_data/ + val_label/, test_data/<event>/ + test_label/<event>/ "
           "(Zenodo release) or images/ + labels/ folder pairs")
_DATA = re.compile(r"^(train|val|test)_data$", re.IGNORECASE)
_TOKEN = re.compile(r"[_\-\s.]+")


def plan(src: Path, options: ImportOptions) -> ImportPlan:
    """Scan a GDCLD download (or a folder inside it) into an import plan.

    Parameters
    ----------
    src : pathlib.Path
        The download, a ``<split>_data`` folder, a ``test_data/<event>`` folder, or a tree of
        ``images``/``labels`` folder pairs.
    options : ImportOptions
        ``event``, ``sensor``, ``label_codes``, ``patch_size``, ``to_8bit``.

    Returns
    -------
    ImportPlan
        Every patch of every image with its label window; georeferencing from the image headers.
    """
    if not src.is_dir():
        raise ConfigError(f"GDCLD folder {src} does not exist; pass the folder holding {LAYOUTS}")
    if options.patch_size is not None and options.patch_size < 1:
        raise ConfigError(f"--patch-size must be a positive number of pixels, got {options.patch_size}")
    zenodo = _zenodo_pairs(src)
    pairs = zenodo if zenodo is not None else _generic_pairs(src)
    if not pairs:
        raise ConfigError(f"no GDCLD images under {src}; GDCLD layouts: {LAYOUTS}")
    pairs = _named(pairs, options)
    headers = [read_header(p.image) for p in pairs]
    if cropped := sum(check_label(p, h) for p, h in zip(pairs, headers, strict=True)):
        warn(f"{cropped} GDCLD label(s) are one pixel larger than their image; the extra row/column is dropped")
    size = options.patch_size or _default_size(headers, zenodo is not None)
    tiles = [(i, r, c) for i, h in enumerate(headers) for r, c in pair_tiles(h, size)]
    units, stretch = _units(pairs, headers, options.to_8bit)
    codes = _codes(options.label_codes, zenodo is not None)
    meta = meta_rows(len(tiles), split=[pairs[i].split for i, _, _ in tiles],
                     event=[pairs[i].event for i, _, _ in tiles], sensor=[pairs[i].sensor for i, _, _ in tiles],
                     trigger="earthquake", row=[r for _, r, _ in tiles], col=[c for _, _, c in tiles],
                     item_id=[pairs[i].item for i, _, _ in tiles],
                     **_geo([tile_geo(headers[i], r, c, size) for i, r, c in tiles]))
    return ImportPlan(BANDS, size, meta, lambda idx: _images(pairs, headers, tiles, idx, size, stretch),
                      lambda idx: _masks(pairs, headers, tiles, idx, size, codes), units=units,
                      after_check=lambda: _report_codes(codes))


def _zenodo_pairs(src: Path) -> list[RasterPair] | None:
    """The pairs of the Zenodo layout at, above or below ``src``; None if ``src`` is not in that layout."""
    if any(d.is_dir() and _DATA.match(d.name) for d in src.iterdir()):
        roots = sorted(d for d in src.iterdir() if d.is_dir() and _DATA.match(d.name))
        if other := sorted(d.name for d in src.iterdir() if d.is_dir() and not _DATA.match(d.name)
                           and not d.name.lower().endswith("_label")):
            warn(f"{src}: folder(s) {other} are not GDCLD train/val/test folders and are not imported")
        return [p for root in roots for p in _under(root, root)]
    anchor = next((a for a in (src, *src.parents) if _DATA.match(a.name)), None)
    return None if anchor is None else _under(src, anchor)


def _under(folder: Path, anchor: Path) -> list[RasterPair]:
    """The pairs of the images under ``folder``, inside the ``<split>_data`` folder ``anchor``."""
    split = split_of(_DATA.match(anchor.name).group(1)) or ""
    label_root = anchor.parent / f"{anchor.name[: -len('_data')]}_label"
    images = _rasters(folder)
    pairs = []
    for parent in sorted({p.parent for p in images}):
        group = [p for p in images if p.parent == parent]
        labels = match_labels(group, label_root / parent.relative_to(anchor), SUFFIXES)
        for image in group:
            parts = image.relative_to(anchor).parts
            event = parts[0] if split == "test" and len(parts) > 1 else ""
            item = image.relative_to(anchor.parent).with_suffix("").as_posix()
            pairs.append(RasterPair(image, labels[image], split, event, "", item))
    return pairs


def _rasters(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    images = [p for p in files if p.suffix.lower() in SUFFIXES]
    if other := [p for p in files if p.suffix.lower() not in SUFFIXES + SIDECARS]:
        warn(f"{folder}: {len(other)} file(s) that are not images ({'/'.join(SUFFIXES)}) are not imported "
             f"(e.g. {other[0].name})")
    return images


def _generic_pairs(root: Path) -> list[RasterPair]:
    image_dirs = sorted(d for d in root.rglob("*") if d.is_dir() and d.name.lower() in IMAGE_DIRS)
    if root.name.lower() in IMAGE_DIRS:
        image_dirs.insert(0, root)
    pairs = []
    for folder in image_dirs:
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
        labels = next((d for d in folder.parent.iterdir() if d.is_dir() and d.name.lower() in LABEL_DIRS), None)
        if images and labels is None:
            raise LabelError(f"{folder} has no label folder beside it ({'/'.join(LABEL_DIRS)}); add the labels")
        parts = folder.relative_to(root).parent.parts if folder != root else ()
        split = next((s for p in parts if (s := split_of(p))), "")
        event = next((p for p in parts if not split_of(p) and p.lower() not in SENSORS), "")
        sensor = next((SENSORS[p.lower()] for p in parts if p.lower() in SENSORS), "")
        pairs += [RasterPair(image, label, split, event, sensor, image.relative_to(root).with_suffix("").as_posix())
                  for image, label in match_labels(images, labels, SUFFIXES).items()] if images else []
    return pairs


def _named(pairs: list[RasterPair], options: ImportOptions) -> list[RasterPair]:
    """Event and sensor of every pair: options, else the path, else Table 3, else a default with a warning."""
    out = []
    for pair in pairs:
        tokens = [t.lower() for part in pair.item.split("/") for t in _TOKEN.split(part)]
        event = options.event or _canonical(pair.event) or next((EVENTS[t] for t in tokens if t in EVENTS), "")
        sensor = options.sensor or pair.sensor or next((SENSORS[t] for t in tokens if t in SENSORS), "")
        out.append(replace(pair, event=event, sensor=sensor or EVENT_SENSORS.get(event, "")))
    for key, default in (("event", "gdcld"), ("sensor", "mixed")):
        if missing := sum(not getattr(p, key) for p in out):
            warn(f"{missing} GDCLD image(s) name no {key} in their path; they get {key} {default!r} (give --{key})")
            out = [replace(p, **{key: getattr(p, key) or default}) for p in out]
    return out


def _canonical(name: str) -> str:
    return EVENTS.get(name.lower(), name) if name else ""


def _default_size(headers: Sequence[Header], zenodo: bool) -> int:
    sizes = {(h.width, h.height) for h in headers}
    if not zenodo and len(sizes) == 1 and (size := sizes.pop())[0] == size[1]:
        return size[0]  # a generic layout of equal square tiles keeps its tiles whole
    return PATCH_SIZE


def _units(pairs: Sequence[RasterPair], headers: Sequence[Header], to_8bit: bool
           ) -> tuple[tuple[str, ...], list[np.ndarray | None]]:
    """The store's units, and per image the 8-bit stretch limits (None: kept as released)."""
    eight = [h.dtype == "uint8" for h in headers]
    if to_8bit:
        return ("dn8",) * len(BANDS), [None if e else stretch_limits(p.image, h)
                                       for p, h, e in zip(pairs, headers, eight, strict=True)]
    kinds = {("dn8" if e else f"dn ({h.dtype})") for e, h in zip(eight, headers, strict=True)}
    if len(kinds) > 1:
        warn(f"GDCLD images mix value ranges {sorted(kinds)}; one normalisation cannot fit them all: use --to-8bit "
             "to convert every source to 8 bits as the paper did")
    unit = kinds.pop() if len(kinds) == 1 else "mixed"
    return (unit,) * len(BANDS), [None] * len(headers)


def _codes(explicit: Sequence[tuple[int, int]] | None, zenodo: bool) -> LabelCodes:
    for value, cls in explicit or ():
        if cls not in (0, 1, 255):
            raise ConfigError(f"--label-codes {value}={cls}: a class is 0 (background), 1 (landslide) or 255 (nodata)")
    if zenodo:
        return LabelCodes(ZENODO_CODES | dict(explicit or ()))
    return LabelCodes({0: 0, 1: 1} | dict(explicit)) if explicit else LabelCodes({}, binary=True)


def _report_codes(codes: LabelCodes) -> None:
    codes.counting = False
    total = sum(codes.seen.values())
    ignored = {v: n for v, n in sorted(codes.seen.items()) if codes.codes.get(v) == 255}
    if ignored and total:
        share = ", ".join(f"{n} of code {v} ({100 * n / total:.3g}%)" for v, n in ignored.items())
        warn(f"GDCLD labels hold {share} pixels, imported as nodata (ignored by training and scores); "
             "85 is not defined by the paper or the release: --label-codes 85=1 counts it as landslide")
    if total and not any(codes.codes.get(v) == 1 for v in codes.seen) and ignored:
        warn("no GDCLD label pixel is a landslide (1); if 255 marks landslides in these labels, give "
             "--label-codes 255=1")


def _geo(geos: list[dict]) -> dict:
    rows = [geo_columns(g) for g in geos]
    return {key: [r[key] for r in rows] for key in ("crs", "resolution", "xmin", "ymin", "xmax", "ymax")}


def _images(pairs, headers, tiles, index: Sequence[int], size: int, stretch) -> np.ndarray:
    out = np.empty((len(index), len(BANDS), size, size), np.float32)
    for k, t in enumerate(index):
        i, row, col = tiles[t]
        out[k] = read_tile(pairs[i], headers[i], row, col, size, stretch[i])
    return out


def _masks(pairs, headers, tiles, index: Sequence[int], size: int, codes: LabelCodes) -> np.ndarray:
    out = np.empty((len(index), size, size), np.uint8)
    for k, t in enumerate(index):
        i, row, col = tiles[t]
        valid = np.ones((size, size), bool)
        if headers[i].alpha or headers[i].nodata is not None:
            valid = np.isfinite(read_tile(pairs[i], headers[i], row, col, size, None)).all(axis=0)
        out[k] = read_label_tile(pairs[i], headers[i], row, col, size, codes, valid)
    return out
