"""Real scenes with implanted scars, written as a static STAC catalog like ``geoslide demo``'s.

Layout of ``OUT``::

    catalog.json
    <name>/<name>-imagery/collection.json, <item>/<item>.json, <item>.tif    one item per scene draw
    <name>/<name>-inventory/collection.json, inventory.parquet (+ .geojson)  all scars, one ``event`` each

Each background is drawn ``variants`` times: a resolution from the range, a radiometry, an output
product (8-bit display-stretched or 16-bit reflectance) and a set of scars. Every draw is its own
event (``geoslide:event``), so per-event splits keep a scene's patches together. Scenes are placed
side by side in one UTM zone (their real places do not matter to a model). With ``cover: 0`` the
catalog holds the real scenes unchanged but for radiometry: landslide-free scenes for false alarms.
Items say ``geoslide:implanted`` (not ``geoslide:synthetic``, which marks the demo world), so
``geoslide map`` without ``--model`` takes a bundled model for real imagery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pystac
import shapely.geometry

from geoslide.catalog.build import AssetSpec, BandInfo, raster_item
from geoslide.demo.backgrounds import Background, Scene, read_background
from geoslide.demo.catalog import LABEL_EXT, catalog_aside, collection_of, save_self_contained, sub_seed, write_cog
from geoslide.demo.implant import ImplantSpec, bare_ground, label_mask, paint, scar_outlines
from geoslide.demo.radiometry import REFLECTANCE_SCALE, Radiometry, finish, jitter, to_sensor
from geoslide.errors import ConfigError
from geoslide.raster.grid import GridSpec
from geoslide.raster.resize import resample

EPSG = 32633
"""UTM zone the scenes are laid out in."""


@dataclass(frozen=True)
class ImplantedSpec:
    """A catalog of implanted real scenes.

    Parameters
    ----------
    name
        Catalog, collection and event prefix.
    bands
        Output bands (common names, in file order); every background must have them.
    units
        ``dn8`` (8-bit display-stretched, as cameras, UAV and aerial orthomosaics ship RGB) or
        ``reflectance`` (uint16 at ``raster:scale`` 1e-4, as PlanetScope and Sentinel-2 L2A).
    resolution
        Range of output pixel sizes in metres, drawn log-uniformly per scene.
    variants
        Draws per background.
    max_side
        Largest output side in pixels (a centred crop beyond it).
    implant, radiometry
        Scars and radiometric variation.
    """

    name: str
    bands: tuple[str, ...]
    units: str = "reflectance"
    resolution: tuple[float, float] = (3.0, 5.0)
    variants: int = 1
    max_side: int = 1024
    implant: ImplantSpec = field(default_factory=ImplantSpec)
    radiometry: Radiometry = field(default_factory=Radiometry)


def write_implanted(out: str | Path, backgrounds: Sequence[Background], spec: ImplantedSpec, seed: int = 0
                    ) -> Path:
    """Write the catalog into the new folder ``out`` (written aside, renamed at the end); returns catalog.json."""
    out = Path(out).absolute()
    _check(backgrounds, spec)
    with catalog_aside(out) as tmp:
        items, scars = _scenes(tmp / spec.name / f"{spec.name}-imagery", backgrounds, spec, seed)
        root = pystac.Catalog(f"{spec.name}-catalog",
                              f"Real scenes with implanted landslide scars ({spec.name}, seed {seed})")
        event = pystac.Catalog(spec.name, "all scene draws")
        event.add_child(collection_of(f"{spec.name}-imagery", f"{spec.name}: real backgrounds", items))
        event.add_child(_inventory(tmp / spec.name / f"{spec.name}-inventory", spec.name, scars, items))
        root.add_child(event)
        save_self_contained(root, tmp)
    return out / "catalog.json"


def _check(backgrounds: Sequence[Background], spec: ImplantedSpec) -> None:
    if spec.units not in ("dn8", "reflectance"):
        raise ConfigError(f"units must be 'dn8' or 'reflectance', not {spec.units!r}")
    lo, hi = spec.resolution
    if not 0 < lo <= hi:
        raise ConfigError(f"resolution range {spec.resolution} must be positive and increasing")
    for bg in backgrounds:
        if missing := [b for b in spec.bands if b not in bg.bands]:
            raise ConfigError(f"background {bg.path} lacks band(s) {missing}; give backgrounds with {list(spec.bands)}")


def _scenes(folder: Path, backgrounds: Sequence[Background], spec: ImplantedSpec, seed: int
            ) -> tuple[list[pystac.Item], gpd.GeoDataFrame]:
    items, frames = [], []
    k = 0
    for bg in backgrounds:
        scene = read_background(bg)
        for v in range(spec.variants):
            event = f"{spec.name}-{bg.label}-{v}"
            rng = np.random.default_rng(sub_seed(seed, spec.name, bg.label, str(v)))
            item, scars = _draw(folder, scene, event, k, spec, rng)
            items.append(item)
            frames.append(scars.assign(event=event))
            k += 1
    inventory = pd.concat(frames, ignore_index=True)
    inventory["landslide_id"] = np.arange(len(inventory), dtype="int64")
    return items, gpd.GeoDataFrame(inventory, geometry="geometry", crs=f"EPSG:{EPSG}")


def _draw(folder: Path, scene: Scene, event: str, k: int, spec: ImplantedSpec, rng: np.random.Generator
          ) -> tuple[pystac.Item, gpd.GeoDataFrame]:
    """One scene draw: resample, vary radiometry, implant, quantise, write the COG and its item."""
    lo, hi = _reachable(spec.resolution, scene.resolution, min(scene.valid.shape))
    resolution = round(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), 3)
    idx = [scene.bands.index(b) for b in spec.bands]
    image, valid = resample(scene.image[idx], scene.valid, resolution / scene.resolution)
    image, valid = _crop(image, valid, spec.max_side)
    h, w = valid.shape
    x0, y0 = 300_000.0 + 60_000.0 * (k % 10), 5_000_000.0 + 60_000.0 * (k // 10)
    grid = GridSpec(EPSG, (x0, y0, x0 + w * resolution, y0 + h * resolution), resolution)
    image = jitter(image, spec.bands, spec.radiometry, rng)
    scars = scar_outlines(grid, valid, spec.implant, rng) if spec.implant.cover > 0 else _no_scars()
    image = paint(image, grid, scars, bare_ground(image, valid, spec.bands, rng), rng, spec.implant)
    image = finish(image, spec.radiometry, rng)
    data = to_sensor(image, spec.units, rng, spec.radiometry)
    data[:, ~valid] = 0
    path = folder / event / f"{event}.tif"
    path.parent.mkdir(parents=True)
    write_cog(path, data, grid, 0, list(spec.bands))
    scale = REFLECTANCE_SCALE if spec.units == "reflectance" else None
    bands = tuple(BandInfo(b, b, scale=scale) for b in spec.bands)
    props = {"gsd": round(resolution, 3), "geoslide:event": event, "geoslide:phase": "post",
             "geoslide:implanted": True, "geoslide:landslide_pixels": int((label_mask(scars, grid, valid) == 1).sum())}
    item = raster_item(event, datetime(2026, 1, 1, tzinfo=UTC), [AssetSpec("image", str(path), bands)],
                       collection=f"{spec.name}-imagery", properties=props)
    return item, scars


MAX_UPSAMPLING = 2.0
"""Finest output pixel as a share of the background's: 2 means up to twice as fine (bilinear)."""


MIN_SIDE = 192
"""Coarsest output keeps at least this many pixels on the background's shorter side (if it can)."""


def _reachable(wanted: tuple[float, float], native: float, side: int) -> tuple[float, float]:
    """The part of the ``wanted`` resolution range a background of ``native`` metres and ``side`` px can give."""
    lo, hi = max(wanted[0], native / MAX_UPSAMPLING), wanted[1]
    if lo > hi:
        raise ConfigError(f"a background of {native:g} m pixels cannot give {wanted[1]:g} m or finer "
                          f"(at most {MAX_UPSAMPLING:g}x upsampling); leave it out or widen the resolution range")
    return lo, max(lo, min(hi, native * side / MIN_SIDE))


def _crop(image: np.ndarray, valid: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = valid.shape
    r0, c0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return image[:, r0 : r0 + side, c0 : c0 + side], valid[r0 : r0 + side, c0 : c0 + side]


def _no_scars() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"kind": [], "cluster": []}, geometry=gpd.GeoSeries([], crs=f"EPSG:{EPSG}"))


def _inventory(folder: Path, name: str, scars: gpd.GeoDataFrame, items: list[pystac.Item]) -> pystac.Collection:
    folder.mkdir(parents=True)
    scars.to_parquet(folder / "inventory.parquet")
    bbox = [min(i.bbox[0] for i in items), min(i.bbox[1] for i in items),
            max(i.bbox[2] for i in items), max(i.bbox[3] for i in items)]
    geometry = shapely.geometry.mapping(shapely.geometry.box(*bbox))
    item = pystac.Item(f"{name}-inventory", geometry=geometry, bbox=bbox, datetime=datetime(2026, 1, 1, tzinfo=UTC),
                       properties={"label:type": "vector", "label:properties": ["landslide_id"],
                                   "label:description": f"{len(scars)} implanted scars",
                                   "label:tasks": ["segmentation"],
                                   "label:methods": ["automated"], "geoslide:event": name},
                       stac_extensions=[LABEL_EXT], collection=f"{name}-inventory")
    item.add_asset("labels-parquet", pystac.Asset(str(folder / "inventory.parquet"),
                                                  media_type="application/vnd.apache.parquet",
                                                  roles=["labels", "labels-vector"], title="scars (GeoParquet)"))
    return collection_of(f"{name}-inventory", f"Implanted scars of {name}", [item])
