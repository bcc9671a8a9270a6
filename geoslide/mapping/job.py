"""The main job: STAC query -> mosaic -> tiled inference -> map store, vectors, quicklook, STAC item.

Every step reads what the step before wrote, so a rerun after an interruption resumes the map store
chunk by chunk and redoes only the cheap exports.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pystac
import xarray as xr

from geoslide.catalog.search import search
from geoslide.cluster import announce_dashboard, check_visible
from geoslide.errors import BandError, GeoslideWarning, MixedDatesError, OutputError
from geoslide.fileio import (
    Location,
    absolute,
    check_not_link,
    check_writable,
    lexists,
    location,
    name,
    output_lock,
    with_suffix,
)
from geoslide.inventory.context import Provenance, acquisition_date, with_provenance
from geoslide.inventory.summary import inventory_summary
from geoslide.inventory.vectorize import vectorize
from geoslide.inventory.write import check_vector_path, write_vectors
from geoslide.mapping.chunkmap import chunked_map
from geoslide.mapping.cog import export_cog
from geoslide.mapping.inference import predict_proba
from geoslide.mapping.inputcheck import (
    check_resolution,
    check_target,
    fit_to_scene,
    item_resolution,
    model_resolution,
    read_bands,
    sample_bands,
)
from geoslide.mapping.item import item_path, map_item
from geoslide.mapping.modelcache import resolve_device
from geoslide.mapping.quicklook import quicklook
from geoslide.mapping.spec import MapSpec
from geoslide.mapping.store import (
    check_map_out,
    map_exports,
    map_grid,
    map_status,
    open_map,
    record_exports,
    write_encoded,
    write_map,
)
from geoslide.models.card import (
    MIN_MAPPING_PIXELS,
    ModelCard,
    ResolvedModel,
    default_min_area,
    model_location,
    resolve_model,
)
from geoslide.models.choice import choose_bundled
from geoslide.models.mlm import mlm_item_path
from geoslide.progress import show_progress
from geoslide.raster.chunkread import open_mosaic
from geoslide.raster.derived import is_derived
from geoslide.raster.inputs import load_inputs, missing_inputs, plan_inputs
from geoslide.raster.items import asset_hrefs, parse_items
from geoslide.raster.readable import check_readable
from geoslide.raster.scenes import mixed_scenes
from geoslide.raster.sources import plan_mosaic


@dataclass(frozen=True)
class MapResult:
    """Paths written and the event summary (HR-GLDD Table 1 columns) when vectors were made."""

    out: Location
    item: Location
    quicklook: Location | None
    vectors: Location | None
    summary: dict[str, Any] | None
    model: str = ""


def run_map(stac_query: str | dict | None, spec: MapSpec, catalog: str | None = None, client: Any = None,
            progress: bool | None = None) -> MapResult:
    """Search, load, mosaic and map ``stac_query``'s items with a model; see :class:`MapSpec`.

    Everything that can be checked is checked before the map store is created: the outputs, the
    device, the model's weights (loaded here once), the imagery's values against the model's, and
    the first asset of every item. The store, the exports and the STAC item are written holding
    the output's lock.
    """
    progress = show_progress(progress)
    if progress and client is not None:
        announce_dashboard(client)
    _check_out(spec.out, spec.vectors, spec.cog, spec.quicklook)
    _check_device(spec.inference.device, client)
    items = search(stac_query, catalog)
    model, spec, note = _model_for(items, spec)
    extra = extra_items(model.card, spec, catalog)
    names = read_bands(model.card, spec.bands)
    items = check_readable(items, names, spec.allow_missing_assets)
    extra = {k: check_readable(v, model.card.bands, spec.allow_missing_assets) if v else v for k, v in extra.items()}
    model = fit_to_scene(model, sample_bands(items, [n for n in names if not is_derived(n)]), names, note)
    used = [*items, *(i for found in extra.values() if found for i in found)]
    if client is not None:  # the workers read the imagery and the model; this process writes the outputs
        check_visible(client, [model.path, *asset_hrefs(used)])
    inference = {k: v for k, v in asdict(spec.inference).items() if k != "device"}  # devices agree to 1e-6
    attrs = {"model": model.identity, "inputs": sorted({i.id for i in used}), "inference": inference}
    with output_lock(spec.out):
        if per_chunk(model.card, **extra):
            image = _map_per_chunk(items, model, spec, attrs, progress, client)
        else:
            image = load_image(items, model.card, spec, **extra)
            probability = predict_proba(image, model, spec.inference)
            write_map(probability, spec.out, model.card.threshold, attrs, progress=progress, client=client,
                      zarr_format=spec.zarr_format)
        record_exports(spec.out, {absolute(p) for p in export_paths(spec.out, spec.vectors, spec.cog,
                                                                      spec.quicklook)})
        _warn_empty(spec.out)
        return replace(_exports(items, image, model, spec), model=note)


def _model_for(items: list[pystac.Item], spec: MapSpec) -> tuple[ResolvedModel, MapSpec, str]:
    """The model (given, or the bundled one that fits), the spec with a numeric resolution, and a note."""
    native = item_resolution(items)
    if spec.model:
        model = resolve_model(model_location(spec.model), check=True)
        note = f"model {model.path}"
    else:
        offered = spec.bands or [b for r in parse_items(items) for b in r.bands]
        synthetic = all(i.properties.get("geoslide:synthetic") for i in items)
        choice = choose_bundled(offered, native, synthetic=synthetic, positional=spec.bands is not None)
        model, note = resolve_model(choice.path, check=True), choice.reason
    if spec.resolution == "model":
        spec = replace(spec, resolution=model_resolution(native, model.card))
    check_target(spec.resolution, native, spec.epsg, items)
    check_resolution(spec.resolution or native, model.card, note)
    return model, spec, note


def per_chunk(card: ModelCard, pre_items: list[pystac.Item] | None = None,
              dem_items: list[pystac.Item] | None = None) -> bool:
    """Whether a map with this model runs one task per chunk (:mod:`geoslide.mapping.chunkmap`).

    It does when every band of the card is read from the imagery; derived bands (``ndvi``,
    ``slope``, ``d_<band>``) and DEM items still go through the stacked cube.
    """
    plan = plan_inputs(card.bands, dem=bool(dem_items))
    return not pre_items and not dem_items and plan.read == tuple(card.bands) and not plan.elevation


def _map_per_chunk(items: list[pystac.Item], model: ResolvedModel, spec: MapSpec, attrs: dict[str, Any],
                   progress: bool, client: Any) -> xr.DataArray:
    """Plan the mosaic, write the map one task per chunk; the lazy mosaic (for the quicklook)."""
    names = read_bands(model.card, spec.bands)
    if missing := missing_inputs(names, items, pre=False, dem=False):
        raise BandError(f"the model needs {missing}")
    _check_one_scene(items, "the items to mosaic", spec)
    options = {k: v for k, v in (("resolution", spec.resolution), ("epsg", spec.epsg)) if v is not None}
    plan = plan_mosaic(items, names, **options)
    spec.inference.resolve(model.card, model.multiple)  # checks chunk, overlap and tile; a small image is mirrored
    mapped = chunked_map(plan, model, spec.inference)
    write_encoded(mapped.encoded, plan.grid, spec.out, model.card.threshold, attrs, progress=progress,
                  client=client, empty=mapped.empty, zarr_format=spec.zarr_format)
    mosaic = open_mosaic(plan, chunksize=spec.inference.chunk)
    return mosaic.assign_coords(band=list(model.card.bands)) if spec.bands else mosaic


def _check_device(device: str | None, client: Any) -> None:
    """A ModelError now if ``device`` is unknown or absent where the inference runs (here, or on a worker)."""
    if client is None:
        resolve_device(device)
    else:
        client.submit(resolve_device, device, pure=False).result()


def _warn_empty(out: str) -> None:
    if (status := map_status(out)).nodata == status.total:
        warnings.warn(f"{out} is all nodata: no pixel of the imagery was read over the map's area, so the map "
                      "says nothing about landslides; check the items' assets and footprints", GeoslideWarning,
                      stacklevel=3)


def load_image(items: list[pystac.Item], card: ModelCard, spec: MapSpec, pre_items: list[pystac.Item] | None = None,
               dem_items: list[pystac.Item] | None = None) -> xr.DataArray:
    """The model's bands of all items, as physical values on one grid, latest valid pixel on top.

    Derived bands of the card (``ndvi``, ``slope``, ``d_<band>``) are computed as ``geoslide patches``
    computed them (:func:`geoslide.raster.inputs.load_inputs`): ``d_`` bands against ``pre_items``,
    slope from the elevation of ``dem_items`` or else of the items.
    """
    if missing := missing_inputs(read_bands(card, spec.bands), items, pre=bool(pre_items), dem=bool(dem_items)):
        raise BandError(f"the model needs {missing}")
    _check_one_scene(items, "the items to mosaic", spec)
    if plan_inputs(card.bands).differences:
        _check_one_scene(pre_items, "the pre-event items", spec)
    names = read_bands(card, spec.bands)
    options: dict[str, Any] = {"chunksize": spec.inference.chunk}
    if spec.resolution is not None:
        options["resolution"] = spec.resolution
    if spec.epsg is not None:
        options["epsg"] = spec.epsg
    image = load_inputs(items, names, pre_items=pre_items, dem_items=dem_items, **options)
    return image.assign_coords(band=list(card.bands)) if spec.bands else image


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
    min_area = map_min_area(spec, model.card, map_grid(out).resolution)
    vector_files: list[Location] = []
    if spec.vectors:
        polygons = vectorize(stored["mask"], min_area=min_area, split=spec.split, probability=stored["probability"])
        event = spec.event or _event(items, out)
        provenance = Provenance(event, acquisition_date([i.datetime or _start(i) for i in items]),
                                model_name(model), [i.id for i in items])
        vector_files = [f for f in write_vectors(with_provenance(polygons, provenance), spec.vectors) if f]
        vectors = vector_files[0]
        summary = inventory_summary(polygons, event=event)
    png = quicklook(image, stored["mask"], with_suffix(out, ".png")) if spec.quicklook else None
    cogs = {v: export_cog(out, v, with_suffix(out, f".{v}.tif")) for v in ("probability", "mask")} if spec.cog else {}
    params = {"threshold": model.card.threshold, "min_area_m2": min_area, "split": spec.split,
              **{f"inference_{k}": v for k, v in asdict(spec.inference).items()}}
    styles = [with_suffix(out, ".mask.qml")] if spec.cog else []  # written beside the mask COG
    map_item(out, items, _model_summary(model), params, cogs=cogs, vectors=vector_files, quicklook_png=png,
             files=styles, model_item=mlm_item_path(model.path))
    return MapResult(out, item_path(out), png, vectors, summary)


def map_min_area(spec: MapSpec, card: ModelCard, resolution: float) -> float:
    """The minimum mapping unit (m2): the spec's, else the card's, else a few pixels of the model or the map.

    ``resolution`` is the map grid's pixel size (metres in the projected grids geoslide maps on),
    used only for cards with neither ``min_area`` nor ``resolution``.
    """
    if spec.min_area is not None:
        return float(spec.min_area)
    if card.min_area is not None:
        return float(card.min_area)
    if (from_model := default_min_area(card.resolution)) is not None:
        return from_model
    return MIN_MAPPING_PIXELS * float(resolution) ** 2


def model_name(model: ResolvedModel) -> str:
    """A model's name in outputs: its directory's name (``demo`` for the bundled model)."""
    return Path(name(model.path)).name or model.card.architecture


def _start(item: pystac.Item) -> Any:
    return pystac.utils.str_to_datetime(start) if (start := item.properties.get("start_datetime")) else None


def _check_out(out: str, vectors: str | None, cog: bool, png: bool) -> None:
    """Outputs checked before any work: names, writable schemes, buckets, and no file of another's replaced."""
    path = check_writable(out)
    if Path(name(path)).suffix != ".zarr":
        raise OutputError(f"--out {out} should end in .zarr (the map store); e.g. --out {Path(name(path)).stem}.zarr")
    if isinstance(path, Path) and path.exists() and not path.is_dir():
        raise OutputError(f"{out} exists and is a file; pick a new --out")
    check_map_out(path)
    if vectors:
        check_vector_path(vectors)
        check_writable(vectors)
    ours = map_exports(path)
    for href in export_paths(out, vectors, cog, png):
        check_not_link(href)
        if absolute(href) not in ours and lexists(href):
            raise OutputError(f"{href} exists and was not written by geoslide for {out}; move it away or choose "
                              "another --out" + (" or --vectors" if vectors else ""))


def export_paths(out: str, vectors: str | None, cog: bool, png: bool) -> list[Location]:
    """The files a map writes beside its store: STAC item, quicklook, COGs and style, vectors (+ GeoJSON)."""
    paths = [item_path(out)]
    if png:
        paths.append(with_suffix(out, ".png"))
    if cog:
        paths += [with_suffix(out, f".{v}.tif") for v in ("probability", "mask")] + [with_suffix(out, ".mask.qml")]
    if vectors:
        paths += [location(vectors), with_suffix(vectors, ".geojson")]
    return paths


def _model_summary(model: ResolvedModel) -> dict[str, Any]:
    card = model.card
    return {"architecture": card.architecture, "bands": list(card.bands), "threshold": card.threshold,
            "patch_size": card.patch_size, "resolution": card.resolution, "path": model.path}


def _event(items: list[pystac.Item], out: Location) -> str:
    events = sorted({str(i.properties.get("geoslide:event")) for i in items if "geoslide:event" in i.properties})
    return ", ".join(events) if events else Path(name(out)).stem
