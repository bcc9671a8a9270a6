"""STAC items -> typed records, each item's band and projection metadata parsed once.

An item's bands are found in STAC 1.1 ``bands`` or 1.0 ``eo:bands`` + ``raster:bands`` of its
raster data assets. Every band is named by its common name where that is unique in the item
(Sentinel-2 has three ``rededge``), else by its band name, and can be asked for by common name,
band name or (for single-band assets) asset key, in any case. The CRS comes from ``proj:epsg`` or
``proj:code`` (pystac >= 1.12 writes the latter), of the item or shared by its assets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pystac

from geoslide.errors import BandError, CRSError

_PROJ_FIELDS = ("proj:transform", "proj:shape", "proj:bbox")


@dataclass(frozen=True)
class BandRef:
    """Where one band of one item is read from, and how its pixels are laid out.

    Parameters
    ----------
    name
        The band's name in the item (see the module notes).
    href
        Absolute href of the file holding the band.
    index, count
        The band's 1-based index in that file, and the file's number of bands.
    nodata, dtype, scale, offset
        The band's declared nodata, data type, ``raster:scale`` and ``raster:offset`` (None if not declared).
    transform, shape, bbox
        ``proj:transform``, ``proj:shape`` and ``proj:bbox`` of the file: those of the first asset
        with its href, else the item's (None if neither declares them).
    """

    name: str
    href: str
    index: int
    count: int
    nodata: float | None
    dtype: str | None
    scale: float | None = None
    offset: float | None = None
    transform: tuple[float, ...] | None = None
    shape: tuple[int, ...] | None = None
    bbox: tuple[float, ...] | None = None

    def proj_fields(self) -> dict[str, list]:
        """The declared ``proj:transform``/``proj:shape``/``proj:bbox`` as STAC JSON lists."""
        values = zip(_PROJ_FIELDS, (self.transform, self.shape, self.bbox), strict=True)
        return {name: list(value) for name, value in values if value is not None}


@dataclass(frozen=True)
class ItemRecord:
    """One STAC item as the cube builder reads it.

    Parameters
    ----------
    id, datetime
        The item's id and ``datetime`` property (None when missing).
    epsg
        The item's CRS as an EPSG code; None when it declares none (see :meth:`require_epsg`).
    bands
        Every band of the item's raster assets by lower-case alias (common name, band name, asset key).
    source
        The item dict the record was parsed from (absolute hrefs).
    """

    id: str | None
    datetime: str | None
    epsg: int | None
    bands: Mapping[str, BandRef]
    source: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, item: dict[str, Any]) -> ItemRecord:
        """The record of one item dict."""
        props = item.get("properties", {})
        return cls(id=item.get("id"), datetime=props.get("datetime"), epsg=_item_epsg(item),
                   bands=MappingProxyType(_band_table(item)), source=item)

    def require_epsg(self) -> int:
        """The item's EPSG code; raises :class:`CRSError` with a hint when it declares none."""
        if self.epsg is not None:
            return self.epsg
        props = self.source.get("properties", {})
        has_other = any(k in props for k in ("proj:wkt2", "proj:projjson"))
        hint = "give it an EPSG 'proj:code'" if has_other else "add the projection extension"
        raise CRSError(
            f"item {self.id!r} has no CRS (no proj:code/proj:epsg); {hint}, "
            "e.g. \"proj:code\": \"EPSG:32645\" in its properties"
        )

    def band_names(self) -> list[str]:
        """The names of the item's bands, in asset and band order."""
        return list(dict.fromkeys(ref.name for ref in self.bands.values()))

    def select(self, wanted: Sequence[str]) -> list[BandRef]:
        """Locate each requested band (common name, band name or asset key); raises :class:`BandError`."""
        refs = []
        for name in wanted:
            ref = self.bands.get(name.lower())
            if ref is None:
                offered = ", ".join(sorted({r.name for r in self.bands.values()}))
                fix = ("Sentinel-2 L2A items have no B10 (cirrus): map L1C items, or train on a store imported with "
                       "--bands leaving B10 out" if name.lower() in ("b10", "cirrus")
                       else "Pick bands by common name (e.g. red, nir) or asset key")
                raise BandError(f"band {name!r} is not in item {self.id!r}; it offers: {offered}. {fix}")
            refs.append(ref)
        return refs


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


def asset_hrefs(items: Iterable[pystac.Item | dict]) -> list[str]:
    """The absolute hrefs of every asset of ``items`` (what Dask workers will be asked to read)."""
    return sorted({asset["href"] for item in as_dicts(items) for asset in item.get("assets", {}).values()})


def parse_items(items: Iterable[pystac.Item | dict]) -> list[ItemRecord]:
    """One :class:`ItemRecord` per item, in order."""
    return [ItemRecord.parse(d) for d in as_dicts(items)]


def epsg_of(meta: dict[str, Any]) -> int | None:
    """EPSG code from ``proj:epsg`` or ``proj:code`` of an item's properties or an asset."""
    if meta.get("proj:epsg") is not None:
        return int(meta["proj:epsg"])
    code = meta.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code.split(":", 1)[1])
    return None


def _item_epsg(item: dict[str, Any]) -> int | None:
    """The item's EPSG code: item level, else the one its assets share; None if neither."""
    found = epsg_of(item.get("properties", {}))
    if found is None:
        codes = {epsg_of(a) for a in item.get("assets", {}).values()} - {None}
        found = codes.pop() if len(codes) == 1 else None
    return found


def _band_table(item: dict[str, Any]) -> dict[str, BandRef]:
    """Every band of an item's raster assets, keyed by lower-case common name, band name and asset key."""
    table: dict[str, BandRef] = {}
    layout = _layouts(item)
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
                          offset=desc.get("raster:offset", desc.get("offset")), **layout[asset["href"]])
            aliases = [name, desc.get("name"), common] + ([key] if len(descs) == 1 else [])
            for alias in aliases:
                if alias:
                    table.setdefault(alias.lower(), ref)
    return table


def _layouts(item: dict[str, Any]) -> dict[str, dict[str, tuple | None]]:
    """Per href: transform, shape and bbox of the first asset with that href, else of the item."""
    props = item.get("properties", {})
    out: dict[str, dict[str, tuple | None]] = {}
    for asset in item.get("assets", {}).values():
        if asset.get("href") in out:
            continue
        values = (asset.get(f, props.get(f)) for f in _PROJ_FIELDS)
        out[asset.get("href")] = {k: None if v is None else tuple(v)
                                  for k, v in zip(("transform", "shape", "bbox"), values, strict=True)}
    return out


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
