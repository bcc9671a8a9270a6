"""The map store: a resumable Zarr group (v3, or v2 on request) holding a landslide probability map and its mask.

Layout (the only module that knows it)::

    OUT.zarr/                 group attrs: geoslide_map_store, fingerprint (threshold, grid, chunks, params),
                              CF ``Conventions``, the zarr-conventions ``proj:`` and ``spatial:`` attributes
      probability  (y, x) uint8   round(p * 250); 255 = nodata. CF ``scale_factor`` 0.004 decodes it.
      mask         (y, x) uint8   1 = landslide (p >= threshold), 0 = background, 255 = nodata
      x, y         pixel-centre coordinates (float64)
      spatial_ref  () CF grid mapping (``crs_wkt``, ``GeoTransform``) for xarray/rioxarray
      progress/done  (chunk rows * chunk cols,) uint8: 1 once a chunk of both arrays is written (2 if all
                     nodata); left out of the consolidated metadata

Probability is quantised to 1/250 (error at most 0.002); the mask is thresholded on the unquantised
probability. Store chunks equal the input's dask chunks. Each chunk is computed, written into both
arrays and only then marked done, so a rerun with the same fingerprint computes only the chunks not
yet done and ends with the same bytes as an uninterrupted run. The store is created with a
``partial`` marker that the format attribute replaces last: a half-created store is started again
by the next run. Writers hold the output's lock (:func:`geoslide.fileio.output_lock`). The
``exports`` attribute of ``progress/done`` lists the files written beside the store (PNG, item,
COGs, vectors), which a rerun may replace; any other file of those names is left alone. ``progress/done`` is not in the
consolidated metadata, so GDAL and xarray, which list what that metadata lists, do not show it;
geoslide reads its own attributes without the consolidated copy.

Readers: :func:`open_map` gives float32 probabilities. ``xr.open_zarr(out, decode_coords="all")``
gives the CRS through rioxarray (``spatial_ref`` is also listed in ``coordinates``, so plain
``open_zarr`` works too); its CF decoding of ``probability`` is float64, because xarray takes the
float type of a JSON ``scale_factor`` as float64. The metadata is consolidated, so xarray opens the
store without warning. GDAL's Zarr driver takes the CRS from the ``_CRS`` attribute (or the CF
``grid_mapping``), the geotransform from the regular ``x``/``y`` arrays and nodata from the fill
value: ``ZARR:"OUT.zarr":/mask``. A Zarr v3 store needs GDAL >= 3.11 (3.10 and older lack the
``bytes`` codec); ``zarr_format=2`` writes a store that GDAL 3.6-3.10 (Debian 12, rasterio 1.4
wheels, most QGIS installs) read, tested with each. Chunks are gzip-compressed, the one codec
every GDAL Zarr build decodes; gzip headers carry a write time, so chunk files of two runs differ
in those four bytes only.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
import zarr
from numcodecs import GZip
from pyproj import CRS
from tqdm.auto import tqdm
from zarr.codecs import GzipCodec

from geoslide._version import version
from geoslide.errors import ConfigError, CRSError, GridError, OutputError
from geoslide.fileio import Location, exists, location, output_lock, remove_tree, zarr_store
from geoslide.inventory.codes import MASK_NODATA
from geoslide.mapping.blocks import BlockSink, compute_blocks
from geoslide.mapping.spec import check_zarr_format
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
# zarr-conventions registrations, as each convention's README gives them
PROJ_CONVENTION = {
    "schema_url": "https://raw.githubusercontent.com/zarr-experimental/geo-proj/refs/tags/v1/schema.json",
    "spec_url": "https://github.com/zarr-experimental/geo-proj/blob/v1/README.md",
    "uuid": "f17cb550-5864-4468-aeb7-f3180cfb622f", "name": "proj:",
    "description": "Coordinate reference system information for geospatial data"}
SPATIAL_CONVENTION = {
    "schema_url": "https://raw.githubusercontent.com/zarr-conventions/spatial/refs/tags/v0.1/schema.json",
    "spec_url": "https://github.com/zarr-conventions/spatial/blob/v0.1/README.md",
    "uuid": "689b58e2-cf7b-45e0-9fff-9cfc0883d6b4", "name": "spatial",
    "description": "Spatial coordinate information"}
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
              progress: bool | None = None, client: Any = None, zarr_format: int = 3) -> Location:
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
    zarr_format
        3 (default), or 2 for GDAL 3.6-3.10 and the QGIS builds on them. A rerun must give the
        format the store was started with.

    Returns
    -------
    Path or str
        ``out``: a Path, or the URL.

    Raises
    ------
    OutputError
        ``out`` holds something else, a map made with another fingerprint or in the other Zarr format.
    GridError, CRSError, ConfigError
        Probabilities off a regular (y, x) grid or without CRS; a threshold outside (0, 1); a
        Zarr format other than 2 or 3.
    """
    progress = show_progress(progress)
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
    check_zarr_format(zarr_format)
    probability = _prepared(probability)
    encoded = encode(probability.data, threshold)
    return write_encoded(encoded, grid_of(probability), out, threshold, attrs, progress=progress, client=client,
                         zarr_format=zarr_format)


def write_encoded(encoded: da.Array, grid: GridSpec, out: str | Path, threshold: float, attrs: Mapping[str, Any],
                  progress: bool | None = False, client: Any = None, empty: Collection[tuple[int, int]] = (),
                  zarr_format: int = 3) -> Location:
    """Compute already encoded ``(2, y, x)`` uint8 blocks (see :func:`encode`) into a map store, resuming.

    As :func:`write_map`, for a map whose blocks are made some other way (one task per chunk, see
    :mod:`geoslide.mapping.chunkmap`). ``empty``: chunk indices known to hold no data; they are
    marked done without being computed (the store reads them as nodata, its fill value).
    """
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
    check_zarr_format(zarr_format)
    progress = show_progress(progress)
    chunks = (encoded.chunks[1][0], encoded.chunks[2][0])
    fingerprint = _fingerprint(grid, chunks, threshold, attrs)
    with output_lock(out):
        group = _open_matching(out, fingerprint, zarr_format)
        if group is None:
            group = _create(out, grid, chunks, fingerprint, threshold, zarr_format)
        _compute(group, encoded, grid, chunks, out, progress, client, empty)
    return location(out)


def _compute(group: zarr.Group, encoded: da.Array, grid: GridSpec, chunks: tuple[int, int], out: str | Path,
             progress: bool, client: Any, empty: Collection[tuple[int, int]] = ()) -> None:
    """Compute and write the chunks not yet done; ``empty`` ones are marked done (all nodata) unread."""
    array = _done_array(out, grid, chunks)
    done = np.asarray(array[...]).reshape(_n_blocks(grid, chunks))
    if empty and not done.all():
        for i, j in empty:
            done[i, j] = DONE_EMPTY
        array[...] = done.reshape(array.shape)
    todo = [(int(i), int(j)) for i, j in np.argwhere(done == 0)]
    if not todo:
        logger.info("%s is complete (%d/%d chunks); nothing to compute", out, done.size, done.size)
        return
    with tqdm(total=done.size, initial=done.size - len(todo), unit="chunk", desc="map",
              disable=not progress) as bar:
        compute_blocks(encoded, todo, _block_writer(group, array, chunks, bar), client)


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
    raw = xr.open_zarr(zarr_store(out), decode_coords="all", mask_and_scale=False)
    crs = CRS.from_epsg(group.attrs["fingerprint"]["grid"]["epsg"])
    probability = decode_probability(raw["probability"]).rename("probability")
    probability.attrs = {"long_name": "landslide probability", "units": "1"}
    mask = raw["mask"]
    mask.attrs = {k: v for k, v in mask.attrs.items()
                  if k not in ("_CRS", "grid_mapping", "coordinates") and not k.startswith(("spatial:", "proj:"))}
    ds = xr.Dataset({"probability": probability, "mask": mask})
    ds.attrs = {"threshold": group.attrs["fingerprint"]["threshold"]}
    return ds.rio.write_crs(crs)


def read_probability(out: str | Path) -> xr.DataArray:
    """Probabilities of a map store as lazy float32 with NaN nodata and CRS."""
    return open_map(out)["probability"]


def map_status(out: str | Path) -> MapStatus:
    """Chunks done and in all of a map store."""
    _open_map_group(out)
    done = np.asarray(zarr.open_array(zarr_store(out), path=DONE, mode="r")[...])
    return MapStatus(int(np.count_nonzero(done)), int(done.size), int(np.count_nonzero(done == DONE_EMPTY)))


def map_exports(out: str | Path) -> set[str]:
    """The files (absolute paths or URLs) recorded as written by geoslide for the map store at ``out``.

    Empty when there is no map store there yet.
    """
    if not exists(out) or _kind(out)[1] != FORMAT:
        return set()
    try:
        done = zarr.open_array(zarr_store(out), path=DONE, mode="r")
    except (FileNotFoundError, KeyError, zarr.errors.ArrayNotFoundError, zarr.errors.NodeTypeValidationError):
        return set()
    return set(done.attrs.get("exports", []))


def record_exports(out: str | Path, hrefs: set[str]) -> None:
    """Record files geoslide is about to write for this map (before writing them), so reruns may replace them.

    The list is kept with the progress array, outside the consolidated metadata, which rewriting the
    group's attributes would drop.
    """
    _open_map_group(out)
    done = zarr.open_array(zarr_store(out, read_only=False), path=DONE, mode="r+")
    done.attrs["exports"] = sorted(set(done.attrs.get("exports", [])) | set(hrefs))


def map_zarr_format(out: str | Path) -> int:
    """The Zarr format (2 or 3) of a map store."""
    return int(_open_map_group(out).metadata.zarr_format)


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
    """The group at ``out`` and FORMAT for a map store, PARTIAL for a half-created one, else None.

    Attributes are read from the group itself, not the consolidated copy, which geoslide's own
    bookkeeping (``exports``) leaves behind.
    """
    try:
        group = zarr.open_group(zarr_store(out, read_only=mode == "r"), mode=mode, use_consolidated=False)
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


def _open_matching(out: str | Path, fingerprint: dict[str, Any], zarr_format: int) -> zarr.Group | None:
    """The store at ``out`` if it was started with ``fingerprint`` in ``zarr_format``; None if nothing is there.

    A half-created store (killed before its format attribute was written) is removed first.
    """
    if exists(out) and _kind(out)[1] == PARTIAL:
        remove_tree(out)
    if not exists(out):
        return None
    group = _open_map_group(out, mode="r+")
    if group.metadata.zarr_format != zarr_format:
        raise OutputError(f"{out} is a Zarr v{group.metadata.zarr_format} map store, not v{zarr_format}; pass "
                          f"--zarr-format {group.metadata.zarr_format} to resume it, or pick a new --out")
    old = _flat(group.attrs["fingerprint"])
    new = _flat(fingerprint)
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        detail = "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in changed[:3])
        raise OutputError(f"{out} holds a map made with other parameters ({detail}); "
                          "pick a new --out or delete the old store")
    return group


def _create(out: str | Path, grid: GridSpec, chunks: tuple[int, int], fingerprint: dict[str, Any],
            threshold: float, zarr_format: int) -> zarr.Group:
    """A new, empty store; the format attribute is written last, then the metadata is consolidated."""
    group = zarr.open_group(zarr_store(out, read_only=False), mode="w-", zarr_format=zarr_format,
                            attributes={PARTIAL: FORMAT})
    georef = {"_CRS": _gdal_crs(grid.crs), "grid_mapping": "spatial_ref", "coordinates": "spatial_ref",
              **_spatial_attrs(grid, arrays=True)}
    prob_attrs = {**georef, "_FillValue": NODATA, "scale_factor": 1.0 / PROBABILITY_SCALE, "add_offset": 0.0,
                  "long_name": "landslide probability", "units": "1"}
    mask_attrs = {**georef, "_FillValue": NODATA, "long_name": "landslide mask", "flag_values": [0, 1],
                  "flag_meanings": "background landslide", "threshold": float(threshold)}
    for name, attrs in (("probability", prob_attrs), ("mask", mask_attrs)):
        _new_array(group, name, grid.shape, chunks, "uint8", NODATA, ("y", "x"), attrs)
    _write_coords(group, grid)
    group.attrs.update({"Conventions": "CF-1.8", "title": "landslide probability and mask",
                        "source": f"geoslide {version()}", **_spatial_attrs(grid, arrays=False),
                        "geoslide_map_store": FORMAT, "fingerprint": fingerprint})
    del group.attrs[PARTIAL]  # the store is whole
    return _consolidated(out, zarr_format)


def _done_array(out: str | Path, grid: GridSpec, chunks: tuple[int, int]) -> zarr.Array:
    """The progress array, created (all zeros) if missing.

    It is made after the metadata is consolidated and so is left out of it: GDAL lists the arrays
    of the consolidated metadata as subdatasets, and xarray does not see it either.
    """
    try:
        return zarr.open_array(zarr_store(out, read_only=False), path=DONE, mode="r+")
    except (FileNotFoundError, KeyError, zarr.errors.ArrayNotFoundError, zarr.errors.NodeTypeValidationError):
        group = zarr.open_group(zarr_store(out, read_only=False), mode="r+", use_consolidated=False)
        n_done = int(np.prod(_n_blocks(grid, chunks)))
        return _new_array(group, DONE, (n_done,), (min(n_done, 65536),), "uint8", 0, ("chunk",), {})


def _n_blocks(grid: GridSpec, chunks: tuple[int, int]) -> tuple[int, int]:
    return tuple(-(-n // c) for n, c in zip(grid.shape, chunks, strict=True))  # type: ignore[return-value]


def _new_array(group: zarr.Group, name: str, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str,
               fill: Any, dims: tuple[str, ...], attrs: dict[str, Any]) -> zarr.Array:
    """A gzip-compressed array named by ``dims`` the way its Zarr format names dimensions."""
    if group.metadata.zarr_format == 2:
        return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                                  compressors=GZip(5), attributes={**attrs, "_ARRAY_DIMENSIONS": list(dims)})
    return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                              compressors=GzipCodec(), dimension_names=dims or None, attributes=attrs)


def _consolidated(out: str | Path, zarr_format: int) -> zarr.Group:
    """Consolidate the store's metadata (xarray opens it without a warning) and reopen it for writing."""
    with warnings.catch_warnings():  # zarr-python notes that v3 consolidation is its own extension
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        zarr.consolidate_metadata(zarr_store(out, read_only=False), zarr_format=zarr_format)
    return zarr.open_group(zarr_store(out, read_only=False), mode="r+")


def _spatial_attrs(grid: GridSpec, arrays: bool) -> dict[str, Any]:
    """zarr-conventions ``proj:`` (CRS) and ``spatial:`` (grid) attributes; arrays name their dimensions."""
    crs = grid.crs
    out: dict[str, Any] = {
        "proj:code": f"EPSG:{grid.epsg}", "proj:wkt2": crs.to_wkt(), "spatial:dimensions": ["y", "x"],
        "spatial:transform": [float(v) for v in list(grid.transform)[:6]],
        "spatial:shape": [int(n) for n in grid.shape], "spatial:bbox": [float(v) for v in grid.bounds],
        "spatial:registration": "pixel"}
    if not arrays:
        out = {"zarr_conventions": [PROJ_CONVENTION, SPATIAL_CONVENTION], **out}
    return out


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
        arr = _new_array(group, dim, values.shape, values.shape, "float64", np.nan, (dim,), attrs)
        arr[:] = values
    cf = crs.to_cf()
    cf.update({"spatial_ref": cf["crs_wkt"], "GeoTransform": " ".join(repr(v) for v in grid.transform.to_gdal())})
    ref = _new_array(group, "spatial_ref", (), (), "int64", 0, (), cf)
    ref[...] = 0


def _block_writer(group: zarr.Group, done: zarr.Array, chunks: tuple[int, int], bar: tqdm) -> BlockSink:
    """A sink writing one encoded block into both arrays, then marking it done."""
    probability, mask = group["probability"], group["mask"]
    cy, cx = chunks
    n_cols = -(-probability.shape[1] // cx)

    def write(index: tuple[int, int], block: np.ndarray) -> None:
        i, j = index
        rows, cols = slice(i * cy, i * cy + block.shape[1]), slice(j * cx, j * cx + block.shape[2])
        probability[rows, cols] = block[0]
        mask[rows, cols] = block[1]
        done[(i, j) if done.ndim == 2 else i * n_cols + j] = DONE_EMPTY if (block[1] == NODATA).all() else 1
        bar.update(1)

    return write
