"""Item records -> one single-band asset per requested band, in the form stackstac reads correctly.

Three traps of stackstac 0.5.1 are handled here (see DESIGN.md): it reads only ``proj:epsg``
(pystac >= 1.12 writes ``proj:code``), it refuses multi-band assets, and GDAL cannot open
``file://`` URLs. A band of a multi-band asset becomes a GDAL ``vrt://HREF?bands=N`` source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

import pystac

from geoslide.fileio import local_path
from geoslide.raster.items import BandRef, ItemRecord


def gdal_path(href: str) -> str:
    """A path GDAL opens: file:// URLs become paths, s3/gs/http(s) become /vsi paths when wrapped."""
    if href.startswith("file://"):
        return str(local_path(href))
    return href


def _vsi(href: str) -> str:
    parsed = urlparse(href)
    if parsed.scheme in ("http", "https"):
        return "/vsicurl/" + href
    if parsed.scheme in ("s3", "gs"):
        return f"/vsi{parsed.scheme}/{parsed.netloc}{parsed.path}"
    return gdal_path(href)


def band_href(ref: BandRef) -> str:
    """A single-band source for ``ref``: the file itself, or a ``vrt://`` band of a multi-band file."""
    if ref.count == 1:
        return gdal_path(ref.href)
    return f"vrt://{_vsi(ref.href)}?bands={ref.index}"


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
