"""Import public landslide benchmark datasets into a patch store.

``import_dataset("landslide4sense" | "hr-gldd" | "gdcld", src, out)`` reads the released files
(see :mod:`~geoslide.data.importers.landslide4sense`, :mod:`~geoslide.data.importers.hrgldd`,
:mod:`~geoslide.data.importers.gdcld` for the layouts and band names), checks every mask, and appends
the patches to the store at ``out`` in bounded batches, creating it when missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from geoslide.data.importers import gdcld, hrgldd, landslide4sense
from geoslide.data.importers._common import ImportPlan, write_plan
from geoslide.data.store import PatchStore
from geoslide.errors import ConfigError

DatasetKind = Literal["landslide4sense", "hr-gldd", "gdcld"]
KINDS: tuple[str, ...] = ("landslide4sense", "hr-gldd", "gdcld")

__all__ = ["KINDS", "DatasetKind", "import_dataset", "plan_import"]


def plan_import(kind: DatasetKind, src: str | Path, *, event: str | None = None,
                sensor: str | None = None) -> ImportPlan:
    """Scan a downloaded dataset without reading pixels: what would be imported.

    Parameters
    ----------
    kind : {"landslide4sense", "hr-gldd", "gdcld"}
        The dataset.
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
    if kind == "landslide4sense":
        found = landslide4sense.plan(src, event=event)
    elif kind == "hr-gldd":
        found = hrgldd.plan(src, event=event)
    elif kind == "gdcld":
        return gdcld.plan(src, event=event, sensor=sensor)
    else:
        raise ConfigError(f"unknown dataset kind {kind!r}; choose one of {', '.join(KINDS)}")
    if sensor is not None:
        found.meta["sensor"] = sensor
    return found


def import_dataset(kind: DatasetKind, src: str | Path, out: str | Path, *, event: str | None = None,
                   sensor: str | None = None, progress: bool = False) -> PatchStore:
    """Import a public landslide dataset into a patch store (created if missing, else appended to).

    Parameters
    ----------
    kind : {"landslide4sense", "hr-gldd", "gdcld"}
        The dataset. Bands in the store: Landslide4Sense ``B01``...``B12``, ``slope``, ``elevation``;
        HR-GLDD ``red``, ``green``, ``blue``, ``nir``; GDCLD ``red``, ``green``, ``blue``.
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
    return write_plan(plan_import(kind, src, event=event, sensor=sensor), out, progress=progress)
