"""What a map store is shared as: Cloud-Optimized GeoTIFFs, a STAC item, a quicklook PNG."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
import rasterio.shutil
import shapely.geometry
import xarray as xr
from rasterio.crs import CRS as RasterioCRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import transform_geom
from rasterio.windows import Window
from scipy import ndimage

from geoslide import __version__
from geoslide.errors import GridError, OutputError
from geoslide.mapping.store import NODATA, PROBABILITY_SCALE, map_attrs, map_grid, map_status, stored_array
from geoslide.raster.grid import GridSpec

COG_MEDIA = "image/tiff; application=geotiff; profile=cloud-optimized"
ZARR_MEDIA = "application/vnd+zarr"
PARQUET_MEDIA = "application/vnd.apache.parquet"
PROJECTION_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER_EXT = "https://stac-extensions.github.io/raster/v2.0.0/schema.json"
PROCESSING_EXT = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
OVERVIEW_RESAMPLING = {"probability": "AVERAGE", "mask": "MODE"}
FILL_RGB = np.array([255.0, 40.0, 0.0])
FILL_ALPHA = 0.45
OUTLINE_RGB = np.array([255, 235, 0], dtype=np.uint8)


# -- Cloud-Optimized GeoTIFF ----------------------------------------------------------------------


def export_cog(out_zarr: str | Path, variable: str, path: str | Path, blocksize: int = 512) -> Path:
    """Write ``probability`` or ``mask`` of a finished map store as a Cloud-Optimized GeoTIFF.

    The stored uint8 values are copied unchanged (nodata 255; probability carries the scale
    1/250 in its band metadata), chunk by chunk into a tiled GeoTIFF beside ``path`` that GDAL's
    COG driver then rewrites with overviews, so the map never sits in memory whole.

    Parameters
    ----------
    out_zarr
        The map store.
    variable
        ``probability`` or ``mask``.
    path
        The ``.tif`` to write (replaced if present).
    blocksize
        Tile size of the COG in pixels.
    """
    source, grid, path = stored_array(out_zarr, variable), map_grid(out_zarr), Path(path)
    status = map_status(out_zarr)
    if not status.complete:
        raise OutputError(f"{out_zarr} is unfinished ({status.done}/{status.total} chunks); "
                          "rerun `geoslide map` with the same options to complete it first")
    staging = path.with_name(path.name + ".partial.tif")
    try:
        _write_tiled(source, grid, variable, staging, map_attrs(out_zarr)["threshold"])
        rasterio.shutil.copy(staging, path, driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES",
                             BLOCKSIZE=blocksize, OVERVIEWS="AUTO", OVERVIEW_RESAMPLING=OVERVIEW_RESAMPLING[variable],
                             BIGTIFF="IF_SAFER")
    finally:
        staging.unlink(missing_ok=True)
    return path


def _write_tiled(source: Any, grid: GridSpec, variable: str, path: Path, threshold: float) -> None:
    """A tiled GeoTIFF holding the stored values, written one store chunk at a time."""
    height, width = grid.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "uint8",
               "crs": RasterioCRS.from_epsg(grid.epsg), "transform": grid.transform, "nodata": NODATA,
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "bigtiff": "IF_SAFER"}
    with rasterio.open(path, "w", **profile) as dst:
        for window, rows, cols in _chunk_windows(source.shape, source.chunks):
            dst.write(np.asarray(source[rows, cols]), 1, window=window)
        dst.set_band_description(1, variable)
        if variable == "probability":
            dst.scales, dst.offsets = (1.0 / PROBABILITY_SCALE,), (0.0,)
            dst.update_tags(1, units="1", long_name="landslide probability")
        else:
            dst.update_tags(1, flag_values="0 1", flag_meanings="background landslide", threshold=str(threshold))


def _chunk_windows(shape: tuple[int, int], chunks: tuple[int, int]) -> Iterator[tuple[Window, slice, slice]]:
    for r0 in range(0, shape[0], chunks[0]):
        for c0 in range(0, shape[1], chunks[1]):
            rows, cols = slice(r0, min(r0 + chunks[0], shape[0])), slice(c0, min(c0 + chunks[1], shape[1]))
            yield Window(c0, r0, cols.stop - c0, rows.stop - r0), rows, cols


# -- STAC item ------------------------------------------------------------------------------------


def item_path(out_zarr: str | Path) -> Path:
    """Where :func:`map_item` saves the item of a store: ``OUT.zarr`` -> ``OUT.json``."""
    return Path(out_zarr).with_suffix(".json")


def map_item(out_zarr: str | Path, inputs: Sequence[str | pystac.Item], model: Mapping[str, Any],
             params: Mapping[str, Any], *, cogs: Mapping[str, str | Path] | None = None,
             vectors: str | Path | None = None, quicklook_png: str | Path | None = None,
             save: bool = True) -> pystac.Item:
    """A STAC 1.1 item describing a map store and the files exported from it.

    Parameters
    ----------
    out_zarr
        The map store.
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
    geometry = _footprint(grid)
    start, end = _time_range(inputs, params)
    item = pystac.Item(id=Path(out_zarr).stem, geometry=geometry, bbox=list(shapely.geometry.shape(geometry).bounds),
                       datetime=end, properties=_properties(grid, fingerprint, inputs, model, params),
                       stac_extensions=[PROJECTION_EXT, RASTER_EXT, PROCESSING_EXT])
    if start != end:
        item.common_metadata.start_datetime, item.common_metadata.end_datetime = start, end
    _add_assets(item, Path(out_zarr), cogs or {}, vectors, quicklook_png)
    for href in _input_hrefs(inputs):
        item.add_link(pystac.Link("derived_from", href, media_type=pystac.MediaType.GEOJSON))
    if save:
        target = item_path(out_zarr).resolve()
        item.set_self_href(str(target))
        item.make_asset_hrefs_relative()
        item.save_object(include_self_link=False, dest_href=str(target))
    return item


def _footprint(grid: GridSpec) -> dict[str, Any]:
    box = shapely.geometry.box(*grid.bounds)
    densified = shapely.segmentize(box, max_segment_length=box.length / 40)
    return transform_geom(f"EPSG:{grid.epsg}", "EPSG:4326", shapely.geometry.mapping(densified),
                          antimeridian_cutting=True)


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
        "processing:software": {"geoslide": __version__}, "processing:datetime": now,
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


def _add_assets(item: pystac.Item, out_zarr: Path, cogs: Mapping[str, str | Path], vectors: str | Path | None,
                quicklook_png: str | Path | None) -> None:
    grid = map_grid(out_zarr)
    item.add_asset("zarr", pystac.Asset(str(out_zarr.resolve()), title="probability and mask (Zarr v3)",
                                        media_type=ZARR_MEDIA, roles=["data"],
                                        extra_fields={"bands": [_band(v, grid) for v in ("probability", "mask")]}))
    for variable, path in cogs.items():
        if variable not in ("probability", "mask"):
            raise OutputError(f"COG assets are 'probability' and 'mask', not {variable!r}")
        item.add_asset(variable, pystac.Asset(str(Path(path).resolve()), title=f"landslide {variable} (COG)",
                                              media_type=COG_MEDIA, roles=["data"],
                                              extra_fields={"bands": [_band(variable, grid)]}))
    if vectors is not None:
        item.add_asset("vectors", pystac.Asset(str(Path(vectors).resolve()), title="landslide polygons",
                                               media_type=PARQUET_MEDIA, roles=["data"]))
    if quicklook_png is not None:
        item.add_asset("quicklook", pystac.Asset(str(Path(quicklook_png).resolve()), title="quicklook",
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


# -- quicklook ------------------------------------------------------------------------------------


def quicklook(image: xr.DataArray, overlay: xr.DataArray, path: str | Path, max_size: int = 1024, *,
              threshold: float = 0.5, rgb: Sequence[str] = ("red", "green", "blue")) -> Path:
    """A PNG of ``image`` with mapped landslides tinted and outlined, at most ``max_size`` pixels a side.

    Both arrays are reduced by block means / maxima over ``f x f`` pixels (``f`` the smallest
    factor that fits ``max_size``) before anything is loaded, so a dask-backed mosaic is read
    chunk by chunk and never held whole.

    Parameters
    ----------
    image
        ``(band, y, x)`` imagery; bands named ``rgb`` are shown, else the first three (or one as grey).
        Each band is stretched between its 2nd and 98th percentile.
    overlay
        ``(y, x)`` on the image's grid: a mask (uint8, 1 = landslide) or probabilities (float,
        landslide at and above ``threshold``).
    path
        The ``.png`` to write.
    """
    if image.dims[-2:] != ("y", "x") or image.ndim != 3:
        raise GridError(f"quicklook needs imagery with dims (band, y, x), got {image.dims}")
    if overlay.shape != image.shape[1:]:
        raise GridError(f"overlay of shape {overlay.shape} is not on the image's grid {image.shape[1:]}")
    factor = max(1, math.ceil(max(image.shape[1:]) / max_size))
    colour = _stretch(_reduced_rgb(image, factor, rgb))
    hits = _reduced_hits(overlay, factor, threshold)
    return _write_png(_compose(colour, hits), Path(path))


def _pick_bands(image: xr.DataArray, rgb: Sequence[str]) -> xr.DataArray:
    names = [str(b) for b in image["band"].values] if "band" in image.coords else []
    if names and all(b in names for b in rgb):
        return image.sel(band=list(rgb))
    if image.shape[0] >= 3:
        return image.isel({image.dims[0]: [0, 1, 2]})
    return image.isel({image.dims[0]: [0, 0, 0]})


def _reduced_rgb(image: xr.DataArray, factor: int, rgb: Sequence[str]) -> np.ndarray:
    """(3, h, w) float block means, NaN where a block has no data."""
    bands = _pick_bands(image, rgb).astype(np.float32)
    if factor > 1:
        bands = bands.coarsen(y=factor, x=factor, boundary="pad").mean()
    return np.asarray(bands.values, dtype=np.float32)


def _reduced_hits(overlay: xr.DataArray, factor: int, threshold: float) -> np.ndarray:
    """(h, w) bool: any landslide pixel in the block."""
    hits = overlay == 1 if np.issubdtype(overlay.dtype, np.integer) else overlay >= threshold
    hits = hits.astype(np.uint8)
    if factor > 1:
        hits = hits.coarsen(y=factor, x=factor, boundary="pad").max()
    return np.asarray(hits.values) > 0


def _stretch(colour: np.ndarray) -> np.ndarray:
    """Each band from its 2-98 percentile range to 0..255 (float, NaN kept)."""
    out = np.full_like(colour, np.nan)
    for k, band in enumerate(colour):
        valid = band[np.isfinite(band)]
        if valid.size == 0:
            continue
        lo, hi = np.percentile(valid, [2, 98])
        out[k] = np.clip((band - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0) * 255.0
    return out


def _compose(colour: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """(4, h, w) RGBA: imagery, landslides tinted, their edges in a solid outline colour."""
    valid = np.isfinite(colour).all(axis=0)
    rgb = np.nan_to_num(colour, nan=0.0)
    tint = hits[None]
    rgb = np.where(tint, (1 - FILL_ALPHA) * rgb + FILL_ALPHA * FILL_RGB[:, None, None], rgb)
    rgba = np.zeros((4, *hits.shape), dtype=np.uint8)
    rgba[:3] = np.rint(rgb).astype(np.uint8)
    edge = hits & ~ndimage.binary_erosion(hits, border_value=0)
    rgba[:3, edge] = OUTLINE_RGB[:, None]
    rgba[3] = np.where(valid | hits, 255, 0)
    return rgba


def _write_png(rgba: np.ndarray, path: Path) -> Path:
    with warnings.catch_warnings(), rasterio.Env(GDAL_PAM_ENABLED="NO"):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="PNG", width=rgba.shape[2], height=rgba.shape[1], count=4,
                           dtype="uint8") as dst:
            dst.write(rgba)
    return path
