"""Import public landslide benchmark datasets into a patch store.

``import_dataset(kind, src, out)`` reads the released files of a dataset named in
:func:`importer_names` (see :mod:`~geoslide.data.importers.landslide4sense`,
:mod:`~geoslide.data.importers.hrgldd`, :mod:`~geoslide.data.importers.gdcld` for the layouts and
band names), checks every mask, and appends the patches to the store at ``out`` in bounded
batches, creating it when missing. A new dataset is a module with a ``plan`` function and one
entry in the registry below.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from geoslide.data.importers import gdcld, hrgldd, landslide4sense
from geoslide.data.importers._common import ImportPlan, write_plan
from geoslide.data.store import PatchStore
from geoslide.data.tilesplit import tile_splits
from geoslide.errors import ConfigError

Planner = Callable[..., ImportPlan]  # planner(src, *, event=None, sensor=None) -> ImportPlan

__all__ = ["import_dataset", "importer_names", "plan_import"]


def _with_sensor(plan: Callable[..., ImportPlan]) -> Planner:
    """The planner of a one-sensor dataset, taking a ``sensor`` that replaces the dataset's own."""

    def planner(src: str | Path, *, event: str | None = None, sensor: str | None = None) -> ImportPlan:
        found = plan(src, event=event)
        if sensor is not None:
            found.meta["sensor"] = sensor
        return found

    return planner


_PLANNERS: dict[str, Planner] = {
    "landslide4sense": _with_sensor(landslide4sense.plan),
    "hr-gldd": _with_sensor(hrgldd.plan),
    "gdcld": gdcld.plan,  # multi-sensor: takes sensor itself
}


def importer_names() -> list[str]:
    """Dataset kinds in registry order, then ``tiles`` (:func:`geoslide.data.importers.tiles.import_tiles`)."""
    return [*_PLANNERS, "tiles"]


def plan_import(kind: str, src: str | Path, *, event: str | None = None,
                sensor: str | None = None) -> ImportPlan:
    """Scan a downloaded dataset without reading pixels: what would be imported.

    Parameters
    ----------
    kind : str
        The dataset, one of :func:`importer_names`.
    src : str or pathlib.Path
        Folder of the download.
    event : str, optional
        Event name for every patch (default per dataset, see :func:`import_dataset`).
    sensor : str, optional
        Sensor for every patch; only GDCLD (multi-sensor) takes it.

    Returns
    -------
    ImportPlan
        Bands, patch size and one metadata row per patch.
    """
    if kind not in _PLANNERS:
        raise ConfigError(f"unknown dataset kind {kind!r}; choose one of {', '.join(_PLANNERS)}")
    return _PLANNERS[kind](src, event=event, sensor=sensor)


def import_dataset(kind: str, src: str | Path, out: str | Path, *, event: str | None = None,
                   sensor: str | None = None, split: str | None = None,
                   fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0,
                   progress: bool = False) -> PatchStore:
    """Import a public landslide dataset into a patch store (created if missing, else appended to).

    Parameters
    ----------
    kind : str
        The dataset, one of :func:`importer_names`. Bands in the store: Landslide4Sense ``B01``...``B12``,
        ``slope``, ``elevation``; HR-GLDD ``red``, ``green``, ``blue``, ``nir``; GDCLD ``red``, ``green``, ``blue``.
    src : str or pathlib.Path
        Folder of the download (Landslide4Sense: holding ``TrainData``...; HR-GLDD: the ``.npy``
        arrays; GDCLD: ``images``/``labels`` folders).
    out : str or pathlib.Path
        The patch store. An existing one must have the same bands and patch size.
    event : str, optional
        Event for every patch. Defaults: ``"landslide4sense"``; the HR-GLDD file-name prefix or
        ``"hr-gldd"``; the GDCLD event folder or ``"gdcld"``.
    sensor : str, optional
        Sensor for every patch. Defaults: ``"sentinel2"``, ``"planetscope"``, the GDCLD sensor
        folder or ``"mixed"``.
    split : str, optional
        Replace the dataset's own splits (:func:`geoslide.data.tilesplit.tile_splits`: ``random``
        draws whole source files, ``blocks``, ``none``, or a file listing name,split).
    fractions : tuple of float
        Train/val/test shares for ``random`` and ``blocks``.
    seed : int
        Seed of ``random``.
    progress : bool
        Show progress bars.

    Returns
    -------
    PatchStore
        The store with the imported patches after any it had.

    Raises
    ------
    ConfigError
        Missing folder, no files found, unreadable file.
    LabelError
        An image without its mask, or mask values outside the dataset's encoding.
    PatchStoreError
        Wrong shapes or band counts, or a store whose bands or patch size differ.
    """
    plan = plan_import(kind, src, event=event, sensor=sensor)
    if split is not None and split != "folders":
        plan.meta["split"] = tile_splits(plan.meta, split, fractions, seed)
    return write_plan(plan, out, progress=progress)
