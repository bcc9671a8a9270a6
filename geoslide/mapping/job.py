"""The main job: STAC query -> mosaic -> tiled inference -> map store, vectors, quicklook, STAC item.

Every step reads what the step before wrote, so a rerun after an interruption resumes the map store
chunk by chunk and redoes only the cheap exports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pystac
import torch
import xarray as xr

from geoslide.catalog.query import StacQuery
from geoslide.catalog.search import search
from geoslide.cluster import check_visible
from geoslide.errors import BandError, ConfigError, GridError, MixedDatesError, ModelError, OutputError
from geoslide.fileio import Location, check_writable, location, name, with_suffix
from geoslide.inventory.summary import inventory_summary
from geoslide.inventory.vectorize import vectorize
from geoslide.inventory.write import check_vector_path, write_vectors
from geoslide.mapping.cog import export_cog
from geoslide.mapping.inference import predict_proba
from geoslide.mapping.item import item_path, map_item
from geoslide.mapping.modelcache import resolve_device
from geoslide.mapping.quicklook import quicklook
from geoslide.mapping.store import open_map, write_map
from geoslide.mapping.tiling import InferenceSpec
from geoslide.models.card import ModelCard, ResolvedModel, bundled_model_path, resolve_model
from geoslide.raster.inputs import load_inputs, missing_inputs, plan_inputs
from geoslide.raster.items import asset_hrefs
from geoslide.raster.scenes import mixed_scenes


@dataclass(frozen=True)
class MapSpec:
    """What to map and where to write it.

    Parameters
    ----------
    out
        Map store path (``OUT.zarr``); the quicklook (``OUT.png``), STAC item (``OUT.json``) and COGs
        (``OUT.probability.tif``, ``OUT.mask.tif``) are written beside it.
    model
        Model directory; None takes the bundled demo model.
    vectors
        GeoParquet path for landslide polygons (a GeoJSON in WGS84 is written beside it); None skips.
    inference
        Chunk, overlap, tile and batch sizes, device.
    resolution, epsg
        Target grid; None keeps the items' (several CRSs need ``epsg``).
    min_area
        Minimum mapping unit in m2 for the vectors.
    split
        Split amalgamated landslides in the vectors.
    cog, quicklook
        Also export COGs; write the quicklook PNG.
    event
        Event name for the summary (default: the items' ``geoslide:event`` or the output name).
    pre_stac_query
        Pre-event items (same catalog), mosaicked onto the map's grid, for a model of ``d_<band>``
        (post - pre) bands; searched only for such a model.
    dem_stac_query
        Items with an ``elevation`` band (same catalog, any grid), for a model of ``slope`` when the
        imagery has no elevation band; searched only for a model of slope or elevation.
    allow_mixed_dates
        Mosaic items of different ``geoslide:phase`` or dates more than
        :data:`~geoslide.raster.scenes.MAX_DAYS_APART` days apart, which is refused otherwise.
    """

    out: str
    model: str | None = None
    vectors: str | None = None
    inference: InferenceSpec = field(default_factory=InferenceSpec)
    resolution: float | None = None
    epsg: int | None = None
    min_area: float = 0.0
    split: bool = False
    cog: bool = False
    quicklook: bool = True
    event: str | None = None
    pre_stac_query: str | dict | None = None
    dem_stac_query: str | dict | None = None
    allow_mixed_dates: bool = False

    def __post_init__(self) -> None:
        if self.resolution is not None and not self.resolution > 0:
            raise GridError(f"resolution must be positive, got {self.resolution}; give the pixel size in the "
                            "target CRS's units, or leave it unset to keep the items'")
        if self.epsg is not None and self.epsg < 1:
            raise GridError(f"epsg must be a positive EPSG code, got {self.epsg}; e.g. 32645 for UTM 45N")
        if not self.min_area >= 0:
            raise ConfigError(f"min-area must be >= 0 m2, got {self.min_area}; 0 keeps every polygon")
        for query in (self.pre_stac_query, self.dem_stac_query):  # checked even when the model needs neither
            if query is not None:
                StacQuery.parse(query)


@dataclass(frozen=True)
class MapResult:
    """Paths written and the event summary (HR-GLDD Table 1 columns) when vectors were made."""

    out: Location
    item: Location
    quicklook: Location | None
    vectors: Location | None
    summary: dict[str, Any] | None


def run_map(stac_query: str | dict | None, spec: MapSpec, catalog: str | None = None, client: Any = None,
            progress: bool = False) -> MapResult:
    """Search, load, mosaic and map ``stac_query``'s items with a model; see :class:`MapSpec`."""
    _check_out(spec.out, spec.vectors)
    _check_device(spec.inference.device, local=client is None)
    model = resolve_model(spec.model or bundled_model_path())
    items = search(stac_query, catalog)
    extra = extra_items(model.card, spec, catalog)
    used = [*items, *(i for found in extra.values() if found for i in found)]
    if client is not None:  # the workers read the imagery and the model; this process writes the outputs
        check_visible(client, [model.path, *asset_hrefs(used)])
    image = load_image(items, model.card, spec, **extra)
    probability = predict_proba(image, model, spec.inference)
    attrs = {"model": _model_id(model), "inputs": sorted({i.id for i in used}),
             "inference": asdict(spec.inference)}
    write_map(probability, spec.out, model.card.threshold, attrs, progress=progress, client=client)
    return _exports(items, image, model, spec)


def load_image(items: list[pystac.Item], card: ModelCard, spec: MapSpec, pre_items: list[pystac.Item] | None = None,
               dem_items: list[pystac.Item] | None = None) -> xr.DataArray:
    """The model's bands of all items, as physical values on one grid, latest valid pixel on top.

    Derived bands of the card (``ndvi``, ``slope``, ``d_<band>``) are computed as ``geoslide patches``
    computed them (:func:`geoslide.raster.inputs.load_inputs`): ``d_`` bands against ``pre_items``,
    slope from the elevation of ``dem_items`` or else of the items.
    """
    if missing := missing_inputs(card.bands, items, pre=bool(pre_items), dem=bool(dem_items)):
        raise BandError(f"the model needs {missing}")
    _check_one_scene(items, "the items to mosaic", spec)
    if plan_inputs(card.bands).differences:
        _check_one_scene(pre_items, "the pre-event items", spec)
    options: dict[str, Any] = {"chunksize": spec.inference.chunk}
    if spec.resolution is not None:
        options["resolution"] = spec.resolution
    if spec.epsg is not None:
        options["epsg"] = spec.epsg
    return load_inputs(items, card.bands, pre_items=pre_items, dem_items=dem_items, **options)


def extra_items(card: ModelCard, spec: MapSpec, catalog: str | None) -> dict[str, list[pystac.Item] | None]:
    """The pre-event and DEM items of ``spec``'s queries that the card's bands use (None where unused)."""
    plan = plan_inputs(card.bands, dem=spec.dem_stac_query is not None)
    pre = search(spec.pre_stac_query, catalog) if plan.differences and spec.pre_stac_query else None
    dem = search(spec.dem_stac_query, catalog) if plan.elevation and spec.dem_stac_query else None
    return {"pre_items": pre, "dem_items": dem}


def _check_one_scene(items: list[pystac.Item], which: str, spec: MapSpec) -> None:
    if not spec.allow_mixed_dates and (mixed := mixed_scenes(items)):
        raise MixedDatesError(f"{which} {mixed}; or pass --allow-mixed-dates (allow_mixed_dates=True in Python)")


def _exports(items: list[pystac.Item], image: xr.DataArray, model: ResolvedModel, spec: MapSpec) -> MapResult:
    out = location(spec.out)
    stored = open_map(out)
    summary = vectors = None
    if spec.vectors:
        polygons = vectorize(stored["mask"], min_area=spec.min_area, split=spec.split,
                             probability=stored["probability"])
        vectors, _ = write_vectors(polygons, spec.vectors)
        summary = inventory_summary(polygons, event=spec.event or _event(items, out))
    png = quicklook(image, stored["mask"], with_suffix(out, ".png")) if spec.quicklook else None
    cogs = {v: export_cog(out, v, with_suffix(out, f".{v}.tif")) for v in ("probability", "mask")} if spec.cog else {}
    params = {"threshold": model.card.threshold, "min_area_m2": spec.min_area, "split": spec.split,
              **{f"inference_{k}": v for k, v in asdict(spec.inference).items()}}
    map_item(out, items, _model_summary(model), params, cogs=cogs, vectors=vectors, quicklook_png=png)
    return MapResult(out, item_path(out), png, vectors, summary)


def _check_out(out: str, vectors: str | None) -> None:
    """Outputs checked before any work: names, writable schemes, buckets, credentials."""
    path = check_writable(out)
    if Path(name(path)).suffix != ".zarr":
        raise OutputError(f"--out {out} should end in .zarr (the map store); e.g. --out {Path(name(path)).stem}.zarr")
    if isinstance(path, Path) and path.exists() and not path.is_dir():
        raise OutputError(f"{out} exists and is a file; pick a new --out")
    if vectors:
        check_vector_path(vectors)
        check_writable(vectors)


def _check_device(device: str | None, local: bool) -> None:
    """A device name torch knows; without a cluster also one this machine has (workers may have GPUs)."""
    if device is None:
        return
    if local:
        resolve_device(device)
        return
    try:
        torch.device(device)
    except RuntimeError:
        raise ModelError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from None


def _model_id(model: ResolvedModel) -> str:
    return f"{model.card.architecture}@{model.path}"


def _model_summary(model: ResolvedModel) -> dict[str, Any]:
    card = model.card
    return {"architecture": card.architecture, "bands": list(card.bands), "threshold": card.threshold,
            "patch_size": card.patch_size, "resolution": card.resolution, "path": model.path}


def _event(items: list[pystac.Item], out: Location) -> str:
    events = sorted({str(i.properties.get("geoslide:event")) for i in items if "geoslide:event" in i.properties})
    return ", ".join(events) if events else Path(name(out)).stem
