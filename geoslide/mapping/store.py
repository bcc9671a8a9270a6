"""The map store: a resumable Zarr v3 group holding a landslide probability map and its mask.

Layout (the only module that knows it)::

    OUT.zarr/                 group attrs: geoslide_map_store, fingerprint (threshold, grid, chunks, params)
      probability  (y, x) uint8   round(p * 250); 255 = nodata. CF ``scale_factor`` 0.004 decodes it.
      mask         (y, x) uint8   1 = landslide (p >= threshold), 0 = background, 255 = nodata
      x, y         pixel-centre coordinates (float64)
      spatial_ref  () CF grid mapping (``crs_wkt``, ``GeoTransform``) for xarray/rioxarray
      progress/done  (chunk rows, chunk cols) uint8: 1 once a chunk of both arrays is written (2 if all nodata)

Probability is quantised to 1/250 (error at most 0.002); the mask is thresholded on the unquantised
probability. Store chunks equal the input's dask chunks. Each chunk is computed, written into both
arrays and only then marked done, so a rerun with the same fingerprint computes only the chunks not
yet done and ends with the same bytes as an uninterrupted run. The store is created with a
``partial`` marker that the format attribute replaces last: a half-created store is started again
by the next run. Writers hold the output's lock (:func:`geoslide.fileio.output_lock`). The
``exports`` attribute lists the files written beside the store (PNG, item, COGs, vectors), which
a rerun may replace; any other file of those names is left alone.

Readers: ``xr.open_zarr(out, decode_coords="all")`` gives the CRS through rioxarray (``spatial_ref``
is also listed in ``coordinates``, so plain ``open_zarr`` works too). GDAL's Zarr driver (tested with
3.12) takes the CRS from the ``_CRS`` attribute (or the CF ``grid_mapping``), the geotransform from the
regular ``x``/``y`` arrays named in ``dimension_names`` and nodata from ``fill_value``:
``ZARR:"OUT.zarr":/mask``. GDAL 3.10 and older cannot read any Zarr v3 array zarr-python writes (they
predate the ``bytes`` codec), so use :mod:`geoslide.mapping.cog` COGs there. Chunks are gzip-compressed,
the one codec every GDAL Zarr build decodes; gzip headers carry a write time, so chunk files of two
runs differ in those four bytes only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
import zarr
from pyproj import CRS
from tqdm.auto import tqdm
from zarr.codecs import GzipCodec

from geoslide.errors import ConfigError, CRSError, GridError, OutputError
from geoslide.fileio import Location, exists, location, output_lock, remove_tree, zarr_store
from geoslide.inventory.codes import MASK_NODATA
from geoslide.mapping.blocks import BlockSink, compute_blocks
from geoslide.progress import show_progress
from geoslide.raster.grid import GridSpec, grid_of

FORMAT = "geoslide-map-store/1"
PARTIAL = "geoslide_map_store_partial"
NODATA = MASK_NODATA
PROBABILITY_SCALE = 250
DONE = "progress/done"
DONE_EMPTY = 2  # a done chunk without one valid pixel (DONE holds 0: to do, 1: done)
VARIABLES = ("probability", "mask")
DEFAULT_CHUNK = 1024
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MapStatus:
    """How far a map store is: chunks written out of all chunks, and how many of those are all nodata."""

    done: int
    total: int
    nodata: int = 0

    @property
    def complete(self) -> bool:
        """Whether every chunk is written."""
        return self.done == self.total


def write_map(probability: xr.DataArray, out: str | Path, threshold: float, attrs: Mapping[str, Any],
              progress: bool | None = None, client: Any = None) -> Location:
    """Compute ``probability`` chunk by chunk into a map store, resuming one left unfinished.

    Parameters
    ----------
    probability
        Lazy ``(y, x)`` probabilities in [0, 1] with NaN as nodata, pixel-centre coordinates on a
        regular north-up grid and a CRS (rioxarray). Its dask chunks become the store's chunks.
    out
        Path or URL (``s3://``) of the Zarr v3 store.
    threshold
        Probability at and above which a pixel is a landslide in ``mask``.
    attrs
        JSON-ready parameters that identify the run (model id, input item ids, ...). With the
        threshold, grid and chunks they form the fingerprint a rerun must match.
    progress
        Show a progress bar over chunks; None: when a person watches (:func:`geoslide.progress.watching`).
    client
        A ``distributed.Client`` to compute on; dask's default scheduler otherwise.

    Returns
    -------
    Path or str
        ``out``: a Path, or the URL.

    Raises
    ------
    OutputError
        ``out`` holds something else, or a map made with another fingerprint.
    GridError, CRSError, ConfigError
        Probabilities off a regular (y, x) grid or without CRS; a threshold outside (0, 1).
    """
    progress = show_progress(progress)
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
    probability = _prepared(probability)
    encoded = encode(probability.data, threshold)
    return write_encoded(encoded, grid_of(probability), out, threshold, attrs, progress=progress, client=client)


def write_encoded(encoded: da.Array, grid: GridSpec, out: str | Path, threshold: float, attrs: Mapping[str, Any],
                  progress: bool = False, client: Any = None, empty: Collection[tuple[int, int]] = ()) -> Location:
    """Compute already encoded ``(2, y, x)`` uint8 blocks (see :func:`encode`) into a map store, resuming.

    As :func:`write_map`, for a map whose blocks are made some other way (one task per chunk, see
    :mod:`geoslide.mapping.chunkmap`). ``empty``: chunk indices known to hold no data; they are
    marked done without being computed (the store reads them as nodata, its fill value).
    """
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
    chunks = (encoded.chunks[1][0], encoded.chunks[2][0])
    fingerprint = _fingerprint(grid, chunks, threshold, attrs)
    with output_lock(out):
        group = _open_matching(out, fingerprint)
        if group is None:
            group = _create(out, grid, chunks, fingerprint, threshold)
        _compute(group, encoded, chunks, out, progress, client, empty)
    return location(out)


def _compute(group: zarr.Group, encoded: da.Array, chunks: tuple[int, int], out: str | Path, progress: bool,
             client: Any, empty: Collection[tuple[int, int]] = ()) -> None:
    """Compute and write the chunks not yet done; ``empty`` ones are marked done (all nodata) unread."""
    done = np.asarray(group[DONE][...])
    if empty and not done.all():
        for i, j in empty:
            done[i, j] = DONE_EMPTY
        group[DONE][...] = done
    todo = [(int(i), int(j)) for i, j in np.argwhere(done == 0)]
    if not todo:
        logger.info("%s is complete (%d/%d chunks); nothing to compute", out, done.size, done.size)
        return
    with tqdm(total=done.size, initial=done.size - len(todo), unit="chunk", desc="map",
              disable=not progress) as bar:
        compute_blocks(encoded, todo, _block_writer(group, chunks, bar), client)


def encode(probability: da.Array, threshold: float) -> da.Array:
    """Stored form of probabilities: ``(2, y, x)`` uint8, [0] scaled probability, [1] mask."""
    return da.map_blocks(encode_block, probability, threshold, new_axis=[0], dtype=np.uint8,
                         chunks=((2,), *probability.chunks))


def encode_block(p: np.ndarray, threshold: float) -> np.ndarray:
    """One block of probabilities (NaN nodata) in stored form: ``(2, h, w)`` uint8, scaled probability and mask."""
    nodata = np.isnan(p)
    scaled = np.where(nodata, NODATA, np.rint(np.clip(p, 0.0, 1.0) * PROBABILITY_SCALE)).astype(np.uint8)
    mask = np.where(nodata, NODATA, p >= threshold).astype(np.uint8)
    return np.stack([scaled, mask])


def decode_probability(raw: np.ndarray | xr.DataArray) -> np.ndarray | xr.DataArray:
    """float32 probabilities (NaN = nodata) from stored uint8 values."""
    scaled = raw.astype(np.float32) / np.float32(PROBABILITY_SCALE)
    if isinstance(scaled, xr.DataArray):
        return scaled.where(raw != NODATA)
    return np.where(raw == NODATA, np.float32(np.nan), scaled)


def open_map(out: str | Path) -> xr.Dataset:
    """The map as a lazy Dataset: ``probability`` float32 (NaN nodata), ``mask`` uint8 (255 nodata), with CRS."""
    group = _open_map_group(out)
    raw = xr.open_zarr(zarr_store(out), decode_coords="all", mask_and_scale=False, consolidated=False, zarr_format=3)
    crs = CRS.from_epsg(group.attrs["fingerprint"]["grid"]["epsg"])
    probability = decode_probability(raw["probability"]).rename("probability")
    probability.attrs = {"long_name": "landslide probability", "units": "1"}
    mask = raw["mask"]
    mask.attrs = {k: v for k, v in mask.attrs.items() if k not in ("_CRS", "grid_mapping", "coordinates")}
    ds = xr.Dataset({"probability": probability, "mask": mask})
    ds.attrs = {"threshold": group.attrs["fingerprint"]["threshold"]}
    return ds.rio.write_crs(crs)


def read_probability(out: str | Path) -> xr.DataArray:
    """Probabilities of a map store as lazy float32 with NaN nodata and CRS."""
    return open_map(out)["probability"]


def map_status(out: str | Path) -> MapStatus:
    """Chunks done and in all of a map store."""
    done = np.asarray(_open_map_group(out)[DONE][...])
    return MapStatus(int(np.count_nonzero(done)), int(done.size), int(np.count_nonzero(done == DONE_EMPTY)))


def map_exports(out: str | Path) -> set[str]:
    """The files (absolute paths or URLs) recorded as written by geoslide for the map store at ``out``.

    Empty when there is no map store there yet.
    """
    if not exists(out) or _kind(out)[1] != FORMAT:
        return set()
    return set(_open_map_group(out).attrs.get("exports", []))


def record_exports(out: str | Path, hrefs: set[str]) -> None:
    """Record files geoslide is about to write for this map (before writing them), so reruns may replace them."""
    group = _open_map_group(out, mode="r+")
    group.attrs["exports"] = sorted(set(group.attrs.get("exports", [])) | set(hrefs))


def map_grid(out: str | Path) -> GridSpec:
    """The grid a map store is on."""
    grid = _open_map_group(out).attrs["fingerprint"]["grid"]
    return GridSpec(grid["epsg"], tuple(grid["bounds"]), grid["resolution"])


def stored_array(out: str | Path, variable: str) -> zarr.Array:
    """The stored uint8 ``probability`` or ``mask`` array (255 = nodata), read-only."""
    if variable not in VARIABLES:
        raise OutputError(f"a map store holds {', '.join(VARIABLES)}, not {variable!r}")
    return _open_map_group(out)[variable]


def map_attrs(out: str | Path) -> dict[str, Any]:
    """The fingerprint of a map store: threshold, grid, chunks and the caller's ``attrs``."""
    return dict(_open_map_group(out).attrs["fingerprint"])


# -- input checks ---------------------------------------------------------------------------------


def _prepared(probability: xr.DataArray) -> xr.DataArray:
    """Checked (y, x) float32 dask-backed probabilities with regular chunks."""
    if probability.dims != ("y", "x"):
        raise GridError(f"probabilities need dims ('y', 'x'), got {probability.dims}; squeeze or transpose them")
    if probability.rio.crs is None:
        raise CRSError("probabilities have no CRS; write one with .rio.write_crs('EPSG:...')")
    if probability.chunks is None:
        probability = probability.chunk({"y": DEFAULT_CHUNK, "x": DEFAULT_CHUNK})
    chunks = probability.chunks
    if not all(_regular(c) for c in chunks):
        probability = probability.chunk({"y": chunks[0][0], "x": chunks[1][0]})
    return probability.astype(np.float32)


def _regular(chunks: tuple[int, ...]) -> bool:
    return all(c == chunks[0] for c in chunks[:-1]) and chunks[-1] <= chunks[0]


def _fingerprint(grid: GridSpec, chunks: tuple[int, int], threshold: float, attrs: Mapping[str, Any]
                 ) -> dict[str, Any]:
    """JSON-normalised parameters a rerun must match."""
    fp = {"threshold": float(threshold), "chunks": list(chunks), "params": dict(attrs),
          "grid": {"epsg": grid.epsg, "bounds": [round(float(v), 9) for v in grid.bounds],
                   "resolution": round(float(grid.resolution), 12)}}
    try:
        return json.loads(json.dumps(fp, sort_keys=True))
    except TypeError as err:
        raise OutputError(f"map attrs must be JSON-serialisable: {err}") from None


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# -- the store ------------------------------------------------------------------------------------


def _open_map_group(out: str | Path, mode: str = "r") -> zarr.Group:
    """An existing map store; anything else at ``out`` is an OutputError."""
    if not exists(out):
        raise OutputError(f"no map store at {out}; write one with `geoslide map --out {out}`")
    group, kind = _kind(out, mode)
    if kind == PARTIAL:
        raise OutputError(f"{out} is a map store whose creation was interrupted; rerun `geoslide map` (it starts "
                          "the store again)")
    if kind != FORMAT:
        raise OutputError(f"{out} exists and is not a geoslide map store; pick a new --out or delete it")
    return group


def _kind(out: str | Path, mode: str = "r") -> tuple[zarr.Group | None, str | None]:
    """The group at ``out`` and FORMAT for a map store, PARTIAL for a half-created one, else None."""
    try:
        group = zarr.open_group(zarr_store(out, read_only=mode == "r"), mode=mode, zarr_format=3)
        attrs = group.attrs.asdict()
    except (OSError, zarr.errors.BaseZarrError, ValueError, KeyError):
        return None, None
    if attrs.get("geoslide_map_store") == FORMAT:
        return group, FORMAT
    return group, PARTIAL if attrs.get(PARTIAL) == FORMAT else None


def check_map_out(out: str | Path) -> None:
    """An OutputError, before any work, if ``out`` holds something that is not a (half-created) map store."""
    if exists(out) and _kind(out)[1] is None:
        raise OutputError(f"{out} exists and is not a geoslide map store; pick a new --out or delete it")


def _open_matching(out: str | Path, fingerprint: dict[str, Any]) -> zarr.Group | None:
    """The store at ``out`` if it was started with ``fingerprint``; None if nothing is there.

    A half-created store (killed before its format attribute was written) is removed first.
    """
    if exists(out) and _kind(out)[1] == PARTIAL:
        remove_tree(out)
    if not exists(out):
        return None
    group = _open_map_group(out, mode="r+")
    old = _flat(group.attrs["fingerprint"])
    new = _flat(fingerprint)
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        detail = "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in changed[:3])
        raise OutputError(f"{out} holds a map made with other parameters ({detail}); "
                          "pick a new --out or delete the old store")
    return group


def _create(out: str | Path, grid: GridSpec, chunks: tuple[int, int], fingerprint: dict[str, Any],
            threshold: float) -> zarr.Group:
    """A new, empty store; the format attribute is written last."""
    group = zarr.open_group(zarr_store(out, read_only=False), mode="w-", zarr_format=3, attributes={PARTIAL: FORMAT})
    georef = {"_CRS": _gdal_crs(grid.crs), "grid_mapping": "spatial_ref", "coordinates": "spatial_ref"}
    prob_attrs = {**georef, "_FillValue": NODATA, "scale_factor": 1.0 / PROBABILITY_SCALE, "add_offset": 0.0,
                  "long_name": "landslide probability", "units": "1"}
    mask_attrs = {**georef, "_FillValue": NODATA, "long_name": "landslide mask", "flag_values": [0, 1],
                  "flag_meanings": "background landslide", "threshold": float(threshold)}
    for name, attrs in (("probability", prob_attrs), ("mask", mask_attrs)):
        group.create_array(name, shape=grid.shape, chunks=chunks, dtype="uint8", fill_value=NODATA,
                           compressors=GzipCodec(), dimension_names=("y", "x"), attributes=attrs)
    _write_coords(group, grid)
    n_blocks = tuple(-(-n // c) for n, c in zip(grid.shape, chunks, strict=True))
    group.create_array(DONE, shape=n_blocks, chunks=tuple(min(n, 256) for n in n_blocks), dtype="uint8",
                       fill_value=0, compressors=GzipCodec(), dimension_names=("chunk_y", "chunk_x"))
    group.attrs.update({"geoslide_map_store": FORMAT, "fingerprint": fingerprint})  # last: the store is whole
    return group


def _gdal_crs(crs: CRS) -> dict[str, Any]:
    """The ``_CRS`` attribute GDAL's Zarr driver reads."""
    out: dict[str, Any] = {"wkt": crs.to_wkt(), "projjson": crs.to_json_dict()}
    epsg = crs.to_epsg()
    if epsg is not None:
        out["url"] = f"http://www.opengis.net/def/crs/EPSG/0/{epsg}"
    return out


def _write_coords(group: zarr.Group, grid: GridSpec) -> None:
    crs = grid.crs
    unit = crs.axis_info[0].unit_name if crs.axis_info else "unknown"
    for dim, values in (("x", grid.x_coords()), ("y", grid.y_coords())):
        name = "projection_x_coordinate" if dim == "x" else "projection_y_coordinate"
        if crs.is_geographic:
            name = "longitude" if dim == "x" else "latitude"
        attrs = {"standard_name": name, "long_name": f"{dim} coordinate of pixel centres", "units": unit,
                 "axis": dim.upper()}
        arr = group.create_array(dim, shape=values.shape, chunks=values.shape, dtype="float64", fill_value=np.nan,
                                 compressors=GzipCodec(), dimension_names=(dim,), attributes=attrs)
        arr[:] = values
    cf = crs.to_cf()
    cf.update({"spatial_ref": cf["crs_wkt"], "GeoTransform": " ".join(repr(v) for v in grid.transform.to_gdal())})
    ref = group.create_array("spatial_ref", shape=(), dtype="int64", fill_value=0, compressors=GzipCodec(),
                             attributes=cf)
    ref[...] = 0


def _block_writer(group: zarr.Group, chunks: tuple[int, int], bar: tqdm) -> BlockSink:
    """A sink writing one encoded block into both arrays, then marking it done."""
    probability, mask, done = group["probability"], group["mask"], group[DONE]
    cy, cx = chunks

    def write(index: tuple[int, int], block: np.ndarray) -> None:
        i, j = index
        rows, cols = slice(i * cy, i * cy + block.shape[1]), slice(j * cx, j * cx + block.shape[2])
        probability[rows, cols] = block[0]
        mask[rows, cols] = block[1]
        done[i, j] = DONE_EMPTY if (block[1] == NODATA).all() else 1
        bar.update(1)

    return write
