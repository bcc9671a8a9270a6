"""Build a training set: STAC items + inventory -> patches in a Zarr patch store (``geoslide patches``)."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import pystac
import xarray as xr

from geoslide.cluster import announce_dashboard, check_visible, shared_parent, task_path
from geoslide.data.patches import PatchSpec, extract, meets, plan_windows, select_windows, window_bounds, window_sums
from geoslide.data.splits import SplitOptions, assign_split, check_split, warn_leak
from geoslide.data.store import PatchStore
from geoslide.errors import GeoslideWarning, LabelError
from geoslide.fileio import check_writable, output_lock, read_bytes
from geoslide.inventory.codes import MASK_NODATA
from geoslide.inventory.rastermask import is_raster_mask, labels_on_grid
from geoslide.inventory.read import has_polygons, prepare_inventory, read_inventory
from geoslide.progress import show_progress
from geoslide.raster.cube import common_bands
from geoslide.raster.derived import DIFFERENCE_PREFIX, is_derived
from geoslide.raster.grid import GridSpec, grid_of
from geoslide.raster.inputs import load_inputs
from geoslide.raster.items import as_dicts, asset_hrefs, parse_items
from geoslide.raster.readable import check_readable
from geoslide.raster.scenes import mixed_scenes


@dataclass(frozen=True)
class TrainingSetSpec:
    """What goes into the patch store besides the patch geometry (see :class:`PatchSpec`).

    Parameters
    ----------
    bands
        Bands by common name or asset key, in store order; None takes all bands the items share.
    derived
        Derived bands appended after ``bands`` (``ndvi``, ``slope``; see :mod:`geoslide.raster.inputs`).
    event, trigger
        Event name and trigger; by default from the items' ``geoslide:event``/``geoslide:trigger``.
    split
        A name in :func:`~geoslide.data.splits.split_names`: ``random`` (per event 60/20/20),
        ``blocks`` (western quarter trains), ``events`` (leave ``test_events`` out, the others
        train/val 3:1) or ``none``.
    test_events
        Events held out as the test set with ``split="events"``.
    chunksize
        Dask chunk size of the cubes read.
    resolution
        Pixel size the scenes are resampled to, in their CRS units (None: the items' own).
    mask_values
        What the values of a raster mask given as labels mean, ``BACKGROUND,LANDSLIDE[,NODATA]``
        (see :mod:`geoslide.inventory.maskvalues`); None decides from the values (0/1 or 0/255).
    """

    bands: tuple[str, ...] | None = None
    derived: tuple[str, ...] = ()
    event: str | None = None
    trigger: str | None = None
    split: str = "random"
    test_events: tuple[str, ...] = ()
    chunksize: int = 1024
    resolution: float | None = None
    mask_values: str | None = None
    patch: PatchSpec = field(default_factory=PatchSpec)


def build_patches(items: Sequence[pystac.Item], labels: str | Path, out: str | Path, spec: TrainingSetSpec,
                  negatives: str | Path | None = None, progress: bool | None = None,
                  pre_items: Sequence[pystac.Item] | None = None,
                  dem_items: Sequence[pystac.Item] | None = None, client: Any = None) -> PatchStore:
    """Cut every item into patches with their landslide masks and append them to the store at ``out``.

    The store is created if missing; otherwise patches are appended after what is there (bands and
    patch size must match). Each item is one scene; its patches are written as one Dask graph.
    With ``pre_items`` (pre-event scenes), post - pre difference bands ``d_<band>`` are appended;
    ``dem_items`` supply the elevation slope is computed from (else the items' own elevation band).
    Bands are built by :func:`geoslide.raster.inputs.load_inputs`, as ``geoslide map`` builds them.
    Items of different phases or dates far apart are warned about: the inventory labels every scene.
    With a ``distributed.Client`` the graphs run on its workers, which must see the imagery and the
    store's folder (checked first; a local ``out`` is made absolute, since workers have another cwd).

    Each scene goes in under its :func:`source_key` with a digest of the options: a rerun after an
    interruption skips the scenes already in and appends the rest, so the store ends as an
    uninterrupted build leaves it. The build holds the store's lock; a second writer gets a BusyError.
    """
    progress = show_progress(progress)
    if progress and client is not None:
        announce_dashboard(client)
    check_split(spec.split)
    warn_leak(spec.split, _split_options(spec))  # once, not once per scene
    _warn_mixed(items, pre_items)
    check_writable(out)
    PatchStore.open_resumable(out)  # something else at ``out`` is refused before any work
    for found in (items, pre_items, dem_items):
        if found:
            check_readable(found, spec.bands or ())
    raster = is_raster_mask(labels)
    inventory = (task_path(labels) if client is not None else labels) if raster else _inventory(labels, spec)
    if client is not None:  # a raster mask is read by the workers, chunk by chunk
        out = task_path(out)
        check_visible(client, [*asset_hrefs([*items, *(pre_items or []), *(dem_items or [])]),
                               *([inventory] if raster else [])])
        shared_parent(client, out)
    digest = build_digest(labels, spec, negatives, pre_items, dem_items)
    with output_lock(out), dask.config.set(scheduler=client) if client is not None else nullcontext():
        return _build(items, inventory, out, spec, negatives, progress, pre_items, dem_items, digest)


def _inventory(labels: str | Path, spec: TrainingSetSpec) -> gpd.GeoDataFrame:
    """The inventory's polygons; one without any is a landslide-free scene, kept only as negatives.

    That needs a policy that keeps empty patches; with ``drop`` the scene would give nothing.
    """
    frame = read_inventory(labels, allow_empty=True)
    if not has_polygons(frame) and spec.patch.empty == "drop":
        raise LabelError(f"the inventory {labels} has no polygons and empty patches are dropped, so this scene "
                         "would give no patch; keep empty patches (--empty keep or fraction, empty: in a pipeline) "
                         "to add a landslide-free scene as negatives")
    return frame


def _build(items: Sequence[pystac.Item], inventory, out: str | Path, spec: TrainingSetSpec,
           negatives: str | Path | None, progress: bool, pre_items: Sequence[pystac.Item] | None,
           dem_items: Sequence[pystac.Item] | None, digest: str) -> PatchStore:
    """Append each item's patches under its id; items already in the store (an earlier run) are skipped."""
    store = PatchStore.open_resumable(out)
    for item in items:
        if store is not None and store.has_source(source_key(item), digest):
            _say(progress, f"{item.id}: already in {out}; skipped")
            continue
        cube = _scene(item, spec, pre_items, dem_items)
        bands = [str(b) for b in cube.band.values]
        images, masks, meta = scene_patches(cube, inventory, item, spec, negatives)
        meta["split"] = assign_split(spec.split, meta, _split_options(spec))
        store = PatchStore.open_or_create(out, bands, spec.patch.size)  # nothing written before this
        _append(store, images, masks, meta, progress, source_key(item), _batch(meta, spec), digest)
    return store if store is not None else PatchStore.open(out)


def source_key(item: pystac.Item) -> str:
    """The key a scene's patches are recorded under in the store: ``collection/item id``."""
    return f"{item.collection_id or ''}/{item.id}"


def build_digest(labels: str | Path, spec: TrainingSetSpec, negatives: str | Path | None,
                 pre_items: Sequence[pystac.Item] | None, dem_items: Sequence[pystac.Item] | None) -> str:
    """A digest of everything but the item that decides a scene's patches (options, labels, pre/DEM items)."""
    parts = {"spec": asdict(spec), "labels": _content_id(labels),
             "negatives": _content_id(negatives) if negatives else None,
             "pre": sorted(i.id for i in pre_items or []), "dem": sorted(i.id for i in dem_items or [])}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _content_id(path: str | Path) -> str:
    """The SHA-256 of a (label) file's bytes."""
    return hashlib.sha256(read_bytes(path)).hexdigest()


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, flush=True)


def _warn_mixed(items: Sequence[pystac.Item], pre_items: Sequence[pystac.Item] | None) -> None:
    if mixed := mixed_scenes(items):
        warnings.warn(f"the items {mixed} (the one inventory labels every scene)", GeoslideWarning, stacklevel=3)
    if pre_items and (mixed := mixed_scenes(pre_items)):
        warnings.warn(f"the pre-event items {mixed} (they are mosaicked)", GeoslideWarning, stacklevel=3)


def _scene(item: pystac.Item, spec: TrainingSetSpec, pre_items: Sequence[pystac.Item] | None,
           dem_items: Sequence[pystac.Item] | None) -> xr.DataArray:
    """The post-event scene ``(band, y, x)`` with derived and difference bands."""
    extra = {} if spec.resolution is None else {"resolution": spec.resolution}
    return load_inputs([item], scene_bands(item, spec, bool(pre_items)), pre_items=pre_items, dem_items=dem_items,
                       chunksize=spec.chunksize, **extra)


def scene_bands(item: pystac.Item, spec: TrainingSetSpec, pre: bool) -> tuple[str, ...]:
    """The store's bands for ``item``: its bands, the derived ones, then ``d_<band>`` with pre-event items.

    The bands are ``spec.bands``, by default those the item offers less any in ``spec.derived``;
    every one of them that is read, not derived, gets a difference band.
    """
    bands = spec.bands or tuple(b for b in common_bands(parse_items([item])) if b not in spec.derived)
    read = [b for b in bands if not is_derived(b)]
    return (*bands, *spec.derived, *(f"{DIFFERENCE_PREFIX}{b}" for b in read if pre))


def scene_patches(cube: xr.DataArray, inventory, item: pystac.Item, spec: TrainingSetSpec,
                  negatives: str | Path | None) -> tuple[da.Array, da.Array, pd.DataFrame]:
    """Lazy patches of one scene ``(band, y, x)`` with their metadata table."""
    grid = grid_of(cube)
    size = spec.patch.size
    mask = labels_on_grid(inventory, grid, chunks=spec.chunksize, mask_values=spec.mask_values).data
    invalid = da.isnan(cube.data).any(axis=0) | (mask == MASK_NODATA)
    windows = plan_windows(grid.shape, spec.patch)
    area = float(size * size)
    flags = [(mask == 1) & ~invalid, invalid]
    landslide, nodata = (s / area for s in window_sums(flags, windows, size, spec.patch.step))
    bounds = window_bounds(grid, windows, size)
    chosen = select_windows(windows, landslide, nodata, spec.patch, _negatives(negatives, grid, bounds))
    windows, bounds = windows[chosen], bounds[chosen]
    labelled = da.where(invalid, MASK_NODATA, mask).astype("uint8")
    images, masks = extract(cube, labelled, windows, size)
    meta = _meta(item, grid, windows, bounds, landslide[chosen], nodata[chosen], spec)
    return images, masks, meta


def _negatives(path: str | Path | None, grid: GridSpec, bounds: np.ndarray) -> np.ndarray | None:
    if path is None:
        return None
    return meets(bounds, prepare_inventory(read_inventory(path), grid))


def _meta(item: pystac.Item, grid: GridSpec, windows: np.ndarray, bounds: np.ndarray, landslide: np.ndarray,
          nodata: np.ndarray, spec: TrainingSetSpec) -> pd.DataFrame:
    props = as_dicts([item])[0]["properties"]
    n = len(windows)
    return pd.DataFrame({
        "event": spec.event or props.get("geoslide:event") or item.collection_id or item.id,
        "sensor": props.get("constellation") or props.get("platform") or item.collection_id or "unknown",
        "trigger": spec.trigger or props.get("geoslide:trigger") or "unknown",
        "item_id": item.id, "crs": f"EPSG:{grid.epsg}", "split": "",
        "resolution": np.full(n, grid.resolution), "xmin": bounds[:, 0], "ymin": bounds[:, 1],
        "xmax": bounds[:, 2], "ymax": bounds[:, 3], "row": windows[:, 0], "col": windows[:, 1],
        "landslide_fraction": landslide.astype("float32"), "nodata_fraction": nodata.astype("float32"),
    }, index=pd.RangeIndex(n))


def _split_options(spec: TrainingSetSpec) -> SplitOptions:
    return SplitOptions(seed=spec.patch.seed, test_events=spec.test_events,
                        overlap=max(spec.patch.size - spec.patch.step, 0))


def _batch(meta: pd.DataFrame, spec: TrainingSetSpec) -> int:
    """Patches whose sources lie in about one row of read chunks (patches are row-major)."""
    per_row = int(meta.groupby("row").size().max()) if len(meta) else 1
    return per_row * max(1, spec.chunksize // spec.patch.step)


def _append(store: PatchStore, images: da.Array, masks: da.Array, meta: pd.DataFrame, progress: bool,
            label: str, batch: int, digest: str) -> None:
    if progress:
        from dask.diagnostics import ProgressBar

        print(f"{label}: {len(meta)} patches", flush=True)
        with ProgressBar(minimum=1.0):
            store.append(images, masks, meta, batch=batch, source=label, digest=digest)
    else:
        store.append(images, masks, meta, batch=batch, source=label, digest=digest)
