"""Is the imagery what the model was trained on? Values, units and pixel size, checked before mapping.

A model trained on reflectance (0-1) maps 8-bit values (0-255) as noise, and one trained at 3 m
misses most landslides at 10 m: both give a map that looks valid. The first item is sampled from
its overviews (a few hundred pixels a side) and compared with the model card: values far from the
card's normalisation are refused, a pixel size outside the training range is warned about. A
model normalised per scene (``normalise: brightness`` or ``scene``) takes any units: the same
sample gives it the imagery's own brightness or per-band statistics instead (:func:`fit_to_scene`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pystac
import rasterio
from pyproj import CRS
from rasterio.errors import RasterioError

from geoslide.errors import BandError, GeoslideWarning, GridError, StorageError
from geoslide.fileio import gdal_path
from geoslide.models.card import ModelCard, ResolvedModel
from geoslide.models.choice import RESOLUTION_SLACK, training_range
from geoslide.models.normalise import Normalisation, for_scene
from geoslide.raster.derived import is_derived
from geoslide.raster.items import parse_items

SAMPLE_SIDE = 256
"""Pixels on the longer side of the sample read from each band."""
FAR = 8.0
"""Input medians this many times above or below the card's means (typically, over bands) are refused."""


def item_resolution(items: Sequence[pystac.Item]) -> float | None:
    """Pixel size of the first item's first band in metres (degrees taken at the equator; None if not declared)."""
    record = parse_items(items[:1])[0]
    refs = list(record.bands.values())
    transform = refs[0].transform if refs else None
    if not transform:
        return None
    size = abs(float(transform[0]))
    geographic = record.epsg is not None and CRS.from_epsg(record.epsg).is_geographic
    return size * 111_320.0 if geographic else size


def sample_bands(items: Sequence[pystac.Item], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Valid physical values (after ``raster:scale``/``offset``) of ``names`` in the first item, from overviews."""
    record = parse_items(items[:1])[0]
    out = {}
    for name, ref in zip(names, record.select(list(names)), strict=True):
        try:
            with rasterio.open(gdal_path(ref.href)) as ds:
                step = max(1.0, max(ds.height, ds.width) / SAMPLE_SIDE)
                shape = (max(1, round(ds.height / step)), max(1, round(ds.width / step)))
                data = ds.read(ref.index, out_shape=shape, masked=True)
        except RasterioError as exc:
            raise StorageError(f"cannot read band {name!r} of item {record.id} ({ref.href}): "
                               f"{str(exc).splitlines()[0]}") from None
        values = data.compressed().astype("float64")
        if ref.nodata is not None:
            values = values[values != ref.nodata]
        out[name] = values * (ref.scale or 1.0) + (ref.offset or 0.0)
    return out


STAC_UNITS_FIX = "declare raster:scale/raster:offset in the items, or pass a model trained on such values with --model"
"""How to fix imagery in other units than a model's, for STAC items."""


def check_values(sample: dict[str, np.ndarray], card: ModelCard, model: str, fix: str = STAC_UNITS_FIX) -> None:
    """Refuse imagery whose values are far (:data:`FAR` times) from those the model was trained on (``fix``: how)."""
    ratios = []
    for band, mean, values in ((b, m, sample.get(b)) for b, m in zip(card.bands, card.mean, strict=True)):
        if values is not None and values.size and mean > 0 and np.median(values) > 0:
            ratios.append((math.log(float(np.median(values)) / mean), band, float(np.median(values)), mean))
    if not ratios:
        return
    ratios.sort()
    log_ratio, band, median, mean = ratios[len(ratios) // 2]
    if abs(log_ratio) > math.log(FAR):
        raise BandError(f"the imagery's values look like {_kind(median)} (median {median:.3g} in {band}) but {model} "
                        f"was trained on {_kind(mean)} (mean {mean:.3g}): {fix}")


def fit_to_scene(model: ResolvedModel, sample: dict[str, np.ndarray], names: Sequence[str], note: str
                 ) -> ResolvedModel:
    """The model ready for this imagery: scene-normalised cards take the sample's statistics, fixed ones are checked.

    Parameters
    ----------
    model
        The resolved model.
    sample
        Values of the item bands (:func:`sample_bands`), keyed by item band name.
    names
        The item band read for each of the card's bands, in the card's order (:func:`read_bands`).
    note
        How the model is named in messages.
    """
    card = model.card
    if card.normalise == "fixed":
        check_values({b: sample[n] for b, n in zip(card.bands, names, strict=True) if n in sample}, card, note)
        return model
    values = [sample[n] if n in sample and sample[n].size else None for n in names]
    norm = for_scene(Normalisation(card.mean, card.std), card.normalise, values)
    return replace(model, card=replace(card, mean=norm.mean, std=norm.std))


def check_resolution(resolution: float | None, card: ModelCard, model: str) -> None:
    """Warn (one line) when ``resolution`` is outside the model's training range."""
    span = training_range(card)
    if resolution is None or span is None:
        return
    lo, hi = span
    if resolution < lo / RESOLUTION_SLACK or resolution > hi * RESOLUTION_SLACK:
        warnings.warn(f"the imagery's {resolution:g} m pixels are outside {model}'s training range "
                      f"({lo:.3g}-{hi:.3g} m): landslides may be missed or over-mapped; "
                      "--resolution model resamples to it", GeoslideWarning, stacklevel=3)


MAX_REFINE = 16
"""Imagery is mapped at most this many times finer than its own pixels."""


def check_target_size(target: float, metres: float, native: float, extent: float, pixels: str, whole: str) -> None:
    """Refuse a target pixel size (``target`` as given, ``metres`` in metres) no map can be made at.

    More than :data:`MAX_REFINE` times finer than the ``native`` pixels (described by ``pixels``),
    or coarser than the ``extent`` mapped (described by ``whole``): a map of one pixel. Both are
    typing slips, not maps.
    """
    if native / metres > MAX_REFINE:
        raise GridError(f"--resolution {target:g} is {native / metres:.3g} times finer than {pixels} (at most "
                        f"{MAX_REFINE}x); give a coarser --resolution, or 'model'")
    if metres > extent:
        raise GridError(f"--resolution {target:g} is coarser than {whole}; give a finer --resolution, or 'model'")


def check_target(target: float | None, native: float | None, epsg: int | None, items: Sequence[pystac.Item]) -> None:
    """:func:`check_target_size` for a map of ``items`` (pixels of ``native`` metres) at ``target``.

    ``target`` is in ``epsg``'s units, else the items' CRS's (degrees taken at the equator).
    """
    if target is None or native is None:
        return
    crs = epsg if epsg is not None else parse_items(items[:1])[0].epsg
    metres = target * 111_320.0 if crs is not None and CRS.from_epsg(crs).is_geographic else target
    extent = _extent_metres(items)
    check_target_size(target, metres, native, extent, f"the items' {native:g} m pixels",
                      f"the items' whole extent (about {extent:.3g} m across)")


def _extent_metres(items: Sequence[pystac.Item]) -> float:
    """The longer side of the items' WGS84 bounding box, in metres (at its mean latitude)."""
    boxes = np.array([i.bbox for i in items if i.bbox])
    if not len(boxes):
        return math.inf
    west, south, east, north = boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()
    return max((east - west) * math.cos(math.radians((south + north) / 2)), north - south) * 111_320.0


def model_resolution(resolution: float | None, card: ModelCard) -> float | None:
    """The pixel size ``--resolution model`` maps at: ``resolution`` moved into the card's range."""
    span = training_range(card)
    if span is None:
        raise BandError("the model card records no training resolution; give --resolution in metres")
    if resolution is None:
        return math.sqrt(span[0] * span[1])
    return min(max(resolution, span[0]), span[1])


def read_bands(card: ModelCard, chosen: Sequence[str] | None) -> list[str]:
    """The item bands to read for ``card``: ``chosen`` (``--bands``, fed in the card's order) or the card's."""
    if chosen is None:
        return list(card.bands)
    if len(chosen) != len(card.bands):
        raise BandError(f"--bands lists {len(chosen)} band(s) but the model takes {len(card.bands)}: "
                        f"{', '.join(card.bands)}; list one item band for each, in that order")
    if derived := [b for b in card.bands if is_derived(b)]:
        raise BandError(f"the model computes {derived} from named bands; --bands cannot rename them, leave it out")
    return list(chosen)


def _kind(value: float) -> str:
    if value <= 1.5:
        return "reflectance (0-1)"
    if value <= 300:
        return "8-bit values (0-255)"
    return "raw counts (e.g. reflectance x 10000 without raster:scale)"
