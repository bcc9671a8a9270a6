"""Find image tiles and their masks in a user's folder (or a list of pairs), with split, event and sensor.

Accepted layouts, mixed freely under one root ``SRC``::

    SRC/<...>/images/NAME.ext   + SRC/<...>/masks/NAME.ext        (any image/mask folder names below)
    SRC/<...>/NAME.ext          + SRC/<...>/NAME_mask.ext         (suffix or prefix _mask, _label, _gt, ...)
    LIST.csv with columns image,mask[,split,event,sensor] (paths relative to the list's folder),
    or a text file of ``IMAGE MASK [SPLIT]`` lines

Extensions may differ between an image and its mask (``a.jpg`` + ``a.png``). Each ``<...>``
folder is looked at: a split name (train, val, valid, validation, test, ...) gives the split, a
sensor name (uav, drone, planetscope, sentinel2, ...) the sensor, the first other part the
event (else the name of ``SRC``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from geoslide.errors import ConfigError, LabelError

TILE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".bmp")
IMAGE_DIRS = frozenset({"images", "image", "imgs", "img", "img_dir", "rgb", "tiles", "photos", "jpegimages"})
MASK_DIRS = frozenset({"masks", "mask", "labels", "label", "gt", "groundtruth", "ground_truth", "annotations",
                       "annotation", "ann_dir", "lbl", "segmentationclass"})
AUX_DIRS = frozenset({"dem", "dems", "slope", "elevation", "polygon", "polygons", "polygon_coordinate", "shp",
                      "vector", "vectors", "xml"})  # beside image and mask folders in released datasets: not tiles
MASK_TOKENS = ("mask", "masks", "label", "labels", "gt", "seg", "annotation", "lbl")
IMAGE_TOKENS = ("image", "img", "rgb", "sat")
SPLITS = {"train": "train", "training": "train", "trainset": "train", "train_set": "train", "traindata": "train",
          "val": "val", "valid": "val", "validation": "val", "validdata": "val", "val_set": "val", "dev": "val",
          "test": "test", "testing": "test", "testset": "test", "test_set": "test", "testdata": "test"}
SENSORS = {"uav": "uav", "drone": "uav", "planetscope": "planetscope", "planet": "planetscope",
           "sentinel2": "sentinel2", "sentinel-2": "sentinel2", "s2": "sentinel2", "landsat": "landsat",
           "aerial": "aerial", "orthophoto": "aerial", "gf-6": "gaofen6", "gf6": "gaofen6", "gf-2": "gaofen2",
           "gf2": "gaofen2", "mapworld": "mapworld", "map world": "mapworld", "google": "google", "spot": "spot"}
_TOKEN = re.compile(r"[_\-. ]+")


@dataclass(frozen=True)
class TileFile:
    """One image tile and its mask (None when masks are optional and this one has none)."""

    image: Path
    mask: Path | None
    name: str
    split: str = ""
    event: str = ""
    sensor: str = ""


def find_tiles(src: str | Path, *, masks: str = "required", event: str | None = None,
               sensor: str | None = None) -> list[TileFile]:
    """Every image tile under a folder, or listed in a CSV/text file, paired with its mask.

    Parameters
    ----------
    src
        A folder (see the module docstring for the layouts) or a list file.
    masks
        ``"required"``: an image without a mask (or a mask without an image) is an error;
        ``"optional"``: images may lack masks (``geoslide map --tiles``, or imports whose images
        without masks are all background); ``"skip"``: images without masks are left out.
    event, sensor
        Names for every tile instead of the folder names (defaults: the folder, ``"unknown"``).

    Returns
    -------
    list of TileFile
        Sorted by name.
    """
    root = Path(src)
    if not root.exists():
        raise ConfigError(f"{root} does not exist; pass a folder of image tiles (with masks) or a CSV of pairs")
    tiles = _listed(root) if root.is_file() else _scanned(root, masks)
    if masks == "skip":
        tiles = [t for t in tiles if t.mask is not None]
    if not tiles:
        raise ConfigError(f"no image tiles ({', '.join(TILE_SUFFIXES)}) found in {root}")
    if masks == "required" and (lacking := [t.image for t in tiles if t.mask is None]):
        raise LabelError(f"{len(lacking)} image(s) have no mask, e.g. {lacking[0]}; put masks beside them "
                         "(masks/NAME.png or NAME_mask.png), list the pairs in a CSV with columns image,mask, or "
                         "pass --unpaired skip (leave them out) or --unpaired background (no landslide in them)")
    return sorted((replace(t, event=event or t.event, sensor=sensor or t.sensor) for t in tiles),
                  key=lambda t: t.name)


def _scanned(root: Path, masks: str) -> list[TileFile]:
    images: dict[tuple, Path] = {}
    labels: dict[tuple, Path] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TILE_SUFFIXES):
        parts = path.relative_to(root).parent.parts
        if any(p.lower() in AUX_DIRS for p in parts):
            continue
        is_mask = any(p.lower() in MASK_DIRS for p in parts) or _stripped(path.stem, MASK_TOKENS) != path.stem
        key = (tuple(p.lower() for p in parts if p.lower() not in MASK_DIRS | IMAGE_DIRS),
               _stripped(path.stem, MASK_TOKENS if is_mask else IMAGE_TOKENS).lower())
        found = labels if is_mask else images
        if key in found:
            raise ConfigError(f"{path} and {found[key]} are the same tile in two formats; keep one")
        found[key] = path
    if masks == "required" and (orphans := sorted(set(labels) - set(images))):
        raise LabelError(f"{len(orphans)} mask(s) have no image, e.g. {labels[orphans[0]]}; name image and mask "
                         "alike (images/NAME.tif + masks/NAME.png, or NAME.tif + NAME_mask.png)")
    return [_tile(root, image, labels.get(key)) for key, image in images.items()]


def _stripped(stem: str, tokens: Sequence[str]) -> str:
    """``stem`` without one leading or trailing ``tokens`` word (``a_mask`` -> ``a``, ``mask_a`` -> ``a``)."""
    words = [w for w in _TOKEN.split(stem) if w]
    if len(words) > 1 and words[-1].lower() in tokens:
        return stem[: stem.lower().rfind(words[-1].lower())].rstrip("_-. ")
    if len(words) > 1 and words[0].lower() in tokens:
        return stem[len(words[0]):].lstrip("_-. ")
    return stem


def _tile(root: Path, image: Path, mask: Path | None, split: str = "") -> TileFile:
    parts = [p for p in image.relative_to(root).parent.parts if p.lower() not in IMAGE_DIRS | MASK_DIRS] \
        if image.is_relative_to(root) else []
    return TileFile(image=image, mask=mask, name=_name(root, image),
                    split=split or next((SPLITS[p.lower()] for p in parts if p.lower() in SPLITS), ""),
                    event=next((p for p in parts if p.lower() not in SPLITS and p.lower() not in SENSORS),
                               root.name if root.is_dir() else root.parent.name),
                    sensor=next((SENSORS[p.lower()] for p in parts if p.lower() in SENSORS), "unknown"))


def _name(root: Path, image: Path) -> str:
    base = root if root.is_dir() else root.parent
    return image.relative_to(base).with_suffix("").as_posix() if image.is_relative_to(base) else image.stem


def _listed(path: Path) -> list[TileFile]:
    """Pairs from a CSV with a header (image, mask[, split, event, sensor]) or ``IMAGE MASK [SPLIT]`` lines."""
    text = path.read_text().splitlines()
    header = next(csv.reader(text[:1]), [])
    if "image" in [h.strip().lower() for h in header]:
        rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                for row in csv.DictReader(text)]
    else:
        rows = [dict(zip(("image", "mask", "split"), line.split(), strict=False)) for line in text
                if line.strip() and not line.lstrip().startswith("#")]
    tiles = []
    for number, row in enumerate(rows, start=2 if header else 1):
        if not row.get("image"):
            raise ConfigError(f"{path}, line {number}: no image; give image,mask[,split] on every line")
        image = _resolve(path, row["image"], number)
        mask = _resolve(path, row["mask"], number) if row.get("mask") else None
        split = row.get("split", "")
        if split and split.lower() not in SPLITS:
            raise ConfigError(f"{path}, line {number}: split {split!r} is not train, val or test")
        tile = _tile(path.parent.resolve(), image, mask, SPLITS.get(split.lower(), ""))
        tiles.append(replace(tile, event=row.get("event") or tile.event, sensor=row.get("sensor") or tile.sensor))
    return tiles


def _resolve(listing: Path, name: str, number: int) -> Path:
    path = (listing.parent / name).resolve() if not Path(name).is_absolute() else Path(name)
    if not path.is_file():
        raise ConfigError(f"{listing}, line {number}: {name} does not exist (paths are relative to the list's folder)")
    return path
