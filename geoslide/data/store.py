"""The Zarr v3 patch store: image and mask patches plus one metadata row per patch.

Layout (the only module that knows it)::

    STORE.zarr/                  group attrs: geoslide_patch_store, bands, patch_size, committed[, units]
      images   (n, band, size, size) float32, one chunk per patch
      masks    (n, size, size) uint8 (1 = landslide, 0 = background, 255 = nodata)
      meta/<column>  (n,) one array per metadata column

Appends resize the arrays, write past the committed count and only then advance ``committed``.
Readers see ``[:committed]``, so an interrupted build leaves the store readable with what was
there before, and an append never rewrites existing patches.

Resuming: an append may name its *source* (a scene, a batch of an imported dataset) with a key and
a digest of the options it was cut with. ``committed`` and the ``sources`` table (key -> rows,
digest) move in one metadata write, so a rerun after an interruption skips exactly the sources
that are in and appends the others: the store ends as an uninterrupted build would leave it.
A store is created with a ``partial`` marker that the format attribute replaces last; a
half-created store is recognised as such and replaced by the next build. Writers hold the store's
lock (:func:`geoslide.fileio.output_lock`): a second writer gets a BusyError.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import zarr

from geoslide.errors import PatchStoreError
from geoslide.fileio import check_writable, exists, output_lock, remove_tree, zarr_store
from geoslide.inventory.codes import MASK_NODATA

FORMAT = "geoslide-patch-store/1"
PARTIAL = "geoslide_patch_store_partial"
COLUMNS: dict[str, str] = {
    "event": "str", "sensor": "str", "trigger": "str", "item_id": "str", "crs": "str", "split": "str",
    "resolution": "float64", "xmin": "float64", "ymin": "float64", "xmax": "float64", "ymax": "float64",
    "row": "int64", "col": "int64", "landslide_fraction": "float32", "nodata_fraction": "float32",
}


@dataclass(frozen=True)
class PatchStore:
    """A patch store on disk or on an object store (``s3://``; ``http(s)://`` to read)."""

    path: str

    @classmethod
    def create(cls, path: str | Path, bands: Sequence[str], patch_size: int,
               units: Sequence[str] | None = None) -> PatchStore:
        """Create an empty store; refuses to touch an existing one.

        ``units`` names the unit of each band's values (e.g. ``reflectance``, ``degree``, ``m``,
        ``dn8`` for 8-bit display values); None when unknown.
        """
        if units is not None and len(units) != len(bands):
            raise PatchStoreError(f"{len(units)} units given for {len(bands)} bands {list(bands)}")
        if exists(check_writable(path)):
            raise PatchStoreError(f"{path} already exists; append to it with PatchStore.open(path) or pick a new path")
        with output_lock(path):
            group = zarr.open_group(zarr_store(path, read_only=False), mode="w-", zarr_format=3,
                                    attributes={PARTIAL: FORMAT})
            n_bands = len(bands)
            group.create_array("images", shape=(0, n_bands, patch_size, patch_size), dtype="float32",
                               chunks=(1, n_bands, patch_size, patch_size), fill_value=np.nan)
            group.create_array("masks", shape=(0, patch_size, patch_size), dtype="uint8",
                               chunks=(1, patch_size, patch_size), fill_value=MASK_NODATA)
            for name, dtype in COLUMNS.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # zarr warns that string dtypes are not in the v3 core spec
                    group.create_array(f"meta/{name}", shape=(0,), dtype=str if dtype == "str" else dtype,
                                       chunks=(65536,))
            group.attrs.update({"geoslide_patch_store": FORMAT, "bands": list(bands), "patch_size": patch_size,
                                "committed": 0, "sources": {},
                                **({"units": list(units)} if units is not None else {})})
        return cls(str(path))

    @classmethod
    def open(cls, path: str | Path) -> PatchStore:
        """Open an existing store (checked to be a geoslide patch store)."""
        if not exists(path):
            raise PatchStoreError(f"no patch store at {path}; build one with `geoslide patches` or `geoslide import`")
        store = cls(str(path))
        kind = store._kind()
        if kind == PARTIAL:
            raise PatchStoreError(f"{path} is a patch store whose creation was interrupted; rerun the build that "
                                  "made it (it starts the store again)")
        if kind != FORMAT:
            raise PatchStoreError(f"{path} is not a geoslide patch store ({FORMAT}); choose another path")
        return store

    @classmethod
    def open_existing(cls, path: str | Path) -> PatchStore | None:
        """The store at ``path``, None if nothing is there; something else there is an error."""
        return cls.open(path) if exists(path) else None

    @classmethod
    def open_resumable(cls, path: str | Path) -> PatchStore | None:
        """The store at ``path``; None if nothing, or a half-created store, is there; anything else is an error."""
        if not exists(path) or cls(str(path))._kind() == PARTIAL:
            return None
        return cls.open(path)

    @classmethod
    def open_or_create(cls, path: str | Path, bands: Sequence[str], patch_size: int,
                       units: Sequence[str] | None = None) -> PatchStore:
        """The store at ``path`` checked to take these patches, or a new one.

        A store whose creation was interrupted (it still carries the ``partial`` marker, so geoslide
        made it and it holds no patch) is deleted and created again. Call it holding the store's lock.
        """
        if exists(path) and cls(str(path))._kind() == PARTIAL:
            remove_tree(path)
        store = cls.open_existing(path)
        if store is None:
            return cls.create(path, bands, patch_size, units)
        if store.bands != list(bands) or store.patch_size != patch_size:
            raise PatchStoreError(f"{path} holds {store.patch_size}px patches of bands {store.bands}; these are "
                                  f"{patch_size}px patches of {list(bands)}; write to a new store or match "
                                  "--bands/--patch-size")
        return store

    def _kind(self) -> str | None:
        """FORMAT for a store, PARTIAL for one whose creation was interrupted, None for anything else."""
        try:
            attrs = self._group().attrs
        except (OSError, zarr.errors.BaseZarrError, ValueError, KeyError):
            return None
        if attrs.get("geoslide_patch_store") == FORMAT:
            return FORMAT
        return PARTIAL if attrs.get(PARTIAL) == FORMAT else None

    def _group(self, mode: str = "r") -> zarr.Group:
        return zarr.open_group(zarr_store(self.path, read_only=mode == "r"), mode=mode, zarr_format=3)

    @property
    def bands(self) -> list[str]:
        """Band names, in image order."""
        return list(self._group().attrs["bands"])

    @property
    def patch_size(self) -> int:
        """Side of each patch in pixels."""
        return int(self._group().attrs["patch_size"])

    @property
    def units(self) -> list[str] | None:
        """The unit of each band's values, None when the store does not record them."""
        units = self._group().attrs.get("units")
        return None if units is None else list(units)

    def __len__(self) -> int:
        return int(self._group().attrs["committed"])

    def images(self) -> da.Array:
        """Committed image patches ``(n, band, size, size)``, lazily."""
        return da.from_zarr(self._group()["images"])[: len(self)]

    def masks(self) -> da.Array:
        """Committed mask patches ``(n, size, size)``, lazily."""
        return da.from_zarr(self._group()["masks"])[: len(self)]

    def array(self, name: str) -> zarr.Array:
        """The Zarr array ``images`` or ``masks``, read-only, for random access by row (:func:`read_rows`).

        Rows past ``len(self)`` are not committed.
        """
        if name not in ("images", "masks"):
            raise PatchStoreError(f"a patch store has arrays 'images' and 'masks', not {name!r}")
        return self._group()[name]

    def meta(self) -> pd.DataFrame:
        """One row per committed patch."""
        group, n = self._group(), len(self)
        return pd.DataFrame({name: np.asarray(group[f"meta/{name}"][:n]).astype(dtype if dtype != "str" else object)
                             for name, dtype in COLUMNS.items()})

    def sources(self) -> dict[str, dict]:
        """Sources appended under a key: key -> ``{"rows": [start, stop], "digest": ...}``."""
        return dict(self._group().attrs.get("sources", {}))

    def has_source(self, key: str, digest: str = "") -> bool:
        """Whether the source ``key`` is in the store; a PatchStoreError if it went in with another digest."""
        found = self.sources().get(key)
        if found is None:
            return False
        if found.get("digest", "") != digest:
            raise PatchStoreError(f"{self.path} already holds the patches of {key} cut with other options; "
                                  "write to a new store, or rerun with the options it was built with")
        return True

    def append(self, images: np.ndarray | da.Array, masks: np.ndarray | da.Array, meta: pd.DataFrame,
               batch: int | None = None, source: str | None = None, digest: str = "") -> int:
        """Add patches after the committed ones; returns the new number of patches.

        Patches are computed and written chunk by chunk (``dask.array.store``), ``batch`` patches
        at a time if given: row-major patches of one scene then need about one band of the scene
        in memory. The committed count moves only after every array is written, together with
        ``source`` (a key naming where the patches come from, with the ``digest`` of the options
        they were cut with; see :meth:`has_source`) when given.
        """
        self._check_append(images, masks, meta)
        with output_lock(self.path):
            group, n0 = self._group("r+"), len(self)
            n1 = n0 + len(meta)
            if len(meta):
                self._write_rows(group, images, masks, meta, n0, batch)
            update: dict = {"committed": n1}
            if source is not None:
                update["sources"] = {**group.attrs.get("sources", {}), source: {"rows": [n0, n1], "digest": digest}}
            group.attrs.update(update)
        return n1

    def _write_rows(self, group: zarr.Group, images, masks, meta: pd.DataFrame, n0: int, batch: int | None) -> None:
        """Write patches into rows ``n0...`` past the committed ones (resizing the arrays)."""
        n_new = len(meta)
        n1 = n0 + n_new
        targets = [group["images"], group["masks"]]
        for arr in targets:
            arr.resize((n1, *arr.shape[1:]))
        # One dask chunk per store chunk (a whole patch): writers of parts of one Zarr chunk would race
        # (read-modify-write without a lock), and stackstac delivers one band per chunk.
        sources = [da.asarray(images).astype("float32").rechunk((1, -1, -1, -1)),
                   da.asarray(masks).astype("uint8").rechunk((1, -1, -1))]
        step = batch or n_new
        for start in range(0, n_new, step):
            stop = min(start + step, n_new)
            da.store([src[start:stop] for src in sources], targets,
                     regions=[(slice(n0 + start, n0 + stop),)] * 2, lock=False)
        for name, dtype in COLUMNS.items():
            column = group[f"meta/{name}"]
            column.resize((n1,))
            values = meta[name].to_numpy()
            column[n0:n1] = values.astype(str) if dtype == "str" else values.astype(dtype)

    def set_column(self, name: str, values: Sequence) -> None:
        """Rewrite one metadata column for all committed patches (e.g. a new ``split``)."""
        if name not in COLUMNS:
            raise PatchStoreError(f"unknown metadata column {name!r}; columns: {sorted(COLUMNS)}")
        values = np.asarray(values)
        if values.shape != (len(self),):
            raise PatchStoreError(f"{name} needs {len(self)} values, got {values.shape}")
        column = self._group("r+")[f"meta/{name}"]
        column[: len(self)] = values.astype(str) if COLUMNS[name] == "str" else values.astype(COLUMNS[name])

    def _check_append(self, images, masks, meta: pd.DataFrame) -> None:
        size, bands = self.patch_size, len(self.bands)
        n = len(meta)
        if tuple(images.shape) != (n, bands, size, size):
            raise PatchStoreError(f"images of shape {tuple(images.shape)} do not fit this store: expected "
                                  f"({n}, {bands}, {size}, {size}) for bands {self.bands}")
        if tuple(masks.shape) != (n, size, size):
            raise PatchStoreError(f"masks of shape {tuple(masks.shape)} do not fit: expected ({n}, {size}, {size})")
        missing = sorted(set(COLUMNS) - set(meta.columns))
        if missing:
            raise PatchStoreError(f"patch metadata lacks column(s) {missing}")


def read_rows(array: zarr.Array, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` in the order of ``rows``, read in one pass over them sorted."""
    rows = np.asarray(rows)
    order = np.argsort(rows)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return array.oindex[rows[order]][inverse]
