"""GDCLD (Fang et al. 2024): 8-bit RGB tiles of 1024 x 1024 with binary landslide labels, nine earthquakes.

The paper fixes the content (RGB 8-bit, 1024 x 1024 tiles, labels rasterised with 1 = landslide,
train/val on five events, test on four) but not the folder names, so any tree of image/label
folder pairs is read::

    SRC/<...>/images/<name>.tif  (3 bands, RGB, 8-bit)    folder names: images, image, imgs, img
    SRC/<...>/labels/<name>.tif  (1 band, 0/1 or 0/255)   folder names: labels, label, masks, mask, gt

Each ``<...>`` part is looked at: a split name (train, val, valid, validation, test) gives the
split; a sensor name (UAV, PlanetScope, Map World, GF-6) the sensor; the first other part the
event (``Luding/train/images`` and ``train/Luding/images`` both work). The ``event`` and ``sensor``
arguments win over the folder names; the defaults are ``"gdcld"`` and ``"mixed"``. Georeferenced
tiles keep their CRS, bounds and pixel size (in metres); others get ``""``, NaN bounds and NaN
resolution. Pixel values are kept as released (0-255).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Geod
from rasterio.errors import NotGeoreferencedWarning

from geoslide.data.importers._common import ImportPlan, binary_mask, meta_rows, split_of
from geoslide.errors import ConfigError, LabelError, PatchStoreError

BANDS = ("red", "green", "blue")
IMAGE_DIRS = ("images", "image", "imgs", "img")
LABEL_DIRS = ("labels", "label", "masks", "mask", "gt")
SUFFIXES = (".tif", ".tiff")
_GEO_KEYS = ("crs", "resolution", "xmin", "ymin", "xmax", "ymax")
SENSORS = {"uav": "uav", "planetscope": "planetscope", "planet": "planetscope", "mapworld": "mapworld",
           "map world": "mapworld", "map_world": "mapworld", "gf-6": "gaofen6", "gf6": "gaofen6",
           "gaofen-6": "gaofen6", "gaofen6": "gaofen6"}


def plan(src: str | Path, *, event: str | None = None, sensor: str | None = None) -> ImportPlan:
    """Scan a GDCLD folder tree into an import plan.

    Parameters
    ----------
    src : str or pathlib.Path
        Root of the tree holding ``images``/``labels`` folder pairs.
    event, sensor : str, optional
        Event and sensor for every tile (default: from the folder names, else ``"gdcld"``, ``"mixed"``).

    Returns
    -------
    ImportPlan
        Every tile with its label; georeferencing read from the TIFF headers.
    """
    root = Path(src)
    if not root.is_dir():
        raise ConfigError(f"GDCLD folder {root} does not exist; pass the folder holding the images/labels folders")
    pairs = _pairs(root)
    headers = [_header(image) for image, _ in pairs]
    size = headers[0]["size"]
    for (image, _), head in zip(pairs, headers, strict=True):
        if head["size"] != size:
            raise PatchStoreError(f"{image} is {head['size']}x{head['size']}, other tiles {size}x{size}; "
                                  f"tiles must share one size")
    parts = [image.relative_to(root).parent.parent.parts for image, _ in pairs]
    meta = meta_rows(len(pairs), split=[_split(p) for p in parts], event=[event or _event(p) for p in parts],
                     sensor=[sensor or _sensor(p) for p in parts], trigger="earthquake",
                     item_id=[image.relative_to(root).with_suffix("").as_posix() for image, _ in pairs],
                     **{key: [h[key] for h in headers] for key in _GEO_KEYS})
    return ImportPlan(BANDS, size, meta, lambda idx: _read_images(pairs, idx, size),
                      lambda idx: _read_masks(pairs, idx, size))


def _pairs(root: Path) -> list[tuple[Path, Path]]:
    image_dirs = sorted(d for d in root.rglob("*") if d.is_dir() and d.name.lower() in IMAGE_DIRS)
    if root.name.lower() in IMAGE_DIRS:
        image_dirs.insert(0, root)
    pairs = []
    for folder in image_dirs:
        labels = next((d for d in folder.parent.iterdir() if d.is_dir() and d.name.lower() in LABEL_DIRS), None)
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
        if images and labels is None:
            raise LabelError(f"{folder} has no label folder beside it ({'/'.join(LABEL_DIRS)}); add the labels")
        by_stem = {p.stem: p for p in labels.iterdir() if p.suffix.lower() in SUFFIXES} if images else {}
        for image in images:
            if image.stem not in by_stem:
                raise LabelError(f"{image} has no label {labels}/{image.stem}.tif; add it or remove the image")
            pairs.append((image, by_stem[image.stem]))
    if not pairs:
        raise ConfigError(f"no GDCLD tiles (*.tif in an images/ folder beside a labels/ folder) under {root}")
    return pairs


def _header(path: Path) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            with rasterio.open(path) as ds:
                if ds.count != len(BANDS) or ds.width != ds.height:
                    raise PatchStoreError(f"{path} has {ds.count} band(s) of {ds.width}x{ds.height}; GDCLD tiles are "
                                          f"square RGB ({len(BANDS)} bands)")
                head = {"size": ds.width, "crs": "", "resolution": np.nan, "xmin": np.nan, "ymin": np.nan,
                        "xmax": np.nan, "ymax": np.nan}
                if ds.crs is not None and not ds.transform.is_identity:
                    head |= dict(zip(("xmin", "ymin", "xmax", "ymax"), ds.bounds, strict=True))
                    head |= {"crs": ds.crs.to_string(), "resolution": _metres_per_pixel(ds)}
                return head
        except rasterio.errors.RasterioIOError as err:
            raise ConfigError(f"{path} is not a readable TIFF ({err}); re-download it") from err


def _metres_per_pixel(ds) -> float:
    """Pixel width in metres: the transform's, or along the tile's central parallel for degrees."""
    if ds.crs.is_projected:
        return abs(ds.transform.a) * ds.crs.linear_units_factor[1]
    geod = Geod(ellps="WGS84")
    (x0, y0), (x1, _) = ds.xy(ds.height // 2, 0), ds.xy(ds.height // 2, 1)
    return abs(geod.inv(x0, y0, x1, y0)[2])


def _split(parts: Sequence[str]) -> str:
    return next((s for p in parts if (s := split_of(p))), "")


def _sensor(parts: Sequence[str]) -> str:
    return next((SENSORS[p.lower()] for p in parts if p.lower() in SENSORS), "mixed")


def _event(parts: Sequence[str]) -> str:
    return next((p for p in parts if not split_of(p) and p.lower() not in SENSORS), "gdcld")


def _read(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            return ds.read()


def _read_images(pairs: list[tuple[Path, Path]], index: Sequence[int], size: int) -> np.ndarray:
    out = np.empty((len(index), len(BANDS), size, size), dtype=np.float32)
    for k, i in enumerate(index):
        out[k] = _read(pairs[i][0])
    return out


def _read_masks(pairs: list[tuple[Path, Path]], index: Sequence[int], size: int) -> np.ndarray:
    out = np.empty((len(index), size, size), dtype=np.uint8)
    for k, i in enumerate(index):
        path = pairs[i][1]
        values = _read(path)
        if values.shape != (1, size, size):
            raise PatchStoreError(f"{path} has shape {values.shape}, expected one band of {size}x{size} "
                                  f"like its image")
        out[k] = binary_mask(values[0], str(path), allow_255=True)
    return out
