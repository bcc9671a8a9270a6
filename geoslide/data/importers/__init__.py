"""Import public landslide benchmark datasets, exactly as released, into a patch store.

``import_dataset(kind, src, out)`` reads the released files of a dataset named in
:func:`importer_names` (see :mod:`~geoslide.data.importers.landslide4sense`,
:mod:`~geoslide.data.importers.hrgldd`, :mod:`~geoslide.data.importers.gdcld` for the layouts,
band names and units), checks every mask, and appends the patches to the store at ``out`` in
bounded batches, creating it when missing. :class:`ImportOptions` carries what the release does not
say (event, sensor, HR-GLDD channel order and sites, GDCLD label codes) and what a user may choose
(bands, units, a new split). A new dataset is a module with a ``plan(src, options)`` function and one
entry in the registry below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from geoslide.data.importers import gdcld, hrgldd, landslide4sense
from geoslide.data.importers._common import ImportOptions, ImportPlan, write_plan
from geoslide.data.splits import SplitOptions, assign_split, check_split
from geoslide.data.store import PatchStore
from geoslide.data.tilesplit import tile_splits
from geoslide.errors import ConfigError
from geoslide.progress import show_progress

Planner = Callable[[Path, ImportOptions], ImportPlan]

__all__ = ["ImportOptions", "import_dataset", "importer_names", "parse_label_codes", "plan_import"]

_PLANNERS: dict[str, Planner] = {
    "landslide4sense": landslide4sense.plan,
    "hr-gldd": hrgldd.plan,
    "gdcld": gdcld.plan,
}
#: Options only some datasets take, with the datasets that take them.
_SPECIFIC = {"units": ("landslide4sense",), "channels": ("hr-gldd",), "sites": ("hr-gldd",),
             "label_codes": ("gdcld",), "patch_size": ("gdcld",), "to_8bit": ("gdcld",)}


def importer_names() -> list[str]:
    """Dataset kinds in registry order, then ``tiles`` (:func:`geoslide.data.importers.tiles.import_tiles`)."""
    return [*_PLANNERS, "tiles"]


def _check_options(kind: str, options: ImportOptions) -> None:
    defaults = ImportOptions()
    for f in fields(ImportOptions):
        takers = _SPECIFIC.get(f.name)
        if takers and kind not in takers and getattr(options, f.name) != getattr(defaults, f.name):
            flag = "--" + f.name.replace("_", "-")
            raise ConfigError(f"{flag} applies to {', '.join(takers)} imports only, not {kind}; leave it out")
    if options.split != "release":
        check_split(options.split)


def parse_label_codes(items: list[str] | None) -> tuple[tuple[int, int], ...] | None:
    """``["85=1", "255=255"]`` -> ``((85, 1), (255, 255))``; None stays None."""
    if items is None:
        return None
    out = []
    for item in items:
        value, _, cls = item.partition("=")
        if not (value.strip().isdigit() and cls.strip().isdigit()):
            raise ConfigError(f"label code {item!r} is not VALUE=CLASS (e.g. 85=1); classes: 0, 1, 255 (nodata)")
        out.append((int(value), int(cls)))
    return tuple(out)


def plan_import(kind: str, src: str | Path, options: ImportOptions | None = None) -> ImportPlan:
    """Scan a downloaded dataset without reading pixels: what would be imported.

    Parameters
    ----------
    kind : str
        The dataset, one of :func:`importer_names`.
    src : str or pathlib.Path
        Folder of the download, or a sub-folder of it (its split, event and sensor are kept).
    options : ImportOptions, optional
        Event, sensor, bands, units, split and the dataset's own options.

    Returns
    -------
    ImportPlan
        Bands, units, patch size and one metadata row per patch, split as asked.
    """
    if kind not in _PLANNERS:
        raise ConfigError(f"unknown dataset kind {kind!r}; choose one of {', '.join(_PLANNERS)}")
    options = options or ImportOptions()
    _check_options(kind, options)
    plan = _PLANNERS[kind](Path(src), options)
    if options.bands is not None:
        plan = plan.with_bands(options.bands)
    return _resplit(plan, options)


def _resplit(plan: ImportPlan, options: ImportOptions) -> ImportPlan:
    """Apply a split rule to the labelled patches; unlabelled ones keep the release's split."""
    if options.split == "release":
        return plan
    labelled = np.flatnonzero(plan.is_labelled())
    meta = plan.meta.copy()
    rule = SplitOptions(seed=options.seed, test_events=tuple(options.test_events))
    part = meta.iloc[labelled].reset_index(drop=True)
    meta.loc[meta.index[labelled], "split"] = assign_split(options.split, part, rule) if len(part) else []
    return replace(plan, meta=meta)


def import_dataset(kind: str, src: str | Path, out: str | Path, *, options: ImportOptions | None = None,
                   event: str | None = None, sensor: str | None = None, split_file: str | Path | None = None,
                   progress: bool | None = None) -> PatchStore:
    """Import a public landslide dataset into a patch store (created if missing, else appended to).

    Parameters
    ----------
    kind : str
        The dataset, one of :func:`importer_names`. Bands in the store: Landslide4Sense ``B01``...``B12``,
        ``slope``, ``elevation``; HR-GLDD ``red``, ``green``, ``blue``, ``nir``; GDCLD ``red``, ``green``, ``blue``.
    src : str or pathlib.Path
        Folder of the download or a sub-folder of it (see each importer for the released layouts).
    out : str or pathlib.Path
        The patch store. An existing one must have the same bands, units and patch size.
    options : ImportOptions, optional
        See :class:`ImportOptions`.
    event, sensor : str, optional
        Shortcuts for ``options.event`` and ``options.sensor``.
    split_file : str or pathlib.Path, optional
        A CSV/text file of ``name,split`` replacing the splits (:func:`geoslide.data.tilesplit.tile_splits`).
    progress : bool or None
        Show progress bars; None: when a person watches (:func:`geoslide.progress.watching`).

    Returns
    -------
    PatchStore
        The store with the imported patches after any it had.

    Raises
    ------
    ConfigError
        Missing folder, a layout that is none of the released ones, unreadable file, bad option.
    LabelError
        An image without its mask in a labelled split, or mask values outside the dataset's encoding.
    PatchStoreError
        Wrong shapes or band counts, or a store whose bands, units or patch size differ.
    """
    options = options or ImportOptions()
    if event is not None or sensor is not None:
        options = replace(options, event=event if event is not None else options.event,
                          sensor=sensor if sensor is not None else options.sensor)
    plan = plan_import(kind, src, options)
    if split_file is not None:
        plan.meta["split"] = tile_splits(plan.meta, str(split_file), (0.6, 0.2, 0.2), options.seed)
    return write_plan(plan, out, progress=show_progress(progress))
