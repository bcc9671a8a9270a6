"""Items -> one single-band asset per requested band, in the form stackstac reads correctly.

Three traps of stackstac 0.5.1 are handled here (see DESIGN.md): it reads only ``proj:epsg``
(pystac >= 1.12 writes ``proj:code``), it refuses multi-band assets, and GDAL cannot open
``file://`` URLs. A band of a multi-band asset becomes a GDAL ``vrt://HREF?bands=N`` source.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import pystac

from geoslide.errors import BandError, CRSError

_PROJ_FIELDS = ("proj:transform", "proj:shape", "proj:bbox")


@dataclass(frozen=True)
class BandRef:
    """Where one band of one item is read from."""

    name: str
    href: str
    index: int
    count: int
    nodata: float | None
    dtype: str | None
    scale: float | None = None
    offset: float | None = None


def as_dicts(items: Iterable[pystac.Item | dict]) -> list[dict[str, Any]]:
    """Item dicts with absolute hrefs, whatever mix of pystac Items and dicts came in."""
    out = []
    for item in items:
        if isinstance(item, pystac.Item):
            d = item.to_dict(include_self_link=False, transform_hrefs=False)
            for key, asset in item.assets.items():
                d["assets"][key]["href"] = asset.get_absolute_href() or asset.href
            out.append(d)
        else:
            out.append(dict(item))
    return out


def epsg_of(meta: dict[str, Any]) -> int | None:
    """EPSG code from ``proj:epsg`` or ``proj:code`` of an item's properties or an asset."""
    if meta.get("proj:epsg") is not None:
        return int(meta["proj:epsg"])
    code = meta.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code.split(":", 1)[1])
    return None


def item_epsg(item: dict[str, Any]) -> int:
    """The item's CRS as an EPSG code (item level, else shared by its data assets)."""
    props = item.get("properties", {})
    found = epsg_of(props)
    if found is None:
        codes = {epsg_of(a) for a in item.get("assets", {}).values()} - {None}
        found = codes.pop() if len(codes) == 1 else None
    if found is None:
        has_other = any(k in props for k in ("proj:wkt2", "proj:projjson"))
        hint = "give it an EPSG 'proj:code'" if has_other else "add the projection extension"
        raise CRSError(
            f"item {item.get('id')!r} has no CRS (no proj:code/proj:epsg); {hint}, "
            "e.g. \"proj:code\": \"EPSG:32645\" in its properties"
        )
    return found


def band_refs(item: dict[str, Any], bands: Sequence[str]) -> list[BandRef]:
    """Locate each requested band (common name, band name or asset key) in an item."""
    table = band_table(item)
    refs = []
    for wanted in bands:
        ref = table.get(wanted.lower())
        if ref is None:
            offered = ", ".join(sorted({r.name for r in table.values()}))
            raise BandError(
                f"band {wanted!r} is not in item {item.get('id')!r}; it offers: {offered}. "
                "Pick bands by common name (e.g. red, nir) or asset key"
            )
        refs.append(ref)
    return refs


def band_table(item: dict[str, Any]) -> dict[str, BandRef]:
    """Every band of an item's raster assets, keyed by lower-case common name, band name and asset key."""
    table: dict[str, BandRef] = {}
    rasters = {k: a for k, a in item.get("assets", {}).items() if _is_raster(a)}
    commons = [_common(d) for a in rasters.values() for d in _band_descriptions(a)]
    for key, asset in rasters.items():
        descs = _band_descriptions(asset)
        for i, desc in enumerate(descs, start=1):
            common = _common(desc)
            unique = common is not None and commons.count(common) == 1  # Sentinel-2 has three "rededge"
            name = (common if unique else None) or desc.get("name") or common or key
            ref = BandRef(name=name, href=asset["href"], index=i, count=len(descs),
                          nodata=desc.get("nodata"), dtype=desc.get("data_type"),
                          scale=desc.get("raster:scale", desc.get("scale")),
                          offset=desc.get("raster:offset", desc.get("offset")))
            aliases = [name, desc.get("name"), common] + ([key] if len(descs) == 1 else [])
            for alias in aliases:
                if alias:
                    table.setdefault(alias.lower(), ref)
    return table


def _common(desc: dict[str, Any]) -> str | None:
    return desc.get("eo:common_name") or desc.get("common_name")


def _is_raster(asset: dict[str, Any]) -> bool:
    media = asset.get("type", "") or ""
    roles = asset.get("roles") or ["data"]
    return ("data" in roles) and ("tiff" in media or "jp2" in media or asset["href"].endswith((".tif", ".tiff")))


def _band_descriptions(asset: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-band metadata from STAC 1.1 ``bands`` or 1.0 ``eo:bands`` + ``raster:bands``."""
    if asset.get("bands"):
        return [dict(b) for b in asset["bands"]]
    eo = asset.get("eo:bands") or []
    raster = asset.get("raster:bands") or []
    n = max(len(eo), len(raster), 1)
    merged = []
    for i in range(n):
        desc: dict[str, Any] = {}
        desc.update(raster[i] if i < len(raster) else {})
        desc.update(eo[i] if i < len(eo) else {})
        merged.append(desc)
    return merged


def gdal_path(href: str) -> str:
    """A path GDAL opens: file:// URLs become paths, s3/gs/http(s) become /vsi paths when wrapped."""
    parsed = urlparse(href)
    if parsed.scheme == "file":
        return unquote(parsed.path)
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


def single_band_item(item: dict[str, Any], bands: Sequence[str]) -> dict[str, Any]:
    """The item rewritten with one asset per requested band, keyed by the requested name."""
    epsg = item_epsg(item)
    props = {k: v for k, v in item.get("properties", {}).items() if not k.startswith("proj:")}
    props["proj:epsg"] = epsg
    proj_source = item.get("properties", {})
    assets = {}
    for wanted, ref in zip(bands, band_refs(item, bands), strict=True):
        asset = {"href": band_href(ref), "type": pystac.MediaType.GEOTIFF, "roles": ["data"], "proj:epsg": epsg}
        src_asset = next(a for a in item["assets"].values() if a["href"] == ref.href)
        for field in _PROJ_FIELDS:
            value = src_asset.get(field, proj_source.get(field))
            if value is not None:
                asset[field] = value
        assets[wanted] = asset
    return {**{k: v for k, v in item.items() if k not in ("assets", "properties")}, "properties": props,
            "assets": assets}
