"""Landslide polygons -> GeoParquet in their own CRS and GeoJSON in WGS 84, written together."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd

from geoslide.errors import CRSError, GeoslideError, OutputError
from geoslide.fileio import Location, location, name, with_suffix, write_atomic


def check_vector_path(path: str | Path) -> Path | str:
    """The checked location of a vector output: a writable ``.parquet`` file name, not a folder."""
    loc = location(path, write=True)
    if Path(name(loc)).suffix.lower() != ".parquet":
        raise OutputError(f"vector output {loc} must end in .parquet (a GeoJSON in WGS84 is written beside it)")
    if isinstance(loc, Path) and loc.is_dir():
        raise OutputError(f"vector output {loc} is a folder; give a file name ending in .parquet")
    return loc


def write_vectors(polygons: gpd.GeoDataFrame, path: str | Path) -> tuple[Location, Location]:
    """Write landslide polygons as GeoParquet (their own CRS) and, beside it, GeoJSON in WGS 84.

    Both files are written to temporary names in the target folder and renamed into place only
    once both are written, so a failure leaves no half-written file and the previous pair as it
    was; existing files of the same names are replaced. On an object store (``s3://``) each file
    is written locally and uploaded as one object, the GeoParquet last.

    Parameters
    ----------
    polygons : geopandas.GeoDataFrame
        Landslides with a CRS (e.g. from :func:`geoslide.inventory.vectorize.vectorize`).
    path : str or pathlib.Path
        The GeoParquet path or URL, ending in ``.parquet``; the GeoJSON goes to the same name with ``.geojson``.

    Returns
    -------
    tuple of pathlib.Path or str
        The GeoParquet and GeoJSON paths (or URLs).
    """
    path = check_vector_path(path)
    if polygons.crs is None:
        raise CRSError("the polygons have no CRS; set it (gdf.set_crs('EPSG:...')) before writing them")
    geojson = with_suffix(path, ".geojson")
    if isinstance(path, Path):
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomic(path, lambda tmp: _write_pair(polygons, tmp, geojson))
    except GeoslideError:
        raise
    except Exception as exc:  # pyarrow/pyogrio raise many types for unwritable data or folders
        raise OutputError(f"cannot write vectors to {path}: {str(exc).splitlines()[0]}") from None
    return path, geojson


def _write_pair(polygons: gpd.GeoDataFrame, parquet_tmp: str, geojson: Location) -> None:
    """The GeoParquet to its temporary file, then the GeoJSON into place; the GeoParquet is renamed last."""
    polygons.to_parquet(parquet_tmp)
    write_atomic(geojson, lambda tmp: polygons.to_crs(4326).to_file(tmp, driver="GeoJSON", engine="pyogrio",
                                                                     RFC7946="YES"))
