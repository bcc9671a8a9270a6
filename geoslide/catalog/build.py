"""GeoTIFFs -> STAC 1.1 items with the projection, eo and raster extensions, read from file headers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pystac
import rasterio
import shapely.geometry

from geoslide.catalog.extensions import COG_MEDIA, EO_EXT, PROJECTION_EXT, RASTER_EXT
from geoslide.catalog.footprint import wgs84_footprint
from geoslide.errors import CRSError
from geoslide.fileio import local_path

EXTENSIONS = (PROJECTION_EXT, EO_EXT, RASTER_EXT)
COG = COG_MEDIA


@dataclass(frozen=True)
class BandInfo:
    """What a band is, beyond what the file header says.

    Parameters
    ----------
    name
        Band name, e.g. ``B04`` or ``red``.
    common_name
        eo common name (``red``, ``nir``, ...) or None for non-optical bands (DEM, slope).
    center_wavelength
        Centre wavelength in micrometres.
    scale, offset
        Factor and offset to physical values (e.g. 0.0001 for reflectance stored as uint16).
    unit
        Physical unit after scaling, e.g. ``m`` or ``deg``.
    """

    name: str
    common_name: str | None = None
    center_wavelength: float | None = None
    scale: float | None = None
    offset: float | None = None
    unit: str | None = None

    def to_dict(self, data_type: str, nodata: float | None, resolution: float) -> dict[str, Any]:
        """The STAC 1.1 ``bands`` entry."""
        out: dict[str, Any] = {"name": self.name, "data_type": data_type, "raster:spatial_resolution": resolution}
        optional = {"nodata": nodata, "eo:common_name": self.common_name,
                    "eo:center_wavelength": self.center_wavelength, "raster:scale": self.scale,
                    "raster:offset": self.offset, "unit": self.unit}
        out.update({k: v for k, v in optional.items() if v is not None})
        return out


@dataclass(frozen=True)
class AssetSpec:
    """One raster file of an item and what its bands are."""

    key: str
    href: str
    bands: tuple[BandInfo, ...]
    title: str | None = None


def raster_item(item_id: str, when: datetime, assets: Sequence[AssetSpec], *, collection: str | None = None,
                properties: dict[str, Any] | None = None) -> pystac.Item:
    """Build an item whose geometry and projection come from its first asset's header.

    Every asset must share the first asset's CRS; an asset on another grid carries its own
    ``proj:shape``/``proj:transform``.
    """
    headers = [_header(a) for a in assets]
    first = headers[0]
    item = pystac.Item(id=item_id, geometry=first["geometry"], bbox=first["bbox"], datetime=when,
                       properties={"proj:code": first["code"], "proj:shape": first["shape"],
                                   "proj:transform": first["transform"], "proj:bbox": first["proj_bbox"],
                                   **(properties or {})},
                       stac_extensions=list(EXTENSIONS), collection=collection)
    for spec, head in zip(assets, headers, strict=True):
        if head["code"] != first["code"]:
            raise CRSError(f"asset {spec.key!r} is in {head['code']}, item {item_id!r} in {first['code']}; "
                           "put assets of different CRSs in different items")
        extra = {}
        if head["shape"] != first["shape"] or head["transform"] != first["transform"]:
            extra = {"proj:shape": head["shape"], "proj:transform": head["transform"],
                     "proj:bbox": head["proj_bbox"]}
        bands = [b.to_dict(dt, head["nodata"], head["resolution"]) for b, dt in zip(spec.bands, head["dtypes"],
                                                                                    strict=True)]
        item.add_asset(spec.key, pystac.Asset(href=spec.href, media_type=COG, roles=["data"], title=spec.title,
                                              extra_fields={"bands": bands, **extra}))
    return item


def _header(spec: AssetSpec) -> dict[str, Any]:
    path = local_path(spec.href) or spec.href
    with rasterio.open(path) as ds:
        if ds.crs is None or ds.crs.to_epsg() is None:
            raise CRSError(f"{path} has no EPSG CRS; assign one (e.g. gdal_edit.py -a_srs EPSG:32645) first")
        if ds.count != len(spec.bands):
            raise ValueError(f"{path} has {ds.count} bands but {len(spec.bands)} were described")
        epsg = ds.crs.to_epsg()
        b = ds.bounds
        geometry = wgs84_footprint(ds.crs, b)
        geom_bounds = shapely.geometry.shape(geometry).bounds
        return {
            "code": f"EPSG:{epsg}", "shape": [ds.height, ds.width], "transform": list(ds.transform)[:6],
            "proj_bbox": [b.left, b.bottom, b.right, b.top], "geometry": geometry, "bbox": list(geom_bounds),
            "dtypes": list(ds.dtypes), "nodata": ds.nodata, "resolution": abs(ds.transform.a),
        }
