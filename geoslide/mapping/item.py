"""The STAC 1.1 item of a map store: footprint, projection, labels, provenance and every file written.

The item describes the map in the terms STAC tools know: the label extension (a raster
segmentation made by a model, ``source`` links to the imagery), classification classes of the mask
(0 background, 1 landslide, 255 nodata), processing (level L4: a model output), projection and
raster, and the file extension (size and sha2-256 multihash) on every asset.

Links and hrefs are portable: assets and links to local files are relative to the item's folder,
so the item, the map and its inputs can be copied or published together. No ``self`` link is
written (it must be absolute, which would pin the item to this machine); readers set it from where
they read the item.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pystac
import shapely.geometry

from geoslide._version import version
from geoslide.catalog.extensions import (
    CLASSIFICATION_EXT,
    FILE_EXT,
    LABEL_EXT,
    MEDIA_BY_SUFFIX,
    PROCESSING_EXT,
    PROJECTION_EXT,
    RASTER_EXT,
    ZARR_MEDIA,
)
from geoslide.catalog.files import file_fields
from geoslide.catalog.footprint import wgs84_footprint
from geoslide.catalog.stacio import stac_io
from geoslide.errors import OutputError
from geoslide.fileio import Location, absolute, local_path, name, read_text, with_suffix
from geoslide.mapping.store import NODATA, PROBABILITY_SCALE, map_attrs, map_grid, map_zarr_format
from geoslide.raster.grid import GridSpec

MASK_CLASSES = [
    {"value": 0, "name": "background", "description": "no landslide mapped"},
    {"value": 1, "name": "landslide", "description": "probability at or above the model's threshold"},
    {"value": NODATA, "name": "nodata", "description": "no imagery", "nodata": True},
]
# asset keys of vector files, by suffix (the GeoParquet keeps the key "vectors")
VECTOR_KEYS = {".parquet": "vectors", ".geojson": "vectors-geojson", ".gpkg": "vectors-gpkg",
               ".fgb": "vectors-flatgeobuf"}
VECTOR_TITLES = {".parquet": "landslide polygons (GeoParquet, map CRS)",
                 ".geojson": "landslide polygons (GeoJSON, WGS 84)",
                 ".gpkg": "landslide polygons (GeoPackage)", ".fgb": "landslide polygons (FlatGeobuf)"}


def item_path(out_zarr: str | Path) -> Location:
    """Where :func:`map_item` saves the item of a store: ``OUT.zarr`` -> ``OUT.json`` (a path or a URL)."""
    return with_suffix(out_zarr, ".json")


def map_item(out_zarr: str | Path, inputs: Sequence[str | pystac.Item], model: Mapping[str, Any],
             params: Mapping[str, Any], *, cogs: Mapping[str, str | Path] | None = None,
             vectors: str | Path | Sequence[str | Path] | None = None, quicklook_png: str | Path | None = None,
             files: Sequence[str | Path] = (), model_item: str | None = None, save: bool = True) -> pystac.Item:
    """A STAC 1.1 item describing a map store and the files exported from it.

    Parameters
    ----------
    out_zarr
        The map store (a path or an ``s3://`` URL).
    inputs
        Input items (``pystac.Item``) or their ids / hrefs. Items and hrefs become ``source`` (label
        extension) and ``derived_from`` links; all are listed in ``geoslide:inputs``; items'
        datetimes set the item's time range.
    model
        Summary of the model card (``architecture``, ``bands``, ...).
    params
        Other run parameters (patch size, overlap, ...); ``datetime`` (ISO 8601) sets the item's
        time when no input item gives one.
    cogs
        ``{"probability": path, "mask": path}`` written by :func:`export_cog`, if any.
    vectors
        The vector files written (a path, or all of them: GeoParquet, GeoJSON, GeoPackage, ...);
        each becomes an asset keyed by its format.
    quicklook_png
        The quicklook PNG, if written.
    files
        Any other files written beside the map (a QGIS style, ...): assets keyed by their name.
    model_item
        The STAC MLM item of the model (``MODEL_DIR/item.json``), linked as ``derived_from``.
    save
        Save the item as JSON at :func:`item_path` with hrefs relative to it.
    """
    grid, fingerprint = map_grid(out_zarr), map_attrs(out_zarr)
    geometry = wgs84_footprint(f"EPSG:{grid.epsg}", grid.bounds)
    start, end = _time_range(inputs, params)
    bbox = list(shapely.geometry.shape(geometry).bounds)
    item = pystac.Item(id=Path(name(out_zarr)).stem, geometry=geometry, bbox=bbox,
                       datetime=end, properties=_properties(grid, fingerprint, inputs, model, params),
                       stac_extensions=[PROJECTION_EXT, RASTER_EXT, PROCESSING_EXT, LABEL_EXT, CLASSIFICATION_EXT,
                                        FILE_EXT])
    if start != end:
        item.common_metadata.start_datetime, item.common_metadata.end_datetime = start, end
    _add_assets(item, out_zarr, cogs or {}, _paths(vectors), quicklook_png, files)
    _add_links(item, out_zarr, inputs, model_item)
    if save:
        target = absolute(item_path(out_zarr))
        item.set_self_href(target)
        item.make_asset_hrefs_relative()
        item.save_object(include_self_link=False, dest_href=target, stac_io=stac_io())
    return item


def _paths(vectors: str | Path | Sequence[str | Path] | None) -> list[str | Path]:
    if vectors is None:
        return []
    if isinstance(vectors, str | os.PathLike):
        return [vectors]
    return [v for v in vectors if v]


def _time_range(inputs: Sequence[str | pystac.Item], params: Mapping[str, Any]) -> tuple[datetime, datetime]:
    times = [t for i in inputs if isinstance(i, pystac.Item)
             for t in (i.datetime, i.common_metadata.start_datetime, i.common_metadata.end_datetime) if t]
    if not times and params.get("datetime"):
        when = datetime.fromisoformat(str(params["datetime"]))
        times = [when if when.tzinfo else when.replace(tzinfo=UTC)]
    if not times:
        times = [datetime.now(UTC)]
    return min(times), max(times)


def _properties(grid: GridSpec, fingerprint: Mapping[str, Any], inputs: Sequence[str | pystac.Item],
                model: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    threshold = fingerprint["threshold"]
    arch, bands = model.get("architecture", "unknown"), list(model.get("bands", []))
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "proj:code": f"EPSG:{grid.epsg}", "proj:shape": list(grid.shape), "proj:transform": list(grid.transform)[:6],
        "proj:bbox": list(grid.bounds), "created": now,
        "processing:level": "L4", "processing:software": {"geoslide": version()}, "processing:datetime": now,
        "processing:lineage": (f"landslide probability from a {arch} model on bands {', '.join(bands) or '?'}; "
                               f"mask = probability >= {threshold}"),
        "label:type": "raster", "label:tasks": ["segmentation"], "label:methods": ["automated"],
        "label:properties": None, "label:classes": [{"name": None, "classes": [0, 1]}],
        "label:description": (f"landslides mapped by a {arch} model: mask 1 = landslide (probability >= "
                              f"{threshold}), 0 = background, {NODATA} = no imagery"),
        "geoslide:threshold": threshold, "geoslide:model": dict(model), "geoslide:params": dict(params),
        "geoslide:inputs": [i.id if isinstance(i, pystac.Item) else str(i) for i in inputs],
    }


def _band(variable: str, grid: GridSpec) -> dict[str, Any]:
    band: dict[str, Any] = {"name": variable, "data_type": "uint8", "nodata": NODATA,
                            "raster:spatial_resolution": grid.resolution}
    if variable == "probability":
        band.update({"raster:scale": 1.0 / PROBABILITY_SCALE, "raster:offset": 0.0, "unit": "1",
                     "description": "landslide probability (stored x 250)"})
    else:
        band.update({"classification:classes": MASK_CLASSES, "description": "landslide mask"})
    return band


def _asset(href: str | Path, title: str, media_type: str, roles: list[str], **extra: Any) -> pystac.Asset:
    """An asset of a written file, with its file extension fields."""
    return pystac.Asset(absolute(href), title=title, media_type=media_type, roles=roles,
                        extra_fields={**extra, **file_fields(href)})


def _add_assets(item: pystac.Item, out_zarr: str | Path, cogs: Mapping[str, str | Path],
                vectors: Sequence[str | Path], quicklook_png: str | Path | None, files: Sequence[str | Path]) -> None:
    grid, zarr_format = map_grid(out_zarr), map_zarr_format(out_zarr)
    item.add_asset("zarr", _asset(out_zarr, f"probability and mask (Zarr v{zarr_format})", ZARR_MEDIA[zarr_format],
                                  ["data"], bands=[_band(v, grid) for v in ("probability", "mask")]))
    for variable, path in cogs.items():
        if variable not in ("probability", "mask"):
            raise OutputError(f"COG assets are 'probability' and 'mask', not {variable!r}")
        item.add_asset(variable, _asset(path, f"landslide {variable} (COG)", MEDIA_BY_SUFFIX[".tif"], ["data"],
                                        bands=[_band(variable, grid)]))
    for path in vectors:
        suffix = Path(name(path)).suffix.lower()
        item.add_asset(VECTOR_KEYS.get(suffix, f"vectors-{suffix.lstrip('.')}"),
                       _asset(path, VECTOR_TITLES.get(suffix, "landslide polygons"),
                              MEDIA_BY_SUFFIX.get(suffix, "application/octet-stream"), ["data"]))
    if quicklook_png is not None:
        item.add_asset("quicklook", _asset(quicklook_png, "quicklook", pystac.MediaType.PNG, ["overview", "visual"]))
    for path in files:
        file = name(path)
        item.add_asset(file.replace(".", "-"), _asset(path, file, MEDIA_BY_SUFFIX.get(Path(file).suffix.lower(),
                                                                                    "application/octet-stream"),
                                                      ["metadata"]))


def _add_links(item: pystac.Item, out_zarr: str | Path, inputs: Sequence[str | pystac.Item],
               model_item: str | None) -> None:
    base = item_path(out_zarr)
    for href in _input_hrefs(inputs):
        for rel in ("source", "derived_from"):
            item.add_link(pystac.Link(rel, _relative(href, base), media_type=pystac.MediaType.GEOJSON))
    if model_item:
        mlm = json.loads(read_text(model_item))
        item.add_link(pystac.Link("derived_from", _relative(model_item, base), media_type=pystac.MediaType.GEOJSON,
                                  title="the model (STAC MLM item)",
                                  extra_fields={"mlm:name": mlm["properties"]["mlm:name"]}))


def _relative(href: str, item_href: str | Path) -> str:
    """``href`` relative to the item's folder when both are local files; unchanged otherwise."""
    target, item = local_path(href), local_path(item_href)
    if target is None or item is None:
        return href
    relative = os.path.relpath(Path(absolute(target)), Path(absolute(item)).parent)
    return relative if relative.startswith("..") else f"./{relative}"


def _input_hrefs(inputs: Sequence[str | pystac.Item]) -> list[str]:
    hrefs = []
    for entry in inputs:
        if isinstance(entry, pystac.Item):
            href = entry.get_self_href()
        else:
            href = entry if ("://" in entry or entry.endswith(".json")) else None
        if href:
            hrefs.append(href)
    return hrefs
