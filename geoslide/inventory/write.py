"""Landslide polygons -> a file in their own CRS (GeoParquet, GeoPackage or FlatGeobuf) and GeoJSON in WGS 84.

The format follows the file name's suffix (:data:`FORMATS`). GeoParquet is written as version
1.1.0 with a ``bbox`` covering column (``xmin``/``ymin``/``xmax``/``ymax``, declared under
``covering`` in the ``geo`` metadata), Zstandard compression and row groups of
:data:`ROW_GROUP_ROWS` polygons: the polygons come in raster order (top row first), so each row
group covers a band of the map and its column statistics let readers skip the others. Every file
has one layer, named after the file (``quake.parquet`` -> ``quake``), and the GeoJSON beside it
follows RFC 7946 (WGS 84 longitude/latitude, no ``crs`` member).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow as pa

from geoslide.catalog.extensions import PARQUET_MEDIA
from geoslide.errors import CRSError, GeoslideError, OutputError
from geoslide.fileio import Location, location, name, with_suffix, write_atomic

ROW_GROUP_ROWS = 10_000
GEOJSON_MEDIA = "application/geo+json"


@dataclass(frozen=True)
class VectorFormat:
    """A vector format geoslide writes: its OGR driver (None: GeoParquet through pyarrow) and media type."""

    label: str
    suffix: str
    driver: str | None
    media_type: str


FORMATS = {f.suffix: f for f in (VectorFormat("GeoParquet", ".parquet", None, PARQUET_MEDIA),
                                  VectorFormat("GeoPackage", ".gpkg", "GPKG", "application/geopackage+sqlite3"),
                                  VectorFormat("FlatGeobuf", ".fgb", "FlatGeobuf", "application/vnd.flatgeobuf"))}


def vector_format(path: str | Path) -> VectorFormat:
    """The format of a vector output from its suffix; an OutputError naming the suffixes accepted."""
    suffix = Path(name(location(path))).suffix.lower()
    if suffix not in FORMATS:
        raise OutputError(f"vector output {path} must end in {', '.join(FORMATS)} (GeoParquet, GeoPackage, "
                          "FlatGeobuf; a GeoJSON in WGS84 is written beside it)")
    return FORMATS[suffix]


def check_vector_path(path: str | Path) -> Path | str:
    """The checked location of a vector output: a writable file name of a known format, not a folder."""
    loc = location(path, write=True)
    vector_format(loc)
    if isinstance(loc, Path) and loc.is_dir():
        raise OutputError(f"vector output {loc} is a folder; give a file name ending in {', '.join(FORMATS)}")
    return loc


def write_vectors(polygons: gpd.GeoDataFrame, path: str | Path) -> tuple[Location, Location]:
    """Write landslide polygons in their own CRS (format from the suffix) and, beside them, GeoJSON in WGS 84.

    Both files are written to temporary names in the target folder and renamed into place only
    once both are written, so a failure leaves no half-written file and the previous pair as it
    was; existing files of the same names are replaced. On an object store (``s3://``) each file
    is written locally and uploaded as one object, the main file last.

    Parameters
    ----------
    polygons : geopandas.GeoDataFrame
        Landslides with a CRS (e.g. from :func:`geoslide.inventory.vectorize.vectorize`).
    path : str or pathlib.Path
        The output path or URL, ending in ``.parquet`` (GeoParquet 1.1), ``.gpkg`` (GeoPackage) or
        ``.fgb`` (FlatGeobuf); the GeoJSON goes to the same name with ``.geojson``.

    Returns
    -------
    tuple of pathlib.Path or str
        The main file's and the GeoJSON's paths (or URLs).
    """
    path = check_vector_path(path)
    fmt = vector_format(path)
    if polygons.crs is None:
        raise CRSError("the polygons have no CRS; set it (gdf.set_crs('EPSG:...')) before writing them")
    geojson, layer = with_suffix(path, ".geojson"), Path(name(path)).stem
    if isinstance(path, Path):
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomic(path, lambda tmp: _write_pair(polygons, fmt, tmp, geojson, layer))
    except GeoslideError:
        raise
    except Exception as exc:  # pyarrow/pyogrio raise many types for unwritable data or folders
        raise OutputError(f"cannot write vectors to {path}: {str(exc).splitlines()[0]}") from None
    return path, geojson


def _write_pair(polygons: gpd.GeoDataFrame, fmt: VectorFormat, tmp: str, geojson: Location, layer: str) -> None:
    """The main file to its temporary name, then the GeoJSON into place; the main file is renamed last."""
    if fmt.driver is None:
        polygons.to_parquet(tmp, compression="zstd", schema_version="1.1.0", write_covering_bbox=True,
                            row_group_size=ROW_GROUP_ROWS)
    else:  # OGR drivers create their file and check its suffix: a staging name with the format's own
        staging = Path(f"{tmp}{fmt.suffix}")
        try:
            _for_ogr(polygons).to_file(staging, layer=layer, driver=fmt.driver, engine="pyogrio")
            os.replace(staging, tmp)
        finally:
            staging.unlink(missing_ok=True)
    write_atomic(geojson, lambda out: _for_ogr(polygons).to_crs(4326).to_file(out, layer=layer, driver="GeoJSON",
                                                                              engine="pyogrio", RFC7946="YES"))


def _for_ogr(polygons: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Calendar-date columns (Arrow ``date32``) as ISO ``YYYY-MM-DD`` strings, which every OGR driver writes."""
    dates = [c for c, t in polygons.dtypes.items()
             if isinstance(t, pd.ArrowDtype) and pa.types.is_date(t.pyarrow_dtype)]
    return polygons.astype({c: "string" for c in dates}) if dates else polygons
