"""Item records -> one single-band asset per requested band, in the form stackstac reads correctly.

Three traps of stackstac 0.5.1 are handled here (see DESIGN.md): it reads only ``proj:epsg``
(pystac >= 1.12 writes ``proj:code``), it refuses multi-band assets, and GDAL cannot open
``file://`` URLs. Hrefs become GDAL paths through :func:`geoslide.fileio.gdal_path` (``/vsis3/`` for
S3, ``/vsicurl/`` for HTTP); a band of a multi-band asset becomes a GDAL ``vrt://PATH?bands=N`` source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pystac

from geoslide.fileio import gdal_path
from geoslide.raster.items import BandRef, ItemRecord


def band_href(ref: BandRef) -> str:
    """A single-band source for ``ref``: the file itself, or a ``vrt://`` band of a multi-band file."""
    if ref.count == 1:
        return gdal_path(ref.href)
    return f"vrt://{gdal_path(ref.href)}?bands={ref.index}"


def single_band_item(record: ItemRecord, bands: Sequence[str]) -> dict[str, Any]:
    """The record's item rewritten with one asset per requested band, keyed by the requested name."""
    epsg = record.require_epsg()
    item = record.source
    props = {k: v for k, v in item.get("properties", {}).items() if not k.startswith("proj:")}
    props["proj:epsg"] = epsg
    assets = {}
    for wanted, ref in zip(bands, record.select(bands), strict=True):
        assets[wanted] = {"href": band_href(ref), "type": pystac.MediaType.GEOTIFF, "roles": ["data"],
                          "proj:epsg": epsg, **ref.proj_fields()}
    return {**{k: v for k, v in item.items() if k not in ("assets", "properties")}, "properties": props,
            "assets": assets}
