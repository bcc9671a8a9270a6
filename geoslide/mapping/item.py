"""The STAC 1.1 item of a map store: footprint, projection, provenance and the exported files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pystac
import shapely.geometry

from geoslide._version import version
from geoslide.catalog.extensions import (
    COG_MEDIA,
    PROCESSING_EXT,
    PROJECTION_EXT,
    RASTER_EXT,
    ZARR_MEDIA,
)
from geoslide.catalog.footprint import wgs84_footprint
from geoslide.catalog.stacio import stac_io
from geoslide.errors import OutputError
from geoslide.fileio import Location, absolute, name, with_suffix
from geoslide.inventory.write import vector_format
from geoslide.mapping.store import NODATA, PROBABILITY_SCALE, map_attrs, map_grid
from geoslide.raster.grid import GridSpec


def item_path(out_zarr: str | Path) -> Location:
    """Where :func:`map_item` saves the item of a store: ``OUT.zarr`` -> ``OUT.json`` (a path or a URL)."""
    return with_suffix(out_zarr, ".json")


def map_item(out_zarr: str | Path, inputs: Sequence[str | pystac.Item], model: Mapping[str, Any],
             params: Mapping[str, Any], *, cogs: Mapping[str, str | Path] | None = None,
             vectors: str | Path | None = None, quicklook_png: str | Path | None = None,
             save: bool = True) -> pystac.Item:
    """A STAC 1.1 item describing a map store and the files exported from it.

    Parameters
    ----------
    out_zarr
        The map store (a path or an ``s3://`` URL).
    inputs
        Input items (``pystac.Item``) or their ids / hrefs. Items and hrefs become ``derived_from``
        links; all are listed in ``geoslide:inputs``; items' datetimes set the item's time range.
    model
        Summary of the model card (``architecture``, ``bands``, ...).
    params
        Other run parameters (patch size, overlap, ...); ``datetime`` (ISO 8601) sets the item's
        time when no input item gives one.
    cogs
        ``{"probability": path, "mask": path}`` written by :func:`export_cog`, if any.
    vectors, quicklook_png
        Landslide polygons (GeoParquet) and a quicklook PNG, if written.
    save
        Save the item as JSON at :func:`item_path` with hrefs relative to it.
    """
    grid, fingerprint = map_grid(out_zarr), map_attrs(out_zarr)
    geometry = wgs84_footprint(f"EPSG:{grid.epsg}", grid.bounds)
    start, end = _time_range(inputs, params)
    bbox = list(shapely.geometry.shape(geometry).bounds)
    item = pystac.Item(id=Path(name(out_zarr)).stem, geometry=geometry, bbox=bbox,
                       datetime=end, properties=_properties(grid, fingerprint, inputs, model, params),
                       stac_extensions=[PROJECTION_EXT, RASTER_EXT, PROCESSING_EXT])
    if start != end:
        item.common_metadata.start_datetime, item.common_metadata.end_datetime = start, end
    _add_assets(item, out_zarr, cogs or {}, vectors, quicklook_png)
    for href in _input_hrefs(inputs):
        item.add_link(pystac.Link("derived_from", href, media_type=pystac.MediaType.GEOJSON))
    if save:
        target = absolute(item_path(out_zarr))
        item.set_self_href(target)
        item.make_asset_hrefs_relative()
        item.save_object(include_self_link=False, dest_href=target, stac_io=stac_io())
    return item


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
        "processing:software": {"geoslide": version()}, "processing:datetime": now,
        "processing:lineage": (f"landslide probability from a {arch} model on bands {', '.join(bands) or '?'}; "
                               f"mask = probability >= {threshold}"),
        "geoslide:threshold": threshold, "geoslide:model": dict(model), "geoslide:params": dict(params),
        "geoslide:inputs": [i.id if isinstance(i, pystac.Item) else str(i) for i in inputs],
    }


def _band(variable: str, grid: GridSpec) -> dict[str, Any]:
    band: dict[str, Any] = {"name": variable, "data_type": "uint8", "nodata": NODATA,
                            "raster:spatial_resolution": grid.resolution}
    if variable == "probability":
        band.update({"raster:scale": 1.0 / PROBABILITY_SCALE, "raster:offset": 0.0, "unit": "1"})
    return band


def _add_assets(item: pystac.Item, out_zarr: str | Path, cogs: Mapping[str, str | Path], vectors: str | Path | None,
                quicklook_png: str | Path | None) -> None:
    grid = map_grid(out_zarr)
    item.add_asset("zarr", pystac.Asset(absolute(out_zarr), title="probability and mask (Zarr v3)",
                                        media_type=ZARR_MEDIA, roles=["data"],
                                        extra_fields={"bands": [_band(v, grid) for v in ("probability", "mask")]}))
    for variable, path in cogs.items():
        if variable not in ("probability", "mask"):
            raise OutputError(f"COG assets are 'probability' and 'mask', not {variable!r}")
        item.add_asset(variable, pystac.Asset(absolute(path), title=f"landslide {variable} (COG)",
                                              media_type=COG_MEDIA, roles=["data"],
                                              extra_fields={"bands": [_band(variable, grid)]}))
    if vectors is not None:
        item.add_asset("vectors", pystac.Asset(absolute(vectors), title="landslide polygons",
                                               media_type=vector_format(vectors).media_type, roles=["data"]))
    if quicklook_png is not None:
        item.add_asset("quicklook", pystac.Asset(absolute(quicklook_png), title="quicklook",
                                                 media_type=pystac.MediaType.PNG, roles=["overview", "visual"]))


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
